package listwatch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/kdisc/kdisc/apiserver"
	"github.com/kdisc/kdisc/internal/fakeapi"
	"github.com/kdisc/kdisc/internal/protowire"
	"github.com/kdisc/kdisc/listwatch/services"
	"github.com/kdisc/kdisc/shm"
)

// protoList is a protobuf LIST answer of objs, as kube-apiserver writes it.
func protoList(t testing.TB, rv, cont string, objs ...any) []byte {
	var items [][]byte
	kind := "EndpointsList"
	for _, o := range objs {
		_, pb := fakeapi.EncodeBoth(t, o)
		raw, err := protowire.Unwrap(pb)
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, raw)
		if _, ok := o.(*fakeapi.EndpointSlice); ok {
			kind = "EndpointSliceList"
		}
	}
	return fakeapi.EnvelopeProto("v1", kind, fakeapi.MarshalListProto(rv, cont, items))
}

// A LIST answer read in reads split everywhere gives its items (each an
// envelope decodable as the JSON list's items are) and its metadata.
func TestReadProtoList(t *testing.T) {
	a := fakeapi.GenObject(bytes.Repeat([]byte{1, 2, 3}, 20), false)
	b := fakeapi.GenObject(bytes.Repeat([]byte{2, 1, 1}, 20), false)
	body := protoList(t, "1234", "next-token", a, b)
	for _, r := range []io.Reader{bytes.NewReader(body), iotest.OneByteReader(bytes.NewReader(body)), iotest.HalfReader(bytes.NewReader(body))} {
		var names []string // each item's message, out of its envelope
		page, err := readProtoList(r, func(raw []byte) {
			msg, err := protowire.Unwrap(raw)
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, string(msg))
		})
		if err != nil || page.resourceVersion != "1234" || page.continueToken != "next-token" {
			t.Fatalf("page %+v, %v", page, err)
		}
		want := []string{string(fakeapi.MarshalEndpointsProto(a.(*fakeapi.Endpoints))), string(fakeapi.MarshalEndpointsProto(b.(*fakeapi.Endpoints)))}
		if !slices.Equal(names, want) {
			t.Fatalf("items %q, want %q", names, want)
		}
	}
	// Every cut of the body is an error (the list never silently ends
	// early), except the cuts that leave the list whole.
	for cut := 0; cut < len(body); cut++ {
		if _, err := readProtoList(bytes.NewReader(body[:cut]), func([]byte) {}); err == nil && cut < len(body)-4 {
			t.Fatalf("cut at %d of %d: no error", cut, len(body))
		}
	}
	// The list message's metadata may come after its items, and split in
	// two (merged, as the format defines).
	var tail []byte
	tail = append(tail, 0x12, 0) // an empty item
	meta := func(field byte, v string) []byte {
		inner := append([]byte{field<<3 | 2, byte(len(v))}, v...)
		return append([]byte{0x0a, byte(len(inner))}, inner...)
	}
	list := append(append(tail, meta(2, "77")...), meta(3, "c2")...)
	env := append(append([]byte(protowire.Magic), 0x12, byte(len(list))), list...)
	page, err := readProtoList(bytes.NewReader(env), func([]byte) {})
	if err != nil || page.resourceVersion != "77" || page.continueToken != "c2" {
		t.Fatalf("metadata after the items, split: %+v %v", page, err)
	}
}

