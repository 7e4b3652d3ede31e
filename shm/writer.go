package shm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// Writer is the one process (or goroutine set) that changes a table. Its
// methods are safe for concurrent use; they serialise on a mutex.
type Writer struct {
	mu   sync.Mutex
	t    *table
	f    *os.File // the table file, holding our flock; nil when anonymous
	path string

	rec   []byte   // encode scratch
	head  []byte   // a big value's head record
	piece []byte   // a big value's piece record
	pack  []byte   // rebuild scratch: records
	idx   []uint64 // rebuild scratch: index

	entries     int
	ids         uint64 // big values stored in this run (newID)
	used        int64
	fullErrors  uint64
	compactions uint64
	closed      bool
	stop        chan struct{} // ends the heartbeat
}

var errClosed = errors.New("shm: writer is closed")

// errRaced: the file at the path changed while we opened it; try again.
var errRaced = errors.New("shm: table file replaced concurrently")

// Create opens the table at path for writing, or anonymous shared memory
// when path is "" (one process; readers come from Writer.Reader).
//
// An existing table of this layout and size is reused in place, entries
// included, and marked not ready: readers attached to it keep serving the
// last known nodes across a writer restart, and the caller deletes the keys
// its first list no longer has. Any other file at path is replaced by a new
// table (built beside it and renamed over it) and, if it was a table, marked
// retired so that its readers re-open the path.
//
// Only one writer may hold a path: the file is flock-ed, and a second
// Create fails with "another kdisc run is writing <path>".
func Create(path string, size int64) (*Writer, error) {
	g, err := geometryFor(size)
	if err != nil {
		return nil, err
	}
	if path == "" {
		mem, err := mapAnon(size)
		if err != nil {
			return nil, err
		}
		t := newTable(mem, g)
		t.init(newGeneration(0))
		return newWriter(t, nil, ""), nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("shm: %w", err)
	}
	if err := (trust{}).checkDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	for range 10 {
		w, err := createFile(path, g)
		if !errors.Is(err, errRaced) {
			return w, err
		}
	}
	return nil, fmt.Errorf("shm: %s keeps being replaced while opening it", path)
}

func newWriter(t *table, f *os.File, path string) *Writer {
	w := &Writer{t: t, f: f, path: path, stop: make(chan struct{})}
	t.writer = true
	if f != nil {
		t.fi, _ = f.Stat() // for the writer's in-process readers (Writer.Reader) to tell it from another file
	}
	t.store(hWriterPID, uint64(os.Getpid()))
	for i := range t.shards {
		e, u := t.check(t.shardAt(i)) // e: services only
		w.entries += int(e)
		w.used += int64(u)
	}
	w.sweepBig()
	t.store(hHeartbeat, uint64(time.Now().UnixNano()))
	go w.heartbeat()
	return w
}

// heartbeat renews the header's heartbeat until Close, so that readers
// in other processes can tell a live writer from a dead one by reading the
// header: a killed writer goes silent within heartbeatEvery.
func (w *Writer) heartbeat() {
	tick := time.NewTicker(heartbeatEvery)
	defer tick.Stop()
	for {
		select {
		case <-w.stop:
			return
		case now := <-tick.C:
			w.mu.Lock()
			if !w.closed {
				w.t.store(hHeartbeat, uint64(now.UnixNano()))
				if w.f != nil && w.removed() {
					_ = w.recreateLocked() // failed: again on the next tick
				}
			}
			w.mu.Unlock()
		}
	}
}

// removed reports whether the table's path names no file any more (a tmp
// cleaner, an operator). A path naming another file is left alone: that
// file belongs to whoever made it.
func (w *Writer) removed() bool {
	_, err := os.Lstat(w.path)
	return errors.Is(err, fs.ErrNotExist)
}

