// Package e2e proves kdisc against a real kube-apiserver and etcd, built
// from the Go module proxy and started on loopback by internal/kubetest.
// It drives kdisc through its three faces: the Go API (kdisc.Start), the
// CLI (`kdisc run` plus `kdisc nodes`/`kdisc dump` from other processes)
// and the control API. Run with KDISC_E2E=1 (see README.md); without it
// every test here says it was skipped and why.
package e2e

import (
	"os"
	"testing"

	"github.com/kdisc/kdisc/internal/kdisctest"
	"github.com/kdisc/kdisc/internal/kubetest"
)

func TestMain(m *testing.M) {
	code := kubetest.Main(m, kubetest.Options{})
	kdisctest.RemoveBinary()
	os.Exit(code)
}
