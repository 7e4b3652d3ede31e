package kdiscgrpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kdisc/kdisc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/roundrobin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"
)

// These tests run a real grpc-go client against real gRPC servers on
// loopback, each serving grpc.health.v1.Health.

// server is a gRPC server on loopback that counts the calls it serves.
type server struct {
	addr      string
	calls     atomic.Int64
	authority atomic.Value // of the last call
}

func startServers(t *testing.T, n int) []*server {
	t.Helper()
	var out []*server
	for range n {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := &server{addr: lis.Addr().String()}
		gs := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			s.calls.Add(1)
			md, _ := metadata.FromIncomingContext(ctx)
			s.authority.Store(strings.Join(md[":authority"], ","))
			return h(ctx, req)
		}))
		healthpb.RegisterHealthServer(gs, health.NewServer())
		go gs.Serve(lis)
		t.Cleanup(gs.Stop)
		out = append(out, s)
	}
	return out
}

// nodesOf is the table's nodes for servers, weight 1.
func nodesOf(t *testing.T, servers ...*server) []kdisc.Node {
	var nodes []kdisc.Node
	for _, s := range servers {
		nodes = append(nodes, node(t, s.addr, 1))
	}
	return nodes
}

const roundRobin = `{"loadBalancingConfig":[{"round_robin":{}}]}`

// dial connects a client to target through b with the service config sc.
func dial(t *testing.T, b resolver.Builder, target, sc string) healthpb.HealthClient {
	t.Helper()
	conn, err := grpc.NewClient(target,
		grpc.WithResolvers(b),
		grpc.WithDefaultServiceConfig(sc),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return healthpb.NewHealthClient(conn)
}

// call is one RPC: when it started, which server answered ("" on error),
// and its error.
type call struct {
	start time.Time
	addr  string
	err   error
}

func check(c healthpb.HealthClient, timeout time.Duration) call {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var p peer.Peer
	start := time.Now()
	_, err := c.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p))
	cl := call{start: start, err: err}
	if err == nil {
		cl.addr = p.Addr.String()
	}
	return cl
}

// waitServed calls until the last len(want)*4 calls all succeeded and were
// served by want, each at least once.
func waitServed(t *testing.T, c healthpb.HealthClient, want ...*server) {
	t.Helper()
	var recent []string
	waitUntil(t, fmt.Sprintf("calls spread over %d servers", len(want)), func() bool {
		cl := check(c, wait)
		recent = append(recent, cl.addr)
		if n := len(want) * 4; len(recent) > n {
			recent = recent[len(recent)-n:]
		}
		return servedBy(recent, want) && len(recent) == len(want)*4
	})
}

// servedBy says whether addrs are all of servers, each at least once.
func servedBy(addrs []string, servers []*server) bool {
	for _, s := range servers {
		if !slices.Contains(addrs, s.addr) {
			return false
		}
	}
	return !slices.ContainsFunc(addrs, func(a string) bool {
		return !slices.ContainsFunc(servers, func(s *server) bool { return s.addr == a })
	})
}

