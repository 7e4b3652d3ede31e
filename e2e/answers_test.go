package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc"
	"github.com/kdisc/kdisc/dump"
	"github.com/kdisc/kdisc/internal/kubetest"
)

// The answers a proxy can act on (the semantics issue), against the real
// kube-apiserver, with objects written as the endpoints and endpointslice
// controllers write them.

// nodesAnswer runs `kdisc nodes` and returns its exit code and, when it
// found nothing, the reason word on its stderr.
func (d *daemon) nodesAnswer(service string) (int, string) {
	d.t.Helper()
	out, code := d.nodes(service)
	if code == 0 {
		return 0, "found"
	}
	for _, w := range []string{"not_ready", "unknown", "empty"} {
		if strings.Contains(out, ": "+w) {
			return code, w
		}
	}
	return code, out
}

// controlAnswer asks the control API and returns the status and reason.
func (d *daemon) controlAnswer(service string) (int, string) {
	d.t.Helper()
	code, body := d.Get("/v1/discovery/kubernetes/nodes?service=" + service)
	if code == http.StatusOK {
		return code, "found"
	}
	var e struct{ Error, Reason string }
	require.NoError(d.t, json.Unmarshal([]byte(body), &e), body)
	assert.NotEmpty(d.t, e.Error)
	return code, e.Reason
}

// waitAnswer polls `kdisc nodes` until it exits with code and reason.
func (d *daemon) waitAnswer(service string, code int, reason string) {
	d.t.Helper()
	eventually(d.t, 30*time.Second, "kdisc nodes "+service+" answers "+reason, func() (bool, string) {
		c, r := d.nodesAnswer(service)
		return c == code && r == reason, r
	})
}

