package shm

import (
	"encoding/binary"
	"slices"
	"unsafe"
)

// Shard maintenance, writer side. A shard is a slotted page:
//
//	[shard header 64 B][cells: cap × 64 B][slots: rcap × 8 B →   free   ← records][end]
//
// It has two open-addressing hash indexes (layout 7): cells, which hold a
// small service whole (inline.go), and record slots, which point at a
// record in the data area (tag<<32 | record offset in words from the shard
// start). A key's probe in either starts at slot home(tag, slots) and
// moves right (wrapping) until it finds the key or an empty slot (0: no
// record starts at offset 0). A key is in exactly one of them: a lookup
// tries the cells first, then the slots. So a service held inline costs
// one cell and is found with one cache miss, and a record costs an 8-byte
// slot of index, as in v4. At most 3/4 of each index is used. A deletion
// shifts later entries of its run back (a whole slot each), so there are
// no tombstones. A v4 table has one index, of 8-byte record slots, in
// place of the cells.
//
// Records grow down from the end; a record replaced or deleted becomes dead
// space. When the free gap runs out, or an index must grow, the writer
// rebuilds the shard: records packed at the end, indexes rehashed.
//
// Publication rule (the seqlock): the writer makes the shard's sequence odd,
// changes what an index entry can reach, and makes it even again. Bytes that
// no index entry reaches at the current sequence (the free gap) are written
// outside that window: no reader of the current sequence looks at them, and
// a reader of an older sequence fails its final check anyway.

const minSlots = 8 // one cache line of record slots

// slotsFor is the smallest index (a multiple of 8 slots) that holds n
// entries at most 3/4 full.
func slotsFor(n uint64) uint64 {
	if n == 0 {
		return 0
	}
	return max(minSlots, ((n*4+2)/3+7)&^7)
}

// cellsFor is slotsFor for the cell index, whose slots are a cache line
// each: no rounding beyond 3/4 full.
func cellsFor(n uint64) uint64 {
	if n == 0 {
		return 0
	}
	return max(2, (n*4+2)/3)
}

// index is one of a shard's hash indexes: c slots of size bytes from byte
// base of the shard, its slot count in the shard header word capW and its
// entry count in word cntW.
type index struct{ base, size, c, capW, cntW uint64 }

// at is the offset of slot s in the shard.
func (ix index) at(s uint64) uint64 { return ix.base + s*ix.size }

// end is the offset just past the index.
func (ix index) end() uint64 { return ix.base + ix.c*ix.size }

// cells reports whether ix is the index of inline cells (from layout 7;
// a v4 table's only index holds record slots).
func (ix index) cells() bool { return ix.size == cellBytes }

// slotRef is an index slot.
type slotRef struct {
	ix index
	s  uint64
}

// off is the slot's offset in its shard.
func (a slotRef) off() uint64 { return a.ix.at(a.s) }

// indexes loads the shard's indexes: the cells (in a v4 table, its
// 8-byte record slots) and the record slots after them (none in a v4
// table). ok is false when they do not fit in the shard.
func (t *table) indexes(so uint64) (cells, recs index, ok bool) {
	c := t.load(so + sCap)
	cells = index{base: shardHeaderBytes, size: t.slotSize, c: c, capW: sCap, cntW: sCount}
	if c > t.idxCap() {
		return cells, recs, false
	}
	recs = index{base: cells.end(), size: v4SlotBytes, capW: sRCap, cntW: sRCount}
	if t.version >= 7 {
		recs.c = t.load(so + sRCap)
	}
	return cells, recs, recs.c <= (t.shardBytes-recs.base)/v4SlotBytes
}

// counts is the number of entries of each of the shard's indexes.
func (t *table) counts(so uint64) (n, rn uint64) {
	n = t.load(so + sCount)
	if t.version >= 7 {
		rn = t.load(so + sRCount)
	}
	return n, rn
}

// indexFor is the writer's index of the shard at so for an entry that is
// a cell or a record slot (in a v4 table, the only index).
func (t *table) indexFor(so uint64, cell bool) index {
	cells, recs, _ := t.indexes(so) // the writer's own shard: valid
	if cell || t.version < 7 {
		return cells
	}
	return recs
}

// entryAt is the record of entry e, the first word of slot s of index ix
// of the shard at so: a record in the data area (recordAt), or the cell
// itself for a service held inline. A cell index holds only cells, a
// slot index only records. The caller checked s < ix.c and the index
// bounds (indexes). ok is false on any inconsistency.
func (t *table) entryAt(so uint64, ix index, s, e uint64) (record, bool) {
	if !ix.cells() {
		if e&inlineBit != 0 {
			return record{}, false
		}
		return t.recordAt(so, e)
	}
	if !cellOK(e) {
		return record{}, false
	}
	return record{off: so + ix.at(s), keyLen: e & 0xff, nPorts: 1, cell: true}, true
}