// recreateLocked makes the table file anew at w.path, with the current
// content, after it was removed: readers started later can attach again,
// and readers of the removed file follow (it is retired). The new file is
// another generation, so OnChange reports every service once.
func (w *Writer) recreateLocked() error {
	if err := os.MkdirAll(filepath.Dir(w.path), 0o755); err != nil {
		return err
	}
	if err := (trust{}).checkDir(filepath.Dir(w.path)); err != nil {
		return err
	}
	old := w.t
	nf, t, err := buildTemp(w.path, old.geometry, newGeneration(old.load(hGeneration)))
	if err != nil {
		return err
	}
	nw := &Writer{t: t, f: nf, path: w.path} // its state only: w's heartbeat goes on
	t.writer = true
	t.fi, _ = nf.Stat()
	t.store(hWriterPID, uint64(os.Getpid()))
	t.store(hHeartbeat, old.load(hHeartbeat))
	copyTable(old, nw)
	t.store(hFullErrors, w.fullErrors)
	t.store(hReady, old.load(hReady))
	err = os.Link(nf.Name(), w.path)
	os.Remove(nf.Name())
	if err != nil {
		t.release()
		nf.Close()
		return err
	}
	oldf := w.f
	w.t, w.f = t, nf
	w.entries, w.used = nw.entries, nw.used
	old.store(hRetired, 1)
	old.store(hReady, 0)
	old.release()
	oldf.Close()
	return nil
}

func createFile(path string, g geometry) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return createNew(path, g)
	}
	if err != nil {
		return nil, fmt.Errorf("shm: %w", err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		if errors.Is(err, errLocked) {
			return nil, fmt.Errorf("shm: another kdisc run is writing %s", path)
		}
		return nil, err
	}
	// The previous writer may have replaced the file between our open and
	// our lock: then we locked a retired inode.
	if same, err := samePath(f, path); err != nil || !same {
		f.Close()
		return nil, errRaced
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("shm: %w", err)
	}
	var old *table
	var oldGen uint64
	if st.Size() >= headerBytes && st.Size() <= MaxSize {
		mem, err := mapFile(f, st.Size(), true)
		if err != nil {
			f.Close()
			return nil, err
		}
		if og, err := checkHeader(mem, path); err == nil {
			old = newTable(mem, og)
		} else if atomic.LoadUint64((*uint64)(unsafe.Pointer(&mem[hMagic]))) == magic {
			// A table of another layout version (or with a damaged
			// header): replaced, not reused, but retired like any
			// replaced table so that its readers, of whatever build,
			// re-open the path. The header words used on it (generation,
			// ready, retired) are at the same offsets in every version.
			old = newTable(mem, geometry{size: uint64(len(mem))}) // no shards: never equal to g
		} else {
			unmap(mem)
		}
		if old != nil {
			oldGen = old.load(hGeneration)
		}
	}
	if old != nil && old.geometry == g {
		// Same layout version and size: keep the entries, start a new
		// generation. An older version this build reads (v4) is copied
		// into a new file below, never written in place: its readers
		// could not read v6's index.
		if err := reserve(f, int64(g.size)); err != nil { // an older, sparse file
			old.release()
			f.Close()
			return nil, err
		}
		old.store(hReady, 0)
		old.store(hRetired, 0)
		old.store(hFullErrors, 0)
		old.store(hGeneration, newGeneration(oldGen))
		return newWriter(old, f, path), nil
	}
	nf, t, err := buildTemp(path, g, newGeneration(oldGen))
	if err != nil {
		f.Close()
		if old != nil {
			old.release()
		}
		return nil, err
	}
	w := newWriter(t, nf, path)
	if old != nil && old.shards > 0 {
		// A new size or an older layout (v4, migrated): readers move to
		// the new file as soon as it is at the path, so it starts with
		// the old content; the first list then corrects it. (A layout
		// version this build cannot read is not copied.)
		copyTable(old, w)
	}
	if err := os.Rename(nf.Name(), path); err != nil {
		os.Remove(nf.Name())
		w.Close()
		f.Close()
		if old != nil {
			old.release()
		}
		return nil, fmt.Errorf("shm: %w", err)
	}
	if old != nil {
		// After the rename, so a reader that notices re-opens the new file.
		old.store(hRetired, 1)
		old.store(hReady, 0)
		old.release()
	}
	f.Close() // releases the old inode's lock; nf holds the new one's
	return w, nil
}

