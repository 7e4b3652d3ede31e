package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc"
	"github.com/kdisc/kdisc/config"
	"github.com/kdisc/kdisc/internal/kubetest"
)

// startGo runs kdisc in this process (the Go API) on the config text.
func startGo(t *testing.T, configYAML string) *kdisc.Discovery {
	t.Helper()
	cfg, err := config.Parse([]byte(configYAML))
	require.NoError(t, err)
	d := startConfig(t, cfg)
	eventually(t, 20*time.Second, "kdisc ready", func() (bool, string) {
		return d.Ready(), fmt.Sprint(d.NotReady())
	})
	return d
}

// startConfig runs kdisc in this process on cfg, logging nowhere, until the
// test ends; it does not wait for readiness.
func startConfig(t *testing.T, cfg *config.Config) *kdisc.Discovery {
	t.Helper()
	c, cancel := context.WithCancel(context.Background())
	d, err := kdisc.Start(c, cfg, kdisc.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	require.NoError(t, err)
	t.Cleanup(func() { cancel(); d.Close() })
	return d
}

// hosts returns the nodes of service as "host:port" strings, nil when not
// found.
func hosts(d *kdisc.Discovery, service string) []string {
	nodes, ok := d.Nodes(nil, service)
	if !ok {
		return nil
	}
	out := []string{}
	for _, n := range nodes {
		out = append(out, fmt.Sprintf("%s:%d/%d", n.Host(), n.Port, n.Weight))
	}
	return out
}

func waitHosts(t *testing.T, d *kdisc.Discovery, service string, want ...string) {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprintf("%s = %v", service, want), func() (bool, string) {
		got := hosts(d, service)
		return fmt.Sprint(got) == fmt.Sprint(want) && (got == nil) == (want == nil), fmt.Sprint(got)
	})
}

// TestEndpointSlicesGoAPI: a service spread over several slices of every
// address type, readiness rules, de-duplication, scale and delete.
func TestEndpointSlicesGoAPI(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c.APIServer, "e2e-slices")
	yes, no := kubetest.Ptr(true), kubetest.Ptr(false)
	apply := func(s kubetest.EndpointSlice) {
		t.Helper()
		_, err := c.ApplyEndpointSlice(ctx(t), ns, s)
		require.NoError(t, err)
	}
	apply(kubetest.EndpointSlice{Name: "web-a", Service: "web", Ports: []kubetest.SlicePort{kubetest.Port("http", 8080)},
		Endpoints: []kubetest.SliceEndpoint{
			{Addresses: []string{"10.40.0.2"}, Conditions: &kubetest.EndpointConditions{Ready: yes}},
			{Addresses: []string{"10.40.0.9"}, Conditions: &kubetest.EndpointConditions{Ready: no}},
			{Addresses: []string{"10.40.0.3"}}, // no conditions: ready
		}})
	apply(kubetest.EndpointSlice{Name: "web-b", Service: "web", Ports: []kubetest.SlicePort{kubetest.Port("http", 8080), kubetest.Port("", 9090)},
		Endpoints: []kubetest.SliceEndpoint{{Addresses: []string{"10.40.0.1"}}, {Addresses: []string{"10.40.0.2"}}}})
	apply(kubetest.EndpointSlice{Name: "web-v6", Service: "web", AddressType: "IPv6", Ports: []kubetest.SlicePort{kubetest.Port("http", 8080)},
		Endpoints: []kubetest.SliceEndpoint{{Addresses: []string{"fd00:40::1"}}}})
	apply(kubetest.EndpointSlice{Name: "ext", Service: "ext", AddressType: "FQDN", Ports: []kubetest.SlicePort{kubetest.Port("https", 443)},
		Endpoints: []kubetest.SliceEndpoint{{Addresses: []string{"api.example.com"}}}})

	d := startGo(t, singleConfig(c.KdiscCluster("watch_endpoint_slices: true\ndefault_weight: 7\nnamespace_selector:\n  equal: "+ns+"\n")))

	assert.Equal(t, []string{"10.40.0.1:8080/7", "10.40.0.2:8080/7", "10.40.0.3:8080/7", "fd00:40::1:8080/7"}, hosts(d, ns+"/web:http"),
		"slices merged; shared address once; not-ready out; absent conditions ready")
	assert.Equal(t, []string{"10.40.0.1:9090/7", "10.40.0.2:9090/7"}, hosts(d, ns+"/web:9090"))
	assert.Equal(t, []string{"api.example.com:443/7"}, hosts(d, ns+"/ext:https"))

	// Scale: the not-ready endpoint becomes ready; a slice goes away.
	apply(kubetest.EndpointSlice{Name: "web-a", Service: "web", Ports: []kubetest.SlicePort{kubetest.Port("http", 8080)},
		Endpoints: []kubetest.SliceEndpoint{{Addresses: []string{"10.40.0.9"}, Conditions: &kubetest.EndpointConditions{Ready: yes}}}})
	waitHosts(t, d, ns+"/web:http", "10.40.0.1:8080/7", "10.40.0.2:8080/7", "10.40.0.9:8080/7", "fd00:40::1:8080/7")
	require.NoError(t, c.DeleteEndpointSlice(ctx(t), ns, "web-b"))
	waitHosts(t, d, ns+"/web:http", "10.40.0.9:8080/7", "fd00:40::1:8080/7")
	waitHosts(t, d, ns+"/web:9090")
	require.NoError(t, c.DeleteEndpointSlice(ctx(t), ns, "web-a"))
	require.NoError(t, c.DeleteEndpointSlice(ctx(t), ns, "web-v6"))
	waitHosts(t, d, ns+"/web:http")

	// Zero allocations on a warm buffer, against the real thing too.
	buf := make([]kdisc.Node, 0, 4)
	allocs := testing.AllocsPerRun(1000, func() { _, _ = d.Nodes(buf[:0], ns+"/ext:https") })
	assert.Zero(t, allocs)
}

