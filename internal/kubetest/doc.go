// Package kubetest runs a real kube-apiserver (v1.37.2) and etcd (v3.6.16)
// on 127.0.0.1 for kdisc's end-to-end tests and quick start. It uses only
// the standard library and goccy/go-yaml: no k8s.io module.
//
// The binaries come from testdata/kube/build.sh (built once into
// ~/.cache/kdisc, ~15 min cold on 2 cores); see testdata/kube/README.md for
// flags, timings and what makes a watch get 410 Gone.
//
// One cluster per test package:
//
//	func TestMain(m *testing.M) { os.Exit(kubetest.Main(m, kubetest.Options{})) }
//
//	func TestSomething(t *testing.T) {
//		c := kubetest.Shared(t) // skips without KDISC_E2E=1, fails if the cluster cannot start
//		c.CreateNamespace(ctx, "t-something")
//		c.ApplyEndpoints(ctx, "t-something", "web",
//			kubetest.Subset([]string{"10.0.0.1"}, kubetest.EndpointPort{Name: "http", Port: 80}))
//		// point kdisc at c.Host, c.Port, c.CAFile, c.DiscoveryTokenFile
//	}
//
// Use fresh namespaces per test (a bare apiserver never finishes deleting
// one) and non-loopback addresses (10.x, 192.168.x: they are only data).
package kubetest
