package listwatch

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"
	"unicode/utf8"

	"github.com/kdisc/kdisc/internal/fakeapi"
)

// Fuzz targets for the frame readers a kdisc process runs over whatever
// the apiserver (or anything between it and kdisc) sends: list pages and
// watch streams cut into items and events (the object decoder's targets
// are listwatch/services'). They are seeded from the real apiserver
// answers in testdata/kube/captured and the fakeapi fixtures.

// chunkReader returns data in chunks whose lengths come from cuts (each
// byte is a chunk length minus one, reused cyclically; no cuts: one read),
// the way a network connection may split a body anywhere.
type chunkReader struct {
	data []byte
	cuts []byte
	i    int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := len(r.data)
	if len(r.cuts) > 0 {
		n = min(n, int(r.cuts[r.i%len(r.cuts)])+1)
		r.i++
	}
	n = copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

type listResult struct {
	page  listPage
	items []string
	err   bool
}

func readListAll(t *testing.T, r io.Reader, size int) listResult {
	var res listResult
	total := 0
	page, err := readList(r, func(raw []byte) {
		total += len(raw)
		res.items = append(res.items, string(raw))
	})
	if len(res.items) > size || total > size {
		t.Fatalf("readList returned %d items, %d bytes, from %d bytes", len(res.items), total, size)
	}
	res.page, res.err = page, err != nil
	return res
}

// FuzzReadList: the LIST page decoder never panics, never returns more
// items (or item bytes) than it was given, and reads a body split into
// arbitrary chunks exactly as in one piece. A body it refuses is refused
// however it is split; the items it handed out before refusing may differ
// (testdata/fuzz/FuzzReadList/a2e16ee40d635fa5: garbage where json-iterator
// gets one item further with a short first read), which is harmless: a
// LIST that fails is discarded whole and retried.
func FuzzReadList(f *testing.F) {
	for _, b := range fakeapi.SeedFiles(f, "../testdata/kube/captured/*-list.json", "../testdata/fakeapi/*.json") {
		f.Add(b, []byte(nil))
		f.Add(b, []byte{0})
	}
	f.Add([]byte(listBody("tok", endpointsJSON, sliceJSON)), []byte{3, 200, 17})
	f.Add([]byte(`{"items":[1,2,3],"metadata":{"resourceVersion":"1"}}`), []byte{1})
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		whole := readListAll(t, bytes.NewReader(data), len(data))
		split := readListAll(t, &chunkReader{data: data, cuts: cuts}, len(data))
		if !equalList(whole, split) {
			t.Fatalf("read whole: %+v\nread in chunks %v: %+v", whole, cuts, split)
		}
	})
}

func equalList(a, b listResult) bool {
	if a.err && b.err {
		return true // discarded whole, whatever came before the error
	}
	if a.page != b.page || a.err != b.err || len(a.items) != len(b.items) {
		return false
	}
	for i := range a.items {
		if a.items[i] != b.items[i] {
			return false
		}
	}
	return true
}

type streamResult struct {
	events []Event
	eof    bool // ended cleanly between events
}

func readStream(t *testing.T, r io.Reader, size int) streamResult {
	er := newEventReader(r)
	var res streamResult
	for {
		var ev Event
		err := er.next(&ev)
		if err != nil {
			res.eof = err == io.EOF
			return res
		}
		res.events = append(res.events, Event{Type: ev.Type, Object: bytes.Clone(ev.Object)})
		if len(res.events) > size {
			t.Fatalf("%d events from %d bytes", len(res.events), size)
		}
	}
}

func equalStream(a, b streamResult) bool {
	if a.eof != b.eof || len(a.events) != len(b.events) {
		return false
	}
	for i := range a.events {
		if a.events[i].Type != b.events[i].Type || !bytes.Equal(a.events[i].Object, b.events[i].Object) {
			return false
		}
	}
	return true
}

func watchStreams(tb testing.TB) [][]byte {
	streams := fakeapi.SeedFiles(tb, "../testdata/kube/captured/*.jsonl")
	return append(streams, []byte(`{"type":"ADDED","object":`+endpointsJSON+"}\n"+
		`{"object":{"kind":"Endpoints","apiVersion":"v1","metadata":{"resourceVersion":"100"}},"type":"BOOKMARK"}`+"\n"+
		`{"type":"MODIFIED","object":`+sliceJSON+"}\r\n\n"+
		`{"type":"DELETED","object":{"metadata":{"name":"a\u00e9\"b","namespace":"n"}},"extra":[1,2.5e3,true,null]}`+"\n"))
}

