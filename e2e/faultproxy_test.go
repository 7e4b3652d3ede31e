package e2e

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// faultProxy is a loopback TCP proxy between kdisc and the apiserver that
// can fail the way networks fail, unlike a relay that closes connections:
//
//   - Blackhole: every connection, open or new, stops carrying bytes in
//     both directions, but no socket is closed: no FIN, no RST. kdisc sees a
//     connection that is simply silent (a peer that vanished, a firewall
//     that drops, a load balancer that lost its state).
//   - Arm: the same blackhole, tripped by the proxy itself as soon as one
//     connection has carried a given number of bytes towards kdisc, in the
//     middle of a response (the rest of the chunk that crossed the line is
//     not forwarded): with a LIST far bigger than the threshold, the
//     blackhole starts mid-LIST, deterministically.
//   - Heal: new connections are forwarded again. The black-holed ones stay
//     silent for good (their state is lost on the path); kdisc has to
//     notice and reconnect.
//   - CloseAll: closes every open connection (both sides, with FIN), as an
//     apiserver or a load balancer ending its connections would.
//
// The proxy sees only TLS bytes: it knows nothing of HTTP.
type faultProxy struct {
	t      *testing.T
	addr   string // host:port kdisc connects to
	target string

	mu        sync.Mutex
	blackhole bool  // new connections are held silent; open ones are dead
	arm       int64 // > 0: trip the blackhole when a connection carried this many bytes to kdisc since Arm
	tripped   chan struct{}
	trippedAt time.Time
	conns     map[*proxyConn]struct{}

	closed   chan struct{} // closed at cleanup: parked pumps return
	accepted atomic.Int64  // connections accepted, for the record
}

type proxyConn struct {
	client, server net.Conn // server is nil for a connection held silent from the start
	dead           atomic.Bool
	down           atomic.Int64 // bytes forwarded to kdisc since the last Arm
	closeOnce      sync.Once
}

func (pc *proxyConn) close() {
	pc.closeOnce.Do(func() {
		pc.client.Close()
		if pc.server != nil {
			pc.server.Close()
		}
	})
}

func newFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &faultProxy{t: t, addr: l.Addr().String(), target: target,
		conns: map[*proxyConn]struct{}{}, closed: make(chan struct{}), tripped: make(chan struct{})}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		close(p.closed)
		p.mu.Lock()
		for pc := range p.conns {
			pc.close()
		}
		clear(p.conns)
		p.mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			p.accepted.Add(1)
			p.mu.Lock()
			if p.blackhole {
				// Accepted (the kernel did the handshake) but never
				// answered: kdisc's TLS handshake hangs.
				pc := &proxyConn{client: in}
				pc.dead.Store(true)
				p.conns[pc] = struct{}{}
				p.mu.Unlock()
				continue
			}
			p.mu.Unlock()
			out, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil { // apiserver down: kdisc sees the connection close
				in.Close()
				continue
			}
			pc := &proxyConn{client: in, server: out}
			p.mu.Lock()
			if p.blackhole { // went dark while we dialled
				pc.dead.Store(true)
			}
			p.conns[pc] = struct{}{}
			p.mu.Unlock()
			wg.Go(func() { p.pump(pc, out, in, false) })
			wg.Go(func() { p.pump(pc, in, out, true) })
		}
	})
	return p
}

// pump copies src to dst; toClient is the apiserver-to-kdisc direction.
// On a dead connection it stops copying and parks until cleanup, keeping
// both sockets open.
func (p *faultProxy) pump(pc *proxyConn, dst, src net.Conn, toClient bool) {
	buf := make([]byte, 16<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && toClient {
			p.count(pc, int64(n))
		}
		if pc.dead.Load() {
			<-p.closed
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			if pc.dead.Load() {
				<-p.closed
				return
			}
			pc.close()
			p.mu.Lock()
			delete(p.conns, pc)
			p.mu.Unlock()
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				p.t.Logf("faultproxy: %v", err)
			}
			return
		}
	}
}

// count records n bytes about to go to kdisc and trips an armed proxy.
func (p *faultProxy) count(pc *proxyConn, n int64) {
	total := pc.down.Add(n)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.arm > 0 && total >= p.arm {
		p.arm = 0
		p.trippedAt = time.Now()
		p.blackholeLocked()
		close(p.tripped)
	}
}

func (p *faultProxy) blackholeLocked() {
	p.blackhole = true
	for pc := range p.conns {
		pc.dead.Store(true)
	}
}

// Blackhole makes every open connection silent and holds new ones silent.
func (p *faultProxy) Blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blackholeLocked()
}

// Arm blackholes the proxy once one connection carries bytes towards
// kdisc (counted from now); Tripped tells when.
func (p *faultProxy) Arm(bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pc := range p.conns {
		pc.down.Store(0)
	}
	p.arm = bytes
}

// Tripped is closed when an armed proxy went dark; TrippedAt says when.
func (p *faultProxy) Tripped() <-chan struct{} { return p.tripped }

func (p *faultProxy) TrippedAt() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.trippedAt
}

// Heal forwards new connections again; dead ones stay dead.
func (p *faultProxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blackhole = false
	p.arm = 0
}

// CloseAll closes every connection that is not black-holed, both sides.
func (p *faultProxy) CloseAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pc := range p.conns {
		if !pc.dead.Load() {
			pc.close()
			delete(p.conns, pc)
		}
	}
}
