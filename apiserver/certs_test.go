package apiserver_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc/apiserver"
)

// testCA is a certificate authority generated for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

var serial atomic.Int64

func newSerial() *big.Int { return big.NewInt(serial.Add(1)) }

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue signs a leaf certificate: a server certificate for 127.0.0.1 and
// ::1 when server is true, else a client certificate named cn.
func (ca *testCA) issue(t *testing.T, cn string, server bool) (tls.Certificate, []byte, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
	return pair, certPEM, keyPEM
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// writeFile writes data to name in dir and returns the path.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, data, 0o600))
	return p
}

// The CA file is re-read when it changes (cert-manager and projected
// volumes rotate it): a client built while the file held another CA
// verifies the server once the file holds the right one, and a file that
// is half-written or gone meanwhile keeps the last good CA.
func TestCAFileRotation(t *testing.T) {
	ca, other := newCA(t, "cluster CA"), newCA(t, "old cluster CA")
	serverCert, _, _ := ca.issue(t, "apiserver", true)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "{}")
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	srv.StartTLS()
	t.Cleanup(srv.Close)
	host, port := hostPort(t, srv.Listener.Addr().String())

	dir := t.TempDir()
	caFile := writeFile(t, dir, "ca.crt", other.pem)
	c := newClient(t, apiserver.Options{Schema: "https", Host: host, Port: port, CAFile: caFile})
	_, err := get(c, endpointsPath)
	var ua x509.UnknownAuthorityError
	require.True(t, errors.As(err, &ua), "the old CA does not verify the server: %v", err)

	// Rotated: a bundle of both, with a new mtime even on coarse clocks.
	writeFile(t, dir, "ca.crt", append(append([]byte{}, other.pem...), ca.pem...))
	future := time.Now().Add(time.Minute)
	require.NoError(t, os.Chtimes(caFile, future, future))
	_, err = get(c, endpointsPath)
	require.NoError(t, err, "the rotated CA file is read at the next handshake")

	// Mid-rotation (empty, then gone): the last good CA stays.
	writeFile(t, dir, "ca.crt", nil)
	c.CloseIdleConnections()
	_, err = get(c, endpointsPath)
	require.NoError(t, err, "an empty CA file keeps the last good CA")
	require.NoError(t, os.Remove(caFile))
	c.CloseIdleConnections()
	_, err = get(c, endpointsPath)
	require.NoError(t, err, "a missing CA file keeps the last good CA")

	// Hostname is still verified: a name the certificate does not carry is refused.
	c2 := newClient(t, apiserver.Options{Schema: "https", Host: "localhost", Port: port, CAFile: writeFile(t, dir, "ca2.crt", ca.pem)})
	_, err = get(c2, endpointsPath)
	var hn x509.HostnameError
	require.True(t, errors.As(err, &hn), "want a hostname error, got %v", err)
}
