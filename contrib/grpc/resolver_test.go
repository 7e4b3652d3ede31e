package kdiscgrpc

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kdisc/kdisc"
	"google.golang.org/grpc/resolver"
)

func parse(t *testing.T, target string) resolver.Target {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	return resolver.Target{URL: *u}
}

func TestFoundUpdatesStateWithEveryNodeAndItsWeight(t *testing.T) {
	tb := newTables(t, false)
	tb.put(t, "", "default/echo",
		port("grpc", node(t, "10.0.0.2:50051", 3), node(t, "10.0.0.1:50051", 1), node(t, "[fd00::1]:50051", 7),
			kdisc.Node{Name: "echo-0.example.test", Port: 50051, Weight: 2}),
		port("http", node(t, "10.0.0.9:80", 1)))
	tb.w("").SetReady(true)

	rec, _ := build(t, NewBuilder(tb.d), "kdisc:///default/echo:grpc")
	ev := rec.waitEvents(t, 1)[0]
	if ev.state == nil {
		t.Fatalf("want UpdateState, got ReportError(%v)", ev.err)
	}
	want := []string{"10.0.0.1:50051 w=1", "10.0.0.2:50051 w=3", "echo-0.example.test:50051 w=2", "[fd00::1]:50051 w=7"}
	if got := addrs(t, ev.state); !slices.Equal(got, want) {
		t.Errorf("state %q, want %q", got, want)
	}
}

func TestPortByNumberResolvesAsLookupDoes(t *testing.T) {
	tb := newTables(t, false)
	tb.put(t, "", "default/echo", port("grpc", node(t, "10.0.0.1:50051", 1)))
	tb.w("").SetReady(true)

	rec, _ := build(t, NewBuilder(tb.d), "kdisc:///default/echo:50051")
	ev := rec.waitEvents(t, 1)[0]
	if ev.state == nil || !slices.Equal(addrs(t, ev.state), []string{"10.0.0.1:50051 w=1"}) {
		t.Errorf("got %+v", ev)
	}
}

func TestEmptyUpdatesStateWithNoAddress(t *testing.T) {
	tb := newTables(t, false)
	tb.put(t, "", "default/echo", port("grpc"))
	tb.w("").SetReady(true)

	rec, _ := build(t, NewBuilder(tb.d), "kdisc:///default/echo:grpc")
	ev := rec.waitEvents(t, 1)[0]
	if ev.state == nil || len(ev.state.Endpoints) != 0 || len(ev.state.Addresses) != 0 {
		t.Errorf("want UpdateState with nothing, got %+v", ev)
	}
}

func TestUnknownReportsAnErrorNamingTheService(t *testing.T) {
	tb := newTables(t, false)
	tb.put(t, "", "default/echo", port("grpc", node(t, "10.0.0.1:50051", 1)))
	tb.w("").SetReady(true)

	for _, target := range []string{"kdisc:///default/nope:grpc", "kdisc:///default/echo:nope"} {
		rec, _ := build(t, NewBuilder(tb.d), target)
		ev := rec.waitEvents(t, 1)[0]
		service := strings.TrimPrefix(target, "kdisc:///")
		if ev.err == nil || !strings.Contains(ev.err.Error(), service) || !strings.Contains(ev.err.Error(), "unknown") {
			t.Errorf("%s: want ReportError naming %s as unknown, got %+v", target, service, ev)
		}
	}
}

// A client started before kdisc run hears nothing until the table is
// ready; then it hears the nodes.
func TestNotReadyTellsNothingUntilTheTableIsReady(t *testing.T) {
	tb := newTables(t, true) // no table file yet
	b := NewBuilder(tb.d)
	seen := watchLooks(b)
	rec, _ := build(t, b, "kdisc:///default/echo:grpc")
	seen.waitFor(t, 0, kdisc.NotReady)

	tb.create(t) // kdisc run starts: not ready, still listing
	mark := seen.mark()
	seen.waitFor(t, mark, kdisc.NotReady)
	tb.put(t, "", "default/other", port("grpc", node(t, "10.0.0.9:50051", 1)))
	mark = seen.mark()
	seen.waitFor(t, mark, kdisc.NotReady)

	tb.put(t, "", "default/echo", port("grpc", node(t, "10.0.0.1:50051", 1)))
	tb.w("").SetReady(true)
	ev := rec.waitEvents(t, 1)
	if len(ev) != 1 || ev[0].state == nil || !slices.Equal(addrs(t, ev[0].state), []string{"10.0.0.1:50051 w=1"}) {
		t.Errorf("want one UpdateState, the nodes, got %+v", ev)
	}
}

