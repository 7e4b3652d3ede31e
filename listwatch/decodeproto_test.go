package listwatch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/kdisc/kdisc/apiserver"
	"github.com/kdisc/kdisc/internal/fakeapi"
	"github.com/kdisc/kdisc/internal/protowire"
	"github.com/kdisc/kdisc/shm"
)

// genObject builds an Endpoints or an EndpointSlice from fuzz bytes: every
// field either decoder reads, with values that are valid, invalid, absent
// or escaped in JSON, and fields neither reads.
func genObject(data []byte, isSlice bool) any {
	g := &gen{data: data}
	ips := []string{"10.0.0.1", "10.0.0.2", "fd00::1", "", "not-an-ip", "10.0.0.1", "::ffff:10.0.0.3", "a<b>&\u2028"}
	names := []string{"", "http", "metrics", "dns-tcp", "h\"t\\p", "é"}
	nodes := []string{"", "node-a", "node-b"}
	meta := fakeapi.ObjectMeta{
		Name:            g.pick([]string{"web", "", "api-0", "x<y>"}),
		Namespace:       g.pick([]string{"shop", "", "default"}),
		UID:             "6b0c",
		ResourceVersion: g.pick([]string{"42", "", "1000000000000000000000"}),
		Labels:          map[string]string{"app": "web"},
		Annotations:     map[string]string{"endpoints.kubernetes.io/last-change-trigger-time": "2026-11-25T10:00:00Z"},
		ManagedFields: []fakeapi.ManagedFieldsEntry{{Manager: "kube-controller-manager", Operation: "Update", APIVersion: "v1",
			Time: "2026-11-25T10:00:00Z", FieldsType: "FieldsV1", FieldsV1: json.RawMessage(`{"f:subsets":{}}`)}},
	}
	if g.bit() {
		meta.Labels[serviceNameLabel] = g.pick([]string{"web", "", "other"})
	}
	if g.bit() {
		meta.Annotations[overCapacityAnnotation] = g.pick([]string{"truncated", ""})
	}
	if g.bit() {
		meta.Annotations[initialEventsEndAnnotation] = "true"
	}
	ref := func() *fakeapi.ObjectReference {
		if !g.bit() {
			return nil
		}
		return &fakeapi.ObjectReference{Kind: g.pick([]string{"Pod", ""}), Namespace: "shop", Name: g.pick([]string{"p1", "p2"}), UID: g.pick([]string{"u1", ""})}
	}
	optStr := func(pool []string) *string {
		if !g.bit() {
			return nil
		}
		return fakeapi.Ptr(g.pick(pool))
	}
	optBool := func() *bool {
		if !g.bit() {
			return nil
		}
		return fakeapi.Ptr(g.bit())
	}
	ports := []int32{80, 0, 8080, -1, 65535, 70000}
	if !isSlice {
		e := &fakeapi.Endpoints{Kind: "Endpoints", APIVersion: "v1", Metadata: meta}
		for range g.n(3) {
			var s fakeapi.EndpointSubset
			for range g.n(4) {
				s.Addresses = append(s.Addresses, fakeapi.EndpointAddress{IP: g.pick(ips), NodeName: optStr(nodes), TargetRef: ref(), Hostname: g.pick([]string{"", "h"})})
			}
			for range g.n(2) {
				s.NotReadyAddresses = append(s.NotReadyAddresses, fakeapi.EndpointAddress{IP: g.pick(ips)})
			}
			for range g.n(3) {
				s.Ports = append(s.Ports, fakeapi.EndpointPort{Name: g.pick(names), Port: pickOf(g, ports), Protocol: g.pick([]string{"TCP", "UDP", ""})})
			}
			e.Subsets = append(e.Subsets, s)
		}
		return e
	}
	s := &fakeapi.EndpointSlice{Kind: "EndpointSlice", APIVersion: "discovery.k8s.io/v1", Metadata: meta,
		AddressType: g.pick([]string{"IPv4", "IPv6", "FQDN", ""})}
	for range g.n(4) {
		ep := fakeapi.Endpoint{NodeName: optStr(nodes), Zone: optStr([]string{"a", "b", ""}), TargetRef: ref(), Hostname: optStr([]string{"h"})}
		for range g.n(3) {
			ep.Addresses = append(ep.Addresses, g.pick(ips))
		}
		ep.Conditions = fakeapi.EndpointConditions{Ready: optBool(), Serving: optBool(), Terminating: optBool()}
		if g.bit() {
			ep.Hints = &fakeapi.EndpointHints{}
			for range g.n(2) {
				ep.Hints.ForZones = append(ep.Hints.ForZones, fakeapi.ForName{Name: g.pick([]string{"a", "b", ""})})
			}
			for range g.n(2) {
				ep.Hints.ForNodes = append(ep.Hints.ForNodes, fakeapi.ForName{Name: g.pick(nodes)})
			}
		}
		if g.bit() {
			ep.DeprecatedTopology = map[string]string{"topology.kubernetes.io/zone": "a"}
		}
		s.Endpoints = append(s.Endpoints, ep)
	}
	for range g.n(3) {
		p := fakeapi.EndpointSlicePort{Name: optStr(names), Protocol: optStr([]string{"TCP", "SCTP"})}
		if g.bit() {
			p.Port = fakeapi.Ptr(pickOf(g, ports))
		}
		s.Ports = append(s.Ports, p)
	}
	return s
}

