package shm

import (
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func tablePath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "sub", "kubernetes") // Create makes the directory
}

func TestFileReadyAcrossOpen(t *testing.T) {
	path := tablePath(t)
	w, err := Create(path, 128<<10)
	require.NoError(t, err)
	defer w.Close()
	require.NoError(t, w.Put("default/web", svcNodes(3, 7)))

	r, err := Open(path)
	require.NoError(t, err)
	defer r.Close()
	assert.False(t, r.Ready())
	w.SetReady(true)
	assert.True(t, r.Ready())
	nodes, ok := r.Lookup(nil, "default/web:http")
	require.True(t, ok)
	assert.Equal(t, svcNodes(3, 7)[0].Nodes, nodes)

	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, int64(128<<10), fi.Size())
	assert.Equal(t, fs.FileMode(0o644), fi.Mode().Perm())

	require.NoError(t, w.Close())
	assert.False(t, r.Ready(), "Close marks the table not ready")
	_, ok = r.Lookup(nil, "default/web:http")
	assert.True(t, ok, "the file stays for readers")
}

func TestFileSecondWriterRefused(t *testing.T) {
	path := tablePath(t)
	w, err := Create(path, MinSize)
	require.NoError(t, err)
	_, err = Create(path, MinSize)
	require.Error(t, err)
	assert.Equal(t, "shm: another kdisc run is writing "+path, err.Error())
	_, err = Create(path, 2*MinSize) // a different size must not replace it either
	assert.ErrorContains(t, err, "another kdisc run is writing")
	require.NoError(t, w.Close())

	w2, err := Create(path, MinSize) // the lock went with Close
	require.NoError(t, err)
	require.NoError(t, w2.Close())
}

func TestFileReuseKeepsEntries(t *testing.T) {
	path := tablePath(t)
	w, err := Create(path, 256<<10)
	require.NoError(t, err)
	for i := range 100 {
		require.NoError(t, w.Put(fmt.Sprintf("ns/svc-%d", i), svcNodes(1+i%5, i)))
	}
	w.SetReady(true)
	r, err := Open(path)
	require.NoError(t, err)
	defer r.Close()
	gen := r.Generation()
	require.NoError(t, w.Close())

	w, err = Create(path, 256<<10)
	require.NoError(t, err)
	defer w.Close()
	assert.False(t, r.Ready(), "a reused table is not ready until the new writer says so")
	assert.NotEqual(t, gen, r.Generation(), "a new writer run")
	st := w.Stats()
	assert.Equal(t, 100, st.Entries)
	for i := range 100 {
		got, ok := r.Get(fmt.Sprintf("ns/svc-%d", i))
		require.True(t, ok, i)
		assert.Equal(t, svcNodes(1+i%5, i), got)
	}
	// The new writer's bookkeeping matches the data it inherited: deleting
	// everything frees everything.
	w.Keys(func(k string) bool { return assert.True(t, w.Delete(k)) })
	assert.Equal(t, int64(headerBytes+w.t.shards*shardHeaderBytes), w.Stats().UsedBytes)
}

func TestFileReuseRepairsInterruptedShard(t *testing.T) {
	path := tablePath(t)
	w, err := Create(path, 256<<10) // 4 shards
	require.NoError(t, err)
	for i := range 200 {
		require.NoError(t, w.Put(fmt.Sprintf("ns/svc-%d", i), svcNodes(2, i)))
	}
	// Simulate a writer that died in the middle of changing one shard.
	h := hashKey("ns/svc-0")
	so := w.t.shardOf(h)
	w.t.store(so+sSeq, w.t.load(so+sSeq)|1)
	require.NoError(t, w.Close())

	w, err = Create(path, 256<<10)
	require.NoError(t, err)
	defer w.Close()
	r := w.Reader()
	defer r.Close()
	_, ok := r.Get("ns/svc-0")
	assert.False(t, ok, "the interrupted shard was emptied")
	kept := 0
	for i := range 200 {
		k := fmt.Sprintf("ns/svc-%d", i)
		if got, ok := r.Get(k); ok {
			kept++
			assert.Equal(t, svcNodes(2, i), got)
		} else {
			assert.Equal(t, so, w.t.shardOf(hashKey(k)), k)
		}
	}
	assert.Equal(t, kept, w.Stats().Entries)
	assert.Greater(t, kept, 100)
	require.NoError(t, w.Put("ns/svc-0", svcNodes(1, 0)))
	_, ok = r.Get("ns/svc-0")
	assert.True(t, ok)
}

