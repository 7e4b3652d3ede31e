package shm

import (
	"bytes"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bigNodes is n distinct nodes of one port: IPv4 (4 bytes a node in the
// table) or IPv6 (16 bytes), seed telling one set from another.
func bigNodes(n, seed int, v6 bool) []Node {
	nodes := make([]Node, n)
	for i := range nodes {
		var a netip.Addr
		if v6 {
			a = netip.AddrFrom16([16]byte{0xfd, 1: byte(seed), 12: byte(i >> 24), 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})
		} else {
			a = netip.AddrFrom4([4]byte{byte(10 + seed), byte(i >> 16), byte(i >> 8), byte(i)})
		}
		nodes[i] = Node{Addr: a, Port: 8080, Weight: 50}
	}
	slices.SortFunc(nodes, Compare)
	return nodes
}

// Issue 14 defect 1: a record may be up to a quarter of shared_size, far
// more than one shard (about 64 KiB). Before layout v5 every Put of such a
// service failed with "table full" and the old value stayed for good.
func TestBigServiceIsStored(t *testing.T) {
	w, r := newAnon(t, 4<<20) // 1 MiB a record at most; 100,000 IPv4 nodes are 400 KB
	w.SetReady(true)
	require.NoError(t, w.Put("small/one", svcNodes(3, 1)))
	base := w.Stats()

	for round := range 3 { // stored, then replaced twice
		nodes := bigNodes(100_000, round, false)
		require.NoError(t, w.Put("big/svc", []Port{{Name: "http", Nodes: nodes}, {Name: "admin"}}), "round %d", round)
		got, ans := r.Find(nil, "big/svc:http")
		require.Equal(t, Found, ans, "round %d", round)
		require.Equal(t, nodes, got, "round %d: exactly the new set", round)
		got, ans = r.Find(got[:0], "big/svc:8080")
		require.Equal(t, Found, ans)
		require.Equal(t, len(nodes), len(got))
		// Asked again, a big value is read from the head only (the whole
		// value is cached by its id): no allocation.
		assert.Zero(t, testing.AllocsPerRun(20, func() { got, _ = r.Find(got[:0], "big/svc:http") }))
		_, ans = r.Find(nil, "big/svc:admin")
		assert.Equal(t, Empty, ans)
		_, ans = r.Find(nil, "big/svc:nope")
		assert.Equal(t, Unknown, ans)
		ports, ok := r.Get("big/svc")
		require.True(t, ok)
		require.Len(t, ports, 2)
		assert.Equal(t, nodes, ports[0].Nodes)
		// Small values beside it are untouched.
		small, ok := r.Lookup(nil, "small/one:http")
		require.True(t, ok)
		assert.Equal(t, svcNodes(3, 1)[0].Nodes, small)
	}
	assert.Equal(t, 2, w.Stats().Entries)
	var keys []string
	w.Keys(func(k string) bool { keys = append(keys, k); return true })
	slices.Sort(keys)
	assert.Equal(t, []string{"big/svc", "small/one"}, keys, "the pieces of a big value are no keys")
	n := 0
	r.Range(func(k string, ports []Port) bool {
		n++
		if k == "big/svc" {
			assert.Equal(t, bigNodes(100_000, 2, false), ports[0].Nodes)
		}
		return true
	})
	assert.Equal(t, 2, n)
	var hashed []string
	r.KeysWithHash(KeyHash("big/svc"), func(k string) { hashed = append(hashed, k) })
	assert.Equal(t, []string{"big/svc"}, hashed)

	// Deleting it frees every piece.
	require.True(t, w.Delete("big/svc"))
	_, ans := r.Find(nil, "big/svc:http")
	assert.Equal(t, Unknown, ans)
	assert.Equal(t, base.UsedBytes, w.Stats().UsedBytes, "no piece left behind")
	assert.Equal(t, 1, w.Stats().Entries)
}

// A big value replaced by a small one, and back, and a big detail.
func TestBigValueAndDetailChangeSize(t *testing.T) {
	w, r := newAnon(t, 1<<20)
	w.SetReady(true)
	big := []Port{{Name: "grpc", Nodes: bigNodes(8000, 1, true)}} // 128 KB of IPv6
	require.NoError(t, w.Put("ns/v6", big))
	require.NoError(t, w.Put("ns/v6", svcNodes(2, 2)))
	got, ok := r.Lookup(nil, "ns/v6:http")
	require.True(t, ok)
	assert.Equal(t, svcNodes(2, 2)[0].Nodes, got)
	_, ans := r.Find(nil, "ns/v6:grpc")
	assert.Equal(t, Unknown, ans)
	require.NoError(t, w.Put("ns/v6", big))
	got, ok = r.Lookup(nil, "ns/v6:grpc")
	require.True(t, ok)
	assert.Equal(t, big[0].Nodes, got)

	detail := bytes.Repeat([]byte(`{"nodeName":"node-1","zone":"a"},`), 5000) // 165 KB
	require.NoError(t, w.PutDetail("ns/v6", detail))
	d, ok := r.Detail(nil, "ns/v6")
	require.True(t, ok)
	assert.Equal(t, detail, d)
	assert.Equal(t, 1, w.Stats().Entries, "a detail is no service")
	used := w.Stats().UsedBytes
	require.True(t, w.Delete("ns/v6"))
	_, ok = r.Detail(nil, "ns/v6")
	assert.False(t, ok, "Delete removes the detail too")
	assert.Less(t, w.Stats().UsedBytes, used/10)
}

// A record over a quarter of shared_size is refused, naming the service,
// its size and the shared_size it needs; the old value stays.
func TestTooBigServiceNamesTheSizeItNeeds(t *testing.T) {
	w, r := newAnon(t, 1<<20)
	w.SetReady(true)
	require.NoError(t, w.Put("ns/huge", svcNodes(3, 1)))
	err := w.Put("ns/huge", []Port{{Name: "http", Nodes: bigNodes(70_000, 1, false)}}) // 280 KB > 256 KiB
	var full *FullError
	require.ErrorAs(t, err, &full)
	assert.Equal(t, "ns/huge", full.Key)
	assert.Greater(t, full.Need, 280_000)
	assert.GreaterOrEqual(t, full.NeedSize, int64(4*full.Need))
	assert.Contains(t, err.Error(), "ns/huge")
	assert.Contains(t, err.Error(), fmt.Sprint(full.NeedSize))
	assert.Contains(t, err.Error(), "shared_size")
	got, ok := r.Lookup(nil, "ns/huge:http")
	require.True(t, ok)
	assert.Equal(t, svcNodes(3, 1)[0].Nodes, got, "the old value stays")
}

// A big value that fits the table's free space only after compaction is
// stored, and one that does not fit at all keeps the old value and leaves
// nothing behind.
func TestBigServiceFillsFreeSpaceOrFailsCleanly(t *testing.T) {
	w, r := newAnon(t, 1<<20)
	w.SetReady(true)
	for i := 0; ; i++ { // fill the table with small services
		if err := w.Put(fmt.Sprintf("fill/s-%d", i), svcNodes(8, i)); err != nil {
			break
		}
	}
	entries, bytes := liveRecords(w.t)
	var full *FullError
	require.ErrorAs(t, w.Put("ns/big", []Port{{Name: "http", Nodes: bigNodes(30_000, 1, false)}}), &full)
	assert.Zero(t, full.NeedSize, "it would fit an emptier table of this size")
	// (An index a piece made grow stays grown, as after any delete.)
	e2, b2 := liveRecords(w.t)
	assert.Equal(t, entries, e2, "a refused big value leaves no piece behind")
	assert.Equal(t, bytes, b2, "a refused big value leaves no piece behind")
	// Delete every other service: now there is room, scattered over shards.
	deleted := 0
	w.Keys(func(k string) bool {
		if deleted%2 == 0 {
			w.Delete(k)
		}
		deleted++
		return true
	})
	nodes := bigNodes(30_000, 1, false) // 120 KB
	require.NoError(t, w.Put("ns/big", []Port{{Name: "http", Nodes: nodes}}))
	got, ok := r.Lookup(nil, "ns/big:http")
	require.True(t, ok)
	assert.Equal(t, nodes, got)
}

// A writer restarting on a file with big values keeps them whole, and a
// new size carries them over.
func TestBigServiceAcrossWriterRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubernetes")
	w, err := Create(path, 1<<20)
	require.NoError(t, err)
	nodes := bigNodes(20_000, 3, false)
	require.NoError(t, w.Put("ns/big", []Port{{Name: "http", Nodes: nodes}}))
	require.NoError(t, w.PutDetail("ns/big", bytes.Repeat([]byte("d"), 100_000)))
	require.NoError(t, w.Close())
	for _, size := range []int64{1 << 20, 2 << 20} {
		w, err = Create(path, size)
		require.NoError(t, err)
		assert.Equal(t, 1, w.Stats().Entries)
		r := w.Reader()
		got, ok := r.Lookup(nil, "ns/big:http")
		require.True(t, ok, "size %d", size)
		assert.Equal(t, nodes, got)
		d, ok := r.Detail(nil, "ns/big")
		require.True(t, ok)
		assert.Len(t, d, 100_000)
		require.NoError(t, r.Close())
		require.NoError(t, w.Close())
	}
}

// Issue 12, item 1: a port NAMED like the query's number wins; only when
// no port has that name is the query the union of the ports numbered so.
// kompose names every port by its number: compose "8080:80" and
// "9090:8080" give ports "8080" (target 80) and "9090" (target 8080).
func TestNumberQueryPortNamedSoWins(t *testing.T) {
	w, r := newAnon(t, 64<<10)
	w.SetReady(true)
	require.NoError(t, w.Put("ns/web", []Port{
		{Name: "8080", Nodes: []Node{ip("10.0.0.1", 80, 1), ip("10.0.0.2", 80, 1)}},
		{Name: "9090", Nodes: []Node{ip("10.0.0.3", 8080, 1)}},
	}))
	got, ans := r.Find(nil, "ns/web:8080")
	require.Equal(t, Found, ans)
	assert.Equal(t, []Node{ip("10.0.0.1", 80, 1), ip("10.0.0.2", 80, 1)}, got, "only the port named 8080")
	got, ans = r.Find(nil, "ns/web:9090")
	require.Equal(t, Found, ans)
	assert.Equal(t, []Node{ip("10.0.0.3", 8080, 1)}, got)
	got, ans = r.Find(nil, "ns/web:80") // no port named 80: by number
	require.Equal(t, Found, ans)
	assert.Equal(t, []Node{ip("10.0.0.1", 80, 1), ip("10.0.0.2", 80, 1)}, got)

	// A port named so with no address: empty, even though another port
	// has nodes numbered so.
	require.NoError(t, w.Put("ns/web", []Port{
		{Name: "8080", Number: 80},
		{Name: "9090", Nodes: []Node{ip("10.0.0.3", 8080, 1)}},
	}))
	_, ans = r.Find(nil, "ns/web:8080")
	assert.Equal(t, Empty, ans)
}

// Issue 12, item 2: a named port with no address answers empty when asked
// by its number too, not unknown.
func TestEmptyNamedPortIsEmptyByNumber(t *testing.T) {
	w, r := newAnon(t, 64<<10)
	w.SetReady(true)
	require.NoError(t, w.Put("ns/web", []Port{
		{Name: "http", Number: 8080},
		{Name: "metrics", Nodes: []Node{ip("10.0.0.1", 9090, 1)}},
	}))
	_, ans := r.Find(nil, "ns/web:http")
	assert.Equal(t, Empty, ans)
	_, ans = r.Find(nil, "ns/web:8080")
	assert.Equal(t, Empty, ans, "the same port, by number")
	_, ans = r.Find(nil, "ns/web:8081")
	assert.Equal(t, Unknown, ans)
	ports, ok := r.Get("ns/web")
	require.True(t, ok)
	assert.Equal(t, []Port{{Name: "http", Number: 8080}, {Name: "metrics", Nodes: []Node{ip("10.0.0.1", 9090, 1)}}}, ports)
}

// liveRecords counts the index entries of every shard of tb and the bytes
// of their records (a cell's service takes none).
func liveRecords(tb *table) (entries, bytes uint64) {
	for i := range tb.shards {
		so := tb.shardAt(i)
		tb.eachEntry(so, func(_ slotRef, _ uint64, r record) bool {
			entries++
			bytes += r.size()
			return true
		})
	}
	return entries, bytes
}
