package shm

import (
	"encoding/binary"
	"math"
	"strings"
	"sync/atomic"
	"unsafe"
)

// Big values (layout 7; first in the pre-release v5). A record larger than inlineMax (a quarter of a
// shard) is cut into pieces spread over the shards, wherever there is
// room, and the key's own shard holds a head that lists them:
//
//	head:   a record with the value's key, port count bigPorts, value:
//	          word 0: id (unique in the file: the writer run's generation
//	                  << 40 | a counter)
//	          word 1: total u32 (bytes of the whole record) | n u32 (pieces)
//	          n u32 shard numbers, piece i's first, zero-padded to a word
//	piece:  a record with key "\x01" + id (8 bytes LE) + i (4 bytes LE),
//	        port count piecePorts, and bytes [sum of the earlier pieces,
//	        + its valLen) of the whole record as a value
//
// The whole record is encoded as a small one is (its header, key and
// value), so a reader that has put the pieces back together decodes it
// with the same bounds-checked code. No piece is ever rewritten: a new
// value gets new pieces (a new id), then its head replaces the old one,
// then the old pieces are removed. So a reader that read a head and then
// finds all its pieces has read one value; one that finds a piece missing
// (the value changed meanwhile) reads the head again.
//
// One value may take at most a quarter of the table (the pieces, and the
// old value's while it is replaced, must fit beside everything else).

// head is a big value's head, decoded.
type head struct {
	id     uint64
	total  uint64   // bytes of the whole record
	shards []uint32 // piece i lives in shard shards[i]
}

const (
	pieceKeyLen = 13 // "\x01", id, index
	headFixed   = 16 // a head's value before its shard list
	minPiece    = 512
)

// inlineMax is the largest record stored whole in one shard (and the
// largest piece of a big one): a quarter of a shard, so that a shard
// always holds several, and compacting one moves little.
func (t *table) inlineMax() uint64 { return (t.shardBytes - shardHeaderBytes) / 4 &^ 7 }

// isServiceKey reports whether key names a service (not a detail, nor a
// piece of a big value).
func isServiceKey(key string) bool { return len(key) > 0 && key[0] > 1 }

// isService reports whether r is a service's record or head (not a
// detail, nor a piece).
func (t *table) isService(r record) bool {
	return r.cell || r.nPorts != blobPorts && r.nPorts != piecePorts && t.load(r.off+recHeaderBytes)&0xff > 1
}

// pieceKey is the key of piece i of the big value id.
func pieceKey(b *[pieceKeyLen]byte, id uint64, i int) string {
	b[0] = 1
	binary.LittleEndian.PutUint64(b[1:], id)
	binary.LittleEndian.PutUint32(b[9:], uint32(i))
	return string(b[:]) // a small allocation: the writer, and a reader's slow path for big values only
}

// appendHead appends the head record of key.
func appendHead(b []byte, key string, h head) []byte {
	start := len(b)
	b = append(b, make([]byte, recHeaderBytes)...)
	b = padWord(append(b, key...))
	val := len(b)
	b = binary.LittleEndian.AppendUint64(b, h.id)
	b = binary.LittleEndian.AppendUint64(b, h.total|uint64(len(h.shards))<<32)
	for _, s := range h.shards {
		b = binary.LittleEndian.AppendUint32(b, s)
	}
	b = padWord(b)
	binary.LittleEndian.PutUint64(b[start:], uint64(len(key))|uint64(len(b)-val)<<16|uint64(bigPorts)<<48)
	return b
}

// head decodes the head record r, bounds-checked: a shard number is one
// of the table's, the pieces can hold total bytes and no more than a
// quarter of the table.
func (t *table) head(r record) (head, bool) {
	p, end := r.value()
	if r.nPorts != bigPorts || end-p < headFixed {
		return head{}, false
	}
	h := head{id: t.load(p)}
	w1 := t.load(p + 8)
	h.total = w1 & 0xffffffff
	n := w1 >> 32
	if n == 0 || r.valLen != headFixed+keyPad(4*n) || h.total > t.size/4 || h.total%8 != 0 || h.total < n*8 {
		return head{}, false
	}
	h.shards = make([]uint32, n)
	for i := range h.shards {
		s := uint32(t.load(p+headFixed+uint64(i/2)*8) >> (32 * (i % 2)))
		if uint64(s) >= t.shards {
			return head{}, false
		}
		h.shards[i] = s
	}
	return h, true
}

// newID is a big value id no other value of this file has had: the
// generation makes it unique across writer runs on the file, the counter
// within one.
func (w *Writer) newID() uint64 {
	w.ids++
	return w.t.load(hGeneration)<<40 | w.ids&(1<<40-1)
}

