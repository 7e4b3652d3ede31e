package shm

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The benchmarks compare Lookup with two in-process baselines that hold
// the same data (10,000 services of 3 IPv4 nodes) and copy the nodes into
// the caller's buffer as Lookup does: a map under a sync.RWMutex and a
// sync.Map. Every implementation looks the keys up in the same random
// order, so that none of them is helped by the caches.

const benchServices = 10000

func benchData() (keys []string, values map[string][]Node) {
	values = make(map[string][]Node, benchServices)
	for _, i := range rand.New(rand.NewPCG(1, 2)).Perm(benchServices) {
		k := fmt.Sprintf("default/service-name-%d:http", i)
		keys = append(keys, k)
		values[k] = []Node{
			{Addr: netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1}), Port: 8080, Weight: 50},
			{Addr: netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 2}), Port: 8080, Weight: 50},
			{Addr: netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 3}), Port: 8080, Weight: 50},
		}
	}
	return keys, values
}

func benchTable(b *testing.B) (*Reader, []string) {
	keys, values := benchData()
	w, err := Create("", 4<<20)
	if err != nil {
		b.Fatal(err)
	}
	for _, k := range keys {
		if err := w.Put(k[:len(k)-len(":http")], []Port{{Name: "http", Nodes: values[k]}}); err != nil {
			b.Fatal(err)
		}
	}
	r := w.Reader()
	b.Cleanup(func() { r.Close(); w.Close() })
	return r, keys
}

func BenchmarkLookup(b *testing.B) {
	r, keys := benchTable(b)
	buf := make([]Node, 0, 8)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		var ok bool
		if buf, ok = r.Lookup(buf[:0], keys[i%len(keys)]); !ok {
			b.Fatal("missing")
		}
		i++
	}
}

func BenchmarkLookupParallel(b *testing.B) {
	r, keys := benchTable(b)
	var seed atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]Node, 0, 8)
		i := int(seed.Add(7919))
		for pb.Next() {
			var ok bool
			if buf, ok = r.Lookup(buf[:0], keys[i%len(keys)]); !ok {
				b.Fatal("missing")
			}
			i++
		}
	})
}

type rwMap struct {
	mu sync.RWMutex
	m  map[string][]Node
}

func (m *rwMap) lookup(dst []Node, k string) ([]Node, bool) {
	m.mu.RLock()
	nodes, ok := m.m[k]
	dst = append(dst, nodes...)
	m.mu.RUnlock()
	return dst, ok
}

func BenchmarkBaselineRWMutexMap(b *testing.B) {
	keys, values := benchData()
	m := &rwMap{m: values}
	buf := make([]Node, 0, 8)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		buf, _ = m.lookup(buf[:0], keys[i%len(keys)])
		i++
	}
}

func BenchmarkBaselineRWMutexMapParallel(b *testing.B) {
	keys, values := benchData()
	m := &rwMap{m: values}
	var seed atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]Node, 0, 8)
		i := int(seed.Add(7919))
		for pb.Next() {
			buf, _ = m.lookup(buf[:0], keys[i%len(keys)])
			i++
		}
	})
}

func syncMapOf(values map[string][]Node) *sync.Map {
	var m sync.Map
	for k, v := range values {
		m.Store(k, v)
	}
	return &m
}

func BenchmarkBaselineSyncMap(b *testing.B) {
	keys, values := benchData()
	m := syncMapOf(values)
	buf := make([]Node, 0, 8)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		v, _ := m.Load(keys[i%len(keys)])
		buf = append(buf[:0], v.([]Node)...)
		i++
	}
}

func BenchmarkBaselineSyncMapParallel(b *testing.B) {
	keys, values := benchData()
	m := syncMapOf(values)
	var seed atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]Node, 0, 8)
		i := int(seed.Add(7919))
		for pb.Next() {
			v, _ := m.Load(keys[i%len(keys)])
			buf = append(buf[:0], v.([]Node)...)
			i++
		}
	})
}

// BenchmarkLookupPaired interleaves the three implementations in blocks of
// 1,000 lookups (same keys, same order, same buffer) and reports each one's
// ns/op and kdisc's ratio to the others: on a shared, loaded machine, load
// that comes and goes then weighs on all three alike.
func BenchmarkLookupPaired(b *testing.B) {
	r, keys := benchTable(b)
	_, values := benchData()
	m := &rwMap{m: values}
	sm := syncMapOf(values)
	buf := make([]Node, 0, 8)
	const block = 1000
	var ns [3]time.Duration
	i, n := 0, 0
	for b.Loop() {
		start := time.Now()
		for j := i; j < i+block; j++ {
			buf, _ = r.Lookup(buf[:0], keys[j%len(keys)])
		}
		t1 := time.Now()
		for j := i; j < i+block; j++ {
			buf, _ = m.lookup(buf[:0], keys[j%len(keys)])
		}
		t2 := time.Now()
		for j := i; j < i+block; j++ {
			v, _ := sm.Load(keys[j%len(keys)])
			buf = append(buf[:0], v.([]Node)...)
		}
		t3 := time.Now()
		ns[0], ns[1], ns[2] = ns[0]+t1.Sub(start), ns[1]+t2.Sub(t1), ns[2]+t3.Sub(t2)
		i += block
		n += block
	}
	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(n) }
	b.ReportMetric(per(ns[0]), "kdisc-ns/op")
	b.ReportMetric(per(ns[1]), "rwmap-ns/op")
	b.ReportMetric(per(ns[2]), "syncmap-ns/op")
	b.ReportMetric(per(ns[0])/per(ns[1]), "kdisc/rwmap")
	b.ReportMetric(per(ns[0])/per(ns[2]), "kdisc/syncmap")
}

