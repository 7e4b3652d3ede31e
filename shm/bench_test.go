package shm

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
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