func TestFileSizeChangeRetiresOldFile(t *testing.T) {
	path := tablePath(t)
	w, err := Create(path, 64<<10)
	require.NoError(t, err)
	require.NoError(t, w.Put("default/old", svcNodes(1, 1)))
	w.SetReady(true)
	require.NoError(t, w.Close())

	r, err := Open(path)
	require.NoError(t, err)
	defer r.Close()
	_, ok := r.Lookup(nil, "default/old:http")
	require.True(t, ok)
	old := r.cur.Load()

	w, err = Create(path, 128<<10)
	require.NoError(t, err)
	defer w.Close()
	require.NoError(t, w.Put("default/new", svcNodes(2, 2)))
	w.SetReady(true)
	assert.Equal(t, uint64(1), old.load(hRetired), "the old file is retired")

	// The reader re-attaches on its next calls (re-opens are rate-limited).
	var nodes []Node
	poll(t, 5*time.Second, "the reader to re-attach", func() bool {
		var ok bool
		nodes, ok = r.Lookup(nil, "default/new:http")
		return ok
	})
	assert.Equal(t, svcNodes(2, 2)[0].Nodes, nodes)
	assert.True(t, r.Ready())
	_, ok = r.Lookup(nil, "default/old:http")
	assert.True(t, ok, "the new table starts with the old content (the first list corrects it)")
	r.mu.Lock()
	assert.LessOrEqual(t, len(r.old), 1, "the old mapping is kept for a grace period")
	r.mu.Unlock()

	// Nothing but the table is left in the directory.
	ents, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	require.Len(t, ents, 1)
	assert.Equal(t, "kubernetes", ents[0].Name())
}

func TestFileOpenErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(filepath.Join(dir, "absent"))
	require.ErrorIs(t, err, fs.ErrNotExist)
	assert.ErrorContains(t, err, "no kdisc table at")

	junk := filepath.Join(dir, "junk")
	require.NoError(t, os.WriteFile(junk, make([]byte, 64<<10), 0o644))
	_, err = Open(junk)
	assert.EqualError(t, err, "shm: "+junk+" is not a kdisc table (bad magic)")

	short := filepath.Join(dir, "short")
	require.NoError(t, os.WriteFile(short, []byte("hello"), 0o644))
	_, err = Open(short)
	assert.ErrorContains(t, err, "is not a kdisc table")

	_, err = Open(dir)
	assert.ErrorContains(t, err, "is not a kdisc table")

	// A table truncated behind its header's back is refused too.
	path := filepath.Join(dir, "table")
	w, err := Create(path, 64<<10)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	require.NoError(t, os.Truncate(path, 32<<10))
	_, err = Open(path)
	assert.ErrorContains(t, err, "header says 65536 bytes")

	// A writer replaces a file that is not a table.
	w, err = Create(junk, MinSize)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	r, err := Open(junk)
	require.NoError(t, err)
	require.NoError(t, r.Close())
}

func TestWriterReaderOutlivesWriter(t *testing.T) {
	w, err := Create("", MinSize)
	require.NoError(t, err)
	require.NoError(t, w.Put("a/b", svcNodes(1, 1)))
	r := w.Reader()
	require.NoError(t, w.Close())
	_, ok := r.Lookup(nil, "a/b:http")
	assert.True(t, ok, "the mapping lives until the last user closes")
	assert.ErrorIs(t, w.Put("a/b", nil), errClosed)
	require.NoError(t, r.Close())
	_, ok = r.Lookup(nil, "a/b:http")
	assert.False(t, ok)
}

