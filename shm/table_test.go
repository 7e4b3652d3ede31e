package shm

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func ip(s string, port uint16, weight uint32) Node {
	return Node{Addr: netip.MustParseAddr(s), Port: port, Weight: weight}
}

func fqdn(s string, port uint16, weight uint32) Node {
	return Node{Name: s, Port: port, Weight: weight}
}

func newAnon(t *testing.T, size int64) (*Writer, *Reader) {
	t.Helper()
	w, err := Create("", size)
	require.NoError(t, err)
	r := w.Reader()
	t.Cleanup(func() {
		require.NoError(t, r.Close())
		require.NoError(t, w.Close())
	})
	return w, r
}

func TestGeometry(t *testing.T) {
	for _, size := range []int64{MinSize, 100 << 10, 1 << 20, 1<<20 + 12345, 64 << 20, 4 << 30} {
		g, err := geometryFor(size)
		require.NoError(t, err)
		assert.LessOrEqual(t, headerBytes+g.shards*g.shardBytes, g.size, size)
		assert.Zero(t, g.shardBytes%64)
		assert.GreaterOrEqual(t, g.shardBytes, uint64(16<<10-headerBytes))
	}
	_, err := geometryFor(MinSize - 1)
	assert.Error(t, err)
	_, err = Create("", 1000)
	assert.ErrorContains(t, err, "out of range")
}

func TestRoundTrip(t *testing.T) {
	w, r := newAnon(t, 1<<20)
	many := make([]Port, 40)
	for i := range many {
		many[i].Name = fmt.Sprintf("port-%02d", i)
		for j := range i % 5 {
			many[i].Nodes = append(many[i].Nodes, ip(fmt.Sprintf("10.1.%d.%d", i, j), uint16(1000+i), uint32(j*1000)))
		}
	}
	values := map[string][]Port{
		"default/v4": {{Name: "http", Nodes: []Node{ip("10.0.0.1", 80, 50), ip("10.0.0.2", 80, 50), ip("10.0.0.3", 8080, 50)}}},
		"default/v6": {{Name: "grpc", Nodes: []Node{ip("2001:db8::1", 9000, 1), ip("fe80::1:2:3:4", 9001, 2), ip("::ffff:10.1.2.3", 9002, 2)}}},
		"default/fqdn": {{Name: "https", Nodes: []Node{
			fqdn("a.example.com", 443, 50), fqdn(strings.Repeat("x", 63)+".example.org", 443, 50), fqdn("b", 0, 0),
		}}},
		"ns/mixed": {
			{Name: "53", Nodes: []Node{ip("10.9.9.9", 53, math.MaxUint32), ip("::1", math.MaxUint16, 0), fqdn("dns.local", 1, 7)}},
			{Name: "empty"},
			{Name: strings.Repeat("p", MaxNameLen), Nodes: []Node{ip("1.2.3.4", 1, 1)}},
		},
		"ns/many":     many,
		"ns/no-ports": nil,
		strings.Repeat("n", 63) + "/" + strings.Repeat("s", 253): {{Name: strings.Repeat("q", 63), Nodes: []Node{ip("10.0.0.9", 65535, 1<<31)}}},
	}
	for k, v := range values {
		require.NoError(t, w.Put(k, v), k)
	}
	for k, v := range values {
		got, ok := r.Get(k)
		require.True(t, ok, k)
		if len(v) == 0 {
			assert.Empty(t, got, k)
		} else {
			assert.Equal(t, v, got, k)
		}
		for _, p := range v {
			nodes, ok := r.Lookup(nil, k+":"+p.Name)
			assert.Equal(t, len(p.Nodes) > 0, ok, k+":"+p.Name)
			if len(p.Nodes) > 0 {
				assert.Equal(t, p.Nodes, nodes, k+":"+p.Name)
			}
		}
	}
	// Appends after what dst holds.
	dst := []Node{ip("9.9.9.9", 9, 9)}
	dst, ok := r.Lookup(dst, "default/v4:http")
	require.True(t, ok)
	assert.Equal(t, append([]Node{ip("9.9.9.9", 9, 9)}, values["default/v4"][0].Nodes...), dst)

	for _, q := range []string{"default/v4:nope", "default/v4", "default/absent:http", ":http", "", "default/v4:", "ns/mixed:empty"} {
		out, ok := r.Lookup(dst[:1], q)
		assert.False(t, ok, q)
		assert.Len(t, out, 1, q)
	}
	st := w.Stats()
	assert.Equal(t, len(values), st.Entries)
	assert.Equal(t, int64(1<<20), st.TotalBytes)
	assert.Positive(t, st.UsedBytes)
}

