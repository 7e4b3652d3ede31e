package shm

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Layout 7's two indexes: cells for inline services, 8-byte slots for
// records. These tests pin their edges: an index growing at 3/4, removals
// inside a run (with wrap-around), and a key moving between a cell and a
// record slot, in place and through a rebuild.

// shardState is what the shard at so holds: cells and record slots, in
// use and in all, and whether the writer's check (as on a restart) finds
// it exactly consistent.
type shardState struct{ cells, cellsUsed, slots, slotsUsed uint64 }

func stateOf(t *testing.T, tb *table, so uint64) shardState {
	t.Helper()
	cells, recs, ok := tb.indexes(so)
	require.True(t, ok)
	n, rn := tb.counts(so)
	var seenC, seenR uint64
	require.True(t, tb.eachEntry(so, func(at slotRef, _ uint64, r record) bool {
		require.Equal(t, at.ix.cells(), r.cell, "a cell index holds cells, a slot index records")
		if r.cell {
			seenC++
		} else {
			seenR++
		}
		// Every entry is found where it is, from its home; a cell
		// within the reach of its home slot (inline.go).
		k := tb.key(r)
		found, _, ok := tb.find(so, tagOf(tb.hash(k)), k)
		require.True(t, ok, k)
		require.Equal(t, at.off(), found.off(), k)
		if r.cell {
			h := home(tagOf(tb.hash(k)), at.ix.c)
			d := (at.s + at.ix.c - h) % at.ix.c
			m := reachOf(tb.load(so + at.ix.at(h)))
			require.True(t, m == reachMax || d <= m, "%s at distance %d, reach %d", k, d, m)
		}
		return true
	}))
	require.Equal(t, n, seenC, "cells in use")
	require.Equal(t, rn, seenR, "record slots in use")
	require.LessOrEqual(t, 4*n, 3*max(cells.c, 1), "cells at most 3/4 full")
	require.LessOrEqual(t, 4*rn, 3*max(recs.c, 1), "record slots at most 3/4 full")
	return shardState{cells.c, n, recs.c, rn}
}

// recordKey is a key too long for a cell: its service is a record.
func recordKey(i int) string { return fmt.Sprintf("ns/a-service-name-too-long-for-a-cell-%d", i) }

func TestRecordSlotsGrowAtThreeQuarters(t *testing.T) {
	w, r := newAnon(t, 64<<10) // one shard
	w.SetReady(true)
	so := uint64(headerBytes)
	for i := range 100 {
		require.NoError(t, w.Put(recordKey(i), svcNodes(3, i)))
		st := stateOf(t, w.t, so)
		assert.Equal(t, uint64(i+1), st.slotsUsed)
		assert.Zero(t, st.cellsUsed, "no cell for a record")
		assert.Zero(t, st.cells, "no cell index without an inline service")
		if i+1 <= 6 {
			assert.Equal(t, uint64(8), st.slots, "6 records fit 8 slots (one cache line)")
		} else {
			assert.GreaterOrEqual(t, st.slots, uint64(16), "the 7th grows the slots")
		}
	}
	for i := range 100 {
		nodes, ans := r.Find(make([]Node, 0, 4), recordKey(i)+":http")
		require.Equal(t, Found, ans, i)
		require.Equal(t, svcNodes(3, i)[0].Nodes, nodes)
	}
	// About 8 bytes of index a record, not a 64-byte cell: the used bytes
	// are the records plus at most their slots at 3/8 load (after growth
	// headroom).
	_, bytes := liveRecords(w.t)
	st := stateOf(t, w.t, so)
	assert.LessOrEqual(t, st.slots*v4SlotBytes, uint64(100*8*8/3), "record slots for 100 records")
	assert.Equal(t, int64(headerBytes+shardHeaderBytes+bytes+st.slots*v4SlotBytes), w.Stats().UsedBytes, "the header, the records and their slots")
}

// keysWithHome finds n keys (made by mk) whose home in an index of c
// slots is h.
func keysWithHome(n int, c, h uint64, mk func(i int) string) []string {
	var keys []string
	for i := 0; len(keys) < n; i++ {
		if k := mk(i); home(tagOf(hashKey(k)), c) == h {
			keys = append(keys, k)
		}
	}
	return keys
}

