package kubetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Environment variables understood by this package.
const (
	// EnvE2E enables the end-to-end tests ("1"). When set, a cluster that
	// cannot start fails the test instead of skipping it.
	EnvE2E = "KDISC_E2E"
	// EnvBinDir names a folder holding prebuilt kube-apiserver and etcd
	// binaries; when set, Binaries does not run build.sh.
	EnvBinDir = "KDISC_KUBE_BINDIR"
	// EnvCache is the cache root used by build.sh (default ~/.cache/kdisc).
	EnvCache = "KDISC_CACHE"
)

// RepoRoot returns the root of the kdisc repository (the folder holding the
// main module's go.mod). It is found from this source file's path and, when
// that is not usable (-trimpath), from `go env GOMOD` in the working folder.
func RepoRoot() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		root := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
		if isRepoRoot(root) {
			return root, nil
		}
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("kubetest: cannot locate the repository: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("kubetest: cannot locate the repository: not inside a Go module")
	}
	root := filepath.Dir(gomod)
	if !isRepoRoot(root) {
		return "", fmt.Errorf("kubetest: %s is not the kdisc repository (no testdata/kube/build.sh)", root)
	}
	return root, nil
}

func isRepoRoot(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "testdata", "kube", "build.sh"))
	return err == nil
}

// Binaries returns the paths of a kube-apiserver and an etcd binary. With
// KDISC_KUBE_BINDIR set it uses the binaries there; otherwise it runs
// testdata/kube/build.sh, which builds them once into a versioned cache
// folder outside the repository (about 12 minutes cold on 2 cores, instant
// afterwards). Build progress goes to os.Stderr.
func Binaries(ctx context.Context) (apiserver, etcd string, err error) {
	dir := os.Getenv(EnvBinDir)
	if dir == "" {
		root, err := RepoRoot()
		if err != nil {
			return "", "", err
		}
		cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "testdata", "kube", "build.sh"))
		var stdout bytes.Buffer
		cmd.Stdout = &stdout
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return "", "", fmt.Errorf("kubetest: testdata/kube/build.sh: %w", err)
		}
		lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
		dir = strings.TrimSpace(lines[len(lines)-1])
	}
	apiserver = filepath.Join(dir, "kube-apiserver")
	etcd = filepath.Join(dir, "etcd")
	for _, p := range []string{apiserver, etcd} {
		if fi, err := os.Stat(p); err != nil || fi.Mode()&0o111 == 0 {
			return "", "", fmt.Errorf("kubetest: %s is missing or not executable", p)
		}
	}
	return apiserver, etcd, nil
}