func TestPutRejectsBadInput(t *testing.T) {
	w, _ := newAnon(t, MinSize)
	for name, tc := range map[string]struct {
		key   string
		ports []Port
	}{
		"empty key":   {"", nil},
		"long key":    {strings.Repeat("k", MaxKeyLen+1), nil},
		"long port":   {"a/b", []Port{{Name: strings.Repeat("p", 256)}}},
		"zero node":   {"a/b", []Port{{Name: "p", Nodes: []Node{{Port: 1}}}}},
		"zone":        {"a/b", []Port{{Name: "p", Nodes: []Node{{Addr: netip.MustParseAddr("fe80::1%eth0")}}}}},
		"name + addr": {"a/b", []Port{{Name: "p", Nodes: []Node{{Addr: netip.MustParseAddr("10.0.0.1"), Name: "x"}}}}},
		"long name":   {"a/b", []Port{{Name: "p", Nodes: []Node{{Name: strings.Repeat("x", 256)}}}}},
	} {
		err := w.Put(tc.key, tc.ports)
		assert.Error(t, err, name)
		var full *FullError
		assert.False(t, errors.As(err, &full), name)
	}
	assert.Zero(t, w.Stats().Entries)
}

func TestOverwriteAndDelete(t *testing.T) {
	w, r := newAnon(t, MinSize)
	one := []Port{{Name: "http", Nodes: []Node{ip("10.0.0.1", 80, 50)}}}
	two := []Port{{Name: "http", Nodes: []Node{ip("10.0.0.1", 80, 50), ip("10.0.0.2", 80, 50)}}, {Name: "https", Nodes: []Node{ip("10.0.0.1", 443, 50)}}}
	require.NoError(t, w.Put("a/b", one))
	require.NoError(t, w.Put("a/b", two))
	got, ok := r.Get("a/b")
	require.True(t, ok)
	assert.Equal(t, two, got)
	require.NoError(t, w.Put("a/b", one))
	got, _ = r.Get("a/b")
	assert.Equal(t, one, got)
	assert.Equal(t, 1, w.Stats().Entries)

	assert.True(t, w.Delete("a/b"))
	assert.False(t, w.Delete("a/b"))
	_, ok = r.Get("a/b")
	assert.False(t, ok)
	_, ok = r.Lookup(nil, "a/b:http")
	assert.False(t, ok)
	assert.Zero(t, w.Stats().Entries)
}

func svcNodes(n int, seed int) []Port {
	p := Port{Name: "http"}
	for i := range n {
		p.Nodes = append(p.Nodes, ip(fmt.Sprintf("10.%d.%d.%d", seed&255, i>>8&255, i&255), 8080, 50))
	}
	return []Port{p}
}

func TestSpaceReuse(t *testing.T) {
	w, r := newAnon(t, 64<<10)
	fill := func(round int) int {
		n := 0
		for ; ; n++ {
			err := w.Put(fmt.Sprintf("ns/svc-%d", n), svcNodes(3, n+round))
			if err != nil {
				var full *FullError
				require.ErrorAs(t, err, &full)
				return n
			}
		}
	}
	first := fill(0)
	require.Greater(t, first, 100)
	w.Keys(func(k string) bool { assert.True(t, w.Delete(k)); return true })
	assert.Zero(t, w.Stats().Entries)
	// The freed space serves the same amount again (give or take imbalance).
	second := fill(1)
	assert.GreaterOrEqual(t, second, first*95/100)

	// Churn: overwrite with values that grow and shrink; compaction keeps
	// dead space from accumulating.
	w.Keys(func(k string) bool { w.Delete(k); return true })
	for i := range 20000 {
		k := fmt.Sprintf("ns/churn-%d", i%50)
		require.NoError(t, w.Put(k, svcNodes(1+i%13, i)), i)
	}
	got, ok := r.Get("ns/churn-49")
	require.True(t, ok)
	assert.Equal(t, svcNodes(1+19999%13, 19999), got)
	assert.Positive(t, w.Stats().Compactions)
	assert.Equal(t, 50, w.Stats().Entries)
}

