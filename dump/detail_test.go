package dump_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc/dump"
	"github.com/kdisc/kdisc/shm"
)

const webDetail = `[{"host":"10.0.0.1","port":80,"node_name":"n1","zone":"a","target_ref":{"kind":"Pod","name":"web-1","uid":"u1"}},{"host":"10.0.0.2","port":80}]`

func TestTableDetail(t *testing.T) {
	w := table(t, 1<<20)
	require.NoError(t, w.Put("default/web", []shm.Port{{Name: "http", Nodes: []shm.Node{node("10.0.0.1", 80, 50), node("10.0.0.2", 80, 50)}}}))
	require.NoError(t, w.PutDetail("default/web", []byte(webDetail)))
	require.NoError(t, w.Put("default/zero", nil))
	require.NoError(t, w.PutDetail("default/zero", []byte(`[]`)))
	require.NoError(t, w.Put("default/old", []shm.Port{{Name: "http", Nodes: []shm.Node{node("10.0.0.3", 80, 50)}}})) // no detail

	c := dump.Table("", w.Reader())
	assert.NotContains(t, encode(t, c), `"detail"`, "without node_detail the dump is APISIX's")

	c.AddDetail(w.Reader())
	assert.Equal(t, `{"endpoints":[`+
		`{"name":"default/old","value":"{\"http\":[{\"host\":\"10.0.0.3\",\"port\":80,\"weight\":50}]}"},`+
		`{"name":"default/web","value":"{\"http\":[{\"host\":\"10.0.0.1\",\"port\":80,\"weight\":50},{\"host\":\"10.0.0.2\",\"port\":80,\"weight\":50}]}"}],`+
		`"detail":[{"name":"default/web","nodes":`+webDetail+`}]}`, encode(t, c),
		"detail for the services listed, when stored; the values unchanged")

	empty := dump.Table("", table(t, 1<<20).Reader())
	empty.AddDetail(w.Reader())
	assert.Equal(t, `{"endpoints":[],"detail":[]}`, encode(t, empty), "node_detail on: the key is there, however few services")
}

func TestParseDetail(t *testing.T) {
	nodes, err := dump.ParseDetail([]byte(webDetail))
	require.NoError(t, err)
	assert.Equal(t, []dump.NodeDetail{
		{Host: "10.0.0.1", Port: 80, NodeName: "n1", Zone: "a", TargetRef: &dump.TargetRef{Kind: "Pod", Name: "web-1", UID: "u1"}},
		{Host: "10.0.0.2", Port: 80},
	}, nodes)
	_, err = dump.ParseDetail([]byte(`{`))
	assert.Error(t, err)
}
