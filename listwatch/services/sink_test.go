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
	puts   int    // Puts that changed a value
	calls  int    // every Put
	scans  int    // Keys calls that went past the first key
	refuse string // a key whose Put finds the table full
}

func newMapTable() *mapTable { return &mapTable{values: map[string]string{}} }

// Put counts only a write that changes the value, as *shm.Writer
// writes only those (Table).
func (m *mapTable) Put(key string, ports []shm.Port) error {
	m.calls++
	if key == m.refuse {
		return &shm.FullError{Key: key, Need: 1, Size: 1}
	}
	var b strings.Builder
	for _, p := range ports {
		b.WriteString(p.Name + ":")
		for _, n := range p.Nodes {
			b.WriteString(" " + string(n.AppendHost(nil)) + ":" + strconv.Itoa(int(n.Port)))
		}
		b.WriteString(";")
	}
	if v, ok := m.values[key]; !ok || v != b.String() {
		m.puts++
		m.values[strings.Clone(key)] = b.String() // key is the caller's until Put returns
	}
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
	for i, k := range slices.Sorted(maps.Keys(m.values)) {
		if i == 1 {
			m.scans++
		}
		if !fn(k) {
			return
		}
	}
}

// newCounters returns Counters that count into fresh variables.
func newCounters() Counters {
	return Counters{Skipped: new(atomic.Uint64), Refused: new(atomic.Uint64), TableFull: new(atomic.Uint64), Truncated: new(atomic.Int64)}
}

// testSink is a Sink of Endpoints over a mapTable, its counters and its log.
func testSink(t *testing.T) (*Sink, *mapTable, *atomic.Uint64, *bytes.Buffer) {
	return testSinkOf(t, false)
}

// testSinkOf is testSink, of EndpointSlices when slices.
func testSinkOf(t *testing.T, slices bool) (*Sink, *mapTable, *atomic.Uint64, *bytes.Buffer) {
	t.Helper()
	var log bytes.Buffer
	table := newMapTable()
	counters := newCounters()
	s := New(Options{EndpointSlices: slices, Weight: 1, Logger: slog.New(slog.NewTextHandler(&log, nil)), Counters: counters}, table)
	return s, table, counters.Skipped, &log
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

// A list of Endpoints writes each service as it comes (each object is a
// service whole, so a reader sees its last value or its listed one) and,
// at its end, deletes what it did not return, except the service of a
// malformed object, which keeps its value. A service listed unchanged is
// not written again.
func TestSinkListOfEndpointsWritesAsItGoes(t *testing.T) {
	s, table, skipped, _ := testSink(t)
	for _, name := range []string{"web", "gone", "bad", "same"} {
		_, err := s.Add(endpointsObject(name, "1", "10.0.0.1"), false)
		require.NoError(t, err)
	}
	puts := table.puts
	s.BeginList()
	require.NoError(t, s.ListItem(endpointsObject("web", "9", "10.0.0.2"), false))
	assert.Equal(t, "http: 10.0.0.2:80;", table.values["default/web"], "written as it comes")
	for _, obj := range [][]byte{
		endpointsObject("bad", "9", "not-an-ip"),
		endpointsObject("same", "9", "10.0.0.1"),
		endpointsObject("new", "9", "10.0.0.3"),
	} {
		require.NoError(t, s.ListItem(obj, false))
	}
	assert.Contains(t, table.values, "default/gone", "deleted only at the list's end")
	s.EndList()
	assert.Equal(t, map[string]string{
		"default/web":  "http: 10.0.0.2:80;",
		"default/bad":  "http: 10.0.0.1:80;",
		"default/same": "http: 10.0.0.1:80;",
		"default/new":  "http: 10.0.0.3:80;",
	}, table.values)
	assert.Equal(t, puts+2, table.puts, "only what changed is written")
	assert.Equal(t, uint64(1), skipped.Load())
	// The malformed object's service was kept; its deletion still lands.
	_, err := s.Delete(endpointsObject("bad", "10", "10.0.0.1"), false)
	require.NoError(t, err)
	assert.NotContains(t, table.values, "default/bad")

	// A list begun again before its end starts afresh: what only the
	// abandoned list found is deleted at the end of the one that ends.
	s.BeginList()
	require.NoError(t, s.ListItem(endpointsObject("web", "11", "10.0.0.2"), false))
	s.BeginList()
	require.NoError(t, s.ListItem(endpointsObject("new", "11", "10.0.0.3"), false))
	s.EndList()
	assert.Equal(t, map[string]string{"default/new": "http: 10.0.0.3:80;"}, table.values)
}

func sliceObject(name, service, rv, ip string) []byte {
	return []byte(`{"metadata":{"name":"` + name + `","namespace":"default","resourceVersion":"` + rv + `","labels":{"kubernetes.io/service-name":"` + service +
		`"}},"addressType":"IPv4","endpoints":[{"addresses":["` + ip + `"],"conditions":{"ready":true}}],"ports":[{"name":"http","port":80}]}`)
}

// A list of EndpointSlices changes nothing in the table until its end (a
// service merges slices that may come far apart); then it replaces the
// state: what changed is written, what it did not return deleted, except
// the service of a malformed object, which keeps its value.
func TestSinkListOfSlicesReplacesAtItsEnd(t *testing.T) {
	s, table, skipped, _ := testSinkOf(t, true)
	for _, name := range []string{"web", "gone", "bad", "same"} {
		_, err := s.Add(sliceObject(name+"-a", name, "1", "10.0.0.1"), false)
		require.NoError(t, err)
	}
	puts := table.puts
	s.BeginList()
	for _, obj := range [][]byte{
		sliceObject("web-a", "web", "9", "10.0.0.2"),
		sliceObject("bad-a", "bad", "9", "not-an-ip"),
		sliceObject("same-a", "same", "9", "10.0.0.1"),
		sliceObject("new-a", "new", "9", "10.0.0.3"),
		sliceObject("new-b", "new", "9", "10.0.0.4"),
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
		"default/new":  "http: 10.0.0.3:80 10.0.0.4:80;",
	}, table.values)
	assert.Equal(t, puts+2, table.puts, "only what changed is written")
	assert.Equal(t, uint64(1), skipped.Load())
	// The malformed object's last good version was carried: its deletion
	// still lands.
	_, err := s.Delete(sliceObject("bad-a", "bad", "10", "10.0.0.1"), false)
	require.NoError(t, err)
	assert.NotContains(t, table.values, "default/bad")
}

