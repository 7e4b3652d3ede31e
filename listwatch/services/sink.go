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
//	  → services.go: an Endpoints object is its service's value whole
//	    (endpointsState builds it; the table is the state); EndpointSlices
//	    are kept (sliceState), merged per service, and say which services
//	    changed
//	  → sink.go: each changed service's value is written to the Table
//
// A Sink is told: objects added, updated or deleted (watch events); a list
// begun, its items, and its end (the list replaces what the table holds:
// every service it found is written, every other one deleted). A
// malformed object is skipped, logged and counted; a service the table
// refuses keeps its old value there, and is tried again when a delete
// frees space.
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

// Table is what a Sink writes: *shm.Writer. Put of the value key holds
// already must change nothing (the Sink of Endpoints writes every object
// it is told of, and counts on the table to keep what it holds). A key
// passed in is the caller's again when the call returns: a Table that
// keeps it copies it.
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

	// Endpoints: one object is one service, and the table holds the
	// state (endpointsState); a list (listing) writes its services as
	// they come, and remembers which it listed, to delete the others at
	// its end (listed; nil when fresh).
	endpoints *endpointsState
	listing   bool
	listed    *keySet

	// EndpointSlices: a service merges several slices, so the slices are
	// kept (state: what the table holds, or will once a full table has
	// room). A list builds next, which replaces state at its end; keep
	// holds the services of its malformed objects (their served value
	// stays).
	state *sliceState
	next  *sliceState
	keep  map[string]struct{}

	// fresh: the list in progress can find nothing stale at its end, so
	// it neither remembers its keys nor scans the table: the table held
	// nothing when it began (nothingStale; the first list of a new table,
	// the usual start: at 10k Endpoints 1.7 MB less peak RSS).
	fresh bool

	// unstored holds the services a full table refused, or whose node
	// detail it refused after storing their nodes; they are tried again,
	// only what was refused, whenever a delete frees space.
	unstored map[string]refusal
	// warnedTruncated: the services whose truncated Endpoints was logged,
	// once per service for the Sink's life.
	warnedTruncated map[string]struct{}

	writeKey func(key string)  // s.write
	noChange func(key string)  // a list's items change nothing in the table until its end
	obj      object            // decode scratch, reused; its strings borrow the bytes decoded
	scan     jsonscan.Scanner  // decode scratch, reused
	proto    protowire.Decoder // decode scratch, reused
}

// refusal is what a full table refused of a service: its nodes and
// detail, or only its detail. Of Endpoints, the table has no other copy
// of a refused value: it is kept here, packed (packPorts), with the
// detail.
type refusal struct {
	detailOnly     bool
	packed, detail []byte
}

// New returns a Sink that writes table.
func New(o Options, table Table) *Sink {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Sink{o: o, log: o.Logger, table: table, unstored: map[string]refusal{}, warnedTruncated: map[string]struct{}{}, kind: "endpoints"}
	s.writeKey = s.write // once: a method value made per event would be an allocation per event
	s.noChange = func(string) {}
	if o.EndpointSlices {
		s.kind = "endpointslices"
		s.state = s.newSliceState()
	} else {
		s.endpoints = newEndpointsState(o.Weight)
		s.endpoints.withDetail, s.endpoints.onTruncated = o.NodeDetail, s.warnTruncated
	}
	return s
}

func (s *Sink) newSliceState() *sliceState {
	st := newSliceState(s.o.Weight)
	st.fallback, st.node, st.zone, st.withDetail = !s.o.NoTerminatingFallback, s.o.Node, s.o.Zone, s.o.NodeDetail
	return st
}

// Add applies an added object (an ADDED watch event) and writes the
// services it changed; Update does the same for a modified one (the
// object's new version replaces its last). They return the object's
// resourceVersion, valid until the next call (clone it to keep it). The
// error is a *TrailingError or nil: a malformed object is skipped, logged
// and counted, not returned.
func (s *Sink) Add(raw []byte, proto bool) (rv string, err error) {
	rv, _, err = s.fold(raw, proto, false)
	return rv, err
}

// Update: see Add. (Its body is Add's, not a call of it: both inline
// into the loop.)
func (s *Sink) Update(raw []byte, proto bool) (rv string, err error) {
	rv, _, err = s.fold(raw, proto, false)
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
	if s.endpoints != nil {
		s.delete(s.endpoints.forget(o))
		s.o.Counters.Truncated.Store(int64(s.endpoints.truncated()))
	} else {
		s.state.remove(o, s.writeKey)
	}
	return o.resourceVersion, nil
}

