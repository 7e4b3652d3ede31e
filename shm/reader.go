package shm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/netip"
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
	path    string
	cur     atomic.Pointer[table]
	names   names
	mu      sync.Mutex // re-open and Close
	old     []*table
	lastTry atomic.Int64 // unix nanos of the last re-open attempt
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
	if t != nil && t.load(hRetired) != 0 {
		return r.reattach(t)
	}
	return t
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

// Ready reports whether the writer finished its first full list.
func (r *Reader) Ready() bool {
	t := r.table()
	return t != nil && t.load(hReady) == 1
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
func (r *Reader) Lookup(dst []Node, service string) ([]Node, bool) {
	i := strings.LastIndexByte(service, ':')
	t := r.table()
	if i < 0 || t == nil {
		return dst, false
	}
	key, port := service[:i], service[i+1:]
	h := hashKey(key)
	so, tag := t.shardOf(h), tagOf(h)
	base := len(dst)
	var b backoff
	for {
		seq := t.load(so + sSeq)
		if seq&1 == 0 {
			out, res := r.lookup(t, so, seq, tag, key, port, dst)
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

// lookup is one optimistic pass over the shard at sequence seq.
func (r *Reader) lookup(t *table, so, seq, tag uint64, key, port string, dst []Node) ([]Node, result) {
	n := t.load(so + sCount)
	if n > t.idxCap() {
		return dst, resCorrupt
	}
	var rec record
	found := false
	for i := t.lowerBound(so, n, tag); i < n; i++ {
		e := t.load(so + shardHeaderBytes + i*8)
		if e>>32 != tag {
			break
		}
		rr, ok := t.recordAt(so, e)
		if !ok {
			return dst, resCorrupt
		}
		if t.keyIs(rr, key) {
			rec, found = rr, true
			break
		}
	}
	if !found {
		return dst, resNone
	}
	var w window
	t.value(rec, &w)
	for range rec.nPorts {
		name, end := w.portHeader()
		if w.bad {
			return dst, resCorrupt
		}
		if string(name) != port {
			w.seek(end)
			continue
		}
		nn := w.count(end)
		if w.bad {
			return dst, resCorrupt
		}
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
		in := interner{n: &r.names, t: t, so: so, seq: seq}
		for k := base; k < len(dst); k++ {
			n := &dst[k] // decoded in place: no copy of the 48-byte Node
			if k > base {
				n.Port, n.Weight = dst[k-1].Port, dst[k-1].Weight
			}
			if w.lim-w.i >= 5 && w.buf[w.i] == kindIPv4|flagSamePt|flagSameWt {
				// Fast path: an IPv4 node repeating the previous port and
				// weight, the usual case after a port's first node.
				n.Addr, n.Name = netip.AddrFrom4([4]byte(w.buf[w.i+1:w.i+5])), ""
				w.i += 5
				continue
			}
			if w.lim-w.i >= 12 && w.buf[w.i]&kindMask == kindIPv4 && w.buf[w.i]&^(kindMask|flagSamePt|flagSameWt) == 0 {
				// Fast path for the common IPv4 node (at most 12 bytes).
				b := w.buf[w.i : w.i+12 : w.i+12]
				f := b[0]
				n.Addr, n.Name = netip.AddrFrom4([4]byte(b[1:5])), ""
				j := 5
				if f&flagSamePt == 0 {
					n.Port = binary.LittleEndian.Uint16(b[5:7])
					j = 7
				}
				if f&flagSameWt == 0 {
					v, l := binary.Uvarint(b[j:])
					if l <= 0 || v > math.MaxUint32 {
						return dst[:base], resCorrupt
					}
					n.Weight = uint32(v)
					j += l
				}
				w.i += j
				continue
			}
			w.node(n, &in)
			if w.bad {
				return dst[:base], resCorrupt
			}
		}
		if w.pos() != end {
			return dst, resCorrupt
		}
		return dst, resFound
	}
	return dst, resNone
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
			ok := false
			n := t.load(so + sCount)
			if n <= t.idxCap() {
				_, rec, found := t.find(so, tag, key)
				if found {
					ports, ok = t.ports(rec)
				}
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
				n := t.load(so + sCount)
				ok := n <= t.idxCap()
				for j := uint64(0); ok && j < n; j++ {
					var rec record
					rec, ok = t.recordAt(so, t.load(so+shardHeaderBytes+j*8))
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
