package dump_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc/dump"
	"github.com/kdisc/kdisc/shm"
)

// source is a dump.Source with fixed answers.
type source struct {
	dump     dump.Dump
	nodes    map[string][]shm.Node
	answers  map[string]shm.Answer // for services not in nodes; default Unknown
	notReady []dump.NotReady
	metrics  string
	queried  []string
}

func (s *source) Dump() dump.Dump { return s.dump }

func (s *source) Lookup(buf []shm.Node, service string) ([]shm.Node, shm.Answer) {
	s.queried = append(s.queried, service)
	n, ok := s.nodes[service]
	if !ok || len(n) == 0 {
		if a, ok := s.answers[service]; ok {
			return buf, a
		}
		return buf, shm.Unknown
	}
	return append(buf, n...), shm.Found
}

func (s *source) NotReady() []dump.NotReady { return s.notReady }

func (s *source) WriteMetrics(w io.Writer) { _, _ = io.WriteString(w, s.metrics) }

type answer struct {
	code        int
	contentType string
	body        string
}

func serve(t *testing.T, h http.Handler, method, target string) answer {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	res := rec.Result()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return answer{res.StatusCode, res.Header.Get("Content-Type"), string(b)}
}

func TestHandlerDump(t *testing.T) {
	w := table(t, 64<<10)
	require.NoError(t, w.Put("default/kubernetes", []shm.Port{{Name: "https", Nodes: []shm.Node{node("172.18.164.170", 6443, 50)}}}))
	src := &source{dump: dump.Dump{
		Endpoints: []dump.Cluster{dump.Table("first", w.Reader())},
		Config:    []any{map[string]string{"id": "first", "token": "<redacted>"}},
	}}
	a := serve(t, dump.Handler(src), http.MethodGet, dump.DumpPath)
	assert.Equal(t, http.StatusOK, a.code)
	assert.Equal(t, "application/json", a.contentType)
	assert.Equal(t,
		`{"endpoints":[{"id":"first","endpoints":[{"name":"default/kubernetes","value":"{\"https\":[{\"host\":\"172.18.164.170\",\"port\":6443,\"weight\":50}]}"}]}],"config":[{"id":"first","token":"<redacted>"}]}`+"\n",
		a.body)
	assert.Equal(t, "/v1/discovery/kubernetes/dump", dump.DumpPath)
}

func TestHandlerNodes(t *testing.T) {
	src := &source{nodes: map[string][]shm.Node{
		"default/web:http": {node("10.5.10.109", 3306, 50), node("10.5.10.110", 3306, 50)},
		"first/a/b:80":     {node("fd00::1", 80, 0)},
	}}
	h := dump.Handler(src)
	assert.Equal(t, "/v1/discovery/kubernetes/nodes", dump.NodesPath)

	a := serve(t, h, http.MethodGet, dump.NodesPath+"?service=default/web:http")
	assert.Equal(t, http.StatusOK, a.code)
	assert.Equal(t, "application/json", a.contentType)
	assert.Equal(t, `[{"host":"10.5.10.109","port":3306,"weight":50},{"host":"10.5.10.110","port":3306,"weight":50}]`+"\n", a.body)

	a = serve(t, h, http.MethodGet, dump.NodesPath+"?service="+url.QueryEscape("first/a/b:80"))
	assert.Equal(t, http.StatusOK, a.code)
	assert.Equal(t, `[{"host":"fd00::1","port":80,"weight":0}]`+"\n", a.body)

	a = serve(t, h, http.MethodGet, dump.NodesPath+"?service="+url.QueryEscape(`default/"nope":<http>`))
	assert.Equal(t, http.StatusNotFound, a.code)
	assert.Equal(t, "application/json", a.contentType)
	assert.Equal(t, `{"error":"service default/\"nope\":<http> not found","reason":"unknown"}`+"\n", a.body)

	// The three kinds of nothing: 404 with the reason, or 503 when the
	// table is not authoritative (the proxy should retry, not 404).
	src.answers = map[string]shm.Answer{"default/empty:http": shm.Empty, "default/early:http": shm.NotReady}
	a = serve(t, h, http.MethodGet, dump.NodesPath+"?service=default/empty:http")
	assert.Equal(t, http.StatusNotFound, a.code)
	assert.Equal(t, `{"error":"service default/empty:http has no address for that port","reason":"empty"}`+"\n", a.body)
	a = serve(t, h, http.MethodGet, dump.NodesPath+"?service=default/early:http")
	assert.Equal(t, http.StatusServiceUnavailable, a.code)
	assert.Equal(t, `{"error":"service default/early:http not found and the table is not ready","reason":"not_ready"}`+"\n", a.body)

	for _, target := range []string{dump.NodesPath, dump.NodesPath + "?service=", dump.NodesPath + "?svc=default/web:http"} {
		a = serve(t, h, http.MethodGet, target)
		assert.Equal(t, http.StatusBadRequest, a.code, target)
		assert.Equal(t, "application/json", a.contentType)
		assert.Equal(t, `{"error":"missing query parameter service"}`+"\n", a.body)
	}
	assert.Equal(t, []string{"default/web:http", "first/a/b:80", `default/"nope":<http>`, "default/empty:http", "default/early:http"}, src.queried,
		"a request without service never reaches the source")
}

