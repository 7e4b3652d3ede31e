package shm

import "fmt"

// FullError is returned by Put when the table has no room for the value.
// The key's previous value, if any, is untouched and still served.
type FullError struct {
	Key  string // the service that could not be stored
	Need int    // bytes the value needs in its shard (record and index entry)
	Size int64  // the table's size (shared_size)
	// NeedSize is set when the value alone is larger than a quarter of
	// the table, the most one value may take: more free space would not
	// help, a shared_size of at least NeedSize bytes would.
	NeedSize int64
}

func (e *FullError) Error() string {
	if e.NeedSize > 0 {
		return fmt.Sprintf("shm: cannot store %s: its value is %d bytes, more than a quarter of the table (shared_size %d bytes); it needs a shared_size of at least %d bytes", e.Key, e.Need, e.Size, e.NeedSize)
	}
	return fmt.Sprintf("shm: cannot store %s (%d bytes): the table (shared_size %d bytes) is full; it needs room freed by deletes, or a shared_size of at least %d bytes", e.Key, e.Need, e.Size, (e.Size+int64(e.Need)+1<<20-1)&^(1<<20-1))
}

// Stats describes a table, as its writer sees it.
type Stats struct {
	Entries     int    // stored services
	UsedBytes   int64  // bytes held by live records and their index entries
	TotalBytes  int64  // the table's size
	FullErrors  uint64 // Puts refused with a FullError since Create
	Compactions uint64 // shard compactions since Create
}
