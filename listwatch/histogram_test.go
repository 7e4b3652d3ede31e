package listwatch

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestHistogramBucketsAreCumulative(t *testing.T) {
	h := NewHistogram(0.001, 0.01, 0.1)
	for _, d := range []time.Duration{500 * time.Microsecond, time.Millisecond, 5 * time.Millisecond, 50 * time.Millisecond, time.Second} {
		h.Observe(d)
	}
	s := h.Snapshot()
	assert.Equal(t, []float64{0.001, 0.01, 0.1}, s.Bounds)
	// le is inclusive: 1 ms falls in the 0.001 bucket.
	assert.Equal(t, []uint64{2, 3, 4}, s.Cumulative)
	assert.Equal(t, uint64(5), s.Count)
	assert.InDelta(t, 1.0565, s.Sum, 1e-9)
}

func TestHistogramConcurrent(t *testing.T) {
	h := NewHistogram(0.001, 0.01)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 1000 {
				h.Observe(2 * time.Millisecond)
			}
		})
	}
	wg.Go(func() {
		for range 100 {
			s := h.Snapshot()
			// +Inf (Count) is never below a finite bucket.
			assert.LessOrEqual(t, s.Cumulative[len(s.Cumulative)-1], s.Count)
		}
	})
	wg.Wait()
	s := h.Snapshot()
	assert.Equal(t, uint64(4000), s.Count)
	assert.Equal(t, []uint64{0, 4000}, s.Cumulative)
	assert.InDelta(t, 8.0, s.Sum, 1e-6)
}

func TestNilHistogramIgnoresObservations(t *testing.T) {
	var h *Histogram
	h.Observe(time.Second)
	assert.Equal(t, uint64(0), h.Snapshot().Count)
}
