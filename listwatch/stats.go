package listwatch

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Stats counts what a Watcher did. Fields only grow; read them with Load.
type Stats struct {
	Lists, ListErrors    atomic.Uint64
	Watches, WatchErrors atomic.Uint64
	Relists              atomic.Uint64 // lists after a 410 Gone
	Added, Modified      atomic.Uint64 // watch events applied, by type
	Deleted, Bookmarks   atomic.Uint64
	Skipped              atomic.Uint64 // malformed objects skipped
	TableFull            atomic.Uint64 // updates refused by a full table
	LastEvent            atomic.Int64  // unix nanoseconds of the last watch event, 0 before any

	reqMu sync.Mutex
	reqs  map[requestKey]uint64
}

type requestKey struct{ verb, code string }

// RequestCount is how many requests of one verb (VerbList, VerbWatch) the
// apiserver answered with one HTTP code ("200", "410", ...; "error" when
// no answer came: refused, reset, TLS, timeout).
type RequestCount struct {
	Verb, Code string
	N          uint64
}

// Requests returns the request counts, sorted by verb then code. Only
// requests made over HTTP (Options.Client) are counted.
func (s *Stats) Requests() []RequestCount {
	s.reqMu.Lock()
	out := make([]RequestCount, 0, len(s.reqs))
	for k, n := range s.reqs {
		out = append(out, RequestCount{Verb: k.verb, Code: k.code, N: n})
	}
	s.reqMu.Unlock()
	slices.SortFunc(out, func(a, b RequestCount) int {
		return cmp.Or(cmp.Compare(a.Verb, b.Verb), cmp.Compare(a.Code, b.Code))
	})
	return out
}

func (s *Stats) countRequest(verb, code string) {
	s.reqMu.Lock()
	if s.reqs == nil {
		s.reqs = map[requestKey]uint64{}
	}
	s.reqs[requestKey{verb, code}]++
	s.reqMu.Unlock()
}

// Status is a Watcher's readiness, health and latest trouble.
type Status struct {
	Ready bool // the first full list has been applied (stays true)
	// Healthy: the list-watch works now, its last list or watch attempt
	// succeeded. False while the apiserver is unreachable or refuses.
	Healthy bool
	// LastSync is the time of the last successful list, or watch object
	// or bookmark event; zero before any.
	LastSync   time.Time
	ErrorClass ErrorClass // class of the last failure, "" after a success
	Error      string     // the last failure, "" after a success
}

type status struct {
	ready    atomic.Bool
	healthy  atomic.Bool
	lastSync atomic.Int64 // unix nanoseconds, 0 before any
	ok       atomic.Bool  // healthy and no error recorded: setOK has nothing to do
	mu       sync.Mutex
	err      string
	class    ErrorClass
}

func (s *status) get() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Ready: s.ready.Load(), Healthy: s.healthy.Load(), Error: s.err, ErrorClass: s.class}
	if ns := s.lastSync.Load(); ns != 0 {
		st.LastSync = time.Unix(0, ns)
	}
	return st
}

// setOK records a success: healthy, no error.
func (s *status) setOK() {
	if s.ok.Load() {
		return // the common case: events on a healthy watch
	}
	s.mu.Lock()
	s.err, s.class = "", ClassNone
	s.healthy.Store(true)
	s.ok.Store(true)
	s.mu.Unlock()
}

func (s *status) setFailure(class ErrorClass, msg string) {
	s.mu.Lock()
	s.err, s.class = msg, class
	s.healthy.Store(false)
	s.ok.Store(false)
	s.mu.Unlock()
}
