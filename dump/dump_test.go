package dump_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc/dump"
	"github.com/kdisc/kdisc/shm"
)

func node(host string, port uint16, weight uint32) shm.Node {
	if a, err := netip.ParseAddr(host); err == nil {
		return shm.Node{Addr: a, Port: port, Weight: weight}
	}
	return shm.Node{Name: host, Port: port, Weight: weight}
}

// table creates an in-memory table of size bytes, closed at the end of
// the test.
func table(t *testing.T, size int64) *shm.Writer {
	t.Helper()
	w, err := shm.Create("", size)
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close() })
	return w
}

// encode writes v as the control API and the CLI do: HTML escaping off.
func encode(t *testing.T, v any) string {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	require.NoError(t, enc.Encode(v))
	return strings.TrimSuffix(b.String(), "\n")
}

func TestAppendValueContractShape(t *testing.T) {
	ports := []shm.Port{{Name: "https", Nodes: []shm.Node{node("172.18.164.170", 6443, 50)}}}
	assert.Equal(t, `{"https":[{"host":"172.18.164.170","port":6443,"weight":50}]}`, string(dump.AppendValue(nil, ports)))
}

func TestAppendValue(t *testing.T) {
	tests := []struct {
		name  string
		ports []shm.Port
		want  string
	}{
		{"no ports", nil, `{}`},
		{"port without nodes", []shm.Port{{Name: "http"}}, `{"http":[]}`},
		{
			"several ports in the order given",
			[]shm.Port{
				{Name: "80", Nodes: []shm.Node{node("10.0.0.1", 80, 0)}},
				{Name: "http", Nodes: []shm.Node{node("10.5.10.109", 3306, 50), node("10.5.10.110", 3306, 50)}},
			},
			`{"80":[{"host":"10.0.0.1","port":80,"weight":0}],"http":[{"host":"10.5.10.109","port":3306,"weight":50},{"host":"10.5.10.110","port":3306,"weight":50}]}`,
		},
		{
			"IPv6 compressed without brackets, FQDN as written",
			[]shm.Port{{Name: "grpc", Nodes: []shm.Node{node("fd00:0:0::10", 9000, 7), node("web-0.web.default.svc.cluster.local", 9000, 7)}}},
			`{"grpc":[{"host":"fd00::10","port":9000,"weight":7},{"host":"web-0.web.default.svc.cluster.local","port":9000,"weight":7}]}`,
		},
		{
			"max port and weight",
			[]shm.Port{{Name: "p", Nodes: []shm.Node{node("1.2.3.4", 65535, 4294967295)}}},
			`{"p":[{"host":"1.2.3.4","port":65535,"weight":4294967295}]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := dump.AppendValue(nil, tt.ports)
			assert.Equal(t, tt.want, string(got))
			assert.True(t, json.Valid(got))
		})
	}
}

func TestAppendValueAppends(t *testing.T) {
	b := []byte("prefix:")
	b = dump.AppendValue(b, []shm.Port{{Name: "a", Nodes: []shm.Node{node("10.0.0.1", 1, 1)}}})
	assert.Equal(t, `prefix:{"a":[{"host":"10.0.0.1","port":1,"weight":1}]}`, string(b))
}

func TestAppendValueEscapes(t *testing.T) {
	names := []string{`q"uote`, `back\slash`, "tab\tnew\nline\x00nul\x1f", "ünïcode-名前", "</script>&"}
	ports := make([]shm.Port, len(names))
	for i, n := range names {
		ports[i] = shm.Port{Name: n, Nodes: []shm.Node{node("10.0.0.1", uint16(i+1), 50)}}
	}
	got := dump.AppendValue(nil, ports)
	require.True(t, json.Valid(got), "%s", got)
	assert.Contains(t, string(got), `"q\"uote":`)
	assert.Contains(t, string(got), `"back\\slash":`)
	assert.Contains(t, string(got), `"tab\u0009new\u000aline\u0000nul\u001f":`)

	var decoded map[string][]struct {
		Host   string `json:"host"`
		Port   int    `json:"port"`
		Weight int    `json:"weight"`
	}
	require.NoError(t, json.Unmarshal(got, &decoded))
	require.Len(t, decoded, len(names))
	for i, n := range names {
		require.Len(t, decoded[n], 1, "port %q", n)
		assert.Equal(t, i+1, decoded[n][0].Port)
	}
}

func TestTableSortedAndComplete(t *testing.T) {
	w := table(t, 4<<20)
	const n = 5000
	// Put in an order that is neither sorted nor hash order.
	for i := range n {
		k := (i * 7919) % n
		key := fmt.Sprintf("ns-%d/svc-%05d", k%13, k)
		ports := []shm.Port{{Name: "http", Nodes: []shm.Node{node(fmt.Sprintf("10.%d.%d.%d", k>>16&255, k>>8&255, k&255), 8080, 50)}}}
		require.NoError(t, w.Put(key, ports))
	}
	c := dump.Table("", w.Reader())
	assert.Empty(t, c.ID)
	require.Len(t, c.Endpoints, n, "nothing is truncated")
	seen := map[string]bool{}
	for i, e := range c.Endpoints {
		if i > 0 {
			require.Less(t, c.Endpoints[i-1].Name, e.Name, "sorted by name")
		}
		seen[e.Name] = true
		require.True(t, json.Valid([]byte(e.Value)), e.Value)
	}
	assert.Len(t, seen, n)
	k := 4242
	i := indexOf(c.Endpoints, fmt.Sprintf("ns-%d/svc-%05d", k%13, k))
	require.GreaterOrEqual(t, i, 0)
	assert.Equal(t, `{"http":[{"host":"10.0.16.146","port":8080,"weight":50}]}`, c.Endpoints[i].Value)

	// The encoded dump lists them all as well.
	out := encode(t, dump.Dump{Endpoints: []dump.Cluster{c}, Config: map[string]any{}})
	assert.Equal(t, n, strings.Count(out, `"name":`))
}

func indexOf(es []dump.Entry, name string) int {
	for i, e := range es {
		if e.Name == name {
			return i
		}
	}
	return -1
}

func TestTableEmpty(t *testing.T) {
	c := dump.Table("first", table(t, 64<<10).Reader())
	assert.Equal(t, `{"id":"first","endpoints":[]}`, encode(t, c), "an empty table is an empty array, not null")
}

func TestDumpContractShape(t *testing.T) {
	w := table(t, 64<<10)
	require.NoError(t, w.Put("default/kubernetes", []shm.Port{{Name: "https", Nodes: []shm.Node{node("172.18.164.170", 6443, 50)}}}))
	t.Run("multi", func(t *testing.T) {
		d := dump.Dump{
			Endpoints: []dump.Cluster{dump.Table("first", w.Reader())},
			Config:    []any{map[string]any{"id": "first", "client": map[string]string{"token": "<redacted>"}}},
		}
		assert.Equal(t,
			`{"endpoints":[{"id":"first","endpoints":[{"name":"default/kubernetes","value":"{\"https\":[{\"host\":\"172.18.164.170\",\"port\":6443,\"weight\":50}]}"}]}],"config":[{"client":{"token":"<redacted>"},"id":"first"}]}`,
			encode(t, d))
	})
	t.Run("single", func(t *testing.T) {
		d := dump.Dump{
			Endpoints: []dump.Cluster{dump.Table("", w.Reader())},
			Config:    map[string]any{"default_weight": 50},
		}
		assert.Equal(t,
			`{"endpoints":[{"endpoints":[{"name":"default/kubernetes","value":"{\"https\":[{\"host\":\"172.18.164.170\",\"port\":6443,\"weight\":50}]}"}]}],"config":{"default_weight":50}}`,
			encode(t, d))
	})
}

func TestTableValueRoundTrips(t *testing.T) {
	w := table(t, 64<<10)
	ports := []shm.Port{
		{Name: "http", Nodes: []shm.Node{node("10.0.0.1", 80, 50), node("10.0.0.2", 80, 50)}},
		{Name: "metrics", Nodes: []shm.Node{node("10.0.0.1", 9090, 50)}},
	}
	require.NoError(t, w.Put("default/web", ports))
	c := dump.Table("", w.Reader())
	require.Len(t, c.Endpoints, 1)
	assert.Equal(t, string(dump.AppendValue(nil, ports)), c.Endpoints[0].Value)
}
