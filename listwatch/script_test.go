package listwatch

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc/apiserver"
	"github.com/kdisc/kdisc/shm"
)

// scriptLW is a ListerWatcher that answers each call with the next step
// of a script, and records every call with the fake clock's time. Once
// the script is used up, calls block until their context ends.
type scriptLW struct {
	t     *testing.T
	clock *fakeClock

	mu    sync.Mutex
	steps []step
	calls []call
	open  int // watch streams open now
	block int // calls blocked (script used up, or a stream holding)
}

// step answers one List or one Watch call.
type step struct {
	verb string // VerbList, VerbWatch or verbWatchList

	// List: the items and the page's metadata, or err.
	items []string
	meta  ListMeta

	// Watch: events, then end (io.EOF for a clean end; nil: hold the
	// stream open until the context ends). err fails the request itself.
	events []Event
	end    error

	err error
}

type call struct {
	verb  string
	list  ListOptions
	watch WatchOptions
	at    time.Time
}

func newScript(t *testing.T, clock *fakeClock, steps ...step) *scriptLW {
	return &scriptLW{t: t, clock: clock, steps: steps}
}

func (s *scriptLW) add(steps ...step) {
	s.mu.Lock()
	s.steps = append(s.steps, steps...)
	s.mu.Unlock()
}

func (s *scriptLW) pop(c call) (step, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.at = s.clock.Now()
	s.calls = append(s.calls, c)
	if len(s.steps) == 0 {
		return step{}, false
	}
	st := s.steps[0]
	s.steps = s.steps[1:]
	if st.verb != c.verb {
		s.t.Errorf("call %d: %s, the script expected %s", len(s.calls), c.verb, st.verb)
	}
	return st, true
}

func (s *scriptLW) hold(ctx context.Context) error {
	s.mu.Lock()
	s.block++
	s.mu.Unlock()
	<-ctx.Done()
	s.mu.Lock()
	s.block--
	s.mu.Unlock()
	return ctx.Err()
}

func (s *scriptLW) List(ctx context.Context, o ListOptions, item func(raw []byte, proto bool)) (ListMeta, error) {
	st, ok := s.pop(call{verb: VerbList, list: o})
	if !ok {
		return ListMeta{}, s.hold(ctx)
	}
	if st.err != nil {
		return ListMeta{}, st.err
	}
	for _, it := range st.items {
		item([]byte(it), false)
	}
	return st.meta, nil
}

// verbWatchList is a script's name for a Watch with SendInitialEvents (a
// streaming list), so that a script says which of the two it expects.
const verbWatchList = "watchlist"

func (s *scriptLW) Watch(ctx context.Context, o WatchOptions) (EventStream, error) {
	verb := VerbWatch
	if o.SendInitialEvents {
		verb = verbWatchList
	}
	st, ok := s.pop(call{verb: verb, watch: o})
	if !ok {
		return nil, s.hold(ctx)
	}
	if st.err != nil {
		return nil, st.err
	}
	s.mu.Lock()
	s.open++
	s.mu.Unlock()
	return &scriptStream{s: s, ctx: ctx, events: st.events, end: st.end}, nil
}

// getCalls returns a copy of the calls so far.
func (s *scriptLW) getCalls() []call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]call(nil), s.calls...)
}

func (s *scriptLW) count(verb string) (n int) {
	for _, c := range s.getCalls() {
		if c.verb == verb {
			n++
		}
	}
	return n
}

// blocked reports how many calls or streams wait for their context.
func (s *scriptLW) blocked() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.block
}

type scriptStream struct {
	s      *scriptLW
	ctx    context.Context
	events []Event
	end    error
	closed bool
}

func (st *scriptStream) Next(ev *Event) error {
	if st.ctx.Err() != nil {
		return st.ctx.Err()
	}
	if len(st.events) > 0 {
		ev.Type = st.events[0].Type
		ev.Object = append(ev.Object[:0], st.events[0].Object...)
		st.events = st.events[1:]
		return nil
	}
	if st.end != nil {
		return st.end
	}
	return st.s.hold(st.ctx)
}

func (st *scriptStream) Close() error {
	if !st.closed {
		st.closed = true
		st.s.mu.Lock()
		st.s.open--
		st.s.mu.Unlock()
	}
	return nil
}

