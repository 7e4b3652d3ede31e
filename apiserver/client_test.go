package apiserver_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc/apiserver"
	"github.com/kdisc/kdisc/internal/fakeapi"
)

const endpointsPath = "/api/v1/endpoints"

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// hostPort splits an httptest server's address.
func hostPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	port, err := strconv.Atoi(p)
	require.NoError(t, err)
	return h, port
}

func newClient(t *testing.T, o apiserver.Options) *apiserver.Client {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quietLogger()
	}
	c, err := apiserver.New(o)
	require.NoError(t, err)
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// get sends GET path and returns the body, or the error.
func get(c *apiserver.Client, path string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, path, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// recorder is an http server that answers 200 {} and records the
// Authorization header of each request.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	auth []string
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.auth = append(r.auth, req.Header.Get("Authorization"))
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, "{}")
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) client(t *testing.T, o apiserver.Options) *apiserver.Client {
	o.Schema = "http"
	o.Host, o.Port = hostPort(t, r.Listener.Addr().String())
	return newClient(t, o)
}

func (r *recorder) lastAuth() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.auth) == 0 {
		return ""
	}
	return r.auth[len(r.auth)-1]
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.auth)
}

func TestNewValidates(t *testing.T) {
	dir := t.TempDir()
	notPEM := writeFile(t, dir, "ca.txt", []byte("not a certificate\n"))
	tests := []struct {
		name string
		o    apiserver.Options
		want string
	}{
		{"schema", apiserver.Options{Schema: "ftp", Host: "h", Port: 1}, `schema "ftp": must be http or https`},
		{"no host", apiserver.Options{Schema: "http", Port: 1}, "bad address"},
		{"port 0", apiserver.Options{Schema: "http", Host: "h"}, "bad address"},
		{"port too big", apiserver.Options{Schema: "http", Host: "h", Port: 65536}, "bad address"},
		{"ipv6 zone", apiserver.Options{Schema: "https", Host: "fe80::1%eth0", Port: 1}, `host "fe80::1%eth0": an IPv6 address with a zone is not supported`},
		{"missing CA", apiserver.Options{Schema: "https", Host: "h", Port: 1, CAFile: dir + "/nope.crt"}, "reading CA file"},
		{"CA not PEM", apiserver.Options{Schema: "https", Host: "h", Port: 1, CAFile: notPEM}, "holds no PEM certificate"},
		{"cert without key", apiserver.Options{Schema: "https", Host: "h", Port: 1, CertFile: "c.crt"}, "cert_file and key_file go together"},
		{"key without cert", apiserver.Options{Schema: "https", Host: "h", Port: 1, KeyFile: "c.key"}, "cert_file and key_file go together"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.Logger = quietLogger()
			c, err := apiserver.New(tt.o)
			require.Error(t, err)
			assert.Nil(t, c)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestURL(t *testing.T) {
	tests := []struct {
		host string
		want string
	}{
		{"10.96.0.1", "https://10.96.0.1:6443/api/v1/endpoints"},
		{"::1", "https://[::1]:6443/api/v1/endpoints"},
		{"fd00::10", "https://[fd00::10]:6443/api/v1/endpoints"},
		{"kubernetes.default.svc", "https://kubernetes.default.svc:6443/api/v1/endpoints"},
	}
	for _, tt := range tests {
		c := newClient(t, apiserver.Options{Schema: "https", Host: tt.host, Port: 6443, InsecureSkipVerify: true})
		assert.Equal(t, tt.want, c.URL(endpointsPath, nil))
	}
	c := newClient(t, apiserver.Options{Schema: "http", Host: "::1", Port: 80})
	q := url.Values{"watch": {"1"}, "labelSelector": {"app=web,tier!=cache"}}
	assert.Equal(t, "http://[::1]:80/api/v1/endpoints?labelSelector=app%3Dweb%2Ctier%21%3Dcache&watch=1", c.URL(endpointsPath, q))
}

func TestIPv6Loopback(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	require.NoError(t, err, "this machine has ::1 (the kind-of-host kdisc supports)")
	var gotHost string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHost = r.Host
		_, _ = io.WriteString(w, "v6")
	}))
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)

	host, port := hostPort(t, ln.Addr().String())
	require.Equal(t, "::1", host)
	c := newClient(t, apiserver.Options{Schema: "http", Host: host, Port: port})
	body, err := get(c, endpointsPath)
	require.NoError(t, err)
	assert.Equal(t, "v6", body)
	assert.Equal(t, "[::1]:"+strconv.Itoa(port), gotHost)
}

