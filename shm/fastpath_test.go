package shm

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// findReference answers a query through the slow path alone: the general
// split and one optimistic pass per try, never the inline fast path.
func findReference(r *Reader, dst []Node, service string) ([]Node, Answer) {
	return r.findQuery(r.table(), dst, service)
}

// Find's inline path (the colon found in the query's last word, the key
// compared a word at a time with an overlapping last load, the first
// port's IPv4 nodes decoded in place, a cell's 1 to 4 nodes written from
// registers) answers exactly as the slow path for keys of every length
// around the word boundaries and a cell's 32 bytes of text, port names of
// 1 to 12 bytes, names that are numbers (also a number that makes the
// query longer than any cell's text, for a service held in a cell), ports
// after the first, other formats, empty and scaled-to-zero services,
// buffers too small, and misses that differ from a stored key in one byte
// anywhere.
func TestFindFastPathAgreesWithSlowPath(t *testing.T) {
	w, r := newAnon(t, 1<<20)
	w.SetReady(true)
	var keys []string
	for n := 3; n <= 40; n++ {
		k := "a/" + strings.Repeat("k", n-2)
		keys = append(keys, k[:n-1]+string(rune('a'+n%26)))
	}
	ports := func(i int) []Port {
		v4 := []Node{ip("10.0.0.1", 80, 1), ip("10.0.0.2", 80, 1), ip("10.0.0.3", 80, 1)}
		switch i % 8 {
		case 0:
			return []Port{{Name: "http", Nodes: v4}}
		case 1:
			return []Port{{Name: "8080", Nodes: v4}, {Name: "x", Nodes: v4[:1]}}
		case 2:
			return []Port{{Name: "metrics", Nodes: v4[:2]}, {Name: "longer-port-name", Nodes: v4}, {Name: "80", Nodes: v4[:1]}}
		case 3:
			return []Port{{Name: "v6", Nodes: []Node{ip("fd00::1", 443, 2)}}, {Name: "dns", Nodes: []Node{fqdn("a.example.com", 53, 1)}}}
		case 4:
			return []Port{{Name: "http"}, {Name: "h", Nodes: v4}}
		case 5: // four nodes: a full cell when the key is short enough
			return []Port{{Name: "http", Nodes: []Node{ip("10.0.0.1", 12345, 3), ip("10.0.0.2", 12345, 3), ip("10.0.0.3", 12345, 3), ip("10.0.0.4", 12345, 3)}}}
		case 6: // one port, no node: a cell that answers Empty
			return []Port{{Name: "http", Number: 8080}}
		}
		return nil
	}
	for i, k := range keys {
		require.NoError(t, w.Put(k, ports(i)))
	}
	names := []string{"http", "8080", "80", "12345", "x", "h", "metrics", "longer-port-name", "v6", "dns", "nope", "1234567", "12345678", "", "8", "a:b"}
	var queries []string
	for _, k := range keys {
		for _, p := range names {
			queries = append(queries, k+":"+p)
		}
		for j := range len(k) { // one byte off, anywhere in the key
			b := []byte(k)
			b[j] ^= 1
			queries = append(queries, string(b)+":http")
		}
		queries = append(queries, k, k+"x:http", k[:len(k)-1]+":http", "\x00"+k+":http")
	}
	queries = append(queries, ":http", "a:", "", ":", "abcdefg:", ":abcdefg", "a/b:http")
	for _, room := range []int{0, 1, 2, 3, 8} {
		for _, q := range queries {
			got, ga := r.Find(make([]Node, 1, 1+room), q)
			want, wa := findReference(r, make([]Node, 1, 1+room), q)
			require.Equal(t, wa, ga, "%q, room %d", q, room)
			require.Equal(t, fmt.Sprint(want), fmt.Sprint(got), "%q, room %d", q, room)
		}
	}
}

// lastColon finds the last ':' in a word, exactly: bytes next to a colon
// (';' is ':'+1, '9' is ':'-1) are never taken for one.
func TestLastColon(t *testing.T) {
	for _, c := range []struct {
		s    string
		want uint
	}{
		{"abcdefgh", 8}, {"abc:efgh", 3}, {"a:c:efgh", 3}, {":bcdefgh", 0}, {"abcdefg:", 7},
		{";;;;;;;;", 8}, {"99999999", 8}, {"::::;;;;", 3}, {":;;;;;;;", 0}, {"\x00\x00\x00\x00:\xff\xff\xff", 4},
	} {
		got := lastColon(le64s(c.s))
		if c.want == 8 {
			assert.GreaterOrEqual(t, got, uint(8), "%q", c.s)
		} else {
			assert.Equal(t, c.want, got, "%q", c.s)
		}
	}
}

