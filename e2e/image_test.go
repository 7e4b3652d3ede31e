package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc/internal/kdisctest"
	"github.com/kdisc/kdisc/internal/kubetest"
)

// podmanLimits are the resource limits the image runs with here. podman
// asks the runtime for its defaults (open files 1048576, processes raised
// too), which this machine's kernel refuses inside a container ("runc
// create failed: ... error setting rlimit type 7: operation not
// permitted"), whatever the host's limits; explicit limits within them
// work. kdisc needs few of either.
var podmanLimits = []string{"--ulimit", "nofile=16384:16384", "--ulimit", "nproc=4096:4096"}

// TestImageRunsAgainstTheRealAPIServer builds the image with
// deploy/image.sh twice (the same digest: reproducible), runs it with
// podman on the host network against the real kube-apiserver, the tables
// on a host folder, and reads them from outside with `kdisc nodes` while
// kdisc runs inside: a change in the cluster shows there. It also proves
// the config buildah run would not: kdisc runs as uid 65532 (it owns the
// tables it makes) through the entrypoint (only kdisc's arguments given).
func TestImageRunsAgainstTheRealAPIServer(t *testing.T) {
	c := cluster(t)
	if os.Geteuid() != 0 {
		t.Skip("deploy/image.sh needs root: buildah keeps images in /var/lib/containers, and podman runs them rootful here")
	}
	root, err := kubetest.RepoRoot()
	require.NoError(t, err)
	suffix := strconv.Itoa(os.Getpid())

	build := func(image string) (digest, version string) {
		t.Helper()
		cmd := exec.Command(filepath.Join(root, "deploy", "image.sh"))
		cmd.Env = append(os.Environ(), "IMAGE="+image)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "deploy/image.sh:\n%s", out)
		t.Cleanup(func() { _ = exec.Command("buildah", "rmi", "-f", image).Run() })
		m := regexp.MustCompile(`(?m)^digest: +(sha256:[0-9a-f]{64})$`).FindStringSubmatch(string(out))
		require.NotNil(t, m, "a digest in:\n%s", out)
		v := regexp.MustCompile(`(?m)^kdisc: +(v\S+ go\S+ \S+)$`).FindStringSubmatch(string(out))
		require.NotNil(t, v, "kdisc's version in:\n%s", out)
		return m[1], v[1]
	}
	image := "localhost/kdisc-e2e-a" + suffix + ":test"
	digest, version := build(image)
	again, _ := build("localhost/kdisc-e2e-b" + suffix + ":test")
	assert.Equal(t, digest, again, "the same commit, toolchain and CA bundle give the same image")
	head, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	require.NoError(t, err)
	assert.Regexp(t, `^v[0-9]+\.[0-9]+\.[0-9]+ go\S+ `+strings.TrimSpace(string(head))+`(-dirty)?$`, version,
		"the image's kdisc names its version and commit")

	// The image's own binary says the same, run through the entrypoint.
	out, err := exec.Command("podman", append(append([]string{"run", "--rm"}, podmanLimits...), image, "version")...).CombinedOutput()
	require.NoError(t, err, "podman run %s version: %s", image, out)
	assert.Equal(t, "kdisc "+version, strings.TrimSpace(string(out)))

	// The service, before kdisc starts.
	ns := namespace(t, c.APIServer, "image")
	http80 := kubetest.EndpointPort{Name: "http", Port: 80}
	_, err = c.ApplyEndpoints(ctx(t), ns, "web", kubetest.Subset([]string{"10.30.0.1", "10.30.0.2"}, http80))
	require.NoError(t, err)

	// /etc/kdisc (read-only) holds the config, the CA and the token, readable
	// by uid 65532; the tables go to a host folder kdisc's user owns, as the
	// DaemonSet's prepare-tables makes it.
	dir := t.TempDir()
	conf, tables := filepath.Join(dir, "conf"), filepath.Join(dir, "tables")
	require.NoError(t, os.Mkdir(conf, 0o755))
	require.NoError(t, os.Mkdir(tables, 0o755))
	require.NoError(t, os.Chown(tables, 65532, 65532))
	for name, from := range map[string]string{"ca.crt": c.CAFile, "token": c.DiscoveryTokenFile} {
		b, err := os.ReadFile(from)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(conf, name), b, 0o444))
	}
	configYAML := fmt.Sprintf(`discovery:
  kubernetes:
    service: {schema: https, host: %s, port: %d, ca_file: /etc/kdisc/ca.crt}
    client: {token_file: /etc/kdisc/token}
    namespace_selector: {equal: %s}
`, c.Host, c.Port, ns)
	require.NoError(t, os.WriteFile(filepath.Join(conf, "config.yaml"), []byte(configYAML), 0o444))

	control := freeLoopbackAddr(t)
	name := "kdisc-e2e-" + suffix
	args := append([]string{"run", "-d", "--name", name, "--network", "host",
		"--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"}, podmanLimits...)
	args = append(args, "-v", conf+":/etc/kdisc:ro", "-v", tables+":/tables",
		image, "run", "-config", "/etc/kdisc/config.yaml", "-shm-dir", "/tables", "-control", control)
	out, err = exec.Command("podman", args...).CombinedOutput()
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := exec.Command("podman", "logs", name).CombinedOutput()
			t.Logf("kdisc in the container:\n%s", logs)
		}
		_ = exec.Command("podman", "rm", "-f", "-t", "5", name).Run()
	})
	require.NoError(t, err, "podman %s: %s", strings.Join(args, " "), out)

	// Outside the container: the control API on the host network, and the
	// tables through `kdisc nodes`, trusting the container's user.
	eventually(t, 60*time.Second, "/readyz 200 from the container's kdisc", func() (bool, string) {
		resp, err := http.Get("http://" + control + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	outside := &daemon{kdisctest.NewDaemon(t, filepath.Join(conf, "config.yaml"), tables), t}
	outside.Env = []string{"KDISC_TRUSTED_UIDS=65532"}
	outside.waitNodes(ns+"/web:http", nodesJSON(50, "10.30.0.1:80", "10.30.0.2:80"))

	_, err = c.ApplyEndpoints(ctx(t), ns, "web", kubetest.Subset([]string{"10.30.0.1", "10.30.0.2", "10.30.0.3"}, http80))
	require.NoError(t, err)
	outside.waitNodes(ns+"/web:http", nodesJSON(50, "10.30.0.1:80", "10.30.0.2:80", "10.30.0.3:80"))

	// USER 65532: the table kdisc made belongs to it.
	fi, err := os.Stat(filepath.Join(tables, "kubernetes"))
	require.NoError(t, err)
	assert.Equal(t, uint32(65532), fi.Sys().(*syscall.Stat_t).Uid, "kdisc runs as uid 65532")
}

// freeLoopbackAddr returns 127.0.0.1:PORT with a port free right now.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}
