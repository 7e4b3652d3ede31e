package shm

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Reader reads a table, lock-free, from any number of goroutines. It never
// writes to the mapping (a file table is mapped read-only).
//
// When the writer replaces the file (a new size, a new layout), it marks
// the old one retired; the next call notices (one atomic load) and re-opens
// the path. Old mappings stay mapped until Close, because goroutines may
// still be reading them: a Reader costs at most one mapping per replacement
// it lived through.
type Reader struct {
	path      string
	inProcess bool // from Writer.Reader: the writer is this process
	cur       atomic.Pointer[table]
	names     names
	mu        sync.Mutex // re-open and Close
	old       []*table
	lastTry   atomic.Int64 // unix nanos of the last re-open attempt
}

// Open maps the table at path read-only.
func Open(path string) (*Reader, error) {
	t, err := openTable(path)
	if err != nil {
		return nil, err
	}
	return newReader(path, t), nil
}

func newReader(path string, t *table) *Reader {
	r := &Reader{path: path}
	r.cur.Store(t)
	return r
}

func openTable(path string) (*table, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("shm: no kdisc table at %s (is \"kdisc run\" running?): %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("shm: %w", err)
	}
	defer f.Close() // the mapping outlives the descriptor
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("shm: %w", err)
	}
	if !st.Mode().IsRegular() || st.Size() < headerBytes || st.Size() > MaxSize {
		return nil, fmt.Errorf("shm: %s is not a kdisc table (%s, %d bytes)", path, st.Mode().Type(), st.Size())
	}
	mem, err := mapFile(f, st.Size(), false)
	if err != nil {
		return nil, err
	}
	g, err := checkHeader(mem, path)
	if err != nil {
		unmap(mem)
		return nil, err
	}
	return newTable(mem, g), nil
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

