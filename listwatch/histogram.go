package listwatch

import (
	"math"
	"sync/atomic"
	"time"
)

// Histogram counts durations into fixed buckets, lock-free: Observe is a
// few atomic adds, safe from any goroutine, and never allocates. It is
// what /metrics shows as a Prometheus histogram (seconds).
type Histogram struct {
	bounds []float64       // upper bounds in seconds, ascending; le is inclusive
	counts []atomic.Uint64 // per bucket, not cumulative; the last is above every bound
	sum    atomic.Uint64   // float64 bits of the sum of observations, in seconds
}

// NewHistogram returns a histogram with the given upper bounds in seconds
// (ascending).
func NewHistogram(bounds ...float64) *Histogram {
	return &Histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

// Observe records one duration. A nil Histogram ignores it.
func (h *Histogram) Observe(d time.Duration) {
	if h == nil {
		return
	}
	s := d.Seconds()
	i := 0
	for i < len(h.bounds) && s > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+s)) {
			return
		}
	}
}

// HistogramSnapshot is a histogram read at one moment, as Prometheus shows
// it: Cumulative[i] counts the observations <= Bounds[i]; Count (the +Inf
// bucket) counts them all.
type HistogramSnapshot struct {
	Bounds     []float64
	Cumulative []uint64
	Count      uint64
	Sum        float64
}

// Snapshot reads the histogram. Count is the sum of the buckets read, so
// the buckets never exceed it even while observations land; Sum may lag
// or lead them by the observations in flight.
func (h *Histogram) Snapshot() HistogramSnapshot {
	if h == nil {
		return HistogramSnapshot{}
	}
	s := HistogramSnapshot{Bounds: h.bounds, Cumulative: make([]uint64, len(h.bounds))}
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
		if i < len(h.bounds) {
			s.Cumulative[i] = n
		}
	}
	s.Count = n
	s.Sum = math.Float64frombits(h.sum.Load())
	return s
}