// TestThreeAnswers: not_ready, unknown and empty through `kdisc nodes`
// (exit 3, 1, 1 with the reason word on stderr) and the control API (503,
// 404, 404 with "reason"), for Endpoints and EndpointSlices.
func TestThreeAnswers(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c.APIServer, "e2e-answers")
	sel := "namespace_selector:\n  equal: " + ns + "\n"
	_, err := c.ApplyEndpoints(ctx(t), ns, "web", kubetest.Subset([]string{"10.90.0.1"}, httpPort))
	require.NoError(t, err)
	_, err = c.ApplyEndpoints(ctx(t), ns, "zero") // scaled to zero: no subsets
	require.NoError(t, err)
	_, err = c.ApplyEndpoints(ctx(t), ns, "starting", kubetest.EndpointSubset{
		NotReadyAddresses: []kubetest.EndpointAddress{{IP: "10.90.0.2"}}, Ports: []kubetest.EndpointPort{httpPort}})
	require.NoError(t, err)
	http8080 := []kubetest.SlicePort{kubetest.Port("http", 8080)}
	_, err = c.ApplyControllerSlice(ctx(t), ns, kubetest.ControllerSlice{Name: "web-abc", Service: "web", Ports: http8080,
		Endpoints: []kubetest.PodEndpoint{kubetest.PodEndpoint{IP: "10.90.1.1", Pod: "web-1"}.Conditions(true, true, false)}})
	require.NoError(t, err)
	_, err = c.ApplyControllerSlice(ctx(t), ns, kubetest.ControllerSlice{Name: "boot-abc", Service: "boot", Ports: http8080,
		Endpoints: []kubetest.PodEndpoint{
			kubetest.PodEndpoint{IP: "10.90.1.2", Pod: "boot-1"}.Conditions(false, false, false),
			kubetest.PodEndpoint{IP: "10.90.1.3", Pod: "boot-2"}.Conditions(false, false, false),
		}})
	require.NoError(t, err)
	_, err = c.ApplyControllerSlice(ctx(t), ns, kubetest.ControllerSlice{Name: "idle-abc", Service: "idle"}) // no ports, no endpoints
	require.NoError(t, err)

	// Not ready: a kdisc run whose token has no rights yet never finishes
	// its first list.
	noRights := multiConfig(
		[2]string{"ep", strings.Replace(c.KdiscCluster(sel), c.DiscoveryTokenFile, c.NoRightsTokenFile, 1)},
		[2]string{"es", strings.Replace(c.KdiscCluster(sel+"watch_endpoint_slices: true\n"), c.DiscoveryTokenFile, c.NoRightsTokenFile, 1)})
	nr := newDaemon(t, noRights)
	nr.Start()
	eventually(t, 20*time.Second, "/readyz 503 naming the 403", func() (bool, string) {
		code, b := nr.Get("/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(b, "403"), b
	})
	for _, svc := range []string{"ep/" + ns + "/web:http", "es/" + ns + "/web:http", "es/" + ns + "/nope:http"} {
		code, reason := nr.nodesAnswer(svc)
		assert.Equal(t, 3, code, svc)
		assert.Equal(t, "not_ready", reason, svc)
		code, reason = nr.controlAnswer(svc)
		assert.Equal(t, http.StatusServiceUnavailable, code, svc)
		assert.Equal(t, "not_ready", reason, svc)
	}

	d := newDaemon(t, multiConfig([2]string{"ep", c.KdiscCluster(sel)}, [2]string{"es", c.KdiscCluster(sel + "watch_endpoint_slices: true\n")}))
	d.Start()
	d.WaitReady(20 * time.Second)
	for _, tc := range []struct {
		service string
		code    int
		reason  string
		status  int
	}{
		{"ep/" + ns + "/web:http", 0, "found", http.StatusOK},
		{"ep/" + ns + "/nope:http", 1, "unknown", http.StatusNotFound},
		{"ep/" + ns + "/web:nope", 1, "unknown", http.StatusNotFound},
		{"ep/" + ns + "/zero:http", 1, "empty", http.StatusNotFound},  // scaled to zero: empty for every port
		{"ep/" + ns + "/zero:other", 1, "empty", http.StatusNotFound}, // (no port at all)
		{"ep/" + ns + "/starting:http", 1, "empty", http.StatusNotFound},
		{"es/" + ns + "/web:http", 0, "found", http.StatusOK},
		{"es/" + ns + "/boot:http", 1, "empty", http.StatusNotFound}, // every endpoint not ready
		{"es/" + ns + "/idle:http", 1, "empty", http.StatusNotFound}, // a slice with no ports
		{"es/" + ns + "/nope:http", 1, "unknown", http.StatusNotFound},
		{"nope/" + ns + "/web:http", 1, "unknown", http.StatusNotFound},
	} {
		code, reason := d.nodesAnswer(tc.service)
		assert.Equal(t, tc.code, code, tc.service)
		assert.Equal(t, tc.reason, reason, tc.service)
		status, reason := d.controlAnswer(tc.service)
		assert.Equal(t, tc.status, status, tc.service)
		assert.Equal(t, tc.reason, reason, tc.service)
	}

	// Scaled to zero, then deleted: empty, then unknown.
	_, err = c.ApplyEndpoints(ctx(t), ns, "web")
	require.NoError(t, err)
	d.waitAnswer("ep/"+ns+"/web:http", 1, "empty")
	require.NoError(t, c.DeleteEndpoints(ctx(t), ns, "web"))
	d.waitAnswer("ep/"+ns+"/web:http", 1, "unknown")
	_, err = c.ApplyControllerSlice(ctx(t), ns, kubetest.ControllerSlice{Name: "web-abc", Service: "web", Ports: http8080,
		Endpoints: []kubetest.PodEndpoint{kubetest.PodEndpoint{IP: "10.90.1.1", Pod: "web-1"}.Conditions(false, false, false)}})
	require.NoError(t, err)
	d.waitAnswer("es/"+ns+"/web:http", 1, "empty")
	require.NoError(t, c.DeleteEndpointSlice(ctx(t), ns, "web-abc"))
	d.waitAnswer("es/"+ns+"/web:http", 1, "unknown")

	// Empty services are not in the dump.
	for _, cl := range d.dumpCLI().Endpoints {
		for _, e := range cl.Endpoints {
			assert.NotContains(t, []string{ns + "/zero", ns + "/starting", ns + "/boot", ns + "/idle"}, e.Name, "cluster %s", cl.ID)
		}
	}
}