func TestTLSVerifiedWithCAFile(t *testing.T) {
	api := fakeapi.New(t, fakeapi.WithTLS(), fakeapi.WithToken("tok"))
	api.PutEndpoints(&fakeapi.Endpoints{Metadata: fakeapi.ObjectMeta{Namespace: "default", Name: "web"}})
	c := newClient(t, apiserver.Options{
		Schema: "https", Host: api.Host(), Port: api.Port(),
		CAFile: api.CAFile(t), Token: "tok",
	})
	body, err := get(c, endpointsPath)
	require.NoError(t, err)
	assert.Contains(t, body, `"EndpointsList"`)
	assert.Contains(t, body, `"web"`)
	r := api.WaitRequests(fakeapi.IsList(fakeapi.EndpointsResource), 1)[0]
	assert.Equal(t, "Bearer tok", r.Authorization)
}

func TestTLSWrongCARefused(t *testing.T) {
	api := fakeapi.New(t, fakeapi.WithTLS())
	other := newCA(t, "some other CA")
	tests := []struct {
		name   string
		caFile string
	}{
		{"generated CA", writeFile(t, t.TempDir(), "other.crt", other.pem)},
		{"system roots", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, apiserver.Options{Schema: "https", Host: api.Host(), Port: api.Port(), CAFile: tt.caFile})
			_, err := get(c, endpointsPath)
			require.Error(t, err)
			var ua x509.UnknownAuthorityError
			assert.True(t, errors.As(err, &ua), "want an x509.UnknownAuthorityError, got %T %v", err, err)
			assert.Contains(t, err.Error(), "x509: certificate signed by unknown authority")
			assert.Empty(t, api.Requests(), "no request may reach a server that was not verified")
		})
	}
}

func TestTLSInsecureSkipVerify(t *testing.T) {
	api := fakeapi.New(t, fakeapi.WithTLS())
	var logged bytes.Buffer
	c := newClient(t, apiserver.Options{
		Schema: "https", Host: api.Host(), Port: api.Port(), InsecureSkipVerify: true,
		// A CA that does not match is ignored when verification is off.
		CAFile: writeFile(t, t.TempDir(), "other.crt", newCA(t, "other").pem),
		Logger: slog.New(slog.NewTextHandler(&logged, nil)),
	})
	_, err := get(c, endpointsPath)
	require.NoError(t, err)
	assert.Contains(t, logged.String(), "TLS verification of the apiserver is off")
}

func TestHTTPSToPlainHTTPServer(t *testing.T) {
	r := newRecorder(t)
	host, port := hostPort(t, r.Listener.Addr().String())
	c := newClient(t, apiserver.Options{Schema: "https", Host: host, Port: port, InsecureSkipVerify: true})
	_, err := get(c, endpointsPath)
	require.Error(t, err)
	assert.Zero(t, r.count())
}

func TestMutualTLS(t *testing.T) {
	ca := newCA(t, "kdisc test CA")
	serverCert, _, _ := ca.issue(t, "apiserver", true)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.pool(),
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	srv.StartTLS()
	t.Cleanup(srv.Close)
	host, port := hostPort(t, srv.Listener.Addr().String())

	dir := t.TempDir()
	caFile := writeFile(t, dir, "ca.crt", ca.pem)
	_, certPEM, keyPEM := ca.issue(t, "system:kdisc", false)
	certFile := writeFile(t, dir, "client.crt", certPEM)
	keyFile := writeFile(t, dir, "client.key", keyPEM)

	t.Run("presented", func(t *testing.T) {
		c := newClient(t, apiserver.Options{Schema: "https", Host: host, Port: port, CAFile: caFile, CertFile: certFile, KeyFile: keyFile})
		body, err := get(c, endpointsPath)
		require.NoError(t, err)
		assert.Equal(t, "system:kdisc", body)

		// The pair is re-read on each handshake: a rotated certificate is
		// used by the next connection.
		_, certPEM2, keyPEM2 := ca.issue(t, "system:kdisc-rotated", false)
		writeFile(t, dir, "client.crt", certPEM2)
		writeFile(t, dir, "client.key", keyPEM2)
		c.CloseIdleConnections()
		body, err = get(c, endpointsPath)
		require.NoError(t, err)
		assert.Equal(t, "system:kdisc-rotated", body)
	})
	t.Run("absent", func(t *testing.T) {
		c := newClient(t, apiserver.Options{Schema: "https", Host: host, Port: port, CAFile: caFile})
		_, err := get(c, endpointsPath)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "certificate required")
	})
	t.Run("unreadable", func(t *testing.T) {
		c := newClient(t, apiserver.Options{Schema: "https", Host: host, Port: port, CAFile: caFile, CertFile: dir + "/missing.crt", KeyFile: keyFile})
		_, err := get(c, endpointsPath)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "client certificate")
	})
}

