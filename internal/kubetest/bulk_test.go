package kubetest

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestForEach(t *testing.T) {
	var running, peak, done atomic.Int64
	seen := make([]atomic.Bool, 200)
	require.NoError(t, ForEach(context.Background(), 200, 7, func(_ context.Context, i int) error {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		seen[i].Store(true)
		done.Add(1)
		running.Add(-1)
		return nil
	}))
	assert.Equal(t, int64(200), done.Load())
	assert.LessOrEqual(t, peak.Load(), int64(7), "at most 7 at once")
	for i := range seen {
		assert.True(t, seen[i].Load(), "item %d", i)
	}

	boom := errors.New("boom")
	var calls atomic.Int64
	err := ForEach(context.Background(), 10000, 4, func(ctx context.Context, i int) error {
		calls.Add(1)
		if i == 3 {
			return boom
		}
		return nil
	})
	require.ErrorIs(t, err, boom)
	assert.Less(t, calls.Load(), int64(10000), "stops handing out work after an error")

	c, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, ForEach(c, 10, 2, func(context.Context, int) error { return nil }), context.Canceled)
	assert.NoError(t, ForEach(context.Background(), 0, 2, func(context.Context, int) error { return nil }))
}