// A removal inside a run shifts the later entries back, in either index,
// also across the wrap from the last slot to the first: every other key
// stays found, on the fast path and the slow one, and the shard stays
// exactly consistent (a restarting writer's check keeps it).
func TestRemovalInsideARunInEitherIndex(t *testing.T) {
	for _, c := range []struct {
		name   string
		mk     func(i int) string
		cell   bool
		filler func(i int) string
	}{
		{"record slots", func(i int) string { return fmt.Sprintf("ns/collide-with-a-long-record-key-%d", i) }, false, func(i int) string { return recordKey(i) }},
		{"cells", func(i int) string { return fmt.Sprintf("ns/c-%d", i) }, true, func(i int) string { return fmt.Sprintf("ns/f-%d", i) }},
	} {
		for _, pos := range []string{"first", "middle", "wrap"} {
			t.Run(c.name+" "+pos, func(t *testing.T) {
				w, r := newAnon(t, 64<<10)
				w.SetReady(true)
				so := uint64(headerBytes)
				// Fill so that the index has its final size, then
				// choose keys for that size.
				for i := range 8 {
					require.NoError(t, w.Put(c.filler(i), svcNodes(1, i)))
				}
				cells, recs, _ := w.t.indexes(so)
				ix := recs
				if c.cell {
					ix = cells
				}
				require.NotZero(t, ix.c)
				at := ix.c / 2
				if pos == "wrap" {
					at = ix.c - 1
				}
				keys := keysWithHome(3, ix.c, at, c.mk)
				for i, k := range keys {
					require.NoError(t, w.Put(k, svcNodes(1+i, i)))
				}
				cells2, recs2, _ := w.t.indexes(so)
				require.Equal(t, ix.c, map[bool]uint64{true: cells2.c, false: recs2.c}[c.cell], "no growth meanwhile")
				for _, k := range keys {
					require.Equal(t, c.cell, inlineAt(t, w.t, k), k)
				}
				gone := map[string]int{"first": 0, "middle": 1, "wrap": 0}[pos]
				require.True(t, w.Delete(keys[gone]))
				stateOf(t, w.t, so)
				for i, k := range keys {
					nodes, ans := r.Find(make([]Node, 0, 8), k+":http")
					_, ref := findReference(r, make([]Node, 0, 8), k+":http")
					if i == gone {
						assert.Equal(t, Unknown, ans, k)
						assert.Equal(t, Unknown, ref, k)
						continue
					}
					require.Equal(t, Found, ans, k)
					require.Equal(t, Found, ref, k)
					assert.Equal(t, svcNodes(1+i, i)[0].Nodes, nodes, k)
				}
				for i := range 8 {
					_, ans := r.Find(make([]Node, 0, 8), c.filler(i)+":http")
					require.Equal(t, Found, ans, c.filler(i))
				}
				n, rn := w.t.counts(so)
				entries, _ := w.t.check(so)
				assert.Equal(t, n+rn, entries, "the writer's check keeps the shard")
			})
		}
	}
}

// A key moving between a cell and a record slot leaves its old slot in
// the same write window: in place when the other index has room, through
// a rebuild when it must grow. Either way it is in exactly one index.
func TestKeyMovesBetweenCellAndRecordSlot(t *testing.T) {
	inline := []Port{{Name: "http", Nodes: v4Nodes(2, 80, 1)}}
	record := []Port{{Name: "http", Nodes: v4Nodes(2, 80, 1)}, {Name: "https", Nodes: v4Nodes(2, 443, 1)}}
	for _, records := range []int{0, 5, 6, 30} { // 6 records fill 8 slots: the move grows them
		t.Run(fmt.Sprint(records, " records"), func(t *testing.T) {
			w, r := newAnon(t, 64<<10)
			w.SetReady(true)
			so := uint64(headerBytes)
			for i := range records {
				require.NoError(t, w.Put(recordKey(i), svcNodes(2, i)))
			}
			for i := range 5 {
				require.NoError(t, w.Put(fmt.Sprintf("ns/in-%d", i), svcNodes(2, i)))
			}
			const key = "ns/mover"
			for step, ports := range [][]Port{inline, record, inline, record, nil} {
				before := stateOf(t, w.t, so)
				compactions := w.Stats().Compactions
				if ports == nil {
					require.True(t, w.Delete(key))
				} else {
					require.NoError(t, w.Put(key, ports))
					assert.Equal(t, step%2 == 0, inlineAt(t, w.t, key), "step %d", step)
				}
				after := stateOf(t, w.t, so)
				assert.Equal(t, uint64(records), after.slotsUsed-map[bool]uint64{true: 1, false: 0}[step%2 == 1 && ports != nil], "step %d", step)
				assert.Equal(t, uint64(5), after.cellsUsed-map[bool]uint64{true: 1, false: 0}[step%2 == 0 && ports != nil], "step %d", step)
				grew := after.slots > before.slots || after.cells > before.cells
				assert.Equal(t, grew, w.Stats().Compactions > compactions, "step %d: a rebuild exactly when an index grows", step)
				for _, p := range ports {
					nodes, ans := r.Find(make([]Node, 0, 8), key+":"+p.Name)
					require.Equal(t, Found, ans, "step %d", step)
					assert.Equal(t, p.Nodes, nodes)
				}
				got, ok := r.Get(key)
				assert.Equal(t, ports != nil, ok)
				assert.Equal(t, ports, got)
				for i := range records {
					_, ans := r.Find(make([]Node, 0, 8), recordKey(i)+":http")
					require.Equal(t, Found, ans)
				}
				for i := range 5 {
					_, ans := r.Find(make([]Node, 0, 8), fmt.Sprintf("ns/in-%d:http", i))
					require.Equal(t, Found, ans)
				}
			}
			assert.Equal(t, records+5, w.Stats().Entries)
		})
	}
}

