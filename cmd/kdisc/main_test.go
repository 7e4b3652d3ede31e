package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc"
	"github.com/kdisc/kdisc/config"
	"github.com/kdisc/kdisc/internal/fakeapi"
	"github.com/kdisc/kdisc/internal/kdisctest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	kdisctest.RemoveBinary()
	os.Exit(code)
}

const token = "cli-s3cr3t-t0ken"

// testEnv is what the fixtures of testdata/config name.
var testEnv = []string{
	"KUBERNETES_SERVICE_HOST=10.96.0.1",
	"KUBERNETES_SERVICE_PORT=443",
	"KDISC_TEST_TOKEN=" + token,
	"KDISC_TEST_DOMAIN=example.com",
	"KDISC_TEST_PORT=16443",
	"KDISC_TEST_TOKEN_DIR=/run/kdisc",
}

// kdiscRun runs kdisc with testEnv to completion (30 s at most).
func kdiscRun(t *testing.T, args ...string) kdisctest.Result {
	t.Helper()
	return kdisctest.Run(t, testEnv, args...)
}

// startRun starts `kdisc run -config cfgFile -shm-dir dir` with testEnv;
// it returns once /healthz answers.
func startRun(t *testing.T, cfgFile, dir string) *kdisctest.Daemon {
	t.Helper()
	s := kdisctest.NewDaemon(t, cfgFile, dir)
	s.Env = testEnv
	s.Start()
	return s
}

// waitReady polls /readyz until 200 (15 s at most).
func waitReady(t *testing.T, s *kdisctest.Daemon) {
	t.Helper()
	body := s.WaitReady(15 * time.Second)
	assert.JSONEq(t, `{"ready":true}`, body)
}

// stop sends SIGTERM and waits for the exit; it fails the test unless
// kdisc exits 0 within 10 s.
func stop(t *testing.T, s *kdisctest.Daemon) time.Duration {
	t.Helper()
	begin := time.Now()
	require.NoError(t, s.Stop(), "exit status after SIGTERM\n%s", s.Logs())
	return time.Since(begin)
}

// eventually polls cond until it holds, or fails the test after 15 s with
// the text of describe.
func eventually(t *testing.T, what string, cond func() bool, describe ...func() string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			msg := "timed out waiting for " + what
			for _, d := range describe {
				msg += "\n" + d()
			}
			t.Fatal(msg)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func newAPI(t *testing.T) *fakeapi.Server {
	return fakeapi.New(t, fakeapi.WithToken(token))
}

func endpoints(ns, name, port string, number int32, ips ...string) *fakeapi.Endpoints {
	return fakeapi.NewEndpoints(ns, name, port, number, ips...)
}

// writeConfig writes a configuration for the fake apiservers: single mode
// with one server and no ids, multi mode otherwise.
func writeConfig(t *testing.T, ids []string, apis ...*fakeapi.Server) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("discovery:\n  kubernetes:\n")
	if ids == nil {
		fmt.Fprintf(&b, "    service: {schema: http, host: %s, port: %d}\n    client: {token: %s}\n", apis[0].Host(), apis[0].Port(), token)
	} else {
		for i, api := range apis {
			fmt.Fprintf(&b, "    - id: %s\n      service: {schema: http, host: %s, port: %d}\n      client: {token: %s}\n",
				ids[i], api.Host(), api.Port(), token)
		}
	}
	p := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(p, []byte(b.String()), 0o600))
	return p
}

func TestCheckFixtures(t *testing.T) {
	files, err := filepath.Glob("../../testdata/config/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := kdiscRun(t, "check", "-config", f)
			require.Equal(t, 0, r.Code, "stderr: %s", r.Stderr)
			assert.Empty(t, r.Stderr)
			assert.True(t, json.Valid([]byte(r.Stdout)), r.Stdout)
			assert.NotContains(t, r.Stdout, token)
			assert.NotContains(t, r.Stdout, `\u003c`, "HTML escaping is off")

			// It prints the effective configuration, as the dump holds it.
			for _, kv := range testEnv {
				k, v, _ := strings.Cut(kv, "=")
				t.Setenv(k, v)
			}
			cfg, err := config.Load(f)
			require.NoError(t, err)
			want, err := cfg.EffectiveJSON()
			require.NoError(t, err)
			assert.JSONEq(t, string(want), r.Stdout)
		})
	}
}

