package shm

import (
	"encoding/binary"
	"math"
	"net/netip"
	"unsafe"
)

// Decoding (reader side). The writer may rewrite any word at any moment, so
// a reader decodes garbage now and then. Two rules make that harmless:
//
//   - Every word is read in place with an atomic load, and every offset
//     and length taken from the mapping is checked against the bounds of
//     the record (themselves checked against the shard) before use: garbage
//     yields "bad", never a panic or an access outside the record.
//   - The caller then re-validates the shard's sequence number, which
//     tells a torn read (retry) from a corrupt table (not found).

// record is a located record: the key at off+8, the value after it. Or,
// when cell is set, a service held inline in the index cell at off
// (inline.go): one port, read through cellAt.
type record struct {
	off    uint64 // absolute byte offset of the record (or the cell)
	keyLen uint64
	valLen uint64
	nPorts uint64
	cell   bool
}

// size is the record's footprint in the shard's data area (none for a
// cell).
func (r record) size() uint64 {
	if r.cell {
		return 0
	}
	return (recHeaderBytes + keyPad(r.keyLen) + r.valLen + 7) &^ 7
}

// value is the mapping range of the record's value.
func (r record) value() (start, end uint64) {
	start = r.off + recHeaderBytes + keyPad(r.keyLen)
	return start, start + r.valLen
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

// keyIs reports whether the record's key is key.
func (t *table) keyIs(r record, key string) bool {
	if r.cell {
		c, ok := t.cellAt(r.off)
		return ok && c.keyIs(key)
	}
	return r.keyLen == uint64(len(key)) && t.equal(r.off+recHeaderBytes, key)
}

// equal reports whether the len(s) bytes at p (word-aligned, zero-padded
// to a word) are s, a word at a time; the last word of a string of a word
// or more is loaded overlapping the one before, not byte by byte. The
// caller checked the bounds.
func (t *table) equal(p uint64, s string) bool {
	n := uint64(len(s))
	if n < 8 {
		return n == 0 || t.load(p) == tailWord(s)
	}
	b := unsafe.StringData(s)
	for k := uint64(0); k+8 < n; k += 8 {
		if t.load(p+k) != le64at(b, k) {
			return false
		}
	}
	return t.load(p+(n-1)&^7) == le64at(b, n-8)>>(8*(-n&7))
}

// le64at is the 8 bytes at b+k as a little-endian word.
func le64at(b *byte, k uint64) uint64 {
	return binary.LittleEndian.Uint64((*[8]byte)(unsafe.Add(unsafe.Pointer(b), k))[:])
}

// equalShort is equal with the usual port name (at most a word) compared
// inline.
func (t *table) equalShort(p uint64, s string) bool {
	if len(s) == 0 || len(s) > 8 {
		return t.equal(p, s)
	}
	return t.load(p) == tailWord(s)
}

// le64s is the first 8 bytes of s as a little-endian word.
func le64s(s string) uint64 { return binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(s), 8)) }

// tailWord is s (1 to 8 bytes) as a zero-padded little-endian word, built
// from two overlapping loads rather than a byte loop.
func tailWord(s string) uint64 {
	b := unsafe.Slice(unsafe.StringData(s), len(s))
	switch n := len(b); {
	case n >= 4:
		return uint64(binary.LittleEndian.Uint32(b)) | uint64(binary.LittleEndian.Uint32(b[n-4:]))<<(8*(n-4))
	case n >= 2:
		return uint64(binary.LittleEndian.Uint16(b)) | uint64(binary.LittleEndian.Uint16(b[n-2:]))<<(8*(n-2))
	}
	return uint64(b[0])
}

// key copies the record's key out.
func (t *table) key(r record) string {
	if r.cell {
		// Read again: the writer may have changed the cell since entryAt
		// checked it (the caller's sequence check then drops the key).
		if c, ok := t.cellAt(r.off); ok {
			return c.key()
		}
		return ""
	}
	b := make([]byte, keyPad(r.keyLen))
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], t.load(r.off+recHeaderBytes+uint64(i)))
	}
	return string(b[:r.keyLen])
}