func TestHandlerHealthz(t *testing.T) {
	// Alive whatever the readiness.
	src := &source{notReady: []dump.NotReady{{Reason: "first list not finished"}}}
	a := serve(t, dump.Handler(src), http.MethodGet, "/healthz")
	assert.Equal(t, http.StatusOK, a.code)
	assert.Equal(t, `{"status":"ok"}`+"\n", a.body)
}

func TestHandlerReadyz(t *testing.T) {
	src := &source{}
	h := dump.Handler(src)
	a := serve(t, h, http.MethodGet, "/readyz")
	assert.Equal(t, http.StatusOK, a.code)
	assert.Equal(t, "application/json", a.contentType)
	assert.Equal(t, `{"ready":true}`+"\n", a.body)

	src.notReady = []dump.NotReady{
		{ID: "release", Reason: `403 Forbidden from apiserver: endpoints is forbidden: User "system:serviceaccount:apisix:apisix" cannot list resource "endpoints"`},
		{ID: "staging", Reason: "tls: failed to verify certificate: x509: certificate signed by unknown authority"},
	}
	a = serve(t, h, http.MethodGet, "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, a.code)
	assert.Equal(t, "application/json", a.contentType)
	assert.Equal(t,
		`{"ready":false,"not_ready":[{"id":"release","reason":"403 Forbidden from apiserver: endpoints is forbidden: User \"system:serviceaccount:apisix:apisix\" cannot list resource \"endpoints\""},`+
			`{"id":"staging","reason":"tls: failed to verify certificate: x509: certificate signed by unknown authority"}]}`+"\n",
		a.body)

	// Single mode: no id.
	src.notReady = []dump.NotReady{{Reason: "first list not finished"}}
	a = serve(t, h, http.MethodGet, "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, a.code)
	assert.Equal(t, `{"ready":false,"not_ready":[{"reason":"first list not finished"}]}`+"\n", a.body)
}

func TestHandlerMetrics(t *testing.T) {
	const text = "# HELP kdisc_ready 1 once ready.\n# TYPE kdisc_ready gauge\nkdisc_ready{cluster=\"\"} 1\n"
	a := serve(t, dump.Handler(&source{metrics: text}), http.MethodGet, "/metrics")
	assert.Equal(t, http.StatusOK, a.code)
	assert.Equal(t, "text/plain; version=0.0.4; charset=utf-8", a.contentType)
	assert.Equal(t, text, a.body)
}

func TestHandlerMethodsAndPaths(t *testing.T) {
	h := dump.Handler(&source{})
	for _, p := range []string{dump.DumpPath, dump.NodesPath + "?service=a/b:c", "/healthz", "/readyz", "/metrics"} {
		a := serve(t, h, http.MethodPost, p)
		assert.Equal(t, http.StatusMethodNotAllowed, a.code, p)
		a = serve(t, h, http.MethodHead, p)
		assert.NotEqual(t, http.StatusMethodNotAllowed, a.code, "HEAD %s", p)
	}
	for _, p := range []string{"/", "/v1/discovery/kubernetes", "/v1/discovery/kubernetes/dump/x", "/readyz/x"} {
		a := serve(t, h, http.MethodGet, p)
		assert.Equal(t, http.StatusNotFound, a.code, p)
		assert.False(t, strings.HasPrefix(a.body, "{\"endpoints\""), p)
	}
}