// Script builders.

func listOK(rv string, items ...string) step {
	return step{verb: VerbList, items: items, meta: ListMeta{ResourceVersion: rv}}
}

func listPart(rv, cont string, items ...string) step {
	return step{verb: VerbList, items: items, meta: ListMeta{ResourceVersion: rv, Continue: cont}}
}

func listErr(err error) step { return step{verb: VerbList, err: err} }

func watchErr(err error) step { return step{verb: VerbWatch, err: err} }

// watchList opens a streaming list that delivers events (the initial
// ADDED events, initialEnd, then watch events) and then ends with end
// (nil: stays open).
func watchList(end error, events ...Event) step {
	return step{verb: verbWatchList, events: events, end: end}
}

func watchListErr(err error) step { return step{verb: verbWatchList, err: err} }

// initialEnd is the bookmark that ends a streaming list's initial events.
func initialEnd(rv string) Event {
	return ev("BOOKMARK", `{"kind":"Endpoints","apiVersion":"v1","metadata":{"resourceVersion":"`+rv+`","creationTimestamp":null,"annotations":{"k8s.io/initial-events-end":"true"}}}`)
}

// watchEvents opens a stream that delivers events and then ends with end
// (nil: stays open).
func watchEvents(end error, events ...Event) step {
	return step{verb: VerbWatch, events: events, end: end}
}

func epJSON(ns, name, rv string, ips ...string) string {
	addrs := ""
	for i, ip := range ips {
		if i > 0 {
			addrs += ","
		}
		addrs += `{"ip":"` + ip + `"}`
	}
	subsets := "[]"
	if len(ips) > 0 {
		subsets = `[{"addresses":[` + addrs + `],"ports":[{"name":"http","port":80}]}]`
	}
	return fmt.Sprintf(`{"metadata":{"name":%q,"namespace":%q,"resourceVersion":%q},"subsets":%s}`, name, ns, rv, subsets)
}

func ev(typ, obj string) Event { return Event{Type: typ, Object: []byte(obj)} }

func bookmark(rv string) Event {
	return ev("BOOKMARK", `{"kind":"Endpoints","apiVersion":"v1","metadata":{"resourceVersion":"`+rv+`"}}`)
}

// errorEvent is a watch ERROR event carrying a Status.
func errorEvent(code int, reason, message string, details string) Event {
	obj := fmt.Sprintf(`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":%q,"reason":%q,"code":%d`, message, reason, code)
	if details != "" {
		obj += `,"details":` + details
	}
	return ev("ERROR", obj+"}")
}

func statusErr(code int, reason, message string) *apiserver.StatusError {
	return &apiserver.StatusError{Code: code, Reason: reason, Message: message}
}

var _ = io.EOF

// loop is a Watcher run by a test with a script and a fake clock.
type loop struct {
	t     *testing.T
	w     *Watcher
	lw    *scriptLW
	clock *fakeClock
	table *shm.Writer
	store Store
}

// scriptOptions are the production defaults, with a quiet logger, but
// paginated lists (the streaming list's tests turn it on).
func scriptOptions() Options {
	return Options{
		NoStreamingList: true,
		Weight:          50,
		Logger:          slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError + 4})),
	}
}

// runScript starts a Watcher on lw with options o (Clock, ListerWatcher
// and Store filled in unless set) and stops it at the test's end.
func runScript(t *testing.T, o Options, steps ...step) *loop {
	t.Helper()
	clock := newFakeClock()
	lw := newScript(t, clock, steps...)
	table, err := shm.Create("", 1<<20)
	require.NoError(t, err)
	o.Clock, o.ListerWatcher = clock, lw
	if o.Store == nil {
		o.Store = table
	}
	l := &loop{t: t, w: New(o), lw: lw, clock: clock, table: table, store: o.Store}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		table.Close()
	})
	return l
}

// gaps returns the fake-clock time between successive calls.
func gaps(calls []call) []time.Duration {
	var out []time.Duration
	for i := 1; i < len(calls); i++ {
		out = append(out, calls[i].at.Sub(calls[i-1].at))
	}
	return out
}

func (l *loop) hosts(service string) []string {
	h := harness{table: l.table.Reader()}
	return h.hosts(service)
}
