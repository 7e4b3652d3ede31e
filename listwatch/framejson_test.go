package listwatch

import (
	"bytes"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc/listwatch/services"
	"github.com/kdisc/kdisc/shm"
)

// endpointsJSON and sliceJSON are objects as the apiserver writes them
// (the fixtures of listwatch/services' decoder tests).
const endpointsJSON = `{"kind":"Endpoints","apiVersion":"v1","metadata":{"name":"plat-dev","namespace":"default","uid":"6b0c","resourceVersion":"4242","creationTimestamp":"2026-11-25T10:00:00Z","labels":{"app":"plat"},"annotations":{"endpoints.kubernetes.io/last-change-trigger-time":"2026-11-25T10:00:00Z"},"managedFields":[{"manager":"kube-controller-manager","operation":"Update","apiVersion":"v1","time":"2026-11-25T10:00:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:subsets":{}}}]},"subsets":[{"addresses":[{"ip":"10.5.10.110","nodeName":"n1","targetRef":{"kind":"Pod","namespace":"default","name":"p1","uid":"u1"}},{"ip":"10.5.10.109"}],"notReadyAddresses":[{"ip":"10.5.10.200"}],"ports":[{"name":"port","port":3306,"protocol":"TCP"}]}]}`

const sliceJSON = `{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"name":"web-abc","namespace":"shop","resourceVersion":"77","labels":{"endpointslice.kubernetes.io/managed-by":"endpointslice-controller.k8s.io","kubernetes.io/service-name":"web"},"managedFields":[]},"addressType":"IPv6","endpoints":[{"addresses":["fd00::2"],"conditions":{"ready":true,"serving":true,"terminating":false},"nodeName":"n1"},{"addresses":["fd00::3"],"conditions":{}},{"addresses":["fd00::4"],"conditions":{"ready":false}},{"addresses":["fd00::5"],"conditions":{"ready":null}}],"ports":[{"name":"","port":8080,"protocol":"TCP"},{"name":"metrics","port":9090,"protocol":"TCP","appProtocol":"http"}]}`

// recordStore is a Store that keeps what was written, as text.
type recordStore struct{ values, details map[string]string }

func newRecordStore() *recordStore {
	return &recordStore{values: map[string]string{}, details: map[string]string{}}
}

func (r *recordStore) Put(key string, ports []shm.Port) error {
	r.values[strings.Clone(key)] = portsString(ports) // key is the caller's until Put returns
	return nil
}
func (r *recordStore) Delete(key string) bool {
	_, ok := r.values[key]
	delete(r.values, key)
	return ok
}
func (r *recordStore) PutDetail(key string, detail []byte) error {
	r.details[strings.Clone(key)] = string(detail)
	return nil
}
func (r *recordStore) DeleteDetail(key string) bool {
	_, ok := r.details[key]
	delete(r.details, key)
	return ok
}
func (r *recordStore) Keys(fn func(string) bool) {
	for k := range r.values {
		if !fn(k) {
			return
		}
	}
}
func (r *recordStore) SetReady(bool)       {}
func (r *recordStore) SetSynced(time.Time) {}

// String is every service written, sorted: key=ports detail;
func (r *recordStore) String() string {
	keys := slices.Sorted(maps.Keys(r.values))
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "=" + r.values[k] + " " + r.details[k] + ";")
	}
	return b.String()
}

// readObject hands raw to a fresh watcher of o as the loop hands over an
// event's object (of type typ), and says what that did: the object's
// resourceVersion and the services written, or "malformed"; the error is
// the stream's (errMisframed).
func readObject(o Options, typ string, raw []byte, proto bool) (string, error) {
	st := newRecordStore()
	o.Store = st
	w := New(o)
	var rv resourceVersion
	if err := w.apply(&Event{Type: typ, Object: raw, Proto: proto}, &rv); err != nil {
		return "", err
	}
	if w.Stats().Skipped.Load() > 0 {
		return "malformed", nil
	}
	return rv.String() + " " + st.String(), nil
}

// listBody is a LIST page the way the apiserver writes it: items without
// kind, metadata before items.
func listBody(cont string, items ...string) string {
	return `{"kind":"EndpointsList","apiVersion":"v1","metadata":{"resourceVersion":"99","continue":"` + cont +
		`","remainingItemCount":3},"items":[` + strings.Join(items, ",") + `]}`
}

func TestReadListStreams(t *testing.T) {
	body := listBody("tok", endpointsJSON, `{"metadata":{"name":"x","namespace":"y"},"subsets":[{"ports":[{"port":"bad"}]}]}`, endpointsJSON)
	want, err := readObject(Options{}, "ADDED", []byte(endpointsJSON), false)
	require.NoError(t, err)
	require.Contains(t, want, "default/plat-dev=")
	for name, r := range map[string]func() io.Reader{
		"whole":    func() io.Reader { return strings.NewReader(body) },
		"one byte": func() io.Reader { return iotest.OneByteReader(strings.NewReader(body)) },
		"halves":   func() io.Reader { return iotest.HalfReader(strings.NewReader(body)) },
	} {
		t.Run(name, func(t *testing.T) {
			var objects []string
			var bad int
			page, err := readList(r(), func(raw []byte) {
				s, err := readObject(Options{}, "ADDED", raw, false)
				require.NoError(t, err)
				if s == "malformed" {
					bad++
					return
				}
				objects = append(objects, s)
			})
			require.NoError(t, err)
			assert.Equal(t, listPage{resourceVersion: "99", continueToken: "tok"}, page)
			assert.Equal(t, []string{want, want}, objects)
			assert.Equal(t, 1, bad, "the malformed item is skipped, the ones after it still read")
		})
	}
}

