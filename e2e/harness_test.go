package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc/config"
	"github.com/kdisc/kdisc/dump"
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

var build struct {
	once sync.Once
	path string
	err  error
}

// raceEnv: the binary is built with -race; a data race ends it with exit
// code 66, and it does not sleep a second at exit (the race runtime's
// default), which would slow every `kdisc nodes`.
const raceEnv = "GORACE=atexit_sleep_ms=0 exitcode=66"

// kdiscBinary builds cmd/kdisc once per test run, with the race detector.
func kdiscBinary(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		root, err := kubetest.RepoRoot()
		if err != nil {
			build.err = err
			return
		}
		dir, err := os.MkdirTemp("", "kdisc-e2e-bin-")
		if err != nil {
			build.err = err
			return
		}
		build.path = filepath.Join(dir, "kdisc")
		cmd := exec.Command("go", "build", "-race", "-o", build.path, "./cmd/kdisc")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build ./cmd/kdisc: %v\n%s", err, out)
		}
	})
	require.NoError(t, build.err)
	return build.path
}

// clusterConfig is one cluster's YAML (single mode: a map's body; multi
// mode: a list item's body) for the discovery identity of a.
func clusterConfig(a *kubetest.APIServer, extra string) string {
	return fmt.Sprintf(`service:
  schema: https
  host: %s
  port: %d
  ca_file: %s
client:
  token_file: %s
%s`, a.Host, a.Port, a.CAFile, a.DiscoveryTokenFile, extra)
}

// singleConfig is a whole config.yaml in single mode.
func singleConfig(body string) string {
	return "apisix:\n  node_listen: 9080\ndiscovery:\n  kubernetes:\n" + indent(body, "    ")
}

// multiConfig is a whole config.yaml in multi mode; items are id -> body.
func multiConfig(items ...[2]string) string {
	var b strings.Builder
	b.WriteString("discovery:\n  kubernetes:\n")
	for _, it := range items {
		b.WriteString("    - id: " + it[0] + "\n")
		b.WriteString(indent(it[1], "      "))
	}
	return b.String()
}

func indent(s, prefix string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString(prefix + line + "\n")
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

// daemon is a `kdisc run` process.
type daemon struct {
	t       *testing.T
	bin     string
	config  string
	shmDir  string
	control string
	env     []string
	wrap    []string // command prefix, e.g. a mount-namespace wrapper

	cmd  *exec.Cmd
	logs *syncBuffer
	done chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// newDaemon prepares `kdisc run` with the config text; start runs it.
func newDaemon(t *testing.T, configYAML string) *daemon {
	return &daemon{
		t:      t,
		bin:    kdiscBinary(t),
		config: writeFile(t, "config.yaml", configYAML),
		shmDir: t.TempDir(),
	}
}

// start runs the daemon and stops it (SIGTERM) when the test ends.
func (d *daemon) start() *daemon {
	d.t.Helper()
	d.control = freeAddr(d.t)
	args := append(append([]string{}, d.wrap...), d.bin, "run", "-config", d.config, "-control", d.control, "-shm-dir", d.shmDir)
	d.cmd = exec.Command(args[0], args[1:]...)
	d.cmd.Env = append(append(os.Environ(), raceEnv), d.env...)
	d.logs = &syncBuffer{}
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(d.t, d.cmd.Start())
	cmd, done := d.cmd, make(chan error, 1)
	d.done = done
	go func() { done <- cmd.Wait() }()
	d.t.Cleanup(func() {
		d.stop()
		if strings.Contains(d.logs.String(), "DATA RACE") {
			d.t.Errorf("kdisc run reported a data race")
		}
		if d.t.Failed() || os.Getenv("KDISC_E2E_LOGS") == "1" {
			d.t.Logf("kdisc run log:\n%s", d.logs)
		}
	})
	eventually(d.t, 20*time.Second, "kdisc run to serve /healthz", func() (bool, string) {
		code, body := d.get("/healthz")
		return code == http.StatusOK, body
	})
	return d
}

// stop sends SIGTERM and waits for a clean exit (SIGKILL after 10 s).
func (d *daemon) stop() error {
	if d.cmd == nil {
		return nil
	}
	cmd := d.cmd
	d.cmd = nil
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		return err
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-d.done
		return fmt.Errorf("kdisc run did not stop within 10 s of SIGTERM")
	}
}

func (d *daemon) get(path string) (int, string) {
	resp, err := http.Get("http://" + d.control + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (d *daemon) waitReady(timeout time.Duration) {
	d.t.Helper()
	eventually(d.t, timeout, "/readyz 200", func() (bool, string) {
		code, body := d.get("/readyz")
		return code == http.StatusOK, fmt.Sprintf("%d %s", code, body)
	})
}

// nodes runs `kdisc nodes` in another process (with the daemon's
// environment, as a neighbour in the same pod would have) and returns its
// stdout (trimmed) and exit code.
func (d *daemon) nodes(service string) (string, int) {
	d.t.Helper()
	return runCLI(d.t, d.env, d.bin, "nodes", "-config", d.config, "-shm-dir", d.shmDir, service)
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
	out, code := runCLI(d.t, d.env, d.bin, "dump", "-config", d.config, "-shm-dir", d.shmDir)
	require.Equal(d.t, 0, code, out)
	var dm dump.Dump
	require.NoError(d.t, json.Unmarshal([]byte(out), &dm))
	return dm
}

func runCLI(t *testing.T, env []string, bin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(append(os.Environ(), raceEnv), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	s := strings.TrimSpace(out.String())
	if code != 0 && s == "" {
		s = strings.TrimSpace(errb.String())
	}
	return s, code
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
