package shm

import (
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// names interns DNS names (FQDN nodes) for one Reader, so that Lookup
// hands out the same immutable Go string every time without allocating.
//
// It is an insert-only open-addressing hash set whose slots are atomic
// pointers: a hit is a few atomic loads and a byte comparison, with no lock
// and no write anywhere. A miss takes a mutex, inserts, and when the set is
// half full copies it into one twice as large (amortised O(1) per name, so a
// churn of distinct names costs no more than the allocation of each name).
// Past maxNames it starts afresh, so a long-lived reader stays bounded.
type names struct {
	tab atomic.Pointer[nameTable]
	mu  sync.Mutex // serialises inserts
}

type nameTable struct {
	slots []atomic.Pointer[nameEntry] // power of two, at most half full
	n     int                         // entries; guarded by names.mu
}

type nameEntry struct {
	h uint64
	s string
}

const maxNames = 1 << 16

// interner carries what a miss needs to check that the bytes it read were
// consistent before keeping them.
type interner struct {
	n       *names
	t       *table
	so, seq uint64
}

// get returns the interned copy of name (1..255 bytes read from a window).
func (in *interner) get(name []byte) string {
	h := xxhash.Sum64(name)
	if s, ok := in.n.tab.Load().find(h, name); ok {
		return s
	}
	s := string(name)
	// Keep it only if no write overlapped the read so far: a torn name is
	// returned (and then discarded by the caller's retry) but never kept.
	if in.t.load(in.so+sSeq) == in.seq {
		in.n.add(h, s)
	}
	return s
}

func (t *nameTable) find(h uint64, b []byte) (string, bool) {
	if t == nil {
		return "", false
	}
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		e := t.slots[i].Load()
		if e == nil {
			return "", false
		}
		if e.h == h && e.s == string(b) { // compared in place, no allocation
			return e.s, true
		}
	}
}

func (t *nameTable) insert(e *nameEntry) {
	mask := uint64(len(t.slots) - 1)
	i := e.h & mask
	for t.slots[i].Load() != nil {
		i = (i + 1) & mask
	}
	t.slots[i].Store(e)
	t.n++
}

func (n *names) add(h uint64, s string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	t := n.tab.Load()
	if _, ok := t.find(h, []byte(s)); ok {
		return
	}
	if t == nil || t.n >= maxNames {
		t = &nameTable{slots: make([]atomic.Pointer[nameEntry], 64)}
	} else if 2*(t.n+1) > len(t.slots) {
		bigger := &nameTable{slots: make([]atomic.Pointer[nameEntry], 2*len(t.slots))}
		for i := range t.slots {
			if e := t.slots[i].Load(); e != nil {
				bigger.insert(e)
			}
		}
		t = bigger
	}
	t.insert(&nameEntry{h: h, s: s})
	n.tab.Store(t) // publishes a new table; a no-op swap otherwise
}