func TestFullKeepsOldValue(t *testing.T) {
	w, r := newAnon(t, MinSize)
	old := svcNodes(2, 1)
	require.NoError(t, w.Put("keep/me", old))
	// A value larger than the whole table.
	err := w.Put("keep/me", svcNodes(5000, 2))
	var full *FullError
	require.ErrorAs(t, err, &full)
	assert.Equal(t, "keep/me", full.Key)
	assert.Positive(t, full.Need)
	assert.Contains(t, err.Error(), "keep/me")
	assert.Contains(t, err.Error(), "shared_size")
	got, ok := r.Get("keep/me")
	require.True(t, ok)
	assert.Equal(t, old, got)

	// Fill the table; the failing Put names its key, everything else stays.
	var stored []string
	for i := 0; ; i++ {
		k := fmt.Sprintf("fill/svc-%d", i)
		err = w.Put(k, svcNodes(4, i))
		if err != nil {
			require.ErrorAs(t, err, &full)
			assert.Equal(t, k, full.Key)
			assert.Contains(t, err.Error(), "is full")
			break
		}
		stored = append(stored, k)
	}
	// Growing an existing value in a full table fails and keeps it.
	err = w.Put("keep/me", svcNodes(300, 3))
	require.ErrorAs(t, err, &full)
	got, ok = r.Get("keep/me")
	require.True(t, ok)
	assert.Equal(t, old, got)
	for i, k := range stored {
		nodes, ok := r.Lookup(nil, k+":http")
		require.True(t, ok, k)
		assert.Equal(t, svcNodes(4, i)[0].Nodes, nodes)
	}
	st := w.Stats()
	assert.Equal(t, uint64(3), st.FullErrors)
	assert.Equal(t, len(stored)+1, st.Entries)
}