func TestCheckRedactsToken(t *testing.T) {
	r := kdiscRun(t, "check", "-config", "../../testdata/config/outside-pod.yaml")
	require.Equal(t, 0, r.Code, r.Stderr)
	assert.Equal(t, `{
  "service": {
    "schema": "https",
    "host": "10.96.0.1",
    "port": 6443
  },
  "client": {
    "token": "<redacted>"
  },
  "default_weight": 50,
  "shared_size": "1m",
  "watch_endpoint_slices": false,
  "content_type": "protobuf",
  "terminating_fallback": true,
  "node_detail": false
}
`, r.Stdout)

	r = kdiscRun(t, "check", "-config", "../../testdata/config/multi-full.yaml")
	require.Equal(t, 0, r.Code, r.Stderr)
	var clusters []map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.Stdout), &clusters), "multi mode prints an array")
	require.Len(t, clusters, 3)
	assert.Equal(t, map[string]any{"token": "<redacted>"}, clusters[0]["client"])
	assert.NotContains(t, r.Stdout, token)
}

// TestCheckShowsNode: `kdisc check` shows node (hints.forNodes) as written,
// and refuses it when the variable it names is unset.
func TestCheckShowsNode(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(p, []byte("discovery:\n  kubernetes:\n    watch_endpoint_slices: true\n    zone: a\n    node: ${KDISC_TEST_NODE}\n"), 0o600))
	r := kdisctest.Run(t, append(slices.Clone(testEnv), "KDISC_TEST_NODE=worker-1"), "check", "-config", p)
	require.Equal(t, 0, r.Code, r.Stderr)
	assert.Contains(t, r.Stdout, `"zone": "a",
  "node": "${KDISC_TEST_NODE}",
  "node_detail": false`)
	r = kdiscRun(t, "check", "-config", p)
	assert.NotEqual(t, 0, r.Code)
	assert.Contains(t, r.Stderr, "discovery.kubernetes.node: environment variable KDISC_TEST_NODE is not set")
}

func TestCheckInvalid(t *testing.T) {
	tests := []struct {
		file string
		want string
	}{
		{"bad-id.yaml", "discovery.kubernetes[0].id: must match ^[a-z0-9]{1,64}$"},
		{"duplicate-id.yaml", `discovery.kubernetes[1].id: must be unique`},
		{"bad-port.yaml", "discovery.kubernetes.service.port: must be an integer 1..65535"},
		{"bad-schema.yaml", "discovery.kubernetes.service.schema: must be http or https"},
		{"unset-env.yaml", "discovery.kubernetes.service.host: environment variable KDISC_CLI_TEST_UNSET is not set"},
		{"bad-shared-size.yaml", "discovery.kubernetes.shared_size: must be a size"},
		{"bad-label-selector.yaml", "discovery.kubernetes.label_selector: invalid label selector"},
		{"two-namespace-selectors.yaml", "discovery.kubernetes.namespace_selector: at most one of"},
		{"multi-no-client.yaml", "discovery.kubernetes[0].client: token or token_file is required"},
		{"bad-weight.yaml", "discovery.kubernetes.default_weight: must be an integer >= 0"},
		{"ssl-verify-disagree.yaml", "discovery.kubernetes.client.ssl_verify: disagrees with discovery.kubernetes.service.ssl_verify"},
		{"no-discovery.yaml", "discovery.kubernetes: is required"},
		{"not-yaml.yaml", "invalid YAML"},
		{"ipv6-zone.yaml", `discovery.kubernetes[0].service.host: "fe80::1%eth0": an IPv6 address with a zone (%eth0) is not supported`},
	}
	files, err := filepath.Glob("../../testdata/cli/*.yaml")
	require.NoError(t, err)
	require.Len(t, files, len(tests), "every fixture in testdata/cli is checked")
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			r := kdiscRun(t, "check", "-config", filepath.Join("../../testdata/cli", tt.file))
			assert.Equal(t, exitError, r.Code)
			assert.Empty(t, r.Stdout)
			assert.Contains(t, r.Stderr, "kdisc check: ")
			assert.Contains(t, r.Stderr, tt.want)
		})
	}
}

func TestUsageErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	tests := []struct {
		args []string
		want string
	}{
		{nil, "usage:"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"check"}, "-config is required"},
		{[]string{"check", "-config", missing}, "missing.yaml"},
		{[]string{"check", "-bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"check", "-config", "x", "-shm-dir", "/tmp"}, "flag provided but not defined: -shm-dir"},
		{[]string{"nodes", "-config", "../../testdata/config/outside-pod.yaml"}, "want exactly one SERVICE"},
		{[]string{"nodes", "-config", "../../testdata/config/outside-pod.yaml", "a/b:c", "d/e:f"}, "want exactly one SERVICE"},
		{[]string{"dump", "-config", missing}, "missing.yaml"},
	}
	for _, tt := range tests {
		r := kdiscRun(t, tt.args...)
		assert.Equal(t, exitError, r.Code, "%v", tt.args)
		assert.Contains(t, r.Stderr, tt.want, "%v", tt.args)
		assert.Empty(t, r.Stdout, "%v", tt.args)
	}
	r := kdiscRun(t, "help")
	assert.Equal(t, 0, r.Code)
	assert.Contains(t, r.Stdout, "kdisc nodes -config FILE [-shm-dir DIR] SERVICE")
}

func TestRunNodesDump(t *testing.T) {
	api := newAPI(t)
	api.PutEndpoints(endpoints("default", "web", "http", 8080, "10.5.10.110", "10.5.10.109"))
	api.PutEndpoints(endpoints("default", "kubernetes", "https", 6443, "172.18.164.170"))
	cfg := writeConfig(t, nil, api)
	dir := t.TempDir()
	s := startRun(t, cfg, dir)
	waitReady(t, s)
	assert.FileExists(t, filepath.Join(dir, "kubernetes"))

	// nodes, from another process.
	r := kdiscRun(t, "nodes", "-config", cfg, "-shm-dir", dir, "default/web:http")
	assert.Equal(t, exitOK, r.Code, r.Stderr)
	assert.Equal(t, `[{"host":"10.5.10.109","port":8080,"weight":50},{"host":"10.5.10.110","port":8080,"weight":50}]`+"\n", r.Stdout)
	assert.Empty(t, r.Stderr)

	for _, svc := range []string{"default/web:https", "default/nope:http", "nope"} {
		r = kdiscRun(t, "nodes", "-config", cfg, "-shm-dir", dir, svc)
		assert.Equal(t, exitNotFound, r.Code, svc)
		assert.Empty(t, r.Stdout, svc)
		assert.Contains(t, r.Stderr, svc+" not found: unknown")
	}
	// No table there (kdisc run not started): not found and not ready.
	r = kdiscRun(t, "nodes", "-config", cfg, "-shm-dir", filepath.Join(dir, "missing"), "default/web:http")
	assert.Equal(t, exitNotReady, r.Code)
	assert.Empty(t, r.Stdout)
	assert.Contains(t, r.Stderr, "not_ready")

	// The control API answers the same.
	code, body := s.Get("/v1/discovery/kubernetes/nodes?service=default/web:http")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, `[{"host":"10.5.10.109","port":8080,"weight":50},{"host":"10.5.10.110","port":8080,"weight":50}]`+"\n", body)
	code, body = s.Get("/v1/discovery/kubernetes/nodes?service=default/nope:http")
	assert.Equal(t, http.StatusNotFound, code)
	assert.JSONEq(t, `{"error":"service default/nope:http not found","reason":"unknown"}`, body)
	code, _ = s.Get("/v1/discovery/kubernetes/nodes")
	assert.Equal(t, http.StatusBadRequest, code)

	// dump, from another process and from the control API.
	r = kdiscRun(t, "dump", "-config", cfg, "-shm-dir", dir)
	assert.Equal(t, exitOK, r.Code, r.Stderr)
	wantPrefix := `{"endpoints":[{"endpoints":[` +
		`{"name":"default/kubernetes","value":"{\"https\":[{\"host\":\"172.18.164.170\",\"port\":6443,\"weight\":50}]}"},` +
		`{"name":"default/web","value":"{\"http\":[{\"host\":\"10.5.10.109\",\"port\":8080,\"weight\":50},{\"host\":\"10.5.10.110\",\"port\":8080,\"weight\":50}]}"}]}],` +
		`"config":{"service":{"schema":"http",`
	assert.True(t, strings.HasPrefix(r.Stdout, wantPrefix), r.Stdout)
	assert.Contains(t, r.Stdout, `"client":{"token":"<redacted>"}`)
	assert.NotContains(t, r.Stdout, token)
	assert.Equal(t, 1, strings.Count(r.Stdout, "\n"), "one line")
	code, body = s.Get("/v1/discovery/kubernetes/dump")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, r.Stdout, body, "the CLI and the control API dump the same")

	// No table there: an empty dump, and stderr says why.
	r = kdiscRun(t, "dump", "-config", cfg, "-shm-dir", filepath.Join(dir, "missing"))
	assert.Equal(t, exitOK, r.Code)
	assert.Contains(t, r.Stdout, `"endpoints":[{"endpoints":[]}]`)
	assert.Contains(t, r.Stderr, "not ready")

	// health and metrics.
	code, _ = s.Get("/healthz")
	assert.Equal(t, http.StatusOK, code)
	code, body = s.Get("/metrics")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, `kdisc_ready{cluster=""} 1`+"\n")
	assert.Contains(t, body, `kdisc_table_entries{cluster=""} 2`+"\n")
	assert.NotContains(t, s.Logs(), token, "the token is never logged")
}

