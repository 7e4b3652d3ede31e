package services

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/kdisc/kdisc/internal/fakeapi"
)

// Fuzz targets for the object decoder a kdisc process runs over whatever
// the apiserver (or anything between it and kdisc) sends. They are seeded
// from the real apiserver answers in testdata/kube/captured and the
// fakeapi fixtures (the frame readers' targets are listwatch's).

// seedObjects are the objects of the JSON lists and watch streams in
// testdata (read with encoding/json, byte for byte as they are written
// there), and of this package's fixtures.
func seedObjects(tb testing.TB, lists ...string) [][]byte {
	objs := [][]byte{[]byte(endpointsJSON), []byte(sliceJSON),
		[]byte(`{"kind":"Endpoints","apiVersion":"v1","metadata":{"resourceVersion":"100"}}`), // a bookmark's
		[]byte(`{"metadata":{"name":"a\u00e9\"b","namespace":"n"}}`)}
	for _, b := range fakeapi.SeedFiles(tb, lists...) {
		var l struct{ Items []json.RawMessage }
		if err := json.Unmarshal(b, &l); err != nil {
			tb.Fatal(err)
		}
		for _, item := range l.Items {
			objs = append(objs, item)
		}
	}
	for _, b := range fakeapi.SeedFiles(tb, "../../testdata/kube/captured/*.jsonl") {
		dec := json.NewDecoder(bytes.NewReader(b))
		for {
			var ev struct{ Object json.RawMessage }
			if dec.Decode(&ev) != nil {
				break
			}
			objs = append(objs, ev.Object)
		}
	}
	return objs
}

// FuzzDecodeObject: decoding one Endpoints or EndpointSlice from arbitrary
// bytes never panics, and an object it accepts has a name and namespace.
func FuzzDecodeObject(f *testing.F) {
	f.Add([]byte(`{"metadata":{"name":"a","namespace":"b"},"subsets":[{"ports":[{"port":"80"}]}]}`))
	f.Add([]byte(`{"metadata":{"name":"a","namespace":"b"},"endpoints":[{"addresses":["x"],"conditions":{"ready":null}}],"ports":[{"port":null}]}`))
	// The items of the lists and the objects of the watch events.
	for _, obj := range seedObjects(f, "../../testdata/kube/captured/*-list.json", "../../testdata/fakeapi/*.json") {
		f.Add(obj)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var o object
		err := decodeObject(data, &o)
		if err == nil && (o.name == "" || o.namespace == "") {
			t.Fatalf("accepted an object without name or namespace: %+v", o)
		}
		if err != nil && errors.Is(err, io.EOF) {
			t.Fatalf("decodeObject returned io.EOF, which callers read as a clean end: %q", data)
		}
	})
}

// refObject is what decodeObject reads, decoded by encoding/json: the
// reference FuzzDecodeObjectAgreesWithEncodingJSON holds the byte-level
// scanner to.
type refObject struct {
	Metadata struct {
		Name            string            `json:"name"`
		Namespace       string            `json:"namespace"`
		ResourceVersion string            `json:"resourceVersion"`
		Labels          map[string]string `json:"labels"`
		Annotations     struct {
			OverCapacity string `json:"endpoints.kubernetes.io/over-capacity"`
		} `json:"annotations"`
	} `json:"metadata"`
	AddressType string `json:"addressType"`
}

// refKeys are the keys refObject reads.
var refKeys = []string{"metadata", "name", "namespace", "resourceVersion", "labels", "annotations", overCapacityAnnotation, "addressType"}

// FuzzDecodeObjectAgreesWithEncodingJSON: on valid JSON, an object the
// scanner accepts is one encoding/json accepts too, with the same names
// (escapes, skipped values and white space read alike).
func FuzzDecodeObjectAgreesWithEncodingJSON(f *testing.F) {
	f.Add([]byte(`{"metadata":{"name":"a\"b\\\\","namespace":"\u00e9\ud83d\ude00","x":["\\\"",{"y":"}"}]}}`))
	f.Add([]byte(`{"kind":"x","metadata":{"annotations":{"a":"{[\"]}"},"name":"n","namespace":"s","labels":{"kubernetes.io/service-name":"w"}},"addressType":"IPv4"}`))
	f.Add([]byte(`{"metadata":{"name":"n","namespace":"s","annotations":{"endpoints.kubernetes.io/over-capacity":"truncated"}},"subsets":[]}`))
	for _, obj := range seedObjects(f, "../../testdata/kube/captured/*-list.json") {
		f.Add(obj)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) || !utf8.Valid(data) || fakeapi.CaseVariantKeys(data, refKeys...) {
			return
		}
		var o object
		if decodeObject(data, &o) != nil {
			return
		}
		var ref refObject
		if err := json.Unmarshal(data, &ref); err != nil {
			t.Fatalf("scanner accepted what encoding/json refuses (%v): %q", err, data)
		}
		got := [...]string{o.namespace, o.name, o.resourceVersion, o.serviceName, o.addressType, strconv.FormatBool(o.truncated)}
		want := [...]string{ref.Metadata.Namespace, ref.Metadata.Name, ref.Metadata.ResourceVersion, ref.Metadata.Labels[serviceNameLabel], ref.AddressType,
			strconv.FormatBool(ref.Metadata.Annotations.OverCapacity == "truncated")}
		if got != want {
			t.Fatalf("scanner read %q, encoding/json %q, from %q", got, want, data)
		}
	})
}
