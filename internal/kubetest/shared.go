package kubetest

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Enabled reports whether end-to-end tests should run (KDISC_E2E=1).
func Enabled() bool { return os.Getenv(EnvE2E) == "1" }

var shared struct {
	mu      sync.Mutex
	inMain  bool
	opts    Options
	cluster *Cluster
	err     error
	started bool
}

// Main runs a package's tests with one shared cluster, started lazily by the
// first Shared call and stopped after all tests (also on SIGINT/SIGTERM).
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(kubetest.Main(m, kubetest.Options{})) }
func Main(m *testing.M, opts Options) int {
	shared.mu.Lock()
	shared.inMain = true
	shared.opts = opts
	shared.mu.Unlock()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sig:
			fmt.Fprintf(os.Stderr, "kubetest: %v: stopping the shared cluster\n", s)
			// While Start is still running (holding the lock) there is no
			// cluster to stop yet; the children die with us (Pdeathsig).
			if shared.mu.TryLock() {
				c := shared.cluster
				shared.mu.Unlock()
				if c != nil {
					c.Stop()
				}
			}
			os.Exit(2)
		case <-done:
		}
	}()
	code := m.Run()
	close(done)
	signal.Stop(sig)
	stopShared()
	return code
}

func stopShared() {
	shared.mu.Lock()
	c := shared.cluster
	shared.mu.Unlock()
	if c != nil {
		c.Stop()
	}
}

// Shared returns the package's shared cluster, starting it on first use.
// Without KDISC_E2E=1 it skips the test (saying why); with it, a cluster
// that cannot start fails the test. The package's TestMain must call Main.
// Tests sharing the cluster should use their own namespaces.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	if !Enabled() {
		t.Skipf("end-to-end test: set %s=1 to run it against a real kube-apiserver (first run builds it, ~12 min)", EnvE2E)
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.inMain {
		t.Fatal("kubetest.Shared: the package's TestMain must call kubetest.Main")
	}
	if !shared.started {
		shared.started = true
		opts := shared.opts
		if opts.Logf == nil {
			opts.Logf = func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		shared.cluster, shared.err = Start(ctx, opts)
		cancel()
	}
	if shared.err != nil {
		t.Fatalf("kubetest: cannot start the cluster: %v", shared.err)
	}
	return shared.cluster
}
