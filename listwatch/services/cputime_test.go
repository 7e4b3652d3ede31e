package services

import (
	"syscall"
	"testing"
	"time"
)

// cpuTimer reports a benchmark's process CPU time per op beside its wall
// time: on a shared machine wall time swings with other load, the CPU the
// benchmark itself used much less (bench/README.md).
type cpuTimer struct{ start time.Duration }

func startCPU(b *testing.B) *cpuTimer {
	b.Helper()
	return &cpuTimer{start: processCPU(b)}
}

func (c *cpuTimer) report(b *testing.B, perOp float64) {
	b.Helper()
	used := processCPU(b) - c.start
	b.ReportMetric(float64(used.Nanoseconds())/float64(b.N)/perOp, "cpu-ns/op")
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
