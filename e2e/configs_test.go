package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc/dump"
	"github.com/kdisc/kdisc/internal/kubetest"
)

// TestInPodMinimalConfig runs `kdisc run` with `kubernetes: {}`, exactly as
// inside a pod: the apiserver from KUBERNETES_SERVICE_HOST/PORT, the token
// and CA from /var/run/secrets/kubernetes.io/serviceaccount, which a
// private mount namespace provides (the tests run as root, like CI).
func TestInPodMinimalConfig(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c.APIServer, "e2e-inpod")
	_, err := c.ApplyEndpoints(ctx(t), ns, "web", kubetest.Subset([]string{"10.60.0.1"}, httpPort))
	require.NoError(t, err)

	sa := t.TempDir()
	copyFile(t, c.DiscoveryTokenFile, filepath.Join(sa, "token"))
	copyFile(t, c.CAFile, filepath.Join(sa, "ca.crt"))
	d := newDaemon(t, "discovery:\n  kubernetes: {}\n")
	d.Env = []string{"KUBERNETES_SERVICE_HOST=" + c.Host, "KUBERNETES_SERVICE_PORT=" + strconv.Itoa(c.Port)}
	d.Wrap = inPodNamespace(t, sa)
	d.Start()
	d.WaitReady(20 * time.Second)
	d.waitNodes(ns+"/web:http", nodesJSON(50, "10.60.0.1:80"))
}

// inPodNamespace returns a command prefix that runs a program in a new
// mount namespace where dir is mounted at the service-account path.
func inPodNamespace(t *testing.T, dir string) []string {
	t.Helper()
	for _, tool := range []string{"unshare", "mount"} {
		_, err := exec.LookPath(tool)
		require.NoError(t, err, "%s (util-linux) is needed to fake a pod's service-account mount", tool)
	}
	require.Equal(t, 0, os.Geteuid(), "faking a pod's service-account mount needs root (CI runs as root)")
	const saPath = "/var/run/secrets/kubernetes.io/serviceaccount"
	script := `set -e; mkdir -p ` + saPath + `; mount --bind "$0" ` + saPath + `; exec "$@"`
	return []string{"unshare", "--mount", "--propagation", "private", "sh", "-c", script, dir}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(to, b, 0o600))
}

// TestEnvironmentValues: host, port and token given as ${ENV}, the rest
// literal; the dump shows them as written and the token redacted.
func TestEnvironmentValues(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c.APIServer, "e2e-env")
	_, err := c.ApplyEndpoints(ctx(t), ns, "web", kubetest.Subset([]string{"10.61.0.1"}, httpPort))
	require.NoError(t, err)
	t.Setenv("E2E_APISERVER_HOST", c.Host)
	t.Setenv("E2E_APISERVER_PORT", strconv.Itoa(c.Port))
	t.Setenv("E2E_TOKEN", c.DiscoveryToken)
	d := startGo(t, singleConfig(`service:
  schema: https
  host: ${E2E_APISERVER_HOST}
  port: ${E2E_APISERVER_PORT}
  ca_file: `+c.CAFile+`
client:
  token: ${E2E_TOKEN}
namespace_selector:
  equal: `+ns+`
`))
	assert.Equal(t, []string{"10.61.0.1:80/50"}, hosts(d, ns+"/web:http"))
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	require.NoError(t, enc.Encode(d.Dump()))
	assert.NotContains(t, b.String(), c.DiscoveryToken)
	assert.Contains(t, b.String(), `"host":"${E2E_APISERVER_HOST}"`)
	assert.Contains(t, b.String(), `"token":"<redacted>"`)
}

var second struct {
	once sync.Once
	api  *kubetest.APIServer
	err  error
}

// secondAPIServer is another kube-apiserver sharing the cluster's etcd
// under another prefix: an independent second cluster.
func secondAPIServer(t *testing.T, c *kubetest.Cluster) *kubetest.APIServer {
	t.Helper()
	second.once.Do(func() { second.api, second.err = c.StartSecondAPIServer(ctx(t)) })
	require.NoError(t, second.err)
	return second.api
}

