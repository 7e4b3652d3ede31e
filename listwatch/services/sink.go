// Package services turns the Endpoints or EndpointSlice objects a
// list-watch delivers into the value each service has in kdisc's table,
// and keeps the table in step. It is the store under the loop, as
// client-go's Store is under its Reflector: the loop (package listwatch)
// hands it raw objects and never learns what they mean.
//
// Data flows one way:
//
//	raw object (JSON, or protobuf in its k8s envelope)
//	  → decode.go / decodeproto.go: an object (what discovery reads of it)
//	  → services.go: the state (endpointsState or sliceState) folds it into
//	    its service and says which services changed
//	  → sink.go: each changed service's value is written to the Table
//
// A Sink is told: objects added, updated or deleted (watch events); a list
// begun, its items, and its end (the list replaces the state: every
// service it changed is written, every other one deleted). A malformed
// object is skipped, logged and counted; a service the table refuses keeps
// its old value there, and is tried again when a delete frees space.
package services

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/kdisc/kdisc/internal/jsonscan"
	"github.com/kdisc/kdisc/internal/protowire"
	"github.com/kdisc/kdisc/selector"
	"github.com/kdisc/kdisc/shm"
)

// Table is what a Sink writes: *shm.Writer.
type Table interface {
	Put(key string, ports []shm.Port) error
	Delete(key string) bool
	// PutDetail stores opaque bytes beside key's value, DeleteDetail
	// removes them: the node detail (Options.NodeDetail), used only when
	// it is on.
	PutDetail(key string, detail []byte) error
	DeleteDetail(key string) bool
	Keys(fn func(key string) bool)
}

// Counters are where a Sink counts (the fields of listwatch.Stats).
type Counters struct {
	Skipped   *atomic.Uint64 // objects skipped as malformed, and services the table refused
	Refused   *atomic.Uint64 // of Skipped: services the table refused (not for being full)
	TableFull *atomic.Uint64 // updates refused by a full table
	// Truncated: how many services are served now from a truncated
	// Endpoints object (a gauge).
	Truncated *atomic.Int64
}

// Options say which objects a Sink reads and how they become nodes.
type Options struct {
	EndpointSlices bool                // objects are discovery.k8s.io/v1 EndpointSlices, else v1 Endpoints
	Namespaces     *selector.Namespace // objects of other namespaces are ignored; nil: none is
	Weight         uint32              // weight of every node
	// EndpointSlices only: see listwatch.Options.
	NoTerminatingFallback bool
	Node, Zone            string
	NodeDetail            bool // store each service's node detail beside it (Table.PutDetail)
	Logger                *slog.Logger
	Counters              Counters
}

// Sink keeps a Table in step with the objects it is told of. It is not
// safe for concurrent use: one loop feeds it.
type Sink struct {
	o     Options
	log   *slog.Logger
	kind  string // for logs: "endpoints" or "endpointslices"
	table Table
	state state // what the table holds (or will, once a full table has room)
	// The list in progress (BeginList): the state it builds, and the
	// services of its malformed objects (keep: their served value stays).
	next state
	keep map[string]struct{}
	// unstored holds services a full table refused (false), or whose
	// node detail it refused after storing their nodes (true); they are
	// tried again, only what was refused, whenever a delete frees space.
	unstored map[string]bool
	// warnedTruncated: the services whose truncated Endpoints was logged,
	// once per service for the Sink's life.
	warnedTruncated map[string]struct{}

	writeKey func(key string)  // s.write
	noChange func(key string)  // a list's items change nothing in the table until its end
	obj      object            // decode scratch, reused; its strings borrow the bytes decoded
	scan     jsonscan.Scanner  // decode scratch, reused
	proto    protowire.Decoder // decode scratch, reused
}

// New returns a Sink that writes table.
func New(o Options, table Table) *Sink {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Sink{o: o, log: o.Logger, table: table, unstored: map[string]bool{}, warnedTruncated: map[string]struct{}{}, kind: "endpoints"}
	if o.EndpointSlices {
		s.kind = "endpointslices"
	}
	s.writeKey = s.write // once: a method value made per event would be an allocation per event
	s.noChange = func(string) {}
	s.state = s.newState()
	return s
}

func (s *Sink) newState() state {
	if s.o.EndpointSlices {
		st := newSliceState(s.o.Weight)
		st.fallback, st.node, st.zone, st.withDetail = !s.o.NoTerminatingFallback, s.o.Node, s.o.Zone, s.o.NodeDetail
		return st
	}
	st := newEndpointsState(s.o.Weight)
	st.withDetail, st.onTruncated = s.o.NodeDetail, s.warnTruncated
	return st
}