// eachEntry calls fn with every entry of the shard at so, cells first,
// until fn returns false; ok is false when an entry or the indexes are
// inconsistent (a torn read, or a corrupt table), which ends the walk.
func (t *table) eachEntry(so uint64, fn func(at slotRef, e uint64, r record) bool) (ok bool) {
	cells, recs, ok := t.indexes(so)
	if !ok {
		return false
	}
	for _, ix := range [2]index{cells, recs} {
		for s := range ix.c {
			e := t.load(so + ix.at(s))
			if e == 0 {
				continue
			}
			r, ok := t.entryAt(so, ix, s, e)
			if !ok {
				return false
			}
			if !fn(slotRef{ix, s}, e, r) {
				return true
			}
		}
	}
	return true
}

// moveSlot copies slot from to slot to of ix, a whole slot (writer,
// inside the write window); a cell's slot keeps its reach (inline.go).
func (t *table) moveSlot(so uint64, ix index, from, to uint64) {
	f, d := so+ix.at(from), so+ix.at(to)
	for i := ix.size; i > 0; i -= 8 { // word 0 last
		v := t.load(f + i - 8)
		if i == 8 && ix.cells() {
			v = v&^reachMask | t.load(d)&reachMask
		}
		t.store(d+i-8, v)
	}
}

// clearSlot empties slot s of ix, a whole slot.
func (t *table) clearSlot(so uint64, ix index, s uint64) {
	d := so + ix.at(s)
	for i := uint64(0); i < ix.size; i += 8 {
		t.store(d+i, 0)
	}
}

// probe is the one walk of an index (c > 0 slots of size bytes from byte
// base of the shard at sp): from slot s, n slots at most, it returns the
// first slot whose entry has tag, or the empty slot that ends the probe
// run (e == 0). left counts the slots not yet looked at, the returned one
// included; left == 0 means it went round without either, which only a
// torn or corrupt index (no empty slot) does. After a tag collision the
// walk goes on from next(s, c) with left-1.
func probe(sp unsafe.Pointer, base, size, c, tag, s, n uint64) (slot, e, left uint64) {
	for ; n > 0; n-- {
		if e = ld(sp, base+s*size); e == 0 || e>>32 == tag {
			return s, e, n
		}
		s = next(s, c)
	}
	return s, 0, 0
}

// next is the slot after s in an index of c slots.
func next(s, c uint64) uint64 {
	if s++; s == c {
		return 0
	}
	return s
}

// lookupKey finds key, whose hash has tag, in the shard at so: its slot
// and record (resFound); or resNone; or resCorrupt for an index or record
// no consistent shard holds (a torn read, or a corrupt table).
func (t *table) lookupKey(so, tag uint64, key string) (at slotRef, r record, res result) {
	cells, recs, ok := t.indexes(so)
	if !ok {
		return at, r, resCorrupt
	}
	for _, ix := range [2]index{cells, recs} {
		if ix.c == 0 || ix.cells() && len(key) >= cellTextBytes { // too long for a cell
			continue
		}
		s, n := home(tag, ix.c), ix.c
		for {
			var e, left uint64
			s, e, left = probe(t.at(so), ix.base, ix.size, ix.c, tag, s, n)
			if left == 0 {
				return at, record{}, resCorrupt
			}
			if e == 0 {
				break
			}
			r, ok := t.entryAt(so, ix, s, e)
			if !ok {
				return at, record{}, resCorrupt
			}
			if t.keyIs(r, key) {
				return slotRef{ix, s}, r, resFound
			}
			s, n = next(s, ix.c), left-1 // a tag collision: go on
		}
	}
	return at, record{}, resNone
}

// find is lookupKey for the writer, whose own shards are consistent.
func (t *table) find(so, tag uint64, key string) (at slotRef, r record, found bool) {
	at, r, res := t.lookupKey(so, tag, key)
	return at, r, res == resFound
}

// emptySlot is the empty slot of ix (which has one) where a key of tag
// not in it would be inserted (writer).
func (t *table) emptySlot(so uint64, ix index, tag uint64) slotRef {
	s := home(tag, ix.c)
	for t.load(so+ix.at(s)) != 0 {
		s = next(s, ix.c)
	}
	return slotRef{ix, s}
}

