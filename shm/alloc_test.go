package shm

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Lookup must not allocate once dst has room, for every kind of host:
// addresses are netip.Addr values, DNS names come from the intern set.
func TestLookupDoesNotAllocate(t *testing.T) {
	w, r := newAnon(t, 1<<20)
	require.NoError(t, w.Put("default/v4", []Port{{Name: "http", Nodes: []Node{ip("10.0.0.1", 80, 50), ip("10.0.0.2", 80, 50), ip("10.0.0.3", 80, 50)}}}))
	require.NoError(t, w.Put("default/v6", []Port{{Name: "grpc", Nodes: []Node{ip("2001:db8::1", 9000, 50), ip("2001:db8::2", 9000, 50)}}}))
	require.NoError(t, w.Put("default/fqdn", []Port{
		{Name: "dns", Nodes: []Node{fqdn("a.example.com", 53, 50), fqdn("b.example.com", 53, 50)}},
		{Name: "https", Nodes: []Node{fqdn("a.example.com", 443, 50), fqdn("c.example.com", 443, 50)}},
	}))
	buf := make([]Node, 0, 16)
	for _, q := range []string{"default/v4:http", "default/v6:grpc", "default/fqdn:https", "default/absent:http", "default/v4:absent"} {
		_, want := r.Lookup(buf[:0], q) // warm-up: interns the names
		allocs := testing.AllocsPerRun(1000, func() {
			var ok bool
			buf, ok = r.Lookup(buf[:0], q)
			if ok != want {
				t.Fatalf("%s: ok %v", q, ok)
			}
		})
		assert.Zero(t, allocs, q)
	}
	nodes, _ := r.Lookup(buf[:0], "default/fqdn:https")
	again, _ := r.Lookup(nil, "default/fqdn:https")
	assert.Equal(t, nodes, again)
	assert.Equal(t, "c.example.com", again[1].Name)
}

// A query built by the caller (often on its stack: a short concatenation)
// must not escape into the reader: the big-value cache once kept the
// query's key, so every lookup with a built key allocated it on the heap
// (seen in e2e TestEndpointSlicesGoAPI).
func TestLookupKeyDoesNotEscape(t *testing.T) {
	w, r := newAnon(t, 1<<20)
	require.NoError(t, w.Put("default/web", []Port{{Name: "http", Nodes: []Node{ip("10.0.0.1", 80, 50)}}}))
	require.NoError(t, w.Put("default/big", []Port{{Name: "http", Nodes: bigNodes(5000, 1, false)}}))
	buf := make([]Node, 0, 5000)
	for _, svc := range []string{"default/web", "default/big"} {
		_, _ = r.Lookup(buf[:0], svc+":http") // warm-up: the big value put back together
		allocs := testing.AllocsPerRun(1000, func() {
			var ok bool
			if buf, ok = r.Lookup(buf[:0], svc+":http"); !ok {
				t.Fatalf("%s not found", svc)
			}
		})
		assert.Zero(t, allocs, svc)
	}
}