// portHdr is a port's two header words, decoded.
type portHdr struct {
	w0, w1 uint64
	name   uint64 // mapping offset of the name
	body   uint64 // mapping offset of the body
	next   uint64 // mapping offset of the next port
}

func (h *portHdr) nameLen() uint64 { return h.w0 & 0xff }
func (h *portHdr) format() uint64  { return h.w0 >> 8 & 0xff }
func (h *portHdr) port() uint16    { return uint16(h.w0 >> 16) }
func (h *portHdr) bodyLen() uint64 { return h.w0 >> 32 }
func (h *portHdr) nNodes() uint64  { return h.w1 & 0xffffffff }
func (h *portHdr) weight() uint32  { return uint32(h.w1 >> 32) }

// portAt reads the header of the port at p, checking that the port lies
// before end (the end of the value).
func (t *table) portAt(p, end uint64) (portHdr, bool) {
	if p > end || end-p < portHeaderBytes {
		return portHdr{}, false
	}
	h := portHdr{w0: t.load(p), w1: t.load(p + 8), name: p + portHeaderBytes}
	h.body = h.name + keyPad(h.nameLen())
	h.next = h.body + keyPad(h.bodyLen()) // no overflow: lengths are < 2^32
	return h, h.next <= end
}

// nodesOK checks the node count against the body, so that a corrupt count
// never makes a caller allocate more than the body could hold.
func (h *portHdr) nodesOK() bool {
	n, l := h.nNodes(), h.bodyLen()
	switch h.format() {
	case fmtIPv4:
		return l == 4*n
	case fmtIPv6:
		return l == 16*n
	case fmtMixed:
		return n <= l
	}
	return false
}

// decodeNodes decodes the port's nodes (nodesOK) into dst, which has room
// for exactly nNodes. DNS names are interned through in, or copied when in
// is nil. It reports false on garbage.
func (t *table) decodeNodes(h *portHdr, dst []Node, in *interner) bool {
	port, weight := h.port(), h.weight()
	switch h.format() {
	case fmtIPv4:
		fill4(dst, t.base, h.body, port, weight)
		return true
	case fmtIPv6:
		p := h.body
		for k := range dst {
			var a [16]byte
			binary.LittleEndian.PutUint64(a[:8], t.load(p))
			binary.LittleEndian.PutUint64(a[8:], t.load(p+8))
			dst[k] = Node{Addr: netip.AddrFrom16(a), Port: port, Weight: weight}
			p += 16
		}
		return true
	}
	return t.decodeMixed(h, dst, in)
}

// fill4 decodes a fmtIPv4 body at byte p from m into dst: two addresses a
// word (the body is word-padded, so a last half-used word is still in the
// record). Fields are assigned one by one: a composite literal would zero
// the 48-byte Node first.
func fill4(dst []Node, m unsafe.Pointer, p uint64, port uint16, weight uint32) {
	for ; len(dst) >= 2; dst = dst[2:] { // no bounds checks: len(dst) says it all
		v := ld(m, p)
		n := &dst[0]
		n.Addr, n.Name, n.Port, n.Weight = addr4(uint32(v)), "", port, weight
		n = &dst[1]
		n.Addr, n.Name, n.Port, n.Weight = addr4(uint32(v>>32)), "", port, weight
		p += 8
	}
	if len(dst) == 1 {
		n := &dst[0]
		n.Addr, n.Name, n.Port, n.Weight = addr4(uint32(ld(m, p))), "", port, weight
	}
}

// addr4 is the IPv4 address whose bytes, in order, are v's little-endian
// bytes. Going through memory lets the compiler load it with one
// byte-swapping move.
func addr4(v uint32) netip.Addr {
	var a [4]byte
	binary.LittleEndian.PutUint32(a[:], v)
	return netip.AddrFrom4(a)
}

