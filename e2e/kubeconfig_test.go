package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc"
	"github.com/kdisc/kdisc/config"
	"github.com/kdisc/kdisc/dump"
	"github.com/kdisc/kdisc/internal/kubetest"
)

// kubeconfig writes a kubeconfig with one context "e2e" (the current one)
// into a fresh folder; cluster and user are the bodies of its cluster and
// user entries. Files named in files are written beside it first
// (relative paths in the kubeconfig are relative to that folder).
func kubeconfig(t *testing.T, cluster, user string, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), data, 0o600))
	}
	body := "apiVersion: v1\nkind: Config\ncurrent-context: e2e\n" +
		"clusters:\n- name: e2e-cluster\n  cluster:\n" + kubetest.Indent(cluster, "    ") +
		"contexts:\n- name: e2e\n  context: {cluster: e2e-cluster, user: e2e-user, namespace: ignored}\n" +
		"users:\n- name: e2e-user\n  user:\n" + kubetest.Indent(user, "    ")
	p := filepath.Join(dir, "config")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// startKubeconfig runs kdisc in this process on a kubeconfig (the Go API
// with config.FromKubeconfig, as `kdisc run -kubeconfig` does).
func startKubeconfig(t *testing.T, path string) *kdisc.Discovery {
	t.Helper()
	cfg, err := config.FromKubeconfig(path, "")
	require.NoError(t, err)
	d := startConfig(t, cfg)
	eventually(t, 30*time.Second, "kdisc ready", func() (bool, string) {
		return d.Ready(), fmt.Sprint(d.NotReady())
	})
	return d
}

// A literal token, the CA from a file relative to the kubeconfig, and
// tls-server-name: the apiserver's certificate is verified for an
// in-cluster name while kdisc dials 127.0.0.1.
func TestKubeconfigToken(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c.APIServer, "e2e-kc-token")
	_, err := c.ApplyEndpoints(ctx(t), ns, "web", kubetest.Subset([]string{"10.80.0.1"}, httpPort))
	require.NoError(t, err)
	kc := kubeconfig(t,
		fmt.Sprintf("server: %s\ncertificate-authority: pki/ca.crt\ntls-server-name: kubernetes.default.svc\n", c.URL),
		"token: "+c.DiscoveryToken+"\n",
		map[string][]byte{"pki/ca.crt": readFile(t, c.CAFile)})
	d := startKubeconfig(t, kc)
	waitHosts(t, d, ns+"/web:http", "10.80.0.1:80/50")
	_, err = c.ApplyEndpoints(ctx(t), ns, "web", kubetest.Subset([]string{"10.80.0.2"}, httpPort))
	require.NoError(t, err)
	waitHosts(t, d, ns+"/web:http", "10.80.0.2:80/50")
	assert.NotContains(t, encodeJSON(t, d.Dump()), c.DiscoveryToken)
}

// A token file (relative to the kubeconfig) through the CLI: `kdisc run
// -kubeconfig`, and `kdisc nodes -kubeconfig` from another process.
func TestKubeconfigTokenFileCLI(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c.APIServer, "e2e-kc-file")
	_, err := c.ApplyEndpoints(ctx(t), ns, "web", kubetest.Subset([]string{"10.81.0.1"}, httpPort))
	require.NoError(t, err)
	kc := kubeconfig(t,
		fmt.Sprintf("server: %s\ncertificate-authority-data: %s\n", c.URL, b64(readFile(t, c.CAFile))),
		"tokenFile: secrets/token\n",
		map[string][]byte{"secrets/token": readFile(t, c.DiscoveryTokenFile)})
	d := newDaemon(t, "")
	d.Source = []string{"-kubeconfig", kc}
	d.Start()
	d.WaitReady(30 * time.Second)
	eventually(t, 30*time.Second, "kdisc nodes -kubeconfig", func() (bool, string) {
		out, code := d.runCLI("nodes", "-kubeconfig", kc, "-shm-dir", d.ShmDir, ns+"/web:http")
		return code == 0 && out == nodesJSON(50, "10.81.0.1:80"), fmt.Sprintf("exit %d: %s", code, out)
	})
	out, code := d.runCLI("check", "-kubeconfig", kc)
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, `"tokenFile": "`+filepath.Join(filepath.Dir(kc), "secrets", "token")+`"`)
	assert.Contains(t, out, `"certificate-authority-data": "<redacted>"`)
}

