package shm

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// inlineAt reports whether key is stored in its index cell (and found).
func inlineAt(t *testing.T, tb *table, key string) bool {
	t.Helper()
	h := tb.hash(key)
	_, rec, found := tb.find(tb.shardOf(h), tagOf(h), key)
	require.True(t, found, key)
	return rec.cell
}

func v4Nodes(n int, port uint16, weight uint32) []Node {
	var nodes []Node
	for i := range n {
		nodes = append(nodes, Node{Addr: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), Port: port, Weight: weight})
	}
	return nodes
}

// The edges of the inline encoding: a service whose key ":" port name is
// exactly 32 bytes, with 4 IPv4 nodes, is held in its index cell; one
// byte more, a fifth node, another family, a node with its own port or
// weight, or a second port, and it is a record as before. Either way
// Find (fast path), the slow path, Get, Range and Keys answer the same.
func TestInlineCellEdges(t *testing.T) {
	w, r := newAnon(t, 256<<10)
	w.SetReady(true)
	key29 := "ns/" + strings.Repeat("k", 26) // 29 bytes: key29 + ":" + "ab" is 32
	mixed := v4Nodes(3, 80, 1)
	mixed[2].Port = 81
	heavy := v4Nodes(3, 80, 1)
	heavy[1].Weight = 7
	cases := []struct {
		key    string
		ports  []Port
		inline bool
	}{
		{key29, []Port{{Name: "ab", Nodes: v4Nodes(4, 8080, 50)}}, true},                     // just fits: 32 bytes of text, 4 nodes
		{key29 + "x", []Port{{Name: "ab", Nodes: v4Nodes(4, 8080, 50)}}, false},              // one byte too many
		{"ns/b", []Port{{Name: strings.Repeat("p", 27), Nodes: v4Nodes(1, 80, 1)}}, true},    // a long port name: 4+1+27
		{"ns/c", []Port{{Name: strings.Repeat("p", 28), Nodes: v4Nodes(1, 80, 1)}}, false},   // 33
		{"ns/d", []Port{{Name: "http", Nodes: v4Nodes(5, 80, 1)}}, false},                    // a fifth node
		{"ns/e", []Port{{Name: "http", Nodes: []Node{ip("fd00::1", 80, 1)}}}, false},         // IPv6
		{"ns/f", []Port{{Name: "http", Nodes: []Node{ip("::ffff:10.0.0.1", 80, 1)}}}, false}, // IPv4-mapped IPv6 stays IPv6
		{"ns/g", []Port{{Name: "http", Nodes: mixed}}, false},                                // a node with its own port
		{"ns/h", []Port{{Name: "http", Nodes: heavy}}, false},                                // a node with its own weight
		{"ns/i", []Port{{Name: "http", Nodes: v4Nodes(1, 80, 1)}, {Name: "x"}}, false},       // two ports
		{"ns/j", []Port{{Name: "http", Number: 8443}}, true},                                 // a port with no node keeps its number
		{"ns/k", []Port{{Name: "", Nodes: v4Nodes(2, 0, 0)}}, true},                          // unnamed port, port 0, weight 0
		{"ns/l", nil, false}, // no port at all
		{"ns/m", []Port{{Name: "dns", Nodes: []Node{fqdn("a.example.com", 53, 1)}}}, false},             // a DNS name
		{"ns/n", []Port{{Name: "http", Nodes: v4Nodes(4, 65535, 0xffffffff)}}, true},                    // the widest port and weight
		{"a:b/c", []Port{{Name: "80", Nodes: v4Nodes(2, 80, 1)}}, true},                                 // a colon in the key
		{"ns/o", []Port{{Name: "http", Nodes: []Node{ip("255.255.255.255", 1, 1)}}}, true},              // every address bit set
		{"ns/p", []Port{{Name: "http", Nodes: []Node{ip("0.0.0.0", 1, 1), ip("0.0.0.1", 1, 1)}}}, true}, // zero bytes in the nodes
	}
	for _, c := range cases {
		require.NoError(t, w.Put(c.key, c.ports), c.key)
		assert.Equal(t, c.inline, inlineAt(t, w.t, c.key), "%s held inline", c.key)
		got, ok := r.Get(c.key)
		require.True(t, ok, c.key)
		assert.Equal(t, c.ports, got, "%s: Get", c.key)
		queries := []string{c.key + ":nope", c.key + ":8081", c.key + ":0", c.key + ":"}
		for _, p := range c.ports {
			queries = append(queries, c.key+":"+p.Name, c.key+":"+fmt.Sprint(p.Number))
			for _, n := range p.Nodes {
				queries = append(queries, c.key+":"+fmt.Sprint(n.Port))
			}
		}
		for _, q := range queries {
			for _, room := range []int{0, 3, 8} {
				got, ga := r.Find(make([]Node, 1, 1+room), q)
				want, wa := findReference(r, make([]Node, 1, 1+room), q)
				require.Equal(t, wa, ga, "%q room %d", q, room)
				require.Equal(t, fmt.Sprint(want), fmt.Sprint(got), "%q room %d", q, room)
			}
		}
		if len(c.ports) == 1 {
			nodes, a := r.Find(nil, c.key+":"+c.ports[0].Name)
			if len(c.ports[0].Nodes) == 0 {
				assert.Equal(t, Empty, a, c.key)
			} else {
				assert.Equal(t, Found, a, c.key)
				assert.Equal(t, c.ports[0].Nodes, nodes, c.key)
			}
		}
	}
	// By number: the port's number answers when no port has the name.
	nodes, a := r.Find(nil, key29+":8080")
	assert.Equal(t, Found, a)
	assert.Equal(t, v4Nodes(4, 8080, 50), nodes)
	_, a = r.Find(nil, "ns/j:8443")
	assert.Equal(t, Empty, a, "a port with no node answers Empty by number")
	_, a = r.Find(nil, "ns/j:8444")
	assert.Equal(t, Unknown, a)
	// A detail is never inline, and Range and Keys see every service once.
	require.NoError(t, w.PutDetail("ns/b", []byte("d")))
	_, rec, _ := w.t.find(w.t.shardOf(hashKey(detailKey("ns/b"))), tagOf(hashKey(detailKey("ns/b"))), detailKey("ns/b"))
	assert.False(t, rec.cell)
	seen := map[string]bool{}
	r.Range(func(k string, _ []Port) bool { seen[k] = true; return true })
	assert.Len(t, seen, len(cases))
	keys := 0
	w.Keys(func(string) bool { keys++; return true })
	assert.Equal(t, len(cases), keys)
	assert.Equal(t, len(cases), w.Stats().Entries)
}

