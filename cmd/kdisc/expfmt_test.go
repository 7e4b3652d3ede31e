package main

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// family is one metric family of a Prometheus text exposition.
type family struct {
	name, help, typ string
	samples         []sample
}

type sample struct {
	name   string
	labels [][2]string // in order
	value  float64
}

var (
	metricName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelName  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// parseExposition parses Prometheus text format 0.0.4 strictly: every
// line a HELP, a TYPE or a sample (kdisc writes no other comment and no
// blank line); HELP and TYPE once per family and before its samples;
// a family's samples together; names and label names valid, label values
// escaped only as \\, \" and \n; no repeated label or series; counters
// non-negative and named _total; histograms with _bucket (le ascending,
// counts non-decreasing, ending at +Inf equal to _count), _sum and _count
// for every label set.
func parseExposition(text string) ([]*family, error) {
	if !strings.HasSuffix(text, "\n") {
		return nil, fmt.Errorf("exposition does not end with a newline")
	}
	var fams []*family
	byName := map[string]*family{}
	var cur *family
	seen := map[string]bool{}
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		errf := func(format string, a ...any) error {
			return fmt.Errorf("line %d %q: %s", i+1, line, fmt.Sprintf(format, a...))
		}
		if rest, ok := strings.CutPrefix(line, "# "); ok {
			kw, rest, _ := strings.Cut(rest, " ")
			name, arg, ok := strings.Cut(rest, " ")
			if !ok || !metricName.MatchString(name) {
				return nil, errf("bad metric name")
			}
			f := byName[name]
			if f == nil {
				f = &family{name: name}
				byName[name] = f
				fams = append(fams, f)
			} else if f != cur || len(f.samples) > 0 {
				return nil, errf("HELP/TYPE of %s after its samples or apart from its other comment", name)
			}
			cur = f
			switch kw {
			case "HELP":
				if f.help != "" {
					return nil, errf("second HELP")
				}
				if err := checkEscapes(arg, false); err != nil {
					return nil, errf("%v", err)
				}
				f.help = arg
			case "TYPE":
				if f.typ != "" {
					return nil, errf("second TYPE")
				}
				if !slices.Contains([]string{"counter", "gauge", "histogram", "summary", "untyped"}, arg) {
					return nil, errf("unknown type %q", arg)
				}
				f.typ = arg
			default:
				return nil, errf("unknown comment keyword %q", kw)
			}
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			return nil, errf("blank line or free comment")
		}
		s, err := parseSample(line)
		if err != nil {
			return nil, errf("%v", err)
		}
		if cur == nil || !belongs(cur, s.name) {
			return nil, errf("sample outside its family's block (HELP/TYPE first, samples together)")
		}
		key := s.name + fmt.Sprint(s.labels)
		if seen[key] {
			return nil, errf("repeated series")
		}
		seen[key] = true
		cur.samples = append(cur.samples, s)
	}
	for _, f := range fams {
		if f.typ == "" || f.help == "" {
			return nil, fmt.Errorf("%s: no TYPE or no HELP", f.name)
		}
		if err := checkFamily(f); err != nil {
			return nil, fmt.Errorf("%s: %v", f.name, err)
		}
	}
	return fams, nil
}

func belongs(f *family, name string) bool {
	if f.typ == "histogram" {
		return name == f.name+"_bucket" || name == f.name+"_sum" || name == f.name+"_count"
	}
	return name == f.name
}

// checkEscapes accepts only \\ and \n (and \" in label values).
func checkEscapes(s string, quote bool) error {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i+1 == len(s) {
				return fmt.Errorf("dangling backslash")
			}
			i++
			if c := s[i]; c != '\\' && c != 'n' && !(quote && c == '"') {
				return fmt.Errorf("bad escape \\%c", c)
			}
		case '"':
			if quote {
				return fmt.Errorf("unescaped quote")
			}
		case '\n':
			return fmt.Errorf("raw newline")
		}
	}
	return nil
}