// TestTerminatingFallbackAndZones: which EndpointSlice endpoints are
// served, with the defaults, with terminating_fallback: false and with a
// zone; and ports by number. Hints never apply to the terminating
// fallback (kube-proxy's pkg/proxy/topology.go reads hints from ready
// endpoints only): zterm serves both its endpoints in zone a too.
func TestTerminatingFallbackAndZones(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c.APIServer, "e2e-serve")
	apply := func(svc string, ports []kubetest.SlicePort, eps ...kubetest.PodEndpoint) {
		t.Helper()
		_, err := c.ApplyControllerSlice(ctx(t), ns, kubetest.ControllerSlice{Name: svc + "-abc", Service: svc, Ports: ports, Endpoints: eps})
		require.NoError(t, err)
	}
	http := []kubetest.SlicePort{kubetest.Port("http", 8080)}
	ep := func(ip string) kubetest.PodEndpoint {
		return kubetest.PodEndpoint{IP: ip, NodeName: "node-1", Zone: "a"}
	}
	const r, s, term = true, true, true
	apply("allterm", http, ep("10.91.0.1").Conditions(!r, s, term), ep("10.91.0.2").Conditions(!r, s, term))
	apply("mixed", http, ep("10.91.0.3").Conditions(r, s, !term), ep("10.91.0.4").Conditions(!r, s, term))
	apply("notserving", http, ep("10.91.0.5").Conditions(!r, !s, term), ep("10.91.0.6").Conditions(!r, s, term))
	// Conditions absent: ready absent = ready; serving absent = serving;
	// terminating absent = not terminating.
	apply("bare", http, kubetest.PodEndpoint{IP: "10.91.0.7"})
	apply("termonly", http, kubetest.PodEndpoint{IP: "10.91.0.8", Ready: kubetest.Ptr(false), Terminating: kubetest.Ptr(true)})
	apply("notready", http, kubetest.PodEndpoint{IP: "10.91.0.9", Ready: kubetest.Ptr(false)})
	// Zone hints.
	hinted := func(ip string, zones ...string) kubetest.PodEndpoint {
		e := ep(ip).Conditions(r, s, !term)
		e.ForZones = zones
		return e
	}
	apply("zall", http, hinted("10.92.0.1", "a"), hinted("10.92.0.2", "b"), hinted("10.92.0.3", "b", "a"))
	apply("zpart", http, hinted("10.92.0.4", "a"), hinted("10.92.0.5"))
	apply("znone", http, hinted("10.92.0.6", "b"), hinted("10.92.0.7", "c"))
	apply("zterm", http, kubetest.PodEndpoint{IP: "10.92.0.8", ForZones: []string{"a"}}.Conditions(!r, s, term),
		kubetest.PodEndpoint{IP: "10.92.0.9", ForZones: []string{"b"}}.Conditions(!r, s, term))
	// Ports by number: a named port, and TCP and UDP sharing a number.
	udp := kubetest.Port("dns-udp", 53)
	udp.Protocol = kubetest.Ptr("UDP")
	apply("named", []kubetest.SlicePort{kubetest.Port("http", 8080), kubetest.Port("metrics", 9090)}, ep("10.93.0.1"))
	apply("dns", []kubetest.SlicePort{kubetest.Port("dns-tcp", 53), udp}, ep("10.93.0.3"), ep("10.93.0.2"))

	base := "namespace_selector:\n  equal: " + ns + "\nwatch_endpoint_slices: true\n"
	t.Setenv("KDISC_E2E_ZONE", "a")
	def := startGo(t, singleConfig(c.KdiscCluster(base)))
	off := startGo(t, singleConfig(c.KdiscCluster(base+"terminating_fallback: false\n")))
	zoned := startGo(t, singleConfig(c.KdiscCluster(base+"zone: ${KDISC_E2E_ZONE}\n")))
	waitHosts(t, def, ns+"/dns:dns-udp", "10.93.0.2:53/50", "10.93.0.3:53/50")
	waitHosts(t, zoned, ns+"/dns:dns-udp", "10.93.0.2:53/50", "10.93.0.3:53/50")
	waitHosts(t, off, ns+"/dns:dns-udp", "10.93.0.2:53/50", "10.93.0.3:53/50")

	hostsOr := func(d *kdisc.Discovery, service string) any {
		nodes, a := d.Lookup(nil, service)
		if a != kdisc.Found {
			return a.String()
		}
		out := []string{}
		for _, n := range nodes {
			out = append(out, n.Host())
		}
		return out
	}
	for _, tc := range []struct {
		service       string
		def, off, zon any
	}{
		{"allterm:http", []string{"10.91.0.1", "10.91.0.2"}, "empty", []string{"10.91.0.1", "10.91.0.2"}},
		{"mixed:http", []string{"10.91.0.3"}, []string{"10.91.0.3"}, []string{"10.91.0.3"}},
		{"notserving:http", []string{"10.91.0.6"}, "empty", []string{"10.91.0.6"}},
		{"bare:http", []string{"10.91.0.7"}, []string{"10.91.0.7"}, []string{"10.91.0.7"}},
		{"termonly:http", []string{"10.91.0.8"}, "empty", []string{"10.91.0.8"}},
		{"notready:http", "empty", "empty", "empty"},
		{"zall:http", []string{"10.92.0.1", "10.92.0.2", "10.92.0.3"}, []string{"10.92.0.1", "10.92.0.2", "10.92.0.3"}, []string{"10.92.0.1", "10.92.0.3"}},
		{"zpart:http", []string{"10.92.0.4", "10.92.0.5"}, []string{"10.92.0.4", "10.92.0.5"}, []string{"10.92.0.4", "10.92.0.5"}},
		{"znone:http", []string{"10.92.0.6", "10.92.0.7"}, []string{"10.92.0.6", "10.92.0.7"}, []string{"10.92.0.6", "10.92.0.7"}},
		{"zterm:http", []string{"10.92.0.8", "10.92.0.9"}, "empty", []string{"10.92.0.8", "10.92.0.9"}},
		{"named:8080", []string{"10.93.0.1"}, []string{"10.93.0.1"}, []string{"10.93.0.1"}},
		{"named:9090", []string{"10.93.0.1"}, []string{"10.93.0.1"}, []string{"10.93.0.1"}},
		{"named:8081", "unknown", "unknown", "unknown"},
		{"dns:53", []string{"10.93.0.2", "10.93.0.3"}, []string{"10.93.0.2", "10.93.0.3"}, []string{"10.93.0.2", "10.93.0.3"}},
		{"dns:dns-tcp", []string{"10.93.0.2", "10.93.0.3"}, []string{"10.93.0.2", "10.93.0.3"}, []string{"10.93.0.2", "10.93.0.3"}},
	} {
		assert.Equal(t, tc.def, hostsOr(def, ns+"/"+tc.service), "defaults: %s", tc.service)
		assert.Equal(t, tc.off, hostsOr(off, ns+"/"+tc.service), "terminating_fallback false: %s", tc.service)
		assert.Equal(t, tc.zon, hostsOr(zoned, ns+"/"+tc.service), "zone a: %s", tc.service)
	}
	nodes, _ := def.Nodes(nil, ns+"/named:8080")
	require.Len(t, nodes, 1)
	assert.Equal(t, uint16(8080), nodes[0].Port)

	// A pod that finishes terminating while a new one becomes ready: the
	// fallback ends as soon as one endpoint is ready.
	apply("allterm", http, ep("10.91.0.1").Conditions(!r, s, term), ep("10.91.0.10").Conditions(r, s, !term))
	waitHosts(t, def, ns+"/allterm:http", "10.91.0.10:8080/50")
	waitHosts(t, off, ns+"/allterm:http", "10.91.0.10:8080/50")
}

