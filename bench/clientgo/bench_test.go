package clientgo

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kdisc/kdisc"
	"github.com/kdisc/kdisc/config"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

const (
	services = 1_000
	events   = 20_000
	weight   = 50
)

var marker = MarkerNamespace + "/" + MarkerName + ":http"

func TestMain(m *testing.M) {
	// Both sides LIST then WATCH: no streaming list (the fake refuses it
	// anyway, and client-go would fall back after one failed request).
	os.Setenv("KUBE_FEATURE_WatchListClient", "false")
	os.Exit(m.Run())
}

// ---- kdisc ----

type kdiscSide struct{ d *kdisc.Discovery }

func startKdisc(tb testing.TB, url string) *kdiscSide {
	host, port, err := net.SplitHostPort(strings.TrimPrefix(url, "http://"))
	if err != nil {
		tb.Fatal(err)
	}
	cfg, err := config.Parse(fmt.Appendf(nil, `
discovery:
  kubernetes:
    service: {schema: http, host: %s, port: %s}
    client: {token: bench}
    default_weight: %d
    shared_size: 1m
`, host, port, weight))
	if err != nil {
		tb.Fatal(err)
	}
	d, err := kdisc.Start(context.Background(), cfg, kdisc.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		tb.Fatal(err)
	}
	return &kdiscSide{d}
}

// wait polls the marker every 100µs.
func (k *kdiscSide) wait(tb testing.TB) {
	buf := make([]kdisc.Node, 0, 16)
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Microsecond) {
		if _, ok := k.d.Nodes(buf[:0], marker); ok {
			return
		}
	}
	tb.Fatal("kdisc: marker not seen in a minute")
}

func (k *kdiscSide) stop() { k.d.Close() }

// ---- client-go ----

// node is what the client-go side keeps per address, like kdisc.Node.
type node struct {
	Host   string
	Port   int32
	Weight uint32
}

// clientgoSide is what a proxy built on client-go would do: a shared
// informer on Endpoints whose handler turns each object into sorted node
// lists per "namespace/name:port" in a map under a mutex.
type clientgoSide struct {
	factory informers.SharedInformerFactory
	lister  listersv1.EndpointsLister
	cancel  context.CancelFunc
	seen    chan struct{}

	mu    sync.RWMutex
	nodes map[string][]node
}

func startClientgo(tb testing.TB, url string) *clientgoSide {
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: url, BearerToken: "bench", ContentConfig: rest.ContentConfig{ContentType: "application/json"}})
	if err != nil {
		tb.Fatal(err)
	}
	c := &clientgoSide{factory: informers.NewSharedInformerFactory(cs, 0), seen: make(chan struct{}), nodes: map[string][]node{}}
	inf := c.factory.Core().V1().Endpoints()
	c.lister = inf.Lister()
	_, err = inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.update(nil, obj.(*corev1.Endpoints)) },
		UpdateFunc: func(old, cur any) { c.update(old.(*corev1.Endpoints), cur.(*corev1.Endpoints)) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			c.update(obj.(*corev1.Endpoints), nil)
		},
	})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.factory.Start(ctx.Done())
	return c
}

// nodesOf is every ready address × port of ep, per "namespace/name:port",
// sorted by host then port: kdisc's answer.
func nodesOf(ep *corev1.Endpoints) map[string][]node {
	out := map[string][]node{}
	for _, ss := range ep.Subsets {
		for _, p := range ss.Ports {
			key := portKey(ep, p)
			for _, a := range ss.Addresses {
				out[key] = append(out[key], node{a.IP, p.Port, weight})
			}
		}
	}
	for _, ns := range out {
		slices.SortFunc(ns, func(a, b node) int { return cmp.Or(cmp.Compare(a.Host, b.Host), cmp.Compare(a.Port, b.Port)) })
	}
	return out
}

func portKey(ep *corev1.Endpoints, p corev1.EndpointPort) string {
	name := p.Name
	if name == "" {
		name = strconv.Itoa(int(p.Port))
	}
	return ep.Namespace + "/" + ep.Name + ":" + name
}

