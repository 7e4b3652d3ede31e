package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// benchOut is `kdisc bench -o json`, every contract key required.
type benchOut struct {
	OpsPerSec   *float64 `json:"ops_per_sec"`
	NsPerOp     *float64 `json:"ns_per_op"`
	P50         *int64   `json:"p50_ns"`
	P90         *int64   `json:"p90_ns"`
	P99         *int64   `json:"p99_ns"`
	P999        *int64   `json:"p999_ns"`
	Max         *int64   `json:"max_ns"`
	AllocsPerOp *float64 `json:"allocs_per_op"`
	NotFound    uint64   `json:"not_found"`
	Baseline    map[string]benchOut
}

func checkBenchOut(t *testing.T, what string, o benchOut) {
	t.Helper()
	for name, v := range map[string]any{"ops_per_sec": o.OpsPerSec, "ns_per_op": o.NsPerOp, "p50_ns": o.P50, "p90_ns": o.P90,
		"p99_ns": o.P99, "p999_ns": o.P999, "max_ns": o.Max, "allocs_per_op": o.AllocsPerOp} {
		require.NotNil(t, v, "%s: key %s missing", what, name)
	}
	// A rate, not a bound: how fast depends on the machine and its load
	// (bench/ records the rates); a loaded CI gave a goroutine no CPU for
	// the whole 200 ms.
	assert.Positive(t, *o.OpsPerSec, what)
	assert.InEpsilon(t, 1e9 / *o.OpsPerSec, *o.NsPerOp, 0.01, what)
	assert.True(t, *o.P50 <= *o.P90 && *o.P90 <= *o.P99 && *o.P99 <= *o.P999 && *o.P999 <= *o.Max,
		"%s: percentiles in order: %d %d %d %d %d", what, *o.P50, *o.P90, *o.P99, *o.P999, *o.Max)
	assert.Positive(t, *o.Max, what)
	assert.Less(t, *o.AllocsPerOp, 0.01, "%s: lookups do not allocate", what)
	assert.Zero(t, o.NotFound, what)
}

func TestBenchSynthetic(t *testing.T) {
	r := kdiscRun(t, "bench", "-services", "500", "-ports", "2", "-addrs", "4", "-duration", "200ms",
		"-parallel", "2", "-keys", "zipf", "-baseline", "-o", "json")
	require.Equal(t, exitOK, r.Code, r.Stderr)
	var out benchOut
	require.NoError(t, json.Unmarshal([]byte(r.Stdout), &out), r.Stdout)
	checkBenchOut(t, "kdisc", out)
	require.Len(t, out.Baseline, 2)
	checkBenchOut(t, "rwmutex_map", out.Baseline["rwmutex_map"])
	checkBenchOut(t, "sync_map", out.Baseline["sync_map"])

	// Text, the default; progress goes to stderr (plain lines: no terminal).
	r = kdiscRun(t, "bench", "-services", "100", "-duration", "1100ms")
	require.Equal(t, exitOK, r.Code, r.Stderr)
	assert.Contains(t, r.Stdout, "100 services × 1 port(s) × 3 address(es)")
	assert.Contains(t, r.Stdout, "lookups/s")
	assert.Contains(t, r.Stdout, "p99.9")
	assert.Regexp(t, `(?m)^kdisc bench: kdisc [0-9]+s/1s, [0-9.]+M lookups/s$`, r.Stderr) // once a second, by the ticker
	assert.NotContains(t, r.Stderr, "\r")
}

func TestBenchAttached(t *testing.T) {
	api := newAPI(t)
	for i := range 20 {
		api.PutEndpoints(endpoints("default", fmt.Sprintf("web-%d", i), "http", 8080, "10.5.10.1", "10.5.10.2"))
	}
	cfg := writeConfig(t, nil, api)
	dir := t.TempDir()
	s := startRun(t, cfg, dir)
	waitReady(t, s)

	r := kdiscRun(t, "bench", "-config", cfg, "-shm-dir", dir, "-duration", "200ms", "-baseline", "-o", "json")
	require.Equal(t, exitOK, r.Code, r.Stderr)
	var out benchOut
	require.NoError(t, json.Unmarshal([]byte(r.Stdout), &out), r.Stdout)
	checkBenchOut(t, "kdisc", out)
	checkBenchOut(t, "rwmutex_map", out.Baseline["rwmutex_map"])

	r = kdiscRun(t, "bench", "-config", cfg, "-shm-dir", dir, "-duration", "200ms")
	require.Equal(t, exitOK, r.Code, r.Stderr)
	assert.Contains(t, r.Stdout, "20 keys (service × port)")

	// No kdisc run there: nothing to measure.
	r = kdiscRun(t, "bench", "-config", cfg, "-shm-dir", t.TempDir(), "-duration", "200ms")
	assert.Equal(t, exitError, r.Code)
	assert.Contains(t, r.Stderr, "the tables hold no service (not ready")
}

func TestBenchUsage(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-keys", "pareto"}, "-keys must be uniform or zipf"},
		{[]string{"-o", "yaml"}, "-o must be text or json"},
		{[]string{"-services", "0"}, "must be at least 1"},
		{[]string{"-parallel", "0"}, "-parallel must be at least 1"},
		{[]string{"-duration", "0s"}, "-duration must be positive"},
		{[]string{"-config", "x.yaml", "-kubeconfig", "y"}, "-config and -kubeconfig go not together"},
		{[]string{"-context", "c"}, "-context needs -kubeconfig"},
	} {
		r := kdiscRun(t, append([]string{"bench"}, tt.args...)...)
		assert.Equal(t, exitError, r.Code, "%v", tt.args)
		assert.Contains(t, r.Stderr, tt.want, "%v", tt.args)
		assert.Empty(t, r.Stdout, "%v", tt.args)
	}
}

func TestHistogram(t *testing.T) {
	var h histogram
	r := rand.New(rand.NewPCG(1, 2))
	var vs []int64
	for range 100000 {
		v := int64(r.ExpFloat64() * 200)
		vs = append(vs, v)
		h.record(v)
	}
	slices.Sort(vs)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := float64(vs[int(q*float64(len(vs)-1))])
		got := float64(h.quantile(q))
		assert.LessOrEqual(t, math.Abs(got-want), math.Max(2, want*0.035), "q%v: got %v want %v", q, got, want)
	}
	assert.Equal(t, vs[len(vs)-1], h.max)
	assert.Equal(t, vs[len(vs)-1], h.quantile(1))
	for v := int64(0); v < 1<<40; v += 1 + v/97 {
		b := bucket(v)
		if v >= 64 {
			assert.InEpsilon(t, float64(v), float64(bucketValue(b)), 0.035)
		} else {
			assert.Equal(t, v, bucketValue(b))
		}
	}
}

// A candidate that completed no lookup (a run shorter than the goroutines'
// first batch, on a starved machine) still prints valid JSON: it printed
// nothing and exited 0 before (allocs_per_op 0/0 is NaN, which
// encoding/json refuses, and the error was dropped).
func TestBenchJSONOfACandidateWithoutLookups(t *testing.T) {
	r := benchResult{name: "kdisc", elapsed: 200 * time.Millisecond}
	b, err := json.Marshal(r.json())
	require.NoError(t, err)
	assert.Contains(t, string(b), `"lookups":0`)
}