func (t *table) beginWrite(so uint64) { t.store(so+sSeq, t.load(so+sSeq)+1) }
func (t *table) endWrite(so uint64)   { t.store(so+sSeq, t.load(so+sSeq)+1) }

// writeBytes stores b (a multiple of 8 bytes) at off, a word at a time.
func (t *table) writeBytes(off uint64, b []byte) {
	for i := 0; i < len(b); i += 8 {
		t.store(off+uint64(i), binary.LittleEndian.Uint64(b[i:]))
	}
}

// idxEnd is the offset in the shard just past its indexes (writer).
func (t *table) idxEnd(so uint64) uint64 {
	_, recs, _ := t.indexes(so)
	return recs.end()
}

// free is the gap between the indexes and the records.
func (t *table) free(so uint64) uint64 {
	return t.load(so+sDataLow) - t.idxEnd(so)
}

// stage writes rec into the shard's free gap, where no index entry
// reaches it yet, and returns its offset in the shard. The caller checked
// that it fits.
func (t *table) stage(so uint64, rec []byte) (off uint64) {
	off = t.load(so+sDataLow) - uint64(len(rec))
	t.writeBytes(so+off, rec)
	return off
}

// publish points the record slot at at the record staged at off, inside
// the caller's write window (the shard's sequence odd): it replaces the
// entry there, or fills the empty slot (added) and counts one more entry.
func (t *table) publish(so uint64, at slotRef, tag, off uint64, added bool) {
	t.store(so+sDataLow, off)
	t.store(so+at.off(), tag<<32|off/8)
	if added {
		t.store(so+at.ix.cntW, t.load(so+at.ix.cntW)+1)
	}
}

// remove empties the slot at; its record becomes dead space.
func (t *table) remove(so uint64, at slotRef, r record) {
	t.beginWrite(so)
	if n, rn := t.counts(so); n+rn == 1 { // empty: all space is free again, no rebuild needed
		t.store(so+sCount, 0)
		t.store(so+sCap, 0)
		t.store(so+sRCount, 0)
		t.store(so+sRCap, 0)
		t.store(so+sDataLow, t.shardBytes)
		t.store(so+sDead, 0)
		t.endWrite(so)
		return
	}
	t.removeSlot(so, at)
	t.store(so+sDead, t.load(so+sDead)+r.size())
	t.endWrite(so)
}

// removeSlot empties the slot at inside the caller's write window. Later
// entries of the probe run move back so that no probe stops short of
// them.
func (t *table) removeSlot(so uint64, at slotRef) {
	ix, c := at.ix, at.ix.c
	hole := at.s
	for j := next(hole, c); ; j = next(j, c) {
		e := t.load(so + ix.at(j))
		if e == 0 {
			break
		}
		// The entry at j may fill the hole unless its home lies
		// cyclically in (hole, j]: then its probe never passes the hole.
		if h := home(e>>32, c); (j-h+c)%c >= (j-hole+c)%c {
			t.moveSlot(so, ix, j, hole)
			hole = j
		}
	}
	t.clearSlot(so, ix, hole)
	t.store(so+ix.cntW, t.load(so+ix.cntW)-1)
}

