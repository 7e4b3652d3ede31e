package shm

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Tests of the table on a bad day: a proxy that shuts down while serving, a
// writer that dies mid-update, a hostile local user, a full tmpfs, a file
// removed under the readers. Each pins a defect found in review.

// poll calls cond until it holds or the deadline passes.
func poll(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Closing a reader while other goroutines look up must not fault (it used
// to munmap memory they were reading: SIGSEGV, not a recoverable panic),
// and lookups after Close answer "not found".
func TestCloseDuringLookupsIsSafe(t *testing.T) {
	path := tablePath(t)
	w, err := Create(path, 256<<10)
	require.NoError(t, err)
	defer w.Close()
	for _, k := range []string{"a/web", "b/web", "c/web"} {
		require.NoError(t, w.Put(k, []Port{{Name: "http", Nodes: []Node{ip("10.0.0.1", 80, 1), fqdn("x.example", 80, 1)}}}))
	}
	for round := range 20 {
		var r *Reader
		if round%2 == 0 {
			r, err = Open(path)
			require.NoError(t, err)
		} else {
			r = w.Reader()
		}
		closeDuringLookups(t, r, 4, 8, "a/web:http", func(buf []Node) []Node {
			for _, k := range []string{"a/web:http", "b/web:http", "c/web:http"} {
				buf, _ = r.Lookup(buf[:0], k)
				_, _ = r.Get("a/web")
			}
			_ = r.Ready()
			return buf
		})
	}
}

// closeDuringLookups starts n goroutines calling look in a loop (each with
// its own buffer of bufCap nodes), closes r once all of them run, checks
// that the closed reader finds nothing at query, then stops them.
func closeDuringLookups(t *testing.T, r *Reader, n, bufCap int, query string, look func(buf []Node) []Node) {
	t.Helper()
	var wg sync.WaitGroup
	var started atomic.Int32
	stop := make(chan struct{})
	for range n {
		wg.Go(func() {
			buf := make([]Node, 0, bufCap)
			started.Add(1)
			for {
				select {
				case <-stop:
					return
				default:
				}
				buf = look(buf)
			}
		})
	}
	poll(t, 5*time.Second, "lookups to start", func() bool { return started.Load() == int32(n) })
	require.NoError(t, r.Close())
	_, ok := r.Lookup(nil, query)
	assert.False(t, ok, "a closed reader finds nothing")
	close(stop)
	wg.Wait()
}

// A writer's Close while its in-process readers look up is the same case
// (kdisc run whose HTTP shutdown timed out, a proxy linking Start).
func TestWriterCloseDuringLookupsIsSafe(t *testing.T) {
	w, err := Create(tablePath(t), 64<<10)
	require.NoError(t, err)
	require.NoError(t, w.Put("a/web", []Port{{Name: "http", Nodes: []Node{ip("10.0.0.1", 80, 1)}}}))
	r := w.Reader()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		buf := make([]Node, 0, 8)
		for {
			select {
			case <-stop:
				return
			default:
				buf, _ = r.Lookup(buf[:0], "a/web:http")
			}
		}
	})
	require.NoError(t, w.Close())
	require.NoError(t, r.Close())
	close(stop)
	wg.Wait()
}

// webTable creates a ready table at path serving a/web:http at addr.
func webTable(t *testing.T, path, addr string) *Writer {
	t.Helper()
	w, err := Create(path, 64<<10)
	require.NoError(t, err)
	require.NoError(t, w.Put("a/web", []Port{{Name: "http", Nodes: []Node{ip(addr, 80, 1)}}}))
	w.SetReady(true)
	return w
}

// readerOfDeadWriter opens a reader on a webTable at path serving
// 10.0.0.1, then closes the writer: its lock is gone, as when its process
// dies. The reader is closed when the test ends.
func readerOfDeadWriter(t *testing.T, path string) *Reader {
	t.Helper()
	w := webTable(t, path, "10.0.0.1")
	r, err := Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	require.NoError(t, w.Close())
	return r
}

// poke maps the table at path writable, as a writer would, and lets fn
// change it behind the writer protocol's back: a writer that died.
func poke(t *testing.T, path string, fn func(tb *table)) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	st, err := f.Stat()
	require.NoError(t, err)
	mem, err := mapFile(f, st.Size(), true)
	require.NoError(t, err)
	g, err := checkHeader(mem, path)
	require.NoError(t, err)
	fn(newTable(mem, g))
	require.NoError(t, unmap(mem))
}

// setShardOdd simulates a writer that died in the middle of changing the
// shard of key: the shard's sequence is left odd in the file.
func setShardOdd(t *testing.T, path, key string) {
	poke(t, path, func(tb *table) {
		so := tb.shardOf(hashKey(key))
		tb.store(so+sSeq, tb.load(so+sSeq)|1)
	})
}