// Add applies an added object (an ADDED watch event) and writes the
// services it changed; Update does the same for a modified one (the
// object's new version replaces its last). They return the object's
// resourceVersion, valid until the next call (clone it to keep it). The
// error is a *TrailingError or nil: a malformed object is skipped, logged
// and counted, not returned.
func (s *Sink) Add(raw []byte, proto bool) (rv string, err error) {
	rv, _, err = s.fold(raw, proto, s.state, s.writeKey)
	return rv, err
}

// Update: see Add. (Its body is Add's, not a call of it: both inline
// into the loop.)
func (s *Sink) Update(raw []byte, proto bool) (rv string, err error) {
	rv, _, err = s.fold(raw, proto, s.state, s.writeKey)
	return rv, err
}

// Delete applies a deleted object (a DELETED watch event), as Add.
func (s *Sink) Delete(raw []byte, proto bool) (rv string, err error) {
	o, err := s.decode(raw, proto)
	if te := trailing(err); te != nil {
		return "", te
	}
	if err != nil {
		s.skip(o, err)
		return "", nil
	}
	s.state.remove(o, s.writeKey)
	s.o.Counters.Truncated.Store(int64(s.state.truncated()))
	return o.resourceVersion, nil
}

// BeginList starts a list (LIST pages, or a streaming list's initial
// events): its items build a new state, and the table is not touched
// until EndList. A list begun again before its end starts afresh.
func (s *Sink) BeginList() {
	s.next, s.keep = s.newState(), map[string]struct{}{}
}

// ListItem folds one listed object into the list's state. The error is a
// *TrailingError or nil, as for Add.
func (s *Sink) ListItem(raw []byte, proto bool) error {
	_, bad, err := s.fold(raw, proto, s.next, nil)
	if bad {
		// A bad object must not take away what was served: its
		// service keeps its value, and the state keeps the
		// object's last good version, so a later DELETED event
		// of it still lands.
		if key := s.serviceKey(&s.obj); key != "" {
			s.keep[key] = struct{}{}
		}
		if s.obj.namespace != "" && s.obj.name != "" {
			s.next.carry(s.state, &s.obj)
		}
	}
	return err
}

// EndList makes the list's state the current one and rewrites the table
// to match: every changed service of the list is written, then every
// other key deleted, except the services of malformed objects: a bad
// object must not take away what was served. A kept service that the list
// holds is written like any other: the list merged the malformed object's
// last good version (carry) with what it found of its other objects.
func (s *Sink) EndList() {
	if s.next == nil {
		return
	}
	next, keep := s.next, s.keep
	s.next, s.keep = nil, nil
	prev, refused := s.state, s.unstored
	s.state, s.unstored = next, map[string]bool{}
	s.o.Counters.Truncated.Store(int64(next.truncated()))
	next.each(func(key string) {
		// A relist mostly finds what the watch already wrote: rewrite
		// only what changed, or what a full table refused before.
		if _, retry := refused[key]; !retry && sameValue(prev, next, key) && (!s.o.NodeDetail || bytes.Equal(prev.detail(key), next.detail(key))) {
			return
		}
		s.write(key)
	})
	var stale []string
	s.table.Keys(func(key string) bool {
		if _, skip := keep[key]; !skip && !exists(next, key) {
			stale = append(stale, key)
		}
		return true
	})
	for _, key := range stale {
		s.delete(key)
	}
}

// warnTruncated says, once per service, that its Endpoints object lists
// only part of its addresses.
func (s *Sink) warnTruncated(key string) {
	if _, done := s.warnedTruncated[key]; done {
		return
	}
	s.warnedTruncated[key] = struct{}{}
	s.log.Warn("Endpoints truncated: the Endpoints controller keeps at most 1000 addresses (endpoints.kubernetes.io/over-capacity: truncated), so the service is served from part of its pods; set watch_endpoint_slices: true to serve them all",
		"service", key)
}

// sameValue reports whether key has the same value in a and b (both
// without it counts as the same).
func sameValue(a, b state, key string) bool {
	pa, oka := a.value(key)
	pb, okb := b.value(key)
	return oka == okb && portsEqual(pa, pb)
}

func exists(s state, key string) bool { return s.has(key) }