// TestNamespaceAndLabelSelectors: all four namespace selectors and a label
// selector written as the APISIX page writes it (quoted values).
func TestNamespaceAndLabelSelectors(t *testing.T) {
	c := cluster(t)
	a := namespace(t, c.APIServer, "e2e-sel-a")
	b := namespace(t, c.APIServer, "e2e-sel-b")
	for _, ns := range []string{a, b} {
		_, err := c.ApplyEndpoints(ctx(t), ns, "web", kubetest.Subset([]string{"10.50.0.1"}, httpPort))
		require.NoError(t, err)
		_, err = c.Apply(ctx(t), map[string]any{
			"apiVersion": "v1", "kind": "Endpoints",
			"metadata": map[string]any{"name": "front", "namespace": ns, "labels": map[string]string{"tier": "front", "env": "prod"}},
			"subsets":  []kubetest.EndpointSubset{kubetest.Subset([]string{"10.50.0.2"}, httpPort)},
		})
		require.NoError(t, err)
	}
	present := func(d *kdisc.Discovery, ns, name string) bool { return hosts(d, ns+"/"+name+":http") != nil }

	for _, tc := range []struct {
		selector   string
		wantA      bool
		wantB      bool
		labelsOnly bool
	}{
		{"namespace_selector:\n  equal: " + a + "\n", true, false, false},
		{"namespace_selector:\n  not_equal: " + a + "\n", false, true, false},
		{"namespace_selector:\n  match: [" + a + ", '^nothing-.*$']\n", true, false, false},
		// Regexes are anchored: "e2e-sel-b" is a prefix of b, not a match.
		{"namespace_selector:\n  not_match: [" + a + ", e2e-sel-b]\n", false, true, false},
		{"namespace_selector:\n  match: ['e2e-sel-[ab]-.*']\nlabel_selector: |-\n  tier=\"front\",env in (prod, staging)\n", true, true, true},
	} {
		t.Run(tc.selector, func(t *testing.T) {
			d := startGo(t, singleConfig(c.KdiscCluster(tc.selector)))
			assert.Equal(t, tc.wantA, present(d, a, "front"), "namespace %s", a)
			assert.Equal(t, tc.wantB, present(d, b, "front"), "namespace %s", b)
			assert.Equal(t, tc.wantA && !tc.labelsOnly, present(d, a, "web"))
			assert.Equal(t, tc.wantB && !tc.labelsOnly, present(d, b, "web"))
		})
	}
}