func TestKeysAndRange(t *testing.T) {
	w, r := newAnon(t, 256<<10)
	want := map[string][]Port{}
	for i := range 500 {
		k := fmt.Sprintf("ns-%d/svc-%d", i%7, i)
		want[k] = svcNodes(1+i%4, i)
		require.NoError(t, w.Put(k, want[k]))
	}
	var keys []string
	w.Keys(func(k string) bool { keys = append(keys, k); return true })
	assert.ElementsMatch(t, slices.Collect(mapsKeys(want)), keys)

	got := map[string][]Port{}
	r.Range(func(k string, p []Port) bool { got[k] = p; return true })
	assert.Equal(t, want, got)

	n := 0
	r.Range(func(string, []Port) bool { n++; return n < 10 })
	assert.Equal(t, 10, n)
	n = 0
	w.Keys(func(string) bool { n++; return n < 10 })
	assert.Equal(t, 10, n)
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestDensity fills a 1 MiB table with realistic services (3 IPv4 nodes,
// one "http" port) under realistic hash imbalance.
func TestDensity(t *testing.T) {
	w, r := newAnon(t, 1<<20)
	rnd := uint64(0x9e3779b97f4a7c15)
	next := func() uint64 { rnd ^= rnd << 13; rnd ^= rnd >> 7; rnd ^= rnd << 17; return rnd }
	namespaces := []string{"default", "kube-system", "payments", "team-a-prod", "monitoring"}
	n := 0
	var keys []string
	for {
		k := fmt.Sprintf("%s/service-name-%d", namespaces[next()%5], next()%100000)
		if slices.Contains(keys[max(0, len(keys)-3):], k) {
			continue
		}
		a := next()
		nodes := []Node{
			ip(fmt.Sprintf("10.%d.%d.%d", a>>8&255, a>>16&255, a>>24&255), 8080, 50),
			ip(fmt.Sprintf("10.%d.%d.%d", a>>8&255, a>>16&255, a>>32&255), 8080, 50),
			ip(fmt.Sprintf("10.%d.%d.%d", a>>8&255, a>>40&255, a>>48&255), 8080, 50),
		}
		slices.SortFunc(nodes, Compare)
		err := w.Put(k, []Port{{Name: "http", Nodes: nodes}})
		if err != nil {
			var full *FullError
			require.ErrorAs(t, err, &full)
			break
		}
		keys = append(keys, k)
		n = w.Stats().Entries
	}
	st := w.Stats()
	t.Logf("1 MiB holds %d services of 3 IPv4 nodes (%d shards; %.1f bytes/service used, %.0f%% of the table used at the first full shard)",
		n, w.t.shards, float64(st.UsedBytes)/float64(n), 100*float64(st.UsedBytes)/float64(st.TotalBytes))
	require.GreaterOrEqual(t, n, 9500, "within 10%% of v4's 10,568 (layout 7 gives records 8-byte slots again)")
	_, ok := r.Lookup(nil, keys[len(keys)-1]+":http")
	assert.True(t, ok)
}

// TestDensityByShape logs what 1 MiB holds of three service shapes, as in
// TestDensity: 3 IPv4 nodes on port "http" with keys short enough for an
// index cell (the benchmarks' services), the same with long keys (a
// record each), and 2 ports of 3 IPv4 nodes (always a record).
func TestDensityByShape(t *testing.T) {
	for _, c := range []struct {
		name  string
		key   func(i int) string
		ports func(nodes []Node) []Port
		min   int
	}{
		{"3 IPv4, short key", func(i int) string { return fmt.Sprintf("default/service-name-%d", i) },
			func(nodes []Node) []Port { return []Port{{Name: "http", Nodes: nodes}} }, 10500},
		{"3 IPv4, long key", func(i int) string { return fmt.Sprintf("team-a-production/service-name-%d", i) },
			func(nodes []Node) []Port { return []Port{{Name: "http", Nodes: nodes}} }, 8400},
		{"2 ports of 3 IPv4", func(i int) string { return fmt.Sprintf("default/service-name-%d", i) },
			func(nodes []Node) []Port { return []Port{{Name: "http", Nodes: nodes}, {Name: "https", Nodes: nodes}} }, 6700},
	} {
		w, _ := newAnon(t, 1<<20)
		n := 0
		for i := 0; ; i++ {
			a := uint64(i) * 0x9e3779b97f4a7c15
			nodes := []Node{
				ip(fmt.Sprintf("10.%d.%d.1", a>>8&255, a>>16&255), 8080, 50),
				ip(fmt.Sprintf("10.%d.%d.2", a>>8&255, a>>16&255), 8080, 50),
				ip(fmt.Sprintf("10.%d.%d.3", a>>8&255, a>>16&255), 8080, 50),
			}
			if err := w.Put(c.key(i), c.ports(nodes)); err != nil {
				var full *FullError
				require.ErrorAs(t, err, &full)
				break
			}
			n++
		}
		st := w.Stats()
		t.Logf("%s: 1 MiB holds %d services (%.1f bytes/service used)", c.name, n, float64(st.UsedBytes)/float64(n))
		assert.GreaterOrEqual(t, n, c.min, c.name)
	}
}

func TestLargeTable(t *testing.T) {
	w, r := newAnon(t, 3<<30) // sparse: only touched pages cost memory
	assert.Equal(t, uint64(maxShards), w.t.shards)
	for i := range 1000 {
		require.NoError(t, w.Put(fmt.Sprintf("ns/svc-%d", i), svcNodes(2, i)))
	}
	require.NoError(t, w.Put("ns/huge", svcNodes(60000, 1))) // ~300 KB: fits a 3 MiB shard
	got, ok := r.Get("ns/huge")
	require.True(t, ok)
	assert.Equal(t, svcNodes(60000, 1), got)
	nodes, ok := r.Lookup(nil, "ns/huge:http") // many window refills
	require.True(t, ok)
	assert.Equal(t, svcNodes(60000, 1)[0].Nodes, nodes)
	nodes, ok = r.Lookup(nil, "ns/svc-999:http")
	require.True(t, ok)
	assert.Equal(t, svcNodes(2, 999)[0].Nodes, nodes)
}

// Readers never panic, hang or read outside the mapping on a table full of
// garbage: every offset and length read from it is checked before use. The
// garbage keeps some structure (plausible counts, offsets and lengths) so
// that decoding gets past the first checks.
func TestGarbageNeverPanics(t *testing.T) {
	w, r := newAnon(t, 64<<10) // one shard
	keys := make([]string, 50)
	for i := range keys {
		keys[i] = fmt.Sprintf("ns/svc-%d", i)
		ports := svcNodes(1+i%5, i)
		if i%3 == 0 {
			ports = append(ports, Port{Name: "dns", Nodes: []Node{fqdn("a.example.com", 53, 1), ip("::1", 53, 2)}})
		}
		require.NoError(t, w.Put(keys[i], ports))
	}
	tb, so := w.t, uint64(headerBytes)
	clean := make([]uint64, tb.shardBytes/8)
	for i := range clean {
		clean[i] = tb.load(so + uint64(i)*8)
	}
	rnd := uint64(1)
	next := func() uint64 { rnd ^= rnd << 13; rnd ^= rnd >> 7; rnd ^= rnd << 17; return rnd }
	small := func() uint64 { return next() % (tb.shardBytes / 4) }
	buf := make([]Node, 0, 64)
	for round := range 3000 {
		for i := range clean { // start again from the real data, then damage it
			tb.store(so+uint64(i)*8, clean[i])
		}
		for range 1 + round%40 {
			i := uint64(sSeq+8) + next()%(tb.shardBytes-8)&^7 // leave the sequence even
			switch next() % 4 {
			case 0:
				tb.store(so+i, next())
			case 1:
				tb.store(so+i, small())
			case 2:
				tb.store(so+i, tb.load(so+i)^1<<(next()%64))
			default:
				tb.store(so+i, next()<<32|small()/8) // an index-entry-like word
			}
		}
		for _, k := range keys[:10] {
			buf, _ = r.Lookup(buf[:0], k+":http")
			_, _ = r.Lookup(nil, k+":dns")
			_, _ = r.Get(k)
		}
		r.Range(func(string, []Port) bool { return true })
	}
	for i := range clean { // leave a valid table for Close
		tb.store(so+uint64(i)*8, clean[i])
	}
}

// Find tells the three kinds of nothing apart: not ready, unknown (no such
// service or port), empty (the service exists with no address for the
// port, or has no port at all). A found answer is served ready or not.
func TestFindAnswers(t *testing.T) {
	w, r := newAnon(t, 64<<10)
	web := []Port{{Name: "http", Nodes: []Node{ip("10.0.0.1", 80, 1)}}, {Name: "metrics"}}
	require.NoError(t, w.Put("a/web", web))
	require.NoError(t, w.Put("a/scaled-to-zero", nil))
	cases := []struct {
		query         string
		before, after Answer
	}{
		{"a/web:http", Found, Found},
		{"a/web:metrics", NotReady, Empty},
		{"a/web:grpc", NotReady, Unknown},
		{"a/nope:http", NotReady, Unknown},
		{"a/scaled-to-zero:http", NotReady, Empty},
		{"no-port-separator", NotReady, Unknown},
	}
	for _, ready := range []bool{false, true} {
		w.SetReady(ready)
		for _, c := range cases {
			want := c.before
			if ready {
				want = c.after
			}
			nodes, a := r.Find(make([]Node, 0, 4), c.query)
			assert.Equal(t, want, a, "%s, ready %v", c.query, ready)
			assert.Equal(t, a == Found, len(nodes) > 0, "%s: nodes only when found", c.query)
		}
	}
	assert.Equal(t, "not_ready", NotReady.String())
	assert.Equal(t, "empty", Empty.String())
	assert.Equal(t, "unknown", Unknown.String())
	assert.Zero(t, testing.AllocsPerRun(100, func() { r.Find(make([]Node, 0, 0), "a/web:metrics") }))
}

// "ns/name:8080" is the union of the port named "8080" and every port
// numbered 8080, deduplicated and sorted; names keep working.
func TestFindByPortNumber(t *testing.T) {
	w, r := newAnon(t, 64<<10)
	w.SetReady(true)
	require.NoError(t, w.Put("a/web", []Port{
		{Name: "http", Nodes: []Node{ip("10.0.0.1", 8080, 1), ip("10.0.0.2", 8080, 1)}},
		{Name: "metrics", Nodes: []Node{ip("10.0.0.1", 9090, 1)}},
	}))
	require.NoError(t, w.Put("a/dns", []Port{ // one number named twice (TCP and UDP)
		{Name: "dns", Nodes: []Node{ip("10.0.0.1", 53, 1), ip("10.0.0.2", 53, 1)}},
		{Name: "dns-udp", Nodes: []Node{ip("10.0.0.1", 53, 1), ip("10.0.0.3", 53, 1)}},
	}))
	require.NoError(t, w.Put("a/odd", []Port{ // a name that is another number; a mixed body
		{Name: "8080", Nodes: []Node{ip("10.0.0.9", 9999, 1)}},
		{Name: "http", Nodes: []Node{ip("10.0.0.1", 8080, 1), ip("10.0.0.5", 8081, 1), fqdn("x.example", 8080, 1)}},
		{Name: "9000"},
	}))
	cases := []struct {
		query string
		want  []Node
		ans   Answer
	}{
		{"a/web:8080", []Node{ip("10.0.0.1", 8080, 1), ip("10.0.0.2", 8080, 1)}, Found},
		{"a/web:http", []Node{ip("10.0.0.1", 8080, 1), ip("10.0.0.2", 8080, 1)}, Found},
		{"a/web:9090", []Node{ip("10.0.0.1", 9090, 1)}, Found},
		{"a/web:443", nil, Unknown},
		{"a/web:08080", nil, Unknown},
		{"a/dns:53", []Node{ip("10.0.0.1", 53, 1), ip("10.0.0.2", 53, 1), ip("10.0.0.3", 53, 1)}, Found},
		{"a/odd:8080", []Node{ip("10.0.0.9", 9999, 1)}, Found}, // the port named 8080 wins (issue 12.1)
		{"a/odd:8081", []Node{ip("10.0.0.5", 8081, 1)}, Found},
		{"a/odd:9000", nil, Empty},
		{"a/odd:", nil, Unknown},
	}
	for _, c := range cases {
		got, ans := r.Find(nil, c.query)
		assert.Equal(t, c.ans, ans, c.query)
		if c.want == nil {
			assert.Empty(t, got, c.query)
		} else {
			assert.Equal(t, c.want, got, c.query)
		}
	}
	buf := make([]Node, 0, 8)
	assert.Zero(t, testing.AllocsPerRun(100, func() { buf, _ = r.Find(buf[:0], "a/dns:53") }))
}

// A service's detail is stored beside its value, invisible to lookups,
// Get, Range and Keys, removed with the service, and carried to a new
// table size.
func TestDetail(t *testing.T) {
	path := tablePath(t)
	w, err := Create(path, 64<<10)
	require.NoError(t, err)
	web := []Port{{Name: "http", Nodes: []Node{ip("10.0.0.1", 80, 1)}}}
	require.NoError(t, w.Put("a/web", web))
	detail := []byte(`[{"host":"10.0.0.1","port":80,"node_name":"n1"}]`)
	require.NoError(t, w.PutDetail("a/web", detail))
	require.NoError(t, w.PutDetail("a/other", []byte("x")))
	r, err := Open(path)
	require.NoError(t, err)
	defer r.Close()

	got, ok := r.Detail(nil, "a/web")
	assert.True(t, ok)
	assert.Equal(t, detail, got)
	_, ok = r.Detail(nil, "a/nope")
	assert.False(t, ok)
	assert.Equal(t, 1, w.Stats().Entries, "a detail is not a service")
	var keys []string
	w.Keys(func(k string) bool { keys = append(keys, k); return true })
	assert.Equal(t, []string{"a/web"}, keys)
	var ranged []string
	r.Range(func(k string, _ []Port) bool { ranged = append(ranged, k); return true })
	assert.Equal(t, []string{"a/web"}, ranged)
	_, ok = r.Get("\x00a/web")
	assert.False(t, ok)
	_, ans := r.Find(nil, "\x00a/web:http")
	assert.Equal(t, NotReady, ans)
	require.Error(t, w.Put("\x00a/web", web), "service keys never start with NUL")

	// A new size carries details too.
	require.NoError(t, w.Close())
	w, err = Create(path, 128<<10)
	require.NoError(t, err)
	defer w.Close()
	got, ok = w.Reader().Detail(nil, "a/web")
	assert.True(t, ok)
	assert.Equal(t, detail, got)

	assert.True(t, w.Delete("a/web"))
	_, ok = w.Reader().Detail(nil, "a/web")
	assert.False(t, ok, "deleting the service deletes its detail")
	assert.True(t, w.DeleteDetail("a/other"))
	assert.False(t, w.DeleteDetail("a/other"))
}

// A value stored again byte for byte is no change: the shard (its
// sequence), the change log and the occupancy stay as they are.
func TestPutSameValueChangesNothing(t *testing.T) {
	w, r := newAnon(t, 64<<10)
	ports := svcNodes(3, 1)
	require.NoError(t, w.Put("a/web", ports))
	require.NoError(t, w.PutDetail("a/web", []byte("detail")))
	so := w.t.shardOf(hashKey("a/web"))
	dso := w.t.shardOf(hashKey(detailKey("a/web")))
	seq, dseq := w.t.load(so+sSeq), w.t.load(dso+sSeq)
	changes, _ := r.Changes(0, nil)
	stats := w.Stats()

	require.NoError(t, w.Put("a/web", svcNodes(3, 1)))
	require.NoError(t, w.PutDetail("a/web", []byte("detail")))
	assert.Equal(t, seq, w.t.load(so+sSeq), "the shard was not written")
	assert.Equal(t, dseq, w.t.load(dso+sSeq), "the detail's shard was not written")
	now, complete := r.Changes(changes, nil)
	assert.True(t, complete)
	assert.Equal(t, changes, now, "no change logged")
	assert.Equal(t, stats, w.Stats())

	require.NoError(t, w.Put("a/web", svcNodes(3, 2))) // a real change still counts
	now, _ = r.Changes(changes, nil)
	assert.Equal(t, changes+1, now)
}

// Changes used to accept a gap of exactly the ring's size as complete,
// though the writer stores change n's hash in slot n % size before it
// bumps the count: the oldest slot read may already hold the next change.
func TestChangesNeverCompleteOverALappedSlot(t *testing.T) {
	w, r := newAnon(t, 64<<10)
	want := map[uint64]bool{}
	for i := range changeSlots {
		k := fmt.Sprintf("a/svc-%d", i)
		require.NoError(t, w.Put(k, svcNodes(1, i)))
		want[hashKey(k)] = true
	}
	// The writer is in the middle of the next change: its hash is in the
	// ring (over change 0's), the count not bumped yet.
	next := hashKey("a/next")
	w.t.store(changeAt(changeSlots), next)

	got := map[uint64]bool{}
	now, complete := r.Changes(0, func(h uint64) { got[h] = true })
	assert.Equal(t, uint64(changeSlots), now)
	if complete {
		for h := range want {
			assert.True(t, got[h], "a complete list misses a change")
		}
	}
	// One change fewer than the ring holds is complete.
	got = map[uint64]bool{}
	now, complete = r.Changes(1, func(h uint64) { got[h] = true })
	assert.True(t, complete)
	assert.Len(t, got, changeSlots-1)
	assert.False(t, got[next])
	_ = now
}

// The same for a big value (a head and pieces): putting its bytes again
// writes no new pieces and logs no change.
func TestPutSameBigValueChangesNothing(t *testing.T) {
	w, r := newAnon(t, 1<<20)
	ports := []Port{{Name: "http", Nodes: bigNodes(5000, 1, true)}}
	require.NoError(t, w.Put("a/big", ports))
	h := hashKey("a/big")
	_, rec, _ := w.t.find(w.t.shardOf(h), tagOf(h), "a/big")
	before, ok := w.t.head(rec)
	require.True(t, ok, "a/big is a big value")
	changes, _ := r.Changes(0, nil)

	require.NoError(t, w.Put("a/big", []Port{{Name: "http", Nodes: bigNodes(5000, 1, true)}}))
	_, rec, _ = w.t.find(w.t.shardOf(h), tagOf(h), "a/big")
	after, _ := w.t.head(rec)
	assert.Equal(t, before.id, after.id, "no new pieces")
	now, _ := r.Changes(changes, nil)
	assert.Equal(t, changes, now, "no change logged")

	require.NoError(t, w.Put("a/big", []Port{{Name: "http", Nodes: bigNodes(5001, 1, true)}}))
	now, _ = r.Changes(changes, nil)
	assert.Equal(t, changes+1, now, "a real change still counts")
}