// copyTable puts every entry of the table from into w, and its sync time.
// A value the new table has no room for is left out: the first list
// stores what fits and reports the rest as table-full.
func copyTable(from *table, w *Writer) {
	for i := range from.shards {
		so := from.shardAt(i)
		from.check(so) // a shard its dead writer left mid-change is emptied, not copied torn
		var recs []record
		from.eachEntry(so, func(_ slotRef, _ uint64, r record) bool {
			recs = append(recs, r)
			return true
		})
		for _, rec := range recs {
			if rec.nPorts == piecePorts {
				continue // copied with its head
			}
			ok := true
			key := from.key(rec)
			t := from
			if rec.nPorts == bigPorts {
				h, _ := from.head(rec)
				if t, rec, ok, _ = from.whole(h, key, readDirect); !ok {
					continue
				}
			}
			if detail, ok := t.blob(rec, nil); ok && isBlob(rec) {
				_ = w.PutDetail(key[1:], detail)
			} else if ports, ok := t.ports(rec); ok {
				_ = w.Put(key, ports)
			}
		}
	}
	w.t.store(hSynced, from.load(hSynced))
}

// createNew makes the first table at path. It links the finished file in
// (link fails if the path exists): two writers starting at once cannot both
// win, the loser retries and finds the winner's lock.
func createNew(path string, g geometry) (*Writer, error) {
	nf, t, err := buildTemp(path, g, newGeneration(0))
	if err != nil {
		return nil, err
	}
	w := newWriter(t, nf, path)
	err = os.Link(nf.Name(), path)
	os.Remove(nf.Name())
	if err != nil {
		w.Close()
		if errors.Is(err, fs.ErrExist) {
			return nil, errRaced
		}
		return nil, fmt.Errorf("shm: %w", err)
	}
	return w, nil
}

// buildTemp creates, locks, sizes and initialises a table in a temporary
// file beside path.
func buildTemp(path string, g geometry, gen uint64) (*os.File, *table, error) {
	nf, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".new-*")
	if err != nil {
		return nil, nil, fmt.Errorf("shm: %w", err)
	}
	fail := func(err error) (*os.File, *table, error) {
		os.Remove(nf.Name())
		nf.Close()
		return nil, nil, err
	}
	// Readers may run as another user (a proxy's workers).
	if err := nf.Chmod(0o644); err != nil {
		return fail(fmt.Errorf("shm: %w", err))
	}
	if err := lockFile(nf); err != nil {
		return fail(err)
	}
	if err := reserve(nf, int64(g.size)); err != nil {
		return fail(err)
	}
	mem, err := mapFile(nf, int64(g.size), true)
	if err != nil {
		return fail(err)
	}
	t := newTable(mem, g)
	t.init(gen)
	return nf, t, nil
}

// newGeneration picks the generation of a new writer run or file: random,
// never 0 and never old (the one it replaces). Readers tell files and runs
// apart by it (Reader.Generation, the dead-writer cache), so it must not
// repeat across files: a table removed and made anew once started at 1
// again, and looked like its predecessor.
func newGeneration(old uint64) uint64 {
	for {
		if g := rand.Uint64(); g != 0 && g != old {
			return g
		}
	}
}

func samePath(f *os.File, path string) (bool, error) {
	a, err := f.Stat()
	if err != nil {
		return false, err
	}
	b, err := os.Stat(path)
	if err != nil {
		return false, err
	}
	return os.SameFile(a, b), nil
}

// Put stores ports as the whole value of key; readers see the old value or
// the new one, never a mix. When the key's shard has no room even after
// compaction it returns a *FullError and leaves the old value in place.
func (w *Writer) Put(key string, ports []Port) error {
	if isDetailKey(key) {
		return fmt.Errorf("shm: key %q starts with a NUL byte", key)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errClosed
	}
	rec, err := appendRecord(w.rec[:0], key, ports)
	if err != nil {
		return err
	}
	w.rec = rec
	if c, ok := encodeCell(key, ports); ok && w.t.slotSize == cellBytes {
		return w.putLocked(key, rec, &c)
	}
	return w.putLocked(key, rec, nil)
}

// PutDetail stores detail, opaque bytes, beside key's value (kdisc keeps
// each node's nodeName, zone and targetRef there when asked to). Lookups,
// Get, Range and Keys never see it; Delete(key) removes it with the value.
// A full table returns a *FullError and keeps the old detail.
func (w *Writer) PutDetail(key string, detail []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errClosed
	}
	rec, err := appendBlob(w.rec[:0], detailKey(key), detail)
	if err != nil {
		return err
	}
	w.rec = rec
	return w.putLocked(detailKey(key), rec, nil)
}

