package shm

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

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
	assert.Equal(t, gen+1, r.Generation())
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

	// The reader re-attaches on its next calls (re-opens are rate-limited:
	// poll with a deadline).
	deadline := time.Now().Add(5 * time.Second)
	for {
		nodes, ok := r.Lookup(nil, "default/new:http")
		if ok {
			assert.Equal(t, svcNodes(2, 2)[0].Nodes, nodes)
			break
		}
		require.True(t, time.Now().Before(deadline), "reader never re-attached")
		time.Sleep(time.Millisecond)
	}
	assert.True(t, r.Ready())
	_, ok = r.Lookup(nil, "default/old:http")
	assert.True(t, ok, "the new table starts with the old content (the first list corrects it)")
	assert.Len(t, r.old, 1, "the old mapping is kept until Close")

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
	assert.EqualError(t, err, fmt.Sprintf("shm: %s has table layout version %d, written by an older kdisc; this build reads versions %d to %d: a new kdisc run replaces it when it starts", path, oldestRead-1, oldestRead, layoutVersion))

	f, err := os.Open(path)
	require.NoError(t, err)
	mem, err := mapFile(f, 64<<10, false) // what an old reader maps
	require.NoError(t, err)
	f.Close()
	defer unmap(mem)
	old := newTable(mem, geometry{size: 64 << 10})

	w, err = Create(path, 64<<10)
	require.NoError(t, err)
	defer w.Close()
	assert.Equal(t, uint64(1), old.load(hRetired), "the old file is retired")
	require.NoError(t, w.Put("default/new", svcNodes(2, 2)))
	r, err := Open(path)
	require.NoError(t, err)
	defer r.Close()
	assert.Equal(t, old.load(hGeneration)+1, r.Generation())
	_, ok := r.Lookup(nil, "default/old:http")
	assert.False(t, ok, "the new table starts empty")
	nodes, ok := r.Lookup(nil, "default/new:http")
	require.True(t, ok)
	assert.Equal(t, svcNodes(2, 2)[0].Nodes, nodes)
}

// Upgrades (issue 14): a v5 reader reads a v4 table, so proxies can be
// upgraded before the writer; a v5 writer migrates a v4 table into a new
// file (its entries copied, the old one retired), never writing v5
// records into a file v4 readers may still map; and a reader refuses a
// newer layout with a message that says what to upgrade.
func TestV4TableReadThenMigrated(t *testing.T) {
	path := tablePath(t)
	w, err := Create(path, 64<<10)
	require.NoError(t, err)
	// What a v4 writer stores: v4 records are v5 records without big
	// values and without the number of a port with no node.
	require.NoError(t, w.Put("default/web", []Port{{Name: "http", Nodes: svcNodes(3, 1)[0].Nodes}, {Name: "admin"}}))
	w.SetReady(true)
	w.t.store(hVersion, 4)

	r, err := Open(path)
	require.NoError(t, err, "a v5 reader reads a v4 table")
	nodes, ans := r.Find(nil, "default/web:http")
	require.Equal(t, Found, ans)
	assert.Equal(t, svcNodes(3, 1)[0].Nodes, nodes)
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
	got, ok := w.Reader().Get("default/web")
	require.True(t, ok, "the v4 entries are migrated")
	assert.Equal(t, svcNodes(3, 1)[0].Nodes, got[0].Nodes)
	require.Eventually(t, func() bool { return r.Generation() == w.t.load(hGeneration) }, 5*time.Second, time.Millisecond,
		"the reader follows the retired v4 file to the new one")
	nodes, ans = r.Find(nil, "default/web:http")
	require.Equal(t, Found, ans)
	assert.Equal(t, svcNodes(3, 1)[0].Nodes, nodes)
	require.NoError(t, r.Close())

	w.t.store(hVersion, layoutVersion+1)
	_, err = Open(path)
	assert.EqualError(t, err, fmt.Sprintf("shm: %s has table layout version %d, written by a newer kdisc; this build reads versions %d to %d: upgrade the readers (proxies) before the writer (kdisc run)", path, layoutVersion+1, oldestRead, layoutVersion))
	w.t.store(hVersion, layoutVersion)
}
