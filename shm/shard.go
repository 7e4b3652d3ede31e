package shm

import "encoding/binary"

// Shard maintenance, writer side. A shard is a slotted page:
//
//	[shard header 64 B][index: count words, sorted by tag →   free   ← records][end]
//
// An index entry is tag<<32 | record offset in words from the shard start.
// The index grows up, records grow down from the end; a record replaced or
// deleted becomes dead space, reclaimed by compaction when the free gap
// runs out.
//
// Publication rule (the seqlock): the writer makes the shard's sequence odd,
// changes what an index entry can reach, and makes it even again. Bytes that
// no index entry reaches at the current sequence (the free gap) are written
// outside that window: no reader of the current sequence looks at them, and
// a reader of an older sequence fails its final check anyway.

// find locates key in the shard at so: its index position, or the position
// where it would be inserted.
func (t *table) find(so, tag uint64, key string) (pos uint64, r record, found bool) {
	n := t.load(so + sCount)
	pos = t.lowerBound(so, n, tag)
	for i := pos; i < n; i++ {
		e := t.load(so + shardHeaderBytes + i*8)
		if e>>32 != tag {
			break
		}
		if r, ok := t.recordAt(so, e); ok && t.keyIs(r, key) {
			return i, r, true
		}
	}
	return pos, record{}, false
}

// lowerBound is the first index position whose tag is >= tag. Tags are
// uniformly distributed hashes, so interpolation guesses the position to
// within a few entries; walking from there touches one or two cache lines
// with predictable branches, where a binary search would take ~log2(n)
// dependent, mispredicted steps.
func (t *table) lowerBound(so, n, tag uint64) uint64 {
	idx := so + shardHeaderBytes
	i := tag * n >> 32
	for i > 0 && t.load(idx+(i-1)*8)>>32 >= tag {
		i--
	}
	for i < n && t.load(idx+i*8)>>32 < tag {
		i++
	}
	return i
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
	return t.load(so+sDataLow) - shardHeaderBytes - 8*t.load(so+sCount)
}

// place writes rec into the free gap and publishes it at index position
// pos: replacing the entry there, or inserting a new one. The caller has
// checked that it fits. With locked, the caller already holds the shard's
// sequence odd (after compact) and ends the write itself.
func (t *table) place(so, pos, tag uint64, rec []byte, replace, locked bool) {
	off := t.load(so+sDataLow) - uint64(len(rec))
	t.writeBytes(so+off, rec) // in the free gap: unreachable until published
	if !locked {
		t.beginWrite(so)
	}
	t.store(so+sDataLow, off)
	e := tag<<32 | off/8
	if replace {
		t.store(so+shardHeaderBytes+pos*8, e)
	} else {
		n := t.load(so + sCount)
		for i := n; i > pos; i-- {
			t.store(so+shardHeaderBytes+i*8, t.load(so+shardHeaderBytes+(i-1)*8))
		}
		t.store(so+shardHeaderBytes+pos*8, e)
		t.store(so+sCount, n+1)
	}
	if !locked {
		t.endWrite(so)
	}
}

// remove drops the index entry at pos; its record becomes dead space.
func (t *table) remove(so, pos uint64, r record) {
	n := t.load(so + sCount)
	t.beginWrite(so)
	for i := pos; i+1 < n; i++ {
		t.store(so+shardHeaderBytes+i*8, t.load(so+shardHeaderBytes+(i+1)*8))
	}
	t.store(so+sCount, n-1)
	if n == 1 { // empty: all space is free again, no compaction needed
		t.store(so+sDataLow, t.shardBytes)
		t.store(so+sDead, 0)
	} else {
		t.store(so+sDead, t.load(so+sDead)+r.size())
	}
	t.endWrite(so)
}

// compact packs the live records at the end of the shard, dropping the one
// at index position skip (the value being replaced; ^0 for none), and
// leaves the seqlock odd: the caller places the new record and ends the
// write, so readers see the old value or the new one, never neither.
// buf is scratch space; it is returned, possibly grown.
func (t *table) compact(so, skip uint64, buf []byte) []byte {
	n := t.load(so + sCount)
	buf = buf[:0]
	ends := make([]uint64, 0, n) // end of each entry's record within buf
	for i := uint64(0); i < n; i++ {
		e := t.load(so + shardHeaderBytes + i*8)
		if i != skip {
			r, _ := t.recordAt(so, e) // the writer's own data: valid
			for p := r.off; p < r.off+r.size(); p += 8 {
				buf = binary.LittleEndian.AppendUint64(buf, t.load(p))
			}
		}
		ends = append(ends, uint64(len(buf)))
	}
	t.beginWrite(so)
	low := t.shardBytes - uint64(len(buf))
	t.writeBytes(so+low, buf)
	var start uint64
	for i := uint64(0); i < n; i++ {
		if i != skip {
			e := t.load(so + shardHeaderBytes + i*8)
			t.store(so+shardHeaderBytes+i*8, e&^0xffffffff|(low+start)/8)
		}
		start = ends[i]
	}
	t.store(so+sDataLow, low)
	t.store(so+sDead, 0)
	return buf
}

// check validates a shard of a reused file (its writer may have died in
// the middle of a change) and returns its live entries and bytes. A shard
// that is not exactly consistent is emptied: losing its entries until the
// next list is better than serving a torn value.
func (t *table) check(so uint64) (entries, used uint64) {
	ok := t.load(so+sSeq)%2 == 0
	n := t.load(so + sCount)
	low := t.load(so + sDataLow)
	ok = ok && n <= t.idxCap() && low <= t.shardBytes && low%8 == 0 && shardHeaderBytes+8*n <= low
	var live, prev uint64
	for i := uint64(0); ok && i < n; i++ {
		e := t.load(so + shardHeaderBytes + i*8)
		r, rok := t.recordAt(so, e)
		ok = rok && e>>32 >= prev && r.off >= so+low
		if ok {
			_, ok = t.ports(r)
		}
		if ok {
			k := t.key(r)
			h := hashKey(k)
			ok = t.shardOf(h) == so && tagOf(h) == e>>32
		}
		prev = e >> 32
		live += r.size()
	}
	ok = ok && live <= t.shardBytes-low
	if !ok {
		t.store(so+sSeq, t.load(so+sSeq)|1) // odd, whatever it was
		t.store(so+sCount, 0)
		t.store(so+sDataLow, t.shardBytes)
		t.store(so+sDead, 0)
		t.endWrite(so)
		return 0, 0
	}
	t.store(so+sDead, t.shardBytes-low-live)
	return n, live + 8*n
}
