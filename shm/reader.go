package shm

import (
	"errors"
	"fmt"
	"io/fs"
	"math/bits"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Reader reads a table, lock-free, from any number of goroutines. It never
// writes to the mapping (a file table is mapped read-only).
//
// A Reader follows its path: when the writer replaces the file (a new
// size, a new layout) it marks the old one retired, and the next call
// notices (one atomic load) and re-opens the path; a file removed and made
// anew, or a table that did not exist yet, is found by a check every
// followEvery, off the lookup path. A replaced mapping stays mapped for
// replacedGrace, for lookups that may still be reading it, then is replaced
// by read-only zero pages (its memory is released; a lookup still there
// reads an empty table and answers NotReady). So a Reader holds the pages
// it touched of the current table, and of a replaced one for a few
// seconds.
type Reader struct {
	path    string
	trust   trust
	cur     atomic.Pointer[table]
	names   names
	deadGen atomic.Uint64 // generation+1 of the current table once its writer was found dead
	retries atomic.Uint64 // passes over a shard that had to be read again (Retries)
	bigs    wholeCache    // the last big values read, put back together
	lastTry atomic.Int64  // unix nanos of the last re-open attempt

	mu     sync.Mutex // re-open and Close
	old    []replaced
	closed bool
	stop   chan struct{} // ends the follow loop; nil without one
	done   chan struct{}
}

// replaced is a mapping a Reader moved away from, and when.
type replaced struct {
	t     *table
	since time.Time
}

// replacedGrace is how long a replaced mapping stays readable: far longer
// than any lookup (a lookup gives up within busyAfter), so that releasing
// it afterwards costs none a value. A var for tests.
var replacedGrace = 5 * time.Second

// How often a Reader checks, off the lookup path, whether its path now
// names another table; and how long a writer's heartbeat may be silent
// before readers take the writer for dead.
const (
	followEvery    = 500 * time.Millisecond
	heartbeatEvery = 250 * time.Millisecond
	deadAfter      = 2 * time.Second
)

// OpenOption tunes Open.
type OpenOption func(*openOptions)

type openOptions struct {
	trust        trust
	allowMissing bool
}

// TrustUIDs adds users that may own the table and its directory, besides
// the reader's own user and root: a proxy's workers often run as another
// user than kdisc run.
func TrustUIDs(uids ...int) OpenOption {
	return func(o *openOptions) { o.trust.uids = append(o.trust.uids, uids...) }
}

// AllowMissing lets Open succeed when no table exists yet at the path: the
// Reader answers NotReady until a writer creates it, then finds it.
func AllowMissing() OpenOption { return func(o *openOptions) { o.allowMissing = true } }

// ParseUIDs reads a comma-separated list of numeric user ids, the form of
// the KDISC_TRUSTED_UIDS environment variable.
func ParseUIDs(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.ParseUint(f, 10, 31)
		if err != nil {
			return nil, fmt.Errorf("shm: %q is not a numeric user id", f)
		}
		out = append(out, int(n))
	}
	return out, nil
}

// Open maps the table at path read-only. The file and its directory must
// be owned by the reader's user, root, or a uid given with TrustUIDs, and
// writable by nobody else; neither may be a symlink.
func Open(path string, opts ...OpenOption) (*Reader, error) {
	var o openOptions
	for _, opt := range opts {
		opt(&o)
	}
	t, err := openTable(path, o.trust)
	if err != nil && !(o.allowMissing && errors.Is(err, fs.ErrNotExist)) {
		return nil, err
	}
	r := &Reader{path: path, trust: o.trust, stop: make(chan struct{}), done: make(chan struct{})}
	if t != nil {
		r.cur.Store(t)
	}
	go r.followLoop()
	return r, nil
}

func newReader(path string, t *table) *Reader {
	r := &Reader{path: path}
	r.cur.Store(t)
	if path != "" {
		r.stop, r.done = make(chan struct{}), make(chan struct{})
		go r.followLoop()
	}
	return r
}

func openTable(path string, tr trust) (*table, error) {
	f, st, err := tr.openTrusted(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("shm: no kdisc table at %s (is \"kdisc run\" running?): %w", path, err)
	}
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() || st.Size() < headerBytes || st.Size() > MaxSize {
		f.Close()
		return nil, fmt.Errorf("shm: %s is not a kdisc table (%s, %d bytes)", path, st.Mode().Type(), st.Size())
	}
	mem, err := mapFile(f, st.Size(), false)
	if err != nil {
		f.Close()
		return nil, err
	}
	g, err := checkHeader(mem, path)
	if err != nil {
		unmap(mem)
		f.Close()
		return nil, err
	}
	t := newTable(mem, g)
	t.f, t.fi = f, st
	return t, nil
}

// table returns the current mapping, re-opening the path first when the
// writer retired it.
func (r *Reader) table() *table {
	t := r.cur.Load()
	if t == nil || t.load(hRetired) == 0 {
		return t
	}
	return r.reattach(t)
}

// reattach swaps in the file now at the path after the writer retired t.
// It keeps serving the retired mapping (last known values) while the path
// holds nothing better, and tries at most every 10 ms so a missing file
// does not turn every lookup into an open(2).
func (r *Reader) reattach(t *table) *table {
	now := time.Now().UnixNano()
	if last := r.lastTry.Load(); r.path == "" || now-last < int64(10*time.Millisecond) || !r.lastTry.CompareAndSwap(last, now) {
		return t
	}
	return r.follow()
}

func (r *Reader) followLoop() {
	defer close(r.done)
	tick := time.NewTicker(followEvery)
	defer tick.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-tick.C:
			r.follow()
		}
	}
}