// Not ready again (a restarted kdisc run that has not listed the service
// yet) keeps the last state; readiness is followed although no entry
// changes when it comes.
func TestNotReadyKeepsTheLastState(t *testing.T) {
	tb := newTables(t, false)
	tb.put(t, "", "default/echo", port("grpc", node(t, "10.0.0.1:50051", 1)))
	tb.w("").SetReady(true)
	b := NewBuilder(tb.d)
	seen := watchLooks(b)
	rec, _ := build(t, b, "kdisc:///default/echo:grpc")
	rec.waitEvents(t, 1)

	tb.w("").SetReady(false)
	tb.w("").Delete("default/echo")
	mark := seen.mark()
	seen.waitFor(t, mark, kdisc.NotReady)
	if ev := rec.all(); len(ev) != 1 {
		t.Fatalf("not ready: want no update, got %+v", ev[1:])
	}

	tb.w("").SetReady(true) // the list is done: the service is gone
	ev := rec.waitEvents(t, 2)
	if len(ev) != 2 || ev[1].err == nil || !strings.Contains(ev[1].err.Error(), "default/echo:grpc") {
		t.Errorf("ready without the service: want ReportError, got %+v", ev[1:])
	}
}

func TestFollowsChangesWithinTheOnChangeDelay(t *testing.T) {
	tb := newTables(t, false)
	tb.put(t, "", "default/echo", port("grpc", node(t, "10.0.0.1:50051", 1)))
	tb.w("").SetReady(true)
	rec, _ := build(t, NewBuilder(tb.d), "kdisc:///default/echo:grpc")
	rec.waitEvents(t, 1)

	stalled := meterStalls(t)
	var worst, worstStalled time.Duration
	for i, nodes := range [][]kdisc.Node{
		{node(t, "10.0.0.1:50051", 1), node(t, "10.0.0.2:50051", 1)},
		{node(t, "10.0.0.2:50051", 5)}, // a weight alone changes
		{},                             // empty
		{node(t, "10.0.0.3:50051", 1)},
	} {
		start := time.Now()
		tb.put(t, "", "default/echo", port("grpc", nodes...))
		ev := rec.waitEvents(t, i+2)
		if len(ev) != i+2 || ev[i+1].state == nil || len(ev[i+1].state.Endpoints) != len(nodes) {
			t.Fatalf("change %d: want one UpdateState with %d nodes, got %+v", i, len(nodes), ev[1:])
		}
		// The resolver's own time: less the time the machine did not run
		// this process at all (see stalls).
		took, withheld := ev[i+1].at.Sub(start), stalled.within(start, ev[i+1].at)
		if took-withheld > worst {
			worst, worstStalled = took-withheld, withheld
		}
	}
	t.Logf("slowest change reached the channel in %v (and %v stalled)", worst, worstStalled)
	if worst > 100*time.Millisecond {
		t.Errorf("a change took %v (and %v stalled) to reach the channel, want within 100ms", worst, worstStalled)
	}
}

// A change to another port, or another service, tells the channel
// nothing: it has nothing new to hear.
func TestOtherPortsAndServicesTellNothing(t *testing.T) {
	tb := newTables(t, false)
	grpcPort := port("grpc", node(t, "10.0.0.1:50051", 1))
	tb.put(t, "", "default/echo", grpcPort, port("http", node(t, "10.0.0.1:80", 1)))
	tb.w("").SetReady(true)
	b := NewBuilder(tb.d)
	seen := watchLooks(b)
	rec, _ := build(t, b, "kdisc:///default/echo:grpc")
	rec.waitEvents(t, 1)

	mark := seen.mark()
	tb.put(t, "", "default/echo", grpcPort, port("http", node(t, "10.0.0.2:80", 1)))
	seen.waitFor(t, mark, kdisc.Found) // the resolver looked again
	tb.put(t, "", "default/other", port("grpc", node(t, "10.0.0.5:50051", 1)))
	tb.put(t, "", "default/echo", port("grpc", node(t, "10.0.0.4:50051", 1)))
	ev := rec.waitEvents(t, 2)
	if len(ev) != 2 || !slices.Equal(addrs(t, ev[1].state), []string{"10.0.0.4:50051 w=1"}) {
		t.Errorf("want the initial state, then only the grpc port's change, got %+v", ev)
	}
}