func TestSecondRunOnSameTableRefused(t *testing.T) {
	api := newAPI(t)
	cfg := writeConfig(t, nil, api)
	dir := t.TempDir()
	s := startRun(t, cfg, dir)
	waitReady(t, s)

	second := kdiscRun(t, "run", "-config", cfg, "-shm-dir", dir, "-control", "127.0.0.1:0")
	require.Less(t, second.Took, 15*time.Second, "a second kdisc run on the same table kept running")
	require.NotEqual(t, 0, second.Code, "exit status of the second kdisc run")
	assert.Equal(t, exitError, second.Code)
	assert.Contains(t, second.Stderr, "another kdisc run is writing")
	code, _ := s.Get("/readyz")
	assert.Equal(t, http.StatusOK, code, "the first one is unaffected")
}

// TestChangeLatency measures how long a change takes from the fake
// apiserver's Put returning to a reader of the table file in this process
// (a separate mapping, as another process has) and to `kdisc nodes`.
func TestChangeLatency(t *testing.T) {
	api := newAPI(t)
	api.PutEndpoints(endpoints("default", "web", "http", 80, "10.0.0.1"))
	cfgFile := writeConfig(t, nil, api)
	dir := t.TempDir()
	s := startRun(t, cfgFile, dir)
	waitReady(t, s)
	api.WaitWatchers(1)

	cfg, err := config.Load(cfgFile)
	require.NoError(t, err)
	reader, err := kdisc.Attach(dir, cfg)
	require.NoError(t, err)
	defer reader.Close()

	buf := make([]kdisc.Node, 0, 4)
	sees := func(ip string) bool {
		nodes, ok := reader.Nodes(buf[:0], "default/web:http")
		return ok && len(nodes) == 1 && nodes[0].Addr.String() == ip
	}
	require.True(t, sees("10.0.0.1"))

	const rounds = 21
	var lat []time.Duration
	for i := range rounds {
		ip := fmt.Sprintf("10.0.1.%d", i+1)
		api.PutEndpoints(endpoints("default", "web", "http", 80, ip))
		begin := time.Now()
		for !sees(ip) {
			if time.Since(begin) > 5*time.Second {
				t.Fatalf("round %d: %s not seen after 5 s", i, ip)
			}
			// Spin: this measures latency, a sleep would add its own.
		}
		lat = append(lat, time.Since(begin))
	}
	slices.Sort(lat)
	median, worst := lat[rounds/2], lat[rounds-1]
	t.Logf("Put returned -> visible in the table (%d changes): min %v, median %v, max %v", rounds, lat[0], median, worst)
	assert.Less(t, median, 100*time.Millisecond, "contract: a change is visible to readers within 100 ms")
	assert.Less(t, worst, time.Second)

	// The same through `kdisc nodes` in a new process each time: this
	// includes starting the process.
	api.PutEndpoints(endpoints("default", "web", "http", 80, "10.0.2.1"))
	begin := time.Now()
	var r kdisctest.Result
	eventually(t, "kdisc nodes sees 10.0.2.1", func() bool {
		r = kdiscRun(t, "nodes", "-config", cfgFile, "-shm-dir", dir, "default/web:http")
		return r.Code == 0 && strings.Contains(r.Stdout, `"10.0.2.1"`)
	})
	t.Logf("Put returned -> `kdisc nodes` printed it: %v (one run of kdisc nodes takes %v)", time.Since(begin), r.Took)
	assert.Equal(t, `[{"host":"10.0.2.1","port":80,"weight":50}]`+"\n", r.Stdout)
}