// A writer killed while a shard was odd used to make every lookup of that
// shard wait a full second, every time. With no writer alive, the reader
// must answer at once.
func TestDeadWriterMidUpdateAnswersAtOnce(t *testing.T) {
	path := tablePath(t)
	r := readerOfDeadWriter(t, path)
	setShardOdd(t, path, "a/web")

	assertNotReadyAtOnce(t, r, "a/web:http")
}

// assertNotReadyAtOnce looks query up three times on a table whose writer
// died mid-update: each answers NotReady, no nodes, without waiting.
func assertNotReadyAtOnce(t *testing.T, r *Reader, query string) {
	t.Helper()
	for range 3 {
		start := time.Now()
		nodes, ans := r.Find(nil, query)
		took := time.Since(start)
		assert.Less(t, took, 50*time.Millisecond, "a dead writer is not waited for")
		assert.Empty(t, nodes)
		assert.Equal(t, NotReady, ans, "a shard left mid-update by a dead writer is not authoritative")
	}
}

// A reader's readiness probe used to take a shared flock for an instant;
// a writer starting in that instant failed with "another kdisc run is
// writing". Probes must never make a writer fail.
func TestReadyProbeNeverFailsAStartingWriter(t *testing.T) {
	path := tablePath(t)
	w, err := Create(path, 64<<10)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	r, err := Open(path)
	require.NoError(t, err)
	defer r.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					r.Ready()
				}
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()
	for i := range 1000 {
		// The previous writer died ready (SIGKILL leaves the flag set),
		// so probes look for a live writer while this one starts.
		poke(t, path, func(tb *table) { tb.store(hReady, 1) })
		w, err := Create(path, 64<<10)
		require.NoError(t, err, "restart %d", i)
		require.NoError(t, w.Close())
	}
}

// Readiness and staleness come from the header: no lock, no allocation.
func TestReadyAndAgeFromHeader(t *testing.T) {
	path := tablePath(t)
	w, err := Create(path, 64<<10)
	require.NoError(t, err)
	defer w.Close()
	r, err := Open(path)
	require.NoError(t, err)
	defer r.Close()

	_, synced := r.Age()
	assert.False(t, synced, "never synced")
	assert.False(t, r.Ready())
	w.SetSynced(time.Now().Add(-3 * time.Second))
	w.SetReady(true)
	age, synced := r.Age()
	assert.True(t, synced)
	assert.InDelta(t, 3, age.Seconds(), 1)
	assert.True(t, r.Ready())
	assert.Zero(t, testing.AllocsPerRun(100, func() { r.Ready(); r.Age() }))

	require.NoError(t, w.Close())
	assert.False(t, r.Ready(), "a closed writer is not alive")
}

// Readers apply the writer's rules to what they open: whoever can replace
// the table can redirect every proxy.
func TestReaderRefusesUntrustedTable(t *testing.T) {
	t.Run("dir writable by others", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "kdisc")
		w, err := Create(filepath.Join(dir, "kubernetes"), 64<<10)
		require.NoError(t, err)
		defer w.Close()
		require.NoError(t, os.Chmod(dir, 0o777))
		_, err = Open(filepath.Join(dir, "kubernetes"))
		assert.ErrorContains(t, err, dir)
		assert.ErrorContains(t, err, "writable by")
	})
	t.Run("dir writable by group", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "kdisc")
		w, err := Create(filepath.Join(dir, "kubernetes"), 64<<10)
		require.NoError(t, err)
		defer w.Close()
		require.NoError(t, os.Chmod(dir, 0o775))
		_, err = Open(filepath.Join(dir, "kubernetes"))
		assert.ErrorContains(t, err, "writable by")
	})
	t.Run("file writable by others", func(t *testing.T) {
		path := tablePath(t)
		w, err := Create(path, 64<<10)
		require.NoError(t, err)
		defer w.Close()
		require.NoError(t, os.Chmod(path, 0o666))
		_, err = Open(path)
		assert.ErrorContains(t, err, path)
		assert.ErrorContains(t, err, "writable by")
	})
	t.Run("symlinked table", func(t *testing.T) {
		path := tablePath(t)
		w, err := Create(path, 64<<10)
		require.NoError(t, err)
		defer w.Close()
		link := filepath.Join(filepath.Dir(path), "link")
		require.NoError(t, os.Symlink(path, link))
		_, err = Open(link)
		assert.ErrorContains(t, err, "symlink")
	})
	t.Run("owned by another user", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to chown the table to another user")
		}
		base, err := os.MkdirTemp("", "kdisc-trust-")
		require.NoError(t, err)
		t.Cleanup(func() { os.RemoveAll(base) })
		require.NoError(t, os.Chmod(base, 0o755)) // other users may look in
		path := filepath.Join(base, "kdisc", "kubernetes")
		w, err := Create(path, 64<<10)
		require.NoError(t, err)
		defer w.Close()
		const other = 4242
		require.NoError(t, os.Chown(path, other, other))
		// Root trusts only root and itself: drop to a third uid to read.
		out, err := runAs(t, 4343, "open", path, "")
		require.Error(t, err)
		assert.Contains(t, out, "uid 4242")
		out, err = runAs(t, 4343, "open", path, "4242")
		assert.NoError(t, err, "a uid the reader is told to trust: %s", out)
		out, err = runAs(t, other, "open", path, "")
		assert.NoError(t, err, "the reader's own uid: %s", out)
	})
}