func TestStaticTokenWinsOverFile(t *testing.T) {
	r := newRecorder(t)
	file := writeFile(t, t.TempDir(), "token", []byte("from-file"))
	c := r.client(t, apiserver.Options{Token: "static", TokenFile: file})
	_, err := get(c, endpointsPath)
	require.NoError(t, err)
	assert.Equal(t, "Bearer static", r.lastAuth())
}

func TestNoTokenNoAuthorization(t *testing.T) {
	r := newRecorder(t)
	c := r.client(t, apiserver.Options{})
	_, err := get(c, endpointsPath)
	require.NoError(t, err)
	require.Equal(t, 1, r.count())
	assert.Empty(t, r.lastAuth())
}

func TestTokenFile(t *testing.T) {
	r := newRecorder(t)
	dir := t.TempDir()
	file := dir + "/token"
	c := r.client(t, apiserver.Options{TokenFile: file})

	// Missing at the first request: a clear error, nothing sent.
	_, err := get(c, endpointsPath)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "reading token file")
	assert.Contains(t, err.Error(), file)
	assert.True(t, errors.Is(err, os.ErrNotExist), "%v", err)
	assert.Zero(t, r.count())

	// Empty at first: also an error.
	writeFile(t, dir, "token", []byte(" \n"))
	_, err = get(c, endpointsPath)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "is empty")
	assert.Zero(t, r.count())

	// Whitespace trimmed.
	writeFile(t, dir, "token", []byte("  tok-one\n"))
	_, err = get(c, endpointsPath)
	require.NoError(t, err)
	assert.Equal(t, "Bearer tok-one", r.lastAuth())

	// Rotated with a new size: re-read.
	writeFile(t, dir, "token", []byte("tok-two-longer\n"))
	_, err = get(c, endpointsPath)
	require.NoError(t, err)
	assert.Equal(t, "Bearer tok-two-longer", r.lastAuth())

	// Rotated with the same size: the modification time says it changed.
	writeFile(t, dir, "token", []byte("tok-3wo-longer\n"))
	later := time.Now().Add(time.Minute)
	require.NoError(t, os.Chtimes(file, later, later))
	_, err = get(c, endpointsPath)
	require.NoError(t, err)
	assert.Equal(t, "Bearer tok-3wo-longer", r.lastAuth())

	// Rotation by symlink swap, as kubelet does for projected tokens.
	writeFile(t, dir, "token.next", []byte("tok-four\n"))
	require.NoError(t, os.Remove(file))
	require.NoError(t, os.Symlink(dir+"/token.next", file))
	_, err = get(c, endpointsPath)
	require.NoError(t, err)
	assert.Equal(t, "Bearer tok-four", r.lastAuth())

	// Transient failures keep the last good token: the file gone
	// mid-rotation, then present but empty.
	require.NoError(t, os.Remove(file))
	_, err = get(c, endpointsPath)
	require.NoError(t, err)
	assert.Equal(t, "Bearer tok-four", r.lastAuth())
	writeFile(t, dir, "token", []byte("\n"))
	_, err = get(c, endpointsPath)
	require.NoError(t, err)
	assert.Equal(t, "Bearer tok-four", r.lastAuth())

	// And the next good file is picked up.
	writeFile(t, dir, "token", []byte("tok-five\n"))
	_, err = get(c, endpointsPath)
	require.NoError(t, err)
	assert.Equal(t, "Bearer tok-five", r.lastAuth())
}

func TestTokenFileUnreadableAtFirstRequest(t *testing.T) {
	r := newRecorder(t)
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(dir+"/token", 0o700)) // a directory: stat works, read fails
	c := r.client(t, apiserver.Options{TokenFile: dir + "/token"})
	_, err := get(c, endpointsPath)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "reading token file")
	assert.Zero(t, r.count())
}

