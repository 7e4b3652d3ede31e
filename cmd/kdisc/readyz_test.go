package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc/internal/kdisctest"
)

// The -health listener is on the pod network. An exec plugin that fails
// prints its reason on stderr, and that text may hold a secret: /readyz
// there says only the class word ("exec"), in the control API's JSON
// shape, while the loopback control API and the log keep the details.
func TestHealthReadyzNeverShowsPluginStderr(t *testing.T) {
	const secret = "AKIA-s3cret-from-stderr"
	api := newAPI(t)
	dir := t.TempDir()
	script, err := filepath.Abs("../../apiserver/testdata/exec-credential.sh")
	require.NoError(t, err)
	kc := filepath.Join(dir, "kubeconfig")
	require.NoError(t, os.WriteFile(kc, fmt.Appendf(nil, `apiVersion: v1
kind: Config
current-context: plugin
clusters: [{name: fake, cluster: {server: "http://%s:%d"}}]
contexts: [{name: plugin, context: {cluster: fake, user: plugin}}]
users:
- name: plugin
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: %s
      env:
      - {name: KDISC_EXEC_COUNT, value: %s}
      - {name: KDISC_EXEC_API, value: client.authentication.k8s.io/v1beta1}
      - {name: KDISC_EXEC_FAIL, value: "denied for profile %s"}
`, api.Host(), api.Port(), script, filepath.Join(dir, "runs"), secret), 0o600))

	s := kdisctest.NewDaemon(t, "", t.TempDir())
	s.Source = []string{"-kubeconfig", kc}
	s.Health = true
	s.Start()
	health := s.HealthAddr()

	// Wait for the failure to be recorded: the control API names it.
	var code int
	var body string
	eventually(t, "the control API's /readyz to name the plugin's failure", func() bool {
		code, body = s.Get("/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, secret)
	}, func() string { return fmt.Sprintf("last /readyz: %d %s", code, body) })
	assert.Contains(t, body, "exec plugin "+script+": exit status 1: denied for profile "+secret)

	code, body = get(t, "http://"+health+"/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, `{"ready":false,"not_ready":[{"reason":"exec"}]}`+"\n", body)
	for _, path := range []string{"/healthz", "/metrics", "/v1/discovery/kubernetes/dump"} {
		_, body = get(t, "http://"+health+path)
		assert.NotContains(t, body, secret, path)
	}
	// Stopped, kdisc has written all its log and the pipe is drained.
	stop(t, s)
	assert.Contains(t, s.Logs(), secret, "the details stay in the log")
}
