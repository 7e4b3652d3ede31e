package e2e

import (
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc/internal/kubetest"
)

// TestGoneOnRealServer: kdisc is cut off (its connections go through a
// relay the test pauses) while a service is deleted and another created,
// and the apiserver is restarted past kdisc's resourceVersion. When kdisc
// reconnects, its watch gets the real server's ERROR 410 event; kdisc lists
// again, removes the deleted service, adds the new one, and never stops
// serving the one that stayed.
func TestGoneOnRealServer(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c.APIServer, "e2e-gone")
	for _, name := range []string{"keep", "drop"} {
		_, err := c.ApplyEndpoints(ctx(t), ns, name, kubetest.Subset([]string{"10.90.0.1"}, httpPort))
		require.NoError(t, err)
	}
	relay := newRelay(t, "127.0.0.1:0", c.Host+":"+strconv.Itoa(c.Port))
	_, port, _ := net.SplitHostPort(relay.addr)
	body := strings.Replace(c.KdiscCluster("namespace_selector:\n  equal: "+ns+"\n"), "port: "+strconv.Itoa(c.Port), "port: "+port, 1)
	d := newDaemon(t, singleConfig(body))
	d.Start()
	d.WaitReady(20 * time.Second)
	d.waitNodes(ns+"/drop:http", nodesJSON(50, "10.90.0.1:80"))
	r := attach(t, d)

	relay.pause()
	require.NoError(t, c.DeleteEndpoints(ctx(t), ns, "drop"))
	_, err := c.ApplyEndpoints(ctx(t), ns, "new", kubetest.Subset([]string{"10.90.0.2"}, httpPort))
	require.NoError(t, err)
	require.NoError(t, c.ExpireWatches(ctx(t), c.APIServer))
	relay.resume()

	// Readers must see "keep" all along, relist included.
	eventually(t, 40*time.Second, "the relist to remove drop and add new", func() (bool, string) {
		if _, ok := r.Nodes(nil, ns+"/keep:http"); !ok {
			t.Fatalf("keep vanished from the table")
		}
		_, dropped := r.Nodes(nil, ns+"/drop:http")
		_, added := r.Nodes(nil, ns+"/new:http")
		return !dropped && added, ""
	})
	_, m := d.Get("/metrics")
	assert.Contains(t, m, `kdisc_relists_total{cluster=""} 1`, "a 410 Gone, answered by one relist")
	assert.Contains(t, d.Logs(), "410 Gone")
}

// relay forwards TCP connections from its own address to target; pause
// cuts every connection and refuses new ones until resume.
type relay struct {
	addr   string
	mu     sync.Mutex
	paused bool
	conns  map[net.Conn]struct{}
}

func newRelay(t *testing.T, listen, target string) *relay {
	t.Helper()
	l, err := net.Listen("tcp", listen)
	require.NoError(t, err)
	r := &relay{addr: l.Addr().String(), conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { l.Close(); r.pause() })
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			if !r.track(in) {
				in.Close()
				continue
			}
			out, err := net.Dial("tcp", target)
			if err != nil || !r.track(out) {
				in.Close()
				if out != nil {
					out.Close()
				}
				continue
			}
			go func() { _, _ = io.Copy(out, in); out.Close() }()
			go func() { _, _ = io.Copy(in, out); in.Close() }()
		}
	}()
	return r
}

func (r *relay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.paused {
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *relay) pause() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.paused = true
	for c := range r.conns {
		c.Close()
	}
	clear(r.conns)
}

func (r *relay) resume() {
	r.mu.Lock()
	r.paused = false
	r.mu.Unlock()
}
