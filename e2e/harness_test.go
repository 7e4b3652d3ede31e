package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc/config"
	"github.com/kdisc/kdisc/dump"
	"github.com/kdisc/kdisc/internal/kdisctest"
	"github.com/kdisc/kdisc/internal/kubetest"
)

// cluster returns the package's shared real cluster (skips without
// KDISC_E2E=1, fails if it cannot start).
func cluster(t *testing.T) *kubetest.Cluster {
	t.Helper()
	return kubetest.Shared(t)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// namespace creates a fresh namespace with the given prefix; tests share
// the cluster and select their own namespaces.
func namespace(t *testing.T, a *kubetest.APIServer, prefix string) string {
	t.Helper()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	ns := prefix + "-" + hex.EncodeToString(b)
	require.NoError(t, a.CreateNamespace(ctx(t), ns))
	return ns
}

// eventually polls cond every few milliseconds until it holds; it fails
// the test after timeout, saying what it waited for and the last state.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last: %s", timeout, what, state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// singleConfig is a whole config.yaml in single mode.
func singleConfig(body string) string {
	return "apisix:\n  node_listen: 9080\ndiscovery:\n  kubernetes:\n" + kubetest.Indent(body, "    ")
}

// multiConfig is a whole config.yaml in multi mode; items are id -> body.
func multiConfig(items ...[2]string) string {
	var b strings.Builder
	b.WriteString("discovery:\n  kubernetes:\n")
	for _, it := range items {
		b.WriteString("    - id: " + it[0] + "\n")
		b.WriteString(kubetest.Indent(it[1], "      "))
	}
	return b.String()
}

func loadConfig(t *testing.T, path string) *config.Config {
	t.Helper()
	cfg, err := config.Load(path)
	require.NoError(t, err)
	return cfg
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// daemon is a `kdisc run` process (see kdisctest.Daemon) with the CLI of
// a neighbour in the same pod.
type daemon struct {
	*kdisctest.Daemon
	t *testing.T
}

// newDaemon prepares `kdisc run` with the config text; Start runs it.
func newDaemon(t *testing.T, configYAML string) *daemon {
	return &daemon{kdisctest.NewDaemon(t, writeFile(t, "config.yaml", configYAML), t.TempDir()), t}
}

// nodes runs `kdisc nodes` in another process (with the daemon's
// environment, as a neighbour in the same pod would have) and returns its
// stdout (trimmed) and exit code.
func (d *daemon) nodes(service string) (string, int) {
	d.t.Helper()
	return d.runCLI("nodes", "-config", d.Config, "-shm-dir", d.ShmDir, service)
}

// waitNodes polls `kdisc nodes` until it prints want ("" = not found) and
// returns how long that took.
func (d *daemon) waitNodes(service, want string) time.Duration {
	d.t.Helper()
	return eventually(d.t, 40*time.Second, "kdisc nodes "+service+" = "+want, func() (bool, string) {
		out, code := d.nodes(service)
		if want == "" {
			return code == 1, fmt.Sprintf("exit %d: %s", code, out)
		}
		return code == 0 && out == want, fmt.Sprintf("exit %d: %s", code, out)
	})
}

func (d *daemon) dumpCLI() dump.Dump {
	d.t.Helper()
	out, code := d.runCLI("dump", "-config", d.Config, "-shm-dir", d.ShmDir)
	require.Equal(d.t, 0, code, out)
	var dm dump.Dump
	require.NoError(d.t, json.Unmarshal([]byte(out), &dm))
	return dm
}

// runCLI runs kdisc with the daemon's environment: its stdout trimmed (or
// its stderr if it failed and printed nothing) and exit code.
func (d *daemon) runCLI(args ...string) (string, int) {
	d.t.Helper()
	r := kdisctest.Run(d.t, d.Env, args...)
	s := strings.TrimSpace(r.Stdout)
	if r.Code != 0 && s == "" {
		s = strings.TrimSpace(r.Stderr)
	}
	return s, r.Code
}

// nodesJSON is the contract's one-line nodes array for hosts (each
// "ip:port"), weight w.
func nodesJSON(w int, hostPorts ...string) string {
	parts := make([]string, len(hostPorts))
	for i, hp := range hostPorts {
		host, port, _ := net.SplitHostPort(hp)
		parts[i] = fmt.Sprintf(`{"host":%q,"port":%s,"weight":%d}`, host, port, w)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func ips(prefix string, n int) []string {
	out := make([]string, n)
	for i := range n {
		out[i] = prefix + strconv.Itoa(i+1)
	}
	return out
}