// statusServer answers every request with code, the headers h and body.
func statusServer(t *testing.T, code int, h http.Header, body string) *apiserver.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range h {
			w.Header()[k] = v
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	host, port := hostPort(t, srv.Listener.Addr().String())
	return newClient(t, apiserver.Options{Schema: "http", Host: host, Port: port, Token: "secret-token-xyz"})
}

func statusError(t *testing.T, err error) *apiserver.StatusError {
	t.Helper()
	require.Error(t, err)
	var se *apiserver.StatusError
	require.True(t, errors.As(err, &se), "want *StatusError, got %T %v", err, err)
	return se
}

func TestStatusError(t *testing.T) {
	const forbidden = `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",` +
		`"message":"endpoints is forbidden: User \"system:serviceaccount:apisix:apisix\" cannot list resource \"endpoints\" in API group \"\" at the cluster scope",` +
		`"reason":"Forbidden","details":{"kind":"endpoints"},"code":403}`
	c := statusServer(t, http.StatusForbidden, http.Header{"Content-Type": {"application/json"}}, forbidden)
	_, err := get(c, endpointsPath)
	se := statusError(t, err)
	assert.Equal(t, http.StatusForbidden, se.Code)
	assert.Equal(t, "Forbidden", se.Reason)
	assert.Equal(t, `endpoints is forbidden: User "system:serviceaccount:apisix:apisix" cannot list resource "endpoints" in API group "" at the cluster scope`, se.Message)
	assert.Zero(t, se.RetryAfter)
	assert.Equal(t, `403 Forbidden from apiserver: `+se.Message, err.Error())
	assert.False(t, apiserver.IsGone(err))
	assert.Zero(t, apiserver.RetryAfter(err))
}

func TestStatusErrorFromFakeAPI(t *testing.T) {
	api := fakeapi.New(t)
	c := newClient(t, apiserver.Options{Schema: "http", Host: api.Host(), Port: api.Port()})
	api.Fail(fakeapi.AnyRequest, fakeapi.Forbidden("system:serviceaccount:apisix:apisix"), 1)
	api.Fail(fakeapi.AnyRequest, fakeapi.InternalError(), 1)
	api.Fail(fakeapi.AnyRequest, fakeapi.TooManyRequests(3), 1)
	api.Fail(fakeapi.AnyRequest, fakeapi.ServiceUnavailable(2), 1)

	_, err := get(c, endpointsPath)
	se := statusError(t, err)
	assert.Equal(t, 403, se.Code)
	assert.Equal(t, "Forbidden", se.Reason)
	assert.Contains(t, se.Message, "system:serviceaccount:apisix:apisix")
	assert.True(t, strings.HasPrefix(err.Error(), "403 Forbidden from apiserver: "), err.Error())

	_, err = get(c, endpointsPath)
	se = statusError(t, err)
	assert.Equal(t, 500, se.Code)
	assert.Equal(t, "InternalError", se.Reason)

	_, err = get(c, endpointsPath)
	se = statusError(t, err)
	assert.Equal(t, 429, se.Code)
	assert.Equal(t, 3*time.Second, se.RetryAfter)
	assert.Equal(t, 3*time.Second, apiserver.RetryAfter(fmt.Errorf("listing: %w", err)))

	_, err = get(c, endpointsPath)
	se = statusError(t, err)
	assert.Equal(t, 503, se.Code)
	assert.Equal(t, 2*time.Second, se.RetryAfter)

	_, err = get(c, endpointsPath)
	require.NoError(t, err, "faults are spent")
}