// FuzzWatchStream: the watch-stream framer/decoder gives the same events,
// and the same kind of end (clean between events or not), whether the
// stream arrives in one read or split at fuzzer-chosen points; arbitrary
// bytes never make it panic.
func FuzzWatchStream(f *testing.F) {
	for _, s := range watchStreams(f) {
		f.Add(s, []byte(nil))
		f.Add(s, []byte{0})
		f.Add(s, []byte{100, 2, 255, 0, 30})
	}
	f.Add([]byte("{}\n{\"type\":1}"), []byte{0})
	f.Add([]byte("not json"), []byte(nil))
	f.Fuzz(func(t *testing.T, stream, cuts []byte) {
		whole := readStream(t, bytes.NewReader(stream), len(stream))
		split := readStream(t, &chunkReader{data: stream, cuts: cuts}, len(stream))
		if !equalStream(whole, split) {
			t.Fatalf("read whole: %d events, eof %v\nread in chunks %v: %d events, eof %v",
				len(whole.events), whole.eof, cuts, len(split.events), split.eof)
		}
	})
}

// TestWatchStreamEverySplit reads valid multi-event streams split in two
// at every byte boundary: the events are those of one read.
func TestWatchStreamEverySplit(t *testing.T) {
	for i, s := range watchStreams(t) {
		want := readStream(t, bytes.NewReader(s), len(s))
		if !want.eof || len(want.events) == 0 {
			t.Fatalf("stream %d is not a valid stream: %d events, eof %v", i, len(want.events), want.eof)
		}
		for at := range len(s) + 1 {
			r := io.MultiReader(bytes.NewReader(s[:at]), bytes.NewReader(s[at:]))
			if got := readStream(t, r, len(s)); !equalStream(want, got) {
				t.Fatalf("stream %d split at %d: %d events, eof %v; want %d events", i, at, len(got.events), got.eof, len(want.events))
			}
		}
	}
}

// FuzzWatchStreamAgreesWithEncodingJSON: the events the reader frames
// (line shortcut included) are those encoding/json's Decoder reads from
// the same valid stream, event by event, and their objects decode alike
// (readObject on what the reader hands over, and on the exact
// value encoding/json delimits).
func FuzzWatchStreamAgreesWithEncodingJSON(f *testing.F) {
	for _, s := range watchStreams(f) {
		f.Add(s)
	}
	ev := `{"type":"MODIFIED","object":` + endpointsJSON + `}`
	f.Add([]byte(ev + ev + "\n" + ev + " " + ev))
	f.Add([]byte(`{"type":"ADDED","object":` + endpointsJSON + `,"x":{"a":"}{"}}` + "\n"))
	f.Fuzz(func(t *testing.T, stream []byte) {
		if !utf8.Valid(stream) || fakeapi.CaseVariantKeys(stream, "type", "object") {
			return
		}
		summary := func(typ string, obj []byte) (string, error) {
			s, err := readObject(Options{}, "ADDED", obj, false)
			return typ + " " + s, err
		}
		var want []string
		dec := json.NewDecoder(bytes.NewReader(stream))
		for {
			var e struct {
				Type   string          `json:"type"`
				Object json.RawMessage `json:"object"`
			}
			if dec.Decode(&e) != nil || e.Type == "" || len(e.Object) == 0 {
				break
			}
			s, err := summary(e.Type, e.Object)
			if err != nil {
				t.Fatalf("the exact object %q: %v", e.Object, err)
			}
			want = append(want, s)
		}
		er := newEventReader(bytes.NewReader(stream))
		for i := 0; i < len(want); i++ {
			var e Event
			if er.next(&e) != nil {
				return // stricter than encoding/json here: it stops, never misreads
			}
			got, err := summary(e.Type, e.Object)
			if err == errMisframed {
				return // the watch ends here (and resumes before this event)
			}
			if err != nil || got != want[i] {
				t.Fatalf("event %d: read %q, encoding/json %q, from %q", i, got, want[i], stream)
			}
		}
	})
}