func TestMultiModeReadsTheNamedCluster(t *testing.T) {
	tb := newTables(t, false, "one", "two")
	tb.put(t, "one", "default/echo", port("grpc", node(t, "10.1.0.1:50051", 1)))
	tb.put(t, "two", "default/echo", port("grpc", node(t, "10.2.0.1:50051", 1)))
	tb.w("one").SetReady(true)
	tb.w("two").SetReady(true)

	rec, _ := build(t, NewBuilder(tb.d), "kdisc:///two/default/echo:grpc")
	ev := rec.waitEvents(t, 1)
	if ev[0].state == nil || !slices.Equal(addrs(t, ev[0].state), []string{"10.2.0.1:50051 w=1"}) {
		t.Fatalf("want cluster two's nodes, got %+v", ev[0])
	}
	tb.put(t, "one", "default/echo", port("grpc", node(t, "10.1.0.2:50051", 1)))
	tb.put(t, "two", "default/echo", port("grpc", node(t, "10.2.0.2:50051", 1)))
	ev = rec.waitEvents(t, 2)
	if len(ev) != 2 || !slices.Equal(addrs(t, ev[1].state), []string{"10.2.0.2:50051 w=1"}) {
		t.Errorf("want cluster two's change only, got %+v", ev[1:])
	}

	rec, _ = build(t, NewBuilder(tb.d), "kdisc:///three/default/echo:grpc")
	if ev := rec.waitEvents(t, 1)[0]; ev.err == nil || !strings.Contains(ev.err.Error(), "three/default/echo:grpc") {
		t.Errorf("unknown cluster: want ReportError naming it, got %+v", ev)
	}
}

func TestMalformedTargetsAreRefusedWithTheRule(t *testing.T) {
	tb := newTables(t, false)
	b := NewBuilder(tb.d)
	for _, target := range []string{
		"kdisc:///echo:grpc",
		"kdisc:///default/echo",
		"kdisc:///default/echo:",
		"kdisc:///default/:grpc",
		"kdisc:///a/b/c/d:grpc",
		"kdisc://host/default/echo:grpc",
	} {
		_, err := b.Build(parse(t, target), &recorder{t: t}, resolver.BuildOptions{})
		if err == nil || !strings.Contains(err.Error(), "want kdisc:///namespace/name:port") || !strings.Contains(err.Error(), target) {
			t.Errorf("%s: want an error naming it and the rule, got %v", target, err)
		}
	}
}

func TestAuthorityIsTheServiceDNSName(t *testing.T) {
	b := NewBuilder(nil)
	for target, want := range map[string]string{
		"kdisc:///default/echo:grpc":     "echo.default.svc",
		"kdisc:///default/echo:50051":    "echo.default.svc:50051",
		"kdisc:///two/default/echo:grpc": "echo.default.svc",
	} {
		if got := b.OverrideAuthority(parse(t, target)); got != want {
			t.Errorf("%s: authority %q, want %q", target, got, want)
		}
	}
}

// The Builder's one OnChange subscription ends with its last resolver and
// starts again with the next.
func TestSubscriptionEndsWithTheLastResolver(t *testing.T) {
	tb := newTables(t, false)
	tb.put(t, "", "default/echo", port("grpc", node(t, "10.0.0.1:50051", 1)))
	tb.w("").SetReady(true)
	b := NewBuilder(tb.d)
	subscribed := func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.stop != nil }

	rec1, r1 := build(t, b, "kdisc:///default/echo:grpc")
	rec2, r2 := build(t, b, "kdisc:///default/echo:grpc")
	rec1.waitEvents(t, 1)
	rec2.waitEvents(t, 1)
	closeResolver(rec1, r1)
	if !subscribed() {
		t.Fatal("one resolver left: want the subscription kept")
	}
	tb.put(t, "", "default/echo", port("grpc", node(t, "10.0.0.2:50051", 1)))
	rec2.waitEvents(t, 2)
	closeResolver(rec2, r2)
	if subscribed() {
		t.Fatal("no resolver left: want the subscription ended")
	}

	rec3, _ := build(t, b, "kdisc:///default/echo:grpc")
	rec3.waitEvents(t, 1)
	tb.put(t, "", "default/echo", port("grpc", node(t, "10.0.0.3:50051", 1)))
	if ev := rec3.waitEvents(t, 2); !slices.Equal(addrs(t, ev[1].state), []string{"10.0.0.3:50051 w=1"}) {
		t.Errorf("after resubscribing: got %+v", ev)
	}
}
