package kdiscgrpc

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kdisc/kdisc"
	"github.com/kdisc/kdisc/config"
	"github.com/kdisc/kdisc/shm"
	"google.golang.org/grpc/resolver"
)

// The tables here are written with package shm, as `kdisc run` writes
// them, into files that kdisc.Attach reads: the resolver meets the same
// Discovery a client beside a real `kdisc run` does.

// wait is how long a test waits for a state before it fails; the times
// that matter are measured and asserted separately.
const wait = 10 * time.Second

// tables is an attached Discovery and the writers of its tables, one per
// cluster id ("" in single mode).
type tables struct {
	dir     string
	cfg     *config.Config
	d       *kdisc.Discovery
	writers map[string]*shm.Writer
}

// newTables configures the clusters ids (none: single mode), creates
// their tables (not ready), as `kdisc run` does at start, and attaches to
// them. With lazy it attaches before any table exists, as a client started
// before `kdisc run` does; create makes them later.
func newTables(t *testing.T, lazy bool, ids ...string) *tables {
	t.Helper()
	src := "discovery:\n  kubernetes:\n    service: {host: 127.0.0.1, port: 6443}\n    client: {token: unused}\n"
	if len(ids) > 0 {
		src = "discovery:\n  kubernetes:\n"
		for _, id := range ids {
			src += fmt.Sprintf("    - id: %s\n      service: {host: 127.0.0.1, port: 6443}\n      client: {token: unused}\n", id)
		}
	}
	cfg, err := config.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	tb := &tables{dir: t.TempDir(), cfg: cfg, writers: map[string]*shm.Writer{}}
	t.Cleanup(func() {
		for _, w := range tb.writers {
			w.Close()
		}
	})
	if !lazy {
		tb.create(t)
	}
	tb.d, err = kdisc.Attach(tb.dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tb.d.Close() })
	return tb
}

// create creates every cluster's table, as `kdisc run` does at start.
func (tb *tables) create(t *testing.T) {
	t.Helper()
	for _, cc := range tb.cfg.Clusters {
		w, err := shm.Create(filepath.Join(tb.dir, cc.TableName()), cc.SharedSizeBytes)
		if err != nil {
			t.Fatal(err)
		}
		tb.writers[cc.ID] = w
	}
}

func (tb *tables) w(id string) *shm.Writer { return tb.writers[id] }

// put stores key ("namespace/name") in cluster id's table with ports.
func (tb *tables) put(t *testing.T, id, key string, ports ...shm.Port) {
	t.Helper()
	for _, p := range ports {
		slices.SortFunc(p.Nodes, shm.Compare) // as kdisc run stores them
	}
	if err := tb.w(id).Put(key, ports); err != nil {
		t.Fatal(err)
	}
}

func port(name string, nodes ...kdisc.Node) shm.Port { return shm.Port{Name: name, Nodes: nodes} }

// node is an IP node; addr is "ip:port".
func node(t *testing.T, addr string, weight uint32) kdisc.Node {
	t.Helper()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return kdisc.Node{Addr: ap.Addr(), Port: ap.Port(), Weight: weight}
}

// looks records the answers a Builder's resolvers looked up, so that a
// test can wait until a resolver has seen a state (and so would have told
// the channel about it).
type looks struct {
	mu   sync.Mutex
	seen []kdisc.Answer
}

func watchLooks(b *Builder) *looks {
	l := &looks{}
	b.looked = func(_ string, a kdisc.Answer) {
		l.mu.Lock()
		l.seen = append(l.seen, a)
		l.mu.Unlock()
	}
	return l
}

// mark returns how many looks there were so far.
func (l *looks) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.seen)
}

// waitFor waits for a look after mark that answered a.
func (l *looks) waitFor(t *testing.T, mark int, a kdisc.Answer) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("a look answering %s", a), func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return slices.Contains(l.seen[mark:], a)
	})
}