// DeleteDetail removes key's detail and reports whether it was there.
func (w *Writer) DeleteDetail(key string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.closed && w.deleteLocked(detailKey(key))
}

// putLocked stores the encoded record rec of key: in its index cell when
// cell is not nil (the value fits one, inline.go), else whole in the key's
// shard when it is small (at most inlineMax bytes), else as a big value
// (pieces spread over the shards, and a head in the key's shard).
func (w *Writer) putLocked(key string, rec []byte, cell *cellWords) error {
	t := w.t
	h := t.hash(key)
	so, tag := t.shardOf(h), tagOf(h)
	at, old, found := t.find(so, tag, key)
	if found && t.holdsValue(old, key, rec, cell) {
		return nil // the same bytes: no change to write, log or notify
	}
	size := len(rec)
	var oldHead head
	if found && old.nPorts == bigPorts {
		oldHead, _ = t.head(old)
	}
	var newHead head
	if cell == nil && uint64(len(rec)) > t.inlineMax() {
		if uint64(size) > t.size/4 {
			return w.full(key, size, true)
		}
		var err error
		if newHead, err = w.putPieces(rec, so, key); err != nil {
			return w.full(key, size, false)
		}
		rec = appendHead(w.head[:0], key, newHead)
		w.head = rec
		// The pieces may have gone to this shard and compacted it:
		// where key's slot is, find again.
		at, old, found = t.find(so, tag, key)
	}
	if err := w.storeAt(so, tag, key, rec, cell, at, old, found); err != nil {
		w.deletePieces(newHead)
		return w.full(key, size, false)
	}
	w.deletePieces(oldHead)
	if !found && isServiceKey(key) {
		w.entries++
	}
	t.logChange(h)
	return nil
}

// full counts and returns the *FullError for a record of n bytes of key;
// tooBig when it is more than a quarter of the table.
func (w *Writer) full(key string, n int, tooBig bool) error {
	w.fullErrors++
	w.t.store(hFullErrors, w.fullErrors)
	e := &FullError{Key: key, Need: n, Size: int64(w.t.size)}
	if isDetailKey(key) {
		e.Key = key[1:] + " (node detail)"
	}
	if tooBig {
		// A quarter of the size, rounded up to a MiB.
		e.NeedSize = int64((4*uint64(n) + 1<<20 - 1) &^ (1<<20 - 1))
	}
	return e
}

// errNoRoom: a shard has no room for a record, even after compaction.
var errNoRoom = errors.New("shm: no room in the shard")

// storeIn stores rec, the record of key (whose hash has tag), in the shard
// at so, replacing key's record there if any: in the free gap when it
// fits, else after compacting the shard; or, when cell is not nil, the
// cell in key's index slot. Readers see the old value or the new one.
func (w *Writer) storeIn(so, tag uint64, key string, rec []byte, cell *cellWords) error {
	at, old, found := w.t.find(so, tag, key)
	return w.storeAt(so, tag, key, rec, cell, at, old, found)
}