type gen struct {
	data []byte
	i    int
}

func (g *gen) byte() byte {
	if g.i >= len(g.data) {
		return 0
	}
	g.i++
	return g.data[g.i-1]
}
func (g *gen) bit() bool     { return g.byte()&1 == 1 }
func (g *gen) n(max int) int { return int(g.byte()) % (max + 1) }
func pickOf[T any](g *gen, pool []T) T {
	return pool[int(g.byte())%len(pool)]
}
func (g *gen) pick(pool []string) string { return pickOf(g, pool) }

// encodeBoth returns obj as the JSON and the protobuf object of a watch
// event (the protobuf one in its envelope).
func encodeBoth(t testing.TB, obj any) (jsonObj, protoObj []byte) {
	jsonObj, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	switch o := obj.(type) {
	case *fakeapi.Endpoints:
		return jsonObj, fakeapi.EnvelopeProto("v1", "Endpoints", fakeapi.MarshalEndpointsProto(o))
	case *fakeapi.EndpointSlice:
		return jsonObj, fakeapi.EnvelopeProto("discovery.k8s.io/v1", "EndpointSlice", fakeapi.MarshalEndpointSliceProto(o))
	}
	t.Fatalf("%T", obj)
	return nil, nil
}

// serviceOf decodes raw with a watcher of opts and applies it as a watch
// event would: the decode error, the object, and the value and detail of
// every service it changed.
type serviceOf struct {
	err    string
	obj    object
	values map[string][]shm.Port
	detail map[string]string
}

func applyOne(opts Options, raw []byte) serviceOf {
	w := New(opts)
	o, err := w.decode(raw)
	out := serviceOf{obj: *o, values: map[string][]shm.Port{}, detail: map[string]string{}}
	if err != nil {
		out.err = "malformed"
		return out
	}
	s := w.newServices()
	if err := s.set(o, func(key string) {
		out.values[key], _ = s.value(key)
		out.detail[key] = string(s.detail(key))
	}); err != nil {
		out.err = "refused: " + err.Error()
	}
	return out
}

// FuzzProtobufAgreesWithJSON: the same object, encoded as JSON (as the
// apiserver writes it) and as protobuf (by the field numbers of
// generated.proto), decodes to the same object and gives every service
// the same value and node detail.
func FuzzProtobufAgreesWithJSON(f *testing.F) {
	f.Add([]byte{}, false, false)
	f.Add([]byte{1, 0, 1, 1, 1, 2, 3, 1, 1, 1, 0, 2, 2, 1, 3, 2, 0, 1, 1, 1, 1, 3, 3, 3}, true, true)
	f.Add(bytes.Repeat([]byte{1, 2, 3, 5, 7, 11}, 20), false, true)
	f.Add(bytes.Repeat([]byte{3, 1, 4, 1, 5, 9, 2, 6}, 30), true, false)
	f.Fuzz(func(t *testing.T, data []byte, isSlice, detail bool) {
		obj := genObject(data, isSlice)
		js, pb := encodeBoth(t, obj)
		opts := Options{EndpointSlices: isSlice, NodeDetail: detail, Weight: 7, Zone: "a"}
		fromJSON, fromProto := applyOne(opts, js), applyOne(opts, pb)
		if fromJSON.err != fromProto.err {
			t.Fatalf("JSON: %q, protobuf: %q\nJSON %s", fromJSON.err, fromProto.err, js)
		}
		if !reflect.DeepEqual(fromJSON.obj, fromProto.obj) {
			t.Fatalf("decoded objects differ:\nJSON     %+v\nprotobuf %+v\nfrom %s", fromJSON.obj, fromProto.obj, js)
		}
		if !reflect.DeepEqual(fromJSON.values, fromProto.values) || !reflect.DeepEqual(fromJSON.detail, fromProto.detail) {
			t.Fatalf("service values differ:\nJSON     %v %v\nprotobuf %v %v\nfrom %s", fromJSON.values, fromJSON.detail, fromProto.values, fromProto.detail, js)
		}
	})
}