func TestRetryAfter(t *testing.T) {
	status := `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too many requests","reason":"TooManyRequests","code":429}`
	t.Run("seconds", func(t *testing.T) {
		c := statusServer(t, 429, http.Header{"Retry-After": {"7"}}, status)
		_, err := get(c, endpointsPath)
		se := statusError(t, err)
		assert.Equal(t, 7*time.Second, se.RetryAfter)
		assert.Equal(t, "TooManyRequests", se.Reason)
		assert.Equal(t, "too many requests", se.Message)
	})
	t.Run("HTTP-date", func(t *testing.T) {
		at := time.Now().Add(20 * time.Second)
		c := statusServer(t, 503, http.Header{"Retry-After": {at.UTC().Format(http.TimeFormat)}}, status)
		_, err := get(c, endpointsPath)
		se := statusError(t, err)
		// The date has a resolution of one second.
		assert.Greater(t, se.RetryAfter, 18*time.Second)
		assert.LessOrEqual(t, se.RetryAfter, 20*time.Second)
	})
	t.Run("HTTP-date in the past", func(t *testing.T) {
		at := time.Now().Add(-time.Hour)
		c := statusServer(t, 503, http.Header{"Retry-After": {at.UTC().Format(http.TimeFormat)}}, status)
		_, err := get(c, endpointsPath)
		se := statusError(t, err)
		assert.Zero(t, se.RetryAfter, "a date already passed asks for no delay")
	})
	for _, v := range []string{"0", "-5", "soon", ""} {
		t.Run("ignored "+strconv.Quote(v), func(t *testing.T) {
			c := statusServer(t, 503, http.Header{"Retry-After": {v}}, status)
			_, err := get(c, endpointsPath)
			se := statusError(t, err)
			assert.Zero(t, se.RetryAfter)
		})
	}
}

func TestNonStatusBody(t *testing.T) {
	tests := []struct {
		name string
		code int
		body string
		want string
	}{
		{"html from a proxy", 502, "<html><body>502 Bad Gateway</body></html>", "502 Bad Gateway from apiserver"},
		{"plain text", 503, "upstream connect error or disconnect/reset before headers", "503 Service Unavailable from apiserver"},
		{"empty", 500, "", "500 Internal Server Error from apiserver"},
		{"truncated Status", 403, `{"kind":"Status","message":"cut`, "403 Forbidden from apiserver"},
		{"json array", 404, `["not","a","status"]`, "404 Not Found from apiserver"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := statusServer(t, tt.code, nil, tt.body)
			_, err := get(c, endpointsPath)
			se := statusError(t, err)
			assert.Equal(t, tt.code, se.Code)
			assert.Empty(t, se.Reason)
			assert.Empty(t, se.Message)
			assert.Equal(t, tt.want, err.Error())
		})
	}
}

func TestIsGone(t *testing.T) {
	gone := `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (5)","reason":"Expired","code":410}`
	c := statusServer(t, http.StatusGone, nil, gone)
	_, err := get(c, endpointsPath)
	se := statusError(t, err)
	assert.Equal(t, "Expired", se.Reason)
	assert.Equal(t, "too old resource version: 1 (5)", se.Message)
	assert.True(t, apiserver.IsGone(err))
	assert.True(t, apiserver.IsGone(fmt.Errorf("watch: %w", err)))

	assert.False(t, apiserver.IsGone(nil))
	assert.False(t, apiserver.IsGone(errors.New("410 Gone")))
	assert.False(t, apiserver.IsGone(&apiserver.StatusError{Code: 404}))
	assert.True(t, apiserver.IsGone(&apiserver.StatusError{Code: 410}))
	assert.Zero(t, apiserver.RetryAfter(nil))
	assert.Zero(t, apiserver.RetryAfter(errors.New("x")))
}

func TestStatusErrorText(t *testing.T) {
	assert.Equal(t, "401 Unauthorized from apiserver", (&apiserver.StatusError{Code: 401}).Error())
	assert.Equal(t, "410 Gone from apiserver: too old", (&apiserver.StatusError{Code: 410, Reason: "Expired", Message: "too old"}).Error())
}

