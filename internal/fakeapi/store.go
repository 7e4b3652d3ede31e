package fakeapi

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"
)

// The store is a tiny etcd: one global revision counter shared by all
// resources, every version of every object kept until Compact (so a LIST
// page can be served at the revision of the first page, as etcd does), and
// the ordered event history that watches replay.

// stored is one immutable version of an object.
type stored struct {
	res      *resource
	ns, name string
	labels   map[string]string
	rv       uint64
	item     []byte // as in a list: no kind/apiVersion
	full     []byte // as in a watch event or GET: with kind/apiVersion
}

func (o *stored) key() string { return o.ns + "/" + o.name }

// version is an entry of a key's history; obj == nil marks a deletion.
type version struct {
	rv  uint64
	obj *stored
}

// event is one change in history. obj is the new state (for DELETED, the
// last state stamped with the deletion's revision); prev is the state
// before, used to turn label-filtered MODIFIED events into ADDED/DELETED as
// the real watch cache does.
type event struct {
	typ  string
	rv   uint64
	obj  *stored
	prev *stored
}

type store struct {
	mu         sync.Mutex
	rv         uint64                             // last revision handed out
	compacted  uint64                             // revisions below this are gone
	tokensFrom uint64                             // continue tokens older than this are expired
	keys       map[*resource]map[string][]version // versions ascending by rv
	events     []*event                           // ascending by rv, all > compacted
	watchers   map[*watcher]struct{}
	onChange   func() // told when the set of watchers changes
}

// firstRV makes resourceVersions look like a live cluster's, not "1".
const firstRV = 1000

func newStore(onChange func()) *store {
	return &store{
		rv:        firstRV,
		compacted: firstRV,
		keys:      map[*resource]map[string][]version{},
		watchers:  map[*watcher]struct{}{},
		onChange:  onChange,
	}
}

func formatRV(rv uint64) string { return strconv.FormatUint(rv, 10) }

// encode stamps obj with rv and returns the list-item and full encodings.
func encode(res *resource, obj object) (item, full []byte, err error) {
	obj.setType("", "")
	if item, err = json.Marshal(obj); err != nil {
		return nil, nil, err
	}
	obj.setType(res.kind, res.apiVersion)
	full, err = json.Marshal(obj)
	obj.setType("", "")
	return item, full, err
}

func (s *store) latest(res *resource, key string) *stored {
	vs := s.keys[res][key]
	if len(vs) == 0 {
		return nil
	}
	return vs[len(vs)-1].obj
}

// put stores a copy of obj as a new version, filling the metadata the real
// server fills (uid, creationTimestamp, generation, managedFields) when the
// test left it empty.
func (s *store) put(res *resource, in object) (string, error) {
	// Work on a private copy: the caller keeps its object.
	raw, err := json.Marshal(in)
	if err != nil {
		return "", err
	}
	obj := res.newObject()
	if err := json.Unmarshal(raw, obj); err != nil {
		return "", err
	}
	m := obj.meta()
	if m.Name == "" {
		return "", fmt.Errorf("fakeapi: %s without metadata.name", res.kind)
	}
	if m.Namespace == "" {
		m.Namespace = "default"
	}
	obj.setDefaults()
	if errs := obj.validate(); len(errs) > 0 {
		return "", invalidStatus(res, m.Name, errs)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	key := m.Namespace + "/" + m.Name
	prev := s.latest(res, key)
	var prevMeta ObjectMeta
	if prev != nil {
		old := res.newObject()
		_ = json.Unmarshal(prev.item, old)
		prevMeta = *old.meta()
	}
	s.rv++
	m.ResourceVersion = formatRV(s.rv)
	if m.UID == "" {
		m.UID = prevMeta.UID
		if m.UID == "" {
			m.UID = fakeUID(res.name, key, m.ResourceVersion)
		}
	}
	if m.CreationTimestamp == "" {
		m.CreationTimestamp = prevMeta.CreationTimestamp
		if m.CreationTimestamp == "" {
			m.CreationTimestamp = time.Now().UTC().Format(time.RFC3339)
		}
	}
	if res == resEndpointSlices && m.Generation == 0 {
		m.Generation = prevMeta.Generation + 1
	}
	if m.ManagedFields == nil {
		m.ManagedFields = defaultManagedFields(res, m)
	}
	item, full, err := encode(res, obj)
	if err != nil {
		s.rv--
		return "", err
	}
	o := &stored{res: res, ns: m.Namespace, name: m.Name, labels: m.Labels, rv: s.rv, item: item, full: full}
	typ := "ADDED"
	if prev != nil {
		typ = "MODIFIED"
	}
	s.record(res, key, o, &event{typ: typ, rv: s.rv, obj: o, prev: prev})
	return m.ResourceVersion, nil
}

// del removes ns/name; the DELETED event carries the last state with the
// deletion's revision, as the real server sends it.
func (s *store) del(res *resource, ns, name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := ns + "/" + name
	prev := s.latest(res, key)
	if prev == nil {
		return ""
	}
	obj := res.newObject()
	_ = json.Unmarshal(prev.item, obj)
	s.rv++
	obj.meta().ResourceVersion = formatRV(s.rv)
	item, full, _ := encode(res, obj)
	gone := &stored{res: res, ns: ns, name: name, labels: prev.labels, rv: s.rv, item: item, full: full}
	s.record(res, key, nil, &event{typ: "DELETED", rv: s.rv, obj: gone, prev: prev})
	return formatRV(s.rv)
}

// record appends a version and an event and hands the event to watchers.
// Called with s.mu held.
func (s *store) record(res *resource, key string, o *stored, ev *event) {
	if s.keys[res] == nil {
		s.keys[res] = map[string][]version{}
	}
	s.keys[res][key] = append(s.keys[res][key], version{rv: ev.rv, obj: o})
	s.events = append(s.events, ev)
	for w := range s.watchers {
		if w.res == res {
			w.push(watchItem{ev: ev})
		}
	}
}

// compact forgets history up to the current revision: watches and
// continue tokens from older revisions get 410 Expired.
func (s *store) compact() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.compacted = s.rv
	s.events = nil
	for _, keys := range s.keys {
		for k, vs := range keys {
			last := vs[len(vs)-1]
			if last.obj == nil {
				delete(keys, k)
			} else {
				keys[k] = []version{last}
			}
		}
	}
}