// TestNodeDetailE2E: node_detail through the dump of `kdisc run` (CLI and
// control API) and the Go API of another process, for EndpointSlices and
// Endpoints.
func TestNodeDetailE2E(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c.APIServer, "e2e-detail")
	_, err := c.ApplyControllerSlice(ctx(t), ns, kubetest.ControllerSlice{Name: "web-abc", Service: "web", Ports: []kubetest.SlicePort{kubetest.Port("http", 8080)},
		Endpoints: []kubetest.PodEndpoint{
			kubetest.PodEndpoint{IP: "10.94.0.2", NodeName: "node-b", Zone: "zone-b", Pod: "web-2"}.Conditions(true, true, false),
			kubetest.PodEndpoint{IP: "10.94.0.1", NodeName: "node-a", Zone: "zone-a", Pod: "web-1"}.Conditions(true, true, false),
			kubetest.PodEndpoint{IP: "10.94.0.3", NodeName: "node-a", Zone: "zone-a", Pod: "web-3"}.Conditions(false, true, false),
		}})
	require.NoError(t, err)
	_, err = c.Apply(ctx(t), map[string]any{
		"apiVersion": "v1", "kind": "Endpoints", "metadata": map[string]any{"name": "db", "namespace": ns},
		"subsets": []any{map[string]any{
			"addresses": []any{kubetest.PodAddress(ns, "10.94.1.1", "node-a", "db-0"), map[string]any{"ip": "10.94.1.2"}},
			"ports":     []any{map[string]any{"name": "sql", "port": 5432, "protocol": "TCP"}},
		}},
	})
	require.NoError(t, err)

	sel := "namespace_selector:\n  equal: " + ns + "\nnode_detail: true\n"
	d := newDaemon(t, multiConfig([2]string{"es", c.KdiscCluster(sel + "watch_endpoint_slices: true\n")}, [2]string{"ep", c.KdiscCluster(sel)}))
	d.Start()
	d.WaitReady(20 * time.Second)

	ref := func(pod string) *dump.TargetRef {
		return &dump.TargetRef{Kind: "Pod", Name: pod, UID: kubetest.PodUID(ns, pod)}
	}
	wantES := []dump.NodeDetail{
		{Host: "10.94.0.1", Port: 8080, NodeName: "node-a", Zone: "zone-a", TargetRef: ref("web-1")},
		{Host: "10.94.0.2", Port: 8080, NodeName: "node-b", Zone: "zone-b", TargetRef: ref("web-2")},
	}
	wantEP := []dump.NodeDetail{
		{Host: "10.94.1.1", Port: 5432, NodeName: "node-a", TargetRef: ref("db-0")},
		{Host: "10.94.1.2", Port: 5432},
	}
	dm := d.dumpCLI()
	require.Len(t, dm.Endpoints, 2)
	assert.Equal(t, []dump.DetailEntry{{Name: ns + "/web", Nodes: wantES}}, dm.Endpoints[0].Detail)
	assert.Equal(t, []dump.DetailEntry{{Name: ns + "/db", Nodes: wantEP}}, dm.Endpoints[1].Detail)
	assert.Equal(t, `{"http":[{"host":"10.94.0.1","port":8080,"weight":50},{"host":"10.94.0.2","port":8080,"weight":50}]}`, dm.Endpoints[0].Endpoints[0].Value,
		"APISIX's value is unchanged")
	code, body := d.Get("/v1/discovery/kubernetes/dump")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, `"detail":[{"name":"`+ns+`/web","nodes":[{"host":"10.94.0.1","port":8080,"node_name":"node-a","zone":"zone-a","target_ref":{"kind":"Pod","name":"web-1","uid":"`)

	r := attach(t, d)
	nodes, ok := r.Detail("es/" + ns + "/web")
	assert.True(t, ok)
	assert.Equal(t, wantES, nodes)
	nodes, ok = r.Detail("ep/" + ns + "/db:sql")
	assert.True(t, ok)
	assert.Equal(t, wantEP, nodes)

	// A pod replaced behind the same address: only the detail changes.
	_, err = c.ApplyControllerSlice(ctx(t), ns, kubetest.ControllerSlice{Name: "web-abc", Service: "web", Ports: []kubetest.SlicePort{kubetest.Port("http", 8080)},
		Endpoints: []kubetest.PodEndpoint{
			kubetest.PodEndpoint{IP: "10.94.0.2", NodeName: "node-b", Zone: "zone-b", Pod: "web-2"}.Conditions(true, true, false),
			kubetest.PodEndpoint{IP: "10.94.0.1", NodeName: "node-c", Zone: "zone-a", Pod: "web-4"}.Conditions(true, true, false),
		}})
	require.NoError(t, err)
	eventually(t, 10*time.Second, "the new pod in the detail", func() (bool, string) {
		nodes, _ := r.Detail("es/" + ns + "/web")
		b, _ := json.Marshal(nodes)
		return len(nodes) == 2 && nodes[0].NodeName == "node-c" && *nodes[0].TargetRef == *ref("web-4"), string(b)
	})
}