// TestTrafficFollowsTheTable: a round_robin client spreads calls over the
// table's servers; when the table changes, the resolver hands the channel
// the new servers within 100 ms, no call started after the channel took
// them reaches the one that left, the one that joined serves once a
// connection to it is up, and Empty fails calls fast.
func TestTrafficFollowsTheTable(t *testing.T) {
	servers := startServers(t, 3)
	s0, s1, s2 := servers[0], servers[1], servers[2]
	tb := newTables(t, false)
	tb.put(t, "", "default/echo", port("grpc", nodesOf(t, s0, s1)...))
	tb.w("").SetReady(true)
	b := &timedBuilder{Builder: NewBuilder(tb.d)}
	c := dial(t, b, "kdisc:///default/echo:grpc", roundRobin)

	waitServed(t, c, s0, s1)
	if n := s2.calls.Load(); n != 0 {
		t.Fatalf("s2 is not in the table but served %d calls", n)
	}

	// s0 leaves, s2 joins. Calls run back to back until they settle.
	stalled := meterStalls(t)
	changed := time.Now()
	tb.put(t, "", "default/echo", port("grpc", nodesOf(t, s1, s2)...))
	var calls []call
	var firstS2 time.Time
	for deadline := changed.Add(wait); ; {
		cl := check(c, wait)
		if cl.err != nil {
			t.Fatalf("call during the change: %v", cl.err)
		}
		calls = append(calls, cl)
		if cl.addr == s2.addr && firstS2.IsZero() {
			firstS2 = cl.start
		}
		// Settled: s2 served, and the last 20 calls went to s1 and s2 only.
		if !firstS2.IsZero() && len(calls) >= 20 && servedBy(addrsOf(calls[len(calls)-20:]), []*server{s1, s2}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v, traffic has not moved to s1 and s2", wait)
		}
	}
	up := b.waitUpdate(t, s1.addr, s2.addr)
	var lastS0 time.Time
	for _, cl := range calls {
		if cl.addr == s0.addr {
			lastS0 = cl.start
		}
	}
	handover, handoverStalled := up.called.Sub(changed), stalled.within(changed, up.called)
	connect, connectStalled := firstS2.Sub(up.applied), stalled.within(up.applied, firstS2)
	t.Logf("after the change: the resolver handed s1 and s2 to the channel %v later (%v of it stalled), which took them in %v; "+
		"s2 served %v after that (%v stalled); s0's last call started %v after the change (%d calls)",
		handover, handoverStalled, up.applied.Sub(up.called), connect, connectStalled, lastS0.Sub(changed), len(calls))
	// kdisc's part, timed: from the table's change to the resolver's
	// UpdateState (OnChange's 10 ms poll and a lookup), less the time the
	// machine did not run this process at all.
	if d := handover - handoverStalled; d > 100*time.Millisecond {
		t.Errorf("the resolver handed the change to the channel %v after it (%v more stalled), want within 100ms", d, handoverStalled)
	}
	// grpc-go applies a resolver's state before UpdateState returns (the
	// balancer builds its picker in that call), so this is an order, not a
	// time: no call that started after it may reach s0.
	if lastS0.After(up.applied) {
		t.Errorf("s0 left, yet a call that started %v after the channel took the change reached it", lastS0.Sub(up.applied))
	}
	// s2 serves once grpc-go has connected to it: a TCP connect and an
	// HTTP/2 handshake on loopback, goroutines of grpc-go's that a loaded
	// 2-core CI machine under -race can delay past 100 ms beyond the
	// stalls measured; a second still tells a resolver that followed the
	// change from one that did not.
	if d := connect - connectStalled; d > time.Second {
		t.Errorf("s2 served its first call %v after the channel took the change (%v more stalled), want within 1s", d, connectStalled)
	}

	// The server that left serves nothing more.
	left := s0.calls.Load()
	for range 60 {
		if cl := check(c, wait); cl.err != nil || cl.addr == s0.addr {
			t.Fatalf("after the change: %+v", cl)
		}
	}
	if n := s0.calls.Load(); n != left {
		t.Errorf("s0 left the table but served %d more calls", n-left)
	}
	if s1.calls.Load() == 0 || s2.calls.Load() == 0 {
		t.Errorf("s1 and s2 should share the calls: %d, %d", s1.calls.Load(), s2.calls.Load())
	}

	// Empty: calls fail fast as UNAVAILABLE, well before their deadline.
	changed = time.Now()
	tb.put(t, "", "default/echo", port("grpc"))
	var cl call
	waitUntil(t, "a call failing as UNAVAILABLE", func() bool {
		cl = check(c, wait)
		return cl.err != nil
	})
	t.Logf("empty: calls fail %v after the change: %v", time.Since(changed), cl.err)
	if status.Code(cl.err) != codes.Unavailable || time.Since(cl.start) > wait/2 {
		t.Errorf("empty: want a fast UNAVAILABLE, got %v after %v", cl.err, time.Since(cl.start))
	}

	// Found again: calls reach the new nodes.
	tb.put(t, "", "default/echo", port("grpc", nodesOf(t, s0)...))
	waitServed(t, c, s0)
}

// timedBuilder is a Builder whose resolvers' UpdateState calls are timed:
// when a resolver made one, and when it returned, the channel having
// applied the state.
type timedBuilder struct {
	*Builder
	mu      sync.Mutex
	updates []timedUpdate
}

type timedUpdate struct {
	addrs           []string // sorted
	called, applied time.Time
}

func (b *timedBuilder) Build(target resolver.Target, cc resolver.ClientConn, o resolver.BuildOptions) (resolver.Resolver, error) {
	return b.Builder.Build(target, &timedConn{ClientConn: cc, b: b}, o)
}

type timedConn struct {
	resolver.ClientConn
	b *timedBuilder
}

func (c *timedConn) UpdateState(s resolver.State) error {
	called := time.Now()
	err := c.ClientConn.UpdateState(s)
	up := timedUpdate{called: called, applied: time.Now()}
	for _, a := range s.Addresses {
		up.addrs = append(up.addrs, a.Addr)
	}
	slices.Sort(up.addrs)
	c.b.mu.Lock()
	c.b.updates = append(c.b.updates, up)
	c.b.mu.Unlock()
	return err
}

