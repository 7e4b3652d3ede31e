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
//	buf, answer := r.Find(buf[:0], "default/web:http") // Found, Unknown, Empty or NotReady
//
// # Memory layout (version 7)
//
// Every multi-byte field is a little-endian uint64 word at an 8-byte
// aligned offset, read and written only with sync/atomic.
//
//	file:   header (4 KiB) | shard 0 | shard 1 | ... | shard S-1
//	header: line 0, read by every lookup: magic "KDISCSHM", layout
//	        version, generation, size, shard count, shard size, ready,
//	        retired;
//	        line 1: full-error count, writer pid, last sync time,
//	        heartbeat (unix nanoseconds);
//	        then the change count and a ring of the key hashes of the
//	        last changes
//	shard:  seq, cells used, dataLow, dead, cells, record slots, record
//	        slots used (64 B, one cache line)
//	        | cells: 64 B each | record slots: 8 B each | free | records |
//	index:  two hash tables, each probed linearly from slot
//	        tag*slots>>32 (tag: the low 32 bits of the key's hash), each
//	        at most 3/4 full; a slot is empty when its word 0 is 0; a key
//	        is in one of them, looked for in the cells first
//	cell:   a small service whole: tag << 32 | 1<<31 | reach u7<<24 |
//	        nNodes u8<<16 | nameLen u8<<8 | keyLen u8; port u16 |
//	        weight u32 << 32; up to 4 IPv4 addresses (2 words); key ":"
//	        port name (4 words, zero-padded); reach is the slot's, not the
//	        service's: how far past it the keys whose probe starts there
//	        lie (127: any), so a key in no cell is known after its home
//	        cell and at most reach more
//	slot:   tag << 32 | record offset/8 (bit 31 clear)
//	record: keyLen u16, valLen u32, nPorts u16 | key (word-padded) |
//	        per port: two header words (name length, body format, port,
//	        body length, node count, weight) | name | body (word-padded);
//	        a port with no node keeps its number in the header's port
//	body:   IPv4 addresses, 4 B each, or IPv6, 16 B each, when every node
//	        is one family with the header's port and weight; otherwise
//	        per node: flags | IPv4, IPv6 or DNS name | port | weight
//	        (port and weight omitted when equal to the previous node's)
//
// The shard count S is about size/64 KiB (1 to 1024); the high 32 bits of
// a key's hash pick its shard. The hash is wyhash's construction over the
// key's words (hash.go; v4 tables used xxhash).
//
// A service is held inline in its index cell when it has one port of at
// most 4 nodes, all IPv4 addresses with the port's number and weight (or
// no node), and its key, a colon and its port name take at most 32 bytes
// ("default/service-name-1234:http" is 30): a lookup then reads one cache
// line, found from the hash and the shard's cell count, instead of an
// index slot and then a record. Every other value is a record in the
// shard's data area, pointed at by an 8-byte record slot, as in v4 (a
// lookup of it first finds no cell: an empty cell, usually its first).
// Measured in 1 MiB (TestDensityByShape): 11,695 services of 3 IPv4
// nodes with short keys (89 bytes each: a cell at 3/4 load at most),
// 9,862 with keys too long for a cell (102 bytes: a record and its
// slot), 7,500 of 2 ports (132 bytes); in v4, with 8-byte index slots
// for all, 10,575, 9,352 and 7,443; in the pre-release v6, where every
// record took a 64-byte cell, 11,639, 5,361 and 4,235.
//
// # Big values
//
// A record of up to a quarter of a shard is stored whole in its key's
// shard. A bigger one (a service of thousands of nodes, or its detail) is
// cut into pieces of at most a quarter of a shard, each stored in the shard
// with the most room at the time (compacted if need be), and the key's
// shard holds a head that lists them:
//
//	head:  a record of the key with nPorts 65534; value: id u64 |
//	       total u32 (bytes of the whole record), n u32 (pieces) |
//	       n u32 shard numbers (piece i's), word-padded
//	piece: a record of key "\x01" + id (8 bytes) + i (4 bytes), nPorts
//	       65533, holding the next valLen bytes of the whole record
//
// The whole record is encoded exactly as a small one, so a reader that put
// the pieces back together decodes it with the same bounds-checked code.
// Pieces are never rewritten: a new value gets a new id (the writer run's
// generation << 40 | a counter), its pieces are stored, its head replaces
// the old head, then the old pieces are removed. A reader reads the head
// (one shard, consistently), then each piece (each shard, consistently);
// a missing piece means the value changed meanwhile, and it reads the head
// again. Whole values are cached per Reader by id, so asking for one big
// service again reads its head only.
//
// Size limits: a value (the record of a service's nodes, or of its
// detail) may take up to a quarter of the table (shared_size/4), and is
// stored whenever the shards have that much room after compaction (a
// value being replaced needs room for the old and the new at once);
// otherwise Put returns a *FullError, whose NeedSize names the shared_size
// a value over the quarter needs. Keys are at most MaxKeyLen bytes, port
// and DNS names MaxNameLen, ports per service 65532.
//
// A detail record (Writer.PutDetail: each node's nodeName, zone and
// targetRef, when kdisc is asked to keep them) has the service's key behind
// a NUL byte, the port count 65535, and opaque bytes for a value; only
// Reader.Detail reads it.
//
// A record with no port is a service that exists with no port at all
// (scaled to zero); a port with no node, one with no address to serve.
// Both answer Empty, so a proxy can tell them from an unknown service.
//
// A query "ns/name:TOKEN" answers the port named TOKEN, whatever its
// nodes. Only when no port has that name and TOKEN is a decimal number
// (1 to 65535, no leading zero) is the answer the union of the ports
// numbered TOKEN: the nodes of that port number (deduplicated, sorted), or
// Empty when the ports of that number have no node.
//
// A Lookup of an inline service reads its cell with atomic word loads: the
// text compared with the query a word at a time, then the nodes, two IPv4
// addresses a word. Of a record: its home cell (and at most that slot's
// reach more; none for a key of 32 bytes or more), its record slot, the
// record header and key, one port header per port before the
// wanted one, then the nodes. A big value
// is put back together first (see above). Every length and offset a
// reader takes from the mapping (the cell and record slot counts, a
// cell's lengths and node count, a record's offset and sizes) is checked
// against the cell, the record and the shard before use; a cell index
// holds only cells and a record slot index only record offsets.
//
// # What a reader holds
//
// A reader maps the whole file read-only (shared_size of address space);
// the pages it touches become resident, shared with every other process
// that maps the file (they are the tmpfs file's pages). Besides, each
// Reader keeps the interned DNS names it handed out (at most 65,536) and
// up to 4 big values put back together (each its whole record: a 100,000
// node IPv4 service is 400 KB).
//
// # Versions and upgrades
//
// Version 7 changed the index (a shard's cells, holding small services,
// then its 8-byte record slots) and the hash, and added big values and
// the number of a port with no node. A v7 reader reads a v4 table too:
// 8-byte index slots, xxhash, records only, on the slow path (a query by
// number of a v4 port with no node answers Unknown, as v4 did; Changes
// translates the v4 writer's logged hashes into KeyHash values, and
// reports an incomplete list when a key was deleted meanwhile). A v7
// writer never writes into a v4 file, whose v4 readers could not read
// the new index: it builds a v7 file, copies the v4 entries into it,
// renames it over the path and retires the v4 one. A v4 reader then
// keeps serving the retired file's last values and cannot open the new
// one ("has table layout version 7, written by a newer kdisc"). So
// upgrade the readers (proxies, kdisc nodes) before the writer (kdisc
// run: the DaemonSet or sidecar). Versions 5 and 6 were pre-release
// layouts no release wrote (5: big values with 8-byte slots; 6: every
// index slot a 64-byte cell, records pointed at from one): they are
// refused, and a v7 writer replaces them without copying them. A reader
// refuses a newer layout than its own, saying so.
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
// When the free gap is too small, or the index must grow, or the shard's
// dead bytes would pass half its live ones (or a page), the writer rebuilds
// the shard (inside the odd window): live records packed, index rehashed.
// An inline cell is written in place inside the odd window (a new one into
// its empty cell, a changed one over itself), as is a value moving
// between its cell and a record slot (the old slot emptied, the new one
// filled, in one window). The last rule keeps the records of a
// shard within about 1.5 times their
// size from its end, so that churn does not sweep new values down the
// whole gap and make every page of the table resident. When even
// compaction cannot make room, Put fails with a *FullError and the old
// value stays.
//
// A writer that dies inside the odd window leaves the shard odd. A reader
// that finds a shard odd for more than a few spins asks whether any
// writer holds the table's lock (F_OFD_GETLK, which takes nothing, once per
// writer run): with none, it answers NotReady at once; a live writer is
// waited for at most 20 ms while it does not move, 200 ms in all.
// Readiness comes from the header alone: the ready flag and the writer's
// heartbeat (renewed every 250 ms, cleared by Close, silent 2 s after a
// crash), so a probe never locks anything.
//
// Every change (Put, Delete) also appends the key's hash to the change
// ring and then bumps the change count: Changes lets a reader in any
// process learn which services changed since it last looked (up to the
// ring's size less one: the slot after the last may already hold the next
// change), and when it fell too far behind to know. A Put of the bytes
// already stored is no change: it writes nothing and logs nothing.
// Every file and writer run has its own random generation (never 0, never
// repeated), so a reader tells a new file or run from the old one.
//
// Readers never unmap: Close replaces a mapping by read-only zero pages, so
// a lookup racing Close reads an empty table (NotReady) instead of faulting.
//
// # Files
//
// Create takes an exclusive OFD lock on the file (one writer per path;
// gone when the process dies) and reserves every byte of it (fallocate), so
// that a tmpfs too small fails at start rather than with SIGBUS later. It
// reuses a table of the same layout and size in place, so readers keep
// serving the last known nodes across a writer restart; otherwise it
// builds a new file beside it, copies the old table's entries into it
// (a new size, or a v4 table migrated), renames it over the path and
// marks the old one retired. Readers see the retired flag (one atomic load per call) and
// re-open the path; every 500 ms they also check, off the lookup path,
// whether the path names another file (removed and made anew, or made
// after they opened with AllowMissing). A running writer whose file is
// removed (a tmp cleaner, an operator) notices within a heartbeat (250 ms)
// and makes the file anew with its content, retiring the removed one.
//
// # Memory
//
// A mapping costs the pages it touches, not shared_size: those holding
// records and index, about 1.5 to 1.8 times the bytes in use (whole
// pages; measured in bench/memory.md). A shard that once held more keeps
// those pages in the file's page cache, and the kernel may map them into
// a reader around its page faults, so a reader's share follows the most
// each shard held. After
// a compaction the writer drops the pages of the shard's free gap (madvise
// MADV_DONTNEED: the file keeps their bytes); file mappings read nothing
// ahead (MADV_RANDOM). A reader holds the pages it has read of the current
// table, and of a table it moved away from (replaced, resized, removed and
// made anew) for replacedGrace (5 s), after which that mapping becomes
// zero pages and its memory is released. A table whose file was removed
// and not made anew stays mapped, so that the reader keeps serving the
// last known nodes. On tmpfs the file itself holds shared_size (reserved
// up front), charged to the memory cgroup of the writer whether or not a
// process maps it.
//
// Whoever can replace the table can redirect every proxy, so writer and
// readers both refuse a table or directory that is a symlink, writable by
// group or others, or owned by anyone but themselves, root, or a uid they
// are told to trust (TrustUIDs).
package shm
