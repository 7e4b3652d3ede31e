package apiserver_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc/apiserver"
)

// blackhole forwards TCP to target until cut, then stops moving bytes in
// both directions while keeping every socket open: no FIN, no RST, as a
// dropped NAT entry or a wedged middlebox does. TCP keepalives are still
// answered (by this process's kernel), so only the protocol can notice.
type blackhole struct {
	ln  net.Listener
	cut atomic.Bool
	mu  sync.Mutex
	all []net.Conn
}

func newBlackhole(t *testing.T, target string) *blackhole {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	b := &blackhole{ln: ln}
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, c := range b.all {
			c.Close()
		}
	})
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			b.mu.Lock()
			b.all = append(b.all, in, out)
			b.mu.Unlock()
			go b.pipe(in, out)
			go b.pipe(out, in)
		}
	}()
	return b
}

func (b *blackhole) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if b.cut.Load() {
			return // swallow, and hold the sockets open
		}
		if n > 0 {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// A watch on a connection black-holed mid-stream ends within about two
// health-check periods (HTTP/2 PING unanswered), instead of waiting for
// the watch's own idle timeout (minutes: bookmarks come once a minute).
func TestBlackholedConnectionIsDropped(t *testing.T) {
	ca := newCA(t, "ca")
	cert, _, _ := ca.issue(t, "apiserver", true)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, `{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"1"}}}`+"\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done() // a quiet watch
	}))
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	hole := newBlackhole(t, srv.Listener.Addr().String())
	host, port := hostPort(t, hole.ln.Addr().String())
	c := newClient(t, apiserver.Options{
		Schema: "https", Host: host, Port: port, CAFile: writeFile(t, t.TempDir(), "ca.crt", ca.pem),
		HealthCheck: 200 * time.Millisecond,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, "/api/v1/endpoints", nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, "HTTP/2.0", resp.Proto, "https speaks HTTP/2, with health checks")
	buf := make([]byte, 4096)
	_, err = resp.Body.Read(buf)
	require.NoError(t, err)

	hole.cut.Store(true)
	start := time.Now()
	_, err = io.Copy(io.Discard, resp.Body)
	took := time.Since(start)
	require.Error(t, err, "the stream ends with an error, not silently")
	assert.Less(t, took, 5*time.Second, "dropped after about two health-check periods, not at the 30 s test deadline")
	t.Logf("a black-holed connection was dropped after %v (health check 200 ms)", took.Round(time.Millisecond))
}
