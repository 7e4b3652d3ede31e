// Package shm is the shared table that holds discovered services: a
// fixed-size file (for example /dev/shm/kdisc/kubernetes, of shared_size
// bytes) mapped MAP_SHARED by one writer (kdisc run) and any number of
// readers in any process (proxies, kdisc nodes). It plays the role of the
// nginx shared dict in APISIX.
//
// A key is a service, "namespace/name"; its value is the service's ports,
// each with a name and nodes. A query "namespace/name:port" copies that
// port's nodes into the caller's buffer:
//
//	w, _ := shm.Create("/dev/shm/kdisc/kubernetes", 1<<20) // the writer
//	w.Put("default/web", []shm.Port{{Name: "http", Nodes: nodes}})
//	w.SetReady(true)
//
//	r, _ := shm.Open("/dev/shm/kdisc/kubernetes") // a reader, anywhere
//	buf, ok := r.Lookup(buf[:0], "default/web:http") // no allocation
//
// # Memory layout
//
// Every multi-byte field is a little-endian uint64 word at an 8-byte
// aligned offset, read and written only with sync/atomic.
//
//	file:   header (128 B) | shard 0 | shard 1 | ... | shard S-1
//	header: magic "KDISCSHM", layout version, generation, size,
//	        shard count, shard size, ready, retired, full-error count,
//	        writer pid
//	shard:  seq, count, dataLow, dead, slots (64 B, one cache line)
//	        | index: slots words, a hash table | free | records |
//	index:  tag (low 32 bits of the key's hash) << 32 | record offset/8,
//	        or 0; linear probing from slot tag*slots>>32, at most 3/4 full
//	record: keyLen u16, valLen u32, nPorts u16 | key (word-padded) |
//	        per port: two header words (name length, body format, port,
//	        body length, node count, weight) | name | body (word-padded)
//	body:   IPv4 addresses, 4 B each, or IPv6, 16 B each, when every node
//	        is one family with the header's port and weight; otherwise
//	        per node: flags | IPv4, IPv6 or DNS name | port | weight
//	        (port and weight omitted when equal to the previous node's)
//
// The shard count S is about size/64 KiB (1 to 1024); the high 32 bits of
// a key's hash pick its shard. A service of 3 IPv4 nodes on one port takes
// about 80 bytes and an index slot and a third, so 1 MiB holds over ten
// thousand such services.
//
// A Lookup reads all of this in place with atomic word loads: one or two
// index slots, the record header and key, one port header per port before
// the wanted one, then the nodes themselves, two IPv4 addresses a word.
//
// # Concurrency
//
// Each shard is a seqlock. The writer writes a new record into the shard's
// free gap (unreachable by readers), then makes the shard's sequence odd,
// updates the index, and makes it even. A reader loads the sequence, finds
// and decodes the record with every offset and length bounds-checked, and
// accepts the result only if the sequence is still the same even number;
// otherwise it retries. Readers never write to the mapping and never
// return a Go string or slice that points into it: addresses are copied
// into netip.Addr values, DNS names into interned Go strings.
//
// When the free gap is too small, or the index must grow, the writer
// rebuilds the shard (inside the odd window): live records packed, index
// rehashed. When even compaction cannot make room, Put fails with a
// *FullError and the old value stays.
//
// # Files
//
// Create flocks the file (one writer per path). It reuses a table of the
// same layout and size in place, so readers keep serving the last known
// nodes across a writer restart; otherwise it builds a new file beside it,
// renames it over the path and marks the old one retired. Readers see the
// retired flag (one atomic load per call) and re-open the path; they keep
// the old mapping until Close.
package shm
