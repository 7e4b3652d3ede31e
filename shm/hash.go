package shm

import "github.com/cespare/xxhash/v2"

// hashKey hashes a key for the table: the shard, the index slot and the
// tag all come from it, so it is part of the layout (changing it means
// bumping layoutVersion). xxhash is fast, well spread and the same in
// every process and on every platform.
func hashKey(key string) uint64 { return xxhash.Sum64String(key) }
