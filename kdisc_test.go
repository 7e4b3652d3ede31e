package kdisc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc"
	"github.com/kdisc/kdisc/config"
	"github.com/kdisc/kdisc/dump"
	"github.com/kdisc/kdisc/internal/fakeapi"
)

const token = "s3cr3t-t0ken-never-shown"

// singleConfig is a single-cluster configuration for api.
func singleConfig(t *testing.T, api *fakeapi.Server, extra string) *config.Config {
	t.Helper()
	cfg, err := config.Parse(fmt.Appendf(nil, `
discovery:
  kubernetes:
    service: {schema: http, host: %s, port: %d}
    client: {token: %s}
%s`, api.Host(), api.Port(), token, extra))
	require.NoError(t, err)
	return cfg
}

// multiConfig is a multi-cluster configuration: cluster ids[i] is apis[i].
func multiConfig(t *testing.T, ids []string, apis ...*fakeapi.Server) *config.Config {
	t.Helper()
	var b strings.Builder
	b.WriteString("discovery:\n  kubernetes:\n")
	for i, api := range apis {
		fmt.Fprintf(&b, "    - id: %s\n      service: {schema: http, host: %s, port: %d}\n      client: {token: %s}\n      default_weight: %d\n",
			ids[i], api.Host(), api.Port(), token, 10*(i+1))
	}
	cfg, err := config.Parse([]byte(b.String()))
	require.NoError(t, err)
	return cfg
}

func quiet() kdisc.Option {
	return kdisc.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
}