// follow makes the table at the path the current one if it is another
// file than the one mapped now (retired, removed and made anew, or made
// for the first time) and a valid, trusted table.
func (r *Reader) follow() *table {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.cur.Load()
	if r.closed || r.path == "" {
		return cur
	}
	r.dropReplaced()
	if cur != nil && cur.load(hRetired) == 0 {
		fi, err := os.Stat(r.path)
		if err != nil || (cur.fi != nil && os.SameFile(fi, cur.fi)) {
			return cur // gone (keep the last known values) or unchanged
		}
	}
	nt, err := openTable(r.path, r.trust)
	if err != nil {
		return cur
	}
	if cur != nil && cur.fi != nil && os.SameFile(nt.fi, cur.fi) || nt.load(hRetired) != 0 {
		nt.release() // the same file, or already replaced again: later
		return cur
	}
	if cur != nil {
		r.old = append(r.old, replaced{cur, time.Now()})
	}
	r.cur.Store(nt)
	return nt
}

// dropReplaced releases the mappings replaced more than replacedGrace ago
// (r.mu held).
func (r *Reader) dropReplaced() {
	kept := r.old[:0]
	for _, o := range r.old {
		if time.Since(o.since) < replacedGrace {
			kept = append(kept, o)
		} else {
			o.t.release()
		}
	}
	clear(r.old[len(kept):])
	r.old = kept
}

// Ready reports whether the writer finished its first full list and is
// alive. It reads the table header only: no lock, no system call.
func (r *Reader) Ready() bool {
	t := r.table()
	return t != nil && t.load(hReady) == 1 && alive(t)
}

// alive reports whether the table's writer renewed its heartbeat lately
// (Close clears it at once; a killed writer goes silent).
func alive(t *table) bool {
	return time.Now().UnixNano()-int64(t.load(hHeartbeat)) < int64(deadAfter)
}

// Age returns how long ago the table last agreed with the apiserver (the
// writer's last successful list, or watch event or bookmark); false when
// it never has. A proxy decides from it how stale is too stale.
func (r *Reader) Age() (time.Duration, bool) {
	t := r.table()
	if t == nil {
		return 0, false
	}
	at := int64(t.load(hSynced))
	if at == 0 {
		return 0, false
	}
	return time.Duration(time.Now().UnixNano() - at), true
}

// Generation identifies the writer run (and file) the reader sees now.
func (r *Reader) Generation() uint64 {
	if t := r.table(); t != nil {
		return t.load(hGeneration)
	}
	return 0
}

// Changes calls fn with the key hash (KeyHash) of every change (Put or
// Delete) after the first since changes, and returns the count to pass
// next time. complete is false when the log no longer reaches back to
// since (more changes than it holds, or another file): the caller must
// then assume that anything may have changed. Start with since = the count
// from a first call (Changes(0, nil) returns it with complete false unless
// nothing ever changed).
func (r *Reader) Changes(since uint64, fn func(keyHash uint64)) (now uint64, complete bool) {
	t := r.table()
	if t == nil {
		return 0, since == 0
	}
	// The writer stores change n's hash in slot n % changeSlots before it
	// counts it: while the count is n, slot n % changeSlots may already
	// hold change n, not change n - changeSlots. So at most changeSlots-1
	// changes back are known.
	now = t.load(hChanges)
	if since > now || now-since >= changeSlots {
		return now, false
	}
	if t.version < 6 && fn != nil {
		return r.changesV4(t, since, now, fn)
	}
	for i := since; i < now; i++ {
		if fn != nil {
			fn(t.load(changeAt(i)))
		}
	}
	// The writer may have lapped the ring while we read: then some hash
	// read above is newer than its change, and older ones were lost.
	if t.load(hChanges)-since >= changeSlots {
		return t.load(hChanges), false
	}
	return now, true
}

// changesV4 is Changes over a v4 table, whose writer logged xxhash
// values: each is turned into the KeyHash of the key it names there (found
// through the v4 index). A key no longer there (deleted) cannot be
// named, and then the list is not complete: the caller re-reads all.
// (Only while the writer is older than its readers: upgrade both.)
func (r *Reader) changesV4(t *table, since, now uint64, fn func(uint64)) (uint64, bool) {
	var hs []uint64
	for i := since; i < now; i++ {
		h, named := t.load(changeAt(i)), false
		r.keysAt(t, h, func(key string) {
			hs, named = append(hs, hashKey(key)), true
		})
		if !named {
			return now, false
		}
	}
	if t.load(hChanges)-since >= changeSlots {
		return t.load(hChanges), false
	}
	for _, h := range hs {
		fn(h)
	}
	return now, true
}

// Retries counts the reads of a shard this Reader had to do again because
// the writer was changing it (or had died changing it). Tests and
// benchmarks use it to show that retries stay rare and bounded.
func (r *Reader) Retries() uint64 { return r.retries.Load() }

// KeyHash is the hash Changes reports for key ("namespace/name").
func KeyHash(key string) uint64 { return hashKey(key) }

// KeysWithHash calls fn with each stored service key whose KeyHash is h
// (almost always one, or none once deleted): it turns the hashes Changes
// reports into names. It reads one shard.
func (r *Reader) KeysWithHash(h uint64, fn func(key string)) {
	t := r.table()
	if t == nil {
		return
	}
	if t.version < 6 { // indexed by another hash: look at every key
		r.Range(func(k string, _ []Port) bool {
			if hashKey(k) == h {
				fn(k)
			}
			return true
		})
		return
	}
	r.keysAt(t, h, fn)
}

// keysAt calls fn with each service key of t whose hash in t's layout
// (t.hash) is h.
func (r *Reader) keysAt(t *table, h uint64, fn func(key string)) {
	so, tag := t.shardOf(h), tagOf(h)
	var keys []string
	if !r.stable(t, so, func() {
		keys = keys[:0]
		cells, recs, ok := t.indexes(so)
		if !ok {
			return
		}
		for _, ix := range [2]index{cells, recs} {
			if ix.c == 0 {
				continue
			}
			for s, n := home(tag, ix.c), ix.c; ; {
				var e, left uint64
				if s, e, left = probe(t.at(so), ix.base, ix.size, ix.c, tag, s, n); e == 0 {
					break // the end of the run, or round a torn index
				}
				if rec, ok := t.entryAt(so, ix, s, e); ok && t.isService(rec) {
					keys = append(keys, t.key(rec))
				}
				s, n = next(s, ix.c), left-1
			}
		}
	}) {
		return
	}
	for _, k := range keys {
		if t.hash(k) == h {
			fn(k)
		}
	}
}

