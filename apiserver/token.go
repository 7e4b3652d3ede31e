package apiserver

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"time"
)

// tokenSource yields the bearer token. A token file is stat-ed on every
// request and re-read when its size or modification time changes, because
// projected service-account tokens rotate (kubelet swaps a symlink). Requests
// are rare (a list or a watch every few minutes), so this costs nothing.
// A 401 re-reads it regardless (reread): a writer that replaces the file
// in place within one mtime tick leaves size and mtime unchanged.
type tokenSource struct {
	static string
	file   string

	mu      sync.Mutex
	cached  string
	modTime time.Time
	size    int64
}

func (t *tokenSource) get() (string, error) {
	if t.static != "" {
		return t.static, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fi, err := os.Stat(t.file)
	if err != nil {
		if t.cached != "" {
			return t.cached, nil // mid-rotation: keep the last good token
		}
		return "", fmt.Errorf("reading token file: %w", err)
	}
	if t.cached != "" && fi.ModTime().Equal(t.modTime) && fi.Size() == t.size {
		return t.cached, nil
	}
	return t.readLocked(fi)
}

// readLocked reads the file whose stat is fi and caches its token; on a
// failure it keeps the last good token.
func (t *tokenSource) readLocked(fi os.FileInfo) (string, error) {
	data, err := os.ReadFile(t.file)
	if err != nil {
		if t.cached != "" {
			return t.cached, nil
		}
		return "", fmt.Errorf("reading token file: %w", err)
	}
	tok := string(bytes.TrimSpace(data))
	if tok == "" {
		if t.cached != "" {
			return t.cached, nil
		}
		return "", fmt.Errorf("token file %s is empty", t.file)
	}
	t.cached, t.modTime, t.size = tok, fi.ModTime(), fi.Size()
	return tok, nil
}

// reread reads the token file again, whatever its stat says, after the
// apiserver refused the token the request carried, and
// reports whether the file now holds another one (worth a retry). A
// static token is never re-read.
func (t *tokenSource) reread(refused string) bool {
	if t.static != "" || t.file == "" {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fi, err := os.Stat(t.file)
	if err != nil {
		return false // mid-rotation: the next request tries again
	}
	tok, err := t.readLocked(fi)
	return err == nil && tok != refused
}
