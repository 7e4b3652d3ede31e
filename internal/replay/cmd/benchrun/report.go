package main

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// A results file has one tab-separated line per run:
//
//	services events resource format side run ready_ms sentinel_ms peak_rss_kb cpu_ms
//
// format is "json" or "protobuf" (what both sides spoke), side is "kdisc"
// or "client-go"; lines starting with # are ignored.

type group struct {
	services, events int
	resource, format string
}

type metric struct {
	name string
	get  func(sample) float64
	// target is the bound on kdisc / client-go for a group, 0: none.
	target func(g group) float64
}

type sample struct{ ready, sentinel, rssKB, cpu float64 }

// The targets: against client-go speaking protobuf (issue 15) ready ≤ 1/3,
// sentinel ≤ 1/5, peak RSS ≤ 1/7 at both sizes; against client-go speaking
// JSON, the earlier performance issue's.
var metrics = []metric{
	{"start → ready, ms", func(s sample) float64 { return s.ready }, func(g group) float64 {
		if g.format == "protobuf" {
			return 1.0 / 3
		}
		return 0.25
	}},
	{"start → sentinel, ms", func(s sample) float64 { return s.sentinel }, func(g group) float64 {
		if g.format == "protobuf" {
			return map[int]float64{10000: 1.0 / 5, 50000: 1.0 / 5}[g.services]
		}
		return map[int]float64{10000: 1.0 / 10, 50000: 1.0 / 8}[g.services]
	}},
	{"peak RSS, MB", func(s sample) float64 { return s.rssKB / 1024 }, func(g group) float64 {
		if g.format == "protobuf" {
			return map[int]float64{10000: 1.0 / 7, 50000: 1.0 / 7}[g.services]
		}
		return map[int]float64{10000: 1.0 / 6, 50000: 1.0 / 8}[g.services]
	}},
	{"CPU (user+sys), s", func(s sample) float64 { return s.cpu / 1000 }, func(group) float64 { return 0 }},
}

func report(r io.Reader, w io.Writer) error {
	runs := map[group]map[string][]sample{}
	var order []group
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		f := strings.Split(text, "\t")
		if len(f) != 10 {
			return fmt.Errorf("line %d: want 10 tab-separated fields, got %d", line, len(f))
		}
		var n [6]float64
		for i, s := range []string{f[0], f[1], f[6], f[7], f[8], f[9]} {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return fmt.Errorf("line %d: %v", line, err)
			}
			n[i] = v
		}
		g := group{int(n[0]), int(n[1]), f[2], f[3]}
		if runs[g] == nil {
			runs[g] = map[string][]sample{}
			order = append(order, g)
		}
		runs[g][f[4]] = append(runs[g][f[4]], sample{n[2], n[3], n[4], n[5]})
	}
	if err := sc.Err(); err != nil {
		return err
	}
	fmt.Fprintln(w, "| services / events | resource | format | metric | kdisc | client-go | kdisc / client-go | target | met |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | --- |")
	for _, g := range order {
		k, c := runs[g]["kdisc"], runs[g]["client-go"]
		for _, m := range metrics {
			km, kspread := summary(k, m.get)
			cm, cspread := summary(c, m.get)
			ratio, target, met := "—", "—", "—"
			if km > 0 && cm > 0 {
				q := km / cm
				ratio = fmt.Sprintf("%.3f", q)
				if t := m.target(g); t > 0 {
					target = "≤ " + fraction(t)
					met = map[bool]string{true: "met", false: "**not met**"}[q <= t]
				}
			}
			fmt.Fprintf(w, "| %s / %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
				thousands(g.services), thousands(g.events), g.resource, g.format, m.name,
				kspread, cspread, ratio, target, met)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Median of n runs (min–max). Ratios are of the medians.")
	return nil
}

// summary is the median and "median (min–max), n" of the samples.
func summary(ss []sample, get func(sample) float64) (float64, string) {
	if len(ss) == 0 {
		return 0, "—"
	}
	v := make([]float64, len(ss))
	for i, s := range ss {
		v[i] = get(s)
	}
	m := median(v)
	return m, fmt.Sprintf("%s (%s–%s), n=%d", num(m), num(slices.Min(v)), num(slices.Max(v)), len(v))
}

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.SortFunc(v, cmp.Compare)
	if n := len(v); n%2 == 1 {
		return v[n/2]
	} else {
		return (v[n/2-1] + v[n/2]) / 2
	}
}

func num(f float64) string {
	switch {
	case f >= 100:
		return thousands(int(f + 0.5))
	case f >= 10:
		return strconv.FormatFloat(f, 'f', 1, 64)
	default:
		return strconv.FormatFloat(f, 'f', 2, 64)
	}
}

func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func fraction(t float64) string {
	return "1/" + strconv.Itoa(int(1/t+0.5))
}
