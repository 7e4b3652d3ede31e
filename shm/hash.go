package shm

import (
	"encoding/binary"
	"math/bits"
	"unsafe"
)

// hashKey hashes a key for the table: the shard, the index slot and the
// tag all come from it, so it is part of the layout (changing it means
// bumping layoutVersion). It is wyhash's construction (a 64x64→128-bit
// multiply folded to 64 bits) with fixed secrets: the same in every
// process, portable Go the compiler keeps in registers, and a few
// nanoseconds for a key of a few words, where calling out to xxhash's
// assembly cost several times that.
func hashKey(key string) uint64 {
	const (
		s0 = 0xa0761d6478bd642f
		s1 = 0xe7037ed1a0b428db
		s2 = 0x8ebc6af09c88c6e3
		// seed0 is mix(s0^s2, s1): wyhash's seed scrambling, precomputed.
		seed0 = 0x55ba897d2af3577c
	)
	k := unsafe.Slice(unsafe.StringData(key), len(key)) // read only
	p, n := k, uint64(len(key))
	seed := uint64(seed0)
	var a, b uint64
	switch {
	case n > 16:
		for len(p) > 16 {
			seed = mix(le64(p)^s1, le64(p[8:])^seed)
			p = p[16:]
		}
		// The last 16 bytes of the key, overlapping what the loop read.
		a, b = le64(k[n-16:]), le64(k[n-8:])
	case n >= 4:
		q := n >> 3 << 2 // 0 or 4: two overlapping 4-byte reads each end
		a = le32(p)<<32 | le32(p[q:])
		b = le32(p[n-4:])<<32 | le32(p[n-4-q:])
	case n > 0:
		a = uint64(p[0])<<16 | uint64(p[n>>1])<<8 | uint64(p[n-1])
	}
	hi, lo := bits.Mul64(a^s1, b^seed)
	return mix(lo^s0^n, hi^s1)
}

func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

func le64(p []byte) uint64 { return binary.LittleEndian.Uint64(p) }

func le32(p []byte) uint64 { return uint64(binary.LittleEndian.Uint32(p)) }
