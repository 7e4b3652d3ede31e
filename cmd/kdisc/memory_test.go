package main

import (
	"testing"

	"github.com/kdisc/kdisc/config"
)

func TestGCDefaults(t *testing.T) {
	cfg := &config.Config{Clusters: []config.Cluster{{SharedSizeBytes: 1 << 20}, {SharedSizeBytes: 4 << 20}}}
	env := func(vars map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	}
	for _, tc := range []struct {
		name    string
		env     map[string]string
		percent int
		limit   int64
	}{
		{"defaults", nil, 50, 32<<20 + 4*5<<20},
		{"GOGC wins", map[string]string{"GOGC": "200"}, -1, 32<<20 + 4*5<<20},
		{"GOGC=off wins", map[string]string{"GOGC": "off"}, -1, 32<<20 + 4*5<<20},
		{"GOMEMLIMIT wins", map[string]string{"GOMEMLIMIT": "1GiB"}, 50, -1},
		{"both", map[string]string{"GOGC": "100", "GOMEMLIMIT": "off"}, -1, -1},
		{"empty is unset", map[string]string{"GOGC": "", "GOMEMLIMIT": ""}, 50, 32<<20 + 4*5<<20},
	} {
		got := gcDefaults(cfg, env(tc.env))
		if got.percent != tc.percent || got.limit != tc.limit {
			t.Errorf("%s: got %+v, want percent %d limit %d", tc.name, got, tc.percent, tc.limit)
		}
	}
}