func TestRunMulti(t *testing.T) {
	a, b := newAPI(t), newAPI(t)
	a.PutEndpoints(endpoints("default", "web", "http", 80, "10.1.0.1"))
	b.PutEndpoints(endpoints("default", "web", "http", 80, "10.2.0.1"))
	cfg := writeConfig(t, []string{"first", "second"}, a, b)
	dir := t.TempDir()
	s := startRun(t, cfg, dir)
	waitReady(t, s)
	assert.FileExists(t, filepath.Join(dir, "kubernetes-first"))
	assert.FileExists(t, filepath.Join(dir, "kubernetes-second"))

	r := kdiscRun(t, "nodes", "-config", cfg, "-shm-dir", dir, "first/default/web:http")
	assert.Equal(t, exitOK, r.Code, r.Stderr)
	assert.Equal(t, `[{"host":"10.1.0.1","port":80,"weight":50}]`+"\n", r.Stdout)
	r = kdiscRun(t, "nodes", "-config", cfg, "-shm-dir", dir, "second/default/web:http")
	assert.Equal(t, exitOK, r.Code, r.Stderr)
	assert.Equal(t, `[{"host":"10.2.0.1","port":80,"weight":50}]`+"\n", r.Stdout)
	for _, svc := range []string{"default/web:http", "third/default/web:http", "first"} {
		r = kdiscRun(t, "nodes", "-config", cfg, "-shm-dir", dir, svc)
		assert.Equal(t, exitNotFound, r.Code, svc)
	}

	r = kdiscRun(t, "dump", "-config", cfg, "-shm-dir", dir)
	assert.Equal(t, exitOK, r.Code, r.Stderr)
	assert.True(t, strings.HasPrefix(r.Stdout,
		`{"endpoints":[{"id":"first","endpoints":[{"name":"default/web","value":"{\"http\":[{\"host\":\"10.1.0.1\",\"port\":80,\"weight\":50}]}"}]},`+
			`{"id":"second","endpoints":[{"name":"default/web","value":"{\"http\":[{\"host\":\"10.2.0.1\",\"port\":80,\"weight\":50}]}"}]}],`+
			`"config":[{"id":"first",`), r.Stdout)
	assert.Equal(t, 2, strings.Count(r.Stdout, `"token":"<redacted>"`))
	assert.NotContains(t, r.Stdout, token)

	_, body := s.Get("/metrics")
	assert.Contains(t, body, `kdisc_ready{cluster="first"} 1`)
	assert.Contains(t, body, `kdisc_ready{cluster="second"} 1`)
}

