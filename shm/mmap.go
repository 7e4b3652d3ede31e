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