// Close stops following the path and releases every mapping the reader
// holds. Lookups running meanwhile, or made afterwards, are safe: they
// answer NotReady (the mappings are replaced by zero pages, not unmapped).
func (r *Reader) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	if r.stop != nil {
		close(r.stop)
		<-r.done
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var err error
	if t := r.cur.Swap(nil); t != nil {
		err = t.release()
	}
	for _, o := range r.old {
		if e := o.t.release(); err == nil {
			err = e
		}
	}
	r.old = nil
	return err
}

// Answer is what a lookup found: the nodes, or which of three kinds of
// nothing. A proxy acts differently on each: NotReady means retry or 503
// (the table is not authoritative), Unknown means 404, Empty means 503
// (the service exists but has no address to serve for that port).
type Answer uint8

const (
	Found    Answer = iota // nodes appended (served whether or not the table is ready: last known nodes)
	Unknown                // no such service or port, and the table is ready
	Empty                  // the service exists but has no address for that port; the table is ready
	NotReady               // not found, and the table is not authoritative: not yet listed, no live writer, or closed
)

// String is the word the CLI and the control API use for the answer.
func (a Answer) String() string {
	switch a {
	case Found:
		return "found"
	case Unknown:
		return "unknown"
	case Empty:
		return "empty"
	case NotReady:
		return "not_ready"
	}
	return "Answer(" + strconv.Itoa(int(a)) + ")"
}

// Lookup appends the nodes of service ("namespace/name:port") to dst. It
// does not allocate when dst has room (and DNS names were seen before), and
// returns (dst, false) when nothing is found; Find says why.
func (r *Reader) Lookup(dst []Node, service string) ([]Node, bool) {
	dst, a := r.Find(dst, service)
	return dst, a == Found
}

// Find is Lookup with the reason when nothing is found. It reads the
// table header for readiness (no lock, no system call) and does not
// allocate.
//
// The usual case — a port name of 1 to 7 bytes, a stable shard, the
// service in its cell with room in dst — is handled here without a call:
// the query split at the colon in its last word (lastColon), the key
// hashed (hashKey written out for keys of 8 to 31 bytes), the cell
// compared to the query a word at a time, read whole, the sequence
// checked, and only then the nodes written to dst. A key in no cell goes
// to findRecord, its record's fast path. Anything else (a long port name,
// a port asked for by another name or by number, a tag collision, a torn
// read, a retry) takes findQuery, the slow path, which handles every
// case, through findAfresh (the table read again, so that Find need not
// keep it); a short key, or a query too long for a cell whose key is
// not, takes findAny.
func (r *Reader) Find(dst []Node, service string) ([]Node, Answer) {
	// r.table(), with the rare cases out of line. A v4 table (another
	// hash, no cells: fastSlots 0) is not checked for here but where a
	// path would use this hash: every cell count fails c-1 < fastSlots,
	// and findAny and the record paths check it.
	t := r.cur.Load()
	if t == nil || t.load(hRetired) != 0 { // none, or retired
		return r.findAfresh(dst, service)
	}
	L := uint64(len(service))
	if L < 10 { // too short for this path
		return r.findAny(t, dst, service)
	}
	q := unsafe.StringData(service)
	j := uint64(lastColon(le64at(q, L-8)))
	n := L - 8 + j       // key length
	if j >= 7 || n < 8 { // no colon in the last word, an empty port name, or a key under a word
		return r.findAny(t, dst, service)
	}
	// The lengths a cell holding this query's service has in its word 0
	// (inline.go): computed now, so that only this is kept across the
	// hash for the cell's check rather than j and n.
	want := inlineBit | (7-j)<<8 | n
	if L > cellTextBytes { // too long for a cell's text
		if n < cellTextBytes || t.fastSlots == 0 { // yet maybe in a cell, asked for by number; or a v4 table
			return r.findAny(t, dst, service)
		}
		h := hashKey(unsafe.String(q, n))
		so, tag := t.shardOf(h), tagOf(h)
		if seq, c := t.load(so+sSeq), t.load(so+sCap); seq&1 == 0 && c <= t.fastSlots {
			return r.findRecord(t, so, seq, c, tag, service, dst)
		}
		return r.findQuery(t, dst, service)
	}
	// hashKey, written out for a key of 8 to 31 bytes: hash.go's formula
	// for 16 to 32 bytes, and hashAny's for 8 to 15, each whole (sharing
	// their last two multiplies cost registers where the two meet). The
	// usual key, of 16 bytes or more, is the second branch: the code runs
	// on from it, where the first jumps over it.
	var h uint64
	if n < 16 {
		h = hashMix(hashP1^n, hashMix(le64at(q, 0)^hashP1, le64at(q, n-8)^hashP0^n)^hashP2)
	} else {
		seed := hashMix(le64at(q, 0)^hashP1, le64at(q, 8)^hashP0^n)
		h = hashMix(hashP1^n, hashMix(le64at(q, n-16)^hashP1, le64at(q, n-8)^seed)^hashP2)
	}
	so, tag := t.shardOf(h), tagOf(h)
	sp := t.at(so)
	seq, c := ld(sp, sSeq), ld(sp, sCap)
	if seq&1 != 0 || c-1 >= t.fastSlots {
		if seq&1 == 0 && c == 0 && t.fastSlots != 0 { // no cell in the shard (of a table with cells)
			return r.findRecord(t, t.offset(sp), seq, c, tag, service, dst)
		}
		return r.findAfresh(dst, service)
	}
	cells := unsafe.Add(sp, shardHeaderBytes)
	s := home(tag, c)
	cp := unsafe.Add(cells, s*cellBytes) // the cell
	// A cell's word 0 but for its slot's reach and its node count, if it
	// holds this query's service (inline.go): its tag, the inline bit and
	// the query's lengths. One compare finds it at home, the usual case.
	// (h<<32 is tag<<32, from h itself: that left the register allocator
	// one copy fewer, and 4 instructions a lookup.)
	const keyMask = 0xffffffff<<32 | inlineBit | 0xffff
	expect := h<<32 | want
	e := ld(cp, 0)
	if e&keyMask != expect {
		if e != 0 && e>>32 != tag { // not at home: look as far as its reach
			// probeReach, written out: it is too big to inline, and a
			// call here, though rarely taken, cost every lookup 17
			// instructions (cachegrind: 307.4 -> 324.4), the values
			// kept across it spilled.
			m, lim, left := reachOf(e), c-1, uint64(0)
			if m < reachMax {
				lim = min(m, c-1)
			}
			if s, e, left = probe(sp, shardHeaderBytes, cellBytes, c, tag, next(s, c), lim); left == 0 && m < reachMax {
				e = 0 // beyond the reach: in no cell
			} else if left == 0 {
				return r.findAfresh(dst, service)
			}
		}
		if e == 0 { // not in a cell: in a record slot, or nowhere
			return r.findRecord(t, t.offset(sp), seq, c, tag, service, dst)
		}
		if e&keyMask != expect { // another service's lengths (a tag collision), or not a cell
			return r.findAfresh(dst, service)
		}
		cp = unsafe.Add(cells, s*cellBytes)
	}
	// The cell, of the query's lengths, holds the service if its text
	// key ":" name is the query itself: one cache line, compared a word at
	// a time (the cell is zero-padded, L is 10 to 32). Every word of it is
	// read before the sequence is checked again; the nodes are then
	// written from registers, with nothing of the lookup kept across the
	// write barrier's calls. Anything else (another port name, a number,
	// a tag collision, a torn read) is for the slow path.
	last := le64at(q, L-8) >> (8 * (-L & 7))
	d := (ld(cp, cellTextOff) ^ le64at(q, 0)) | (ld(cp, cellTextOff+(L-1)&^7) ^ last)
	if L > 16 {
		d |= ld(cp, cellTextOff+8) ^ le64at(q, 8)
		if L > 24 {
			d |= ld(cp, cellTextOff+16) ^ le64at(q, 16)
		}
	}
	nn, base := int(e>>16&0xff), len(dst)
	end := base + nn
	if uint(nn-1) >= cellMaxNodes || end > cap(dst) || d != 0 {
		return r.findAfresh(dst, service)
	}
	w1, v0, v1 := ld(cp, 8), ld(cp, cellNodesOff), ld(cp, cellNodesOff+8)
	if ld(sp, sSeq) != seq {
		return r.findAfresh(dst, service)
	}
	out := dst[:end]
	nd := out[base:end:end] // 1 to 4 nodes: written as such, no bounds check
	port, weight := uint16(w1), uint32(w1>>32)
	// Name is written first: its two words are then stored as such,
	// where after Addr the compiler merges them into one 16-byte store
	// that needs the node's address computed into a register.
	x := &nd[0]
	x.Name, x.Addr, x.Port, x.Weight = "", addr4(uint32(v0)), port, weight
	if len(nd) > 1 {
		x = &nd[1]
		x.Name, x.Addr, x.Port, x.Weight = "", addr4(uint32(v0>>32)), port, weight
		if len(nd) > 2 {
			x = &nd[2]
			x.Name, x.Addr, x.Port, x.Weight = "", addr4(uint32(v1)), port, weight
			if len(nd) > 3 {
				x = &nd[3]
				x.Name, x.Addr, x.Port, x.Weight = "", addr4(uint32(v1>>32)), port, weight
			}
		}
	}
	return out, Found
}