// reattach swaps in the file now at the path. It keeps serving the retired
// mapping (last known values) while the path holds nothing better, and
// tries at most every 10 ms so a missing file does not turn every lookup
// into an open(2).
func (r *Reader) reattach(t *table) *table {
	if r.path == "" {
		return t
	}
	now := time.Now().UnixNano()
	if last := r.lastTry.Load(); now-last < int64(10*time.Millisecond) || !r.lastTry.CompareAndSwap(last, now) {
		return t
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur := r.cur.Load(); cur != t {
		return cur // another goroutine did it, or Close
	}
	nt, err := openTable(r.path)
	if err != nil {
		return t
	}
	if nt.load(hGeneration) == t.load(hGeneration) || nt.load(hRetired) != 0 {
		nt.release() // the same file, or already replaced again: later
		return t
	}
	r.old = append(r.old, t)
	r.cur.Store(nt)
	return nt
}

// Ready reports whether the writer finished its first full list and is
// still running (it holds the table's lock).
func (r *Reader) Ready() bool {
	t := r.table()
	return t != nil && t.load(hReady) == 1 && (r.inProcess || writerAlive(r.path))
}

// Generation identifies the writer run (and file) the reader sees now.
func (r *Reader) Generation() uint64 {
	if t := r.table(); t != nil {
		return t.load(hGeneration)
	}
	return 0
}

// Close unmaps every mapping the reader holds. No goroutine may use the
// Reader during or after Close.
func (r *Reader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var err error
	if t := r.cur.Swap(nil); t != nil {
		err = t.release()
	}
	for _, t := range r.old {
		if e := t.release(); err == nil {
			err = e
		}
	}
	r.old = nil
	return err
}

// Lookup appends the nodes of service ("namespace/name:port") to dst. It
// does not allocate when dst has room (and DNS names were seen before), and
// returns (dst, false) when the service, the port, or its nodes are absent.
//
// The usual case — a stable shard, the key there, the wanted port its first
// with fixed-width IPv4 nodes, room in dst — is handled inline below; it is
// most lookups, and calls and spills were much of their cost. Anything else
// (a miss after a tag collision, other ports or formats, a torn read, a
// retry) takes lookupSlow, which handles every case.
func (r *Reader) Lookup(dst []Node, service string) ([]Node, bool) {
	i := strings.LastIndexByte(service, ':')
	t := r.cur.Load() // r.table(), inline
	if t != nil && t.load(hRetired) != 0 {
		t = r.reattach(t)
	}
	if i < 0 || t == nil {
		return dst, false
	}
	key, port := service[:i], service[i+1:]
	h := hashKey(key)
	so, tag := t.shardOf(h), tagOf(h)
	seq := t.load(so + sSeq)
	c := t.load(so + sCap)
	if seq&1 != 0 || c-1 >= t.idxCap() { // being written, empty or corrupt
		return r.lookupSlow(t, so, tag, service, i, dst)
	}
	for s, probes := home(tag, c), c; probes > 0; probes-- {
		e := t.load(so + shardHeaderBytes + s*8)
		if e == 0 {
			if t.load(so+sSeq) != seq {
				break
			}
			return dst, false
		}
		if e>>32 != tag {
			if s++; s == c {
				s = 0
			}
			continue
		}
		// If this is the key, its first port header is at p and that
		// port's nodes at body: offsets computed from the query rather
		// than from loaded words, so that the loads of the record
		// header, the port header and the nodes can all be in flight at
		// once. They are validated before use.
		off := (e & 0xffffffff) * 8
		p := off + recHeaderBytes + keyPad(uint64(len(key)))
		name := p + portHeaderBytes
		body := name + keyPad(uint64(len(port)))
		if off < shardHeaderBytes || body > t.shardBytes {
			break
		}
		rh, w0 := t.load(so+off), t.load(so+p)
		if rh&0xffff != uint64(len(key)) || !t.equal(so+off+recHeaderBytes, key) {
			if s++; s == c {
				s = 0
			}
			continue
		}
		end := p + (rh >> 16 & 0xffffffff)
		if rh>>48 == 0 || end > t.shardBytes || w0&0xff != uint64(len(port)) || w0>>8&0xff != fmtIPv4 ||
			body+keyPad(w0>>32) > end || !t.equalShort(so+name, port) {
			break
		}
		w1 := t.load(so + p + 8)
		nn := w1 & 0xffffffff
		if nn == 0 || w0>>32 != 4*nn || uint64(cap(dst)-len(dst)) < nn {
			break
		}
		base := len(dst)
		dst = dst[:base+int(nn)]
		t.fill4(dst[base:], so+body, uint16(w0>>16), uint32(w1>>32))
		if t.load(so+sSeq) == seq {
			return dst, true
		}
		dst = dst[:base]
		break
	}
	return r.lookupSlow(t, so, tag, service, i, dst)
}

// lookupSlow is Lookup for every case: optimistic passes over the shard
// until one reads it at a stable sequence.
func (r *Reader) lookupSlow(t *table, so, tag uint64, service string, i int, dst []Node) ([]Node, bool) {
	base := len(dst)
	var b backoff
	for {
		seq := t.load(so + sSeq)
		if seq&1 == 0 {
			out, res := r.lookup(t, so, seq, tag, service, i, dst)
			if t.load(so+sSeq) == seq {
				if res == resCorrupt { // consistent yet invalid: never loop on it
					res = resNone
				}
				if res == resFound {
					return out, true
				}
				if res == resNone {
					return out[:base], false
				}
			}
			dst = out[:base] // keep capacity grown on the way
		}
		if !b.wait(seq) {
			return dst, false
		}
	}
}

type result int

const (
	resNone    result = iota // not there (valid only if the sequence held)
	resFound                 // appended (valid only if the sequence held)
	resCorrupt               // undecodable: torn, or a corrupt table
	resMoved                 // the sequence moved while reading: retry
)

// lookup is one optimistic pass over the shard at sequence seq for key
// service[:i] and port service[i+1:]. It reads the mapping in place, a
// word at a time: the index slots, the record's key and port headers, then
// the nodes straight into dst. Every offset read from the mapping is checked
// against the bounds of the shard, then of the record, before use.
func (r *Reader) lookup(t *table, so, seq, tag uint64, service string, i int, dst []Node) ([]Node, result) {
	c := t.load(so + sCap)
	if c == 0 {
		return dst, resNone
	}
	if c > t.idxCap() {
		return dst, resCorrupt
	}
	key, port := service[:i], service[i+1:]
	// Probe the index for the record; offsets below are relative to so.
	var p, end, nPorts uint64 // the value: [p, end) and its port count
	for s, probes := home(tag, c), c; ; probes-- {
		if probes == 0 { // a torn index may have no empty slot
			return dst, resCorrupt
		}
		e := t.load(so + shardHeaderBytes + s*8)
		if e == 0 {
			return dst, resNone
		}
		if e>>32 == tag {
			off := (e & 0xffffffff) * 8
			if off < shardHeaderBytes || off > t.shardBytes-recHeaderBytes {
				return dst, resCorrupt
			}
			h := t.load(so + off)
			p = off + recHeaderBytes + keyPad(h&0xffff)
			end = p + (h >> 16 & 0xffffffff)
			if end > t.shardBytes {
				return dst, resCorrupt
			}
			if h&0xffff == uint64(len(key)) && t.equal(so+off+recHeaderBytes, key) {
				nPorts = h >> 48
				break
			}
		}
		if s++; s == c {
			s = 0
		}
	}
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
		nn := h.nNodes()
		if nn == 0 {
			return dst, resNone
		}
		base := len(dst)
		if uint64(cap(dst)-base) < nn {
			if t.load(so+sSeq) != seq {
				return dst, resMoved // do not grow dst for a value already gone
			}
			dst = slices.Grow(dst, int(nn))
		}
		dst = dst[:base+int(nn)]
		if h.format() == fmtIPv4 {
			t.fill4(dst[base:], h.body, h.port(), h.weight()) // the usual case
			return dst, resFound
		}
		in := interner{n: &r.names, t: t, so: so, seq: seq}
		if !t.decodeNodes(&h, dst[base:], &in) {
			return dst[:base], resCorrupt
		}
		return dst, resFound
	}
	return dst, resNone
}

