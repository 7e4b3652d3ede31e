package apiserver_test

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc/apiserver"
)

// LastFailure names, in a fixed word, why the last request got no answer
// from the apiserver: what /readyz on the probe listener may say instead
// of the error's text (which can hold an exec plugin's stderr).
func TestLastFailure(t *testing.T) {
	ok := newRecorder(t)
	okHost, okPort := hostPort(t, ok.Listener.Addr().String())

	// Nothing sent yet, and after an answer: no failure.
	c := newClient(t, apiserver.Options{Schema: "http", Host: okHost, Port: okPort})
	assert.Equal(t, apiserver.FailureNone, c.LastFailure())
	_, err := get(c, endpointsPath)
	require.NoError(t, err)
	assert.Equal(t, apiserver.FailureNone, c.LastFailure())

	// A refused answer is an answer: the status code says the rest.
	refusing := statusServer(t, http.StatusForbidden, nil, `{"kind":"Status","code":403,"reason":"Forbidden"}`)
	_, err = get(refusing, endpointsPath)
	require.Error(t, err)
	assert.Equal(t, apiserver.FailureNone, refusing.LastFailure())

	t.Run("token_file", func(t *testing.T) {
		dir := t.TempDir()
		c := newClient(t, apiserver.Options{Schema: "http", Host: okHost, Port: okPort, TokenFile: dir + "/token"})
		_, err := get(c, endpointsPath)
		require.Error(t, err)
		assert.Equal(t, apiserver.FailureTokenFile, c.LastFailure())

		// The next answered request clears it.
		writeFile(t, dir, "token", []byte("tok\n"))
		_, err = get(c, endpointsPath)
		require.NoError(t, err)
		assert.Equal(t, apiserver.FailureNone, c.LastFailure())
	})
	t.Run("exec", func(t *testing.T) {
		e, _ := execPlugin(t, apiserver.ExecV1, apiserver.ExecEnv{Name: "KDISC_EXEC_FAIL", Value: "secret-in-stderr"})
		c := newClient(t, apiserver.Options{Schema: "http", Host: okHost, Port: okPort, Exec: e})
		_, err := get(c, endpointsPath)
		require.ErrorContains(t, err, "secret-in-stderr")
		assert.Equal(t, apiserver.FailureExec, c.LastFailure())
	})
	t.Run("unreachable", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		host, port := hostPort(t, l.Addr().String())
		require.NoError(t, l.Close()) // nothing listens there now
		c := newClient(t, apiserver.Options{Schema: "http", Host: host, Port: port})
		_, err = get(c, endpointsPath)
		require.Error(t, err)
		assert.Equal(t, apiserver.FailureUnreachable, c.LastFailure())
	})
	t.Run("tls unknown authority", func(t *testing.T) {
		srv := httptest.NewTLSServer(http.NotFoundHandler())
		t.Cleanup(srv.Close)
		host, port := hostPort(t, srv.Listener.Addr().String())
		c := newClient(t, apiserver.Options{Schema: "https", Host: host, Port: port, NoInClusterCA: true})
		_, err := get(c, endpointsPath)
		require.Error(t, err)
		assert.Equal(t, apiserver.FailureTLS, c.LastFailure())
	})
	t.Run("tls to a plain http server", func(t *testing.T) {
		c := newClient(t, apiserver.Options{Schema: "https", Host: okHost, Port: okPort, NoInClusterCA: true})
		_, err := get(c, endpointsPath)
		require.Error(t, err)
		assert.Equal(t, apiserver.FailureTLS, c.LastFailure())
	})
	t.Run("tls client certificate refused", func(t *testing.T) {
		srv := httptest.NewUnstartedServer(http.NotFoundHandler())
		srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		host, port := hostPort(t, srv.Listener.Addr().String())
		c := newClient(t, apiserver.Options{Schema: "https", Host: host, Port: port, InsecureSkipVerify: true})
		_, err := get(c, endpointsPath)
		require.Error(t, err)
		assert.Equal(t, apiserver.FailureTLS, c.LastFailure())
	})
}
