package shm

import (
	"encoding/binary"
	"net/netip"
	"unsafe"
)

// cursor reads bytes of the mapping through atomic word loads, between pos
// and end. The writer may rewrite the bytes at any moment, so a reader
// decodes garbage now and then: every read is bounds-checked against end,
// which was itself checked against the shard, and a violation only sets bad.
// The caller then re-validates the shard's sequence number, which tells a
// torn read (retry) from a corrupt table (not found).
type cursor struct {
	t        *table
	pos, end uint64
	bad      bool
}

// get returns the next n (1..8) bytes as a little-endian number.
func (c *cursor) get(n uint64) uint64 {
	if c.bad || c.end-c.pos < n {
		c.bad = true
		return 0
	}
	p := c.pos
	c.pos += n
	sh := (p & 7) * 8
	v := c.t.load(p&^7) >> sh
	if (p&7)+n > 8 {
		// The next word holds bytes below end, and shards end on a word
		// boundary, so it lies inside the mapping.
		v |= c.t.load(p&^7+8) << (64 - sh)
	}
	if n < 8 {
		v &= 1<<(n*8) - 1
	}
	return v
}

func (c *cursor) uvarint() uint64 {
	var x uint64
	for s := uint(0); s < 64; s += 7 {
		b := c.get(1)
		if b < 0x80 {
			return x | b<<s
		}
		x |= (b & 0x7f) << s
	}
	c.bad = true
	return 0
}

func (c *cursor) skip(n uint64) {
	if c.end-c.pos < n {
		c.bad = true
		return
	}
	c.pos += n
}

// equal consumes len(s) bytes and reports whether they are s.
func (c *cursor) equal(s string) bool {
	eq := true
	for len(s) > 0 {
		n := min(len(s), 8)
		if c.get(uint64(n)) != le(s[:n]) {
			eq = false
		}
		s = s[n:]
	}
	return eq && !c.bad
}

// copyTo consumes len(b) bytes into b.
func (c *cursor) copyTo(b []byte) {
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, c.get(8))
		b = b[8:]
	}
	for i := range b {
		b[i] = byte(c.get(1))
	}
}

// le reads up to 8 bytes of s as a little-endian number (zero-extended).
func le(s string) uint64 {
	if len(s) == 8 {
		return binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(s), 8))
	}
	var v uint64
	for i := len(s) - 1; i >= 0; i-- {
		v = v<<8 | uint64(s[i])
	}
	return v
}

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
	for len(key) > 0 {
		n := min(len(key), 8)
		if t.load(p) != le(key[:n]) {
			return false
		}
		key, p = key[n:], p+8
	}
	return true
}

// key copies the record's key out.
func (t *table) key(r record) string {
	b := make([]byte, r.keyLen)
	c := cursor{t: t, pos: r.off + recHeaderBytes, end: r.off + recHeaderBytes + r.keyLen}
	c.copyTo(b)
	return string(b)
}

// value returns a cursor over the record's ports.
func (t *table) value(r record) cursor {
	p := r.off + recHeaderBytes + keyPad(r.keyLen)
	return cursor{t: t, pos: p, end: p + r.valLen}
}

// node decodes one node into n, which holds the previous node of the port
// (for repeated port and weight). Host names are interned through in, or
// copied when in is nil.
func (c *cursor) node(n *Node, in *interner) {
	f := c.get(1)
	*n = Node{Port: n.Port, Weight: n.Weight}
	switch f & kindMask {
	case kindIPv4:
		v := uint32(c.get(4))
		n.Addr = netip.AddrFrom4([4]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)})
	case kindIPv6:
		var a [16]byte
		binary.LittleEndian.PutUint64(a[:8], c.get(8))
		binary.LittleEndian.PutUint64(a[8:], c.get(8))
		n.Addr = netip.AddrFrom16(a)
	case kindName:
		l := c.get(1)
		if l == 0 || c.end-c.pos < l {
			c.bad = true
			return
		}
		if in != nil {
			n.Name = in.get(c, l)
		} else {
			n.Name = copyName(c, l)
		}
	default:
		c.bad = true
		return
	}
	if f&flagSamePt == 0 {
		n.Port = uint16(c.get(2))
	}
	if f&flagSameWt == 0 {
		w := c.uvarint()
		if w > 0xffffffff {
			c.bad = true
		}
		n.Weight = uint32(w)
	}
}

// copyName reads an l-byte name as a new string.
func copyName(c *cursor, l uint64) string {
	b := make([]byte, l)
	c.copyTo(b)
	return string(b)
}

// ports decodes a whole value, allocating (Get, Range).
func (t *table) ports(r record) ([]Port, bool) {
	c := t.value(r)
	if r.nPorts > r.valLen {
		return nil, false
	}
	ports := make([]Port, 0, r.nPorts)
	for i := uint64(0); i < r.nPorts && !c.bad; i++ {
		l := c.get(1)
		if c.end-c.pos < l {
			return nil, false
		}
		nb := make([]byte, l)
		c.copyTo(nb)
		body := c.uvarint()
		if c.end-c.pos < body {
			return nil, false
		}
		nc := cursor{t: t, pos: c.pos, end: c.pos + body}
		c.skip(body)
		nn := nc.uvarint()
		if nn > body {
			return nil, false
		}
		p := Port{Name: string(nb)}
		if nn > 0 {
			p.Nodes = make([]Node, nn)
		}
		for j := range p.Nodes {
			if j > 0 {
				p.Nodes[j] = p.Nodes[j-1]
			}
			nc.node(&p.Nodes[j], nil) // Get and Range allocate anyway
		}
		if nc.bad || nc.pos != nc.end {
			return nil, false
		}
		ports = append(ports, p)
	}
	return ports, !c.bad && c.pos == c.end
}
