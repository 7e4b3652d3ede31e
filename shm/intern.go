package shm

import (
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// names interns DNS names (FQDN nodes) for one Reader, so that Lookup
// hands out the same immutable Go string every time without allocating.
// Readers load an immutable map through an atomic pointer; a miss copies
// the map with the new name added (names change rarely: copy-on-write
// keeps the hit path free of locks and of writes to shared memory).
type names struct {
	m  atomic.Pointer[map[uint64]string]
	mu sync.Mutex // serialises copy-on-write
}

// maxNames bounds the map: when reached it starts afresh, so a churn of
// names cannot grow a long-lived reader without limit.
const maxNames = 1 << 16

// interner carries what a miss needs to check that the bytes it read were
// consistent before keeping them.
type interner struct {
	n       *names
	t       *table
	so, seq uint64
}

// get reads an l-byte (1..255) name at the cursor.
func (in *interner) get(c *cursor, l uint64) string {
	var buf [MaxNameLen]byte
	b := buf[:l]
	c.copyTo(b)
	h := xxhash.Sum64(b)
	if m := in.n.m.Load(); m != nil {
		if s, ok := (*m)[h]; ok && s == string(b) { // no allocation: compared in place
			return s
		}
	}
	s := string(b)
	// Keep it only if no write overlapped the read: a torn name is
	// returned (and then discarded by the caller's retry) but never kept.
	if !c.bad && in.t.load(in.so+sSeq) == in.seq {
		in.n.add(h, s)
	}
	return s
}

func (n *names) add(h uint64, s string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	old := n.m.Load()
	size := 1
	if old != nil && len(*old) < maxNames {
		size += len(*old)
	}
	m := make(map[uint64]string, size)
	if old != nil && len(*old) < maxNames {
		for k, v := range *old {
			m[k] = v
		}
	}
	m[h] = s
	n.m.Store(&m)
}