// runAs runs this test binary as uid to Open path, trusting trust (a uid
// or ""); it returns the helper's output.
func runAs(t *testing.T, uid uint32, op, path, trust string) (string, error) {
	t.Helper()
	// The test binary sits in a private build directory: copy it where
	// another user can run it.
	exe, err := os.Executable()
	require.NoError(t, err)
	bin, err := os.ReadFile(exe)
	require.NoError(t, err)
	dir, err := os.MkdirTemp("", "kdisc-bin-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	exe = filepath.Join(dir, "shm.test")
	require.NoError(t, os.WriteFile(exe, bin, 0o755))
	cmd := exec.Command(exe, "-test.run=^TestOpenHelper$")
	cmd.Env = append(os.Environ(), "KDISC_OPEN_HELPER="+op+":"+path, "KDISC_OPEN_TRUST="+trust)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestOpenHelper is the process runAs starts.
func TestOpenHelper(t *testing.T) {
	spec := os.Getenv("KDISC_OPEN_HELPER")
	if spec == "" {
		t.Skip("helper process for TestReaderRefusesUntrustedTable")
	}
	_, path, _ := strings.Cut(spec, ":")
	var opts []OpenOption
	if s := os.Getenv("KDISC_OPEN_TRUST"); s != "" {
		uid, err := ParseUIDs(s)
		require.NoError(t, err)
		opts = append(opts, TrustUIDs(uid...))
	}
	r, err := Open(path, opts...)
	if err != nil {
		os.Stdout.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
	r.Close()
}

// The table file is reserved in full when created: a shared_size larger
// than the tmpfs has room for fails at start, naming shared_size and the
// free space, instead of a SIGBUS on the first page the tmpfs cannot back.
func TestCreateReservesSpace(t *testing.T) {
	path := tablePath(t)
	w, err := Create(path, 1<<20)
	require.NoError(t, err)
	defer w.Close()
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, st.Sys().(*syscall.Stat_t).Blocks*512, int64(1<<20), "no sparse file")

	t.Run("tmpfs too small", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to mount a small tmpfs")
		}
		dir := t.TempDir()
		require.NoError(t, syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m,mode=0755"))
		t.Cleanup(func() { _ = syscall.Unmount(dir, 0) })
		_, err := Create(filepath.Join(dir, "kdisc", "kubernetes"), 4<<20)
		require.Error(t, err)
		assert.ErrorContains(t, err, "shared_size")
		assert.ErrorContains(t, err, "free")
		entries, _ := os.ReadDir(filepath.Join(dir, "kdisc"))
		assert.Empty(t, entries, "no half-made table left behind")
	})
}

// Changing shared_size used to switch attached readers to an empty table
// until the first list; with the apiserver down, indefinitely. The new
// table starts with the old one's content.
func TestSizeChangeKeepsEntries(t *testing.T) {
	path := tablePath(t)
	w, err := Create(path, 64<<10)
	require.NoError(t, err)
	want := []Port{{Name: "http", Nodes: []Node{ip("10.0.0.1", 80, 1)}}}
	require.NoError(t, w.Put("a/web", want))
	r, err := Open(path)
	require.NoError(t, err)
	defer r.Close()
	require.NoError(t, w.Close())

	w2, err := Create(path, 256<<10)
	require.NoError(t, err)
	defer w2.Close()
	r2 := w2.Reader()
	defer r2.Close()
	got, ok := r2.Get("a/web")
	assert.True(t, ok, "the new table has the old content")
	assert.Equal(t, want, got)
	poll(t, 5*time.Second, "the reader to follow the new file", func() bool {
		return r.Generation() == r2.Generation()
	})
	got, ok = r.Get("a/web")
	assert.True(t, ok, "readers never see an empty table")
	assert.Equal(t, want, got)
}

// A table file removed (a tmp cleaner, an operator) and recreated by a new
// writer: old readers must not serve the dead inode forever.
func TestReaderFollowsRecreatedFile(t *testing.T) {
	path := tablePath(t)
	r := readerOfDeadWriter(t, path)
	require.NoError(t, os.Remove(path))

	w2, err := Create(path, 64<<10)
	require.NoError(t, err)
	defer w2.Close()
	require.NoError(t, w2.Put("a/web", []Port{{Name: "http", Nodes: []Node{ip("10.0.0.2", 80, 1)}}}))
	w2.SetReady(true)
	poll(t, 5*time.Second, "the reader to re-attach to the new file", func() bool {
		nodes, ok := r.Lookup(nil, "a/web:http")
		return ok && nodes[0].Addr.String() == "10.0.0.2" && r.Ready()
	})
}

// A reader may start before the writer: Open of a path with no table yet
// succeeds (with OpenMissingOK) and finds the table once it is created.
func TestReaderBeforeWriter(t *testing.T) {
	path := tablePath(t)
	r, err := Open(path, AllowMissing())
	require.NoError(t, err)
	defer r.Close()
	_, ans := r.Find(nil, "a/web:http")
	assert.Equal(t, NotReady, ans)
	w, err := Create(path, 64<<10)
	require.NoError(t, err)
	defer w.Close()
	require.NoError(t, w.Put("a/web", []Port{{Name: "http", Nodes: []Node{ip("10.0.0.1", 80, 1)}}}))
	poll(t, 5*time.Second, "the reader to find the new table", func() bool {
		_, ans := r.Find(nil, "a/web:http")
		return ans == Found
	})
}

// A lookup asking whether the writer lives (writerDead, on a shard left
// odd) while Close releases the mapping: it read t.f's descriptor while
// release closed t.f, a data race (and the number may name another file
// by then). Run with -race.
func TestWriterDeadRacesClose(t *testing.T) {
	path := tablePath(t)
	w := webTable(t, path, "10.0.0.1")
	defer w.Close()
	r, err := Open(path)
	require.NoError(t, err)
	tb := r.cur.Load()
	require.False(t, r.writerDead(tb), "the writer lives")
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			r.writerDead(tb)
		}
	}()
	require.NoError(t, r.Close())
	stop.Store(true)
	<-done
}