// FuzzDecodeProtoObject: arbitrary bytes in an envelope never panic the
// decoder, never read past their lengths, and an accepted object has a
// name and a namespace.
func FuzzDecodeProtoObject(f *testing.F) {
	for i := range 8 {
		for _, isSlice := range []bool{false, true} {
			_, pb := encodeBoth(f, genObject(bytes.Repeat([]byte{byte(i), 1, 2, 3}, 16), isSlice))
			f.Add(pb[len(protowire.Magic):], isSlice)
		}
	}
	// The items of the real apiserver's protobuf lists.
	for _, kind := range []string{"endpoints", "endpointslices"} {
		for _, b := range seedFiles(f, "../testdata/kube/captured/"+kind+"-list.pb") {
			_, _ = readProtoList(bytes.NewReader(b), func(raw []byte) {
				f.Add(bytes.Clone(raw[len(protowire.Magic):]), kind == "endpointslices")
			})
		}
	}
	f.Fuzz(func(t *testing.T, unknown []byte, isSlice bool) {
		var d protowire.Decoder
		var o object
		env := append([]byte(protowire.Magic), unknown...)
		err := decodeProtoObject(&d, env[:len(env):len(env)], &o, isSlice, true)
		if err == nil && (o.name == "" || o.namespace == "") {
			t.Fatalf("accepted an object without name or namespace: %+v", o)
		}
		_, _, _ = readProtoBookmark(env)
		var se apiserver.StatusError
		_ = readEventStatus(env, &se)
	})
}

// protoList is a protobuf LIST answer of objs, as kube-apiserver writes it.
func protoList(t testing.TB, rv, cont string, objs ...any) []byte {
	var items [][]byte
	kind := "EndpointsList"
	for _, o := range objs {
		_, pb := encodeBoth(t, o)
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
	a := genObject(bytes.Repeat([]byte{1, 2, 3}, 20), false)
	b := genObject(bytes.Repeat([]byte{2, 1, 1}, 20), false)
	body := protoList(t, "1234", "next-token", a, b)
	var sizes []int
	for _, r := range []io.Reader{bytes.NewReader(body), iotest.OneByteReader(bytes.NewReader(body)), iotest.HalfReader(bytes.NewReader(body))} {
		var names []string
		page, err := readProtoList(r, func(raw []byte) {
			var o object
			var d protowire.Decoder
			if err := decodeProtoObject(&d, raw, &o, false, false); err != nil && err != errMalformed {
				t.Fatal(err)
			}
			names = append(names, o.namespace+"/"+o.name)
		})
		if err != nil || page.resourceVersion != "1234" || page.continueToken != "next-token" {
			t.Fatalf("page %+v, %v", page, err)
		}
		sizes = append(sizes, len(names))
		want := []string{a.(*fakeapi.Endpoints).Metadata.Namespace + "/" + a.(*fakeapi.Endpoints).Metadata.Name, b.(*fakeapi.Endpoints).Metadata.Namespace + "/" + b.(*fakeapi.Endpoints).Metadata.Name}
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
		_, pb := encodeBoth(t, o)
		b = append(b, fakeapi.FrameProto(fakeapi.WatchEventProto(typ[i], pb))...)
	}
	return b
}

// The watch stream's frames read with every split of the stream in two
// give the same events (types and objects).
func TestProtoEventReaderEverySplit(t *testing.T) {
	objs := []any{genObject([]byte{1, 2, 3, 4, 5}, true), genObject(bytes.Repeat([]byte{7}, 30), true)}
	stream := protoWatch(t, []string{"ADDED", "MODIFIED"}, objs...)
	for cut := 0; cut <= len(stream); cut++ {
		er := newProtoEventReader(io.MultiReader(bytes.NewReader(stream[:cut]), bytes.NewReader(stream[cut:])))
		for i, want := range []string{"ADDED", "MODIFIED"} {
			var ev event
			if err := er.next(&ev); err != nil || ev.typ != want {
				t.Fatalf("cut %d event %d: %q %v", cut, i, ev.typ, err)
			}
			_, pb := encodeBoth(t, objs[i])
			if !bytes.Equal(ev.object, pb) {
				t.Fatalf("cut %d event %d: object differs", cut, i)
			}
		}
		var ev event
		if err := er.next(&ev); err != io.EOF {
			t.Fatalf("cut %d: after the last event %v", cut, err)
		}
	}
}

// Bookmarks, the initial-events-end annotation and ERROR events read the
// same from protobuf as from JSON.
func TestProtoBookmarkAndStatus(t *testing.T) {
	bm := &fakeapi.EndpointSlice{Metadata: fakeapi.ObjectMeta{ResourceVersion: "999", Annotations: map[string]string{initialEventsEndAnnotation: "true"}}}
	js, pb := encodeBoth(t, bm)
	for _, raw := range [][]byte{js, pb} {
		rv, end, err := readBookmark(raw)
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
	rv := ""
	err := w.apply(&event{typ: "ERROR", object: st}, &rv)
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
		for _, b := range seedFiles(f, "../testdata/kube/captured/"+name) {
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
				var ev event
				err := er.next(&ev)
				if err != nil {
					return b.String() + fmt.Sprint(err == io.EOF)
				}
				b.WriteString(ev.typ + string(ev.object) + "|")
			}
		}
		if whole, split := events(bytes.NewReader(data)), events(&chunkReader{data: data, cuts: cuts}); whole != split {
			t.Fatalf("watch: whole %q, split %q", whole, split)
		}
	})
}
