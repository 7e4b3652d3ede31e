package shm

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// The system calls: mmap, munmap, flock. Linux only (the module targets
// linux/amd64); everything else in the package is portable Go.

// mapAnon maps size bytes of anonymous shared memory (Create with path "").
func mapAnon(size int64) ([]byte, error) {
	mem, err := syscall.Mmap(-1, 0, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_ANON)
	if err != nil {
		return nil, fmt.Errorf("shm: mmap %d anonymous bytes: %w", size, err)
	}
	return mem, nil
}

// mapFile maps the whole of f, shared: writable for the writer, read-only
// for readers (a reader can then never corrupt the table).
func mapFile(f *os.File, size int64, writable bool) ([]byte, error) {
	prot := syscall.PROT_READ
	if writable {
		prot |= syscall.PROT_WRITE
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, int(size), prot, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("shm: mmap %s: %w", f.Name(), err)
	}
	return mem, nil
}

func unmap(mem []byte) error {
	if err := syscall.Munmap(mem); err != nil {
		return fmt.Errorf("shm: munmap: %w", err)
	}
	return nil
}

// errLocked means another open file description holds the lock.
var errLocked = errors.New("locked")

// lockFile takes an exclusive, non-blocking flock. The lock belongs to the
// open file description, so it is released when f is closed or the process
// dies: a crashed writer never leaves a stale lock behind.
func lockFile(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EWOULDBLOCK):
			return errLocked
		default:
			return fmt.Errorf("shm: flock %s: %w", f.Name(), err)
		}
	}
}

// writerAlive reports whether a writer holds the lock on the table at
// path: a shared lock cannot be taken while it does. Readers use it so that
// a writer that died (SIGKILL, crash) without clearing the ready flag is
// not taken for a live one.
func writerAlive(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close() // also drops a lock we took
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		return errors.Is(err, syscall.EWOULDBLOCK)
	}
}

// checkDir refuses a table directory that another user could write to:
// whoever can replace the table file can point every proxy at their own
// nodes. /dev/shm itself is world-writable; /dev/shm/kdisc must not be.
func checkDir(dir string) error {
	st, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("shm: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("shm: %s is not a directory (a symlink?)", dir)
	}
	if st.Mode().Perm()&0o002 != 0 {
		return fmt.Errorf("shm: %s is writable by every user; use a directory only kdisc's user can write", dir)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Uid != uint32(os.Geteuid()) && sys.Uid != 0 {
		return fmt.Errorf("shm: %s belongs to uid %d, not to this user (%d) or root", dir, sys.Uid, os.Geteuid())
	}
	return nil
}