func TestReadProtoListRefuses(t *testing.T) {
	for name, body := range map[string][]byte{
		"JSON":               []byte(`{"kind":"EndpointsList"}`),
		"no resourceVersion": fakeapi.EnvelopeProto("v1", "EndpointsList", fakeapi.MarshalListProto("", "", nil)),
		"gzip":               append(append([]byte(protowire.Magic), 0x1a, 4), "gzip"...),
		"an item over its list": append([]byte(protowire.Magic), 0x12, 3, 0x12, 10, 'x', 'y',
			'z', 'z', 'z', 'z', 'z', 'z', 'z', 'z', 'z'),
		"empty": nil,
	} {
		if _, err := readProtoList(bytes.NewReader(body), func([]byte) {}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// protoWatch is a protobuf watch stream of the given events.
func protoWatch(t testing.TB, typ []string, objs ...any) []byte {
	var b []byte
	for i, o := range objs {
		_, pb := fakeapi.EncodeBoth(t, o)
		b = append(b, fakeapi.FrameProto(fakeapi.WatchEventProto(typ[i], pb))...)
	}
	return b
}

// The watch stream's frames read with every split of the stream in two
// give the same events (types and objects).
func TestProtoEventReaderEverySplit(t *testing.T) {
	objs := []any{fakeapi.GenObject([]byte{1, 2, 3, 4, 5}, true), fakeapi.GenObject(bytes.Repeat([]byte{7}, 30), true)}
	stream := protoWatch(t, []string{"ADDED", "MODIFIED"}, objs...)
	for cut := 0; cut <= len(stream); cut++ {
		er := newProtoEventReader(io.MultiReader(bytes.NewReader(stream[:cut]), bytes.NewReader(stream[cut:])))
		for i, want := range []string{"ADDED", "MODIFIED"} {
			var ev Event
			if err := er.next(&ev); err != nil || ev.Type != want {
				t.Fatalf("cut %d event %d: %q %v", cut, i, ev.Type, err)
			}
			_, pb := fakeapi.EncodeBoth(t, objs[i])
			if !bytes.Equal(ev.Object, pb) {
				t.Fatalf("cut %d event %d: object differs", cut, i)
			}
		}
		var ev Event
		if err := er.next(&ev); err != io.EOF {
			t.Fatalf("cut %d: after the last event %v", cut, err)
		}
	}
}

// Bookmarks, the initial-events-end annotation and ERROR events read the
// same from protobuf as from JSON.
func TestProtoBookmarkAndStatus(t *testing.T) {
	bm := &fakeapi.EndpointSlice{Metadata: fakeapi.ObjectMeta{ResourceVersion: "999", Annotations: map[string]string{services.InitialEventsEndAnnotation: "true"}}}
	js, pb := fakeapi.EncodeBoth(t, bm)
	for i, raw := range [][]byte{js, pb} {
		rv, end, err := services.ReadBookmark(raw, i == 1)
		if err != nil || rv != "999" || !end {
			t.Fatalf("bookmark %q: %q %v %v", raw[:4], rv, end, err)
		}
	}
	st := fakeapi.EnvelopeProto("v1", "Status", fakeapi.MarshalStatusProto(410, "Expired", "too old resource version: 1 (5)", 3, []string{"ResourceVersionTooLarge"}))
	var se apiserver.StatusError
	if code := readEventStatus(st, &se); code != 410 || se.Reason != "Expired" || se.Message != "too old resource version: 1 (5)" ||
		se.RetryAfter.Seconds() != 3 || !slices.Equal(se.Causes, []string{"ResourceVersionTooLarge"}) {
		t.Fatalf("status %d %+v", code, se)
	}
	// Through the watcher: an ERROR event in protobuf is the same
	// WatchEventError as in JSON.
	w := New(Options{})
	var rv resourceVersion
	err := w.apply(&Event{Type: "ERROR", Object: st, Proto: true}, &rv)
	var wee *WatchEventError
	if !errors.As(err, &wee) || wee.Status.Code != 410 || Classify(err) != ClassExpired {
		t.Fatalf("ERROR event: %v", err)
	}
}

// The Content-Type of a 2xx answer picks the decoder; anything else is an
// error naming it.
func TestAnswerFormat(t *testing.T) {
	for _, tc := range []struct {
		ct          string
		watch       bool
		proto, fail bool
	}{
		{"application/json", false, false, false},
		{"application/json; charset=utf-8", false, false, false},
		{"", false, false, false},
		{"application/vnd.kubernetes.protobuf", false, true, false},
		{"application/vnd.kubernetes.protobuf;stream=watch", true, true, false},
		{"application/vnd.kubernetes.protobuf;stream=watch", false, false, true}, // a list is not a stream
		{"application/json;stream=watch", true, false, false},
		{"Application/VND.kubernetes.protobuf", false, true, false},
		{"text/plain; charset=utf-8", false, false, true},
		{"application/yaml", true, false, true},
		{"application/cbor", false, false, true},
		{"application/vnd.kubernetes.protobuf;stream=other", true, false, true},
		{";;", false, false, true},
	} {
		proto, err := answerFormat(tc.ct, tc.watch)
		if (err != nil) != tc.fail || (!tc.fail && proto != tc.proto) {
			t.Errorf("%q watch=%v: proto %v err %v", tc.ct, tc.watch, proto, err)
		}
		if err != nil && !strings.Contains(err.Error(), tc.ct) {
			t.Errorf("%q: the error does not name it: %v", tc.ct, err)
		}
	}
}

func portsString(ps []shm.Port) string {
	b, _ := json.Marshal(ps)
	return string(b)
}

// FuzzReadProtoStreams: a protobuf LIST answer and a protobuf watch stream
// read whole and read in chunks split anywhere give the same items and
// events (or fail alike), and never panic, whatever the bytes.
func FuzzReadProtoStreams(f *testing.F) {
	for _, name := range []string{"endpoints-list.pb", "endpointslices-list.pb", "endpoints-watch.pb", "endpointslices-watch.pb"} {
		for _, b := range fakeapi.SeedFiles(f, "../testdata/kube/captured/"+name) {
			f.Add(b, []byte{3, 17, 0, 200})
		}
	}
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		readAll := func(r io.Reader) string {
			var b strings.Builder
			page, err := readProtoList(r, func(raw []byte) { b.WriteString(string(raw) + "|") })
			return fmt.Sprint(b.String(), page, err != nil)
		}
		if whole, split := readAll(bytes.NewReader(data)), readAll(&chunkReader{data: data, cuts: cuts}); whole != split {
			t.Fatalf("list: whole %q, split %q", whole, split)
		}
		events := func(r io.Reader) string {
			var b strings.Builder
			er := newProtoEventReader(r)
			for {
				var ev Event
				err := er.next(&ev)
				if err != nil {
					return b.String() + fmt.Sprint(err == io.EOF)
				}
				b.WriteString(ev.Type + string(ev.Object) + "|")
			}
		}
		if whole, split := events(bytes.NewReader(data)), events(&chunkReader{data: data, cuts: cuts}); whole != split {
			t.Fatalf("watch: whole %q, split %q", whole, split)
		}
	})
}
