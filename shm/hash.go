package shm

import (
	"encoding/binary"
	"math/bits"
	"unsafe"

	"github.com/cespare/xxhash/v2"
)

// hashKey hashes a key for a table of layout 7 (and the pre-release 6): the shard, the index slot
// and the tag all come from it, so it is part of the layout (changing it
// means bumping layoutVersion), and it is what Changes reports (KeyHash).
// It is wyhash's construction (multiply two 64-bit words into 128 bits
// and fold the halves) over the key's words (hashAny). The usual key, of
// 16 to 32 bytes, is hashed here, small enough for Find to inline: three
// multiplies and no call, where xxhash.Sum64 cost Find 81 instructions
// through its assembly's ABI wrapper. The same in every process and on
// every platform (little-endian loads, no seed).
func hashKey(key string) uint64 {
	n := uint64(len(key))
	if n-16 > 16 {
		return hashAny(key)
	}
	p := unsafe.StringData(key)
	seed := hashMix(le64at(p, 0)^hashP1, le64at(p, 8)^hashP0^n)
	return hashMix(hashP1^n, hashMix(le64at(p, n-16)^hashP1, le64at(p, n-8)^seed)^hashP2)
}

// hashAny is hashKey for a key of any length: a 16-byte block at a time
// (at least one for 16 bytes or more) folded into the seed, then the last
// 16 bytes (or what there is) folded with the seed and the length.
func hashAny(key string) uint64 {
	n := uint64(len(key))
	p := unsafe.StringData(key)
	seed := hashP0 ^ n
	var a, b uint64
	switch {
	case n >= 16:
		for i := uint64(0); i == 0 || i+16 < n; i += 16 {
			seed = hashMix(le64at(p, i)^hashP1, le64at(p, i+8)^seed)
		}
		a, b = le64at(p, n-16), le64at(p, n-8)
	case n >= 8:
		a, b = le64at(p, 0), le64at(p, n-8)
	case n >= 4:
		s := unsafe.Slice(p, n)
		a, b = uint64(binary.LittleEndian.Uint32(s)), uint64(binary.LittleEndian.Uint32(s[n-4:]))
	case n > 0:
		s := unsafe.Slice(p, n)
		a = uint64(s[0])<<16 | uint64(s[n/2])<<8 | uint64(s[n-1])
	}
	return hashMix(hashP1^n, hashMix(a^hashP1, b^seed)^hashP2)
}

// wyhash's constants.
const (
	hashP0 = 0xa0761d6478bd642f
	hashP1 = 0xe7037ed1a0b428db
	hashP2 = 0x8ebc6af09c88c6e3
)

func hashMix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// hashV4 is the hash of layout 4 (and 3): xxhash.
func hashV4(key string) uint64 { return xxhash.Sum64String(key) }

// hash is the hash of key in this table's layout: hashKey from layout 7
// on, xxhash in a v4 table.
func (t *table) hash(key string) uint64 {
	if t.version < 6 {
		return hashV4(key)
	}
	return hashKey(key)
}