// An Endpoints object that changes nothing kdisc serves (a pod joining
// notReadyAddresses, a new annotation, a resourceVersion) is not given to
// the table again; one that does is, and so is one deleted and added back.
func TestSinkSkipsUnchangedEndpoints(t *testing.T) {
	s, table, _, _ := testSink(t)
	_, err := s.Add(endpointsObject("web", "1", "10.0.0.1"), false)
	require.NoError(t, err)
	require.Equal(t, 1, table.calls)
	_, err = s.Update(endpointsObject("web", "2", "10.0.0.1"), false)
	require.NoError(t, err)
	assert.Equal(t, 1, table.calls, "unchanged: not written")
	_, err = s.Update(endpointsObject("web", "3", "10.0.0.2"), false)
	require.NoError(t, err)
	assert.Equal(t, 2, table.calls, "changed: written")
	_, err = s.Delete(endpointsObject("web", "4", "10.0.0.2"), false)
	require.NoError(t, err)
	_, err = s.Add(endpointsObject("web", "5", "10.0.0.2"), false)
	require.NoError(t, err)
	assert.Equal(t, 3, table.calls, "deleted, then added as it was: written")
	assert.Equal(t, map[string]string{"default/web": "http: 10.0.0.2:80;"}, table.values)
}

// A keySet has exactly the keys added to it, once sealed.
func TestKeySetHasWhatWasAdded(t *testing.T) {
	var k keySet
	for i := range 2000 {
		if i%3 != 0 {
			k.add("ns-" + strconv.Itoa(i%7) + "/svc-" + strconv.Itoa(i))
		}
	}
	k.add("ns-1/svc-1") // twice
	k.seal()
	for i := range 2000 {
		key := "ns-" + strconv.Itoa(i%7) + "/svc-" + strconv.Itoa(i)
		require.Equal(t, i%3 != 0, k.has(key), key)
	}
	assert.False(t, k.has(""))
	assert.False(t, (&keySet{}).has("a"))
}

// A list that begins on an empty table (a new table's first list) can
// find nothing stale: of Endpoints it keeps no list of keys, and neither
// kind scans the table at its end. A list that begins with a service in
// the table does both, and deletes the service if it did not find it.
func TestSinkFirstListLooksForNothingStale(t *testing.T) {
	for _, slices := range []bool{false, true} {
		s, table, _, _ := testSinkOf(t, slices)
		obj := endpointsObject("web", "1", "10.0.0.1")
		other := endpointsObject("other", "1", "10.0.0.2")
		if slices {
			obj, other = sliceObject("web-a", "web", "1", "10.0.0.1"), sliceObject("other-a", "other", "1", "10.0.0.2")
		}
		s.BeginList()
		require.NoError(t, s.ListItem(obj, false))
		require.NoError(t, s.ListItem(other, false))
		assert.Nil(t, s.listed, "nothing could be stale")
		s.EndList()
		assert.Equal(t, map[string]string{"default/web": "http: 10.0.0.1:80;", "default/other": "http: 10.0.0.2:80;"}, table.values)
		assert.Zero(t, table.scans, "slices=%v: no scan for stale services", slices)
		s.BeginList()
		require.NoError(t, s.ListItem(other, false))
		if !slices {
			assert.NotNil(t, s.listed, "the table holds services")
		}
		s.EndList()
		assert.Equal(t, map[string]string{"default/other": "http: 10.0.0.2:80;"}, table.values, "slices=%v: a relist that did not find web deletes it", slices)
		assert.NotZero(t, table.scans)
	}
}

// A service a full table refused is stored, as it was refused, once a
// delete frees space: of Endpoints the table has no copy of it, so the
// Sink keeps it with the refusal, through other services' events.
func TestSinkStoresRefusedEndpointsAsTheyWere(t *testing.T) {
	s, table, _, _ := testSink(t)
	_, err := s.Add(endpointsObject("gone", "1", "10.0.0.9"), false)
	require.NoError(t, err)
	table.refuse = "default/web"
	_, err = s.Add(endpointsObject("web", "2", "fd00::1"), false)
	require.NoError(t, err)
	require.NotContains(t, table.values, "default/web")
	table.refuse = ""
	_, err = s.Add(endpointsObject("other", "3", "10.0.0.2"), false) // the Sink's scratch reused
	require.NoError(t, err)
	_, err = s.Delete(endpointsObject("gone", "4", "10.0.0.9"), false)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"default/web": "http: fd00::1:80;", "default/other": "http: 10.0.0.2:80;"}, table.values)
	assert.Empty(t, s.unstored)
}