// storeAt is storeIn once key was looked up in the shard (t.find): a Put
// looks once, for both the unchanged check and the write.
func (w *Writer) storeAt(so, tag uint64, key string, rec []byte, cell *cellWords, at slotRef, old record, found bool) error {
	t := w.t
	oldSize := uint64(0)
	if found {
		oldSize = old.size()
	}
	if cell != nil {
		rec = nil // the value takes no room in the data area
	}
	// The value goes to the cells or the record slots (in a v4 table,
	// the only index); a value that moves between them leaves its old
	// slot in the same write window.
	moves := found && old.cell != (cell != nil)
	ix := t.indexFor(so, cell != nil)
	n := t.load(so + ix.cntW)
	sizeFor := slotsFor
	if ix.cells() {
		sizeFor = cellsFor
	}
	// A new key may need a bigger index: then the shard is rebuilt, and
	// given some headroom if it has room for it, so that the next few
	// inserts do not rebuild again.
	want := ix.c
	if (!found || moves) && sizeFor(n+1) > ix.c {
		want = sizeFor(n + 1)
	}
	need := uint64(len(rec)) + ix.size*(want-ix.c)
	room := t.free(so) + t.load(so+sDead) + oldSize
	switch {
	case want == ix.c && need <= t.free(so) && !t.sweeps(so, oldSize, uint64(len(rec))):
		var off uint64
		if cell == nil {
			off = t.stage(so, rec)
		}
		t.beginWrite(so)
		if moves {
			t.removeSlot(so, at)
		}
		if !found || moves {
			at = t.emptySlot(so, ix, tag)
		}
		if cell != nil {
			t.putCell(so, at, tag, cell)
			if !found || moves {
				t.store(so+sCount, t.load(so+sCount)+1)
			}
		} else {
			t.publish(so, at, tag, off, !found || moves)
		}
		t.endWrite(so)
		if found { // the old record is dead now (writer-only bookkeeping)
			t.store(so+sDead, t.load(so+sDead)+oldSize)
		}
	case need <= room:
		if roomy := min(sizeFor(n+1+n/2), t.idxCap()); want > ix.c && roomy > want && uint64(len(rec))+ix.size*(roomy-ix.c) <= room {
			want = roomy
			need = uint64(len(rec)) + ix.size*(want-ix.c)
		}
		cells, recs, _ := t.indexes(so)
		wantC, wantR := want, recs.c
		if ix != cells {
			wantC, wantR = cells.c, want
		}
		skip := ^uint64(0)
		if found {
			skip = at.off()
		}
		w.pack, w.idx = t.rebuild(so, skip, wantC, wantR, w.pack, w.idx) // leaves the shard odd
		w.compactions++
		at = t.emptySlot(so, t.indexFor(so, cell != nil), tag) // the key's old entry, if any, is gone
		if cell != nil {
			t.putCell(so, at, tag, cell)
			t.store(so+sCount, t.load(so+sCount)+1)
		} else {
			t.publish(so, at, tag, t.stage(so, rec), true)
		}
		t.endWrite(so)
		t.releaseFree(so)
	default:
		return errNoRoom
	}
	w.used += int64(need) - int64(oldSize)
	return nil
}

// sweeps reports whether placing a record of n bytes in the free gap of
// the shard at so, over one of old bytes (0 for none), would leave more
// dead bytes than its live ones allow: half of them, or a page. Then the
// writer compacts the shard instead. Each new value goes lower in the gap,
// so without this bound a shard's churn would touch, and make resident in
// every process that maps the table, every page of the shard, however
// little of it holds data.
func (t *table) sweeps(so, old, n uint64) bool {
	low, dead := t.load(so+sDataLow), t.load(so+sDead)
	live := t.shardBytes - low - dead - old + n
	return dead+old > max(live/2, pageBytes)
}

// releaseFree drops the writer's pages that lie wholly in the free gap of
// the shard at so (after a compaction): they hold no data, and the file
// keeps them reserved. A reader of an older sequence that still reads
// there faults the same bytes back in, from the file.
func (t *table) releaseFree(so uint64) {
	lo := (so + t.idxEnd(so) + pageBytes - 1) &^ (pageBytes - 1)
	hi := (so + t.load(so+sDataLow)) &^ (pageBytes - 1)
	if lo < hi {
		dontNeed(t.mem[lo:hi])
	}
}

// holdsValue reports whether key's stored record r (a cell, small, or the
// head of a big value) holds exactly the encoded value rec, or the cell
// when cell is not nil.
func (t *table) holdsValue(r record, key string, rec []byte, cell *cellWords) bool {
	if r.cell || cell != nil {
		return r.cell && cell != nil && t.holdsCell(r.off, cell)
	}
	if r.nPorts != bigPorts {
		return t.holds(r, rec)
	}
	h, ok := t.head(r)
	if !ok || h.total != uint64(len(rec)) {
		return false
	}
	pt, pr, ok, _ := t.whole(h, key, readDirect)
	return ok && pt.holds(pr, rec)
}

// holds reports whether the stored record r is rec, byte for byte.
func (t *table) holds(r record, rec []byte) bool {
	if r.size() != uint64(len(rec)) {
		return false
	}
	for i := 0; i < len(rec); i += 8 {
		if t.load(r.off+uint64(i)) != binary.LittleEndian.Uint64(rec[i:]) {
			return false
		}
	}
	return true
}

