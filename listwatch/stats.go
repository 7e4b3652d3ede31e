package listwatch

import (
	"sync"
	"sync/atomic"
)

// Stats counts what a Watcher did. Fields only grow; read them with Load.
type Stats struct {
	Lists, ListErrors    atomic.Uint64
	Watches, WatchErrors atomic.Uint64
	Relists              atomic.Uint64 // lists after a 410 Gone
	Added, Modified      atomic.Uint64 // watch events applied, by type
	Deleted, Bookmarks   atomic.Uint64
	Skipped              atomic.Uint64 // malformed objects skipped
	TableFull            atomic.Uint64 // updates refused by a full table
	LastEvent            atomic.Int64  // unix nanoseconds of the last watch event, 0 before any
}

// Status is a Watcher's readiness and its latest trouble.
type Status struct {
	Ready bool   // the first full list has been applied
	Error string // the last failure, "" after a success
}

type status struct {
	ready atomic.Bool
	mu    sync.Mutex
	err   string
}

func (s *status) get() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Status{Ready: s.ready.Load(), Error: s.err}
}

func (s *status) setErr(err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	s.mu.Lock()
	s.err = msg
	s.mu.Unlock()
}
