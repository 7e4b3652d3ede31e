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
		notReady: []dump.NotReady{{ID: "b", Reason: "403 Forbidden", Class: dump.ClassForbidden}},
		metrics:  "kdisc_ready 1\n",
	}
	full, health := dump.Handler(src), dump.HealthHandler(src)
	assert.Equal(t, serve(t, full, http.MethodGet, "/healthz"), serve(t, health, http.MethodGet, "/healthz"))
	assert.Equal(t, http.StatusServiceUnavailable, serve(t, health, http.MethodGet, "/readyz").code)
	src.notReady = nil
	assert.Equal(t, serve(t, full, http.MethodGet, "/readyz"), serve(t, health, http.MethodGet, "/readyz"))
	assert.Equal(t, http.StatusOK, serve(t, health, http.MethodGet, "/readyz").code)
	assert.Equal(t, http.StatusOK, serve(t, health, http.MethodGet, "/healthz").code)

	for _, path := range []string{dump.DumpPath, dump.NodesPath + "?service=default/web:http", "/metrics", "/", "/healthz/x"} {
		assert.Equal(t, http.StatusNotFound, serve(t, health, http.MethodGet, path).code, path)
	}
	assert.Empty(t, src.queried, "no lookup through the probe listener")
	assert.Equal(t, http.StatusMethodNotAllowed, serve(t, health, http.MethodPost, "/healthz").code)
}

// The probe listener is on the pod network: its /readyz keeps the JSON
// shape of the control API's, but each reason is the class word, never
// text from outside (an exec plugin's stderr, the apiserver's message).
// A class that is not one of the fixed words says "unknown".
func TestHealthReadyzSaysOnlyClassWords(t *testing.T) {
	const secret = "sk-live-0123456789"
	src := &source{notReady: []dump.NotReady{
		{ID: "a", Reason: "exec plugin /bin/get-token: exit status 1: " + secret, Class: dump.ClassExec},
		{ID: "b", Reason: "403 Forbidden from apiserver: " + secret, Class: dump.ClassForbidden},
		{ID: "c", Reason: "first list not finished", Class: dump.ClassStarting},
		{ID: "d", Reason: secret, Class: secret},
		{ID: "e", Reason: secret},
	}}
	a := serve(t, dump.HealthHandler(src), http.MethodGet, "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, a.code)
	assert.Equal(t, "application/json", a.contentType)
	assert.Equal(t, `{"ready":false,"not_ready":[{"id":"a","reason":"exec"},{"id":"b","reason":"forbidden"},{"id":"c","reason":"starting"},{"id":"d","reason":"unknown"},{"id":"e","reason":"unknown"}]}`+"\n", a.body)
	assert.NotContains(t, a.body, secret)

	// The loopback control API keeps the details.
	a = serve(t, dump.Handler(src), http.MethodGet, "/readyz")
	assert.Contains(t, a.body, `"reason":"exec plugin /bin/get-token: exit status 1: `+secret+`"`)
	assert.NotContains(t, a.body, `"class"`, "the control API's shape is unchanged")

	// Every class word is short, lower case and distinct.
	seen := map[string]bool{}
	for _, c := range dump.Classes {
		assert.Regexp(t, `^[a-z_]{1,32}$`, c)
		assert.False(t, seen[c], "duplicate %s", c)
		seen[c] = true
	}
	assert.True(t, seen[dump.ClassUnknown])
}