// waitUpdate waits for the first update that carried exactly addrs.
func (b *timedBuilder) waitUpdate(t *testing.T, addrs ...string) timedUpdate {
	t.Helper()
	addrs = slices.Sorted(slices.Values(addrs))
	var found timedUpdate
	waitUntil(t, fmt.Sprintf("an update with %q", addrs), func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		i := slices.IndexFunc(b.updates, func(u timedUpdate) bool { return slices.Equal(u.addrs, addrs) })
		if i >= 0 {
			found = b.updates[i]
		}
		return i >= 0
	})
	return found
}

func addrsOf(calls []call) []string {
	var out []string
	for _, cl := range calls {
		out = append(out, cl.addr)
	}
	return out
}

// An unknown service fails calls fast as UNAVAILABLE. round_robin does not
// pass a resolver error on (it says "no children to pick from");
// pick_first quotes it, naming the service.
func TestUnknownServiceFailsCallsFast(t *testing.T) {
	servers := startServers(t, 1)
	tb := newTables(t, false)
	tb.put(t, "", "default/echo", port("grpc", nodesOf(t, servers...)...))
	tb.w("").SetReady(true)
	b := NewBuilder(tb.d)

	for _, sc := range []string{roundRobin, `{"loadBalancingConfig":[{"pick_first":{}}]}`} {
		cl := check(dial(t, b, "kdisc:///default/nope:grpc", sc), wait)
		if status.Code(cl.err) != codes.Unavailable || time.Since(cl.start) > wait/2 {
			t.Errorf("%s: want a fast UNAVAILABLE, got %v after %v", sc, cl.err, time.Since(cl.start))
		}
		if strings.Contains(sc, "pick_first") && !strings.Contains(fmt.Sprint(cl.err), "default/nope:grpc") {
			t.Errorf("pick_first: want the error to name the service, got %v", cl.err)
		}
	}
}

// A service that goes unknown after it was found is a resolver error, and
// grpc-go keeps a channel's endpoints through resolver errors: calls go on
// to the last servers (until those fail), as with any resolver.
func TestUnknownAfterFoundKeepsTheLastServers(t *testing.T) {
	servers := startServers(t, 2)
	tb := newTables(t, false)
	tb.put(t, "", "default/echo", port("grpc", nodesOf(t, servers...)...))
	tb.w("").SetReady(true)
	b := NewBuilder(tb.d)
	seen := watchLooks(b)
	c := dial(t, b, "kdisc:///default/echo:grpc", roundRobin)
	waitServed(t, c, servers...)

	mark := seen.mark()
	tb.w("").Delete("default/echo")
	seen.waitFor(t, mark, kdisc.Unknown)
	keepsServing(t, c, "unknown after found", servers...)
}

// keepsServing makes 20 calls, which must all succeed, spread over
// servers.
func keepsServing(t *testing.T, c healthpb.HealthClient, when string, servers ...*server) {
	t.Helper()
	var addrs []string
	for range 20 {
		cl := check(c, wait)
		if cl.err != nil {
			t.Fatalf("%s: a call failed: %v", when, cl.err)
		}
		addrs = append(addrs, cl.addr)
	}
	if !servedBy(addrs, servers) {
		t.Errorf("%s: want the calls spread over the last servers, got %q", when, addrs)
	}
}

// A client that starts before kdisc run has its table waits for it: its
// first call, started while the table does not exist, is served once
// kdisc run has listed the service.
func TestCallsWaitUntilTheTableIsReady(t *testing.T) {
	servers := startServers(t, 1)
	tb := newTables(t, true)
	b := NewBuilder(tb.d)
	seen := watchLooks(b)
	c := dial(t, b, "kdisc:///default/echo:grpc", roundRobin)

	done := make(chan call, 1)
	go func() { done <- check(c, wait) }()
	seen.waitFor(t, 0, kdisc.NotReady) // the call is resolving

	tb.create(t)
	tb.put(t, "", "default/other", port("grpc", node(t, "127.0.0.1:1", 1)))
	mark := seen.mark()
	seen.waitFor(t, mark, kdisc.NotReady)
	select {
	case cl := <-done:
		t.Fatalf("the call ended while the table was not ready: %+v", cl)
	default:
	}

	tb.put(t, "", "default/echo", port("grpc", nodesOf(t, servers...)...))
	tb.w("").SetReady(true)
	if cl := <-done; cl.err != nil || cl.addr != servers[0].addr {
		t.Errorf("want the call served once the table is ready, got %+v", cl)
	}
}