// A writer killed while a shard holding a piece of a big value was odd:
// the big value's lookup answers NotReady at once, as for a small value
// (TestDeadWriterMidUpdateAnswersAtOnce), not after waiting on the head's
// shard, which is even.
func TestDeadWriterMidBigUpdateAnswersAtOnce(t *testing.T) {
	path := tablePath(t)
	w, err := Create(path, 256<<10)
	require.NoError(t, err)
	require.NoError(t, w.Put("a/big", []Port{{Name: "http", Nodes: bigNodes(12_000, 1, false)}}))
	w.SetReady(true)
	var pieceShards []uint64
	h := hashKey("a/big")
	_, rec, _ := w.t.find(w.t.shardOf(h), tagOf(h), "a/big")
	hd, ok := w.t.head(rec)
	require.True(t, ok, "a/big is a big value")
	for _, s := range hd.shards {
		if so := w.t.shardAt(uint64(s)); so != w.t.shardOf(h) {
			pieceShards = append(pieceShards, so)
		}
	}
	require.NotEmpty(t, pieceShards, "a piece outside the head's shard")
	r, err := Open(path)
	require.NoError(t, err)
	defer r.Close()
	require.NoError(t, w.Close())
	poke(t, path, func(tb *table) {
		tb.store(hReady, 1)
		tb.store(hHeartbeat, uint64(time.Now().Add(time.Hour).UnixNano())) // readiness from the header; the lock tells the truth
		tb.store(pieceShards[0]+sSeq, tb.load(pieceShards[0]+sSeq)|1)
	})
	assertNotReadyAtOnce(t, r, "a/big:http")
}

// Readers closed while other goroutines look up a big value (its pieces
// read from the mapping being blanked) never fault.
func TestCloseDuringBigLookupsIsSafe(t *testing.T) {
	path := tablePath(t)
	w, err := Create(path, 256<<10)
	require.NoError(t, err)
	defer w.Close()
	require.NoError(t, w.Put("a/big", []Port{{Name: "http", Nodes: bigNodes(12_000, 1, false)}}))
	for range 10 {
		r, err := Open(path)
		require.NoError(t, err)
		closeDuringLookups(t, r, 2, 12_000, "a/big:http", func(buf []Node) []Node {
			buf, _ = r.Lookup(buf[:0], "a/big:http")
			_, _ = r.Get("a/big")
			return buf
		})
	}
}
