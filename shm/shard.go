package shm

import (
	"encoding/binary"
	"slices"
	"unsafe"
)

// Shard maintenance, writer side. A shard is a slotted page:
//
//	[shard header 64 B][index: cap slots →   free   ← records][end]
//
// The index is an open-addressing hash table: a key's probe starts at slot
// home(tag, cap) and moves right (wrapping at cap) until it finds the key
// or an empty slot. A slot is a 64-byte cell (inline.go; a word in a v4
// table) whose first word is tag<<32 | record offset in words from the
// shard start, or tag<<32 | 1<<31 | lengths for a service held in the cell
// itself, or 0 when empty (no record starts at offset 0). At most 3/4 of
// the slots are used. A deletion shifts later entries of its run back (a
// whole cell each), so there are no tombstones.
//
// Records grow down from the end; a record replaced or deleted becomes dead
// space. When the free gap runs out, or the index must grow, the writer
// rebuilds the shard: records packed at the end, index rehashed.
//
// Publication rule (the seqlock): the writer makes the shard's sequence odd,
// changes what an index entry can reach, and makes it even again. Bytes that
// no index entry reaches at the current sequence (the free gap) are written
// outside that window: no reader of the current sequence looks at them, and
// a reader of an older sequence fails its final check anyway.

const minSlots = 8 // one cache line

// slotsFor is the smallest index (a whole number of cache lines) that holds
// n entries at most 3/4 full.
func slotsFor(n uint64) uint64 {
	if n == 0 {
		return 0
	}
	return max(minSlots, ((n*4+2)/3+7)&^7)
}

func (t *table) slot(so, i uint64) uint64 { return so + shardHeaderBytes + i*t.slotSize }

// entryAt is the record of entry e, the first word of slot s of the shard
// at so: a record in the data area (recordAt), or the cell itself for a
// service held inline, which only a table of 64-byte cells has. The
// caller checked s < the slot count <= idxCap. ok is false on any
// inconsistency.
func (t *table) entryAt(so, s, e uint64) (record, bool) {
	if e&inlineBit == 0 {
		return t.recordAt(so, e)
	}
	if t.slotSize != cellBytes || !cellOK(e) {
		return record{}, false
	}
	return record{off: t.slot(so, s), keyLen: e & 0xff, nPorts: 1, cell: true}, true
}

// moveSlot copies slot from to slot to, a whole cell (writer, inside the
// write window).
func (t *table) moveSlot(so, from, to uint64) {
	f, d := t.slot(so, from), t.slot(so, to)
	for i := uint64(0); i < t.slotSize; i += 8 {
		t.store(d+i, t.load(f+i))
	}
}

// clearSlot empties slot, a whole cell.
func (t *table) clearSlot(so, slot uint64) {
	d := t.slot(so, slot)
	for i := uint64(0); i < t.slotSize; i += 8 {
		t.store(d+i, 0)
	}
}

