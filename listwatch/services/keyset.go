package services

import (
	"slices"
	"strings"

	"github.com/kdisc/kdisc/internal/jsonscan"
)

// keySet is the services a list of Endpoints found, to delete the others
// at its end. The keys are copied into one arena, about their own length
// and 8 bytes a service (a map of strings would cost an allocation and a
// slot each), and sorted once, when the list is complete (seal).
type keySet struct {
	b     []byte
	spans []uint64 // offset<<32 | length of each key in b
}

// add records key; on a nil keySet, nothing. A key listed twice is
// harmless.
func (k *keySet) add(key string) {
	if k == nil {
		return
	}
	k.spans = append(k.spans, uint64(len(k.b))<<32|uint64(len(key)))
	k.b = append(k.b, key...)
}

func (k *keySet) at(span uint64) string {
	off, n := span>>32, span&(1<<32-1)
	return jsonscan.Borrow(k.b[off : off+n]) // a view: b's bytes never change, only grow
}

// seal sorts the keys: has works after it.
func (k *keySet) seal() {
	slices.SortFunc(k.spans, func(x, y uint64) int { return strings.Compare(k.at(x), k.at(y)) })
}

// has reports whether key was added (after seal).
func (k *keySet) has(key string) bool {
	_, ok := slices.BinarySearchFunc(k.spans, key, func(span uint64, key string) int { return strings.Compare(k.at(span), key) })
	return ok
}