// A table of another layout version is refused by readers with a clear
// error, and a writer replaces it and retires it, so that readers of the
// build that wrote it re-open the path.
func TestFileOtherLayoutVersionRetired(t *testing.T) {
	path := tablePath(t)
	w, err := Create(path, 64<<10)
	require.NoError(t, err)
	require.NoError(t, w.Put("default/old", svcNodes(1, 1)))
	w.t.store(hVersion, oldestRead-1)
	require.NoError(t, w.Close())

	_, err = Open(path)
	assert.EqualError(t, err, fmt.Sprintf("shm: %s has table layout version %d, written by an older kdisc; this build reads versions %d and %d: a new kdisc run replaces it when it starts", path, oldestRead-1, oldestRead, layoutVersion))

	old := mapAsOldReader(t, path)

	w, err = Create(path, 64<<10)
	require.NoError(t, err)
	defer w.Close()
	assert.Equal(t, uint64(1), old.load(hRetired), "the old file is retired")
	require.NoError(t, w.Put("default/new", svcNodes(2, 2)))
	r, err := Open(path)
	require.NoError(t, err)
	defer r.Close()
	assert.NotEqual(t, old.load(hGeneration), r.Generation())
	_, ok := r.Lookup(nil, "default/old:http")
	assert.False(t, ok, "the new table starts empty")
	nodes, ok := r.Lookup(nil, "default/new:http")
	require.True(t, ok)
	assert.Equal(t, svcNodes(2, 2)[0].Nodes, nodes)
}

// A table removed and made anew used to start at generation 1 like its
// predecessor: a reader comparing generations (OnChange) took the new file
// for the old one and, with equal change counts, reported nothing.
// Generations must never repeat, across files and writer runs.
func TestGenerationNeverRepeats(t *testing.T) {
	path := tablePath(t)
	seen := map[uint64]bool{}
	gen := func(w *Writer) uint64 {
		t.Helper()
		g := w.t.load(hGeneration)
		assert.NotZero(t, g)
		assert.False(t, seen[g], "generation %d repeated", g)
		seen[g] = true
		return g
	}
	for range 3 { // removed and made anew
		w, err := Create(path, 64<<10)
		require.NoError(t, err)
		gen(w)
		require.NoError(t, w.Close())
		require.NoError(t, os.Remove(path))
	}
	for _, size := range []int64{64 << 10, 64 << 10, 128 << 10} { // new, reused in place, resized
		w, err := Create(path, size)
		require.NoError(t, err)
		gen(w)
		require.NoError(t, w.Close())
	}
	for range 2 { // anonymous
		w, err := Create("", 64<<10)
		require.NoError(t, err)
		gen(w)
		require.NoError(t, w.Close())
	}
}

// The change log of a file removed and made anew, with as many changes as
// the old one: a reader following the path must learn that its log starts
// anew (another generation), not that nothing changed.
func TestChangesAfterFileRecreated(t *testing.T) {
	path := tablePath(t)
	w := webTable(t, path, "10.0.0.1")
	r, err := Open(path)
	require.NoError(t, err)
	defer r.Close()
	gen := r.Generation()
	since, _ := r.Changes(0, nil)
	require.NoError(t, w.Close())
	require.NoError(t, os.Remove(path))

	w2 := webTable(t, path, "10.0.0.2") // one change, as the old file had
	defer w2.Close()
	poll(t, 5*time.Second, "the reader to follow the new file", func() bool {
		nodes, ok := r.Lookup(nil, "a/web:http")
		return ok && nodes[0].Addr.String() == "10.0.0.2"
	})
	now, complete := r.Changes(since, nil)
	assert.False(t, gen == r.Generation() && complete && now == since,
		"a new file looks like the old one with no change (generation %d, changes %d)", gen, now)
	assert.NotEqual(t, gen, r.Generation())
}

// A reader that found the old file's writer dead remembers it per
// generation; a new file with a repeated generation made it take the new,
// live writer for dead (spurious NotReady while a shard is being written).
func TestDeadWriterCacheIsPerFile(t *testing.T) {
	path := tablePath(t)
	r := readerOfDeadWriter(t, path)
	setShardOdd(t, path, "a/web")
	_, ans := r.Find(nil, "a/web:http")
	require.Equal(t, NotReady, ans)
	require.True(t, r.writerDead(r.cur.Load()), "the dead writer is known")
	require.NoError(t, os.Remove(path))

	w2 := webTable(t, path, "10.0.0.2")
	defer w2.Close()
	poll(t, 5*time.Second, "the reader to follow the new file", func() bool {
		nodes, ok := r.Lookup(nil, "a/web:http")
		return ok && nodes[0].Addr.String() == "10.0.0.2"
	})
	assert.False(t, r.writerDead(r.cur.Load()), "the new file's writer is alive")
}