// TestNodeHintsE2E: hints.forNodes (trafficDistribution: PreferSameNode),
// as the apiserver stores them, come before zone hints when node is set,
// as in kube-proxy's pkg/proxy/topology.go; never on the fallback.
func TestNodeHintsE2E(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c.APIServer, "e2e-nodes")
	http := []kubetest.SlicePort{kubetest.Port("http", 8080)}
	apply := func(svc string, eps ...kubetest.PodEndpoint) {
		t.Helper()
		_, err := c.ApplyControllerSlice(ctx(t), ns, kubetest.ControllerSlice{Name: svc + "-abc", Service: svc, Ports: http, Endpoints: eps})
		require.NoError(t, err)
	}
	const r, s, term = true, true, true
	hinted := func(ip, zone string, node string, ready, terminating bool) kubetest.PodEndpoint {
		e := kubetest.PodEndpoint{IP: ip, NodeName: node, Zone: zone, ForZones: []string{zone}}.Conditions(ready, s, terminating)
		if node != "" {
			e.ForNodes = []string{node}
		}
		return e
	}
	apply("same", hinted("10.96.0.1", "a", "node-1", r, !term), hinted("10.96.0.2", "a", "node-2", r, !term), hinted("10.96.0.3", "b", "node-1", r, !term))
	apply("elsewhere", hinted("10.96.1.1", "a", "node-2", r, !term), hinted("10.96.1.2", "b", "node-3", r, !term))
	apply("partial", hinted("10.96.2.1", "b", "node-1", r, !term), hinted("10.96.2.2", "a", "", r, !term))
	apply("term", hinted("10.96.3.1", "a", "node-1", !r, term), hinted("10.96.3.2", "b", "node-2", !r, term))

	base := "namespace_selector:\n  equal: " + ns + "\nwatch_endpoint_slices: true\n"
	t.Setenv("KDISC_E2E_NODE", "node-1")
	def := startGo(t, singleConfig(c.KdiscCluster(base+"zone: a\n")))
	noded := startGo(t, singleConfig(c.KdiscCluster(base+"zone: a\nnode: ${KDISC_E2E_NODE}\n")))
	for _, d := range []*kdisc.Discovery{def, noded} {
		waitHosts(t, d, ns+"/term:http", "10.96.3.1:8080/50", "10.96.3.2:8080/50") // never on the fallback
	}
	for _, tc := range []struct {
		service    string
		def, noded []string
	}{
		{"same:http", []string{"10.96.0.1:8080/50", "10.96.0.2:8080/50"}, []string{"10.96.0.1:8080/50", "10.96.0.3:8080/50"}},
		{"elsewhere:http", []string{"10.96.1.1:8080/50"}, []string{"10.96.1.1:8080/50"}}, // none for node-1: zone a
		{"partial:http", []string{"10.96.2.2:8080/50"}, []string{"10.96.2.2:8080/50"}},   // not all node-hinted: zone a
	} {
		assert.Equal(t, tc.def, hosts(def, ns+"/"+tc.service), "zone a, no node: %s", tc.service)
		assert.Equal(t, tc.noded, hosts(noded, ns+"/"+tc.service), "zone a, node-1: %s", tc.service)
	}
}

