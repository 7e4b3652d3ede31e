package shm

import (
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"
)

// Layout constants. Changing any byte position below means bumping
// layoutVersion: a writer then replaces (and retires) an older file instead
// of reusing it (copying its entries when it can read it), and a reader
// refuses a version it cannot read.
const (
	magic         = 0x4d4853435349444b // the file starts with the bytes "KDISCSHM"
	layoutVersion = 7                  // 2: hash index per shard, word-aligned ports with fixed-width IP bodies; 3: xxhash keys; 4: liveness, staleness and a change log in a 4 KiB header; 5 (pre-release, never read): big values (heads and pieces), a port with no node keeps its number; 6 (pre-release, never read): v5 with 64-byte index cells that hold a small service inline, and a wyhash-style hash; 7: v6 with two indexes per shard, cells for inline services and 8-byte slots for records
	// oldestRead is the oldest layout this build reads: v7 reads v4
	// tables (8-byte index slots, no inline cells, no big values), so
	// proxies can be upgraded first.
	oldestRead = 4
	// preRelease and preRelease6 are layouts no release wrote (v5 before
	// its index cells became 64 bytes, v6 before its records got 8-byte
	// slots again): refused, never misread.
	preRelease  = 5
	preRelease6 = 6

	headerBytes      = 4096 // the file header (one page), then the shards
	shardHeaderBytes = 64   // one cache line: a shard's seqlock never shares a line with another shard's
	targetShardBytes = 64 << 10
	cellBytes        = 64 // a cell (the index of inline services) from layout 7 on: one cache line
	v4SlotBytes      = 8  // an index slot in a v4 table
	maxShards        = 1024

	// MinSize and MaxSize bound the size of a table (shared_size).
	MinSize = 16 << 10
	MaxSize = 1 << 40
)

// Header words (byte offsets from the start of the file). The first cache
// line holds what every lookup reads and the writer rarely changes; the
// words the writer keeps changing (heartbeat, change count) live on other
// lines, so that they never invalidate the line readers hit.
const (
	// Line 0: read by every lookup, written on (re)start, ready, retire.
	hMagic      = 0
	hVersion    = 8
	hGeneration = 16 // changes every time a writer (re)starts on the file
	hSize       = 24 // total bytes of the file
	hShards     = 32 // geometry: number of shards
	hShardBytes = 40 // geometry: bytes per shard
	hReady      = 48 // 1 once the writer finished its first full list
	hRetired    = 56 // 1 once a new file replaced this one at the path

	// Line 1: liveness and staleness, read off the lookup path.
	hFullErrors = 64 // Puts refused for lack of space (written by the writer only)
	hWriterPID  = 72 // informational
	hSynced     = 80 // unix nanoseconds of the last successful list or watch event (SetSynced)
	hHeartbeat  = 88 // unix nanoseconds, renewed every heartbeatEvery while a writer runs

	// Line 2 on: the change log. hChanges counts changes (Put, Delete)
	// since the file was made; change n stored the key hash at slot
	// n % changeSlots of the ring. Readers poll the count and read the
	// hashes of what changed since they last looked.
	hChanges    = 128
	hChangeRing = 256
	changeSlots = (headerBytes - hChangeRing) / 8
)

// changeAt is the offset of the ring slot of change n.
func changeAt(n uint64) uint64 { return hChangeRing + n%changeSlots*8 }

// Shard header words (byte offsets from the start of the shard).
const (
	sSeq     = 0  // seqlock: odd while the writer changes the shard
	sCount   = 8  // number of cells in use (v4: of index entries)
	sDataLow = 16 // records occupy [dataLow, shardBytes)
	sDead    = 24 // bytes in [dataLow, shardBytes) held by no live record
	sCap     = 32 // cells (v4: index slots; 0 for an empty shard)
	sRCap    = 40 // record slots, after the cells (layout 7; none in v4)
	sRCount  = 48 // record slots in use (layout 7)
)

// geometry is how a table of a given size is cut into shards. It is a pure
// function of the size, so a reader can check the header against it.
type geometry struct {
	size       uint64
	shards     uint64
	shardBytes uint64
	version    uint64 // the layout version of the file (layoutVersion for a new one)
}

