package kdisc_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc/config"
	"github.com/kdisc/kdisc/internal/fakeapi"
)

func kubeconfigCfg(t *testing.T, kubeconfig string) *config.Config {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, os.WriteFile(p, []byte(kubeconfig), 0o600))
	cfg, err := config.FromKubeconfig(p, "")
	require.NoError(t, err)
	return cfg
}

// An exec plugin's token over TLS verified with certificate-authority-data:
// the first token is refused (401), the plugin runs again, kdisc gets ready.
func TestStartKubeconfigExec(t *testing.T) {
	api := fakeapi.New(t, fakeapi.WithTLS(), fakeapi.WithToken(token))
	api.PutEndpoints(endpoints("default", "web", "http", 80, "10.0.0.1"))
	ca, err := os.ReadFile(api.CAFile(t))
	require.NoError(t, err)
	script, err := filepath.Abs("apiserver/testdata/exec-credential.sh")
	require.NoError(t, err)
	count := filepath.Join(t.TempDir(), "count")
	cfg := kubeconfigCfg(t, fmt.Sprintf(`current-context: fake
clusters: [{name: fake, cluster: {server: "https://%s:%d", certificate-authority-data: %s}}]
contexts: [{name: fake, context: {cluster: fake, user: plugin}}]
users:
- name: plugin
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      interactiveMode: Never
      command: %s
      env:
      - {name: KDISC_EXEC_COUNT, value: %s}
      - {name: KDISC_EXEC_API, value: client.authentication.k8s.io/v1}
      - {name: KDISC_EXEC_TOKENS, value: "revoked %s"}
`, api.Host(), api.Port(), base64.StdEncoding.EncodeToString(ca), script, count, token))
	d := start(t, cfg)
	waitReady(t, d)
	assert.Equal(t, []string{"10.0.0.1:80/50"}, hosts(d, "default/web:http"))
	runs, _ := os.ReadFile(count)
	assert.Equal(t, "2", strings.TrimSpace(string(runs)))
	assert.NotContains(t, encode(t, d.Dump()), token)
}

// A server URL with a path: every request carries the prefix.
func TestStartKubeconfigPathPrefix(t *testing.T) {
	api := newAPI(t)
	api.PutEndpoints(endpoints("default", "web", "http", 80, "10.0.0.1"))
	const prefix = "/k8s/clusters/c-1"
	target, err := url.Parse(fmt.Sprintf("http://%s:%d", api.Host(), api.Port()))
	require.NoError(t, err)
	var unprefixed atomic.Int32
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.URL.Path = strings.TrimPrefix(r.In.URL.Path, prefix)
			r.Out.URL.RawPath = ""
		},
		FlushInterval: -1,
	}
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, prefix+"/") {
			unprefixed.Add(1)
			http.NotFound(w, r)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	cfg := kubeconfigCfg(t, fmt.Sprintf(`current-context: gw
clusters: [{name: gw, cluster: {server: "%s%s/"}}]
contexts: [{name: gw, context: {cluster: gw, user: u}}]
users: [{name: u, user: {token: %s}}]
`, proxy.URL, prefix, token))
	d := start(t, cfg)
	waitReady(t, d)
	assert.Equal(t, []string{"10.0.0.1:80/50"}, hosts(d, "default/web:http"))
	api.PutEndpoints(endpoints("default", "web", "http", 80, "10.0.0.2"))
	waitHosts(t, d, "default/web:http", "10.0.0.2:80/50")
	assert.Zero(t, unprefixed.Load())
}