// decodeMixed decodes a fmtMixed body through a window: kept out of
// decodeNodes so that the fixed-width paths do not zero the window.
func (t *table) decodeMixed(h *portHdr, dst []Node, in *interner) bool {
	var w window
	w.t, w.off, w.end = t, h.body, h.body+h.bodyLen()
	prev := Node{Port: h.port(), Weight: h.weight()}
	for k := range dst {
		n := &dst[k] // decoded in place: no copy of the 48-byte Node
		n.Port, n.Weight = prev.Port, prev.Weight
		w.node(n, in)
		if w.bad {
			return false
		}
		prev = *n
	}
	return w.pos() == w.end
}

// window is a stack copy of part of a mixed body. maxNodeBytes is the
// largest encoded node (flags, a 255-byte name, port, weight), so asking
// for it before each node guarantees the node is in the window if it is in
// the body at all.
type window struct {
	t      *table
	off    uint64 // mapping offset of buf[0]; always word-aligned
	i, lim int    // read position; valid bytes in buf
	end    uint64 // mapping offset where the body ends
	bad    bool
	buf    [512]byte
}

const maxNodeBytes = 1 + 1 + MaxNameLen + 2 + binary.MaxVarintLen32 + 8

func (w *window) pos() uint64 { return w.off + uint64(w.i) }

// bytes returns the unread window after making sure it holds maxNodeBytes,
// or everything up to the end of the body.
func (w *window) bytes() []byte {
	if w.lim-w.i < maxNodeBytes && w.off+uint64(w.lim) < w.end {
		w.seek(w.pos())
	}
	return w.buf[w.i:w.lim]
}

// seek moves to mapping offset p (within the body), refilling the window
// from there. Whole words are copied: the body's end rounded up to a word
// is still inside its record.
func (w *window) seek(p uint64) {
	if p > w.end {
		w.bad = true
		return
	}
	start := p &^ 7
	n := min(uint64(len(w.buf)), (w.end+7)&^7-start)
	for k := uint64(0); k < n; k += 8 {
		binary.LittleEndian.PutUint64(w.buf[k:], w.t.load(start+k))
	}
	w.off, w.i, w.lim = start, int(p-start), int(min(n, w.end-start))
}

// node decodes the next node into n, which holds the previous node's port
// and weight. DNS names are interned through in, or copied when in is nil.
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
	w.i += j
}

// blob appends a blob record's bytes to dst; false on garbage.
func (t *table) blob(r record, dst []byte) ([]byte, bool) {
	p, end := r.value()
	if end-p < 8 {
		return dst, false
	}
	n := t.load(p)
	if n > end-p-8 {
		return dst, false
	}
	for i := uint64(0); i < n; i += 8 {
		w := t.load(p + 8 + i)
		for j := uint64(0); j < 8 && i+j < n; j++ {
			dst = append(dst, byte(w>>(8*j)))
		}
	}
	return dst, true
}

// ports decodes a whole value, allocating (Get, Range, the writer's check).
func (t *table) ports(r record) ([]Port, bool) {
	if r.cell {
		c, ok := t.cellAt(r.off)
		if !ok {
			return nil, false
		}
		return c.ports(), true
	}
	if isBlob(r) {
		return nil, false
	}
	p, end := r.value()
	if r.nPorts > r.valLen/portHeaderBytes {
		return nil, false
	}
	var ports []Port // nil for a service with no port
	if r.nPorts > 0 {
		ports = make([]Port, 0, r.nPorts)
	}
	for range r.nPorts {
		h, ok := t.portAt(p, end)
		if !ok || !h.nodesOK() {
			return nil, false
		}
		name := make([]byte, keyPad(h.nameLen()))
		for i := 0; i < len(name); i += 8 {
			binary.LittleEndian.PutUint64(name[i:], t.load(h.name+uint64(i)))
		}
		pt := Port{Name: string(name[:h.nameLen()])}
		if h.nNodes() == 0 {
			pt.Number = h.port()
		}
		if n := h.nNodes(); n > 0 {
			pt.Nodes = make([]Node, n)
			if !t.decodeNodes(&h, pt.Nodes, nil) {
				return nil, false
			}
		}
		ports = append(ports, pt)
		p = h.next
	}
	return ports, p == end
}