// probeReach looks for the cell of a key of tag whose home cell s, of c
// cells in the shard at sp, holds another key's entry e: as far as e's
// reach (inline.go; every cell when it is reachMax). It returns the
// key's slot and cell entry, e == 0 when the key is in no cell, and torn
// when the walk went round without an end (a torn read).
func probeReach(sp unsafe.Pointer, c, tag, s, e uint64) (uint64, uint64, bool) {
	m, lim := reachOf(e), c-1
	if m < reachMax {
		lim = min(m, c-1)
	}
	s, e, left := probe(sp, shardHeaderBytes, cellBytes, c, tag, next(s, c), lim)
	if left == 0 {
		return s, 0, m == reachMax // beyond the reach: in no cell
	}
	return s, e, false
}

// findAny is the fast path for a query Find leaves to it: under 10
// bytes, a key under a word, or a query too long for a cell's text whose
// key is not (a record, or the port of a cell asked for by number). It
// probes the key's cells (decoding a cell's nodes with fill4), then its
// record slots (findRecord); hashKey is called for a key outside 16 to
// 32 bytes.
func (r *Reader) findAny(t *table, dst []Node, service string) ([]Node, Answer) {
	if len(service) < 8 || t.fastSlots == 0 { // too short, or a v4 table (another hash)
		return r.findQuery(t, dst, service)
	}
	q := unsafe.StringData(service)
	w := le64at(q, uint64(len(service)-8))
	j := lastColon(w)
	i := len(service) - 8 + int(j)
	if j >= 7 || i < 1 { // no colon in the last word, an empty port name, or an empty key
		return r.findQuery(t, dst, service)
	}
	// A detail key ("\x00…") is looked up as any other: keyRecord refuses
	// a blob, and the slow path says Unknown.
	n, nameLen := uint64(i), uint64(7-j) // key length, port name length
	var h uint64
	if n-16 <= 16 { // hashKey, written out for the usual key of 16 to 32 bytes
		seed := hashMix(le64at(q, 0)^hashP1, le64at(q, 8)^hashP0^n)
		h = hashMix(hashP1^n, hashMix(le64at(q, n-16)^hashP1, le64at(q, n-8)^seed)^hashP2)
	} else {
		h = hashKey(unsafe.String(q, i)) // service[:i], 1 <= i < len(service): no bounds check
	}
	so, tag := t.shardOf(h), tagOf(h)
	sp := t.at(so)
	if seq, c := ld(sp, sSeq), ld(sp, sCap); seq&1 == 0 && c-1 < t.fastSlots && n < cellTextBytes {
		s := home(tag, c)
		e := ld(sp, shardHeaderBytes+s*cellBytes)
		if e != 0 && e>>32 != tag { // not at home: look as far as its reach
			var torn bool
			if s, e, torn = probeReach(sp, c, tag, s, e); torn {
				return r.findSlow(t, so, tag, service, i, dst)
			}
		}
		if e == 0 { // not in a cell: in a record slot, or nowhere
			return r.findRecord(t, so, seq, c, tag, service, dst)
		} else if e&inlineBit != 0 {
			// The service is in the cell (inline.go), one cache line:
			// its lengths, port and weight, nodes and the text
			// key ":" name, which is the query itself.
			cl, L := shardHeaderBytes+s*cellBytes, uint64(len(service))
			nn, w1 := e>>16&0xff, ld(sp, cl+8)
			if L <= cellTextBytes && e&0xffff == nameLen<<8|n && nn-1 < cellMaxNodes && nn <= uint64(cap(dst)-len(dst)) &&
				keyAt(sp, cl+cellTextOff, q, L, lastKeyWord(q, L)) {
				base := len(dst)
				dst = dst[:base+int(nn)]
				fill4(dst[base:], sp, cl+cellNodesOff, uint16(w1), uint32(w1>>32))
				if ld(sp, sSeq) == seq {
					return dst, Found
				}
				dst = dst[:base]
			}
		}
	} else if seq&1 == 0 && c <= t.fastSlots {
		// No cell in the shard, or a key too long for one (a cell's text
		// holds the key, a colon and the port name, which may be empty).
		return r.findRecord(t, so, seq, c, tag, service, dst)
	}
	return r.findSlow(t, so, tag, service, i, dst)
}