// rebuild packs the live records at the end of the shard, dropping the
// entry whose slot is at offset skip of the shard (the value being
// replaced; ^0 for none), and rehashes them into indexes of cells and
// slots entries (in a v4 table, one index of cells 8-byte record slots).
// It leaves the seqlock odd: the caller places the new value and ends
// the write, so readers see the old value or the new one, never neither.
// buf and idx are scratch space, returned possibly grown.
func (t *table) rebuild(so, skip, cells, slots uint64, buf []byte, idx []uint64) ([]byte, []uint64) {
	var total uint64
	t.eachEntry(so, func(at slotRef, _ uint64, r record) bool {
		if at.off() != skip {
			total += r.size()
		}
		return true
	})
	low := t.shardBytes - total
	buf = buf[:0]
	newCells := index{base: shardHeaderBytes, size: t.slotSize, c: cells}
	newRecs := index{base: newCells.end(), size: v4SlotBytes, c: slots}
	if t.version < 7 {
		newRecs = newCells
	}
	words := (newRecs.end() - shardHeaderBytes) / 8
	if newCells.end() > newRecs.end() {
		words = (newCells.end() - shardHeaderBytes) / 8
	}
	idx = slices.Grow(idx[:0], int(words))[:words]
	clear(idx)
	// place is the word of idx of the empty slot of ix where tag goes.
	place := func(ix index, tag uint64) uint64 {
		j := home(tag, ix.c)
		for idx[(ix.at(j)-shardHeaderBytes)/8] != 0 {
			j = next(j, ix.c)
		}
		return (ix.at(j) - shardHeaderBytes) / 8
	}
	var n, rn uint64
	t.eachEntry(so, func(at slotRef, e uint64, r record) bool {
		if at.off() == skip {
			return true
		}
		if r.cell { // the whole cell moves; its reach is the new slot's
			w := place(newCells, e>>32)
			for k := range uint64(cellBytes / 8) {
				idx[w+k] = t.load(r.off + 8*k)
			}
			idx[w] &^= reachMask
			n++
			return true
		}
		idx[place(newRecs, e>>32)] = e&^0xffffffff | (low+uint64(len(buf)))/8
		for p := r.off; p < r.off+r.size(); p += 8 {
			buf = binary.LittleEndian.AppendUint64(buf, t.load(p))
		}
		rn++
		return true
	})
	if newCells.cells() { // each home slot's reach: its farthest key
		for j := range cells {
			if e := idx[j*cellBytes/8]; e != 0 {
				h := home(e>>32, cells)
				d := j - h
				if j < h {
					d += cells
				}
				if w := h * cellBytes / 8; d > reachOf(idx[w]) {
					idx[w] = idx[w]&^reachMask | min(d, reachMax)<<reachShift
				}
			}
		}
	}
	t.beginWrite(so)
	t.writeBytes(so+low, buf)
	for j, e := range idx {
		t.store(so+shardHeaderBytes+8*uint64(j), e)
	}
	t.store(so+sCap, cells)
	t.store(so+sDataLow, low)
	t.store(so+sDead, 0)
	if t.version < 7 {
		t.store(so+sCount, rn)
		return buf, idx
	}
	t.store(so+sCount, n)
	t.store(so+sRCap, slots)
	t.store(so+sRCount, rn)
	return buf, idx
}

// check validates a shard of a reused file (its writer may have died in
// the middle of a change) and returns its live services and bytes. A big
// value's pieces live in any shard; Writer.sweepBig then checks that each
// head has all its pieces and each piece a head. A shard
// that is not exactly consistent is emptied: losing its entries until the
// next list is better than serving a torn value.
func (t *table) check(so uint64) (entries, used uint64) {
	ok := t.load(so+sSeq)%2 == 0
	n, rn := t.counts(so)
	cells, recs, iok := t.indexes(so)
	low := t.load(so + sDataLow)
	ok = ok && iok && low <= t.shardBytes && low%8 == 0 && recs.end() <= low && n < max(cells.c, 1) && rn < max(recs.c, 1)
	var live, seenC, seenR, services uint64
	ok = ok && t.eachEntry(so, func(at slotRef, e uint64, r record) bool {
		ok = r.cell || r.off >= so+low
		switch {
		case !ok:
		case r.cell:
			_, ok = t.cellAt(r.off)
		case isBlob(r):
			_, ok = t.blob(r, nil)
		case r.nPorts == piecePorts:
			ok = r.keyLen == pieceKeyLen && t.load(r.off+recHeaderBytes)&0xff == 1
		case r.nPorts == bigPorts:
			_, ok = t.head(r)
		default:
			_, ok = t.ports(r)
		}
		if ok {
			k := t.key(r)
			h := t.hash(k)
			found, _, fok := t.find(so, tagOf(h), k)
			ok = (t.shardOf(h) == so || r.nPorts == piecePorts) && tagOf(h) == e>>32 && fok && found.off() == at.off()
		}
		if ok && r.cell { // its home slot's reach covers it
			hs := home(e>>32, at.ix.c)
			d := at.s - hs
			if at.s < hs {
				d += at.ix.c
			}
			m := reachOf(t.load(so + at.ix.at(hs)))
			ok = m == reachMax || d <= m
		}
		if ok && t.isService(r) {
			services++
		}
		if at.ix.cells() {
			seenC++
		} else {
			seenR++
		}
		live += r.size()
		return ok
	})
	if t.version < 7 { // a v4 table's only index holds records
		seenC, seenR = seenR, 0
	}
	ok = ok && seenC == n && seenR == rn && live <= t.shardBytes-low
	if !ok {
		t.store(so+sSeq, t.load(so+sSeq)|1) // odd, whatever it was
		t.store(so+sCount, 0)
		t.store(so+sCap, 0)
		if t.version >= 7 {
			t.store(so+sRCount, 0)
			t.store(so+sRCap, 0)
		}
		t.store(so+sDataLow, t.shardBytes)
		t.store(so+sDead, 0)
		t.endWrite(so)
		return 0, 0
	}
	t.store(so+sDead, t.shardBytes-low-live)
	return services, live + recs.end() - shardHeaderBytes
}
