package shm

import (
	"encoding/binary"
	"math"
	"net/netip"
	"unsafe"
)

// Decoding (reader side). The writer may rewrite any byte at any moment, so
// a reader decodes garbage now and then. Two rules make that harmless:
//
//   - Bytes are copied out of the mapping with atomic word loads into a
//     window on the caller's stack, and decoded from there with explicit
//     length checks: garbage yields "bad", never a panic or an access
//     outside the record (whose bounds were checked against the shard).
//   - The caller then re-validates the shard's sequence number, which
//     tells a torn read (retry) from a corrupt table (not found).

// record is a located record: the key at off+8, the value after it.
type record struct {
	off    uint64 // absolute byte offset of the record
	keyLen uint64
	valLen uint64
	nPorts uint64
}

// size is the record's footprint in the shard.
func (r record) size() uint64 {
	return (recHeaderBytes + keyPad(r.keyLen) + r.valLen + 7) &^ 7
}

// recordAt reads the index entry's record header, checking that the record
// lies inside the shard's data area. ok is false on any inconsistency.
func (t *table) recordAt(so, entry uint64) (record, bool) {
	off := so + (entry&0xffffffff)*8
	if off < so+shardHeaderBytes || off+recHeaderBytes > so+t.shardBytes {
		return record{}, false
	}
	h := t.load(off)
	r := record{off: off, keyLen: h & 0xffff, valLen: h >> 16 & 0xffffffff, nPorts: h >> 48}
	if r.keyLen == 0 || off+r.size() > so+t.shardBytes {
		return record{}, false
	}
	return r, true
}

// keyIs reports whether the record's key is key, a word at a time (keys are
// zero-padded to whole words).
func (t *table) keyIs(r record, key string) bool {
	if r.keyLen != uint64(len(key)) {
		return false
	}
	p := r.off + recHeaderBytes
	for len(key) >= 8 {
		if t.load(p) != binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(key), 8)) {
			return false
		}
		key, p = key[8:], p+8
	}
	if len(key) > 0 {
		var v uint64
		for i := len(key) - 1; i >= 0; i-- {
			v = v<<8 | uint64(key[i])
		}
		return t.load(p) == v
	}
	return true
}

// key copies the record's key out.
func (t *table) key(r record) string {
	b := make([]byte, keyPad(r.keyLen))
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], t.load(r.off+recHeaderBytes+uint64(i)))
	}
	return string(b[:r.keyLen])
}

// window is a stack copy of part of a record's value. maxNodeBytes is the
// largest encoded node (flags, a 255-byte name, port, weight) or port
// header, so asking for it before each item guarantees the item is in the
// window if it is in the value at all.
type window struct {
	t      *table
	off    uint64 // mapping offset of buf[0]; always word-aligned
	i, lim int    // read position; valid bytes in buf
	end    uint64 // mapping offset where the value ends
	bad    bool
	buf    [512]byte
}

const maxNodeBytes = 1 + 1 + MaxNameLen + 2 + binary.MaxVarintLen32 + 8

func (t *table) value(r record, w *window) {
	p := r.off + recHeaderBytes + keyPad(r.keyLen) // word-aligned
	w.t, w.off, w.i, w.lim, w.end, w.bad = t, p, 0, 0, p+r.valLen, false
}

func (w *window) pos() uint64 { return w.off + uint64(w.i) }

// bytes returns the unread window after making sure it holds maxNodeBytes,
// or everything up to the end of the value.
func (w *window) bytes() []byte {
	if w.lim-w.i < maxNodeBytes && w.off+uint64(w.lim) < w.end {
		w.seek(w.pos())
	}
	return w.buf[w.i:w.lim]
}