// findRecord is Find's fast path for a key in no cell of the shard at so
// (read at sequence seq, with c <= idxCap cells): its record slot, then
// its record. The query is as Find's fast path found it (8 bytes or
// more, a colon in the last word); the key's length and the port name
// are found again here, so that Find keeps no more values live for this
// call than the inline path needs (spilling them cost it 10 instructions
// a lookup).
func (r *Reader) findRecord(t *table, so, seq, c, tag uint64, service string, dst []Node) ([]Node, Answer) {
	sp, sb := t.at(so), t.shardBytes
	q := unsafe.StringData(service)
	w := le64at(q, uint64(len(service)-8))
	j := lastColon(w)
	n, pw, nameLen := uint64(len(service)-8)+uint64(j), w>>(8*(j+1)), uint64(7-j) // key length, port name
	rb, rc := shardHeaderBytes+c*cellBytes, ld(sp, sRCap)                         // c <= idxCap: rb <= sb
	if rc == 0 {
		if ld(sp, sSeq) == seq { // no such key
			return dst, r.nothing(t, Unknown)
		}
	} else if rc-1 < t.fastRecSlots && rb+rc*v4SlotBytes <= sb {
		_, e, left := probe(sp, rb, v4SlotBytes, rc, tag, home(tag, rc), rc)
		if e == 0 {
			if left != 0 && ld(sp, sSeq) == seq { // no such key
				return dst, r.nothing(t, Unknown)
			}
		} else if off := (e & 0xffffffff) * 8; e&inlineBit == 0 && off >= shardHeaderBytes && off+recHeaderBytes+keyPad(n)+portHeaderBytes+8 <= sb {
			// If this is the key, its first port header is at p and its
			// nodes follow a one-word name: offsets computed from the
			// query rather than from loaded words, so that the loads of
			// the record header, the key, the port header and the nodes
			// are all in flight at once. keyRecord, fixed4 and keyAt check
			// them.
			p := off + recHeaderBytes + keyPad(n)
			rh, w0, w1 := ld(sp, off), ld(sp, p), ld(sp, p+8)
			end, ok := keyRecord(rh, n, p, sb, pw)
			nn, ok4 := fixed4(w0, w1, ld(sp, p+portHeaderBytes), nameLen, pw, p, end)
			if ok && ok4 && nn <= uint64(cap(dst)-len(dst)) && keyAt(sp, off+recHeaderBytes, q, n, lastKeyWord(q, n)) {
				base := len(dst)
				dst = dst[:base+int(nn)]
				fill4(dst[base:], sp, p+portHeaderBytes+8, uint16(w0>>16), uint32(w1>>32))
				if ld(sp, sSeq) == seq {
					return dst, Found
				}
				dst = dst[:base]
			}
		}
	}
	return r.findSlow(t, so, tag, service, int(n), dst)
}

// keyRecord checks the header rh of a record found for a query (see Find)
// whose key has n bytes and whose port name is pw: the record has the
// key's length, at least one port, and lies inside the shard of sb bytes
// (its value, starting at p, ends at end). No port (Empty), a blob (a
// detail, not a service), a big value's head or piece, or a number that
// may name no port (see lookupNumber) is for the slow path.
func keyRecord(rh, n, p, sb, pw uint64) (end uint64, ok bool) {
	nPorts, end := rh>>48, p+(rh>>16&0xffffffff)
	return end, rh&0xffff == n && nPorts-1 < maxPorts && (nPorts == 1 || uint8(pw)-'0' > 9) && end <= sb
}

// fixed4 checks a port header w0, w1 at p and its name word: the name is
// pw (nameLen bytes, at most 7), the nodes are fixed-width IPv4 and lie
// before end. It returns the node count.
func fixed4(w0, w1, name, nameLen, pw, p, end uint64) (nn uint64, ok bool) {
	nn = w1 & 0xffffffff
	return nn, w0&0xffff == nameLen|fmtIPv4<<8 && name == pw && w0>>32 == 4*nn && nn != 0 &&
		p+portHeaderBytes+8+keyPad(4*nn) <= end
}

