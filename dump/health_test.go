package dump_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/kdisc/kdisc/dump"
	"github.com/kdisc/kdisc/shm"
)

// HealthHandler serves /healthz and /readyz as Handler does, and nothing
// else: a probe listener on the pod IP must not expose the tables.
func TestHealthHandlerServesOnlyProbes(t *testing.T) {
	src := &source{
		nodes:    map[string][]shm.Node{"default/web:http": {{Port: 80, Weight: 50}}},
		notReady: []dump.NotReady{{ID: "b", Reason: "403 Forbidden"}},
		metrics:  "kdisc_ready 1\n",
	}
	full, health := dump.Handler(src), dump.HealthHandler(src)
	for _, path := range []string{"/healthz", "/readyz"} {
		assert.Equal(t, serve(t, full, http.MethodGet, path), serve(t, health, http.MethodGet, path), path)
	}
	assert.Equal(t, http.StatusServiceUnavailable, serve(t, health, http.MethodGet, "/readyz").code)
	src.notReady = nil
	assert.Equal(t, http.StatusOK, serve(t, health, http.MethodGet, "/readyz").code)
	assert.Equal(t, http.StatusOK, serve(t, health, http.MethodGet, "/healthz").code)

	for _, path := range []string{dump.DumpPath, dump.NodesPath + "?service=default/web:http", "/metrics", "/", "/healthz/x"} {
		assert.Equal(t, http.StatusNotFound, serve(t, health, http.MethodGet, path).code, path)
	}
	assert.Empty(t, src.queried, "no lookup through the probe listener")
	assert.Equal(t, http.StatusMethodNotAllowed, serve(t, health, http.MethodPost, "/healthz").code)
}