// Not ready again keeps the last state: calls go on reaching the last
// known servers.
func TestCallsKeepTheLastServersWhileNotReady(t *testing.T) {
	servers := startServers(t, 2)
	tb := newTables(t, false)
	tb.put(t, "", "default/echo", port("grpc", nodesOf(t, servers...)...))
	tb.w("").SetReady(true)
	b := NewBuilder(tb.d)
	seen := watchLooks(b)
	c := dial(t, b, "kdisc:///default/echo:grpc", roundRobin)
	waitServed(t, c, servers...)

	tb.w("").SetReady(false) // a restarted kdisc run, still listing
	tb.w("").Delete("default/echo")
	mark := seen.mark()
	seen.waitFor(t, mark, kdisc.NotReady)
	keepsServing(t, c, "not ready", servers...)
}

// A malformed target fails its calls with the rule.
func TestMalformedTargetFailsCallsWithTheRule(t *testing.T) {
	tb := newTables(t, false)
	tb.w("").SetReady(true)
	cl := check(dial(t, NewBuilder(tb.d), "kdisc:///echo:grpc", roundRobin), wait)
	if cl.err == nil || !strings.Contains(cl.err.Error(), "want kdisc:///namespace/name:port") {
		t.Errorf("want the call to fail with the rule, got %v", cl.err)
	}
	if errors.Is(cl.err, context.DeadlineExceeded) {
		t.Errorf("want a fast failure, got %v", cl.err)
	}
}

// weightsSeen is a balancer for the test below: round_robin, recording the
// weight of each endpoint it is given, as a weighted balancer reads them.
type weightsSeen struct {
	balancer.Balancer
	seen chan []string
}

const weightsSeenName = "kdisc_test_weights_seen"

var weightsSeenCh = make(chan []string, 16)

type weightsSeenBuilder struct{}

func (weightsSeenBuilder) Name() string { return weightsSeenName }

func (weightsSeenBuilder) Build(cc balancer.ClientConn, opts balancer.BuildOptions) balancer.Balancer {
	return &weightsSeen{Balancer: balancer.Get(roundrobin.Name).Build(cc, opts), seen: weightsSeenCh}
}

func (b *weightsSeen) UpdateClientConnState(s balancer.ClientConnState) error {
	var ws []string
	for _, ep := range s.ResolverState.Endpoints {
		w, ok := Weight(ep.Attributes)
		ws = append(ws, fmt.Sprintf("%s=%d,%v", ep.Addresses[0].Addr, w, ok))
	}
	b.seen <- ws
	return b.Balancer.UpdateClientConnState(s)
}

func init() { balancer.Register(weightsSeenBuilder{}) }

// The weights reach a balancer through grpc-go: each endpoint's
// Attributes carry them under WeightKey.
func TestWeightsReachTheBalancer(t *testing.T) {
	servers := startServers(t, 2)
	tb := newTables(t, false)
	tb.put(t, "", "default/echo", port("grpc", node(t, servers[0].addr, 30), node(t, servers[1].addr, 70)))
	tb.w("").SetReady(true)
	c := dial(t, NewBuilder(tb.d), "kdisc:///default/echo:grpc", `{"loadBalancingConfig":[{"`+weightsSeenName+`":{}}]}`)
	waitServed(t, c, servers...)

	var got []string
	select {
	case got = <-weightsSeenCh:
	case <-time.After(wait):
		t.Fatalf("after %v, the balancer has seen no state", wait)
	}
	want := []string{servers[0].addr + "=30,true", servers[1].addr + "=70,true"}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("the balancer saw %q, want %q", got, want)
	}
}

// Calls carry the Service's DNS name as their authority.
func TestCallsCarryTheServiceNameAsAuthority(t *testing.T) {
	servers := startServers(t, 1)
	tb := newTables(t, false)
	tb.put(t, "", "default/echo", port("grpc", nodesOf(t, servers...)...))
	tb.w("").SetReady(true)
	b := NewBuilder(tb.d)
	num := servers[0].addr[strings.LastIndexByte(servers[0].addr, ':')+1:]
	for target, want := range map[string]string{
		"kdisc:///default/echo:grpc":   "echo.default.svc",
		"kdisc:///default/echo:" + num: "echo.default.svc:" + num,
	} {
		if cl := check(dial(t, b, target, roundRobin), wait); cl.err != nil {
			t.Fatalf("%s: %v", target, cl.err)
		}
		if got := servers[0].authority.Load(); got != want {
			t.Errorf("%s: the server saw authority %q, want %q", target, got, want)
		}
	}
}