func (c *clientgoSide) update(old, cur *corev1.Endpoints) {
	var next map[string][]node
	if cur != nil {
		next = nodesOf(cur)
	}
	c.mu.Lock()
	if old != nil {
		for _, ss := range old.Subsets {
			for _, p := range ss.Ports {
				delete(c.nodes, portKey(old, p))
			}
		}
	}
	for key, ns := range next {
		c.nodes[key] = ns
	}
	c.mu.Unlock()
	if cur != nil && cur.Namespace == MarkerNamespace && cur.Name == MarkerName {
		close(c.seen)
	}
}

func (c *clientgoSide) wait(tb testing.TB) {
	select {
	case <-c.seen:
	case <-time.After(time.Minute):
		tb.Fatal("client-go: marker not seen in a minute")
	}
}

func (c *clientgoSide) stop() { c.cancel(); c.factory.Shutdown() }

// TestSameAnswers checks that both sides end with the same nodes for
// every service.
func TestSameAnswers(t *testing.T) {
	f := NewFake(services, 2_500)
	defer f.Close()
	srv := httptest.NewServer(f)
	defer srv.Close()
	k := startKdisc(t, srv.URL)
	defer k.stop()
	k.wait(t)
	f2 := f.Again()
	defer f2.Close()
	srv2 := httptest.NewServer(f2)
	defer srv2.Close()
	c := startClientgo(t, srv2.URL)
	defer c.stop()
	c.wait(t)
	c.mu.RLock()
	defer c.mu.RUnlock()
	if len(c.nodes) != services+1 {
		t.Fatalf("client-go has %d services, want %d", len(c.nodes), services+1)
	}
	for key, want := range c.nodes {
		got, ok := k.d.Nodes(nil, key)
		if !ok || len(got) != len(want) {
			t.Fatalf("%s: kdisc %v, client-go %v", key, got, want)
		}
		for i, n := range got {
			if n.Host() != want[i].Host || int32(n.Port) != want[i].Port || n.Weight != want[i].Weight {
				t.Fatalf("%s: kdisc %v, client-go %v", key, got, want)
			}
		}
	}
}

// ---- LIST + WATCH, end to end ----

type side interface {
	wait(testing.TB)
	stop()
}

var heapSamples = []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}

// heapInuse is MemStats.HeapInuse without stopping the world.
func heapInuse() uint64 {
	metrics.Read(heapSamples)
	return heapSamples[0].Value.Uint64() + heapSamples[1].Value.Uint64()
}

// benchListWatch times, per op, one client from start until it shows the
// marker: the LIST of 1,000 services then the WATCH of 20,000 events.
// Custom metrics cover the watch alone (from its first byte to the marker
// shown) and the heap.
func benchListWatch(b *testing.B, start func(testing.TB, string) side) {
	base := NewFake(services, events)
	var watchTime time.Duration
	var mallocs, allocBytes, peak, live uint64
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		f := base.Again()
		var before, after runtime.MemStats
		f.OnWatch = func() { runtime.ReadMemStats(&before) }
		srv := httptest.NewServer(f)
		runtime.GC()
		baseline := heapInuse()
		var max atomic.Uint64
		done := make(chan struct{})
		sampled := make(chan struct{})
		go func() { // peak heap, sampled every millisecond
			defer close(sampled)
			t := time.NewTicker(time.Millisecond)
			defer t.Stop()
			for {
				if h := heapInuse(); h > max.Load() {
					max.Store(h)
				}
				select {
				case <-t.C:
				case <-done:
					return
				}
			}
		}()
		b.StartTimer()

		s := start(b, srv.URL)
		s.wait(b)

		b.StopTimer()
		shown := time.Now()
		runtime.ReadMemStats(&after)
		close(done)
		<-sampled
		watchTime += shown.Sub(time.Unix(0, f.WatchStart.Load()))
		mallocs += after.Mallocs - before.Mallocs
		allocBytes += after.TotalAlloc - before.TotalAlloc
		peak += max.Load() - baseline
		runtime.GC()
		live += heapInuse() - baseline // what the client keeps for 1,001 services
		s.stop()
		f.Close()
		srv.Close()
		b.StartTimer()
	}
	n := float64(b.N)
	ev := float64(events + 1)
	b.ReportMetric(ev*n/watchTime.Seconds(), "events/s")
	b.ReportMetric(float64(mallocs)/n/ev, "allocs/event")
	b.ReportMetric(float64(allocBytes)/n/ev, "B/event")
	b.ReportMetric(float64(peak)/n/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(live)/n/(1<<20), "live-heap-MB")
}