// BeginList starts a list (LIST pages, or a streaming list's initial
// events). Of Endpoints, each item is written as it comes (an object
// is its service whole: each service shows either its last value or
// its listed one); of EndpointSlices, the items build a new state and
// the table is not touched until EndList (a service merges slices that
// may come far apart). A list begun again before its end starts afresh.
func (s *Sink) BeginList() {
	s.fresh = s.nothingStale()
	if s.endpoints != nil {
		s.listing, s.listed = true, nil
		if !s.fresh {
			s.listed = &keySet{}
		}
		return
	}
	s.next, s.keep = s.newSliceState(), map[string]struct{}{}
}

// ListItem folds one listed object into the list. The error is a
// *TrailingError or nil, as for Add.
func (s *Sink) ListItem(raw []byte, proto bool) error {
	_, bad, err := s.fold(raw, proto, true)
	if !bad {
		return err
	}
	// A bad object must not take away what was served: its service
	// keeps its value, and the slices' state keeps the object's last
	// good version, so a later DELETED event of it still lands.
	if key := s.serviceKey(&s.obj); key != "" {
		if s.endpoints != nil {
			s.listed.add(key)
		} else {
			s.keep[key] = struct{}{}
		}
	}
	if s.state != nil && s.obj.namespace != "" && s.obj.name != "" {
		s.next.carry(s.state, &s.obj)
	}
	return err
}