// probe is the one walk of a shard's index (c > 0 slots of size bytes,
// the shard at sp): from slot s, n
// slots at most, it returns the first slot whose entry has tag, or the
// empty slot that ends the probe run (e == 0). left counts the slots not
// yet looked at, the returned one included; left == 0 means it went round
// without either, which only a torn or corrupt index (no empty slot) does.
// After a tag collision the walk goes on from next(s, c) with left-1.
func probe(sp unsafe.Pointer, size, c, tag, s, n uint64) (slot, e, left uint64) {
	for ; n > 0; n-- {
		if e = ld(sp, shardHeaderBytes+s*size); e == 0 || e>>32 == tag {
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
// and record (resFound); or the empty slot where it would be inserted
// (resNone; meaningless when the index has no room: the writer grows it
// first); or resCorrupt for an index or record no consistent shard holds
// (a torn read, or a corrupt table).
func (t *table) lookupKey(so, tag uint64, key string) (slot uint64, r record, res result) {
	c := t.load(so + sCap)
	if c == 0 {
		return 0, record{}, resNone
	}
	if c > t.idxCap() {
		return 0, record{}, resCorrupt
	}
	s, n := home(tag, c), c
	for {
		var e, left uint64
		s, e, left = probe(t.at(so), t.slotSize, c, tag, s, n)
		switch {
		case left == 0:
			return 0, record{}, resCorrupt
		case e == 0:
			return s, record{}, resNone
		}
		r, ok := t.entryAt(so, s, e)
		if !ok {
			return 0, record{}, resCorrupt
		}
		if t.keyIs(r, key) {
			return s, r, resFound
		}
		s, n = next(s, c), left-1 // a tag collision: go on
	}
}

// find is lookupKey for the writer, whose own shards are consistent.
func (t *table) find(so, tag uint64, key string) (slot uint64, r record, found bool) {
	slot, r, res := t.lookupKey(so, tag, key)
	return slot, r, res == resFound
}

func (t *table) beginWrite(so uint64) { t.store(so+sSeq, t.load(so+sSeq)+1) }
func (t *table) endWrite(so uint64)   { t.store(so+sSeq, t.load(so+sSeq)+1) }

// writeBytes stores b (a multiple of 8 bytes) at off, a word at a time.
func (t *table) writeBytes(off uint64, b []byte) {
	for i := 0; i < len(b); i += 8 {
		t.store(off+uint64(i), binary.LittleEndian.Uint64(b[i:]))
	}
}

// free is the gap between the index and the records.
func (t *table) free(so uint64) uint64 {
	return t.load(so+sDataLow) - shardHeaderBytes - t.slotSize*t.load(so+sCap)
}

// stage writes rec into the shard's free gap, where no index entry
// reaches it yet, and returns its offset in the shard. The caller checked
// that it fits.
func (t *table) stage(so uint64, rec []byte) (off uint64) {
	off = t.load(so+sDataLow) - uint64(len(rec))
	t.writeBytes(so+off, rec)
	return off
}

// publish points slot at the record staged at off, inside the caller's
// write window (the shard's sequence odd): it replaces the entry there, or
// fills the empty slot (added) and counts one more entry.
func (t *table) publish(so, slot, tag, off uint64, added bool) {
	t.store(so+sDataLow, off)
	t.clearSlot(so, slot) // the cell may have held a service inline
	t.store(t.slot(so, slot), tag<<32|off/8)
	if added {
		t.store(so+sCount, t.load(so+sCount)+1)
	}
}

// remove empties slot; its record becomes dead space. Later entries of the
// probe run move back so that no probe stops short of them.
func (t *table) remove(so, slot uint64, r record) {
	n, c := t.load(so+sCount), t.load(so+sCap)
	t.beginWrite(so)
	if n == 1 { // empty: all space is free again, no rebuild needed
		t.store(so+sCount, 0)
		t.store(so+sCap, 0)
		t.store(so+sDataLow, t.shardBytes)
		t.store(so+sDead, 0)
		t.endWrite(so)
		return
	}
	hole := slot
	for j := (slot + 1) % c; ; j = (j + 1) % c {
		e := t.load(t.slot(so, j))
		if e == 0 {
			break
		}
		// The entry at j may fill the hole unless its home lies
		// cyclically in (hole, j]: then its probe never passes the hole.
		if h := home(e>>32, c); (j-h+c)%c >= (j-hole+c)%c {
			t.moveSlot(so, j, hole)
			hole = j
		}
	}
	t.clearSlot(so, hole)
	t.store(so+sCount, n-1)
	t.store(so+sDead, t.load(so+sDead)+r.size())
	t.endWrite(so)
}

// rebuild packs the live records at the end of the shard, dropping the one
// at slot skip (the value being replaced; ^0 for none), and rehashes them
// into an index of slots entries. It leaves the seqlock odd: the caller
// places the new record and ends the write, so readers see the old value
// or the new one, never neither. buf and idx are scratch space, returned
// possibly grown.
func (t *table) rebuild(so, skip, slots uint64, buf []byte, idx []uint64) ([]byte, []uint64) {
	c := t.load(so + sCap)
	var total, n uint64
	for i := range c {
		if e := t.load(t.slot(so, i)); e != 0 && i != skip {
			r, _ := t.entryAt(so, i, e) // the writer's own data: valid
			total += r.size()
			n++
		}
	}
	low := t.shardBytes - total
	buf = buf[:0]
	wps := t.slotSize / 8 // words per slot
	idx = slices.Grow(idx[:0], int(slots*wps))[:slots*wps]
	clear(idx)
	for i := range c {
		e := t.load(t.slot(so, i))
		if e == 0 || i == skip {
			continue
		}
		r, _ := t.entryAt(so, i, e)
		j := home(e>>32, slots)
		for idx[j*wps] != 0 {
			if j++; j == slots {
				j = 0
			}
		}
		if r.cell { // the whole cell moves
			for k := range wps {
				idx[j*wps+k] = t.load(r.off + 8*k)
			}
			continue
		}
		idx[j*wps] = e&^0xffffffff | (low+uint64(len(buf)))/8
		for p := r.off; p < r.off+r.size(); p += 8 {
			buf = binary.LittleEndian.AppendUint64(buf, t.load(p))
		}
	}
	t.beginWrite(so)
	t.writeBytes(so+low, buf)
	for j, e := range idx {
		t.store(so+shardHeaderBytes+8*uint64(j), e)
	}
	t.store(so+sCap, slots)
	t.store(so+sCount, n)
	t.store(so+sDataLow, low)
	t.store(so+sDead, 0)
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
	n, c := t.load(so+sCount), t.load(so+sCap)
	low := t.load(so + sDataLow)
	ok = ok && c <= t.idxCap() && low <= t.shardBytes && low%8 == 0 && shardHeaderBytes+t.slotSize*c <= low && n < max(c, 1)
	var live, seen, services uint64
	for i := uint64(0); ok && i < c; i++ {
		e := t.load(t.slot(so, i))
		if e == 0 {
			continue
		}
		r, rok := t.entryAt(so, i, e)
		ok = rok && (r.cell || r.off >= so+low)
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
			ok = (t.shardOf(h) == so || r.nPorts == piecePorts) && tagOf(h) == e>>32 && fok && found == i
		}
		if ok && t.isService(r) {
			services++
		}
		seen++
		live += r.size()
	}
	ok = ok && seen == n && live <= t.shardBytes-low
	if !ok {
		t.store(so+sSeq, t.load(so+sSeq)|1) // odd, whatever it was
		t.store(so+sCount, 0)
		t.store(so+sCap, 0)
		t.store(so+sDataLow, t.shardBytes)
		t.store(so+sDead, 0)
		t.endWrite(so)
		return 0, 0
	}
	t.store(so+sDead, t.shardBytes-low-live)
	return services, live + t.slotSize*c
}