// A service that grows out of its cell (a fifth node, a second port, a
// longer port name, IPv6) becomes a record, and one that shrinks back
// returns to its cell. Every step is one change in Changes (so OnChange
// reports it once), a reader sees each step exactly, the entry count
// stays one, and a Put of the same value changes nothing, inline or not.
// A file table reopened after each step (the writer's check) keeps it.
func TestInlineServiceMovesAsItGrowsAndShrinks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubernetes")
	w, err := Create(path, 64<<10)
	require.NoError(t, err)
	defer func() { w.Close() }()
	w.SetReady(true)
	r, err := Open(path)
	require.NoError(t, err)
	defer r.Close()
	// Neighbours in the same (only) shard, so the moves shift and
	// rebuild around other cells and records.
	for i := range 40 {
		ports := svcNodes(1+i%6, i)
		require.NoError(t, w.Put(fmt.Sprintf("ns/n-%d", i), ports))
	}
	const key = "ns/web"
	steps := []struct {
		ports  []Port
		inline bool
	}{
		{[]Port{{Name: "http", Nodes: v4Nodes(1, 80, 1)}}, true},
		{[]Port{{Name: "http", Nodes: v4Nodes(4, 80, 1)}}, true},
		{[]Port{{Name: "http", Nodes: v4Nodes(5, 80, 1)}}, false},
		{[]Port{{Name: "http", Nodes: v4Nodes(3, 80, 1)}}, true},
		{[]Port{{Name: "http", Nodes: v4Nodes(3, 80, 1)}, {Name: "https", Nodes: v4Nodes(3, 443, 1)}}, false},
		{[]Port{{Name: "http"}}, true},
		{[]Port{{Name: strings.Repeat("h", 26), Nodes: v4Nodes(2, 80, 1)}}, false},
		{[]Port{{Name: "http", Nodes: v4Nodes(2, 80, 2)}}, true},
		{[]Port{{Name: "http", Nodes: []Node{ip("fd00::1", 80, 2)}}}, false},
		{[]Port{{Name: "http", Nodes: v4Nodes(2, 80, 2)}}, true},
	}
	since, _ := r.Changes(0, nil)
	entries := 0
	for i, s := range steps {
		require.NoError(t, w.Put(key, s.ports), "step %d", i)
		if i == 0 {
			entries = w.Stats().Entries
		}
		assert.Equal(t, s.inline, inlineAt(t, w.t, key), "step %d inline", i)
		var changed []uint64
		now, complete := r.Changes(since, func(h uint64) { changed = append(changed, h) })
		require.True(t, complete, "step %d", i)
		assert.Equal(t, []uint64{hashKey(key)}, changed, "step %d: one change, the key's", i)
		since = now
		var names []string
		r.KeysWithHash(hashKey(key), func(k string) { names = append(names, k) })
		assert.Equal(t, []string{key}, names, "step %d", i)

		got, ok := r.Get(key)
		require.True(t, ok, "step %d", i)
		assert.Equal(t, s.ports, got, "step %d", i)
		for _, p := range s.ports {
			nodes, a := r.Find(make([]Node, 0, 8), key+":"+p.Name)
			if len(p.Nodes) == 0 {
				assert.Equal(t, Empty, a, "step %d port %s", i, p.Name)
			} else {
				assert.Equal(t, Found, a, "step %d port %s", i, p.Name)
				assert.Equal(t, p.Nodes, nodes, "step %d port %s", i, p.Name)
			}
		}
		assert.Equal(t, entries, w.Stats().Entries, "step %d: still one entry", i)

		// The same value again: nothing written, nothing logged.
		so := w.t.shardOf(hashKey(key))
		seq, stats := w.t.load(so+sSeq), w.Stats()
		require.NoError(t, w.Put(key, s.ports))
		assert.Equal(t, seq, w.t.load(so+sSeq), "step %d: the shard was not written", i)
		assert.Equal(t, stats, w.Stats(), "step %d", i)
		now, _ = r.Changes(since, nil)
		assert.Equal(t, since, now, "step %d: no change logged", i)

		// A writer restarting on the file checks every cell and record
		// and keeps them.
		require.NoError(t, w.Close())
		w, err = Create(path, 64<<10)
		require.NoError(t, err, "step %d", i)
		w.SetReady(true)
		assert.Equal(t, entries, w.Stats().Entries, "step %d after the restart", i)
		wr := w.Reader()
		got, ok = wr.Get(key)
		require.True(t, ok, "step %d after the restart", i)
		assert.Equal(t, s.ports, got, "step %d after the restart", i)
		for j := range 40 {
			got, ok := wr.Get(fmt.Sprintf("ns/n-%d", j))
			require.True(t, ok)
			assert.Equal(t, svcNodes(1+j%6, j), got)
		}
		require.NoError(t, wr.Close())
		require.Eventually(t, func() bool { return r.Generation() == w.t.load(hGeneration) }, 5*time.Second, time.Millisecond)
		since, _ = r.Changes(0, nil)
	}
	require.True(t, w.Delete(key))
	_, a := r.Find(nil, key+":http")
	assert.Equal(t, Unknown, a)
	assert.Equal(t, entries-1, w.Stats().Entries)
}