func (s *store) currentRV() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rv
}

// snapshotLocked returns the objects of res as of revision rv, sorted by
// key (etcd's order). Called with s.mu held; rv must be >= s.compacted.
func (s *store) snapshotLocked(res *resource, rv uint64) []*stored {
	var out []*stored
	for _, vs := range s.keys[res] {
		i := sort.Search(len(vs), func(i int) bool { return vs[i].rv > rv }) - 1
		if i >= 0 && vs[i].obj != nil {
			out = append(out, vs[i].obj)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key() < out[j].key() })
	return out
}

// get returns the current version of ns/name or nil.
func (s *store) get(res *resource, ns, name string) *stored {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latest(res, ns+"/"+name)
}

// watchStart is what a new watch begins with.
type watchStart struct {
	tooOld    bool   // from is older than the compacted history
	tooNew    bool   // from is newer than anything written
	compacted uint64 // for the error message
	current   uint64
	added     bool // w is registered and must be removed
}

// addWatcher registers w and queues what it must see first: for from == 0
// a synthetic ADDED per current object (what the real server does for
// resourceVersion "" or "0"), else the history after from.
func (s *store) addWatcher(w *watcher, from uint64, initial bool) watchStart {
	s.mu.Lock()
	st := s.addWatcherLocked(w, from, initial)
	s.mu.Unlock()
	if st.added && s.onChange != nil {
		s.onChange() // outside s.mu: it takes the server's lock
	}
	return st
}

func (s *store) addWatcherLocked(w *watcher, from uint64, initial bool) watchStart {
	st := watchStart{compacted: s.compacted, current: s.rv}
	switch {
	case initial:
		for _, o := range s.snapshotLocked(w.res, s.rv) {
			w.push(watchItem{ev: &event{typ: "ADDED", rv: o.rv, obj: o}})
		}
		w.startRV = s.rv
	case from < s.compacted:
		st.tooOld = true
		return st
	case from > s.rv:
		st.tooNew = true
		return st
	default:
		i := sort.Search(len(s.events), func(i int) bool { return s.events[i].rv > from })
		for _, ev := range s.events[i:] {
			if ev.obj.res == w.res {
				w.push(watchItem{ev: ev})
			}
		}
		w.startRV = from
	}
	s.watchers[w] = struct{}{}
	st.added = true
	return st
}

func (s *store) removeWatcher(w *watcher) {
	s.mu.Lock()
	delete(s.watchers, w)
	s.mu.Unlock()
	if s.onChange != nil {
		s.onChange()
	}
}

func (s *store) watcherCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.watchers)
}

// bookmark queues a BOOKMARK at the current revision for every watcher
// that asked for them. It is queued behind the events already pending, so
// its revision never runs ahead of what the watcher has been sent.
func (s *store) bookmark() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for w := range s.watchers {
		if w.bookmarks {
			w.push(watchItem{bookmarkRV: s.rv})
		}
	}
}

// closeWatches ends every open watch stream cleanly.
func (s *store) closeWatches() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for w := range s.watchers {
		w.end()
	}
}