// lastKeyWord is the last word of the key of n bytes at q (padded with
// zeros, as the table stores it), from one load, which may overlap the
// word before: q has at least 8 bytes.
func lastKeyWord(q *byte, n uint64) uint64 {
	if n < 8 {
		return le64at(q, 0) & (1<<(8*n) - 1)
	}
	return le64at(q, n-8) >> (8 * (-n & 7))
}

// keyAt reports whether the key stored at off of the shard at sp (padded
// with zeros to a word) is the n bytes at q, whose last word is last
// (lastKeyWord): a word at a time, without a byte loop.
func keyAt(sp unsafe.Pointer, off uint64, q *byte, n, last uint64) bool {
	d := ld(sp, off+(n-1)&^7) ^ last
	for k := uint64(0); k+8 < n; k += 8 {
		d |= ld(sp, off+k) ^ le64at(q, k)
	}
	return d == 0
}

// findAfresh is Find on the slow path with the table read again
// (r.table, which re-opens a retired path): for a table retired or not
// there yet, and for the queries Find's inline path gives up on once it
// no longer keeps the table (one register less there).
func (r *Reader) findAfresh(dst []Node, service string) ([]Node, Answer) {
	t := r.table()
	if t == nil {
		return dst, NotReady
	}
	return r.findQuery(t, dst, service)
}

// findQuery is Find for a query whose last word holds no colon.
func (r *Reader) findQuery(t *table, dst []Node, service string) ([]Node, Answer) {
	i := strings.LastIndexByte(service, ':')
	if i < 0 || isDetailKey(service) {
		return dst, r.nothing(t, Unknown)
	}
	h := t.hash(service[:i])
	return r.findSlow(t, t.shardOf(h), tagOf(h), service, i, dst)
}

// lastColon returns the index of the last ':' byte of w, a query's last
// word read little-endian, or 8 or more when there is none. The usual
// query "namespace/name:port" has a port name of 1 to 7 bytes, so its
// colon is found there without a byte loop; the bytes after it are the
// port name as the table stores it (a zero-padded little-endian word).
func lastColon(w uint64) uint {
	const ones, low7 = 0x0101010101010101, 0x7f7f7f7f7f7f7f7f
	x := w ^ ':'*ones
	z := ^(x&low7 + low7 | x | low7)            // 0x80 in each byte of w that is ':', exactly
	return uint(63-bits.LeadingZeros64(z)) >> 3 // huge for none
}

// nothing is the answer for a lookup that found no node: a, unless the
// table is not ready.
func (r *Reader) nothing(t *table, a Answer) Answer {
	if t.load(hReady) != 1 || !alive(t) {
		return NotReady
	}
	return a
}

// findSlow is Find for every case: optimistic passes over the shard
// until one reads it at a stable sequence.
func (r *Reader) findSlow(t *table, so, tag uint64, service string, i int, dst []Node) ([]Node, Answer) {
	base := len(dst)
	b := backoff{r: r, t: t}
	for {
		seq := t.load(so + sSeq)
		if seq&1 == 0 {
			out, res := r.lookup(t, so, seq, tag, service, i, dst)
			if t.load(so+sSeq) == seq {
				if res == resBig {
					if out, res = r.lookupBig(t, so, tag, service, i, dst, &b); res == resGaveUp {
						// A piece's shard stays odd (a dead or stuck
						// writer), or the value kept changing.
						return out[:base], NotReady
					}
				}
				switch res {
				case resFound:
					return out, Found
				case resNone, resCorrupt: // consistent yet invalid: never loop on it
					return out[:base], r.nothing(t, Unknown)
				case resEmpty:
					return out[:base], r.nothing(t, Empty)
				}
			}
			dst = out[:base] // keep capacity grown on the way
		}
		if !b.wait(seq) {
			return dst, NotReady
		}
	}
}

type result int

const (
	resNone    result = iota // no such key or port (valid only if the sequence held)
	resFound                 // appended (valid only if the sequence held)
	resEmpty                 // the key is there, with no node for the port
	resCorrupt               // undecodable: torn, or a corrupt table
	resMoved                 // the sequence moved while reading: retry
	resBig                   // the key holds a big value (big.go): read it with lookupBig
	resAgain                 // the key no longer holds a big value: read it again
	resGaveUp                // a big value could not be read consistently (Reader.big)
)

// lookup is one optimistic pass over the shard at sequence seq for key
// service[:i] and port service[i+1:]. It reads the mapping in place, a
// word at a time: the index slots, the record's key and port headers, then
// the nodes straight into dst. Every offset read from the mapping is checked
// against the bounds of the shard, then of the record, before use.
func (r *Reader) lookup(t *table, so, seq, tag uint64, service string, i int, dst []Node) ([]Node, result) {
	key, port := service[:i], service[i+1:]
	_, rec, res := t.lookupKey(so, tag, key)
	if res != resFound {
		return dst, res
	}
	if rec.nPorts == bigPorts {
		return dst, resBig
	}
	return r.answer(t, so, seq, rec, port, dst)
}

// lookupBig is lookup for a key that holds a big value: the value put
// back together (Reader.big), then answered as any other. The result is
// final (the big value is read consistently), except resMoved.
func (r *Reader) lookupBig(t *table, so, tag uint64, service string, i int, dst []Node, b *backoff) ([]Node, result) {
	pt, rec, res := r.big(t, so, tag, service[:i], b)
	switch res {
	case resFound:
		return r.answer(pt, 0, 0, rec, service[i+1:], dst) // a private table: its shard 0 at sequence 0
	case resAgain:
		return dst, resMoved // no longer big: read it again
	}
	return dst, res
}

