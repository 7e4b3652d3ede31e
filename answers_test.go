package kdisc_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/kdisc/kdisc"
	"github.com/kdisc/kdisc/dump"
	"github.com/kdisc/kdisc/internal/fakeapi"
	"github.com/kdisc/kdisc/internal/kdisctest"
)

// webSlice is default/web's slice name with endpoints eps on port http:80.
func webSlice(name string, eps ...fakeapi.Endpoint) *fakeapi.EndpointSlice {
	return &fakeapi.EndpointSlice{
		Metadata:    fakeapi.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{"kubernetes.io/service-name": "web"}},
		AddressType: "IPv4",
		Endpoints:   eps,
		Ports:       []fakeapi.EndpointSlicePort{{Name: fakeapi.Ptr("http"), Port: fakeapi.Ptr(int32(80))}},
	}
}

func terminating(ip string, zones ...string) fakeapi.Endpoint {
	e := fakeapi.Endpoint{Addresses: []string{ip}, Conditions: fakeapi.EndpointConditions{
		Ready: fakeapi.Ptr(false), Serving: fakeapi.Ptr(true), Terminating: fakeapi.Ptr(true)}}
	if zones != nil {
		e.Hints = &fakeapi.EndpointHints{}
		for _, z := range zones {
			e.Hints.ForZones = append(e.Hints.ForZones, fakeapi.ForName{Name: z})
		}
	}
	return e
}

// hinted is a ready endpoint hinted for zone and node.
func hinted(ip, zone, node string) fakeapi.Endpoint {
	return fakeapi.Endpoint{Addresses: []string{ip}, Hints: &fakeapi.EndpointHints{
		ForZones: []fakeapi.ForName{{Name: zone}}, ForNodes: []fakeapi.ForName{{Name: node}}}}
}

// TestStartPassesAnswerKeys: terminating_fallback, zone and node reach the
// EndpointSlice watcher.
func TestStartPassesAnswerKeys(t *testing.T) {
	api := newAPI(t)
	api.PutEndpointSlice(webSlice("web-1", hinted("10.9.0.1", "a", "n1"), hinted("10.9.0.2", "a", "n2"), hinted("10.9.0.3", "b", "n3")))
	api.PutEndpointSlice(&fakeapi.EndpointSlice{
		Metadata:    fakeapi.ObjectMeta{Namespace: "default", Name: "old-1", Labels: map[string]string{"kubernetes.io/service-name": "old"}},
		AddressType: "IPv4", Endpoints: []fakeapi.Endpoint{terminating("10.9.1.1", "a"), terminating("10.9.1.2", "b")},
		Ports: []fakeapi.EndpointSlicePort{{Name: fakeapi.Ptr("http"), Port: fakeapi.Ptr(int32(80))}},
	})
	t.Setenv("KDISC_TEST_ZONE", "a")
	t.Setenv("KDISC_TEST_NODE", "n2")

	d := start(t, singleConfig(t, api, "    watch_endpoint_slices: true\n"))
	waitHosts(t, d, "default/web:http", "10.9.0.1:80/50", "10.9.0.2:80/50", "10.9.0.3:80/50")
	waitHosts(t, d, "default/old:http", "10.9.1.1:80/50", "10.9.1.2:80/50")

	d = start(t, singleConfig(t, api, "    watch_endpoint_slices: true\n    zone: ${KDISC_TEST_ZONE}\n"))
	waitHosts(t, d, "default/web:http", "10.9.0.1:80/50", "10.9.0.2:80/50")
	waitHosts(t, d, "default/old:http", "10.9.1.1:80/50", "10.9.1.2:80/50") // hints never apply to the fallback

	d = start(t, singleConfig(t, api, "    watch_endpoint_slices: true\n    zone: ${KDISC_TEST_ZONE}\n    node: ${KDISC_TEST_NODE}\n"))
	waitHosts(t, d, "default/web:http", "10.9.0.2:80/50")

	d = start(t, singleConfig(t, api, "    watch_endpoint_slices: true\n    terminating_fallback: false\n"))
	waitReady(t, d)
	_, a := d.Lookup(nil, "default/old:http")
	assert.Equal(t, "empty", a.String(), "no fallback: nothing to serve")
}

