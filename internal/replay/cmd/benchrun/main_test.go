package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReport(t *testing.T) {
	in := "# services events resource format side run ready sentinel rss cpu\n" +
		"10000\t100000\tendpoints\tjson\tkdisc\t1\t100\t1000\t20480\t900\n" +
		"10000\t100000\tendpoints\tjson\tclient-go\t1\t500\t20000\t204800\t30000\n" +
		"10000\t100000\tendpoints\tjson\tkdisc\t2\t300\t3000\t30720\t1100\n" +
		"10000\t100000\tendpoints\tjson\tclient-go\t2\t700\t10000\t102400\t20000\n" +
		"10000\t100000\tendpoints\tjson\tkdisc\t3\t200\t2000\t40960\t1000\n" +
		"10000\t100000\tendpoints\tjson\tclient-go\t3\t600\t30000\t153600\t25000\n" +
		"50000\t200000\tendpointslices\tprotobuf\tkdisc\t1\t100\t1000\t10240\t900\n" +
		"50000\t200000\tendpointslices\tprotobuf\tclient-go\t1\t400\t4000\t102400\t3000\n"
	var out bytes.Buffer
	require.NoError(t, report(strings.NewReader(in), &out))
	s := out.String()
	// ready: 200 / 600 = 0.333 > 1/4; sentinel 2000 / 20000 = 0.1 <= 1/10;
	// RSS 30 / 150 = 0.2 > 1/6.
	assert.Contains(t, s, "| 10,000 / 100,000 | endpoints | json | start → ready, ms | 200 (100–300), n=3 | 600 (500–700), n=3 | 0.333 | ≤ 1/4 | **not met** |")
	assert.Contains(t, s, "| start → sentinel, ms | 2,000 (1,000–3,000), n=3 | 20,000 (10,000–30,000), n=3 | 0.100 | ≤ 1/10 | met |")
	assert.Contains(t, s, "| peak RSS, MB | 30.0 (20.0–40.0), n=3 | 150 (100–200), n=3 | 0.200 | ≤ 1/6 | **not met** |")
	assert.Contains(t, s, "| CPU (user+sys), s | 1.00 (0.90–1.10), n=3 | 25.0 (20.0–30.0), n=3 | 0.040 | — | — |")

	// Against client-go speaking protobuf: ready ≤ 1/3 (0.25 met),
	// sentinel ≤ 1/5 (0.25 not met), RSS ≤ 1/7 (0.1 met).
	assert.Contains(t, s, "| 50,000 / 200,000 | endpointslices | protobuf | start → ready, ms | 100 (100–100), n=1 | 400 (400–400), n=1 | 0.250 | ≤ 1/3 | met |")
	assert.Contains(t, s, "| start → sentinel, ms | 1,000 (1,000–1,000), n=1 | 4,000 (4,000–4,000), n=1 | 0.250 | ≤ 1/5 | **not met** |")
	assert.Contains(t, s, "| peak RSS, MB | 10.0 (10.0–10.0), n=1 | 100 (100–100), n=1 | 0.100 | ≤ 1/7 | met |")

	assert.Error(t, report(strings.NewReader("1\t2\n"), &out))
}

func TestMeasureLines(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, measure([]string{"--", "sh", "-c", "sleep 0.05; echo ready; sleep 0.05; echo sentinel; while :; do sleep 0.2; done"}, &out))
	var r Result
	require.NoError(t, json.Unmarshal(out.Bytes(), &r), out.String())
	assert.GreaterOrEqual(t, r.ReadyMs, 40.0)
	assert.GreaterOrEqual(t, r.SentinelMs, r.ReadyMs+40)
	assert.Less(t, r.SentinelMs, 5000.0, "SIGTERM ends the command")
	assert.Positive(t, r.PeakRSSKB)
}

func TestVmHWM(t *testing.T) {
	kb, err := vmHWM(os.Getpid())
	require.NoError(t, err)
	assert.Greater(t, kb, int64(1000))
}
