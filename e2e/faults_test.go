package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc/internal/kubetest"
)

// TestRestartRemovesStale: `kdisc run` stops, objects change meanwhile,
// and a new `kdisc run` on the same table removes what was deleted.
func TestRestartRemovesStale(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c.APIServer, "e2e-restart")
	for _, name := range []string{"keep", "drop"} {
		_, err := c.ApplyEndpoints(ctx(t), ns, name, kubetest.Subset([]string{"10.80.0.1"}, httpPort))
		require.NoError(t, err)
	}
	d := newDaemon(t, singleConfig(c.KdiscCluster("namespace_selector:\n  equal: "+ns+"\n")))
	d.Start()
	d.WaitReady(20 * time.Second)
	d.waitNodes(ns+"/drop:http", nodesJSON(50, "10.80.0.1:80"))
	require.NoError(t, d.Stop(), "SIGTERM stops kdisc run cleanly")
	_, err := os.Stat(d.ShmDir + "/kubernetes")
	require.NoError(t, err, "the table outlives the process")
	out, code := d.nodes(ns + "/drop:http")
	assert.Equal(t, 0, code, "readers keep the last known nodes while kdisc is down: %s", out)

	require.NoError(t, c.DeleteEndpoints(ctx(t), ns, "drop"))
	_, err = c.ApplyEndpoints(ctx(t), ns, "new", kubetest.Subset([]string{"10.80.0.2"}, httpPort))
	require.NoError(t, err)

	d.Start()
	d.WaitReady(20 * time.Second)
	d.waitNodes(ns+"/drop:http", "")
	d.waitNodes(ns+"/new:http", nodesJSON(50, "10.80.0.2:80"))
	d.waitNodes(ns+"/keep:http", nodesJSON(50, "10.80.0.1:80"))
}

// TestAPIServerDown: while the apiserver is stopped, kdisc serves the last
// known nodes and stays up; when it is back, kdisc converges.
func TestAPIServerDown(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c.APIServer, "e2e-down")
	_, err := c.ApplyEndpoints(ctx(t), ns, "web", kubetest.Subset([]string{"10.81.0.1"}, httpPort))
	require.NoError(t, err)
	d := newDaemon(t, singleConfig(c.KdiscCluster("namespace_selector:\n  equal: "+ns+"\n")))
	d.Start()
	d.WaitReady(20 * time.Second)
	d.waitNodes(ns+"/web:http", nodesJSON(50, "10.81.0.1:80"))

	c.StopAPIServer()
	t.Cleanup(func() { require.NoError(t, c.StartAPIServer(ctx(t))) })
	eventually(t, 20*time.Second, "kdisc to notice the apiserver is gone", func() (bool, string) {
		_, m := d.Get("/metrics")
		return strings.Contains(m, `kdisc_watch_errors_total{cluster=""} 1`) || strings.Contains(m, `kdisc_list_errors_total{cluster=""} 1`), m
	})
	out, code := d.nodes(ns + "/web:http")
	assert.Equal(t, 0, code)
	assert.Equal(t, nodesJSON(50, "10.81.0.1:80"), out, "last known nodes while disconnected")
	hc, _ := d.Get("/healthz")
	assert.Equal(t, http.StatusOK, hc)

	require.NoError(t, c.StartAPIServer(ctx(t)))
	_, err = c.ApplyEndpoints(ctx(t), ns, "web", kubetest.Subset([]string{"10.81.0.2"}, httpPort))
	require.NoError(t, err)
	took := d.waitNodes(ns+"/web:http", nodesJSON(50, "10.81.0.2:80"))
	t.Logf("converged %v after the apiserver came back and the change was written", took)
	assert.Less(t, took, 35*time.Second, "backoff is capped at 30 s")
}