// waitUntil polls cond until it holds, failing the test after wait.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(wait); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("after %v, still waiting for %s", wait, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// recorder is a resolver.ClientConn that records what a resolver tells
// it. Any other method would panic: the resolver must not call them.
type recorder struct {
	resolver.ClientConn
	t      *testing.T
	mu     sync.Mutex
	events []event
	closed bool
}

// event is one call: UpdateState (state) or ReportError (err).
type event struct {
	state *resolver.State
	err   error
	at    time.Time
}

func (r *recorder) UpdateState(s resolver.State) error {
	r.add(event{state: &s})
	return nil
}

func (r *recorder) ReportError(err error) { r.add(event{err: err}) }

func (r *recorder) add(e event) {
	e.at = time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		r.t.Errorf("resolver called the channel after Close: %+v", e)
	}
	r.events = append(r.events, e)
}

func (r *recorder) all() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// waitEvents waits until n events were recorded and returns them.
func (r *recorder) waitEvents(t *testing.T, n int) []event {
	t.Helper()
	waitUntil(t, fmt.Sprintf("%d calls to the channel", n), func() bool { return len(r.all()) >= n })
	return r.all()
}

// build starts a resolver for target on a recorder, closed at cleanup.
func build(t *testing.T, b *Builder, target string) (*recorder, resolver.Resolver) {
	t.Helper()
	rec := &recorder{t: t}
	r, err := b.Build(parse(t, target), rec, resolver.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeResolver(rec, r) })
	return rec, r
}

var closeOnce sync.Map

func closeResolver(rec *recorder, r resolver.Resolver) {
	if _, done := closeOnce.LoadOrStore(r, true); done {
		return
	}
	r.Close()
	rec.mu.Lock()
	rec.closed = true
	rec.mu.Unlock()
}

// addrs is the "host:port" of each endpoint of s, with its weight.
func addrs(t *testing.T, s *resolver.State) []string {
	t.Helper()
	var out []string
	for i, ep := range s.Endpoints {
		w, ok := Weight(ep.Attributes)
		if !ok || len(ep.Addresses) != 1 {
			t.Fatalf("endpoint %d: %v: want one address and a weight", i, ep)
		}
		a := s.Addresses[i]
		if aw, ok := Weight(a.BalancerAttributes); !ok || aw != w || a.Addr != ep.Addresses[0].Addr {
			t.Fatalf("address %d %v disagrees with endpoint %v", i, a, ep)
		}
		out = append(out, fmt.Sprintf("%s w=%d", ep.Addresses[0].Addr, w))
	}
	if len(s.Addresses) != len(s.Endpoints) {
		t.Fatalf("%d addresses, %d endpoints", len(s.Addresses), len(s.Endpoints))
	}
	return out
}

// stalls records the time the machine withheld from this process: a
// goroutine asks to run every millisecond, and a run that comes over
// stallAfter late means no code of this process ran for that long (a
// loaded CI machine, a GC pause under -race). Shorter delays are not
// counted: the test's own goroutines cause them (Go preempts a busy
// goroutine every 10 ms), and the resolver must cope with those. A
// latency the tests assert is the resolver's own once the stalls are
// taken out of it.
type stalls struct {
	mu   sync.Mutex
	gaps [][2]time.Time // each: from when a run was due to when it came
}

const stallAfter = 20 * time.Millisecond

// meterStalls starts recording stalls until the test ends.
func meterStalls(t *testing.T) *stalls {
	s := &stalls{}
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		last := time.Now()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			now := time.Now()
			if due := last.Add(time.Millisecond); now.Sub(due) > stallAfter {
				s.mu.Lock()
				s.gaps = append(s.gaps, [2]time.Time{due, now})
				s.mu.Unlock()
			}
			last = now
		}
	}()
	t.Cleanup(func() { close(done); <-stopped })
	return s
}

// within is how much of from..to was stalled.
func (s *stalls) within(from, to time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var sum time.Duration
	for _, g := range s.gaps {
		if a, b := maxTime(g[0], from), minTime(g[1], to); b.After(a) {
			sum += b.Sub(a)
		}
	}
	return sum
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