// putPieces stores rec (a record larger than inlineMax) as pieces, each
// in the shard with the most room at the time (compacting it if need be),
// and returns their head. It leaves room in the shard at home for the
// head of key. When the table has no room for all of them it removes
// those it stored and returns errNoRoom.
func (w *Writer) putPieces(rec []byte, home uint64, key string) (head, error) {
	t := w.t
	h := head{id: w.newID(), total: uint64(len(rec))}
	pieces := h.total/(t.inlineMax()-recHeaderBytes-keyPad(pieceKeyLen)) + 8 // a few more: a fuller shard takes a smaller piece
	headBytes := recHeaderBytes + keyPad(uint64(len(key))) + headFixed + keyPad(4*pieces) + 8*minSlots
	var kb [pieceKeyLen]byte
	for pos := uint64(0); pos < h.total; {
		so, room := w.roomiest(home, headBytes)
		left := h.total - pos
		size := min(left, t.inlineMax()-recHeaderBytes-keyPad(pieceKeyLen))
		if fit := room &^ 7; fit < recHeaderBytes+keyPad(pieceKeyLen)+size {
			size = 0
			if fit > recHeaderBytes+keyPad(pieceKeyLen) {
				size = fit - recHeaderBytes - keyPad(pieceKeyLen)
			}
		}
		if size < min(left, minPiece) || len(h.shards) == math.MaxInt32 {
			w.deletePieces(h)
			return head{}, errNoRoom
		}
		key := pieceKey(&kb, h.id, len(h.shards))
		b := binary.LittleEndian.AppendUint64(w.piece[:0], pieceKeyLen|size<<16|uint64(piecePorts)<<48)
		b = padWord(append(b, key...))
		b = append(b, rec[pos:pos+size]...)
		w.piece = b
		if err := w.storeIn(so, tagOf(w.t.hash(key)), key, b, nil); err != nil {
			w.deletePieces(h)
			return head{}, err
		}
		h.shards = append(h.shards, uint32((so-headerBytes)/t.shardBytes))
		pos += size
	}
	return h, nil
}

// roomiest is the shard with the most room for a new record (free and
// dead space, less what its index would grow by, and less keep bytes in
// the shard at home), and that room.
func (w *Writer) roomiest(home, keep uint64) (so, room uint64) {
	t := w.t
	for i := range t.shards {
		s := t.shardAt(i)
		n, c := t.load(s+sRCount), t.load(s+sRCap) // a piece takes a record slot
		r := t.free(s) + t.load(s+sDead)
		if s == home {
			r -= min(r, keep)
		}
		if g := v4SlotBytes * (slotsFor(n+1) - c); slotsFor(n+1) > c && g < r {
			r -= g
		} else if slotsFor(n+1) > c {
			r = 0
		}
		if r > room || i == 0 {
			so, room = s, r
		}
	}
	return so, room
}

// deletePieces removes the pieces of h (those stored so far).
func (w *Writer) deletePieces(h head) {
	var kb [pieceKeyLen]byte
	for i, s := range h.shards {
		key := pieceKey(&kb, h.id, i)
		w.removeIn(w.t.shardAt(uint64(s)), tagOf(w.t.hash(key)), key)
	}
}

// whole puts the big value of head h back together into a private table
// (a shard header, then the record: decoded by the same code as a small
// record) and returns it with its record, which must be key's. read runs
// a read of one shard consistently (Reader.stable, or directly for the
// writer). missing is true when a piece is gone: the value changed since
// the head was read.
func (t *table) whole(h head, key string, read func(so uint64, fn func()) bool) (pt *table, r record, ok, missing bool) {
	words := make([]uint64, (shardHeaderBytes+h.total)/8)
	mem := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(words))), len(words)*8)
	var kb [pieceKeyLen]byte
	pos := uint64(shardHeaderBytes)
	for i, s := range h.shards {
		key := pieceKey(&kb, h.id, i)
		so := t.shardAt(uint64(s))
		var n uint64
		var found bool
		if !read(so, func() {
			n, found = 0, false
			_, pr, res := t.lookupKey(so, tagOf(t.hash(key)), key)
			if res != resFound || pr.nPorts != piecePorts || pr.keyLen != pieceKeyLen || pr.valLen%8 != 0 || pr.valLen > uint64(len(mem))-pos {
				return
			}
			v, _ := pr.value()
			for k := uint64(0); k < pr.valLen; k += 8 {
				words[(pos+k)/8] = t.load(v + k)
			}
			n, found = pr.valLen, true
		}) {
			return nil, record{}, false, false
		}
		if !found {
			return nil, record{}, false, true
		}
		pos += n
	}
	if pos != uint64(len(mem)) {
		return nil, record{}, false, true
	}
	pt = newTable(mem, geometry{size: uint64(len(mem)), shards: 1, shardBytes: uint64(len(mem))})
	r, ok = pt.recordAt(0, shardHeaderBytes/8)
	if !ok || r.size() != h.total || !pt.keyIs(r, key) || r.nPorts == bigPorts || r.nPorts == piecePorts {
		return nil, record{}, false, false
	}
	return pt, r, true, false
}