// TestNoRights: a token without rights keeps kdisc up and not ready, with
// the apiserver's 403 as the reason; granting the least-privilege role
// (testdata/kube/rbac.yaml) makes it ready.
func TestNoRights(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c.APIServer, "e2e-rbac")
	_, err := c.ApplyEndpoints(ctx(t), ns, "web", kubetest.Subset([]string{"10.82.0.1"}, httpPort))
	require.NoError(t, err)
	user := c.Users[kubetest.SpareUsers[0]]
	body := strings.Replace(c.KdiscCluster("namespace_selector:\n  equal: "+ns+"\n"), c.DiscoveryTokenFile, user.TokenFile, 1)
	d := newDaemon(t, singleConfig(body))
	d.Start()
	eventually(t, 20*time.Second, "/readyz 503 naming the 403", func() (bool, string) {
		code, b := d.Get("/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(b, "403 Forbidden"), b
	})
	_, b := d.Get("/readyz")
	// The first list is a streaming list: a watch request.
	assert.Contains(t, b, "cannot watch resource")
	hc, _ := d.Get("/healthz")
	assert.Equal(t, http.StatusOK, hc, "the process stays up")

	require.NoError(t, c.GrantDiscovery(ctx(t), user.User))
	t.Cleanup(func() { _ = c.RevokeDiscovery(ctx(t), user.User) })
	d.WaitReady(40 * time.Second)
	d.waitNodes(ns+"/web:http", nodesJSON(50, "10.82.0.1:80"))
}

// TestTokenRotation: the token file is replaced by another identity's
// token and the old identity loses its rights; after the apiserver drops
// every connection (a restart), kdisc goes on with the new token.
func TestTokenRotation(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c.APIServer, "e2e-rotate")
	_, err := c.ApplyEndpoints(ctx(t), ns, "web", kubetest.Subset([]string{"10.83.0.1"}, httpPort))
	require.NoError(t, err)
	old := c.Users[kubetest.SpareUsers[1]]
	require.NoError(t, c.GrantDiscovery(ctx(t), old.User))
	tokenFile := writeFile(t, "token", old.Token+"\n")
	body := strings.Replace(c.KdiscCluster("namespace_selector:\n  equal: "+ns+"\n"), c.DiscoveryTokenFile, tokenFile, 1)
	d := newDaemon(t, singleConfig(body))
	d.Start()
	d.WaitReady(20 * time.Second)

	// Rotate the way kubelet does: write beside, rename over.
	next := tokenFile + ".next"
	require.NoError(t, os.WriteFile(next, []byte(c.DiscoveryToken+"\n"), 0o600))
	require.NoError(t, os.Rename(next, tokenFile))
	require.NoError(t, c.RevokeDiscovery(ctx(t), old.User))
	c.StopAPIServer()
	require.NoError(t, c.StartAPIServer(ctx(t)))

	_, err = c.ApplyEndpoints(ctx(t), ns, "web", kubetest.Subset([]string{"10.83.0.2"}, httpPort))
	require.NoError(t, err)
	d.waitNodes(ns+"/web:http", nodesJSON(50, "10.83.0.2:80"))
	_, m := d.Get("/metrics")
	assert.Contains(t, m, `kdisc_ready{cluster=""} 1`)
}

// TestTLSIsVerified: a wrong CA, and the right CA for the wrong server
// name, are both refused, and /readyz says why.
func TestTLSIsVerified(t *testing.T) {
	c := cluster(t)
	otherCA := writeFile(t, "other-ca.crt", string(selfSignedCA(t)))
	wrongCA := strings.Replace(c.KdiscCluster(""), c.CAFile, otherCA, 1)
	d := newDaemon(t, singleConfig(wrongCA))
	d.Start()
	eventually(t, 20*time.Second, "/readyz names the certificate error", func() (bool, string) {
		code, b := d.Get("/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(b, "certificate signed by unknown authority"), b
	})

	// 127.0.0.2 reaches the same apiserver (through a relay) but is not a
	// name in its certificate.
	relay := newRelay(t, "127.0.0.2:0", c.Host+":"+strconv.Itoa(c.Port)).addr
	host, port, _ := net.SplitHostPort(relay)
	wrongName := strings.Replace(strings.Replace(c.KdiscCluster(""), "host: "+c.Host, "host: "+host, 1), "port: "+strconv.Itoa(c.Port), "port: "+port, 1)
	d2 := newDaemon(t, singleConfig(wrongName))
	d2.Start()
	eventually(t, 20*time.Second, "/readyz names the name mismatch", func() (bool, string) {
		code, b := d2.Get("/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(b, "127.0.0.2"), b
	})
	_, b := d2.Get("/readyz")
	assert.Contains(t, b, "x509")
}

func selfSignedCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "not the cluster CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
