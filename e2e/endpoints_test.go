package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc"
	"github.com/kdisc/kdisc/dump"
	"github.com/kdisc/kdisc/internal/kubetest"
)

var httpPort = kubetest.EndpointPort{Name: "http", Port: 80, Protocol: "TCP"}

// TestEndpointsThroughCLI runs `kdisc run` on Endpoints and reads it from
// other processes and over the control API: create, scale up and down,
// an unnamed port, delete, dump; and records how soon a change is seen.
func TestEndpointsThroughCLI(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c.APIServer, "e2e-cli")
	// A port may be unnamed only when it is its subset's only port.
	_, err := c.ApplyEndpoints(ctx(t), ns, "web",
		kubetest.Subset([]string{"10.20.0.2", "10.20.0.1"}, httpPort),
		kubetest.Subset([]string{"10.20.0.2", "10.20.0.1"}, kubetest.EndpointPort{Port: 9000, Protocol: "TCP"}))
	require.NoError(t, err)

	d := newDaemon(t, singleConfig(c.KdiscCluster("namespace_selector:\n  equal: "+ns+"\n")))
	d.Start()
	d.WaitReady(20 * time.Second)

	out, code := d.nodes(ns + "/web:http")
	assert.Equal(t, 0, code)
	assert.Equal(t, nodesJSON(50, "10.20.0.1:80", "10.20.0.2:80"), out)
	out, code = d.nodes(ns + "/web:9000")
	assert.Equal(t, 0, code, "an unnamed port is addressed by its number")
	assert.Equal(t, nodesJSON(50, "10.20.0.1:9000", "10.20.0.2:9000"), out)
	_, code = d.nodes(ns + "/web:nope")
	assert.Equal(t, 1, code, "unknown port: not found")
	_, code = d.nodes(ns + "/nope:http")
	assert.Equal(t, 1, code, "unknown service: not found")

	// Scale up: visible from another process; measure how soon.
	_, err = c.ApplyEndpoints(ctx(t), ns, "web", kubetest.Subset(ips("10.20.0.", 12), httpPort))
	require.NoError(t, err)
	want := nodesJSON(50, "10.20.0.1:80", "10.20.0.10:80", "10.20.0.11:80", "10.20.0.12:80", "10.20.0.2:80",
		"10.20.0.3:80", "10.20.0.4:80", "10.20.0.5:80", "10.20.0.6:80", "10.20.0.7:80", "10.20.0.8:80", "10.20.0.9:80")
	r := attach(t, d)
	inTable := eventually(t, 10*time.Second, "scale-up in the table", func() (bool, string) {
		nodes, _ := r.Nodes(nil, ns+"/web:http")
		return len(nodes) == 12, fmt.Sprint(nodes)
	})
	took := d.waitNodes(ns+"/web:http", want)
	t.Logf("scale-up visible in another process's table after %v, then through `kdisc nodes` after %v more", inTable, took)

	// The control API answers the same.
	code2, body := d.Get("/v1/discovery/kubernetes/nodes?service=" + ns + "/web:http")
	assert.Equal(t, http.StatusOK, code2)
	assert.JSONEq(t, want, body)
	code2, body = d.Get("/v1/discovery/kubernetes/nodes?service=" + ns + "/gone:http")
	assert.Equal(t, http.StatusNotFound, code2)
	assert.Contains(t, body, `"error"`)

	// Scale down to nothing ready: not found; then delete.
	_, err = c.ApplyEndpoints(ctx(t), ns, "web", kubetest.EndpointSubset{
		NotReadyAddresses: []kubetest.EndpointAddress{{IP: "10.20.0.1"}}, Ports: []kubetest.EndpointPort{httpPort}})
	require.NoError(t, err)
	d.waitNodes(ns+"/web:http", "")
	_, err = c.ApplyEndpoints(ctx(t), ns, "db", kubetest.Subset([]string{"10.20.1.1"}, kubetest.EndpointPort{Name: "sql", Port: 3306, Protocol: "TCP"}))
	require.NoError(t, err)
	d.waitNodes(ns+"/db:sql", nodesJSON(50, "10.20.1.1:3306"))
	require.NoError(t, c.DeleteEndpoints(ctx(t), ns, "db"))
	d.waitNodes(ns+"/db:sql", "")

	// Dump through the CLI and the control API: same content, APISIX shape.
	_, err = c.ApplyEndpoints(ctx(t), ns, "api", kubetest.Subset([]string{"10.20.2.1"}, httpPort))
	require.NoError(t, err)
	d.waitNodes(ns+"/api:http", nodesJSON(50, "10.20.2.1:80"))
	dm := d.dumpCLI()
	require.Len(t, dm.Endpoints, 1)
	assert.Empty(t, dm.Endpoints[0].ID, "single mode: no id")
	assert.Equal(t, []dump.Entry{{Name: ns + "/api", Value: `{"http":[{"host":"10.20.2.1","port":80,"weight":50}]}`}}, dm.Endpoints[0].Endpoints)
	cfg, ok := dm.Config.(map[string]any)
	require.True(t, ok, "single mode: config is an object, got %T", dm.Config)
	assert.Equal(t, "https", cfg["service"].(map[string]any)["schema"])
	code2, body = d.Get("/v1/discovery/kubernetes/dump")
	assert.Equal(t, http.StatusOK, code2)
	var viaHTTP dump.Dump
	require.NoError(t, json.Unmarshal([]byte(body), &viaHTTP))
	assert.Equal(t, dm, viaHTTP)

	_, metrics := d.Get("/metrics")
	assert.Contains(t, metrics, `kdisc_ready{cluster=""} 1`)
	assert.Contains(t, metrics, `kdisc_events_total{cluster="",type="MODIFIED"}`)
}

// TestChangeLatency measures, from another process (kdisc.Attach), the time
// from the apiserver acknowledging a write to the nodes changing in the
// table that `kdisc run` keeps. The apiserver's own watch fan-out is part
// of it; the contract's bound is 100 ms from the event's arrival.
func TestChangeLatency(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c.APIServer, "e2e-lat")
	_, err := c.ApplyEndpoints(ctx(t), ns, "web", kubetest.Subset([]string{"10.30.0.1"}, httpPort))
	require.NoError(t, err)
	d := newDaemon(t, singleConfig(c.KdiscCluster("namespace_selector:\n  equal: "+ns+"\n")))
	d.Start()
	d.WaitReady(20 * time.Second)

	r := attach(t, d)
	buf := make([]kdisc.Node, 0, 8)
	var worst time.Duration
	for i := 2; i <= 21; i++ {
		ip := "10.30.0." + strconv.Itoa(i)
		_, err := c.ApplyEndpoints(ctx(t), ns, "web", kubetest.Subset([]string{ip}, httpPort))
		require.NoError(t, err)
		took := eventually(t, 5*time.Second, "the table to show "+ip, func() (bool, string) {
			nodes, ok := r.Nodes(buf[:0], ns+"/web:http")
			return ok && len(nodes) == 1 && nodes[0].Host() == ip, ""
		})
		worst = max(worst, took)
	}
	t.Logf("20 changes: worst write-acknowledged-to-visible-in-another-process latency %v", worst)
	assert.Less(t, worst, time.Second, "a change reaches other processes promptly")
}

func attach(t *testing.T, d *daemon) *kdisc.Discovery {
	t.Helper()
	cfg := loadConfig(t, d.Config)
	r, err := kdisc.Attach(d.ShmDir, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	return r
}