// seek moves to mapping offset p (within the value), refilling the window
// there unless it already holds enough from p. Whole words are copied: the
// value's end rounded up to a word is still inside its record.
func (w *window) seek(p uint64) {
	if p > w.end {
		w.bad = true
		return
	}
	if p >= w.off && p-w.off <= uint64(w.lim) && (uint64(w.lim)-(p-w.off) >= maxNodeBytes || w.off+uint64(w.lim) >= w.end) {
		w.i = int(p - w.off)
		return
	}
	start := p &^ 7
	n := min(uint64(len(w.buf)), (w.end+7)&^7-start)
	for k := uint64(0); k < n; k += 8 {
		binary.LittleEndian.PutUint64(w.buf[k:], w.t.load(start+k))
	}
	w.off, w.i, w.lim = start, int(p-start), int(min(n, w.end-start))
}

func (w *window) advance(n int) { w.i += n }

// portHeader reads a port's name and body length, leaving the window at
// the body. It returns the name as window bytes (valid until the next
// refill) and the mapping offset where the body ends.
func (w *window) portHeader() (name []byte, bodyEnd uint64) {
	b := w.bytes()
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		w.bad = true
		return nil, 0
	}
	l := int(b[0])
	name = b[1 : 1+l]
	body, k := binary.Uvarint(b[1+l:])
	if k <= 0 || body > w.end-w.pos() {
		w.bad = true
		return nil, 0
	}
	w.advance(1 + l + k)
	return name, w.pos() + body
}

// count reads a node count that must fit in the bytes up to limit.
func (w *window) count(limit uint64) uint64 {
	n, k := binary.Uvarint(w.bytes())
	if k <= 0 || n > limit-w.pos() {
		w.bad = true
		return 0
	}
	w.advance(k)
	return n
}

// node decodes the next node into n, which holds the previous node of the
// port (for a repeated port and weight). DNS names are interned through in,
// or copied when in is nil.
func (w *window) node(n *Node, in *interner) {
	b := w.bytes()
	if len(b) < 1 {
		w.bad = true
		return
	}
	f := b[0]
	j := 1
	*n = Node{Port: n.Port, Weight: n.Weight}
	switch f & kindMask {
	case kindIPv4:
		if len(b) < j+4 {
			w.bad = true
			return
		}
		n.Addr = netip.AddrFrom4([4]byte(b[j : j+4]))
		j += 4
	case kindIPv6:
		if len(b) < j+16 {
			w.bad = true
			return
		}
		n.Addr = netip.AddrFrom16([16]byte(b[j : j+16]))
		j += 16
	case kindName:
		if len(b) < j+1 || b[j] == 0 || len(b) < j+1+int(b[j]) {
			w.bad = true
			return
		}
		name := b[j+1 : j+1+int(b[j])]
		if in != nil {
			n.Name = in.get(name)
		} else {
			n.Name = string(name)
		}
		j += 1 + len(name)
	default:
		w.bad = true
		return
	}
	if f&flagSamePt == 0 {
		if len(b) < j+2 {
			w.bad = true
			return
		}
		n.Port = binary.LittleEndian.Uint16(b[j:])
		j += 2
	}
	if f&flagSameWt == 0 {
		v, k := binary.Uvarint(b[j:])
		if k <= 0 || v > math.MaxUint32 {
			w.bad = true
			return
		}
		n.Weight = uint32(v)
		j += k
	}
	w.advance(j)
}

// ports decodes a whole value, allocating (Get, Range, the writer's check).
func (t *table) ports(r record) ([]Port, bool) {
	var w window
	t.value(r, &w)
	if r.nPorts > r.valLen {
		return nil, false
	}
	ports := make([]Port, 0, r.nPorts)
	for range r.nPorts {
		name, end := w.portHeader()
		if w.bad {
			return nil, false
		}
		p := Port{Name: string(name)}
		nn := w.count(end)
		if nn > 0 {
			p.Nodes = make([]Node, nn)
		}
		for j := range p.Nodes {
			if j > 0 {
				p.Nodes[j] = p.Nodes[j-1]
			}
			w.node(&p.Nodes[j], nil)
		}
		if w.bad || w.pos() != end {
			return nil, false
		}
		ports = append(ports, p)
	}
	return ports, !w.bad && w.pos() == w.end
}