// slotBytes is the size of a slot of a shard's first index: a 64-byte
// cell from layout 7 on, a word (a record slot) in v4.
func (g geometry) slotBytes() uint64 {
	if g.version >= 7 {
		return cellBytes
	}
	return v4SlotBytes
}

// geometryFor picks about one shard per 64 KiB (at most 1024 shards): small
// enough that compacting a shard is quick and keeps few readers waiting,
// large enough that hash imbalance between shards wastes little space and a
// big service (thousands of nodes) still fits in one shard.
func geometryFor(size int64) (geometry, error) {
	if size < MinSize || size > MaxSize {
		return geometry{}, fmt.Errorf("shm: table size %d bytes out of range [%d, %d]", size, MinSize, MaxSize)
	}
	n := uint64(size) / targetShardBytes
	n = max(1, min(n, maxShards))
	sb := (uint64(size) - headerBytes) / n &^ 63
	return geometry{size: uint64(size), shards: n, shardBytes: sb, version: layoutVersion}, nil
}

// table is one mapping of a table file (or anonymous memory). Every access
// to the mapped words goes through sync/atomic: the writer stores, readers
// load. On amd64 an atomic load is a plain MOV, so this costs readers
// nothing, and it makes the seqlock protocol valid under the Go memory model
// (and on weakly-ordered CPUs) rather than relying on x86 ordering.
//
// Nothing outside this package ever receives a pointer into the mapping:
// readers copy bytes out, so unmapping or rewriting never changes a value a
// caller holds.
type table struct {
	mem  []byte         // as returned by mmap
	base unsafe.Pointer // &mem[0]
	geometry
	refs atomic.Int64 // owners (a writer, readers); blanked at zero
	// A reader's table keeps its file open, to ask whether a writer holds
	// the file's lock (f), and to tell the file from another at the same
	// path (fi). f is nil for anonymous memory and for the writer's own
	// table; fi is nil for anonymous memory.
	f      *os.File
	fi     os.FileInfo
	writer bool // the writer's own mapping (and its in-process readers')
	// slotSize is the size of a slot of the first index
	// (geometry.slotBytes); fastSlots bounds the cell count Find's fast
	// path accepts: idxCap for a table of 64-byte cells, 0 (never) for a
	// v4 table, read on the slow path.
	slotSize, fastSlots uint64
	// fastRecSlots bounds the record slot count Find's fast path accepts:
	// as many as fit in a shard.
	fastRecSlots uint64
}

func newTable(mem []byte, g geometry) *table {
	t := &table{mem: mem, base: unsafe.Pointer(unsafe.SliceData(mem)), geometry: g}
	t.slotSize = g.slotBytes()
	if t.slotSize == cellBytes && g.shardBytes > shardHeaderBytes {
		t.fastSlots = t.idxCap()
		t.fastRecSlots = (g.shardBytes - shardHeaderBytes) / v4SlotBytes
	}
	t.refs.Store(1)
	return t
}

func (t *table) word(off uint64) *uint64 { return (*uint64)(unsafe.Add(t.base, off)) }
func (t *table) load(off uint64) uint64  { return atomic.LoadUint64(t.word(off)) }
func (t *table) store(off, v uint64)     { atomic.StoreUint64(t.word(off), v) }

// at is the address of byte off of the mapping, for the readers' hot
// loops: loading through it with ld keeps the address in a register,
// where t.load re-reads t.base after every atomic load.
func (t *table) at(off uint64) unsafe.Pointer { return unsafe.Add(t.base, off) }

// offset is the byte offset of p, an address in the mapping (see at):
// for a caller that kept the address rather than the offset.
func (t *table) offset(p unsafe.Pointer) uint64 { return uint64(uintptr(p) - uintptr(t.base)) }

// ld is the word at byte off from p (see at).
func ld(p unsafe.Pointer, off uint64) uint64 { return atomic.LoadUint64((*uint64)(unsafe.Add(p, off))) }

