package kubetest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/goccy/go-yaml"
)

// These tests need no cluster.

func TestPKI(t *testing.T) {
	p, err := newPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(p.certFile, p.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := tlsConfig(p.caFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"127.0.0.1", "localhost", "kubernetes.default.svc"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: cfg.RootCAs, DNSName: name}); err != nil {
			t.Errorf("serving cert for %s: %v", name, err)
		}
	}
	cf, kf, err := p.clientCert("discovery", "g1")
	if err != nil {
		t.Fatal(err)
	}
	cc, err := tls.LoadX509KeyPair(cf, kf)
	if err != nil {
		t.Fatal(err)
	}
	cl, _ := x509.ParseCertificate(cc.Certificate[0])
	if _, err := cl.Verify(x509.VerifyOptions{Roots: cfg.RootCAs, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client cert: %v", err)
	}
	if cl.Subject.CommonName != "discovery" || len(cl.Subject.Organization) != 1 || cl.Subject.Organization[0] != "g1" {
		t.Errorf("client cert subject %v", cl.Subject)
	}
}

func TestRBACManifest(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "testdata", "kube", "rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var paths []string
	var role map[string]any
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(doc)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		_, p, err := ObjectPath(m)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
		if m["kind"] == "ClusterRole" {
			role = m
		}
	}
	want := []string{
		"/api/v1/namespaces/kdisc",
		"/api/v1/namespaces/kdisc/serviceaccounts/kdisc",
		"/apis/rbac.authorization.k8s.io/v1/clusterroles/kdisc-discovery",
		"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/kdisc-discovery",
		"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/kdisc-discovery-user-discovery",
	}
	if len(paths) != len(want) {
		t.Fatalf("paths %q, want %q", paths, want)
	}
	for i := range want {
		if paths[i] != want[i] {
			t.Errorf("doc %d: %s, want %s", i, paths[i], want[i])
		}
	}
	rules, _ := json.Marshal(role["rules"])
	const wantRules = `[{"apiGroups":[""],"resources":["endpoints"],"verbs":["get","list","watch"]},{"apiGroups":["discovery.k8s.io"],"resources":["endpointslices"],"verbs":["get","list","watch"]}]`
	if string(rules) != wantRules {
		t.Errorf("rules %s\nwant  %s", rules, wantRules)
	}
}

func TestObjectPath(t *testing.T) {
	for _, tc := range []struct {
		obj  string
		want string
	}{
		{`{"apiVersion":"v1","kind":"Endpoints","metadata":{"name":"a","namespace":"n"}}`, "/api/v1/namespaces/n/endpoints/a"},
		{`{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"a","namespace":"n"}}`, "/apis/discovery.k8s.io/v1/namespaces/n/endpointslices/a"},
		{`{"apiVersion":"v1","kind":"Service","metadata":{"name":"a"}}`, "/api/v1/namespaces/default/services/a"},
		{`{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"a"}}`, "/apis/example.com/v1/widgets/a"},
	} {
		var m map[string]any
		if err := json.Unmarshal([]byte(tc.obj), &m); err != nil {
			t.Fatal(err)
		}
		_, got, err := ObjectPath(m)
		if err != nil || got != tc.want {
			t.Errorf("%s: %q %v, want %q", tc.obj, got, err, tc.want)
		}
	}
}