// kdisc_table_entries counts services; a restart used to count their
// detail records too (2 services, then 4).
func TestReuseCountsServicesNotDetails(t *testing.T) {
	path := tablePath(t)
	w, err := Create(path, 64<<10)
	require.NoError(t, err)
	for _, k := range []string{"a/web", "a/db"} {
		require.NoError(t, w.Put(k, svcNodes(2, 1)))
		require.NoError(t, w.PutDetail(k, []byte("detail of "+k)))
	}
	require.Equal(t, 2, w.Stats().Entries)
	used := w.Stats().UsedBytes
	require.NoError(t, w.Close())

	w, err = Create(path, 64<<10) // reused in place
	require.NoError(t, err)
	assert.Equal(t, 2, w.Stats().Entries, "after a restart")
	assert.Equal(t, used, w.Stats().UsedBytes, "after a restart")
	require.NoError(t, w.Close())

	w, err = Create(path, 128<<10) // copied into a new size
	require.NoError(t, err)
	defer w.Close()
	assert.Equal(t, 2, w.Stats().Entries, "after a resize")
}

// A running writer whose table file is removed (a tmp cleaner, an
// operator) made it anew only when it restarted: readers started
// meanwhile could not attach. It must notice, and recreate the file with
// its current content.
func TestWriterRecreatesRemovedFile(t *testing.T) {
	path := tablePath(t)
	w := webTable(t, path, "10.0.0.1")
	defer w.Close()
	require.NoError(t, w.PutDetail("a/web", []byte("detail")))
	early, err := Open(path)
	require.NoError(t, err)
	defer early.Close()
	inProcess := w.Reader()
	defer inProcess.Close()
	require.NoError(t, os.Remove(path))

	poll(t, 5*time.Second, "the table file to be made anew", func() bool {
		_, err := os.Stat(path)
		return err == nil
	})
	late, err := Open(path)
	require.NoError(t, err, "a reader started after the removal attaches")
	defer late.Close()
	for name, r := range map[string]*Reader{"late": late, "early": early, "in-process": inProcess} {
		poll(t, 5*time.Second, name+" reader to serve the new file", func() bool {
			nodes, ok := r.Lookup(nil, "a/web:http")
			return ok && nodes[0].Addr.String() == "10.0.0.1" && r.Ready()
		})
		detail, ok := r.Detail(nil, "a/web")
		assert.True(t, ok, name)
		assert.Equal(t, "detail", string(detail), name)
	}
	assert.Equal(t, 1, w.Stats().Entries)

	// The writer writes the new file from then on.
	require.NoError(t, w.Put("a/db", []Port{{Name: "sql", Nodes: []Node{ip("10.0.0.5", 5432, 1)}}}))
	for name, r := range map[string]*Reader{"late": late, "early": early, "in-process": inProcess} {
		poll(t, 5*time.Second, name+" reader to see a/db", func() bool {
			_, ok := r.Lookup(nil, "a/db:sql")
			return ok
		})
	}
	ents, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	require.Len(t, ents, 1, "no temporary file left")
}