func TestReadyzNamesForbiddenCluster(t *testing.T) {
	a, b := newAPI(t), newAPI(t)
	b.Fail(fakeapi.AnyRequest, fakeapi.Forbidden("system:serviceaccount:apisix:apisix"), -1)
	cfg := writeConfig(t, []string{"good", "bad"}, a, b)
	s := startRun(t, cfg, t.TempDir())

	// good's streaming list is a watch: it opens before good is listed, so
	// wait for good to leave the list rather than for its watch.
	var code int
	var body string
	eventually(t, "/readyz 503 naming bad alone", func() bool {
		code, body = s.Get("/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "403 Forbidden") && !strings.Contains(body, `"id":"good"`)
	}, func() string { return fmt.Sprintf("last /readyz: %d %s", code, body) })
	var ready struct {
		Ready    bool `json:"ready"`
		NotReady []struct {
			ID     string `json:"id"`
			Reason string `json:"reason"`
		} `json:"not_ready"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &ready), body)
	assert.False(t, ready.Ready)
	require.Len(t, ready.NotReady, 1, body)
	assert.Equal(t, "bad", ready.NotReady[0].ID)
	assert.Contains(t, ready.NotReady[0].Reason, "403 Forbidden from apiserver: ")
	assert.Contains(t, ready.NotReady[0].Reason, "system:serviceaccount:apisix:apisix")
	code, _ = s.Get("/healthz")
	assert.Equal(t, http.StatusOK, code, "alive while not ready")
	_, metrics := s.Get("/metrics")
	assert.Contains(t, metrics, `kdisc_ready{cluster="good"} 1`)
	assert.Contains(t, metrics, `kdisc_ready{cluster="bad"} 0`)

	b.ClearFaults()
	waitReady(t, s)
}

func TestSIGTERMKeepsTables(t *testing.T) {
	api := newAPI(t)
	api.PutEndpoints(endpoints("default", "web", "http", 80, "10.0.0.1"))
	cfg := writeConfig(t, nil, api)
	dir := t.TempDir()
	s := startRun(t, cfg, dir)
	waitReady(t, s)
	api.WaitWatchers(1)

	took := stop(t, s)
	t.Logf("kdisc run exited %v after SIGTERM", took)
	assert.Less(t, took, 5*time.Second)
	api.WaitWatchers(0)
	assert.FileExists(t, filepath.Join(dir, "kubernetes"))

	// Readers keep the last known nodes.
	r := kdiscRun(t, "nodes", "-config", cfg, "-shm-dir", dir, "default/web:http")
	assert.Equal(t, exitOK, r.Code, r.Stderr)
	assert.Equal(t, `[{"host":"10.0.0.1","port":80,"weight":50}]`+"\n", r.Stdout)
	r = kdiscRun(t, "dump", "-config", cfg, "-shm-dir", dir)
	assert.Equal(t, exitOK, r.Code, r.Stderr)
	assert.Contains(t, r.Stdout, `"name":"default/web"`)
}

func TestRestartRemovesServicesDeletedWhileDown(t *testing.T) {
	api := newAPI(t)
	api.PutEndpoints(endpoints("default", "web", "http", 80, "10.0.0.1"))
	api.PutEndpoints(endpoints("default", "db", "mysql", 3306, "10.0.0.2"))
	cfg := writeConfig(t, nil, api)
	dir := t.TempDir()
	s := startRun(t, cfg, dir)
	waitReady(t, s)
	stop(t, s)

	api.DeleteEndpoints("default", "db")
	api.PutEndpoints(endpoints("default", "web", "http", 80, "10.0.0.3"))
	api.PutEndpoints(endpoints("shop", "cart", "http", 80, "10.0.0.4"))
	r := kdiscRun(t, "nodes", "-config", cfg, "-shm-dir", dir, "default/db:mysql")
	require.Equal(t, exitOK, r.Code, "while kdisc is down the table keeps db")

	s = startRun(t, cfg, dir)
	waitReady(t, s)
	r = kdiscRun(t, "nodes", "-config", cfg, "-shm-dir", dir, "default/db:mysql")
	assert.Equal(t, exitNotFound, r.Code, r.Stdout)
	r = kdiscRun(t, "nodes", "-config", cfg, "-shm-dir", dir, "default/web:http")
	assert.Equal(t, `[{"host":"10.0.0.3","port":80,"weight":50}]`+"\n", r.Stdout)
	r = kdiscRun(t, "nodes", "-config", cfg, "-shm-dir", dir, "shop/cart:http")
	assert.Equal(t, `[{"host":"10.0.0.4","port":80,"weight":50}]`+"\n", r.Stdout)
	r = kdiscRun(t, "dump", "-config", cfg, "-shm-dir", dir)
	assert.NotContains(t, r.Stdout, "default/db")
	stop(t, s)
}

// TestStopWhileNotReady stops kdisc run while its list hangs or while it
// backs off after a refusal, and with SIGINT.
func TestStopWhileNotReady(t *testing.T) {
	for _, tt := range []struct {
		name  string
		fault fakeapi.Fault
		sig   syscall.Signal
	}{
		{"SIGTERM during a stalled list", fakeapi.Stall(), syscall.SIGTERM},
		{"SIGTERM while backing off", fakeapi.Forbidden("system:serviceaccount:apisix:apisix"), syscall.SIGTERM},
		{"SIGINT while backing off", fakeapi.ServiceUnavailable(20), syscall.SIGINT},
	} {
		t.Run(tt.name, func(t *testing.T) {
			api := newAPI(t)
			api.Fail(fakeapi.AnyRequest, tt.fault, -1)
			cfg := writeConfig(t, nil, api)
			s := startRun(t, cfg, t.TempDir())
			api.WaitRequests(fakeapi.AnyRequest, 1)
			code, body := s.Get("/readyz")
			require.Equal(t, http.StatusServiceUnavailable, code, body)

			begin := time.Now()
			err := s.StopWith(tt.sig) // fails unless it exits within 10 s
			t.Logf("%v: exited after %v", tt.sig, time.Since(begin))
			require.NoError(t, err, s.Logs())
			assert.Less(t, time.Since(begin), 5*time.Second)
			api.ReleaseStalls()
		})
	}
}
