package services

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc/shm"
)

// replayObject is service i as bench/compare.sh's replay lists it
// (internal/replay): namespace team-(i%50), one port http 8080, three
// ready IPv4 addresses; an EndpointSlice (name service-i-x7k2p) when slice.
func replayObject(i int, slice bool) *object {
	ns, name := fmt.Sprintf("team-%d", i%50), fmt.Sprintf("service-%d", i)
	o := &object{namespace: ns, name: name}
	var addrs []string
	for a := range 3 {
		addrs = append(addrs, fmt.Sprintf("10.%d.%d.%d", i%250, (i/250)%250, a+1))
	}
	if !slice {
		o.subsets = []subset{{addresses: addrs, ports: []port{{name: "http", number: 8080}}}}
		return o
	}
	o.name, o.serviceName, o.addressType = name+"-x7k2p", name, "IPv4"
	o.ports = []port{{name: "http", number: 8080}}
	for _, a := range addrs {
		o.endpoints = append(o.endpoints, endpoint{addresses: []string{a}, ready: true, serving: true})
	}
	return o
}

// stateBytes reports the live heap that n services of replayObject cost
// in the slice state newState makes, per service (B/service), after a GC.
func stateBytes(b *testing.B, n int, slice bool, newState func() *sliceState) {
	objects := make([]*object, n)
	for i := range objects {
		objects[i] = replayObject(i, slice)
	}
	var before, after runtime.MemStats
	var s *sliceState
	for b.Loop() {
		s = nil
		runtime.GC()
		runtime.ReadMemStats(&before)
		s = newState()
		for _, o := range objects {
			if err := s.set(o, func(string) {}); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
	}
	if !s.has(fmt.Sprintf("team-%d/service-%d", (n-1)%50, n-1)) {
		b.Fatal("the last service is missing")
	}
	runtime.KeepAlive(objects)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "B/service")
}

// BenchmarkSliceStateBytes: what kdisc keeps per EndpointSlice at 10k
// slices of one service each (bench/compare.sh's 10k EndpointSlices).
func BenchmarkSliceStateBytes(b *testing.B) {
	stateBytes(b, 10_000, true, func() *sliceState { return newSliceState(50) })
}

// BenchmarkEndpointsStateBytes: what a Sink of Endpoints keeps per
// service at 10k Endpoints objects, written into a real table (a mapping,
// not heap): the table is the state, so about nothing.
func BenchmarkEndpointsStateBytes(b *testing.B) {
	const n = 10_000
	objects := make([]*object, n)
	for i := range objects {
		objects[i] = replayObject(i, false)
	}
	var before, after runtime.MemStats
	for b.Loop() {
		w, err := shm.Create("", 16<<20)
		if err != nil {
			b.Fatal(err)
		}
		s := New(Options{Weight: 50, Counters: newCounters()}, w)
		runtime.GC()
		runtime.ReadMemStats(&before)
		for _, o := range objects {
			if err := s.apply(o, false); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(s)
		if got := w.Stats().Entries; got != n {
			b.Fatalf("%d services in the table, want %d", got, n)
		}
		w.Close()
	}
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/n, "B/service")
}

// The dense slice state (one chain of slices per service, shared port
// sets, FQDN names and node detail out of line) answers as a state built
// afresh from the slices that are there now, through any sequence of
// adds, changes, moves between services and deletions.
func TestSliceStateAgreesWithFreshBuild(t *testing.T) {
	rnd := rand.New(rand.NewPCG(15, 7))
	portChoices := [][]port{{{name: "http", number: 8080}}, {{name: "a1", number: 2}}, {{name: "a", number: 12}},
		{{name: "http", number: 8080}, {name: "metrics", number: 9090}}, {{name: "web", number: 8081}}}
	// (A port name has one number here: with two, the declared number of a
	// port without nodes is its first slice's, which depends on order.)
	newObject := func(i int) *object {
		o := &object{namespace: "ns", name: fmt.Sprintf("s%d", i), addressType: "IPv4", ports: portChoices[rnd.IntN(len(portChoices))]}
		if rnd.IntN(8) > 0 {
			o.serviceName = fmt.Sprintf("svc%d", rnd.IntN(4))
		}
		switch rnd.IntN(5) {
		case 0:
			o.addressType = "FQDN"
		case 1:
			o.addressType = "IPv6"
		}
		for range rnd.IntN(4) {
			e := endpoint{ready: rnd.IntN(3) > 0, serving: true, terminating: rnd.IntN(4) == 0}
			switch o.addressType {
			case "FQDN":
				e.addresses = []string{fmt.Sprintf("h%d.example", rnd.IntN(5))}
			case "IPv6":
				e.addresses = []string{fmt.Sprintf("fd00::%d", 1+rnd.IntN(5))}
			default:
				e.addresses = []string{fmt.Sprintf("10.0.0.%d", 1+rnd.IntN(5))}
			}
			if rnd.IntN(3) == 0 {
				e.info = &placement{nodeName: fmt.Sprintf("n%d", rnd.IntN(3))}
			}
			o.endpoints = append(o.endpoints, e)
		}
		return o
	}
	for _, detail := range []bool{false, true} {
		s := newSliceState(50)
		s.withDetail = detail
		now := map[int]*object{}
		for step := range 3000 {
			i := rnd.IntN(12)
			if rnd.IntN(4) == 0 {
				if o, ok := now[i]; ok {
					s.remove(o, func(string) {})
					delete(now, i)
				}
			} else {
				o := newObject(i)
				require.NoError(t, s.set(o, func(string) {}))
				now[i] = o
			}
			if step%10 != 0 && step < 2990 {
				continue
			}
			fresh := newSliceState(50)
			fresh.withDetail = detail
			for _, o := range now {
				require.NoError(t, fresh.set(o, func(string) {}))
			}
			// Carried over, as a relist does.
			carried := newSliceState(50)
			carried.withDetail = detail
			for _, o := range now {
				carried.carry(s, o)
			}
			for k := range 4 {
				key := fmt.Sprintf("ns/svc%d", k)
				want, wantOK := fresh.value(key)
				want = slices.Clone(want)
				wantDetail := fresh.detail(key)
				for _, st := range []*sliceState{s, carried} {
					got, ok := st.value(key)
					require.Equal(t, wantOK, ok, "step %d %s", step, key)
					require.Equal(t, want, got, "step %d %s", step, key)
					require.Equal(t, wantOK, st.has(key))
					require.Equal(t, string(wantDetail), string(st.detail(key)), "step %d %s", step, key)
				}
			}
		}
	}
}
