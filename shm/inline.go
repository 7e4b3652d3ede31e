package shm

import "encoding/binary"

// Inline cells (layout 7). A shard's first index is of 64-byte cells,
// one cache line each, found from the key's hash and the shard's cell
// count alone. A cell holds a small service whole, so that a lookup of it
// misses the cache once (the cell) rather than twice (an index slot, then
// the record):
//
//	word 0:    tag u32 << 32 | 1 << 31 | reach u7 << 24 | nNodes u8 << 16 |
//	           nameLen u8 << 8 | keyLen u8
//	word 1:    port u16 | 0 u16 | weight u32
//	words 2-3: the nodes, IPv4 addresses of 4 bytes, two a word, zero-padded
//	words 4-7: the text key ":" name (the query that finds the port),
//	           zero-padded
//
// A service is stored inline when it has exactly one port, of at most
// cellMaxNodes nodes that are all IPv4 addresses with the port's number
// and weight (or of no node: then word 1 holds the port's number), and
// its key, a colon and its port name take at most cellTextBytes. Anything
// else is a record, pointed at from the shard's second index of 8-byte
// record slots (tag u32 << 32 | record offset / 8), as in v4 (shard.go).
// The pre-release layout 6 pointed at records from cells too, which cost
// a record 64 bytes of index instead of 8.
//
// reach belongs to the cell's slot, not to the service in it: it is at
// least the distance from this slot to the farthest cell holding a key
// whose probe starts here (reachMax: any distance). So a lookup of a key
// in no cell (a record with a short key, or no such key) reads its home
// cell and at most reach more, rather than every cell to an empty one.
// Moving a service between slots keeps each slot's reach; a slot that
// becomes empty has no key whose probe starts there.
const (
	inlineBit     = 1 << 31
	reachShift    = 24
	reachMax      = 0x7f
	reachMask     = reachMax << reachShift
	cellMaxNodes  = 4
	cellNodesOff  = 16
	cellTextOff   = 32
	cellTextBytes = cellBytes - cellTextOff
)

// cellWords is a cell's eight words; word 0 without the tag.
type cellWords [cellBytes / 8]uint64

// encodeCell is the inline cell of key's value ports, if it fits one.
func encodeCell(key string, ports []Port) (c cellWords, ok bool) {
	if len(ports) != 1 || !isServiceKey(key) {
		return c, false
	}
	p := ports[0]
	if len(p.Nodes) > cellMaxNodes || len(key)+1+len(p.Name) > cellTextBytes {
		return c, false
	}
	if f, err := checkNodes(p.Nodes); err != nil || f != fmtIPv4 {
		return c, false
	}
	port, weight := p.Number, uint32(0) // a port with no node keeps its number
	if len(p.Nodes) > 0 {
		port, weight = p.Nodes[0].Port, p.Nodes[0].Weight
	}
	c[0] = inlineBit | uint64(len(p.Nodes))<<16 | uint64(len(p.Name))<<8 | uint64(len(key))
	c[1] = uint64(port) | uint64(weight)<<32
	for i, n := range p.Nodes {
		a := n.Addr.As4()
		c[2+i/2] |= uint64(binary.LittleEndian.Uint32(a[:])) << (32 * (i % 2))
	}
	var text [cellTextBytes]byte
	n := copy(text[:], key)
	text[n] = ':'
	copy(text[n+1:], p.Name)
	for i := range cellTextBytes / 8 {
		c[4+i] = binary.LittleEndian.Uint64(text[8*i:])
	}
	return c, true
}

// cellOK checks the lengths in a cell's word 0 (any tag): every length it
// gives stays inside the cell.
func cellOK(w0 uint64) bool {
	kl, nl, nn := w0&0xff, w0>>8&0xff, w0>>16&0xff
	return w0&inlineBit != 0 && kl > 0 && kl+1+nl <= cellTextBytes && nn <= cellMaxNodes
}

// cell is an inline cell copied out of the mapping (cellAt).
type cell struct {
	w    cellWords
	text [cellTextBytes]byte
}

// cellAt copies the cell at byte off and checks it; the caller checked
// that the cell lies inside the shard's index.
func (t *table) cellAt(off uint64) (c cell, ok bool) {
	for i := range c.w {
		c.w[i] = t.load(off + 8*uint64(i))
	}
	for i := range cellTextBytes / 8 {
		binary.LittleEndian.PutUint64(c.text[8*i:], c.w[4+i])
	}
	return c, cellOK(c.w[0]) && c.text[c.keyLen()] == ':'
}

func (c *cell) keyLen() int    { return int(c.w[0] & 0xff) }
func (c *cell) nameLen() int   { return int(c.w[0] >> 8 & 0xff) }
func (c *cell) nNodes() int    { return int(c.w[0] >> 16 & 0xff) }
func (c *cell) port() uint16   { return uint16(c.w[1]) }
func (c *cell) weight() uint32 { return uint32(c.w[1] >> 32) }

func (c *cell) keyIs(key string) bool { return string(c.text[:c.keyLen()]) == key }
func (c *cell) nameIs(name string) bool {
	return string(c.text[c.keyLen()+1:c.keyLen()+1+c.nameLen()]) == name
}
func (c *cell) key() string { return string(c.text[:c.keyLen()]) }

// fill decodes the cell's nodes into dst, which has room for exactly
// nNodes.
func (c *cell) fill(dst []Node) {
	for i := range dst {
		n := &dst[i]
		n.Addr, n.Name, n.Port, n.Weight = addr4(uint32(c.w[2+i/2]>>(32*(i%2)))), "", c.port(), c.weight()
	}
}

// ports is the cell's value, as Get returns it.
func (c *cell) ports() []Port {
	p := Port{Name: string(c.text[c.keyLen()+1 : c.keyLen()+1+c.nameLen()])}
	if c.nNodes() == 0 {
		p.Number = c.port()
	} else {
		p.Nodes = make([]Node, c.nNodes())
		c.fill(p.Nodes)
	}
	return []Port{p}
}

// holdsCell reports whether the cell at off holds exactly c (its tag and
// its slot's reach aside).
func (t *table) holdsCell(off uint64, c *cellWords) bool {
	if uint32(t.load(off))&^reachMask != uint32(c[0]) {
		return false
	}
	for i := 1; i < len(c); i++ {
		if t.load(off+8*uint64(i)) != c[i] {
			return false
		}
	}
	return true
}

// putCell writes the cell c, tagged, into the cell at (inside the
// shard's write window): the value words first, word 0 last, keeping the
// slot's reach; then it makes the reach of the key's home slot cover at.
func (t *table) putCell(so uint64, at slotRef, tag uint64, c *cellWords) {
	p := so + at.off()
	for i := 1; i < len(c); i++ {
		t.store(p+8*uint64(i), c[i])
	}
	t.store(p, tag<<32|c[0]|t.load(p)&reachMask)
	t.reach(so, at.ix, home(tag, at.ix.c), at.s)
}

// reach makes the reach of slot h (occupied) of the cells ix cover slot
// s, where a key whose probe starts at h lies.
func (t *table) reach(so uint64, ix index, h, s uint64) {
	d := s - h
	if s < h {
		d += ix.c
	}
	hp := so + ix.at(h)
	if e := t.load(hp); d > e>>reachShift&reachMax {
		t.store(hp, e&^reachMask|min(d, reachMax)<<reachShift)
	}
}

// reachOf is the reach stored in the word 0 e of a slot of cells.
func reachOf(e uint64) uint64 { return e >> reachShift & reachMax }
