package e2e

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFaultProxy checks the proxy itself (no cluster needed): forwarding,
// a blackhole that neither delivers nor closes, healing for new
// connections only, a trip in the middle of a big response, CloseAll.
func TestFaultProxy(t *testing.T) {
	// The target answers every line-less read with 1 MiB.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	big := bytes.Repeat([]byte("x"), 1<<20)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 1)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
					if buf[0] == 'B' {
						_, _ = c.Write(big)
					} else {
						_, _ = c.Write(buf)
					}
				}
			}()
		}
	}()
	p := newFaultProxy(t, l.Addr().String())
	dial := func() net.Conn {
		c, err := net.Dial("tcp", p.addr)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		return c
	}
	echo := func(c net.Conn) error {
		if _, err := c.Write([]byte("e")); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		b := make([]byte, 1)
		_, err := io.ReadFull(c, b)
		return err
	}
	silent := func(c net.Conn) {
		t.Helper()
		err := echo(c)
		var ne net.Error
		require.ErrorAs(t, err, &ne, "no answer and no close")
		assert.True(t, ne.Timeout(), "a timeout, not a close: %v", err)
	}

	a := dial()
	require.NoError(t, echo(a))
	p.Blackhole()
	silent(a)
	b := dial() // accepted, held
	silent(b)
	p.Heal()
	silent(a) // stays dead
	c := dial()
	require.NoError(t, echo(c))

	// Trip mid-response: of 1 MiB, the client gets at least the threshold
	// and far less than everything.
	p.Arm(128 << 10)
	_, err = c.Write([]byte("B"))
	require.NoError(t, err)
	select {
	case <-p.Tripped():
	case <-time.After(5 * time.Second):
		t.Fatal("not tripped")
	}
	got := 0
	buf := make([]byte, 64<<10)
	for {
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := c.Read(buf)
		got += n
		if err != nil {
			var ne net.Error
			require.ErrorAs(t, err, &ne)
			require.True(t, ne.Timeout(), "no close: %v", err)
			break
		}
	}
	assert.GreaterOrEqual(t, got, 100<<10)
	assert.Less(t, got, 1<<20)
	p.Heal()

	// CloseAll closes open (not dead) connections.
	e := dial()
	require.NoError(t, echo(e))
	p.CloseAll()
	_ = e.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = e.Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF)
}