// BenchmarkPutChurn rewrites the values of 10,000 services of 3 IPv4
// nodes in a 4 MiB file table, round robin: the write path with its
// compactions (and, since the table keeps its mapping sparse, their
// madvise calls).
func BenchmarkPutChurn(b *testing.B) {
	w, err := Create(filepath.Join(b.TempDir(), "kubernetes"), 4<<20)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	const services = 10000
	keys := make([]string, services)
	values := make([][]Port, 16)
	for v := range values {
		var nodes []Node
		for a := range 3 {
			nodes = append(nodes, Node{Addr: netip.AddrFrom4([4]byte{10, byte(v), 0, byte(a + 1)}), Port: 8080, Weight: 1})
		}
		values[v] = []Port{{Name: "http", Nodes: nodes}}
	}
	for i := range keys {
		keys[i] = fmt.Sprintf("team-%d/service-%d", i%100, i)
		if err := w.Put(keys[i], values[0]); err != nil {
			b.Fatal(err)
		}
	}
	start := w.Stats().Compactions
	b.ResetTimer()
	for i := range b.N {
		if err := w.Put(keys[i%services], values[1+i/services%15]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(w.Stats().Compactions-start)/float64(b.N), "compactions/op")
}

// BenchmarkLookupBig looks up one big service (5,000 IPv6 nodes, 80 KB:
// a head and pieces, layout v5) again and again: after the first lookup
// the value put back together is cached by its id, so each lookup reads
// the head and copies the nodes out.
func BenchmarkLookupBig(b *testing.B) {
	w, err := Create("", 4<<20)
	if err != nil {
		b.Fatal(err)
	}
	r := w.Reader()
	b.Cleanup(func() { r.Close(); w.Close() })
	if err := w.Put("default/big", []Port{{Name: "http", Nodes: bigNodes(5000, 1, true)}}); err != nil {
		b.Fatal(err)
	}
	buf := make([]Node, 0, 5000)
	b.ReportAllocs()
	for b.Loop() {
		var ok bool
		if buf, ok = r.Lookup(buf[:0], "default/big:http"); !ok || len(buf) != 5000 {
			b.Fatal("missing")
		}
	}
}

// BenchmarkLookupRecord is BenchmarkLookup for services whose key is too
// long for an index cell ("team-a-production/service-name-N:http", 41
// bytes): each is a record, reached through its cell as through a v4
// index slot.
func BenchmarkLookupRecord(b *testing.B) {
	keys, values := benchData()
	w, err := Create("", 4<<20)
	if err != nil {
		b.Fatal(err)
	}
	long := make([]string, len(keys))
	for i, k := range keys {
		long[i] = "team-a-production/" + strings.TrimPrefix(k, "default/")
		if err := w.Put(strings.TrimSuffix(long[i], ":http"), []Port{{Name: "http", Nodes: values[k]}}); err != nil {
			b.Fatal(err)
		}
	}
	lookupEach(b, w, long)
}

// BenchmarkLookupRecordMixed is BenchmarkLookupRecord in a table where
// every other service is held inline: a lookup of a record first probes
// the shard's cells (layout 7: a miss there), then its record slots.
func BenchmarkLookupRecordMixed(b *testing.B) {
	keys, values := benchData()
	w, err := Create("", 4<<20)
	if err != nil {
		b.Fatal(err)
	}
	var long []string
	for i, k := range keys {
		q := k
		if i%2 == 0 {
			q = "team-a-production/" + strings.TrimPrefix(k, "default/")
			long = append(long, q)
		}
		if err := w.Put(strings.TrimSuffix(q, ":http"), []Port{{Name: "http", Nodes: values[k]}}); err != nil {
			b.Fatal(err)
		}
	}
	lookupEach(b, w, long)
}

// BenchmarkLookupRecordShortMixed is BenchmarkLookupRecordMixed with short
// keys: every other service has 5 nodes, one too many for a cell, so it is
// a record whose key is short enough that a lookup must first find it in
// no cell (layout 7: the cells probed to an empty one).
func BenchmarkLookupRecordShortMixed(b *testing.B) {
	keys, values := benchData()
	w, err := Create("", 4<<20)
	if err != nil {
		b.Fatal(err)
	}
	var recs []string
	for i, k := range keys {
		nodes := values[k]
		if i%2 == 0 {
			nodes = append(slices.Clip(nodes), Node{Addr: netip.AddrFrom4([4]byte{10, 0, byte(i), 4}), Port: 8080, Weight: 50},
				Node{Addr: netip.AddrFrom4([4]byte{10, 0, byte(i), 5}), Port: 8080, Weight: 50})
			slices.SortFunc(nodes, Compare)
			recs = append(recs, k)
		}
		if err := w.Put(strings.TrimSuffix(k, ":http"), []Port{{Name: "http", Nodes: nodes}}); err != nil {
			b.Fatal(err)
		}
	}
	lookupEach(b, w, recs)
}

// lookupEach looks up queries in turn from a reader of w, each of which
// must be found; it closes both when b ends.
func lookupEach(b *testing.B, w *Writer, queries []string) {
	r := w.Reader()
	b.Cleanup(func() { r.Close(); w.Close() })
	buf := make([]Node, 0, 8)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		var ok bool
		if buf, ok = r.Lookup(buf[:0], queries[i%len(queries)]); !ok {
			b.Fatal("missing")
		}
		i++
	}
}
