package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc/internal/kdisctest"
)

// argSecret is an exec plugin argument: args often carry secrets
// (profiles, account ids), so only `kdisc check` (local) shows them.
const argSecret = "arg-s3cret-profile"

// writeKubeconfig writes a kubeconfig with contexts "fake" (token, the
// current one) and "plugin" (an exec plugin that counts its runs in the
// returned file).
func writeKubeconfig(t *testing.T, server string) (path, runs string) {
	t.Helper()
	dir := t.TempDir()
	script, err := filepath.Abs("../../apiserver/testdata/exec-credential.sh")
	require.NoError(t, err)
	runs = filepath.Join(dir, "runs")
	path = filepath.Join(dir, "kubeconfig")
	require.NoError(t, os.WriteFile(path, fmt.Appendf(nil, `apiVersion: v1
kind: Config
current-context: fake
clusters: [{name: fake, cluster: {server: %q}}]
contexts:
- {name: fake, context: {cluster: fake, user: tok, namespace: ignored}}
- {name: plugin, context: {cluster: fake, user: plugin}}
users:
- {name: tok, user: {token: %s}}
- name: plugin
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: %s
      args: [--profile, %s]
      env:
      - {name: KDISC_EXEC_COUNT, value: %s}
      - {name: KDISC_EXEC_API, value: client.authentication.k8s.io/v1beta1}
      - {name: KDISC_EXEC_TOKENS, value: %s}
`, server, token, script, argSecret, runs, token), 0o600))
	return path, runs
}

func TestCheckKubeconfig(t *testing.T) {
	kc, runs := writeKubeconfig(t, "https://gw.example.com/k8s/clusters/c-1")
	r := kdiscRun(t, "check", "-kubeconfig", kc)
	require.Equal(t, exitOK, r.Code, r.Stderr)
	assert.NotContains(t, r.Stdout, token)
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.Stdout), &got))
	assert.Equal(t, kc, got["kubeconfig"])
	assert.Nil(t, got["service"])
	assert.Nil(t, got["client"])
	assert.Equal(t, map[string]any{
		"file": kc, "context": "fake", "cluster": "fake", "user": "tok",
		"server": "https://gw.example.com/k8s/clusters/c-1", "token": "<redacted>",
		"notes": []any{"the context's namespace (ignored) is ignored: kdisc watches the namespaces of namespace_selector"},
	}, got["source"])
	assert.Equal(t, 50.0, got["default_weight"])

	r = kdiscRun(t, "check", "-kubeconfig", kc, "-context", "plugin")
	require.Equal(t, exitOK, r.Code, r.Stderr)
	assert.Contains(t, r.Stdout, `"context": "plugin"`)
	assert.Contains(t, r.Stdout, `"value": "<redacted>"`)
	assert.NotContains(t, r.Stdout, runs, "exec env values are redacted, in check too")
	assert.Contains(t, r.Stdout, `"name": "KDISC_EXEC_COUNT"`, "their names stay")
	assert.Contains(t, r.Stdout, argSecret, "check is local: it shows exec args")
	assert.NoFileExists(t, runs, "check never runs an exec plugin")

	r = kdiscRun(t, "check", "-kubeconfig", kc, "-context", "nope")
	assert.Equal(t, exitError, r.Code)
	assert.Contains(t, r.Stderr, `kdisc check: -context: context "nope" is not in `+kc)
}

func TestKubeconfigUsageErrors(t *testing.T) {
	kc, _ := writeKubeconfig(t, "https://10.0.0.1")
	for _, cmd := range []string{"run", "nodes", "dump", "check"} {
		r := kdiscRun(t, cmd, "-config", "../../testdata/config/outside-pod.yaml", "-kubeconfig", kc, "default/web:http")
		assert.Equal(t, exitError, r.Code, cmd)
		assert.Contains(t, r.Stderr, "kdisc "+cmd+": -config and -kubeconfig go not together", cmd)
		assert.Empty(t, r.Stdout)

		r = kdiscRun(t, cmd, "-context", "fake", "default/web:http")
		assert.Equal(t, exitError, r.Code, cmd)
		assert.Contains(t, r.Stderr, "kdisc "+cmd+": -context needs -kubeconfig", cmd)
	}
	r := kdiscRun(t, "check")
	assert.Contains(t, r.Stderr, "-config is required (or -kubeconfig FILE)")
}

// kdisc run -kubeconfig, and nodes and dump from other processes with the
// same flags; neither runs the exec plugin.
func TestRunKubeconfig(t *testing.T) {
	api := newAPI(t)
	api.PutEndpoints(endpoints("default", "web", "http", 8080, "10.5.10.109"))
	kc, runs := writeKubeconfig(t, fmt.Sprintf("http://%s:%d", api.Host(), api.Port()))
	dir := t.TempDir()
	s := kdisctest.NewDaemon(t, "", dir)
	s.Source = []string{"-kubeconfig", kc, "-context", "plugin"}
	s.Start()
	waitReady(t, s)
	assert.Equal(t, "1", readTrimmed(t, runs), "run runs the plugin")

	r := kdiscRun(t, "nodes", "-kubeconfig", kc, "-context", "plugin", "-shm-dir", dir, "default/web:http")
	assert.Equal(t, exitOK, r.Code, r.Stderr)
	assert.Equal(t, `[{"host":"10.5.10.109","port":8080,"weight":50}]`+"\n", r.Stdout)
	r = kdiscRun(t, "dump", "-kubeconfig", kc, "-context", "plugin", "-shm-dir", dir)
	assert.Equal(t, exitOK, r.Code, r.Stderr)
	assert.Contains(t, r.Stdout, `"config":{"kubeconfig":"`+kc+`","context":"plugin","source":{`)
	assert.NotContains(t, r.Stdout, token)
	assert.NotContains(t, r.Stdout, argSecret, "the dump travels over HTTP: exec args are redacted")
	assert.NotContains(t, r.Stdout, runs, "exec env values are redacted")
	assert.Contains(t, r.Stdout, `"args":["<redacted>","<redacted>"]`)
	code, body := s.Get("/v1/discovery/kubernetes/dump")
	assert.Equal(t, 200, code)
	assert.Equal(t, r.Stdout, body)
	assert.Equal(t, "1", readTrimmed(t, runs), "nodes and dump never run the plugin")
	assert.NotContains(t, s.Logs(), token)
}

func readTrimmed(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b[:len(b)-1])
}