// shardOf maps a key hash to the byte offset of its shard. The upper half of
// the hash picks the shard, the lower half is the index tag, so the two are
// independent.
func (t *table) shardOf(h uint64) uint64 {
	i := (h >> 32) * t.shards >> 32
	return headerBytes + i*t.shardBytes
}

// shardAt is the byte offset of shard i.
func (t *table) shardAt(i uint64) uint64 { return headerBytes + i*t.shardBytes }

func tagOf(h uint64) uint64 { return h & 0xffffffff }

// home is the index slot where a probe for tag starts: the tag scaled to
// the slot count, so any count works (no power of two, no wasted space).
func home(tag, slots uint64) uint64 { return tag * slots >> 32 }

// idxCap is the most slots of the first index a shard can hold (all of
// it index).
func (t *table) idxCap() uint64 { return (t.shardBytes - shardHeaderBytes) / t.slotSize }

// init writes a fresh header and empty shards.
func (t *table) init(gen uint64) {
	for i := uint64(0); i < t.shards; i++ {
		so := t.shardAt(i)
		t.store(so+sSeq, 0)
		t.store(so+sCount, 0)
		t.store(so+sDataLow, t.shardBytes)
		t.store(so+sDead, 0)
		t.store(so+sCap, 0)
		t.store(so+sRCap, 0)
		t.store(so+sRCount, 0)
	}
	t.store(hVersion, t.version)
	t.store(hGeneration, gen)
	t.store(hSize, t.size)
	t.store(hShards, t.shards)
	t.store(hShardBytes, t.shardBytes)
	t.store(hReady, 0)
	t.store(hRetired, 0)
	t.store(hFullErrors, 0)
	t.store(hSynced, 0)
	t.store(hChanges, 0)
	// Magic last: a file is recognisable only once the rest is written.
	t.store(hMagic, magic)
}

// checkHeader verifies that the mapping holds a table this build can read,
// with the geometry this build would give its size. The geometry is then
// taken from Go memory, never re-read from the file, so a corrupted header
// cannot steer a reader outside the mapping.
func checkHeader(mem []byte, path string) (geometry, error) {
	if len(mem) < headerBytes {
		return geometry{}, fmt.Errorf("shm: %s is not a kdisc table (%d bytes, too short)", path, len(mem))
	}
	w := func(off uint64) uint64 { return atomic.LoadUint64((*uint64)(unsafe.Pointer(&mem[off]))) }
	if w(hMagic) != magic {
		return geometry{}, fmt.Errorf("shm: %s is not a kdisc table (bad magic)", path)
	}
	v := w(hVersion)
	switch {
	case v > layoutVersion:
		return geometry{}, fmt.Errorf("shm: %s has table layout version %d, written by a newer kdisc; this build reads versions %d and %d: upgrade the readers (proxies) before the writer (kdisc run)", path, v, oldestRead, layoutVersion)
	case v == preRelease || v == preRelease6:
		return geometry{}, fmt.Errorf("shm: %s has table layout version %d, written by a pre-release kdisc; this build reads versions %d and %d: a new kdisc run replaces it when it starts", path, v, oldestRead, layoutVersion)
	case v < oldestRead:
		return geometry{}, fmt.Errorf("shm: %s has table layout version %d, written by an older kdisc; this build reads versions %d and %d: a new kdisc run replaces it when it starts", path, v, oldestRead, layoutVersion)
	}
	if s := w(hSize); s != uint64(len(mem)) {
		return geometry{}, fmt.Errorf("shm: %s: header says %d bytes, the file has %d", path, s, len(mem))
	}
	g, err := geometryFor(int64(len(mem)))
	if err != nil {
		return geometry{}, fmt.Errorf("shm: %s: %w", path, err)
	}
	if w(hShards) != g.shards || w(hShardBytes) != g.shardBytes {
		return geometry{}, fmt.Errorf("shm: %s: corrupt table header (geometry %d x %d bytes)", path, w(hShards), w(hShardBytes))
	}
	g.version = v // a writer reuses only its own version in place (see createFile)
	return g, nil
}