// A replaced table's mapping stayed mapped, and its pages charged to the
// reader, until the reader's Close. It must be released once no lookup
// can still be reading it (after replacedGrace), as zero pages: a lookup
// that still reads it answers NotReady.
func TestReaderDropsReplacedMapping(t *testing.T) {
	defer func(g time.Duration) { replacedGrace = g }(replacedGrace)
	replacedGrace = 50 * time.Millisecond
	path := tablePath(t)
	w := webTable(t, path, "10.0.0.1")
	defer w.Close()
	r, err := Open(path)
	require.NoError(t, err)
	defer r.Close()
	inProcess := w.Reader()
	defer inProcess.Close()
	released := func(r *Reader, old *table, what string) {
		t.Helper()
		poll(t, 5*time.Second, what+": the replaced mapping to be released", func() bool {
			r.mu.Lock()
			defer r.mu.Unlock()
			return len(r.old) == 0 && r.cur.Load() != old
		})
		assert.Zero(t, mappingRss(t, old.mem), "%s: no page of the replaced table stays resident", what)
		assert.Zero(t, old.load(hMagic), "%s: zero pages", what)
		_, ans := newReader("", old).Find(nil, "a/web:http")
		assert.Equal(t, NotReady, ans, "%s: a lookup still on the replaced mapping", what)
		nodes, ok := r.Lookup(nil, "a/web:http")
		require.True(t, ok, "%s: the new file has the old content", what)
		assert.Equal(t, "10.0.0.1", nodes[0].Addr.String())
	}

	// Removed: the writer makes it anew.
	old, oldIP := r.cur.Load(), inProcess.cur.Load()
	for _, r := range []*Reader{r, inProcess} {
		_, ok := r.Lookup(nil, "a/web:http")
		require.True(t, ok)
	}
	require.NotZero(t, mappingRss(t, old.mem), "the lookup touched the mapping")
	require.NoError(t, os.Remove(path))
	released(r, old, "removed")
	released(inProcess, oldIP, "removed, in-process")

	// Replaced by a new size.
	old = r.cur.Load()
	require.NoError(t, inProcess.Close()) // its mapping holds the writer's lock
	require.NoError(t, w.Close())
	w2, err := Create(path, 128<<10)
	require.NoError(t, err)
	defer w2.Close()
	w2.SetReady(true)
	released(r, old, "resized")
}

// mappingRss is the resident size, in kB, of the mapping that holds mem
// (from /proc/self/smaps).
func mappingRss(t *testing.T, mem []byte) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/smaps")
	require.NoError(t, err)
	addr := uint64(uintptr(unsafe.Pointer(unsafe.SliceData(mem))))
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if lo, hi, ok := strings.Cut(f[0], "-"); ok && !strings.HasSuffix(f[0], ":") {
			a, err1 := strconv.ParseUint(lo, 16, 64)
			z, err2 := strconv.ParseUint(hi, 16, 64)
			in = err1 == nil && err2 == nil && a <= addr && addr < z
			continue
		}
		if in && f[0] == "Rss:" {
			kb, err := strconv.Atoi(f[1])
			require.NoError(t, err)
			return kb
		}
	}
	t.Fatalf("no mapping at %#x in /proc/self/smaps", addr)
	return 0
}

// The pages of a table that hold no data must not be resident: kdisc run
// with 10,000 services in a 4 MiB table had every page of the mapping
// resident after 100k changes (~860 kB in use), because each new value
// went lower in its shard's free gap until a compaction, sweeping the
// whole shard. The writer's mapping, and a reader's that read every
// service, must stay near the bytes in use.
func TestChurnKeepsTheMappingSparse(t *testing.T) {
	const services, changes = 10000, 100000
	path := tablePath(t)
	w, err := Create(path, 4<<20)
	require.NoError(t, err)
	defer w.Close()
	value := func(i, v int) []Port {
		var nodes []Node
		for a := range 3 {
			nodes = append(nodes, Node{Addr: netip.AddrFrom4([4]byte{10, byte(v), byte(i), byte(a + 1)}), Port: 8080, Weight: 1})
		}
		return []Port{{Name: "http", Nodes: nodes}}
	}
	key := func(i int) string { return fmt.Sprintf("team-%d/service-%d", i%100, i) }
	for i := range services {
		require.NoError(t, w.Put(key(i), value(i, 0)))
	}
	for e := range changes {
		require.NoError(t, w.Put(key(e%services), value(e%services, e/services+1)))
	}
	st := w.Stats()
	r, err := Open(path)
	require.NoError(t, err)
	defer r.Close()
	for i := range services {
		_, ok := r.Lookup(nil, key(i)+":http")
		require.True(t, ok)
	}
	used := int(st.UsedBytes >> 10)
	writer, reader := mappingRss(t, w.t.mem), mappingRss(t, r.cur.Load().mem)
	t.Logf("%d kB in use of %d kB; resident: writer %d kB, reader %d kB; %d compactions", used, st.TotalBytes>>10, writer, reader, st.Compactions)
	assert.LessOrEqual(t, writer, 2*used, "the writer's resident pages")
	assert.LessOrEqual(t, reader, 2*used, "the reader's resident pages")
}

