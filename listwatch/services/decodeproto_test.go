package services

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/kdisc/kdisc/internal/fakeapi"
	"github.com/kdisc/kdisc/internal/protowire"
	"github.com/kdisc/kdisc/shm"
)

// serviceOf decodes raw with a sink of opts and applies it as a watch
// event would: the decode error, the object, and the value and detail of
// every service it changed.
type serviceOf struct {
	err    string
	obj    object
	values map[string][]shm.Port
	detail map[string]string
}

func applyOne(opts Options, raw []byte) serviceOf {
	sk := New(opts, nil)
	o, err := sk.decode(raw, protowire.IsEnvelope(raw))
	out := serviceOf{obj: *o, values: map[string][]shm.Port{}, detail: map[string]string{}}
	if err != nil {
		out.err = "malformed"
		return out
	}
	if !opts.EndpointSlices {
		key, ports, detail, err := buildValue(sk.endpoints, o)
		if err != nil {
			out.err = "refused: " + err.Error()
			return out
		}
		out.values[key], out.detail[key] = ports, string(detail)
		return out
	}
	s := sk.state
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
		obj := fakeapi.GenObject(data, isSlice)
		js, pb := fakeapi.EncodeBoth(t, obj)
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
			_, pb := fakeapi.EncodeBoth(f, fakeapi.GenObject(bytes.Repeat([]byte{byte(i), 1, 2, 3}, 16), isSlice))
			f.Add(pb[len(protowire.Magic):], isSlice)
		}
	}
	// The items of the real apiserver's protobuf lists.
	for _, kind := range []string{"endpoints", "endpointslices"} {
		for _, b := range fakeapi.SeedFiles(f, "../../testdata/kube/captured/"+kind+"-list.pb") {
			for _, raw := range protoListItems(f, b) {
				f.Add(raw[len(protowire.Magic):], kind == "endpointslices")
			}
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
	})
}

// protoListItems returns the items of a protobuf LIST answer, each in an
// envelope as the frame reader hands them over.
func protoListItems(tb testing.TB, list []byte) [][]byte {
	msg, err := protowire.Unwrap(list)
	if err != nil {
		tb.Fatal(err)
	}
	var d protowire.Decoder
	d.Reset(msg)
	var items [][]byte
	for d.Next(d.Len()) {
		if d.Field() != 2 { // items
			d.Skip()
			continue
		}
		item := d.Raw()
		items = append(items, append(protowire.EnvelopeHeader(nil, len(item)), item...))
	}
	if err := d.Err(); err != nil {
		tb.Fatal(err)
	}
	return items
}
