package apiserver_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc/apiserver"
)

// A server URL with a path (Rancher, a gateway in front of several
// clusters) prefixes every request.
func TestPathPrefix(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.RequestURI())
		mu.Unlock()
		_, _ = io.WriteString(w, "{}")
	}))
	t.Cleanup(srv.Close)
	host, port := hostPort(t, srv.Listener.Addr().String())
	for _, prefix := range []string{"/k8s/clusters/c-1", "/k8s/clusters/c-1/"} {
		c := newClient(t, apiserver.Options{Schema: "http", Host: host, Port: port, PathPrefix: prefix})
		assert.Equal(t, "http://"+srv.Listener.Addr().String()+"/k8s/clusters/c-1/api/v1/endpoints?watch=1", c.URL(endpointsPath, map[string][]string{"watch": {"1"}}))
		_, err := get(c, endpointsPath)
		require.NoError(t, err)
	}
	assert.Equal(t, []string{"/k8s/clusters/c-1/api/v1/endpoints", "/k8s/clusters/c-1/api/v1/endpoints"}, paths)

	_, err := apiserver.New(apiserver.Options{Schema: "http", Host: host, Port: port, PathPrefix: "k8s"})
	require.ErrorContains(t, err, `path prefix "k8s": must start with /`)
}

// issueDNS signs a server certificate for DNS names only.
func (ca *testCA) issueDNS(t *testing.T, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(),
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     names,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// tlsServer serves the CN of the client certificate (or "anonymous") and
// records the SNI name it was asked for.
func tlsServer(t *testing.T, cert tls.Certificate, clientCA *testCA) (*httptest.Server, *string) {
	t.Helper()
	var sni string
	var mu sync.Mutex
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		sni = r.TLS.ServerName
		mu.Unlock()
		if len(r.TLS.PeerCertificates) > 0 {
			_, _ = io.WriteString(w, r.TLS.PeerCertificates[0].Subject.CommonName)
			return
		}
		_, _ = io.WriteString(w, "anonymous")
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	if clientCA != nil {
		srv.TLS.ClientAuth = tls.RequireAndVerifyClientCert
		srv.TLS.ClientCAs = clientCA.pool()
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, &sni
}

// tls-server-name: the certificate is verified against that name (and it is
// sent as SNI) instead of the host of the server URL, with the CA from a
// file (re-read) or from memory (certificate-authority-data).
func TestTLSServerName(t *testing.T) {
	ca := newCA(t, "cluster CA")
	srv, sni := tlsServer(t, ca.issueDNS(t, "kubernetes.internal"), nil)
	host, port := hostPort(t, srv.Listener.Addr().String())
	caFile := writeFile(t, t.TempDir(), "ca.crt", ca.pem)
	for name, o := range map[string]apiserver.Options{
		"file": {CAFile: caFile},
		"data": {CAData: ca.pem},
	} {
		t.Run(name, func(t *testing.T) {
			o.Schema, o.Host, o.Port = "https", host, port
			_, err := get(newClient(t, o), endpointsPath)
			var hn x509.HostnameError
			require.True(t, errors.As(err, &hn), "without tls-server-name 127.0.0.1 is verified: %v", err)

			o.TLSServerName = "kubernetes.internal"
			body, err := get(newClient(t, o), endpointsPath)
			require.NoError(t, err)
			assert.Equal(t, "anonymous", body)
			assert.Equal(t, "kubernetes.internal", *sni)
		})
	}
}

func TestCAData(t *testing.T) {
	ca, other := newCA(t, "cluster CA"), newCA(t, "other CA")
	serverCert, _, _ := ca.issue(t, "apiserver", true)
	srv, _ := tlsServer(t, serverCert, nil)
	host, port := hostPort(t, srv.Listener.Addr().String())

	_, err := get(newClient(t, apiserver.Options{Schema: "https", Host: host, Port: port, CAData: other.pem}), endpointsPath)
	var ua x509.UnknownAuthorityError
	require.True(t, errors.As(err, &ua), "another CA's data does not verify the server: %v", err)
	_, err = get(newClient(t, apiserver.Options{Schema: "https", Host: host, Port: port, CAData: ca.pem}), endpointsPath)
	require.NoError(t, err)

	for name, tt := range map[string]struct {
		o    apiserver.Options
		want string
	}{
		"not PEM":       {apiserver.Options{CAData: []byte("nope")}, "CA data holds no PEM certificate"},
		"data and file": {apiserver.Options{CAData: ca.pem, CAFile: "ca.crt"}, "CA data and CA file go not together"},
	} {
		t.Run(name, func(t *testing.T) {
			tt.o.Schema, tt.o.Host, tt.o.Port, tt.o.Logger = "https", host, port, quietLogger()
			_, err := apiserver.New(tt.o)
			require.ErrorContains(t, err, tt.want)
		})
	}
}

func TestClientCertData(t *testing.T) {
	ca := newCA(t, "kdisc test CA")
	serverCert, _, _ := ca.issue(t, "apiserver", true)
	srv, _ := tlsServer(t, serverCert, ca)
	host, port := hostPort(t, srv.Listener.Addr().String())
	_, certPEM, keyPEM := ca.issue(t, "system:kdisc-data", false)

	c := newClient(t, apiserver.Options{Schema: "https", Host: host, Port: port, CAData: ca.pem, CertData: certPEM, KeyData: keyPEM})
	body, err := get(c, endpointsPath)
	require.NoError(t, err)
	assert.Equal(t, "system:kdisc-data", body)

	for name, o := range map[string]apiserver.Options{
		"cert without key": {CertData: certPEM},
		"not a pair":       {CertData: certPEM, KeyData: []byte("junk")},
		"data and file":    {CertData: certPEM, KeyData: keyPEM, CertFile: "c.crt", KeyFile: "c.key"},
	} {
		t.Run(name, func(t *testing.T) {
			o.Schema, o.Host, o.Port, o.Logger = "https", host, port, quietLogger()
			_, err := apiserver.New(o)
			require.ErrorContains(t, err, "client certificate")
			assert.NotContains(t, err.Error(), "PRIVATE KEY")
		})
	}
}

// execPlugin returns an ExecConfig that runs testdata/exec-credential.sh
// with env, and the file in which it counts its runs.
func execPlugin(t *testing.T, apiVersion string, env ...apiserver.ExecEnv) (*apiserver.ExecConfig, func() int) {
	t.Helper()
	script, err := filepath.Abs("testdata/exec-credential.sh")
	require.NoError(t, err)
	count := filepath.Join(t.TempDir(), "count")
	e := &apiserver.ExecConfig{
		APIVersion:      apiVersion,
		Command:         script,
		Env:             append([]apiserver.ExecEnv{{Name: "KDISC_EXEC_COUNT", Value: count}, {Name: "KDISC_EXEC_API", Value: apiVersion}}, env...),
		InteractiveMode: "Never",
	}
	return e, func() int {
		b, err := os.ReadFile(count)
		if err != nil {
			return 0
		}
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return n
	}
}

func TestExecToken(t *testing.T) {
	for _, v := range []string{"client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"} {
		t.Run(v, func(t *testing.T) {
			info := filepath.Join(t.TempDir(), "info")
			e, runs := execPlugin(t, v, apiserver.ExecEnv{Name: "KDISC_EXEC_INFO_OUT", Value: info})
			r := newRecorder(t)
			c := r.client(t, apiserver.Options{Exec: e})
			assert.Zero(t, runs(), "the plugin runs at the first request, not before")
			for range 3 {
				_, err := get(c, endpointsPath)
				require.NoError(t, err)
				assert.Equal(t, "Bearer exec-token-1", r.lastAuth())
			}
			assert.Equal(t, 1, runs(), "a credential without expirationTimestamp is cached")
			b, err := os.ReadFile(info)
			require.NoError(t, err)
			assert.JSONEq(t, `{"apiVersion":"`+v+`","kind":"ExecCredential","spec":{"interactive":false}}`, string(b),
				"KUBERNETES_EXEC_INFO says non-interactive, and stdin is not a terminal")
		})
	}
}

// authServer answers 200 to the tokens in ok and 401 to anything else.
func authServer(t *testing.T, ok ...string) (*recorder, *apiserver.Options) {
	r := &recorder{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.auth = append(r.auth, req.Header.Get("Authorization"))
		r.mu.Unlock()
		for _, tok := range ok {
			if req.Header.Get("Authorization") == "Bearer "+tok {
				_, _ = io.WriteString(w, "{}")
				return
			}
		}
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}`)
	}))
	t.Cleanup(r.Close)
	host, port := hostPort(t, r.Listener.Addr().String())
	return r, &apiserver.Options{Schema: "http", Host: host, Port: port, Logger: quietLogger()}
}

// A 401 drops the cached credential and runs the plugin again, and the
// request is retried once with the new credential.
func TestExecRerunOn401(t *testing.T) {
	r, o := authServer(t, "good-1", "good-2")
	e, runs := execPlugin(t, "client.authentication.k8s.io/v1", apiserver.ExecEnv{Name: "KDISC_EXEC_TOKENS", Value: "stale good-1 bad good-2"})
	o.Exec = e
	c := newClient(t, *o)

	_, err := get(c, endpointsPath)
	require.NoError(t, err, "the 401 for the stale token is retried with a fresh one")
	assert.Equal(t, 2, runs())
	assert.Equal(t, []string{"Bearer stale", "Bearer good-1"}, r.auth)

	_, err = get(c, endpointsPath)
	require.NoError(t, err)
	assert.Equal(t, 2, runs(), "cached")

	// Another server accepts only good-2: the plugin's next answer (bad)
	// is refused, the plugin runs again and the request is retried.
	r2, o2 := authServer(t, "good-2")
	o2.Exec = e
	_, err = get(newClient(t, *o2), endpointsPath)
	require.NoError(t, err)
	assert.Equal(t, 4, runs())
	assert.Equal(t, []string{"Bearer bad", "Bearer good-2"}, r2.auth)
}

func TestExecPersistent401(t *testing.T) {
	r, o := authServer(t)
	e, runs := execPlugin(t, "client.authentication.k8s.io/v1")
	o.Exec = e
	c := newClient(t, *o)
	_, err := get(c, endpointsPath)
	var se *apiserver.StatusError
	require.True(t, errors.As(err, &se), "%v", err)
	assert.Equal(t, 401, se.Code)
	assert.Equal(t, 2, runs(), "one re-run per request, not a loop")
	assert.Equal(t, 2, r.count())
	_, err = get(c, endpointsPath)
	require.Error(t, err)
	assert.Equal(t, 4, runs())
	assert.NotContains(t, err.Error(), "exec-token")
}

func TestExecClientCertificate(t *testing.T) {
	ca := newCA(t, "kdisc test CA")
	serverCert, _, _ := ca.issue(t, "apiserver", true)
	srv, _ := tlsServer(t, serverCert, ca)
	host, port := hostPort(t, srv.Listener.Addr().String())
	_, certPEM, keyPEM := ca.issue(t, "system:kdisc-exec", false)
	certJSON, _ := json.Marshal(string(certPEM))
	keyJSON, _ := json.Marshal(string(keyPEM))
	e, runs := execPlugin(t, "client.authentication.k8s.io/v1beta1",
		apiserver.ExecEnv{Name: "KDISC_EXEC_CERT_JSON", Value: string(certJSON)},
		apiserver.ExecEnv{Name: "KDISC_EXEC_KEY_JSON", Value: string(keyJSON)})
	e.InteractiveMode = "" // v1beta1: defaults to IfAvailable, never interactive here
	c := newClient(t, apiserver.Options{Schema: "https", Host: host, Port: port, CAData: ca.pem, Exec: e})
	body, err := get(c, endpointsPath)
	require.NoError(t, err)
	assert.Equal(t, "system:kdisc-exec", body)
	assert.Equal(t, 1, runs())
}

func TestExecConfigValidate(t *testing.T) {
	const v1, v1beta1 = "client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"
	tests := []struct {
		e    apiserver.ExecConfig
		want string
	}{
		{apiserver.ExecConfig{APIVersion: v1, InteractiveMode: "Never"}, "exec: command is required"},
		{apiserver.ExecConfig{APIVersion: "client.authentication.k8s.io/v1alpha1", Command: "x", InteractiveMode: "Never"}, `apiVersion "client.authentication.k8s.io/v1alpha1": must be client.authentication.k8s.io/v1 or client.authentication.k8s.io/v1beta1`},
		{apiserver.ExecConfig{Command: "x"}, "apiVersion: must be"},
		{apiserver.ExecConfig{APIVersion: v1, Command: "x"}, "interactiveMode is required for client.authentication.k8s.io/v1"},
		{apiserver.ExecConfig{APIVersion: v1, Command: "x", InteractiveMode: "Always"}, "interactiveMode Always: kdisc never runs a plugin interactively"},
		{apiserver.ExecConfig{APIVersion: v1beta1, Command: "x", InteractiveMode: "Sometimes"}, `interactiveMode "Sometimes": must be Never, IfAvailable or Always`},
		{apiserver.ExecConfig{APIVersion: v1, Command: "x", InteractiveMode: "Never", Env: []apiserver.ExecEnv{{Value: "v"}}}, "exec: env[0]: name is required"},
	}
	for _, tt := range tests {
		require.ErrorContains(t, tt.e.Validate(), tt.want)
	}
	require.NoError(t, (&apiserver.ExecConfig{APIVersion: v1beta1, Command: "x"}).Validate())
	require.NoError(t, (&apiserver.ExecConfig{APIVersion: v1, Command: "x", InteractiveMode: "IfAvailable"}).Validate())

	_, err := apiserver.New(apiserver.Options{Schema: "http", Host: "h", Port: 1, Exec: &apiserver.ExecConfig{APIVersion: v1, Command: "x"}})
	require.ErrorContains(t, err, "interactiveMode is required")
	_, err = apiserver.New(apiserver.Options{Schema: "http", Host: "h", Port: 1, Token: "t", Exec: &apiserver.ExecConfig{APIVersion: v1, Command: "x", InteractiveMode: "Never"}})
	require.ErrorContains(t, err, "exec plugin: not together with a token")
}

func TestExecFailures(t *testing.T) {
	_, o := authServer(t, "exec-token-1")
	tests := []struct {
		name string
		env  []apiserver.ExecEnv
		edit func(*apiserver.ExecConfig)
		want []string
	}{
		{"exit status", []apiserver.ExecEnv{{Name: "KDISC_EXEC_FAIL", Value: "no credentials for you"}}, nil,
			[]string{"exec plugin", "exit status 1", "no credentials for you"}},
		{"wrong apiVersion", []apiserver.ExecEnv{{Name: "KDISC_EXEC_API", Value: "client.authentication.k8s.io/v1beta1"}}, nil,
			[]string{`apiVersion "client.authentication.k8s.io/v1beta1", want "client.authentication.k8s.io/v1"`}},
		{"bad expiry", []apiserver.ExecEnv{{Name: "KDISC_EXEC_EXPIRY", Value: "tomorrow"}}, nil,
			[]string{"expirationTimestamp"}},
		{"no token", []apiserver.ExecEnv{{Name: "KDISC_EXEC_CERT_JSON", Value: `""`}, {Name: "KDISC_EXEC_KEY_JSON", Value: `""`}}, nil,
			[]string{"status has neither a token nor clientCertificateData and clientKeyData"}},
		{"not found", nil, func(e *apiserver.ExecConfig) {
			e.Command = "kdisc-no-such-plugin"
			e.InstallHint = "install it with brew"
		},
			[]string{"kdisc-no-such-plugin", "install it with brew"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := execPlugin(t, "client.authentication.k8s.io/v1", tt.env...)
			if tt.edit != nil {
				tt.edit(e)
			}
			o := *o
			o.Exec = e
			_, err := get(newClient(t, o), endpointsPath)
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}