// EndList makes the table hold what the list found: every key the list
// did not find is deleted, except the services of malformed objects (a
// bad object must not take away what was served). Of EndpointSlices,
// the list's state becomes the current one first, and every service it
// changed is written; a kept service that the list holds is written like
// any other: the list merged the malformed object's last good version
// (carry) with what it found of its other objects.
func (s *Sink) EndList() {
	var found func(key string) bool
	switch {
	case s.listing:
		listed := s.listed
		s.listing, s.listed = false, nil
		if s.fresh {
			return
		}
		listed.seal()
		found = listed.has
		s.endpoints.keepTruncated(found)
		for k := range s.unstored {
			if !found(k) {
				delete(s.unstored, k)
			}
		}
		s.o.Counters.Truncated.Store(int64(s.endpoints.truncated()))
	case s.next != nil:
		next, keep := s.next, s.keep
		s.next, s.keep = nil, nil
		prev, refused := s.state, s.unstored
		s.state, s.unstored = next, map[string]refusal{}
		next.each(func(key string) {
			// A relist mostly finds what the watch already wrote:
			// rewrite only what changed, or what a full table refused
			// before.
			if _, retry := refused[key]; !retry && sameValue(prev, next, key) && (!s.o.NodeDetail || bytes.Equal(prev.detail(key), next.detail(key))) {
				return
			}
			s.write(key)
		})
		if s.fresh {
			return
		}
		found = func(key string) bool {
			_, kept := keep[key]
			return kept || next.has(key)
		}
	default:
		return
	}
	var stale []string
	s.table.Keys(func(key string) bool {
		if !found(key) {
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

// nothingStale reports whether a list beginning now could find nothing
// stale at its end: the table holds no service, and nothing is kept of
// one (refused by a full table, or truncated).
func (s *Sink) nothingStale() bool {
	empty := true
	s.table.Keys(func(string) bool {
		empty = false
		return false
	})
	return empty && len(s.unstored) == 0 && (s.endpoints == nil || s.endpoints.truncated() == 0)
}

// sameValue reports whether key has the same value in a and b (both
// without it counts as the same).
func sameValue(a, b *sliceState, key string) bool {
	pa, oka := a.value(key)
	pb, okb := b.value(key)
	return oka == okb && portsEqual(pa, pb)
}

// write stores the current value of slice service key, or deletes it
// when the service no longer exists.
func (s *Sink) write(key string) {
	ports, ok := s.state.value(key)
	if !ok {
		s.delete(key)
		return
	}
	s.put(key, ports, s.state.detail(key))
}

// put stores a service's value and node detail (with node detail on),
// and reports whether the table holds both. A service without an address
// to serve is stored (it answers "empty", not "unknown").
func (s *Sink) put(key string, ports []shm.Port, detail []byte) bool {
	err := s.table.Put(key, ports)
	if err == nil {
		delete(s.unstored, key)
		return s.putDetail(key, ports, detail)
	}
	var full *shm.FullError // escapes (errors.As): declared where it is needed
	switch {
	case !errors.As(err, &full):
		s.o.Counters.Refused.Add(1)
		s.o.Counters.Skipped.Add(1)
		s.log.Error("table refused the service; the old value stays", "service", strings.Clone(key), "error", err)
	default:
		s.o.Counters.TableFull.Add(1)
		s.refused(key, ports, detail, false)
		s.log.Error("table full; the old value stays", "service", strings.Clone(key), "error", err)
	}
	return false
}

// putDetail stores key's node detail (with node detail on) after its
// nodes were stored. A full table refusing it is no refused service: the
// nodes are served; the detail is tried again when space frees up.
func (s *Sink) putDetail(key string, ports []shm.Port, detail []byte) bool {
	if !s.o.NodeDetail {
		return true
	}
	err := s.table.PutDetail(key, detail)
	if err == nil {
		return true
	}
	var full *shm.FullError
	if errors.As(err, &full) {
		s.refused(key, ports, detail, true)
	}
	s.log.Error("node detail not stored (the nodes were)", "service", strings.Clone(key), "error", err)
	return false
}

// refused notes that a full table refused key's value (or only its node
// detail), to try again when a delete frees space.
func (s *Sink) refused(key string, ports []shm.Port, detail []byte, detailOnly bool) {
	r := refusal{detailOnly: detailOnly}
	if s.endpoints != nil {
		r.packed, r.detail = packPorts(nil, ports), bytes.Clone(detail)
	}
	s.unstored[strings.Clone(key)] = r
}

// retryValue is the value and node detail of a service the table
// refused (r), to try again; false if the service is gone.
func (s *Sink) retryValue(key string, r refusal) ([]shm.Port, []byte, bool) {
	if s.endpoints != nil {
		return s.endpoints.unpack(r.packed), r.detail, true
	}
	ports, ok := s.state.value(key)
	if !ok {
		return nil, nil, false
	}
	return ports, s.state.detail(key), true
}

// delete removes key and, since that frees space, stores what a full
// table refused before.
func (s *Sink) delete(key string) {
	if s.endpoints != nil {
		s.endpoints.deleted(key)
	}
	delete(s.unstored, key)
	if s.o.NodeDetail {
		s.table.DeleteDetail(key)
	}
	if !s.table.Delete(key) {
		return
	}
	for k, r := range s.unstored {
		ports, detail, ok := s.retryValue(k, r)
		switch {
		case !ok:
			delete(s.unstored, k)
		case r.detailOnly: // the nodes are stored: do not write (and notify) them again
			if s.putDetail(k, ports, detail) {
				delete(s.unstored, k)
				s.log.Info("stored the node detail the full table had refused", "service", k)
			}
		case s.table.Put(k, ports) == nil:
			delete(s.unstored, k)
			s.log.Info("stored a service the full table had refused", "service", k)
			s.putDetail(k, ports, detail) // a refusal of the detail alone is noted anew
		}
	}
}

// fold decodes one raw object (into s.obj) and applies it, as a list's
// item when listing. A malformed object is skipped, logged and counted,
// and reported as bad; s.obj holds what could be read of it. Bytes that
// hold more than the object are a *TrailingError: nothing is applied.
func (s *Sink) fold(raw []byte, proto, listing bool) (rv string, bad bool, err error) {
	o, err := s.decode(raw, proto)
	if te := trailing(err); te != nil {
		return "", false, te
	}
	if err == nil && !s.o.Namespaces.Allows(o.namespace) {
		return o.resourceVersion, false, nil
	}
	if err == nil {
		err = s.apply(o, listing)
	}
	if err != nil {
		s.skip(o, err)
		return o.resourceVersion, true, nil
	}
	return o.resourceVersion, false, nil
}

// apply records an added or modified object. Of Endpoints, its service
// is written at once, in a list too; of EndpointSlices, a list's item
// goes to the list's state, and the table waits for the list's end.
func (s *Sink) apply(o *object, listing bool) error {
	if s.endpoints == nil {
		if listing {
			return s.next.set(o, s.noChange)
		}
		return s.state.set(o, s.writeKey)
	}
	key, detail, err := s.endpoints.build(o)
	if err != nil {
		return err
	}
	s.o.Counters.Truncated.Store(int64(s.endpoints.truncated()))
	if listing {
		s.listed.add(key)
	}
	if _, retry := s.unstored[key]; !retry && s.endpoints.unchanged() {
		return nil
	}
	if s.put(key, s.endpoints.ports(), detail) {
		s.endpoints.wrote()
	}
	return nil
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