// answer finds port in the record rec of the shard at so (read at
// sequence seq) and appends its nodes to dst. A port named port is the
// answer, whatever its nodes; failing that, a decimal port is the union of
// the ports numbered so (lookupNumber).
func (r *Reader) answer(t *table, so, seq uint64, rec record, port string, dst []Node) ([]Node, result) {
	if rec.cell {
		return r.answerCell(t, so, seq, rec, port, dst)
	}
	switch rec.nPorts {
	case 0: // no port at all (scaled to zero): empty for every port
		return dst, resEmpty
	case blobPorts, piecePorts, bigPorts:
		return dst, resNone
	}
	// The value is [p, end), relative to so below.
	p, end := rec.value()
	p, end, nPorts := p-so, end-so, rec.nPorts
	first := p
	// Walk the port headers for the port.
	for ; nPorts > 0; nPorts-- {
		if end-p < portHeaderBytes { // p <= end holds: checked below
			return dst, resCorrupt
		}
		w0 := t.load(so + p)
		name := p + portHeaderBytes
		next := name + keyPad(w0&0xff) + keyPad(w0>>32)
		if next > end {
			return dst, resCorrupt
		}
		if w0&0xff != uint64(len(port)) || !t.equalShort(so+name, port) {
			p = next
			continue
		}
		h := portHdr{w0: w0, w1: t.load(so + p + 8), name: so + name}
		h.body = h.name + keyPad(w0&0xff)
		h.next = so + next
		if !h.nodesOK() {
			return dst, resCorrupt
		}
		if h.nNodes() == 0 {
			return dst, resEmpty
		}
		return r.appendNodes(t, so, seq, &h, dst)
	}
	if num, ok := portNumber(port); ok {
		return r.lookupNumber(t, so, seq, first, end, rec.nPorts, num, dst)
	}
	return dst, resNone
}

// answerCell is answer for a service held inline in its index cell: its
// one port, by name or else by number.
func (r *Reader) answerCell(t *table, so, seq uint64, rec record, port string, dst []Node) ([]Node, result) {
	c, ok := t.cellAt(rec.off)
	if !ok {
		return dst, resCorrupt
	}
	if !c.nameIs(port) {
		if num, ok := portNumber(port); !ok || num != c.port() {
			return dst, resNone
		}
	}
	nn := c.nNodes()
	if nn == 0 {
		return dst, resEmpty
	}
	base := len(dst)
	if cap(dst)-base < nn {
		if t.load(so+sSeq) != seq {
			return dst, resMoved // do not grow dst for a value already gone
		}
		dst = slices.Grow(dst, nn)
	}
	dst = dst[:base+nn]
	c.fill(dst[base:])
	return dst, resFound
}

// appendNodes appends the nodes of the port h (nodesOK, at least one).
func (r *Reader) appendNodes(t *table, so, seq uint64, h *portHdr, dst []Node) ([]Node, result) {
	nn := h.nNodes()
	base := len(dst)
	if uint64(cap(dst)-base) < nn {
		if t.load(so+sSeq) != seq {
			return dst, resMoved // do not grow dst for a value already gone
		}
		dst = slices.Grow(dst, int(nn))
	}
	dst = dst[:base+int(nn)]
	if h.format() == fmtIPv4 {
		fill4(dst[base:], t.base, h.body, h.port(), h.weight()) // the usual case
		return dst, resFound
	}
	in := interner{n: &r.names, t: t, so: so, seq: seq}
	if !t.decodeNodes(h, dst[base:], &in) {
		return dst[:base], resCorrupt
	}
	return dst, resFound
}

// lookupNumber answers a query by port number ("ns/name:8080") that no
// port is named: the union of the nodes of every port numbered num, so
// that users who give the number rather than the name find the port. Nodes
// are deduplicated (a port number named twice, e.g. for TCP and UDP) and
// sorted as usual. A port with no node is numbered by its header (layout
// layout 7 keeps the number), so it answers Empty by number as by name.
func (r *Reader) lookupNumber(t *table, so, seq, p, end, nPorts uint64, num uint16, dst []Node) ([]Node, result) {
	base, matched, empty := len(dst), 0, false
	for ; nPorts > 0; nPorts-- {
		h, ok := t.portAt(so+p, so+end)
		if !ok || !h.nodesOK() {
			return dst[:base], resCorrupt
		}
		p = h.next - so
		if h.nNodes() == 0 {
			empty = empty || h.port() == num
			continue
		}
		if h.format() != fmtMixed && h.port() != num {
			continue // fixed-width bodies: every node has the header's port
		}
		start := len(dst)
		var res result
		if dst, res = r.appendNodes(t, so, seq, &h, dst); res != resFound {
			return dst[:base], res
		}
		kept := start // a mixed body: keep the nodes numbered num
		for _, n := range dst[start:] {
			if n.Port == num {
				dst[kept] = n
				kept++
			}
		}
		dst = dst[:kept]
		if len(dst) > start {
			matched++
		}
	}
	switch {
	case len(dst) == base && empty:
		return dst, resEmpty
	case len(dst) == base:
		return dst, resNone
	case matched > 1:
		slices.SortFunc(dst[base:], Compare)
		dst = dst[:base+len(slices.CompactFunc(dst[base:], func(a, b Node) bool { return Compare(a, b) == 0 }))]
	}
	return dst, resFound
}

// portNumber reads a query's port as a decimal port number (1 to 65535,
// no sign, no leading zero).
func portNumber(s string) (uint16, bool) {
	if len(s) == 0 || len(s) > 5 || s[0] == '0' {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i] - '0'
		if c > 9 {
			return 0, false
		}
		n = n*10 + int(c)
	}
	return uint16(n), n <= 65535
}

// Get returns a copy of key's whole value.
func (r *Reader) Get(key string) ([]Port, bool) {
	t := r.table()
	if t == nil || isDetailKey(key) {
		return nil, false
	}
	h := t.hash(key)
	so, tag := t.shardOf(h), tagOf(h)
	var ports []Port
	var ok, big bool
	if !r.stable(t, so, func() {
		_, rec, res := t.lookupKey(so, tag, key)
		ports, ok, big = nil, res == resFound, rec.nPorts == bigPorts
		if ok && !big {
			ports, ok = t.ports(rec)
		}
	}) {
		return nil, false
	}
	if ok && big {
		return r.bigPorts(t, so, tag, key)
	}
	return ports, ok
}

