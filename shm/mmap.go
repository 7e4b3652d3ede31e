package shm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"unsafe"
)

// The system calls: mmap, fcntl locks, fallocate, statfs. Linux only (the
// module targets linux/amd64); everything else in the package is portable
// Go.

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
	// No read-ahead: a lookup reads a few words, and pages read ahead of
	// it (on a disk-backed file) would be resident for nothing.
	_ = syscall.Madvise(mem, syscall.MADV_RANDOM)
	return mem, nil
}

func unmap(mem []byte) error {
	if err := syscall.Munmap(mem); err != nil {
		return fmt.Errorf("shm: munmap: %w", err)
	}
	return nil
}

// blank replaces a mapping, in place, by read-only zero pages. A goroutine
// still reading it (a lookup racing Close) then reads zeros: an empty
// table, which answers "not found". Unmapping instead would turn that read
// into SIGSEGV, a fatal fault in the process that links kdisc. The zero
// pages cost address space only; the file's pages are released.
func blank(mem []byte) error {
	_, _, e := syscall.Syscall6(syscall.SYS_MMAP, uintptr(unsafe.Pointer(unsafe.SliceData(mem))), uintptr(len(mem)),
		syscall.PROT_READ, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS|syscall.MAP_FIXED, ^uintptr(0), 0)
	if e != 0 {
		return fmt.Errorf("shm: mmap zero pages: %w", e)
	}
	return nil
}

// pageBytes is the size of a memory page.
var pageBytes = uint64(os.Getpagesize())

// dontNeed drops mem's pages from this process's page tables (its
// resident memory). The mapping is shared, so the bytes stay in the file
// and come back on the next access; an error changes nothing and is
// ignored.
func dontNeed(mem []byte) {
	_ = syscall.Madvise(mem, syscall.MADV_DONTNEED)
}

// Open file description (OFD) locks: like flock, the lock belongs to the
// open file and goes when the file is closed or the process dies, so a
// crashed writer never leaves a stale lock. Unlike flock, another process
// can ask whether the lock is held (F_OFD_GETLK) without taking anything,
// so a reader's liveness check can never make a starting writer fail.
const (
	fOFDGetlk = 36 // F_OFD_GETLK
	fOFDSetlk = 37 // F_OFD_SETLK
)

// errLocked means another open file description holds the lock.
var errLocked = errors.New("locked")

// fcntlLock runs the fcntl lock command cmd on f. It borrows the
// descriptor through f's RawConn, which holds it open for the call: a
// reader's liveness check may race Close of the file (the reader's
// release), and a bare f.Fd() would then read a field Close writes, or a
// number the process has since given to another file. A closed f is an
// error.
func fcntlLock(f *os.File, cmd int, lk *syscall.Flock_t) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var e syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		for {
			if _, _, e = syscall.Syscall(syscall.SYS_FCNTL, fd, uintptr(cmd), uintptr(unsafe.Pointer(lk))); e != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if e != 0 {
		return e
	}
	return nil
}

// lockFile takes the writer's lock: an exclusive OFD lock on the whole
// file, without waiting.
func lockFile(f *os.File) error {
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0}
	err := fcntlLock(f, fOFDSetlk, &lk)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EACCES):
		return errLocked
	default:
		return fmt.Errorf("shm: lock %s: %w", f.Name(), err)
	}
}

// writerHolds reports whether some writer holds the lock on f's file. It
// takes nothing; an error counts as "held" (do not declare a writer dead
// on a doubt).
func writerHolds(f *os.File) bool {
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0}
	if err := fcntlLock(f, fOFDGetlk, &lk); err != nil {
		return true
	}
	return lk.Type != syscall.F_UNLCK
}

// reserve allocates every byte of f on its filesystem. A sparse table in a
// tmpfs with less room than shared_size (Docker's 64 MiB /dev/shm) would
// map fine and then kill the writer with SIGBUS on the first page the
// tmpfs cannot back; reserved up front, it fails at start and says why.
func reserve(f *os.File, size int64) error {
	for {
		err := syscall.Fallocate(int(f.Fd()), 0, 0, size)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EOPNOTSUPP):
			return f.Truncate(size) // a filesystem without fallocate: sparse, as before
		case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EFBIG), errors.Is(err, syscall.EDQUOT):
			dir := filepath.Dir(f.Name())
			var st syscall.Statfs_t
			free := "an unknown number of"
			if syscall.Statfs(dir, &st) == nil {
				free = fmt.Sprint(st.Bavail * uint64(st.Bsize))
			}
			return fmt.Errorf("shm: shared_size %d bytes does not fit in %s: %s bytes free (%v); lower shared_size or give the filesystem more room (e.g. a larger /dev/shm)", size, dir, free, err)
		default:
			return fmt.Errorf("shm: reserving %d bytes for %s: %w", size, f.Name(), err)
		}
	}
}

// trust is who may own a table and its directory: whoever can replace or
// rewrite the table can point every proxy at their own nodes.
type trust struct{ uids []int }

func (tr trust) allows(uid uint32) bool {
	if uid == 0 || int(uid) == os.Geteuid() {
		return true
	}
	for _, u := range tr.uids {
		if uint32(u) == uid {
			return true
		}
	}
	return false
}

// check refuses fi (of path) unless a trusted user owns it and nobody
// else may write it. A table is never a symlink, and neither is its
// directory.
func (tr trust) check(path string, fi os.FileInfo, what string) error {
	if fi.Mode()&os.ModeSymlink != 0 {
		return fmt.Errorf("shm: refusing %s: the %s is a symlink", path, what)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		who := "its group"
		if perm&0o002 != 0 {
			who = "every user"
		}
		return fmt.Errorf("shm: refusing %s: the %s is writable by %s (mode %#o); use one only kdisc's user can write", path, what, who, perm)
	}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok && !tr.allows(sys.Uid) {
		return fmt.Errorf("shm: refusing %s: the %s is owned by uid %d, not by this user (%d), root, or a uid given to trust (TrustUIDs, KDISC_TRUSTED_UIDS)", path, what, sys.Uid, os.Geteuid())
	}
	return nil
}

// checkDir applies the trust rules to a table directory.
func (tr trust) checkDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("shm: %w", err)
	}
	if fi.Mode()&os.ModeSymlink == 0 && !fi.IsDir() {
		return fmt.Errorf("shm: refusing %s: not a directory", dir)
	}
	return tr.check(dir, fi, "table directory")
}

// openTrusted opens a table file read-only after checking its directory,
// without following a symlink, and checks the file it got.
func (tr trust) openTrusted(path string) (*os.File, os.FileInfo, error) {
	if err := tr.checkDir(filepath.Dir(path)); err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, nil, fmt.Errorf("shm: refusing %s: the table file is a symlink", path)
	}
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err == nil {
		err = tr.check(path, fi, "table file")
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}