// logChange records that the key of hash h changed: the ring slot first,
// then the count, so a reader that sees the count sees the slot.
func (t *table) logChange(h uint64) {
	n := t.load(hChanges)
	t.store(changeAt(n), h)
	t.store(hChanges, n+1)
}

// Delete removes key and reports whether it was there.
func (w *Writer) Delete(key string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || isDetailKey(key) {
		return false
	}
	w.deleteLocked(detailKey(key))
	return w.deleteLocked(key)
}

func (w *Writer) deleteLocked(key string) bool {
	h := w.t.hash(key)
	so := w.t.shardOf(h)
	if _, found := w.removeIn(so, tagOf(h), key); !found {
		return false
	}
	if isServiceKey(key) {
		w.entries--
	}
	w.t.logChange(h)
	return true
}

// removeIn removes key's record from the shard at so, and a big value's
// pieces after its head: readers that still read the old pieces find one
// missing and read the key again.
func (w *Writer) removeIn(so, tag uint64, key string) (record, bool) {
	slot, r, found := w.t.find(so, tag, key)
	if !found {
		return r, false
	}
	var hd head
	if r.nPorts == bigPorts {
		hd, _ = w.t.head(r)
	}
	end := w.t.idxEnd(so)
	w.t.remove(so, slot, r)
	w.used -= int64(r.size() + end - w.t.idxEnd(so))
	w.deletePieces(hd)
	return r, true
}

// Keys calls fn with every stored key until fn returns false. Keys are
// collected a shard at a time, so fn may Put or Delete.
func (w *Writer) Keys(fn func(key string) bool) {
	for i := uint64(0); ; i++ {
		w.mu.Lock()
		if w.closed || i >= w.t.shards {
			w.mu.Unlock()
			return
		}
		t, so := w.t, w.t.shardAt(i)
		var keys []string
		t.eachEntry(so, func(_ slotRef, _ uint64, r record) bool {
			if t.isService(r) {
				keys = append(keys, t.key(r))
			}
			return true
		})
		w.mu.Unlock()
		for _, k := range keys {
			if !fn(k) {
				return
			}
		}
	}
}

// SetReady sets the ready flag that readers (in any process) see.
func (w *Writer) SetReady(ready bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		v := uint64(0)
		if ready {
			v = 1
		}
		w.t.store(hReady, v)
	}
}

// SetSynced records when the table last agreed with the apiserver (a
// list completed, or a watch delivered an event or bookmark). Readers in
// any process derive the table's staleness from it.
func (w *Writer) SetSynced(at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.store(hSynced, uint64(at.UnixNano()))
	}
}

// Stats reports the table's occupancy.
func (w *Writer) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return Stats{
		Entries:     w.entries,
		UsedBytes:   w.used + headerBytes + int64(w.t.shards*shardHeaderBytes),
		TotalBytes:  int64(w.t.size),
		FullErrors:  w.fullErrors,
		Compactions: w.compactions,
	}
}

// Reader returns a reader over the writer's own mapping. It stays valid
// after the writer closes (the mapping is reference-counted) and, for a
// file table, follows the path like one from Open.
func (w *Writer) Reader() *Reader {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return newReader("", nil) // finds nothing: the mapping is gone
	}
	w.t.refs.Add(1)
	return newReader(w.path, w.t)
}

// Close marks the table not ready, unmaps it (once no Reader from
// w.Reader uses it) and releases the lock. The file stays, for readers and
// for the next writer.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	close(w.stop)
	w.t.store(hReady, 0)
	w.t.store(hHeartbeat, 0) // readers know at once that no writer runs
	err := w.t.release()
	if w.f != nil {
		if cerr := w.f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("shm: %w", cerr)
		}
	}
	return err
}

// release drops one reference to the mapping. At zero the mapping becomes
// zero pages (see blank) and a reader's file is closed.
func (t *table) release() error {
	if t.refs.Add(-1) != 0 {
		return nil
	}
	err := blank(t.mem)
	if t.f != nil {
		t.f.Close()
	}
	return err
}