// TestMultiCluster: two apiservers, Endpoints on one and EndpointSlices on
// the other, through the CLI; each cluster its own table.
func TestMultiCluster(t *testing.T) {
	c := cluster(t)
	two := secondAPIServer(t, c)
	ns := namespace(t, c.APIServer, "e2e-multi")
	require.NoError(t, two.CreateNamespace(ctx(t), ns))
	_, err := c.ApplyEndpoints(ctx(t), ns, "web", kubetest.Subset([]string{"10.70.0.1"}, httpPort))
	require.NoError(t, err)
	_, err = two.ApplyEndpointSlice(ctx(t), ns, kubetest.EndpointSlice{Name: "web-x", Service: "web",
		Ports: []kubetest.SlicePort{kubetest.Port("http", 80)}, Endpoints: []kubetest.SliceEndpoint{{Addresses: []string{"10.70.1.1"}}}})
	require.NoError(t, err)

	sel := "namespace_selector:\n  equal: " + ns + "\n"
	d := newDaemon(t, multiConfig(
		[2]string{"one", c.KdiscCluster(sel + "shared_size: 64k\n")},
		[2]string{"two", two.KdiscCluster(sel + "watch_endpoint_slices: true\ndefault_weight: 1\n")},
	))
	d.Start()
	d.WaitReady(20 * time.Second)
	d.waitNodes("one/"+ns+"/web:http", nodesJSON(50, "10.70.0.1:80"))
	d.waitNodes("two/"+ns+"/web:http", nodesJSON(1, "10.70.1.1:80"))
	_, code := d.nodes(ns + "/web:http")
	assert.Equal(t, 1, code, "multi mode needs the id")
	_, code = d.nodes("three/" + ns + "/web:http")
	assert.Equal(t, 1, code)
	for _, name := range []string{"kubernetes-one", "kubernetes-two"} {
		_, err := os.Stat(filepath.Join(d.ShmDir, name))
		assert.NoError(t, err, "table file %s", name)
	}

	_, err = two.ApplyEndpointSlice(ctx(t), ns, kubetest.EndpointSlice{Name: "web-y", Service: "web",
		Ports: []kubetest.SlicePort{kubetest.Port("http", 80)}, Endpoints: []kubetest.SliceEndpoint{{Addresses: []string{"10.70.1.2"}}}})
	require.NoError(t, err)
	d.waitNodes("two/"+ns+"/web:http", nodesJSON(1, "10.70.1.1:80", "10.70.1.2:80"))

	dm := d.dumpCLI()
	require.Len(t, dm.Endpoints, 2)
	assert.Equal(t, dump.Cluster{ID: "one", Endpoints: []dump.Entry{{Name: ns + "/web", Value: `{"http":[{"host":"10.70.0.1","port":80,"weight":50}]}`}}}, dm.Endpoints[0])
	assert.Equal(t, "two", dm.Endpoints[1].ID)
	cfgs, ok := dm.Config.([]any)
	require.True(t, ok, "multi mode: config is an array")
	assert.Len(t, cfgs, 2)
}

// TestClientCertificate: mTLS alone, with the discovery user's client
// certificate (same RBAC grant as its token) and no token at all.
func TestClientCertificate(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c.APIServer, "e2e-mtls")
	_, err := c.ApplyEndpoints(ctx(t), ns, "web", kubetest.Subset([]string{"10.62.0.1"}, httpPort))
	require.NoError(t, err)
	d := startGo(t, singleConfig(`service:
  schema: https
  host: `+c.Host+`
  port: `+strconv.Itoa(c.Port)+`
  ca_file: `+c.CAFile+`
client:
  cert_file: `+c.DiscoveryCertFile+`
  key_file: `+c.DiscoveryKeyFile+`
namespace_selector:
  equal: `+ns+`
`))
	assert.Equal(t, []string{"10.62.0.1:80/50"}, hosts(d, ns+"/web:http"))
}
