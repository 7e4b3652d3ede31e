// Package cputime reports a benchmark's process CPU time per operation
// beside its wall time: on a shared machine wall time swings with other
// load, the CPU the benchmark itself used much less (bench/README.md).
package cputime

import (
	"syscall"
	"testing"
	"time"
)

// Timer measures the process's CPU time from Start to Report.
type Timer struct{ start time.Duration }

// Start begins measuring; call it after the benchmark's setup.
func Start(b *testing.B) *Timer {
	b.Helper()
	return &Timer{start: process(b)}
}

// Report adds the metric cpu-ns/op: the CPU time used since Start,
// divided by b.N and by perOp (the units one b.N iteration handles).
func (t *Timer) Report(b *testing.B, perOp float64) {
	b.Helper()
	used := process(b) - t.start
	b.ReportMetric(float64(used.Nanoseconds())/float64(b.N)/perOp, "cpu-ns/op")
}

func process(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