// A tag collision (two keys whose hashes share the shard and the low 32
// bits) is found by comparing the keys: an index entry of key b's tag that
// leads to key a's record, a and b of the same length and one byte apart
// anywhere, finds nothing for b, on the fast path as on the slow one.
func TestFindTagCollisionComparesTheKey(t *testing.T) {
	for n := 3; n <= 40; n++ {
		for j := 0; j < n; j++ {
			w, r := newAnon(t, 64<<10)
			w.SetReady(true)
			a := []byte("a/" + strings.Repeat("k", n-2))
			require.NoError(t, w.Put(string(a), []Port{{Name: "http", Nodes: []Node{ip("10.0.0.1", 80, 1)}}}))
			b := append([]byte(nil), a...)
			b[j] ^= 0x20
			ha, hb := hashKey(string(a)), hashKey(string(b))
			soA, soB := w.t.shardOf(ha), w.t.shardOf(hb)
			_, rec, res := w.t.lookupKey(soA, tagOf(ha), string(a))
			require.Equal(t, resFound, res)
			if soA != soB {
				continue // one shard in a 64 KiB table: never
			}
			// b's entry, where its probe starts, leads to a's record, or
			// is a copy of a's inline cell under b's tag.
			cells, recs, _ := w.t.indexes(soB)
			ix := recs
			if rec.cell {
				ix = cells
			}
			bs := soB + ix.at(home(tagOf(hb), ix.c))
			require.Equal(t, n+len(":http") <= cellTextBytes, rec.cell, "inline exactly when key:port fits a cell")
			if rec.cell {
				for k := uint64(8); k < cellBytes; k += 8 {
					w.t.store(bs+k, w.t.load(rec.off+k))
				}
				w.t.store(bs, tagOf(hb)<<32|uint64(uint32(w.t.load(rec.off))))
			} else {
				w.t.store(bs, tagOf(hb)<<32|(rec.off-soB)/8)
			}
			q := string(b) + ":http"
			_, ga := r.Find(make([]Node, 0, 4), q)
			_, wa := findReference(r, make([]Node, 0, 4), q)
			require.Equal(t, Unknown, wa, "%q", q)
			require.Equal(t, wa, ga, "%q", q)
			r.Close()
			w.Close()
		}
	}
}

// KeysWithHash walks the key's probe run (the one probe loop) rather than
// the whole index: every stored key is found from its hash, wherever its
// run wraps or however long it is, details are not keys, and a deleted
// key is gone.
func TestKeysWithHashFindsEveryKey(t *testing.T) {
	w, r := newAnon(t, 64<<10) // one shard: long runs, some wrapping
	var keys []string
	for i := range 250 { // 500 entries: 672 64-byte cells of the 959 the shard has room for
		k := fmt.Sprintf("ns/svc-%d", i)
		require.NoError(t, w.Put(k, []Port{{Name: "http", Nodes: []Node{ip("10.0.0.1", 80, 1)}}}))
		require.NoError(t, w.PutDetail(k, []byte(`[]`)))
		keys = append(keys, k)
	}
	for i, k := range keys {
		if i%3 == 0 {
			require.True(t, w.Delete(k))
		}
	}
	for i, k := range keys {
		var got []string
		r.KeysWithHash(KeyHash(k), func(key string) { got = append(got, key) })
		if i%3 == 0 {
			assert.Empty(t, got, k)
		} else {
			assert.Equal(t, []string{k}, got, k)
		}
	}
}

// A service held in a cell, asked for by its port's number rather than
// its port's name, is found even when the query is longer than any
// cell's text (32 bytes): a key of 27 bytes and "http" fill a cell, and
// "key:12345" is 33 bytes. The fast path must not take such a query for
// one of a record.
func TestFindByNumberLongerThanACell(t *testing.T) {
	w, r := newAnon(t, 1<<20)
	w.SetReady(true)
	nodes := []Node{ip("10.0.0.1", 12345, 1), ip("10.0.0.2", 12345, 1)}
	for n := 20; n <= 34; n++ {
		k := "a/" + strings.Repeat("k", n-2)
		require.NoError(t, w.Put(k, []Port{{Name: "http", Nodes: nodes}}))
		for _, q := range []string{k + ":12345", k + ":http", k + ":1234", k + ":80"} {
			got, ga := r.Find(nil, q)
			want, wa := findReference(r, nil, q)
			require.Equal(t, wa, ga, "%q", q)
			require.Equal(t, fmt.Sprint(want), fmt.Sprint(got), "%q", q)
		}
		got, ga := r.Find(nil, k+":12345")
		require.Equal(t, Found, ga, "%q", k+":12345")
		require.Len(t, got, 2)
	}
}