// TestOneEndpointPerAddressE2E: a pod IP reused while the old pod
// terminates is listed in two slices; the listing that is not terminating
// wins (kube-proxy's pkg/proxy/endpointslicecache.go), whichever slice the
// apiserver stored first.
func TestOneEndpointPerAddressE2E(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c.APIServer, "e2e-reuse")
	http := []kubetest.SlicePort{kubetest.Port("http", 8080)}
	apply := func(slice, svc string, eps ...kubetest.PodEndpoint) {
		t.Helper()
		_, err := c.ApplyControllerSlice(ctx(t), ns, kubetest.ControllerSlice{Name: slice, Service: svc, Ports: http, Endpoints: eps})
		require.NoError(t, err)
	}
	const r, s, term = true, true, true
	old := kubetest.PodEndpoint{IP: "10.97.0.1", NodeName: "node-1", Pod: "web-old"}.Conditions(!r, s, term)
	starting := kubetest.PodEndpoint{IP: "10.97.0.1", NodeName: "node-2", Pod: "web-new"}.Conditions(!r, !s, !term)
	other := kubetest.PodEndpoint{IP: "10.97.0.9", NodeName: "node-3", Pod: "web-other"}.Conditions(!r, s, term)
	apply("a-old", "a", old)
	apply("a-new", "a", starting)
	apply("b-new", "b", starting)
	apply("b-old", "b", old)
	apply("c-old", "c", old, other)
	apply("c-new", "c", starting)

	d := startGo(t, singleConfig(c.KdiscCluster("namespace_selector:\n  equal: "+ns+"\nwatch_endpoint_slices: true\nnode_detail: true\n")))
	for _, svc := range []string{"a", "b"} {
		_, a := d.Lookup(nil, ns+"/"+svc+":http")
		assert.Equal(t, "empty", a.String(), "%s: the new pod is starting; the old one's terminating listing is not served", svc)
	}
	assert.Equal(t, []string{"10.97.0.9:8080/50"}, hosts(d, ns+"/c:http"), "the fallback serves only the pod that owns its IP")

	// The new pod becomes ready: served once, as the new pod.
	ready := starting.Conditions(r, s, !term)
	apply("a-new", "a", ready)
	apply("b-new", "b", ready)
	for _, svc := range []string{"a", "b"} {
		waitHosts(t, d, ns+"/"+svc+":http", "10.97.0.1:8080/50")
		// The detail is stored after the nodes (listwatch's put): wait
		// for it too, then check it is the new pod's.
		var detail []kdisc.NodeDetail
		eventually(t, 30*time.Second, svc+": one node's detail", func() (bool, string) {
			var ok bool
			detail, ok = d.Detail(ns + "/" + svc)
			return ok && len(detail) == 1, fmt.Sprint(detail)
		})
		assert.Equal(t, "node-2", detail[0].NodeName, svc)
		require.NotNil(t, detail[0].TargetRef, svc)
		assert.Equal(t, "web-new", detail[0].TargetRef.Name, svc)
	}
}

