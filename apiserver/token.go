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
