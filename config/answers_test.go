package config

import (
	"strings"
	"testing"
)

// The keys of the semantics issue: terminating_fallback, zone, node_detail.

func TestAnswerKeysDefaults(t *testing.T) {
	setEnv(t)
	cfg, err := Parse([]byte("discovery:\n  kubernetes: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Clusters[0]
	if !c.TerminatingFallback || c.Zone != "" || c.ZoneName != "" || c.NodeDetail {
		t.Errorf("defaults: terminating_fallback true, no zone, node_detail false; got %v %q %q %v", c.TerminatingFallback, c.Zone, c.ZoneName, c.NodeDetail)
	}
	if got := c.IgnoredForEndpoints(); got != nil {
		t.Errorf("nothing set, nothing ignored: %v", got)
	}
	// The effective configuration fills defaults, as for every key with
	// one; zone has none and is shown only when written.
	if s := effectiveJSON(t, cfg); !strings.Contains(s, `"terminating_fallback":true,"node_detail":false}`) || strings.Contains(s, "zone") {
		t.Errorf("defaults filled, no zone: %s", s)
	}
}

func TestAnswerKeys(t *testing.T) {
	setEnv(t)
	t.Setenv("NODE_ZONE", "eu-1a")
	cfg, err := Parse([]byte(`discovery:
  kubernetes:
    - id: one
      service: {host: 10.0.0.1, port: 6443}
      client: {token: x}
      watch_endpoint_slices: true
      terminating_fallback: false
      zone: ${NODE_ZONE}
      node_detail: true
    - id: two
      service: {host: 10.0.0.2, port: 6443}
      client: {token: x}
      terminating_fallback: true
      zone: b
`))
	if err != nil {
		t.Fatal(err)
	}
	one, two := cfg.Clusters[0], cfg.Clusters[1]
	if one.TerminatingFallback || one.Zone != "${NODE_ZONE}" || one.ZoneName != "eu-1a" || !one.NodeDetail {
		t.Errorf("one: %v %q %q %v", one.TerminatingFallback, one.Zone, one.ZoneName, one.NodeDetail)
	}
	if got := one.IgnoredForEndpoints(); got != nil {
		t.Errorf("watching EndpointSlices: nothing ignored, got %v", got)
	}
	if got := strings.Join(two.IgnoredForEndpoints(), ","); got != "terminating_fallback,zone" {
		t.Errorf("watching Endpoints: terminating_fallback and zone ignored, got %q", got)
	}
	s := effectiveJSON(t, cfg)
	for _, want := range []string{
		`"watch_endpoint_slices":true,"content_type":"protobuf","terminating_fallback":false,"zone":"${NODE_ZONE}","node_detail":true}`,
		`"watch_endpoint_slices":false,"content_type":"protobuf","terminating_fallback":true,"zone":"b","node_detail":false}`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("effective %s\nwants %s", s, want)
		}
	}
}

func TestAnswerKeysInvalid(t *testing.T) {
	setEnv(t, "NODE_ZONE")
	const k = "discovery:\n  kubernetes:\n"
	for _, c := range []struct{ name, yaml, want string }{
		{"fallback string", k + "    terminating_fallback: 'no'\n", "discovery.kubernetes.terminating_fallback: must be true or false"},
		{"zone number", k + "    zone: 1\n", "discovery.kubernetes.zone: must be a string (a zone name or ${ENV})"},
		{"zone unset env", k + "    zone: ${NODE_ZONE}\n", "discovery.kubernetes.zone: environment variable NODE_ZONE is not set"},
		{"detail string", k + "    node_detail: yes\n", "discovery.kubernetes.node_detail: must be true or false"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml))
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("got %v, want %q", err, c.want)
			}
		})
	}
}

// node: ${NODE_NAME} (hints.forNodes), per cluster, EndpointSlices only:
// expanded like zone, shown as written, ignored on an Endpoints cluster.
func TestNodeKey(t *testing.T) {
	setEnv(t)
	t.Setenv("NODE_NAME", "worker-7")
	cfg, err := Parse([]byte(`discovery:
  kubernetes:
    - id: one
      service: {host: 10.0.0.1, port: 6443}
      client: {token: x}
      watch_endpoint_slices: true
      node: ${NODE_NAME}
    - id: two
      service: {host: 10.0.0.2, port: 6443}
      client: {token: x}
      node: n2
      zone: b
`))
	if err != nil {
		t.Fatal(err)
	}
	one, two := cfg.Clusters[0], cfg.Clusters[1]
	if one.Node != "${NODE_NAME}" || one.NodeName != "worker-7" || two.Node != "n2" || two.NodeName != "n2" {
		t.Errorf("node as written and expanded: %q %q, %q %q", one.Node, one.NodeName, two.Node, two.NodeName)
	}
	if got := one.IgnoredForEndpoints(); got != nil {
		t.Errorf("watching EndpointSlices: nothing ignored, got %v", got)
	}
	if got := strings.Join(two.IgnoredForEndpoints(), ","); got != "zone,node" {
		t.Errorf("watching Endpoints: zone and node ignored, got %q", got)
	}
	s := effectiveJSON(t, cfg)
	for _, want := range []string{
		`"watch_endpoint_slices":true,"content_type":"protobuf","terminating_fallback":true,"node":"${NODE_NAME}","node_detail":false}`,
		`"watch_endpoint_slices":false,"content_type":"protobuf","terminating_fallback":true,"zone":"b","node":"n2","node_detail":false}`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("effective %s\nwants %s", s, want)
		}
	}

	setEnv(t, "NODE_NAME")
	const k = "discovery:\n  kubernetes:\n"
	for _, c := range []struct{ yaml, want string }{
		{k + "    node: 1\n", "discovery.kubernetes.node: must be a string (a node name or ${ENV})"},
		{k + "    node: [a]\n", "discovery.kubernetes.node: must be a string (a node name or ${ENV})"},
		{k + "    node: ${NODE_NAME}\n", "discovery.kubernetes.node: environment variable NODE_NAME is not set"},
	} {
		if _, err := Parse([]byte(c.yaml)); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %q", c.yaml, err, c.want)
		}
	}
}