// The reader never trusts the record slots' geometry or entries: a slot
// count past the shard, an inline entry in a record slot, a record
// pointer in a cell, a pointer into the indexes or past the shard end
// answer Unknown (never a wrong node, never a fault), and a writer
// restarting on such a shard empties it.
func TestReaderBoundsRecordSlots(t *testing.T) {
	for _, c := range []struct {
		name   string
		damage func(tb *table, so uint64, recSlot, cellSlot uint64)
	}{
		{"slot count past the shard", func(tb *table, so, _, _ uint64) {
			cells, _, _ := tb.indexes(so)
			tb.store(so+sRCap, (tb.shardBytes-cells.end())/8+1)
		}},
		{"slot count huge", func(tb *table, so, _, _ uint64) { tb.store(so+sRCap, ^uint64(0)) }},
		{"slot count wraps", func(tb *table, so, _, _ uint64) { tb.store(so+sRCap, 1<<61) }},
		{"cell count at the most, slots beyond", func(tb *table, so, _, _ uint64) {
			tb.store(so+sCap, tb.idxCap())
			tb.store(so+sRCap, 1)
		}},
		{"inline entry in a record slot", func(tb *table, so, rs, _ uint64) {
			tb.store(rs, tb.load(rs)|inlineBit|0x0a0a04)
		}},
		{"record pointer in a cell", func(tb *table, so, rs, cs uint64) {
			tb.store(cs, tb.load(cs)&^0xffffffff|tb.load(rs)&0x7fffffff)
		}},
		{"pointer into the indexes", func(tb *table, so, rs, _ uint64) {
			tb.store(rs, tb.load(rs)&^0xffffffff|shardHeaderBytes/8)
		}},
		{"pointer past the shard", func(tb *table, so, rs, _ uint64) {
			tb.store(rs, tb.load(rs)&^0xffffffff|(tb.shardBytes-8)/8)
		}},
		{"no empty record slot", func(tb *table, so, _, _ uint64) {
			_, recs, _ := tb.indexes(so)
			for s := range recs.c {
				if tb.load(so+recs.at(s)) == 0 {
					tb.store(so+recs.at(s), 0xdead00000000|1)
				}
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := tablePath(t)
			w, err := Create(path, 64<<10)
			require.NoError(t, err)
			w.SetReady(true)
			so := uint64(headerBytes)
			long := recordKey(1)
			require.NoError(t, w.Put(long, svcNodes(3, 1)))
			require.NoError(t, w.Put("ns/short", svcNodes(3, 2)))
			require.NoError(t, w.Put(recordKey(2), svcNodes(2, 3)))
			rs, _, _ := w.t.find(so, tagOf(hashKey(long)), long)
			cs, _, _ := w.t.find(so, tagOf(hashKey("ns/short")), "ns/short")
			require.False(t, rs.ix.cells())
			require.True(t, cs.ix.cells())
			c.damage(w.t, so, so+rs.off(), so+cs.off())
			r, err := Open(path)
			require.NoError(t, err)
			for _, q := range []string{long + ":http", "ns/short:http", recordKey(2) + ":http", "ns/none:http", recordKey(3) + ":http"} {
				nodes, ans := r.Find(make([]Node, 0, 8), q)
				if ans == Found { // an entry the damage left intact answers its own nodes
					switch q {
					case long + ":http":
						assert.Equal(t, svcNodes(3, 1)[0].Nodes, nodes, q)
					case "ns/short:http":
						assert.Equal(t, svcNodes(3, 2)[0].Nodes, nodes, q)
					case recordKey(2) + ":http":
						assert.Equal(t, svcNodes(2, 3)[0].Nodes, nodes, q)
					default:
						t.Errorf("%s found %v", q, nodes)
					}
				}
				_, _ = r.Get(strings.TrimSuffix(q, ":http"))
			}
			r.Range(func(string, []Port) bool { return true })
			r.KeysWithHash(hashKey(long), func(string) {})
			require.NoError(t, r.Close())
			require.NoError(t, w.Close())
			w, err = Create(path, 64<<10)
			require.NoError(t, err)
			defer w.Close()
			assert.Equal(t, 0, w.Stats().Entries, "a writer restarting on the damaged shard empties it")
		})
	}
}

// A key of 32 bytes or more is in no cell (a cell's text holds the key, a
// colon and the port name), so lookups of it skip the cells; one of 31
// bytes with an unnamed port fills a cell's text exactly.
func TestKeyLengthDecidesTheCellsAreSkipped(t *testing.T) {
	w, r := newAnon(t, 64<<10)
	w.SetReady(true)
	k31, k32 := "ns/"+strings.Repeat("a", 28), "ns/"+strings.Repeat("b", 29)
	require.Len(t, k31, 31)
	require.Len(t, k32, 32)
	one := []Port{{Name: "", Nodes: v4Nodes(2, 80, 1)}}
	require.NoError(t, w.Put(k31, one))
	require.NoError(t, w.Put(k32, one))
	require.NoError(t, w.Put(k32+"x", []Port{{Name: "h", Nodes: v4Nodes(3, 80, 1)}}))
	assert.True(t, inlineAt(t, w.t, k31))
	assert.False(t, inlineAt(t, w.t, k32))
	for _, q := range []string{k31 + ":", k32 + ":", k31 + ":80", k32 + ":80", k32 + "x:h", k32 + "x:80"} {
		nodes, ans := r.Find(make([]Node, 0, 8), q)
		_, ref := findReference(r, make([]Node, 0, 8), q)
		require.Equal(t, Found, ans, q)
		require.Equal(t, Found, ref, q)
		assert.NotEmpty(t, nodes, q)
	}
	_, ans := r.Find(make([]Node, 0, 8), k32+"y:h")
	assert.Equal(t, Unknown, ans)
}

// A reach too short (a damaged table) never gives a wrong answer: the
// lookup finds nothing (or, on the slow path, the key), and a writer
// restarting on the shard empties it.
func TestReachTooShortIsCaught(t *testing.T) {
	path := tablePath(t)
	w, err := Create(path, 64<<10)
	require.NoError(t, err)
	w.SetReady(true)
	so := uint64(headerBytes)
	for i := range 8 {
		require.NoError(t, w.Put(fmt.Sprintf("ns/f-%d", i), svcNodes(1, i)))
	}
	cells, _, _ := w.t.indexes(so)
	keys := keysWithHome(3, cells.c, 1, func(i int) string { return fmt.Sprintf("ns/r-%d", i) })
	for i, k := range keys {
		require.NoError(t, w.Put(k, svcNodes(1+i, i)))
	}
	cells, _, _ = w.t.indexes(so)
	require.Equal(t, uint64(1), home(tagOf(hashKey(keys[2])), cells.c), "no growth meanwhile")
	st := stateOf(t, w.t, so)
	at, _, _ := w.t.find(so, tagOf(hashKey(keys[2])), keys[2])
	require.NotEqual(t, uint64(1), at.s, "the third key of home 1 is not at home")
	hp := so + cells.at(1)
	w.t.store(hp, w.t.load(hp)&^reachMask) // reach 0: the displaced keys are out of reach
	r, err := Open(path)
	require.NoError(t, err)
	for i, k := range keys {
		nodes, ans := r.Find(make([]Node, 0, 8), k+":http")
		if ans == Found {
			assert.Equal(t, svcNodes(1+i, i)[0].Nodes, nodes, k)
		} else {
			assert.Equal(t, Unknown, ans, k)
		}
	}
	require.NoError(t, r.Close())
	require.NoError(t, w.Close())
	w, err = Create(path, 64<<10)
	require.NoError(t, err)
	defer w.Close()
	n, _ := w.t.counts(so)
	assert.Less(t, n, st.cellsUsed, "the writer's check empties the shard")
	assert.Zero(t, n)
}