// wholeCache keeps a Reader's last few big values put back together, by
// head id: a value's pieces never change, so a hit is always right, and a
// proxy asking for one big service again and again reads its head only.
type wholeCache [4]atomic.Pointer[wholeEntry]

type wholeEntry struct {
	t   *table // the mapping the value came from
	id  uint64
	key string
	pt  *table
	r   record
}

func (c *wholeCache) get(t *table, id uint64, key string) *wholeEntry {
	if e := c[id%uint64(len(c))].Load(); e != nil && e.t == t && e.id == id && e.key == key {
		return e
	}
	return nil
}

// put keeps a copy of key: the caller's query must not escape, or every
// lookup's key (often built on the caller's stack) would cost an
// allocation.
func (c *wholeCache) put(t *table, id uint64, key string, pt *table, r record) {
	c[id%uint64(len(c))].Store(&wholeEntry{t: t, id: id, key: strings.Clone(key), pt: pt, r: r})
}

// big reads key's big value at its head in the shard at so (tag is the
// key's): the private table and record holding it whole; resNone when
// the key is gone; resAgain when it is not big any more (the caller reads
// it again); resCorrupt; or resGaveUp when a shard stays odd or the value
// keeps changing (NotReady).
//
// b is the budget of the whole answer, shared by every shard read here
// (nil: a budget of its own), so that a value of many pieces blocks no
// longer than a small one.
func (r *Reader) big(t *table, so, tag uint64, key string, b *backoff) (*table, record, result) {
	if b == nil {
		b = &backoff{r: r, t: t}
	}
	for range 16 {
		var h head
		var res result
		var hit *wholeEntry
		if !r.stableWith(b, t, so, func() {
			_, rec, rs := t.lookupKey(so, tag, key)
			h, res, hit = head{}, rs, nil
			if rs != resFound {
				return
			}
			if p, end := rec.value(); rec.nPorts == bigPorts && end-p >= headFixed {
				if hit = r.bigs.get(t, t.load(p), key); hit != nil {
					return // the id of a value already put back together
				}
			}
			var ok bool
			if h, ok = t.head(rec); !ok {
				res = resAgain // not big (any more): the caller reads again
				if rec.nPorts == bigPorts {
					res = resCorrupt
				}
			}
		}) {
			return nil, record{}, resGaveUp
		}
		if hit != nil {
			return hit.pt, hit.r, resFound
		}
		if res != resFound {
			return nil, record{}, res
		}
		pt, rec, ok, missing := t.whole(h, key, func(so uint64, fn func()) bool { return r.stableWith(b, t, so, fn) })
		switch {
		case ok:
			r.bigs.put(t, h.id, key, pt, rec)
			return pt, rec, resFound
		case !missing:
			return nil, record{}, resGaveUp // a piece's shard given up (see stable), or pieces that make no valid value
		}
	}
	return nil, record{}, resGaveUp
}

// readDirect reads a shard of the writer's own table, which nobody else
// changes: no retry.
func readDirect(_ uint64, fn func()) bool { fn(); return true }

// sweepBig finishes checking a reused table (after check, shard by
// shard): a head whose pieces are not all there, and a piece no head
// lists, are what a writer that died in the middle of a change left; both
// are removed.
func (w *Writer) sweepBig() {
	t := w.t
	type found struct {
		so   uint64
		key  string
		head bool
	}
	var all []found
	for i := range t.shards {
		so := t.shardAt(i)
		t.eachEntry(so, func(_ slotRef, _ uint64, r record) bool {
			if !r.cell && (r.nPorts == bigPorts || r.nPorts == piecePorts) {
				all = append(all, found{so, t.key(r), r.nPorts == bigPorts})
			}
			return true
		})
	}
	listed := map[string]bool{}
	var kb [pieceKeyLen]byte
	for _, f := range all {
		if !f.head {
			continue
		}
		_, r, _ := t.find(f.so, tagOf(t.hash(f.key)), f.key)
		h, ok := t.head(r)
		if ok {
			_, _, ok, _ = t.whole(h, f.key, readDirect)
		}
		if !ok {
			w.removeIn(f.so, tagOf(t.hash(f.key)), f.key)
			if isServiceKey(f.key) {
				w.entries--
			}
			continue
		}
		for i := range h.shards {
			listed[pieceKey(&kb, h.id, i)] = true
		}
	}
	for _, f := range all {
		if !f.head && !listed[f.key] {
			w.removeIn(f.so, tagOf(t.hash(f.key)), f.key)
		}
	}
}