func parseSample(line string) (sample, error) {
	var s sample
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		return s, fmt.Errorf("no value")
	}
	s.name = line[:i]
	if !metricName.MatchString(s.name) {
		return s, fmt.Errorf("bad metric name %q", s.name)
	}
	rest := line[i:]
	if rest[0] == '{' {
		rest = rest[1:]
		names := map[string]bool{}
		for !strings.HasPrefix(rest, "}") {
			eq := strings.Index(rest, `="`)
			if eq < 0 {
				return s, fmt.Errorf("label without =\"")
			}
			ln := rest[:eq]
			if !labelName.MatchString(ln) || strings.HasPrefix(ln, "__") {
				return s, fmt.Errorf("bad label name %q", ln)
			}
			if names[ln] {
				return s, fmt.Errorf("repeated label %q", ln)
			}
			names[ln] = true
			rest = rest[eq+2:]
			end := -1
			for j := 0; j < len(rest); j++ {
				if rest[j] == '\\' {
					j++
					continue
				}
				if rest[j] == '"' {
					end = j
					break
				}
			}
			if end < 0 {
				return s, fmt.Errorf("unterminated label value")
			}
			v := rest[:end]
			if err := checkEscapes(v, true); err != nil {
				return s, fmt.Errorf("label %s: %v", ln, err)
			}
			v = strings.NewReplacer(`\\`, `\`, `\"`, `"`, `\n`, "\n").Replace(v)
			s.labels = append(s.labels, [2]string{ln, v})
			rest = rest[end+1:]
			if strings.HasPrefix(rest, ",") {
				rest = rest[1:]
				if strings.HasPrefix(rest, "}") {
					continue // a trailing comma is allowed
				}
			} else if !strings.HasPrefix(rest, "}") {
				return s, fmt.Errorf("want , or } after a label")
			}
		}
		rest = rest[1:]
	}
	if !strings.HasPrefix(rest, " ") || strings.HasPrefix(rest, "  ") {
		return s, fmt.Errorf("want one space before the value")
	}
	fields := strings.Split(rest[1:], " ")
	if len(fields) > 2 {
		return s, fmt.Errorf("trailing text")
	}
	v, err := parseValue(fields[0])
	if err != nil {
		return s, err
	}
	s.value = v
	if len(fields) == 2 {
		if _, err := strconv.ParseInt(fields[1], 10, 64); err != nil {
			return s, fmt.Errorf("bad timestamp")
		}
	}
	return s, nil
}

func parseValue(f string) (float64, error) {
	switch f {
	case "+Inf":
		return math.Inf(1), nil
	case "-Inf":
		return math.Inf(-1), nil
	case "NaN":
		return math.NaN(), nil
	}
	if strings.ContainsAny(f, "_xXpP") || strings.EqualFold(f, "inf") || strings.EqualFold(f, "infinity") {
		return 0, fmt.Errorf("bad value %q", f)
	}
	v, err := strconv.ParseFloat(f, 64)
	if err != nil {
		return 0, fmt.Errorf("bad value %q", f)
	}
	return v, nil
}

func labelsWithout(ls [][2]string, drop string) string {
	var b strings.Builder
	for _, l := range ls {
		if l[0] != drop {
			fmt.Fprintf(&b, "%s=%q,", l[0], l[1])
		}
	}
	return b.String()
}

func checkFamily(f *family) error {
	switch f.typ {
	case "counter":
		if !strings.HasSuffix(f.name, "_total") {
			return fmt.Errorf("counter not named _total")
		}
		for _, s := range f.samples {
			if s.value < 0 || math.IsNaN(s.value) {
				return fmt.Errorf("counter value %v", s.value)
			}
		}
	case "histogram":
		type series struct {
			les            []float64
			counts         []float64
			sum, count     float64
			hasSum, hasCnt bool
		}
		byLabels := map[string]*series{}
		var order []string
		get := func(k string) *series {
			if byLabels[k] == nil {
				byLabels[k] = &series{}
				order = append(order, k)
			}
			return byLabels[k]
		}
		for _, s := range f.samples {
			switch s.name {
			case f.name + "_bucket":
				var le string
				for _, l := range s.labels {
					if l[0] == "le" {
						le = l[1]
					}
				}
				if le == "" {
					return fmt.Errorf("bucket without le")
				}
				b, err := parseValue(le)
				if err != nil || math.IsNaN(b) {
					return fmt.Errorf("bad le %q", le)
				}
				sr := get(labelsWithout(s.labels, "le"))
				if n := len(sr.les); n > 0 && b <= sr.les[n-1] {
					return fmt.Errorf("le %q not ascending", le)
				}
				if n := len(sr.counts); n > 0 && s.value < sr.counts[n-1] {
					return fmt.Errorf("bucket le=%q count %v below the previous", le, s.value)
				}
				sr.les, sr.counts = append(sr.les, b), append(sr.counts, s.value)
			case f.name + "_sum":
				sr := get(labelsWithout(s.labels, ""))
				sr.sum, sr.hasSum = s.value, true
			case f.name + "_count":
				sr := get(labelsWithout(s.labels, ""))
				sr.count, sr.hasCnt = s.value, true
			}
		}
		for _, k := range order {
			sr := byLabels[k]
			n := len(sr.les)
			if n == 0 || !math.IsInf(sr.les[n-1], 1) {
				return fmt.Errorf("{%s}: no +Inf bucket", k)
			}
			if !sr.hasSum || !sr.hasCnt {
				return fmt.Errorf("{%s}: no _sum or _count", k)
			}
			if sr.counts[n-1] != sr.count {
				return fmt.Errorf("{%s}: +Inf bucket %v != _count %v", k, sr.counts[n-1], sr.count)
			}
		}
	}
	return nil
}

// The parser refuses what it should.
func TestParseExpositionIsStrict(t *testing.T) {
	good := "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"q\\\"\\\\\\n\"} 1\n" +
		"# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"0.1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.3\nh_count 2\n"
	_, err := parseExposition(good)
	require.NoError(t, err)
	for name, bad := range map[string]string{
		"no newline":      "# HELP a_total A.\n# TYPE a_total counter\na_total 1",
		"no TYPE":         "# HELP a_total A.\na_total 1\n",
		"bad escape":      "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"\\t\"} 1\n",
		"bad label":       "# HELP a_total A.\n# TYPE a_total counter\na_total{0x=\"\"} 1\n",
		"repeated label":  "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"\",x=\"\"} 1\n",
		"repeated series": "# HELP a_total A.\n# TYPE a_total counter\na_total 1\na_total 2\n",
		"negative":        "# HELP a_total A.\n# TYPE a_total counter\na_total -1\n",
		"not _total":      "# HELP a A.\n# TYPE a counter\na 1\n",
		"bad value":       "# HELP a_total A.\n# TYPE a_total counter\na_total one\n",
		"two spaces":      "# HELP a_total A.\n# TYPE a_total counter\na_total  1\n",
		"interleaved":     "# HELP a A.\n# TYPE a gauge\n# HELP b B.\n# TYPE b gauge\nb 1\na 1\n",
		"no +Inf":         "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"0.1\"} 1\nh_sum 0.3\nh_count 1\n",
		"+Inf != count":   "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.3\nh_count 1\n",
		"not monotonic":   "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"0.1\"} 3\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.3\nh_count 2\n",
		"le descending":   "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"0.1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 0.3\nh_count 1\n",
		"no _sum":         "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
	} {
		_, err := parseExposition(bad)
		assert.Error(t, err, name)
	}
}

// TestMetricsExposition parses a live `kdisc run`'s /metrics strictly,
// after a list and watch events, in multi mode.
func TestMetricsExposition(t *testing.T) {
	a, b := newAPI(t), newAPI(t)
	a.PutEndpoints(endpoints("default", "web", "http", 80, "10.1.0.1"))
	cfg := writeConfig(t, []string{"first", "second"}, a, b)
	s := startRun(t, cfg, t.TempDir())
	waitReady(t, s)
	a.WaitWatchers(1)
	for i := range 5 {
		a.PutEndpoints(endpoints("default", "web", "http", 80, fmt.Sprintf("10.1.0.%d", i+2)))
	}
	// Readiness is set before a list's duration is observed, and an
	// event's latency after its table write: wait for both counts.
	var code int
	var body string
	eventually(t, "5 events applied and second's list observed", func() bool {
		code, body = s.Get("/metrics")
		return strings.Contains(body, `kdisc_event_apply_seconds_count{cluster="first"} 5`+"\n") &&
			strings.Contains(body, `kdisc_list_duration_seconds_count{cluster="second"} 1`+"\n")
	})
	require.Equal(t, 200, code)
	fams, err := parseExposition(body)
	require.NoError(t, err, body)

	types := map[string]string{}
	for _, f := range fams {
		types[f.name] = f.typ
	}
	for name, typ := range map[string]string{
		"kdisc_event_apply_seconds":      "histogram",
		"kdisc_list_duration_seconds":    "histogram",
		"kdisc_watch_duration_seconds":   "histogram",
		"kdisc_apiserver_requests_total": "counter",
		"kdisc_objects_skipped_total":    "counter",
		"kdisc_table_full_total":         "counter",
		"kdisc_ready":                    "gauge",
		"kdisc_streaming_list":           "gauge",
		"kdisc_lists_by_mode_total":      "counter",
		"kdisc_services_truncated":       "gauge",
	} {
		assert.Equal(t, typ, types[name], name)
	}
	assert.Contains(t, body, `kdisc_list_duration_seconds_count{cluster="second"} 1`+"\n")
	assert.Contains(t, body, `kdisc_objects_skipped_total{cluster="first",reason="malformed"} 0`+"\n")
}