// write stores the current value of key, or deletes it when the service
// no longer exists. A service without an address to serve is stored (it
// answers "empty", not "unknown").
func (s *Sink) write(key string) {
	ports, ok := s.state.value(key)
	if !ok {
		s.delete(key)
		return
	}
	err := s.table.Put(key, ports)
	if err == nil {
		delete(s.unstored, key)
		s.putDetail(key)
		return
	}
	var full *shm.FullError // escapes (errors.As): declared where it is needed
	switch {
	case !errors.As(err, &full):
		s.o.Counters.Refused.Add(1)
		s.o.Counters.Skipped.Add(1)
		s.log.Error("table refused the service; the old value stays", "service", key, "error", err)
	default:
		s.o.Counters.TableFull.Add(1)
		s.unstored[key] = false
		s.log.Error("table full; the old value stays", "service", key, "error", err)
	}
}

// putDetail stores key's node detail (with node detail on) after its
// nodes were stored. A full table refusing it is no refused service: the
// nodes are served; the detail is tried again when space frees up.
func (s *Sink) putDetail(key string) bool {
	if !s.o.NodeDetail {
		return true
	}
	err := s.table.PutDetail(key, s.state.detail(key))
	if err == nil {
		return true
	}
	var full *shm.FullError
	if errors.As(err, &full) {
		s.unstored[key] = true
	}
	s.log.Error("node detail not stored (the nodes were)", "service", key, "error", err)
	return false
}

// delete removes key and, since that frees space, stores what a full
// table refused before.
func (s *Sink) delete(key string) {
	delete(s.unstored, key)
	if s.o.NodeDetail {
		s.table.DeleteDetail(key)
	}
	if !s.table.Delete(key) {
		return
	}
	for k, detailOnly := range s.unstored {
		ports, ok := s.state.value(k)
		switch {
		case !ok:
			delete(s.unstored, k)
		case detailOnly: // the nodes are stored: do not write (and notify) them again
			if s.putDetail(k) {
				delete(s.unstored, k)
				s.log.Info("stored the node detail the full table had refused", "service", k)
			}
		case s.table.Put(k, ports) == nil:
			delete(s.unstored, k)
			s.log.Info("stored a service the full table had refused", "service", k)
			s.putDetail(k)
		}
	}
}

// fold decodes one raw object (into s.obj) and records it in into;
// changed hears which services it changed. A malformed object is skipped,
// logged and counted, and reported as bad; s.obj holds what could be read
// of it. Bytes that hold more than the object are a *TrailingError:
// nothing is recorded. A nil changed folds into a list (into is not the
// current state, and changes nothing in the table).
func (s *Sink) fold(raw []byte, proto bool, into state, changed func(string)) (rv string, bad bool, err error) {
	o, err := s.decode(raw, proto)
	if te := trailing(err); te != nil {
		return "", false, te
	}
	if err == nil && !s.o.Namespaces.Allows(o.namespace) {
		return o.resourceVersion, false, nil
	}
	switch {
	case err != nil:
	case changed == nil: // a list's item: the table waits for the list's end
		err = into.set(o, s.noChange)
	default: // the current state: the gauge follows it
		if err = into.set(o, changed); err == nil {
			s.o.Counters.Truncated.Store(int64(into.truncated()))
		}
	}
	if err != nil {
		s.skip(o, err)
		return o.resourceVersion, true, nil
	}
	return o.resourceVersion, false, nil
}

// decode reads one raw object into the sink's scratch object, whose
// strings borrow raw's bytes.
func (s *Sink) decode(raw []byte, proto bool) (*object, error) {
	if proto {
		return &s.obj, decodeProtoObject(&s.proto, raw, &s.obj, s.o.EndpointSlices, s.o.NodeDetail)
	}
	return &s.obj, decodeObjectDetail(&s.scan, raw, &s.obj, s.o.NodeDetail)
}

// trailing returns err as a *TrailingError, or nil.
func trailing(err error) *TrailingError {
	te, _ := err.(*TrailingError)
	return te
}

func (s *Sink) skip(o *object, err error) {
	s.o.Counters.Skipped.Add(1)
	// Cloned: a log handler may keep what it is given past this event.
	s.log.Warn("skipping malformed object", "resource", s.kind, "namespace", strings.Clone(o.namespace), "name", strings.Clone(o.name), "error", err)
}

// serviceKey is the table key of the service o belongs to, "" if unknown.
func (s *Sink) serviceKey(o *object) string {
	name := o.name
	if s.o.EndpointSlices {
		name = o.serviceName
	}
	if o.namespace == "" || name == "" {
		return ""
	}
	return o.namespace + "/" + name
}