// hashKey is part of the layout (every process must hash alike): pinned
// values, its short form (16 to 32 bytes, also written out in Find) equal
// to the general one at every length, and keys spread evenly over shards
// and tags.
func TestHashKeyIsPinnedAndSpreads(t *testing.T) {
	assert.Equal(t, uint64(0xfaafdceb433aed05), hashKey("default/kubernetes"))
	assert.Equal(t, uint64(0x96ebbe173ff72a30), hashKey(""))
	assert.Equal(t, uint64(0x8031e397e2761f95), hashKey("a"))
	assert.Equal(t, uint64(0x9194e5d293846821), hashKey("kube-system/kube-dns"))
	assert.Equal(t, uint64(0xcdff431ae623eb87), hashKey("monitoring/prometheus-operator-kube-state-metrics"))
	b := make([]byte, 80)
	for i := range b {
		b[i] = byte('a' + i*7%26)
	}
	for n := range len(b) {
		require.Equal(t, hashAny(string(b[:n])), hashKey(string(b[:n])), "length %d", n)
	}
	const keys, shards = 200_000, 64
	var perShard [shards]int
	tags := map[uint64]bool{}
	for i := range keys {
		h := hashKey(fmt.Sprintf("ns-%d/service-%d", i%50, i))
		perShard[(h>>32)*shards>>32]++
		tags[tagOf(h)] = true
	}
	for s, n := range perShard {
		assert.InDelta(t, keys/shards, n, keys/shards/10, "shard %d", s)
	}
	assert.Greater(t, len(tags), keys-50, "tags collide about as often as random 32-bit values (%d distinct)", len(tags))
}

// A reader checks a cell's lengths when it finds the cell (entryAt), and
// again whenever it reads the cell later (key, keyIs, ports, answer): the
// writer may have changed it in between, and a length checked once must
// not be trusted the second time. A cell rewritten with lengths past its
// end after it was found yields nothing, never a panic.
func TestCellChangedAfterFoundNeverPanics(t *testing.T) {
	w, r := newAnon(t, 64<<10)
	w.SetReady(true)
	require.NoError(t, w.Put("ns/web", svcNodes(2, 1)))
	h := hashKey("ns/web")
	so := w.t.shardOf(h)
	_, rec, found := w.t.find(so, tagOf(h), "ns/web")
	require.True(t, found)
	require.True(t, rec.cell)
	w0 := w.t.load(rec.off)
	for _, bad := range []uint64{
		w0 | 0xff,       // keyLen 255
		w0 | 0xff<<8,    // nameLen 255
		w0 | 0xff<<16,   // 255 nodes
		w0 &^ 0xff,      // keyLen 0
		w0 &^ inlineBit, // not a cell any more
	} {
		w.t.store(rec.off, bad)
		assert.NotPanics(t, func() {
			assert.Equal(t, "", w.t.key(rec))
			assert.False(t, w.t.keyIs(rec, "ns/web"))
			_, ok := w.t.ports(rec)
			assert.False(t, ok)
			_, res := r.answer(w.t, so, 0, rec, "http", nil)
			assert.Equal(t, resCorrupt, res)
		}, "%#x", bad)
	}
	w.t.store(rec.off, w0)
	assert.Equal(t, "ns/web", w.t.key(rec))
}
