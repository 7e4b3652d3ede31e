package services

import (
	"bytes"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc/shm"
)

// mapTable is a Table in memory that counts its writes.
type mapTable struct {
	values map[string]string
	puts   int
}

func newMapTable() *mapTable { return &mapTable{values: map[string]string{}} }

func (m *mapTable) Put(key string, ports []shm.Port) error {
	m.puts++
	var b strings.Builder
	for _, p := range ports {
		b.WriteString(p.Name + ":")
		for _, n := range p.Nodes {
			b.WriteString(" " + string(n.AppendHost(nil)) + ":" + strconv.Itoa(int(n.Port)))
		}
		b.WriteString(";")
	}
	m.values[key] = b.String()
	return nil
}
func (m *mapTable) Delete(key string) bool {
	_, ok := m.values[key]
	delete(m.values, key)
	return ok
}
func (m *mapTable) PutDetail(string, []byte) error { return nil }
func (m *mapTable) DeleteDetail(string) bool       { return false }
func (m *mapTable) Keys(fn func(string) bool) {
	for _, k := range slices.Sorted(maps.Keys(m.values)) {
		if !fn(k) {
			return
		}
	}
}

// testSink is a Sink of Endpoints over a mapTable, its counters and its log.
func testSink(t *testing.T) (*Sink, *mapTable, *atomic.Uint64, *bytes.Buffer) {
	t.Helper()
	var skipped, refused, full atomic.Uint64
	var truncated atomic.Int64
	var log bytes.Buffer
	table := newMapTable()
	s := New(Options{Weight: 1, Logger: slog.New(slog.NewTextHandler(&log, nil)),
		Counters: Counters{Skipped: &skipped, Refused: &refused, TableFull: &full, Truncated: &truncated}}, table)
	return s, table, &skipped, &log
}

func endpointsObject(name, rv, ip string) []byte {
	return []byte(`{"metadata":{"name":"` + name + `","namespace":"default","resourceVersion":"` + rv + `"},"subsets":[{"addresses":[{"ip":"` + ip + `"}],"ports":[{"name":"http","port":80}]}]}`)
}

// Add, Update and Delete write the services an object changes, at once,
// and return the object's resourceVersion.
func TestSinkAppliesObjects(t *testing.T) {
	s, table, skipped, _ := testSink(t)
	rv, err := s.Add(endpointsObject("web", "5", "10.0.0.1"), false)
	require.NoError(t, err)
	assert.Equal(t, "5", rv)
	assert.Equal(t, map[string]string{"default/web": "http: 10.0.0.1:80;"}, table.values)
	rv, err = s.Update(endpointsObject("web", "6", "10.0.0.2"), false)
	require.NoError(t, err)
	assert.Equal(t, "6", rv)
	assert.Equal(t, map[string]string{"default/web": "http: 10.0.0.2:80;"}, table.values)
	rv, err = s.Delete(endpointsObject("web", "7", "10.0.0.2"), false)
	require.NoError(t, err)
	assert.Equal(t, "7", rv)
	assert.Empty(t, table.values)
	assert.Zero(t, skipped.Load())
}

// A malformed object is skipped, logged and counted, not returned: the
// stream goes on, and the service keeps its value.
func TestSinkSkipsMalformedObjects(t *testing.T) {
	s, table, skipped, log := testSink(t)
	_, err := s.Add(endpointsObject("web", "5", "10.0.0.1"), false)
	require.NoError(t, err)
	rv, err := s.Update(endpointsObject("web", "6", "not-an-ip"), false)
	require.NoError(t, err)
	assert.Equal(t, "6", rv, "its resourceVersion still moves the watch on")
	assert.Equal(t, uint64(1), skipped.Load())
	assert.Contains(t, log.String(), "skipping malformed object")
	assert.Equal(t, map[string]string{"default/web": "http: 10.0.0.1:80;"}, table.values)
}

// Bytes that hold more than one object are not the object's fault: the
// sink says where the object ended and applies nothing, for the frame
// reader to judge (listwatch's exactObject).
func TestSinkReportsBytesAfterTheObject(t *testing.T) {
	s, table, skipped, _ := testSink(t)
	obj := endpointsObject("web", "5", "10.0.0.1")
	for _, apply := range []func([]byte, bool) (string, error){s.Add, s.Update, s.Delete} {
		_, err := apply(append(slices.Clip(obj), `,"x":1`...), false)
		var te *TrailingError
		require.ErrorAs(t, err, &te)
		assert.Equal(t, len(obj), te.At)
	}
	require.ErrorAs(t, s.ListItem(append(slices.Clip(obj), ` {}`...), false), new(*TrailingError))
	assert.Empty(t, table.values)
	assert.Zero(t, skipped.Load())
}

// A list changes nothing in the table until its end; then it replaces
// the state: what changed is written, what it did not return deleted,
// except the service of a malformed object, which keeps its value.
func TestSinkListReplacesAtItsEnd(t *testing.T) {
	s, table, skipped, _ := testSink(t)
	for _, name := range []string{"web", "gone", "bad", "same"} {
		_, err := s.Add(endpointsObject(name, "1", "10.0.0.1"), false)
		require.NoError(t, err)
	}
	puts := table.puts
	s.BeginList()
	for _, obj := range [][]byte{
		endpointsObject("web", "9", "10.0.0.2"),
		endpointsObject("bad", "9", "not-an-ip"),
		endpointsObject("same", "9", "10.0.0.1"),
		endpointsObject("new", "9", "10.0.0.3"),
	} {
		require.NoError(t, s.ListItem(obj, false))
	}
	assert.Equal(t, puts, table.puts, "nothing written before the list's end")
	assert.Len(t, table.values, 4)
	s.EndList()
	assert.Equal(t, map[string]string{
		"default/web":  "http: 10.0.0.2:80;",
		"default/bad":  "http: 10.0.0.1:80;",
		"default/same": "http: 10.0.0.1:80;",
		"default/new":  "http: 10.0.0.3:80;",
	}, table.values)
	assert.Equal(t, puts+2, table.puts, "only what changed is written")
	assert.Equal(t, uint64(1), skipped.Load())
	// The malformed object's last good version was carried: its deletion
	// still lands.
	_, err := s.Delete(endpointsObject("bad", "10", "10.0.0.1"), false)
	require.NoError(t, err)
	assert.NotContains(t, table.values, "default/bad")
}