// Upgrades (issue 14): this build's reader reads a v4 table, so proxies can be
// upgraded before the writer; its writer migrates a v4 table into a new
// file (its entries copied, the old one retired), never writing v5
// records into a file v4 readers may still map; and a reader refuses a
// newer layout with a message that says what to upgrade.
func TestV4TableReadThenMigrated(t *testing.T) {
	path := tablePath(t)
	w := createV4(t, path, 64<<10)
	// What a v4 writer stores: 8-byte index slots, records only (v4
	// records are v7 records without big values and without the number
	// of a port with no node), here a service that v7 would hold inline.
	require.NoError(t, w.Put("default/web", []Port{{Name: "http", Nodes: svcNodes(3, 1)[0].Nodes}, {Name: "admin"}}))
	require.NoError(t, w.Put("default/one", svcNodes(3, 2)))
	w.SetReady(true)
	require.Equal(t, uint64(4), w.t.load(hVersion))
	_, rec, _ := w.t.find(w.t.shardOf(w.t.hash("default/one")), tagOf(w.t.hash("default/one")), "default/one")
	require.False(t, rec.cell, "a v4 table holds no inline cell")

	r, err := Open(path)
	require.NoError(t, err, "this build reads a v4 table")
	nodes, ans := r.Find(nil, "default/web:http")
	require.Equal(t, Found, ans)
	assert.Equal(t, svcNodes(3, 1)[0].Nodes, nodes)
	nodes, ans = r.Find(make([]Node, 0, 8), "default/one:http") // the fast path refuses a v4 table; the slow path reads it
	require.Equal(t, Found, ans)
	assert.Equal(t, svcNodes(3, 2)[0].Nodes, nodes)
	// A v4 writer logs xxhash values; Changes reports KeyHash (layout 7's
	// hash) values all the same, and KeysWithHash finds the keys by them.
	var changed []uint64
	now, complete := r.Changes(0, func(h uint64) { changed = append(changed, h) })
	require.True(t, complete)
	assert.Equal(t, []uint64{KeyHash("default/web"), KeyHash("default/one")}, changed)
	var names []string
	r.KeysWithHash(KeyHash("default/one"), func(k string) { names = append(names, k) })
	assert.Equal(t, []string{"default/one"}, names)
	require.True(t, w.Delete("default/gone") == false)
	require.NoError(t, w.Put("default/gone", svcNodes(1, 3)))
	require.True(t, w.Delete("default/gone"))
	_, complete = r.Changes(now, func(uint64) {})
	assert.False(t, complete, "a deleted key cannot be named from a v4 log: the caller re-reads all")
	_, ans = r.Find(nil, "default/web:8080")
	assert.Equal(t, Found, ans)
	_, ans = r.Find(nil, "default/web:admin")
	assert.Equal(t, Empty, ans)
	require.NoError(t, w.Close())

	w, err = Create(path, 64<<10)
	require.NoError(t, err)
	defer w.Close()
	w.SetReady(true)
	assert.Equal(t, uint64(layoutVersion), w.t.load(hVersion), "a new file of this layout")
	wr := w.Reader() // closed: a reader left open follows its path (and allocates) for the rest of the run
	defer wr.Close()
	got, ok := wr.Get("default/web")
	require.True(t, ok, "the v4 entries are migrated")
	assert.Equal(t, svcNodes(3, 1)[0].Nodes, got[0].Nodes)
	_, rec, _ = w.t.find(w.t.shardOf(hashKey("default/one")), tagOf(hashKey("default/one")), "default/one")
	require.True(t, rec.cell, "migrated into an inline cell")
	got, ok = wr.Get("default/one")
	require.True(t, ok)
	assert.Equal(t, svcNodes(3, 2), got)
	require.Eventually(t, func() bool { return r.Generation() == w.t.load(hGeneration) }, 5*time.Second, time.Millisecond,
		"the reader follows the retired v4 file to the new one")
	nodes, ans = r.Find(nil, "default/web:http")
	require.Equal(t, Found, ans)
	assert.Equal(t, svcNodes(3, 1)[0].Nodes, nodes)
	require.NoError(t, r.Close())

	w.t.store(hVersion, layoutVersion+1)
	_, err = Open(path)
	assert.EqualError(t, err, fmt.Sprintf("shm: %s has table layout version %d, written by a newer kdisc; this build reads versions %d and %d: upgrade the readers (proxies) before the writer (kdisc run)", path, layoutVersion+1, oldestRead, layoutVersion))
	w.t.store(hVersion, layoutVersion)
}