// TestTruncatedEndpointsE2E: an Endpoints object annotated
// endpoints.kubernetes.io/over-capacity: truncated (written here: no
// Endpoints controller runs) is served, warned about once naming the
// service and watch_endpoint_slices, and counted in /metrics while the
// annotation stays.
func TestTruncatedEndpointsE2E(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c.APIServer, "e2e-trunc")
	apply := func(annotations map[string]string, ips ...string) {
		t.Helper()
		addrs := []map[string]any{}
		for _, ip := range ips {
			addrs = append(addrs, map[string]any{"ip": ip})
		}
		_, err := c.Apply(ctx(t), map[string]any{
			"apiVersion": "v1", "kind": "Endpoints",
			"metadata": map[string]any{"name": "big", "namespace": ns, "annotations": annotations},
			"subsets":  []any{map[string]any{"addresses": addrs, "ports": []any{map[string]any{"name": "http", "port": 80, "protocol": "TCP"}}}},
		})
		require.NoError(t, err)
	}
	truncated := map[string]string{"endpoints.kubernetes.io/over-capacity": "truncated"}
	apply(truncated, "10.98.0.1", "10.98.0.2")

	d := newDaemon(t, singleConfig(c.KdiscCluster("namespace_selector:\n  equal: "+ns+"\n")))
	d.Start()
	d.WaitReady(20 * time.Second)
	d.waitNodes(ns+"/big:http", nodesJSON(50, "10.98.0.1:80", "10.98.0.2:80"))
	gauge := func(want string) {
		t.Helper()
		eventually(t, 20*time.Second, "kdisc_services_truncated "+want, func() (bool, string) {
			_, m := d.Get("/metrics")
			return strings.Contains(m, `kdisc_services_truncated{cluster=""} `+want+"\n"), m
		})
	}
	gauge("1")
	// The log reaches the test through a pipe, which may lag behind what
	// /metrics already says: wait for the warning.
	eventually(t, 20*time.Second, "the truncation warning", func() (bool, string) {
		logs := d.Logs()
		return strings.Contains(logs, "Endpoints truncated"), logs
	})
	logs := d.Logs()
	assert.Contains(t, logs, "service="+ns+"/big")
	assert.Contains(t, logs, "watch_endpoint_slices: true")

	apply(truncated, "10.98.0.1", "10.98.0.3") // still truncated: no second warning
	d.waitNodes(ns+"/big:http", nodesJSON(50, "10.98.0.1:80", "10.98.0.3:80"))
	gauge("1")
	apply(nil, "10.98.0.1", "10.98.0.3") // the annotation goes
	gauge("0")
	// Stopped, kdisc has written all its log, and the pipe is drained.
	require.NoError(t, d.Stop())
	assert.Equal(t, 1, strings.Count(d.Logs(), "Endpoints truncated"), "once per service")
}
