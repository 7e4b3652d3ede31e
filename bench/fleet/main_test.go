package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The proxy counts every byte it relays from the server, a streamed
// response's chunks as they are flushed, not only at the end.
func TestProxyCountsWhatItRelays(t *testing.T) {
	chunk := strings.Repeat("x", 1000)
	next := make(chan bool)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for range next {
			_, _ = io.WriteString(w, chunk)
			w.(http.Flusher).Flush()
		}
	}))
	defer srv.Close()
	p, err := newProxy(strings.TrimPrefix(srv.URL, "http://"))
	require.NoError(t, err)
	defer p.Close()

	resp, err := http.Get("http://" + p.Addr())
	require.NoError(t, err)
	defer resp.Body.Close()
	// The proxy counts what it relayed after the write returns, so the
	// client may read bytes before they are counted: wait for the count.
	require.Eventually(t, func() bool { return p.sent.Load() > 0 }, 5*time.Second, time.Millisecond,
		"the status line and headers are counted")
	head := p.sent.Load()
	buf := make([]byte, len(chunk))
	for i := 1; i <= 3; i++ {
		next <- true
		_, err := io.ReadFull(resp.Body, buf)
		require.NoError(t, err)
		// Chunked encoding adds its size line and CRLFs around each chunk.
		want := head + int64(i*len(chunk))
		require.Eventually(t, func() bool { return p.sent.Load() >= want }, 5*time.Second, time.Millisecond,
			"chunk %d counted", i)
	}
	close(next)
}
