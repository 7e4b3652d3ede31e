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
	// Of Lists: streaming lists (a watch with sendInitialEvents) and
	// paginated ones (LIST pages).
	StreamingLists, PaginatedLists atomic.Uint64
	Added, Modified                atomic.Uint64 // watch events applied, by type
	Deleted, Bookmarks             atomic.Uint64
	Skipped                        atomic.Uint64 // objects skipped, every reason (see SkippedByReason)
	TableFull                      atomic.Uint64 // updates refused by a full table
	LastEvent                      atomic.Int64  // unix nanoseconds of the last watch event, 0 before any
	// Truncated is how many services are served now from an Endpoints
	// object that the Endpoints controller truncated at 1,000 addresses
	// (endpoints.kubernetes.io/over-capacity: truncated): a gauge.
	Truncated atomic.Int64

	// Latency, in seconds (set by New; a nil Histogram counts nothing).
	// EventApply: from reading a watch event off the stream to its change
	// being in the table (visible to readers); object events only.
	// ListDuration: a whole successful LIST, every page, applied.
	// WatchDuration: how long each watch ran when it ended.
	EventApply, ListDuration, WatchDuration *Histogram

	skippedRefused atomic.Uint64 // of Skipped: services the table refused (not for being full)

	reqMu sync.Mutex
	reqs  map[requestKey]uint64
}

type requestKey struct{ verb, code string }

// Reasons an object or service is skipped, as SkippedByReason names them.
const (
	SkipMalformed = "malformed" // an object that does not decode or validate
	SkipRefused   = "refused"   // a service the table refused (other than full: see TableFull)
)

// SkippedByReason splits Skipped by reason (SkipMalformed, SkipRefused).
func (s *Stats) SkippedByReason() map[string]uint64 {
	refused := s.skippedRefused.Load()
	total := max(s.Skipped.Load(), refused)
	return map[string]uint64{SkipMalformed: total - refused, SkipRefused: refused}
}

// Bucket bounds of the latency histograms, in seconds.
var (
	// Applying one event is microseconds; the contract bound is 100 ms.
	eventApplyBuckets = []float64{1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 1}
	// A LIST of a small cluster takes milliseconds, of a big one minutes.
	listDurationBuckets = []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}
	// A healthy watch runs its timeout (5 to 10 min); short ones are trouble.
	watchDurationBuckets = []float64{1, 5, 15, 30, 60, 150, 300, 450, 600, 900, 1800}
)

func (s *Stats) initHistograms() {
	s.EventApply = NewHistogram(eventApplyBuckets...)
	s.ListDuration = NewHistogram(listDurationBuckets...)
	s.WatchDuration = NewHistogram(watchDurationBuckets...)
}

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
