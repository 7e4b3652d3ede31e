package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// sample is one row of the CSV.
type sample struct {
	elapsed   time.Duration
	generated int64   // events the fake apiserver wrote
	genRate   float64 // events/s since the previous sample
	applied   int64   // watch events kdisc applied (ADDED+MODIFIED+DELETED)
	rssKB     int64   // kdisc's VmRSS
	threads   int64   // kdisc's OS threads
	fds       int64   // kdisc's open file descriptors
	tableUsed int64   // kdisc_table_bytes_used
	tableSize int64   // kdisc_table_bytes_total
	entries   int64   // kdisc_table_entries
	relists   int64
	watches   int64
	tableFull int64
	lookups   int64 // all readers
	misses    int64
	slowestNs int64 // slowest reader lookup so far
}

func takeSample(pid int, m *metricsClient, start time.Time, g *generator, readers []*readerProc) (sample, error) {
	s := sample{elapsed: time.Since(start), generated: g.n.Load()}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for line := range strings.Lines(string(status)) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			s.rssKB, _ = strconv.ParseInt(f[1], 10, 64)
		case "Threads:":
			s.threads, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, err
	}
	s.fds = int64(len(fds))
	ms, err := m.get()
	if err != nil {
		return s, err
	}
	s.tableUsed = int64(sum(ms, "kdisc_table_bytes_used"))
	s.tableSize = int64(sum(ms, "kdisc_table_bytes_total"))
	s.entries = int64(sum(ms, "kdisc_table_entries"))
	s.relists = int64(sum(ms, "kdisc_relists_total"))
	s.watches = int64(sum(ms, "kdisc_watches_total"))
	s.tableFull = int64(sum(ms, "kdisc_table_full_total"))
	s.applied = int64(sum(ms, "kdisc_events_total") - sum(ms, `kdisc_events_total{cluster="",type="BOOKMARK"}`))
	for _, r := range readers {
		rep := r.report()
		s.lookups += rep.Lookups
		s.misses += rep.Misses
		s.slowestNs = max(s.slowestNs, rep.SlowestNs)
	}
	return s, nil
}

type csvWriter struct {
	w    io.Writer
	prev *sample
}

func (c *csvWriter) header() {
	fmt.Fprintln(c.w, "elapsed_s,events,events_per_s,kdisc_applied,rss_kb,threads,fds,table_bytes_used,table_bytes_total,table_entries,relists,watches,table_full,lookups,misses,slowest_lookup_us")
}

// row writes s, filling in its event rate since the previous row.
func (c *csvWriter) row(s *sample) {
	if c.prev != nil {
		if dt := (s.elapsed - c.prev.elapsed).Seconds(); dt > 0 {
			s.genRate = float64(s.generated-c.prev.generated) / dt
		}
	}
	fmt.Fprintf(c.w, "%.0f,%d,%.0f,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d\n",
		s.elapsed.Seconds(), s.generated, s.genRate, s.applied, s.rssKB, s.threads, s.fds, s.tableUsed, s.tableSize,
		s.entries, s.relists, s.watches, s.tableFull, s.lookups, s.misses, s.slowestNs/1000)
	c.prev = s
}

// verdict says, for each series, whether it stayed flat: RSS, table bytes
// used and entries within 10% (median of the last quarter of the run
// against the median of the second quarter: the first is warm-up); threads
// and fds bounded (the second half's maximum no higher than the first
// half's).
func verdict(w io.Writer, samples []sample) bool {
	if len(samples) < 5 {
		fmt.Fprintf(w, "too few samples (%d) to judge flatness: run longer or sample more often\n", len(samples))
		return false
	}
	end := samples[len(samples)-1].elapsed
	in := func(from, to float64) []sample {
		var out []sample
		for _, s := range samples {
			f := float64(s.elapsed) / float64(end)
			if f > from && f <= to {
				out = append(out, s)
			}
		}
		return out
	}
	q2, q4 := in(0.25, 0.5), in(0.75, 1)
	h1, h2 := in(-1, 0.5), in(0.5, 1)
	if len(q2) == 0 || len(q4) == 0 {
		fmt.Fprintln(w, "too few samples in a quarter to judge flatness")
		return false
	}
	ok := true
	fmt.Fprintln(w, "series            Q2 median    Q4 median   change  verdict")
	for _, c := range []struct {
		name string
		v    func(sample) int64
	}{
		{"rss_kb", func(s sample) int64 { return s.rssKB }},
		{"table_bytes_used", func(s sample) int64 { return s.tableUsed }},
		{"table_entries", func(s sample) int64 { return s.entries }},
	} {
		a, b := median(q2, c.v), median(q4, c.v)
		change := float64(b-a) / float64(max(a, 1))
		flat := change <= 0.10 && change >= -0.10
		ok = ok && flat
		fmt.Fprintf(w, "%-16s %11d  %11d  %+6.1f%%  %s\n", c.name, a, b, 100*change, flatWord(flat))
	}
	fmt.Fprintln(w, "series          1st-half max 2nd-half max          verdict")
	for _, c := range []struct {
		name string
		v    func(sample) int64
	}{
		{"threads", func(s sample) int64 { return s.threads }},
		{"fds", func(s sample) int64 { return s.fds }},
	} {
		a, b := maxOf(h1, c.v), maxOf(h2, c.v)
		flat := b <= a
		ok = ok && flat
		fmt.Fprintf(w, "%-16s %11d  %11d           %s\n", c.name, a, b, flatWord(flat))
	}
	return ok
}

func flatWord(flat bool) string {
	if flat {
		return "flat"
	}
	return "NOT FLAT"
}

func median(ss []sample, v func(sample) int64) int64 {
	xs := make([]int64, len(ss))
	for i, s := range ss {
		xs[i] = v(s)
	}
	slices.Sort(xs)
	return xs[len(xs)/2]
}

func maxOf(ss []sample, v func(sample) int64) int64 {
	var m int64
	for _, s := range ss {
		m = max(m, v(s))
	}
	return m
}