// A client certificate and key given as data (mTLS as the "discovery"
// user), no token.
func TestKubeconfigClientCertificateData(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c.APIServer, "e2e-kc-cert")
	_, err := c.ApplyEndpoints(ctx(t), ns, "web", kubetest.Subset([]string{"10.82.0.1"}, httpPort))
	require.NoError(t, err)
	kc := kubeconfig(t,
		fmt.Sprintf("server: %s\ncertificate-authority-data: %s\n", c.URL, b64(readFile(t, c.CAFile))),
		fmt.Sprintf("client-certificate-data: %s\nclient-key-data: %s\n", b64(readFile(t, c.DiscoveryCertFile)), b64(readFile(t, c.DiscoveryKeyFile))),
		nil)
	d := startKubeconfig(t, kc)
	waitHosts(t, d, ns+"/web:http", "10.82.0.1:80/50")
	dump := encodeJSON(t, d.Dump())
	assert.Contains(t, dump, `"client-key-data":"<redacted>"`)
	assert.NotContains(t, dump, b64(readFile(t, c.DiscoveryKeyFile)))
}

// gateway is a loopback TLS reverse proxy to the apiserver that strips a
// path prefix (as Rancher's or a gateway's cluster URLs have), refuses
// requests without it, and can cut every connection kdisc has open.
type gateway struct {
	*httptest.Server
	mu         sync.Mutex
	unprefixed []string
}

func newGateway(t *testing.T, c *kubetest.Cluster, prefix string) *gateway {
	t.Helper()
	target, err := url.Parse(c.URL)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(readFile(t, c.CAFile)))
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.URL.Path = strings.TrimPrefix(r.In.URL.Path, prefix)
			r.Out.URL.RawPath = ""
			r.Out.Host = target.Host
		},
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		FlushInterval: -1, // watch events pass at once
	}
	g := &gateway{}
	g.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if prefix != "" && !strings.HasPrefix(r.URL.Path, prefix+"/") {
			g.mu.Lock()
			g.unprefixed = append(g.unprefixed, r.URL.Path)
			g.mu.Unlock()
			http.NotFound(w, r)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(g.Close)
	return g
}

// caPEM is the PEM of the gateway's (self-signed) certificate.
func (g *gateway) caPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: g.Certificate().Raw})
}

// A server URL with a path prefix, through a gateway that strips it:
// every list and watch carries the prefix. The gateway's certificate is
// verified with certificate-authority-data and tls-server-name.
func TestKubeconfigPathPrefix(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c.APIServer, "e2e-kc-prefix")
	_, err := c.ApplyEndpoints(ctx(t), ns, "web", kubetest.Subset([]string{"10.83.0.1"}, httpPort))
	require.NoError(t, err)
	const prefix = "/k8s/clusters/c-1"
	g := newGateway(t, c, prefix)
	kc := kubeconfig(t,
		fmt.Sprintf("server: %s%s\ncertificate-authority-data: %s\ntls-server-name: example.com\n", g.URL, prefix, b64(g.caPEM())),
		"token: "+c.DiscoveryToken+"\n", nil)
	d := newDaemon(t, "")
	d.Source = []string{"-kubeconfig", kc}
	d.Start()
	d.WaitReady(30 * time.Second)
	check := func(want string) {
		eventually(t, 30*time.Second, "kdisc nodes = "+want, func() (bool, string) {
			out, code := d.runCLI("nodes", "-kubeconfig", kc, "-shm-dir", d.ShmDir, ns+"/web:http")
			return code == 0 && out == want, fmt.Sprintf("exit %d: %s", code, out)
		})
	}
	check(nodesJSON(50, "10.83.0.1:80"))
	_, err = c.ApplyEndpoints(ctx(t), ns, "web", kubetest.Subset([]string{"10.83.0.2"}, httpPort))
	require.NoError(t, err)
	check(nodesJSON(50, "10.83.0.2:80")) // by watch, through the gateway
	g.mu.Lock()
	assert.Empty(t, g.unprefixed, "every request carries the prefix")
	g.mu.Unlock()
}