func TestReadListErrors(t *testing.T) {
	_, err := readList(strings.NewReader(`{"items":[]}`), func([]byte) {})
	assert.ErrorContains(t, err, "resourceVersion")
	_, err = readList(strings.NewReader(listBody("", endpointsJSON)[:120]), func([]byte) {})
	assert.Error(t, err, "a truncated list is an error, not a short list")
}

func TestEventReader(t *testing.T) {
	stream := `{"type":"ADDED","object":` + endpointsJSON + "}\n" +
		`{"object":{"kind":"Endpoints","apiVersion":"v1","metadata":{"resourceVersion":"100"}},"type":"BOOKMARK"}` + "\n" +
		`{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (5)","reason":"Expired","code":410}}` + "\n"
	er := newEventReader(iotest.OneByteReader(strings.NewReader(stream)))
	var ev Event
	require.NoError(t, er.next(&ev))
	assert.Equal(t, "ADDED", ev.Type)
	assert.JSONEq(t, endpointsJSON, string(ev.Object))
	require.NoError(t, er.next(&ev))
	assert.Equal(t, "BOOKMARK", ev.Type, "field order does not matter")
	rv, end, err := services.ReadBookmark(ev.Object, ev.Proto)
	require.NoError(t, err)
	assert.Equal(t, "100", rv)
	assert.False(t, end)
	require.NoError(t, er.next(&ev))
	assert.Equal(t, "ERROR", ev.Type)
	assert.Equal(t, io.EOF, er.next(&ev), "a clean end between events")
}

func TestEventReaderBrokenStream(t *testing.T) {
	full := `{"type":"ADDED","object":` + endpointsJSON + "}\n"
	er := newEventReader(strings.NewReader(full[:len(full)/2]))
	var ev Event
	err := er.next(&ev)
	require.Error(t, err)
	assert.NotEqual(t, io.EOF, err, "a stream cut inside an event is not a clean end")
}

// The shortcut for event lines (the object runs to the line's last brace)
// reads exactly what the general path reads, also when members follow the
// object; an event with a second object member (duplicate names, which
// the general path resolves as the last one) is refused, never applied
// as the wrong object.
func TestEventShortcutReadsWhatTheGeneralPathReads(t *testing.T) {
	read := func(raw []byte) (string, error) { return readObject(Options{}, "ADDED", raw, false) }
	for name, tc := range map[string]struct {
		line     string
		shortcut bool // the line takes the shortcut
		refused  bool // its object is refused through the shortcut
	}{
		"object last":              {`{"type":"MODIFIED","object":` + endpointsJSON + `}`, true, false},
		"a member after":           {`{"type":"MODIFIED","object":` + endpointsJSON + `,"x":{"a":"}\"}"}}`, true, false},
		"members after, spaces":    {`{"type":"DELETED","object":` + endpointsJSON + ` , "y":"z" , "x" : { } } `, true, false},
		"an array after":           {`{"type":"ADDED","object":` + endpointsJSON + `,"x":[1,{}]}`, false, false},
		"type after object":        {`{"object":` + endpointsJSON + `,"type":"ADDED"}`, false, false},
		"a second object after":    {`{"type":"ADDED","object":` + endpointsJSON + `,"object":{"metadata":{"name":"b","namespace":"n"},"subsets":[{"addresses":[{"ip":"10.0.0.9"}]}]}}`, true, true},
		"a second type after":      {`{"type":"ADDED","object":` + endpointsJSON + `,"type":"DELETED","x":{}}`, true, true},
		"bookmarks never shortcut": {`{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"9"}}}`, false, false},
	} {
		t.Run(name, func(t *testing.T) {
			er := newEventReader(strings.NewReader(""))
			var general Event
			n, err := er.decode([]byte(tc.line), &general)
			require.NoError(t, err)
			require.Equal(t, len(strings.TrimRight(tc.line, " ")), n)
			want, wantErr := "", error(nil)
			if general.Type != "BOOKMARK" {
				want, wantErr = read(bytes.Clone(general.Object))
				require.NoError(t, wantErr)
			}
			var short Event
			_, ok := er.shortcut([]byte(tc.line), &short)
			require.Equal(t, tc.shortcut, ok)
			if !ok {
				return
			}
			got, err := read(short.Object)
			if tc.refused {
				assert.Error(t, err, "refused, not read as %s", got)
				return
			}
			assert.Equal(t, general.Type, short.Type)
			require.NoError(t, err)
			assert.Equal(t, want, got)
		})
	}
}

// Events written one after another on one line (a JSON stream need not be
// newline-delimited) are read one by one, as when each ends its line: the
// line shortcut must not take the rest of the line for the first object.
func TestEventsOnOneLineAreReadOneByOne(t *testing.T) {
	a := `{"type":"MODIFIED","object":` + endpointsJSON + `}`
	b := `{"type":"DELETED","object":{"metadata":{"name":"x","namespace":"y"}}}`
	want := readStream(t, strings.NewReader(a+"\n"+b+"\n"), 1<<20)
	require.Len(t, want.events, 2)
	for _, sep := range []string{"", " ", "\t", "\r"} {
		got := readStream(t, strings.NewReader(a+sep+b+"\n"), 1<<20)
		assert.True(t, equalStream(want, got), "separated by %q: %d events", sep, len(got.events))
	}
}