// Find does not check for a v4 table (another hash) up front: each of its
// paths that would use layout 7's hash checks for one (the cell count,
// findAny, the record paths). A missing check would show for a key whose
// shard under layout 7's hash is empty: the record path would answer
// Unknown. Keys that Find splits each way (under a word, a cell's text,
// too long for a cell) are found in such a table.
func TestFindV4TableEveryPath(t *testing.T) {
	path := tablePath(t)
	w := createV4(t, path, 1<<20)
	defer w.Close()
	w.SetReady(true)
	r, err := Open(path)
	require.NoError(t, err)
	defer r.Close()
	for _, prefix := range []string{"ns/a", "default/web", "default/a-name-too-long-for-a-cell"} {
		var key string
		for i := 0; ; i++ {
			key = fmt.Sprintf("%s-%d", prefix, i)
			so := w.t.shardOf(hashKey(key))
			if so != w.t.shardOf(hashV4(key)) && w.t.load(so+sCap) == 0 {
				break
			}
		}
		require.NoError(t, w.Put(key, svcNodes(3, 1)))
		for _, q := range []string{key + ":http", key + ":8080"} {
			nodes, ans := r.Find(make([]Node, 0, 8), q)
			require.Equal(t, Found, ans, q)
			assert.Equal(t, svcNodes(3, 1)[0].Nodes, nodes, q)
		}
	}
}

// mapAsOldReader maps the 64 KiB table at path read-only, as a reader of
// an older build holds it, until the test ends.
func mapAsOldReader(t *testing.T, path string) *table {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	mem, err := mapFile(f, 64<<10, false)
	require.NoError(t, err)
	f.Close()
	t.Cleanup(func() { unmap(mem) })
	return newTable(mem, geometry{size: 64 << 10})
}

// createV4 makes the table a v4 writer made at path: 8-byte index slots,
// every value a record (the writer's code is the same for both slot
// sizes, and never holds a service inline in a v4 table).
func createV4(t *testing.T, path string, size int64) *Writer {
	t.Helper()
	g, err := geometryFor(size)
	require.NoError(t, err)
	g.version = 4
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	nf, tb, err := buildTemp(path, g, newGeneration(0))
	require.NoError(t, err)
	w := newWriter(tb, nf, path)
	require.NoError(t, os.Rename(nf.Name(), path))
	return w
}

// A table a pre-release build wrote as version 5 (8-byte index slots that
// v7 would misread as cells) or 6 (every record pointed at from a 64-byte
// cell, which v7 would misread as a cell index and record slots) is
// refused by readers, never misread, and a writer replaces it (retired,
// not copied: this build cannot read it).
func TestPreReleaseV5TableRefused(t *testing.T) {
	for _, v := range []uint64{preRelease, preRelease6} {
		t.Run(fmt.Sprint("v", v), func(t *testing.T) {
			path := tablePath(t)
			var w *Writer
			if v == preRelease {
				w = createV4(t, path, 64<<10)
			} else {
				var err error
				w, err = Create(path, 64<<10)
				require.NoError(t, err)
			}
			require.NoError(t, w.Put("default/web", svcNodes(3, 1)))
			require.NoError(t, w.Put("default/web-with-a-key-too-long-for-a-cell", svcNodes(3, 1)))
			w.t.store(hVersion, v)
			require.NoError(t, w.Close())

			_, err := Open(path)
			assert.EqualError(t, err, fmt.Sprintf("shm: %s has table layout version %d, written by a pre-release kdisc; this build reads versions 4 and %d: a new kdisc run replaces it when it starts", path, v, layoutVersion))

			old := mapAsOldReader(t, path)

			w, err = Create(path, 64<<10)
			require.NoError(t, err)
			defer w.Close()
			assert.Equal(t, uint64(1), old.load(hRetired), "the pre-release file is retired")
			assert.Equal(t, uint64(layoutVersion), w.t.load(hVersion))
			wr := w.Reader()
			defer wr.Close()
			_, ok := wr.Get("default/web")
			assert.False(t, ok, "nothing is copied from a layout this build cannot read")
			assert.Equal(t, 0, w.Stats().Entries)
		})
	}
}