func TestTokenNeverInErrors(t *testing.T) {
	const token = "sUp3r-s3cret-b3arer-t0ken"
	var errs []error

	// Refused by the server, with and without a Status body.
	api := fakeapi.New(t, fakeapi.WithToken("another-token"))
	c := newClient(t, apiserver.Options{Schema: "http", Host: api.Host(), Port: api.Port(), Token: token})
	_, err := get(c, endpointsPath)
	errs = append(errs, err)
	api.SetToken(token)
	api.Fail(fakeapi.AnyRequest, fakeapi.Forbidden("system:serviceaccount:apisix:apisix"), 1)
	_, err = get(c, endpointsPath)
	errs = append(errs, err)
	api.Fail(fakeapi.AnyRequest, fakeapi.InternalError(), 1)
	_, err = get(c, endpointsPath)
	errs = append(errs, err)

	// Transport failures: refused connection, unverified TLS.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	host, port := hostPort(t, ln.Addr().String())
	require.NoError(t, ln.Close())
	c = newClient(t, apiserver.Options{Schema: "http", Host: host, Port: port, Token: token})
	_, err = get(c, endpointsPath)
	errs = append(errs, err)

	tlsAPI := fakeapi.New(t, fakeapi.WithTLS())
	c = newClient(t, apiserver.Options{Schema: "https", Host: tlsAPI.Host(), Port: tlsAPI.Port(), Token: token})
	_, err = get(c, endpointsPath)
	errs = append(errs, err)

	// A cancelled request.
	c = newClient(t, apiserver.Options{Schema: "http", Host: api.Host(), Port: api.Port(), Token: token})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = c.Get(ctx, endpointsPath, url.Values{"watch": {"1"}})
	errs = append(errs, err)

	for i, err := range errs {
		require.Error(t, err, "case %d", i)
		assert.NotContains(t, err.Error(), token, "case %d", i)
		assert.NotContains(t, fmt.Sprintf("%#v", err), token, "case %d", i)
	}
	assert.Equal(t, 401, statusError(t, errs[0]).Code)
	assert.Equal(t, 403, statusError(t, errs[1]).Code)
	assert.Equal(t, 500, statusError(t, errs[2]).Code)
}

// A writer that replaces the token file in place within one mtime tick
// leaves its size and mtime as they were: the stat says nothing changed.
// The apiserver's 401 is what says the token is stale, so a 401 re-reads
// the file and, when it holds another token, retries once with it.
// (client-go resets its cached file token on a 401 as well:
// transport/token_source.go, ResetTokenOlderThan.)
func TestUnauthorizedRereadsTokenFileWithSameSizeAndMtime(t *testing.T) {
	var mu sync.Mutex
	accept := "tok-a"
	var auths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		auths = append(auths, req.Header.Get("Authorization"))
		if req.Header.Get("Authorization") != "Bearer "+accept {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"kind":"Status","code":401,"reason":"Unauthorized","message":"Unauthorized"}`)
			return
		}
		_, _ = io.WriteString(w, "{}")
	}))
	t.Cleanup(srv.Close)
	host, port := hostPort(t, srv.Listener.Addr().String())
	dir := t.TempDir()
	file := writeFile(t, dir, "token", []byte("tok-a\n"))
	fi, err := os.Stat(file)
	require.NoError(t, err)
	mtime := fi.ModTime()
	c := newClient(t, apiserver.Options{Schema: "http", Host: host, Port: port, TokenFile: file})

	_, err = get(c, endpointsPath)
	require.NoError(t, err)

	// The server moves to tok-b; the file is rewritten in place with a
	// token of the same size, and its mtime set back.
	mu.Lock()
	accept = "tok-b"
	mu.Unlock()
	require.NoError(t, os.WriteFile(file, []byte("tok-b\n"), 0o600))
	require.NoError(t, os.Chtimes(file, mtime, mtime))
	fi2, err := os.Stat(file)
	require.NoError(t, err)
	require.Equal(t, fi.Size(), fi2.Size())
	require.True(t, fi2.ModTime().Equal(mtime), "the stat must look unchanged")

	_, err = get(c, endpointsPath)
	require.NoError(t, err, "the 401 re-reads the file and retries with the new token")
	mu.Lock()
	assert.Equal(t, []string{"Bearer tok-a", "Bearer tok-a", "Bearer tok-b"}, auths)
	mu.Unlock()

	// A 401 with a file that still holds the refused token is returned
	// without a second request (retrying the same token is useless).
	mu.Lock()
	accept, auths = "tok-c", nil
	mu.Unlock()
	_, err = get(c, endpointsPath)
	var se *apiserver.StatusError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, http.StatusUnauthorized, se.Code)
	mu.Lock()
	assert.Equal(t, []string{"Bearer tok-b"}, auths)
	mu.Unlock()

	// And the next request after that reads the file again too.
	require.NoError(t, os.WriteFile(file, []byte("tok-c\n"), 0o600))
	require.NoError(t, os.Chtimes(file, mtime, mtime))
	_, err = get(c, endpointsPath)
	require.NoError(t, err)
	mu.Lock()
	assert.Equal(t, "Bearer tok-c", auths[len(auths)-1])
	mu.Unlock()
}