// bigPorts decodes key's big value whole.
func (r *Reader) bigPorts(t *table, so, tag uint64, key string) ([]Port, bool) {
	pt, rec, res := r.big(t, so, tag, key, nil)
	switch res {
	case resFound:
		return pt.ports(rec)
	case resAgain: // made small meanwhile
		return r.Get(key)
	}
	return nil, false
}

// Detail appends the detail stored beside key's value (Writer.PutDetail)
// to dst; false when there is none.
func (r *Reader) Detail(dst []byte, key string) ([]byte, bool) {
	t := r.table()
	if t == nil {
		return dst, false
	}
	dk := detailKey(key)
	h := t.hash(dk)
	so, tag := t.shardOf(h), tagOf(h)
	out, ok, big := dst, false, false
	if !r.stable(t, so, func() {
		out, ok, big = dst, false, false
		if _, rec, res := t.lookupKey(so, tag, dk); res == resFound && isBlob(rec) {
			out, ok = t.blob(rec, dst)
		} else if res == resFound {
			big = rec.nPorts == bigPorts
		}
	}) {
		return dst, false
	}
	if big {
		pt, rec, res := r.big(t, so, tag, dk, nil)
		if res == resAgain { // made small meanwhile
			return r.Detail(dst, key)
		}
		if res != resFound || !isBlob(rec) {
			return dst, false
		}
		return pt.blob(rec, dst)
	}
	return out, ok
}

// Range calls fn with every entry until fn returns false. Each shard is
// read consistently (so each entry is), and fn runs outside the read.
func (r *Reader) Range(fn func(key string, ports []Port) bool) {
	t := r.table()
	if t == nil {
		return
	}
	type entry struct {
		key   string
		ports []Port
		big   bool // a big value's head: read whole after the shard
	}
	for i := range t.shards {
		so := t.shardAt(i)
		var entries []entry
		var ok bool
		if !r.stable(t, so, func() {
			entries = entries[:0]
			pok := true
			ok = t.eachEntry(so, func(_ slotRef, _ uint64, rec record) bool {
				if !t.isService(rec) {
					return true // a detail or a piece, not a service
				}
				var e entry
				e.key = t.key(rec)
				if e.big = rec.nPorts == bigPorts; !e.big {
					e.ports, pok = t.ports(rec)
				}
				entries = append(entries, e)
				return pok
			}) && pok
		}) || !ok {
			entries = entries[:0] // given up, or corrupt: skip the shard
		}
		for _, e := range entries {
			if e.big {
				var ok bool
				if e.ports, ok = r.bigPorts(t, so, tagOf(t.hash(e.key)), e.key); !ok {
					continue // deleted meanwhile, or corrupt
				}
			}
			if !fn(e.key, e.ports) {
				return
			}
		}
	}
}

// stable runs read over the shard at so until one pass sees the shard
// unchanged from start to end (its result is then consistent), pacing
// retries with a backoff; false when it gave up (see backoff). read keeps
// its result in variables of the caller's and must start afresh each time.
func (r *Reader) stable(t *table, so uint64, read func()) bool {
	b := backoff{r: r, t: t}
	return r.stableWith(&b, t, so, read)
}

// stableWith is stable under the budget of b, which a caller reading
// several shards for one answer (a big value's head and pieces) shares
// between them, so that the answer as a whole never blocks for longer
// than one read may.
func (r *Reader) stableWith(b *backoff, t *table, so uint64, read func()) bool {
	for {
		seq := t.load(so + sSeq)
		if seq&1 == 0 {
			read()
			if t.load(so+sSeq) == seq {
				return true
			}
		}
		if !b.wait(seq) {
			return false
		}
	}
}

// backoff paces a reader that met a shard being written: spin briefly
// (a Put holds a shard for well under a microsecond), then yield. A writer
// that died in the middle of a change leaves the shard's sequence odd for
// good; the reader asks (once per writer run) whether a writer still holds
// the table's lock, and gives up at once when none does. A live writer
// that does not move (descheduled in the middle of a change) is waited for
// stuckAfter; one that keeps rewriting the shard, at most busyAfter in
// all: a lookup never blocks for longer. Giving up answers NotReady: stale
// but never torn. The next writer repairs a shard its predecessor left odd.
type backoff struct {
	r     *Reader
	t     *table
	n     int
	seq   uint64 // the sequence last seen, and since when
	since int64
	start int64
}

const (
	stuckAfter = 20 * time.Millisecond
	busyAfter  = 200 * time.Millisecond
)

func (b *backoff) wait(seq uint64) bool {
	b.n++
	b.r.retries.Add(1) // the slow path only: a lookup that needs no retry writes nothing
	if b.n < 32 {
		return true
	}
	// Yield rather than sleep: a sleeping goroutine's wake-up can lag by
	// milliseconds on a busy machine, a runnable one's cannot as much.
	runtime.Gosched()
	if b.n%32 != 0 {
		return true
	}
	if seq&1 == 1 && b.r.writerDead(b.t) {
		return false
	}
	now := time.Now().UnixNano()
	if b.start == 0 {
		b.start = now
	}
	if seq != b.seq {
		b.seq, b.since = seq, now
	}
	return now-b.since <= int64(stuckAfter) && now-b.start <= int64(busyAfter)
}

// writerDead reports whether no writer runs on t: its heartbeat was
// cleared by Close, or (for a file) nobody holds its lock. The answer is
// remembered for the writer run, so a dead writer costs one system call.
func (r *Reader) writerDead(t *table) bool {
	gen := t.load(hGeneration) + 1
	if r.deadGen.Load() == gen {
		return true
	}
	dead := t.load(hHeartbeat) == 0 || (t.f != nil && !t.writer && !writerHolds(t.f))
	if dead {
		r.deadGen.Store(gen)
	}
	return dead
}