// TestStartWarnsIgnoredKeys: zone and terminating_fallback on a cluster
// watching Endpoints are accepted and ignored, with a warning at start.
func TestStartWarnsIgnoredKeys(t *testing.T) {
	api := newAPI(t)
	var logs kdisctest.LogBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	start(t, singleConfig(t, api, "    zone: a\n    node: n1\n    terminating_fallback: false\n"), kdisc.WithLogger(log))
	assert.Contains(t, logs.String(), "level=WARN")
	assert.Contains(t, logs.String(), "terminating_fallback, zone, node")
	assert.Contains(t, logs.String(), "watch_endpoint_slices")

	var quietLogs kdisctest.LogBuffer
	log = slog.New(slog.NewTextHandler(&quietLogs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	start(t, singleConfig(t, api, "    watch_endpoint_slices: true\n    zone: a\n"), kdisc.WithLogger(log))
	assert.NotContains(t, quietLogs.String(), "ignored")
}

// TestNodeDetail: with node_detail the dump shows where nodes run and
// Detail returns it; Attach (another process) sees the same.
func TestNodeDetail(t *testing.T) {
	api := newAPI(t)
	ready := fakeapi.Endpoint{Addresses: []string{"10.9.0.1"}, NodeName: fakeapi.Ptr("n1"), Zone: fakeapi.Ptr("a"),
		TargetRef: &fakeapi.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web-1", UID: "u1"}}
	api.PutEndpointSlice(webSlice("web-1", ready))
	dir := t.TempDir()
	cfg := singleConfig(t, api, "    watch_endpoint_slices: true\n    node_detail: true\n")
	d := start(t, cfg, kdisc.WithShmDir(dir))
	// The detail is stored after the nodes; readiness after both.
	waitHosts(t, d, "default/web:http", "10.9.0.1:80/50")
	waitReady(t, d)
	want := []kdisc.NodeDetail{{Host: "10.9.0.1", Port: 80, NodeName: "n1", Zone: "a", TargetRef: &kdisc.TargetRef{Kind: "Pod", Name: "web-1", UID: "u1"}}}

	nodes, ok := d.Detail("default/web")
	assert.True(t, ok)
	assert.Equal(t, want, nodes)
	nodes, ok = d.Detail("default/web:http")
	assert.True(t, ok, "a port is ignored")
	assert.Equal(t, want, nodes)
	_, ok = d.Detail("default/nope")
	assert.False(t, ok)
	dm := d.Dump()
	assert.Equal(t, []dump.DetailEntry{{Name: "default/web", Nodes: want}}, dm.Endpoints[0].Detail)

	r, err := kdisc.Attach(dir, cfg)
	assert.NoError(t, err)
	defer r.Close()
	nodes, ok = r.Detail("default/web")
	assert.True(t, ok)
	assert.Equal(t, want, nodes)
	assert.Equal(t, dm.Endpoints, r.Dump().Endpoints)

	// Without node_detail: no detail, and the dump has no "detail" key.
	plain := start(t, singleConfig(t, api, "    watch_endpoint_slices: true\n"))
	waitHosts(t, plain, "default/web:http", "10.9.0.1:80/50")
	_, ok = plain.Detail("default/web")
	assert.False(t, ok)
	assert.Nil(t, plain.Dump().Endpoints[0].Detail)
}

// TestTruncatedEndpointsMetric: /metrics counts the services served from a
// truncated Endpoints object now, and warns naming the service.
func TestTruncatedEndpointsMetric(t *testing.T) {
	api := newAPI(t)
	big := fakeapi.NewEndpoints("default", "big", "http", 80, "10.9.0.1")
	big.Metadata.Annotations = map[string]string{"endpoints.kubernetes.io/over-capacity": "truncated"}
	api.PutEndpoints(big)
	var logs kdisctest.LogBuffer
	d := start(t, singleConfig(t, api, ""), kdisc.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	waitHosts(t, d, "default/big:http", "10.9.0.1:80/50")
	metrics := func() string {
		var b strings.Builder
		d.WriteMetrics(&b)
		return b.String()
	}
	eventually(t, "the gauge says 1", func() bool { return strings.Contains(metrics(), `kdisc_services_truncated{cluster=""} 1`+"\n") })
	assert.Contains(t, logs.String(), "service=default/big")

	big.Metadata.Annotations = nil
	api.PutEndpoints(big)
	eventually(t, "the gauge says 0", func() bool { return strings.Contains(metrics(), `kdisc_services_truncated{cluster=""} 0`+"\n") })
}