func BenchmarkListWatch(b *testing.B) {
	b.Run("kdisc", func(b *testing.B) {
		benchListWatch(b, func(tb testing.TB, url string) side { return startKdisc(tb, url) })
	})
	b.Run("clientgo", func(b *testing.B) {
		benchListWatch(b, func(tb testing.TB, url string) side { return startClientgo(tb, url) })
	})
}

// ---- lookups on a warm cache ----

func BenchmarkLookup(b *testing.B) {
	f := NewFake(services, 0)
	defer f.Close()
	srv := httptest.NewServer(f)
	defer srv.Close()
	k := startKdisc(b, srv.URL)
	defer k.stop()
	k.wait(b)
	f = f.Again() // a second client, a second first watch
	srv2 := httptest.NewServer(f)
	defer srv2.Close()
	defer f.Close()
	c := startClientgo(b, srv2.URL)
	defer c.stop()
	c.wait(b)

	keys := make([]string, services)
	nss, names := make([]string, services), make([]string, services)
	for i := range services {
		nss[i], names[i] = Service(i)
		keys[i] = nss[i] + "/" + names[i] + ":http"
	}
	kdiscLookup := func(b *testing.B, i int, buf []kdisc.Node) []kdisc.Node {
		buf, ok := k.d.Nodes(buf[:0], keys[i%services])
		if !ok || len(buf) != 3 {
			b.Fatal("kdisc: lookup failed")
		}
		return buf
	}
	listerLookup := func(b *testing.B, i int, buf []node) []node {
		ep, err := c.lister.Endpoints(nss[i%services]).Get(names[i%services])
		if err != nil {
			b.Fatal(err)
		}
		buf = buf[:0]
		for _, ss := range ep.Subsets {
			for _, p := range ss.Ports {
				if p.Name == "http" {
					for _, a := range ss.Addresses {
						buf = append(buf, node{a.IP, p.Port, weight})
					}
				}
			}
		}
		if len(buf) != 3 {
			b.Fatal("client-go: lookup failed")
		}
		return buf
	}
	mapLookup := func(b *testing.B, i int, buf []node) []node {
		c.mu.RLock()
		buf = append(buf[:0], c.nodes[keys[i%services]]...)
		c.mu.RUnlock()
		if len(buf) != 3 {
			b.Fatal("client-go map: lookup failed")
		}
		return buf
	}
	runLookup(b, "kdisc", kdiscLookup)
	runLookup(b, "clientgo-lister", listerLookup)
	runLookup(b, "clientgo-map", mapLookup)
}

// runLookup benchmarks lookup from one goroutine, then with RunParallel;
// every goroutine reuses its buffer and walks the services in turn.
func runLookup[T any](b *testing.B, name string, lookup func(*testing.B, int, []T) []T) {
	b.Run(name, func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]T, 0, 16)
		i := 0
		for b.Loop() {
			buf = lookup(b, i, buf)
			i++
		}
	})
	b.Run(name+"-parallel", func(b *testing.B) {
		b.ReportAllocs()
		var seed atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			buf := make([]T, 0, 16)
			i := int(seed.Add(397))
			for pb.Next() {
				buf = lookup(b, i, buf)
				i++
			}
		})
	})
}