// An exec plugin: its first token is refused by the apiserver (401), so
// kdisc runs it again at once; the second token expires after a few
// seconds, and once it has, the next request (after the gateway cut the
// watch) runs the plugin a third time.
func TestKubeconfigExecRefresh(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c.APIServer, "e2e-kc-exec")
	_, err := c.ApplyEndpoints(ctx(t), ns, "web", kubetest.Subset([]string{"10.84.0.1"}, httpPort))
	require.NoError(t, err)
	g := newGateway(t, c, "")
	script, err := filepath.Abs("../apiserver/testdata/exec-credential.sh")
	require.NoError(t, err)
	runs := filepath.Join(t.TempDir(), "runs")
	kc := kubeconfig(t,
		fmt.Sprintf("server: %s\ncertificate-authority-data: %s\n", g.URL, b64(g.caPEM())),
		fmt.Sprintf(`exec:
  apiVersion: client.authentication.k8s.io/v1
  interactiveMode: Never
  command: %s
  env:
  - {name: KDISC_EXEC_COUNT, value: %s}
  - {name: KDISC_EXEC_API, value: client.authentication.k8s.io/v1}
  - {name: KDISC_EXEC_TOKENS, value: "not-a-valid-token %s"}
  - {name: KDISC_EXEC_EXPIRY, value: "+3"}
`, script, runs, c.DiscoveryToken), nil)
	count := func() string { return strings.TrimSpace(string(readFile(t, runs))) }

	d := startKubeconfig(t, kc)
	waitHosts(t, d, ns+"/web:http", "10.84.0.1:80/50")
	assert.Equal(t, "2", count(), "the refused token made the plugin run again")

	time.Sleep(4 * time.Second) // the token has expired
	g.CloseClientConnections()  // the watch breaks; kdisc watches again
	_, err = c.ApplyEndpoints(ctx(t), ns, "web", kubetest.Subset([]string{"10.84.0.2"}, httpPort))
	require.NoError(t, err)
	waitHosts(t, d, ns+"/web:http", "10.84.0.2:80/50")
	eventually(t, 10*time.Second, "a third run", func() (bool, string) {
		n := count()
		return n == "3" || n == "4", n
	})
	assert.NotContains(t, encodeJSON(t, d.Dump()), c.DiscoveryToken)
}

func encodeJSON(t *testing.T, v any) string {
	t.Helper()
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	require.NoError(t, enc.Encode(v))
	return b.String()
}

// A token file replaced in place within one mtime tick keeps its size and
// mtime: only the apiserver's 401 says the token changed. kdisc reads the
// file again on the 401 and retries with the new token; until then the
// cluster is not ready, classed "unauthorized" (the word the -health
// listener shows).
func TestKubeconfigTokenFileRewrittenInPlace(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c.APIServer, "e2e-kc-inplace")
	_, err := c.ApplyEndpoints(ctx(t), ns, "web", kubetest.Subset([]string{"10.85.0.1"}, httpPort))
	require.NoError(t, err)
	good := readFile(t, c.DiscoveryTokenFile)
	stale := bytes.Map(func(r rune) rune { // the same size, refused
		if unicode.IsSpace(r) {
			return r
		}
		return 'x'
	}, good)
	require.Len(t, stale, len(good))
	kc := kubeconfig(t,
		fmt.Sprintf("server: %s\ncertificate-authority-data: %s\n", c.URL, b64(readFile(t, c.CAFile))),
		"tokenFile: secrets/token\n",
		map[string][]byte{"secrets/token": stale})
	tokenFile := filepath.Join(filepath.Dir(kc), "secrets", "token")
	before, err := os.Stat(tokenFile)
	require.NoError(t, err)

	cfg, err := config.FromKubeconfig(kc, "")
	require.NoError(t, err)
	d := startConfig(t, cfg)
	eventually(t, 30*time.Second, "the stale token refused (401)", func() (bool, string) {
		nr := d.NotReady()
		return len(nr) == 1 && nr[0].Class == dump.ClassUnauthorized, fmt.Sprint(nr)
	})

	require.NoError(t, os.WriteFile(tokenFile, good, 0o600))
	require.NoError(t, os.Chtimes(tokenFile, before.ModTime(), before.ModTime()))
	after, err := os.Stat(tokenFile)
	require.NoError(t, err)
	require.Equal(t, before.Size(), after.Size())
	require.True(t, after.ModTime().Equal(before.ModTime()), "the stat must look unchanged")

	// The next retry (backoff at most 30 s) gets a 401, re-reads, and lists.
	eventually(t, 45*time.Second, "kdisc ready with the rewritten token", func() (bool, string) {
		return d.Ready(), fmt.Sprint(d.NotReady())
	})
	waitHosts(t, d, ns+"/web:http", "10.85.0.1:80/50")
}