func start(t *testing.T, cfg *config.Config, opts ...kdisc.Option) *kdisc.Discovery {
	t.Helper()
	d, err := kdisc.Start(context.Background(), cfg, append([]kdisc.Option{quiet()}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func newAPI(t *testing.T) *fakeapi.Server {
	return fakeapi.New(t, fakeapi.WithToken(token))
}

func endpoints(ns, name, port string, number int32, ips ...string) *fakeapi.Endpoints {
	return fakeapi.NewEndpoints(ns, name, port, number, ips...)
}

// eventually polls cond every millisecond until it holds, or fails the
// test after 15 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// hosts answers service as "host:port/weight" strings, nil when not found.
func hosts(d *kdisc.Discovery, service string) []string {
	nodes, ok := d.Nodes(nil, service)
	if !ok {
		return nil
	}
	out := []string{}
	for _, n := range nodes {
		out = append(out, n.Host()+":"+strconv.Itoa(int(n.Port))+"/"+strconv.Itoa(int(n.Weight)))
	}
	return out
}

func waitHosts(t *testing.T, d *kdisc.Discovery, service string, want ...string) {
	t.Helper()
	var got []string
	eventually(t, fmt.Sprintf("%s = %v", service, want), func() bool {
		got = hosts(d, service)
		if want == nil {
			return got == nil
		}
		return fmt.Sprint(got) == fmt.Sprint(want) && got != nil
	})
}

func waitReady(t *testing.T, d *kdisc.Discovery) {
	t.Helper()
	eventually(t, "ready", d.Ready)
}

func TestStartSingle(t *testing.T) {
	api := newAPI(t)
	api.PutEndpoints(endpoints("default", "web", "http", 8080, "10.0.0.2", "10.0.0.10", "10.0.0.1"))
	api.PutEndpoints(endpoints("other", "db", "", 5432, "fd00::2", "fd00::1"))
	d := start(t, singleConfig(t, api, "    default_weight: 7\n"))
	waitReady(t, d)
	assert.Empty(t, d.NotReady())

	// Sorted by host text, byte-wise: 10.0.0.10 before 10.0.0.2.
	assert.Equal(t, []string{"10.0.0.1:8080/7", "10.0.0.10:8080/7", "10.0.0.2:8080/7"}, hosts(d, "default/web:http"))
	assert.Equal(t, []string{"fd00::1:5432/7", "fd00::2:5432/7"}, hosts(d, "other/db:5432"), "an unnamed port is its number")
	assert.Equal(t, hosts(d, "default/web:http"), hosts(d, "default/web:8080"), "a named port is found by its number too")
	for _, s := range []string{"default/web:https", "default/web:8081", "default/web", "default/nope:http", "web:http", "", "x/default/web:http"} {
		_, ok := d.Nodes(nil, s)
		assert.False(t, ok, "%q", s)
	}

	// Changes arrive by watch.
	api.PutEndpoints(endpoints("default", "web", "http", 8080, "10.0.0.3"))
	waitHosts(t, d, "default/web:http", "10.0.0.3:8080/7")
	api.DeleteEndpoints("default", "web")
	waitHosts(t, d, "default/web:http")
	r := api.WaitRequests(fakeapi.IsWatch(fakeapi.EndpointsResource), 1)[0]
	assert.Equal(t, "true", r.Param("sendInitialEvents"), "a streaming list")
	assert.Equal(t, "Bearer "+token, r.Authorization)
}

func TestStartMulti(t *testing.T) {
	a, b := newAPI(t), newAPI(t)
	a.PutEndpoints(endpoints("default", "web", "http", 80, "10.1.0.1"))
	b.PutEndpoints(endpoints("default", "web", "http", 80, "10.2.0.1", "10.2.0.2"))
	b.PutEndpoints(endpoints("shop", "cart", "grpc", 9000, "10.2.1.1"))
	d := start(t, multiConfig(t, []string{"first", "second"}, a, b))
	waitReady(t, d)

	assert.Equal(t, []string{"10.1.0.1:80/10"}, hosts(d, "first/default/web:http"))
	assert.Equal(t, []string{"10.2.0.1:80/20", "10.2.0.2:80/20"}, hosts(d, "second/default/web:http"))
	assert.Equal(t, []string{"10.2.1.1:9000/20"}, hosts(d, "second/shop/cart:grpc"))
	for _, s := range []string{
		"first/shop/cart:grpc",     // in the other cluster
		"third/default/web:http",   // unknown id
		"default/web:http",         // single-mode form
		"first",                    // no slash
		"first/",                   // nothing after the id
		"/default/web:http",        // empty id
		"firstdefault/web:http",    // id glued on
		"First/default/web:http",   // ids are lower case
		"second/default/web:http2", // unknown port
	} {
		_, ok := d.Nodes(nil, s)
		assert.False(t, ok, "%q", s)
	}

	// Each cluster follows its own apiserver.
	b.PutEndpoints(endpoints("default", "web", "http", 80, "10.2.0.3"))
	waitHosts(t, d, "second/default/web:http", "10.2.0.3:80/20")
	assert.Equal(t, []string{"10.1.0.1:80/10"}, hosts(d, "first/default/web:http"))
}

func TestNodesDoesNotAllocate(t *testing.T) {
	a, b := newAPI(t), newAPI(t)
	ips := []string{}
	for i := range 40 {
		ips = append(ips, fmt.Sprintf("10.0.%d.%d", i/8, i))
	}
	a.PutEndpoints(endpoints("default", "web", "http", 80, ips...))
	b.PutEndpoints(endpoints("default", "web", "http", 80, ips...))

	single := start(t, singleConfig(t, a, ""))
	multi := start(t, multiConfig(t, []string{"first", "second"}, a, b))
	waitReady(t, single)
	waitReady(t, multi)

	buf := make([]kdisc.Node, 0, 64)
	for _, tt := range []struct {
		d       *kdisc.Discovery
		service string
	}{
		{single, "default/web:http"},
		{multi, "second/default/web:http"},
	} {
		nodes, ok := tt.d.Nodes(buf[:0], tt.service)
		require.True(t, ok)
		require.Len(t, nodes, 40)
		allocs := testing.AllocsPerRun(200, func() {
			nodes, ok = tt.d.Nodes(buf[:0], tt.service)
		})
		assert.Zero(t, allocs, tt.service)
		assert.True(t, ok)
		assert.Len(t, nodes, 40)
		assert.Same(t, &buf[:1][0], &nodes[0], "the caller's buffer is used")

		allocs = testing.AllocsPerRun(200, func() { _, ok = tt.d.Nodes(buf[:0], "default/nope:http") })
		assert.Zero(t, allocs, "not found")
		assert.False(t, ok)
	}
}

func TestAttach(t *testing.T) {
	api := newAPI(t)
	api.PutEndpoints(endpoints("default", "web", "http", 80, "10.0.0.1", "10.0.0.2"))
	dir := t.TempDir()
	cfg := singleConfig(t, api, "")
	d := start(t, cfg, kdisc.WithShmDir(dir))
	waitReady(t, d)
	require.FileExists(t, filepath.Join(dir, "kubernetes"))

	r, err := kdisc.Attach(dir, cfg)
	require.NoError(t, err)
	defer r.Close()
	assert.True(t, r.Ready(), "the writer says it is ready")
	assert.Equal(t, hosts(d, "default/web:http"), hosts(r, "default/web:http"))
	assert.Equal(t, []string{"10.0.0.1:80/50", "10.0.0.2:80/50"}, hosts(r, "default/web:http"))
	assert.Equal(t, d.Dump(), r.Dump())

	api.PutEndpoints(endpoints("default", "web", "http", 80, "10.0.0.9"))
	waitHosts(t, r, "default/web:http", "10.0.0.9:80/50")

	buf := make([]kdisc.Node, 0, 8)
	assert.Zero(t, testing.AllocsPerRun(100, func() { r.Nodes(buf[:0], "default/web:http") }))

	// The writer stops: the attached reader keeps the last nodes, not ready.
	require.NoError(t, d.Close())
	assert.False(t, r.Ready())
	require.Len(t, r.NotReady(), 1)
	assert.Contains(t, r.NotReady()[0].Reason, "no running kdisc process has finished a full list")
	assert.Equal(t, []string{"10.0.0.9:80/50"}, hosts(r, "default/web:http"))
}

func TestAttachMulti(t *testing.T) {
	a, b := newAPI(t), newAPI(t)
	a.PutEndpoints(endpoints("default", "web", "http", 80, "10.1.0.1"))
	b.PutEndpoints(endpoints("default", "web", "http", 80, "10.2.0.1"))
	dir := t.TempDir()
	cfg := multiConfig(t, []string{"first", "second"}, a, b)
	d := start(t, cfg, kdisc.WithShmDir(dir))
	waitReady(t, d)
	require.FileExists(t, filepath.Join(dir, "kubernetes-first"))
	require.FileExists(t, filepath.Join(dir, "kubernetes-second"))

	r, err := kdisc.Attach(dir, cfg)
	require.NoError(t, err)
	defer r.Close()
	assert.Equal(t, []string{"10.1.0.1:80/10"}, hosts(r, "first/default/web:http"))
	assert.Equal(t, []string{"10.2.0.1:80/20"}, hosts(r, "second/default/web:http"))
}

// A proxy may start before kdisc run: Attach succeeds without the table,
// answers NotReady, and finds the table once it is created.
func TestAttachBeforeTheTableExists(t *testing.T) {
	api := newAPI(t)
	api.PutEndpoints(endpoints("default", "web", "http", 80, "10.0.0.1"))
	dir := filepath.Join(t.TempDir(), "kdisc")
	r, err := kdisc.Attach(dir, singleConfig(t, api, ""))
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	_, answer := r.Lookup(nil, "default/web:http")
	assert.Equal(t, kdisc.NotReady, answer)
	assert.False(t, r.Ready())

	d := start(t, singleConfig(t, api, ""), kdisc.WithShmDir(dir))
	waitReady(t, d)
	eventually(t, "the attached reader to find the new table", func() bool {
		_, answer := r.Lookup(nil, "default/web:http")
		return answer == kdisc.Found && r.Ready()
	})
	_, answer = r.Lookup(nil, "default/nope:http")
	assert.Equal(t, kdisc.Unknown, answer)

	// One table of two present: the other cluster is not ready.
	b := newAPI(t)
	m, err := kdisc.Attach(dir, multiConfig(t, []string{"first", "second"}, api, b))
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	_, answer = m.Lookup(nil, "second/default/web:http")
	assert.Equal(t, kdisc.NotReady, answer)
	assert.Len(t, m.NotReady(), 2)
}

func TestNotReadyForbidden(t *testing.T) {
	api := newAPI(t)
	api.PutEndpoints(endpoints("default", "web", "http", 80, "10.0.0.1"))
	api.Fail(fakeapi.AnyRequest, fakeapi.Forbidden("system:serviceaccount:apisix:apisix"), -1)
	d := start(t, singleConfig(t, api, ""))

	var nr []dump.NotReady
	eventually(t, "403 in NotReady", func() bool {
		nr = d.NotReady()
		return len(nr) == 1 && strings.Contains(nr[0].Reason, "403 Forbidden")
	})
	assert.False(t, d.Ready())
	assert.Empty(t, nr[0].ID, "single mode has no id")
	assert.Contains(t, nr[0].Reason, "403 Forbidden from apiserver")
	assert.Contains(t, nr[0].Reason, "system:serviceaccount:apisix:apisix")
	_, ok := d.Nodes(nil, "default/web:http")
	assert.False(t, ok)

	api.ClearFaults()
	waitReady(t, d)
	assert.Empty(t, d.NotReady())
	assert.Equal(t, []string{"10.0.0.1:80/50"}, hosts(d, "default/web:http"))
}

func TestNotReadyMultiNamesCluster(t *testing.T) {
	a, b := newAPI(t), newAPI(t)
	b.Fail(fakeapi.AnyRequest, fakeapi.Forbidden("system:serviceaccount:kdisc:kdisc"), -1)
	d := start(t, multiConfig(t, []string{"good", "bad"}, a, b))
	var nr []dump.NotReady
	eventually(t, "cluster bad not ready with 403, good ready", func() bool {
		nr = d.NotReady()
		return len(nr) == 1 && strings.Contains(nr[0].Reason, "403 Forbidden")
	})
	assert.Equal(t, "bad", nr[0].ID)
	assert.False(t, d.Ready())
}

func TestNotReadyTokenFileMissing(t *testing.T) {
	api := newAPI(t)
	file := filepath.Join(t.TempDir(), "token")
	cfg, err := config.Parse(fmt.Appendf(nil, "discovery:\n  kubernetes:\n    service: {schema: http, host: %s, port: %d}\n    client: {token_file: %s}\n",
		api.Host(), api.Port(), file))
	require.NoError(t, err)
	d := start(t, cfg)
	eventually(t, "token file reason", func() bool {
		nr := d.NotReady()
		return len(nr) == 1 && strings.Contains(nr[0].Reason, "token file")
	})
	require.NoError(t, os.WriteFile(file, []byte(token+"\n"), 0o600))
	waitReady(t, d)
}

// encode writes v as the control API does.
func encode(t *testing.T, v any) string {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	require.NoError(t, enc.Encode(v))
	return b.String()
}

func TestDumpSingle(t *testing.T) {
	api := newAPI(t)
	api.PutEndpoints(endpoints("default", "web", "http", 80, "10.0.0.2", "10.0.0.1"))
	api.PutEndpoints(endpoints("default", "kubernetes", "https", 6443, "172.18.164.170"))
	d := start(t, singleConfig(t, api, ""))
	waitReady(t, d)

	out := encode(t, d.Dump())
	assert.True(t, strings.HasPrefix(out,
		`{"endpoints":[{"endpoints":[`+
			`{"name":"default/kubernetes","value":"{\"https\":[{\"host\":\"172.18.164.170\",\"port\":6443,\"weight\":50}]}"},`+
			`{"name":"default/web","value":"{\"http\":[{\"host\":\"10.0.0.1\",\"port\":80,\"weight\":50},{\"host\":\"10.0.0.2\",\"port\":80,\"weight\":50}]}"}]}],`+
			`"config":{`), out)
	assert.NotContains(t, out, `"id"`)
	assert.NotContains(t, out, token)

	var shape struct {
		Endpoints []map[string]json.RawMessage `json:"endpoints"`
		Config    map[string]any               `json:"config"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &shape), "config is an object")
	require.Len(t, shape.Endpoints, 1)
	assert.Equal(t, map[string]any{"token": "<redacted>"}, shape.Config["client"])
	assert.Equal(t, float64(50), shape.Config["default_weight"])
}

func TestDumpMulti(t *testing.T) {
	a, b := newAPI(t), newAPI(t)
	a.PutEndpoints(endpoints("default", "web", "http", 80, "10.1.0.1"))
	d := start(t, multiConfig(t, []string{"first", "second"}, a, b))
	waitReady(t, d)

	out := encode(t, d.Dump())
	assert.True(t, strings.HasPrefix(out,
		`{"endpoints":[{"id":"first","endpoints":[{"name":"default/web","value":"{\"http\":[{\"host\":\"10.1.0.1\",\"port\":80,\"weight\":10}]}"}]},`+
			`{"id":"second","endpoints":[]}],"config":[{"id":"first",`), out)
	assert.NotContains(t, out, token)
	assert.Equal(t, 2, strings.Count(out, `"token":"<redacted>"`))

	var shape struct {
		Config []map[string]any `json:"config"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &shape), "config is an array")
	require.Len(t, shape.Config, 2)
	assert.Equal(t, "second", shape.Config[1]["id"])
}

// readmeMetrics returns the metric names the Metrics table of
// docs/operations.md lists (its first column; a row may name several).
func readmeMetrics(t *testing.T) []string {
	t.Helper()
	readme, err := os.ReadFile("docs/operations.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(readme), "\n## Metrics\n")
	require.True(t, ok, "docs/operations.md has a Metrics section")
	section, _, _ = strings.Cut(section, "\n## ")
	var names []string
	for l := range strings.SplitSeq(section, "\n") {
		if !strings.HasPrefix(l, "| `kdisc_") {
			continue
		}
		first, _, _ := strings.Cut(l[1:], "|")
		for _, m := range regexp.MustCompile("`(kdisc_[a-z_]+)").FindAllStringSubmatch(first, -1) {
			names = append(names, m[1])
		}
	}
	return names
}

func TestWriteMetrics(t *testing.T) {
	names := readmeMetrics(t)
	require.Subset(t, names, []string{
		"kdisc_ready", "kdisc_lists_total", "kdisc_list_errors_total", "kdisc_watches_total",
		"kdisc_watch_errors_total", "kdisc_relists_total", "kdisc_events_total", "kdisc_objects_skipped_total",
		"kdisc_table_bytes_used", "kdisc_table_bytes_total", "kdisc_table_entries", "kdisc_table_full_total",
		"kdisc_last_event_age_seconds", "kdisc_watch_healthy", "kdisc_last_sync_age_seconds",
		"kdisc_apiserver_requests_total", "kdisc_table_bytes_capacity",
		"kdisc_streaming_list", "kdisc_lists_by_mode_total",
	})

	a, b := newAPI(t), newAPI(t)
	a.PutEndpoints(endpoints("default", "web", "http", 80, "10.1.0.1"))
	d := start(t, multiConfig(t, []string{"first", "second"}, a, b))
	waitReady(t, d)
	a.WaitWatchers(1)
	a.PutEndpoints(endpoints("default", "web", "http", 80, "10.1.0.2"))
	waitHosts(t, d, "first/default/web:http", "10.1.0.2:80/10")

	// An event is counted, and its latency observed, after its table
	// write: wait for them.
	var out string
	eventually(t, "the event counted", func() bool {
		var buf bytes.Buffer
		d.WriteMetrics(&buf)
		out = buf.String()
		return strings.Contains(out, `kdisc_events_total{cluster="first",type="MODIFIED"} 1`+"\n") &&
			strings.Contains(out, `kdisc_event_apply_seconds_count{cluster="first"} 1`+"\n")
	})
	for _, name := range names {
		assert.Contains(t, out, "# TYPE "+name+" ", name)
		for _, id := range []string{"first", "second"} {
			assert.Regexp(t, `(?m)^`+name+`(_bucket|_sum|_count)?\{cluster="`+id+`"[,}]`, out, "%s for %s", name, id)
		}
	}
	assert.Contains(t, out, `kdisc_ready{cluster="first"} 1`+"\n")
	assert.Contains(t, out, `kdisc_lists_total{cluster="first"} 1`+"\n")
	assert.Contains(t, out, `kdisc_table_entries{cluster="first"} 1`+"\n")
	assert.Contains(t, out, `kdisc_table_entries{cluster="second"} 0`+"\n")
	assert.Contains(t, out, `kdisc_events_total{cluster="first",type="MODIFIED"} 1`+"\n")
	assert.Contains(t, out, `kdisc_table_bytes_total{cluster="first"} 1.048576e+06`+"\n")
	// Health, sync age and requests (issue 6), and the renamed capacity
	// gauge under both names.
	for _, name := range []string{"kdisc_watch_healthy", "kdisc_last_sync_age_seconds", "kdisc_table_bytes_capacity", "kdisc_table_bytes_total"} {
		assert.Contains(t, out, "# TYPE "+name+" gauge\n")
	}
	assert.Contains(t, out, "# TYPE kdisc_apiserver_requests_total counter\n")
	assert.Contains(t, out, "# HELP kdisc_table_bytes_total Deprecated: use kdisc_table_bytes_capacity.")
	assert.Contains(t, out, `kdisc_table_bytes_capacity{cluster="first"} 1.048576e+06`+"\n")
	assert.Contains(t, out, `kdisc_watch_healthy{cluster="first"} 1`+"\n")
	assert.Regexp(t, `(?m)^kdisc_last_sync_age_seconds\{cluster="first"\} [0-9.e+-]+$`, out)
	assert.NotContains(t, out, `kdisc_last_sync_age_seconds{cluster="first"} -1`)
	// The first list is a streaming list (a watch request), which goes on
	// as the watch: one request in all.
	assert.Contains(t, out, `kdisc_apiserver_requests_total{cluster="first",verb="watch",code="200"} 1`+"\n")
	assert.NotContains(t, out, `verb="list"`)
	assert.Contains(t, out, `kdisc_streaming_list{cluster="first"} 1`+"\n")
	assert.Contains(t, out, `kdisc_lists_by_mode_total{cluster="first",mode="streaming"} 1`+"\n")
	assert.Contains(t, out, `kdisc_lists_by_mode_total{cluster="first",mode="paginated"} 0`+"\n")
	// Latency histograms (operability issue), and skipped objects by reason.
	for _, name := range []string{"kdisc_event_apply_seconds", "kdisc_list_duration_seconds", "kdisc_watch_duration_seconds"} {
		assert.Contains(t, out, "# TYPE "+name+" histogram\n")
		assert.Regexp(t, `(?m)^`+name+`_bucket\{cluster="first",le="\+Inf"\} [0-9]+$`, out)
		assert.Regexp(t, `(?m)^`+name+`_sum\{cluster="first"\} `, out)
		assert.Regexp(t, `(?m)^`+name+`_count\{cluster="first"\} `, out)
	}
	assert.Contains(t, out, `kdisc_list_duration_seconds_count{cluster="first"} 1`+"\n")
	assert.Contains(t, out, `kdisc_event_apply_seconds_count{cluster="first"} 1`+"\n")
	assert.Contains(t, out, `kdisc_objects_skipped_total{cluster="first",reason="malformed"} 0`+"\n")
	assert.Contains(t, out, `kdisc_objects_skipped_total{cluster="first",reason="refused"} 0`+"\n")
	// Every sample line is name{labels} number.
	sample := regexp.MustCompile(`^kdisc_[a-z_]+\{cluster="[a-z0-9]*"(,type="[A-Z]+"|,verb="[a-z]+",code="([0-9]{3}|error)"|,reason="[a-z]+"|,mode="[a-z]+"|,le="([0-9.e+-]+|\+Inf)")?\} -?[0-9.e+-]+$`)
	for l := range strings.SplitSeq(strings.TrimSuffix(out, "\n"), "\n") {
		if !strings.HasPrefix(l, "#") {
			assert.Regexp(t, sample, l)
		}
	}
}

func TestCloseStopsWatchers(t *testing.T) {
	a, b := newAPI(t), newAPI(t)
	dir := t.TempDir()
	d, err := kdisc.Start(context.Background(), multiConfig(t, []string{"first", "second"}, a, b), quiet(), kdisc.WithShmDir(dir))
	require.NoError(t, err)
	a.WaitWatchers(1)
	b.WaitWatchers(1)
	require.NoError(t, d.Close())
	a.WaitWatchers(0)
	b.WaitWatchers(0)
	// The tables stay for readers and the next writer.
	assert.FileExists(t, filepath.Join(dir, "kubernetes-first"))
	assert.FileExists(t, filepath.Join(dir, "kubernetes-second"))
}

func TestStartContextCancel(t *testing.T) {
	api := newAPI(t)
	ctx, cancel := context.WithCancel(context.Background())
	d, err := kdisc.Start(ctx, singleConfig(t, api, ""), quiet())
	require.NoError(t, err)
	api.WaitWatchers(1)
	cancel()
	api.WaitWatchers(0)
	require.NoError(t, d.Close())
}

func TestStartFailsOnBadTableDir(t *testing.T) {
	api := newAPI(t)
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	_, err := kdisc.Start(context.Background(), singleConfig(t, api, ""), quiet(), kdisc.WithShmDir(file))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "discovery.kubernetes: table")
}

func TestDefaultShmDir(t *testing.T) {
	dir := kdisc.DefaultShmDir()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		assert.Equal(t, "/dev/shm/kdisc", dir)
	} else {
		assert.Equal(t, filepath.Join(os.TempDir(), "kdisc"), dir)
	}
}

func TestStartCreatesShmDir(t *testing.T) {
	api := newAPI(t)
	dir := filepath.Join(t.TempDir(), "a", "b")
	d := start(t, singleConfig(t, api, ""), kdisc.WithShmDir(dir))
	waitReady(t, d)
	assert.FileExists(t, filepath.Join(dir, "kubernetes"))
}

func TestTLS(t *testing.T) {
	api := fakeapi.New(t, fakeapi.WithTLS(), fakeapi.WithToken(token))
	api.PutEndpoints(endpoints("default", "web", "http", 80, "10.0.0.1"))
	parse := func(service string) *config.Config {
		cfg, err := config.Parse(fmt.Appendf(nil, "discovery:\n  kubernetes:\n    service: {schema: https, host: %s, port: %d%s}\n    client: {token: %s}\n",
			api.Host(), api.Port(), service, token))
		require.NoError(t, err)
		return cfg
	}
	t.Run("verified with ca_file", func(t *testing.T) {
		d := start(t, parse(", ca_file: "+api.CAFile(t)))
		waitReady(t, d)
		assert.Equal(t, []string{"10.0.0.1:80/50"}, hosts(d, "default/web:http"))
	})
	t.Run("unknown authority is not ready and says why", func(t *testing.T) {
		d := start(t, parse(""))
		eventually(t, "x509 reason", func() bool {
			nr := d.NotReady()
			return len(nr) == 1 && strings.Contains(nr[0].Reason, "x509: certificate signed by unknown authority")
		})
		assert.NotContains(t, d.NotReady()[0].Reason, token)
	})
	t.Run("ssl_verify false", func(t *testing.T) {
		d := start(t, parse(", ssl_verify: false"))
		waitReady(t, d)
		assert.Equal(t, []string{"10.0.0.1:80/50"}, hosts(d, "default/web:http"))
	})
}

func TestStartPassesSelectorsAndSlices(t *testing.T) {
	api := newAPI(t)
	for _, s := range []struct{ ns, name, app string }{{"default", "web-abc", "web"}, {"default", "db-abc", "db"}, {"other", "web-xyz", "web"}} {
		api.PutEndpointSlice(&fakeapi.EndpointSlice{
			Metadata: fakeapi.ObjectMeta{Namespace: s.ns, Name: s.name, Labels: map[string]string{
				"kubernetes.io/service-name": strings.Split(s.name, "-")[0], "app": s.app,
			}},
			AddressType: "IPv4",
			Endpoints:   []fakeapi.Endpoint{{Addresses: []string{"10.9.0.1"}}},
			Ports:       []fakeapi.EndpointSlicePort{{Name: fakeapi.Ptr("http"), Port: fakeapi.Ptr(int32(80))}},
		})
	}
	d := start(t, singleConfig(t, api, `    watch_endpoint_slices: true
    namespace_selector: {equal: default}
    label_selector: 'app="web"'
`))
	waitReady(t, d)
	assert.Equal(t, []string{"10.9.0.1:80/50"}, hosts(d, "default/web:http"))
	assert.Nil(t, hosts(d, "default/db:http"), "label selector")
	assert.Nil(t, hosts(d, "other/web:http"), "namespace selector")

	r := api.WaitRequests(fakeapi.IsWatch(fakeapi.EndpointSlicesResource), 1)[0]
	assert.Equal(t, "true", r.Param("sendInitialEvents"), "a streaming list")
	assert.Equal(t, "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", r.Path, "equal: the namespaced path")
	assert.Empty(t, r.Param("fieldSelector"), "no namespace field selector: it loses pages on the real apiserver")
	assert.Equal(t, "app=web", r.Param("labelSelector"), "quotes removed")
	for _, r := range api.Requests() {
		assert.Equal(t, fakeapi.EndpointSlicesResource, r.Resource, "Endpoints are not watched")
	}
}

// A proxy that shuts down while serving: Close while other goroutines look
// up must not fault, and lookups afterwards find nothing (NotReady).
func TestCloseDuringLookups(t *testing.T) {
	api := newAPI(t)
	api.PutEndpoints(endpoints("default", "web", "http", 80, "10.0.0.1"))
	for _, dir := range []string{"", t.TempDir()} {
		var opts []kdisc.Option
		if dir != "" {
			opts = append(opts, kdisc.WithShmDir(dir))
		}
		d, err := kdisc.Start(context.Background(), singleConfig(t, api, ""), opts...)
		require.NoError(t, err)
		waitReady(t, d)
		var wg sync.WaitGroup
		stop := make(chan struct{})
		var looked atomic.Int64
		for range 3 {
			wg.Go(func() {
				buf := make([]kdisc.Node, 0, 4)
				for {
					select {
					case <-stop:
						return
					default:
						buf, _ = d.Nodes(buf[:0], "default/web:http")
						looked.Add(1)
					}
				}
			})
		}
		eventually(t, "lookups to run", func() bool { return looked.Load() > 100 })
		require.NoError(t, d.Close())
		_, answer := d.Lookup(nil, "default/web:http")
		assert.Equal(t, kdisc.NotReady, answer)
		close(stop)
		wg.Wait()
	}
}

// While the apiserver is unreachable, /metrics says the watch is not
// healthy and its last sync ages, and readiness stays: the last known nodes
// are served.
func TestMetricsWhileAPIServerIsDown(t *testing.T) {
	a := newAPI(t)
	a.PutEndpoints(endpoints("default", "web", "http", 80, "10.1.0.1"))
	d := start(t, singleConfig(t, a, ""))
	waitReady(t, d)
	a.WaitWatchers(1)
	a.Fail(fakeapi.AnyRequest, fakeapi.ServiceUnavailable(0), -1)
	a.CloseWatches()
	metrics := func() string {
		var buf bytes.Buffer
		d.WriteMetrics(&buf)
		return buf.String()
	}
	require.Eventually(t, func() bool {
		out := metrics()
		return strings.Contains(out, `kdisc_watch_healthy{cluster=""} 0`+"\n") &&
			strings.Contains(out, `kdisc_apiserver_requests_total{cluster="",verb="watch",code="503"} `)
	}, 10*time.Second, 5*time.Millisecond)
	assert.Regexp(t, `(?m)^kdisc_last_sync_age_seconds\{cluster=""\} [0-9.e+-]+$`, metrics())
	assert.True(t, d.Ready(), "readiness stays once the first full list is done")
	assert.Empty(t, d.NotReady())
}

// Age is the time since the last sync with the apiserver, from the table
// header: in-process and attached alike.
func TestAge(t *testing.T) {
	api := newAPI(t)
	api.PutEndpoints(endpoints("default", "web", "http", 80, "10.0.0.1"))
	dir := t.TempDir()
	d := start(t, singleConfig(t, api, ""), kdisc.WithShmDir(dir))
	waitReady(t, d)
	age, ok := d.Age()
	require.True(t, ok, "synced by the first list")
	assert.Less(t, age, time.Minute)
	r, err := kdisc.Attach(dir, singleConfig(t, api, ""))
	require.NoError(t, err)
	defer r.Close()
	age, ok = r.Age()
	require.True(t, ok)
	assert.Less(t, age, time.Minute)
}

// OnChange names each service whose nodes changed, in-process and
// attached alike, including deletions; nothing else.
func TestOnChange(t *testing.T) {
	api := newAPI(t)
	api.PutEndpoints(endpoints("default", "web", "http", 80, "10.0.0.1"))
	api.PutEndpoints(endpoints("default", "db", "sql", 5432, "10.0.0.5"))
	dir := t.TempDir()
	d := start(t, singleConfig(t, api, ""), kdisc.WithShmDir(dir))
	waitReady(t, d)
	a, err := kdisc.Attach(dir, singleConfig(t, api, ""))
	require.NoError(t, err)
	t.Cleanup(func() { a.Close() })

	for name, disc := range map[string]*kdisc.Discovery{"in-process": d, "attached": a} {
		got, stop := recordChanges(disc)
		changed := func(want ...string) {
			t.Helper()
			eventually(t, fmt.Sprintf("%s: changes %v", name, want), func() bool {
				return slices.Equal(got(), want)
			})
		}
		api.PutEndpoints(endpoints("default", "web", "http", 80, "10.0.0.2"))
		changed("default/web")
		api.PutEndpoints(endpoints("default", "new", "http", 80, "10.0.0.3"))
		changed("default/web", "default/new")
		api.DeleteEndpoints("default", "new")
		changed("default/web", "default/new", "default/new")
		stop()
		api.PutEndpoints(endpoints("default", "web", "http", 80, "10.0.0.1"))
		// Wait until the change is in the table (both readers see it):
		// then "nothing after stop" holds for a change that happened, and
		// the next subscriber, which starts from the table's change log as
		// it is, does not hear this one (it did when the event landed late).
		waitHosts(t, d, "default/web:http", "10.0.0.1:80/50")
		waitHosts(t, a, "default/web:http", "10.0.0.1:80/50")
		assert.Len(t, got(), 3, "%s: nothing after stop", name)
	}
}

// recordChanges subscribes to d.OnChange: got returns the services heard
// so far, in order.
func recordChanges(d *kdisc.Discovery) (got func() []string, stop func()) {
	var mu sync.Mutex
	var heard []string
	stop = d.OnChange(func(service string) {
		mu.Lock()
		heard = append(heard, service)
		mu.Unlock()
	})
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(heard)
	}, stop
}

// A table removed and made anew by the next kdisc run, with as many
// changes as the old one: an attached OnChange must report its services
// (it used to report nothing: both files had generation 1).
func TestOnChangeAfterTableRecreated(t *testing.T) {
	api := newAPI(t)
	api.PutEndpoints(endpoints("default", "web", "http", 80, "10.0.0.1"))
	dir := t.TempDir()
	cfg := singleConfig(t, api, "")
	d := start(t, cfg, kdisc.WithShmDir(dir))
	waitReady(t, d)
	a, err := kdisc.Attach(dir, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { a.Close() })
	got, stop := recordChanges(a)
	defer stop()

	require.NoError(t, d.Close())
	tables, err := filepath.Glob(filepath.Join(dir, "*"))
	require.NoError(t, err)
	require.NotEmpty(t, tables)
	for _, f := range tables {
		require.NoError(t, os.Remove(f))
	}
	api.PutEndpoints(endpoints("default", "web", "http", 80, "10.0.0.2"))
	d2 := start(t, cfg, kdisc.WithShmDir(dir))
	waitReady(t, d2)
	eventually(t, "the attached reader to follow the new table", func() bool {
		h := hosts(a, "default/web:http")
		return len(h) == 1 && strings.HasPrefix(h[0], "10.0.0.2:80/")
	})
	eventually(t, "OnChange to report default/web", func() bool {
		return slices.Contains(got(), "default/web")
	})
}

// An EndpointSlice change that leaves the served nodes as they were (an
// address listed by two slices for a moment) is no change: OnChange must not
// report it (it did: the same bytes were written again and logged).
func TestOnChangeIgnoresSameNodes(t *testing.T) {
	api := newAPI(t)
	slice := func(name string, ips ...string) *fakeapi.EndpointSlice {
		var eps []fakeapi.Endpoint
		for _, ip := range ips {
			eps = append(eps, fakeapi.Endpoint{Addresses: []string{ip}})
		}
		return &fakeapi.EndpointSlice{
			Metadata:    fakeapi.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{"kubernetes.io/service-name": "web"}},
			AddressType: "IPv4",
			Endpoints:   eps,
			Ports:       []fakeapi.EndpointSlicePort{{Name: fakeapi.Ptr("http"), Port: fakeapi.Ptr(int32(80))}},
		}
	}
	api.PutEndpointSlice(slice("web-a", "10.9.0.1"))
	api.PutEndpointSlice(slice("web-b", "10.9.0.2"))
	d := start(t, singleConfig(t, api, "    watch_endpoint_slices: true\n"), kdisc.WithShmDir(t.TempDir()))
	waitReady(t, d)
	got, stop := recordChanges(d)
	defer stop()

	// web-b now also lists web-a's address (a pod moving between slices):
	// the service still serves the same two nodes.
	api.PutEndpointSlice(slice("web-b", "10.9.0.2", "10.9.0.1"))
	// A real change after it: once it is reported, the one before was
	// applied (one watch, in order).
	other := slice("other-a", "10.9.0.3")
	other.Metadata.Labels["kubernetes.io/service-name"] = "other"
	api.PutEndpointSlice(other)
	eventually(t, "OnChange to report default/other", func() bool {
		return slices.Contains(got(), "default/other")
	})
	assert.Equal(t, []string{"default/other"}, got(), "default/web's nodes did not change")
}