// lookupRecord probes the shard's index for key.
func (t *table) lookupRecord(so, tag uint64, key string) (record, result) {
	c := t.load(so + sCap)
	if c > t.idxCap() {
		return record{}, resCorrupt
	}
	if c == 0 {
		return record{}, resNone
	}
	i := home(tag, c)
	for range c { // bounded: a torn index may have no empty slot
		e := t.load(t.slot(so, i))
		if e == 0 {
			return record{}, resNone
		}
		if e>>32 == tag {
			rec, ok := t.recordAt(so, e)
			if !ok {
				return record{}, resCorrupt
			}
			if t.keyIs(rec, key) {
				return rec, resFound
			}
		}
		if i++; i == c {
			i = 0
		}
	}
	return record{}, resCorrupt
}

// Get returns a copy of key's whole value.
func (r *Reader) Get(key string) ([]Port, bool) {
	t := r.table()
	if t == nil {
		return nil, false
	}
	h := hashKey(key)
	so, tag := t.shardOf(h), tagOf(h)
	var b backoff
	for {
		seq := t.load(so + sSeq)
		if seq&1 == 0 {
			var ports []Port
			rec, res := t.lookupRecord(so, tag, key)
			ok := res == resFound
			if ok {
				ports, ok = t.ports(rec)
			}
			if t.load(so+sSeq) == seq {
				return ports, ok
			}
		}
		if !b.wait(seq) {
			return nil, false
		}
	}
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
	}
	for i := range t.shards {
		so := headerBytes + i*t.shardBytes
		var entries []entry
		var b backoff
		for {
			seq := t.load(so + sSeq)
			if seq&1 == 0 {
				entries = entries[:0]
				c := t.load(so + sCap)
				ok := c <= t.idxCap()
				for j := uint64(0); ok && j < c; j++ {
					e := t.load(t.slot(so, j))
					if e == 0 {
						continue
					}
					var rec record
					rec, ok = t.recordAt(so, e)
					if ok {
						var e entry
						e.key = t.key(rec)
						e.ports, ok = t.ports(rec)
						entries = append(entries, e)
					}
				}
				if t.load(so+sSeq) == seq {
					if !ok {
						entries = entries[:0] // corrupt: skip the shard
					}
					break
				}
			}
			if !b.wait(seq) {
				entries = entries[:0]
				break
			}
		}
		for _, e := range entries {
			if !fn(e.key, e.ports) {
				return
			}
		}
	}
}

// backoff paces a reader that met a shard being written: spin briefly
// (a Put holds a shard for well under a microsecond), then yield, then
// sleep. It keeps retrying as long as the writer makes progress; only a
// sequence stuck odd for stuckAfter — a writer that died in the middle of
// a change — makes the caller give up and answer "not found", which is
// stale but never torn. The next writer repairs such a shard on start.
type backoff struct {
	n     int
	seq   uint64
	since int64
}

const stuckAfter = time.Second

func (b *backoff) wait(seq uint64) bool {
	b.n++
	switch {
	case b.n < 32:
		return true
	case b.n < 256:
		runtime.Gosched()
		return true
	}
	now := time.Now().UnixNano()
	if seq&1 == 0 || seq != b.seq {
		b.seq, b.since = seq, now
	} else if now-b.since > int64(stuckAfter) {
		return false
	}
	time.Sleep(10 * time.Microsecond)
	return true
}
