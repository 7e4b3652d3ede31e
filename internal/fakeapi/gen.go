package fakeapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Objects for fuzz targets and benchmarks of the decoders (listwatch and
// listwatch/services): built from fuzz bytes, or realistic watch streams.

// GenObject builds an Endpoints or an EndpointSlice from fuzz bytes: every
// field either decoder reads, with values that are valid, invalid, absent
// or escaped in JSON, and fields neither reads.
func GenObject(data []byte, isSlice bool) any {
	g := &gen{data: data}
	ips := []string{"10.0.0.1", "10.0.0.2", "fd00::1", "", "not-an-ip", "10.0.0.1", "::ffff:10.0.0.3", "a<b>&\u2028"}
	names := []string{"", "http", "metrics", "dns-tcp", "h\"t\\p", "é"}
	nodes := []string{"", "node-a", "node-b"}
	meta := ObjectMeta{
		Name:            g.pick([]string{"web", "", "api-0", "x<y>"}),
		Namespace:       g.pick([]string{"shop", "", "default"}),
		UID:             "6b0c",
		ResourceVersion: g.pick([]string{"42", "", "1000000000000000000000"}),
		Labels:          map[string]string{"app": "web"},
		Annotations:     map[string]string{"endpoints.kubernetes.io/last-change-trigger-time": "2026-11-25T10:00:00Z"},
		ManagedFields: []ManagedFieldsEntry{{Manager: "kube-controller-manager", Operation: "Update", APIVersion: "v1",
			Time: "2026-11-25T10:00:00Z", FieldsType: "FieldsV1", FieldsV1: json.RawMessage(`{"f:subsets":{}}`)}},
	}
	if g.bit() {
		meta.Labels["kubernetes.io/service-name"] = g.pick([]string{"web", "", "other"})
	}
	if g.bit() {
		meta.Annotations["endpoints.kubernetes.io/over-capacity"] = g.pick([]string{"truncated", ""})
	}
	if g.bit() {
		meta.Annotations["k8s.io/initial-events-end"] = "true"
	}
	ref := func() *ObjectReference {
		if !g.bit() {
			return nil
		}
		return &ObjectReference{Kind: g.pick([]string{"Pod", ""}), Namespace: "shop", Name: g.pick([]string{"p1", "p2"}), UID: g.pick([]string{"u1", ""})}
	}
	optStr := func(pool []string) *string {
		if !g.bit() {
			return nil
		}
		return Ptr(g.pick(pool))
	}
	optBool := func() *bool {
		if !g.bit() {
			return nil
		}
		return Ptr(g.bit())
	}
	ports := []int32{80, 0, 8080, -1, 65535, 70000}
	if !isSlice {
		e := &Endpoints{Kind: "Endpoints", APIVersion: "v1", Metadata: meta}
		for range g.n(3) {
			var s EndpointSubset
			for range g.n(4) {
				s.Addresses = append(s.Addresses, EndpointAddress{IP: g.pick(ips), NodeName: optStr(nodes), TargetRef: ref(), Hostname: g.pick([]string{"", "h"})})
			}
			for range g.n(2) {
				s.NotReadyAddresses = append(s.NotReadyAddresses, EndpointAddress{IP: g.pick(ips)})
			}
			for range g.n(3) {
				s.Ports = append(s.Ports, EndpointPort{Name: g.pick(names), Port: pickOf(g, ports), Protocol: g.pick([]string{"TCP", "UDP", ""})})
			}
			e.Subsets = append(e.Subsets, s)
		}
		return e
	}
	s := &EndpointSlice{Kind: "EndpointSlice", APIVersion: "discovery.k8s.io/v1", Metadata: meta,
		AddressType: g.pick([]string{"IPv4", "IPv6", "FQDN", ""})}
	for range g.n(4) {
		ep := Endpoint{NodeName: optStr(nodes), Zone: optStr([]string{"a", "b", ""}), TargetRef: ref(), Hostname: optStr([]string{"h"})}
		for range g.n(3) {
			ep.Addresses = append(ep.Addresses, g.pick(ips))
		}
		ep.Conditions = EndpointConditions{Ready: optBool(), Serving: optBool(), Terminating: optBool()}
		if g.bit() {
			ep.Hints = &EndpointHints{}
			for range g.n(2) {
				ep.Hints.ForZones = append(ep.Hints.ForZones, ForName{Name: g.pick([]string{"a", "b", ""})})
			}
			for range g.n(2) {
				ep.Hints.ForNodes = append(ep.Hints.ForNodes, ForName{Name: g.pick(nodes)})
			}
		}
		if g.bit() {
			ep.DeprecatedTopology = map[string]string{"topology.kubernetes.io/zone": "a"}
		}
		s.Endpoints = append(s.Endpoints, ep)
	}
	for range g.n(3) {
		p := EndpointSlicePort{Name: optStr(names), Protocol: optStr([]string{"TCP", "SCTP"})}
		if g.bit() {
			p.Port = Ptr(pickOf(g, ports))
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

// EncodeBoth returns obj (an *Endpoints or an *EndpointSlice) as the JSON
// and the protobuf object of a watch event (the protobuf one in its
// envelope).
func EncodeBoth(t testing.TB, obj any) (jsonObj, protoObj []byte) {
	jsonObj, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	switch o := obj.(type) {
	case *Endpoints:
		return jsonObj, EnvelopeProto("v1", "Endpoints", MarshalEndpointsProto(o))
	case *EndpointSlice:
		return jsonObj, EnvelopeProto("discovery.k8s.io/v1", "EndpointSlice", MarshalEndpointSliceProto(o))
	}
	t.Fatalf("%T", obj)
	return nil, nil
}

// WatchStreamJSON is n MODIFIED events of realistic Endpoints objects (3
// addresses, targetRefs, managedFields): about 900 bytes each, the size
// notes.md measured for a real cluster.
func WatchStreamJSON(n, services int) []byte {
	var b bytes.Buffer
	for i := range n {
		svc := i % services
		fmt.Fprintf(&b, `{"type":"MODIFIED","object":{"kind":"Endpoints","apiVersion":"v1","metadata":{"name":"service-%d","namespace":"team-%d","uid":"5d3c1a9e-0b7f-4f7e-9a51-%012d","resourceVersion":"%d","creationTimestamp":"2026-11-25T10:00:00Z","labels":{"app":"service-%d","app.kubernetes.io/managed-by":"helm"},"annotations":{"endpoints.kubernetes.io/last-change-trigger-time":"2026-11-25T10:00:00Z"},"managedFields":[{"manager":"kube-controller-manager","operation":"Update","apiVersion":"v1","time":"2026-11-25T10:00:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:annotations":{".":{},"f:endpoints.kubernetes.io/last-change-trigger-time":{}},"f:labels":{".":{},"f:app":{}}},"f:subsets":{}}}]},"subsets":[{"addresses":[`,
			svc, svc%10, svc, 1000+i, svc)
		for a := range 3 {
			if a > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"ip":"10.%d.%d.%d","nodeName":"node-%d","targetRef":{"kind":"Pod","namespace":"team-%d","name":"service-%d-7d9f8-%d","uid":"a1b2c3d4-0000-0000-0000-%012d"}}`,
				svc/250, svc%250, (i+a)%250, a, svc%10, svc, a, i)
		}
		b.WriteString(`],"ports":[{"name":"http","port":8080,"protocol":"TCP"}]}]}}` + "\n")
	}
	return b.Bytes()
}

// WatchStreamProto is WatchStreamJSON's events in protobuf, as kube-apiserver
// sends them to a client that asked for it: 4-byte framed WatchEvents
// whose objects are "k8s\x00" envelopes.
func WatchStreamProto(n, services int) []byte {
	var b []byte
	for i := range n {
		svc := i % services
		e := &Endpoints{Metadata: ObjectMeta{
			Name: fmt.Sprintf("service-%d", svc), Namespace: fmt.Sprintf("team-%d", svc%10),
			UID: fmt.Sprintf("5d3c1a9e-0b7f-4f7e-9a51-%012d", svc), ResourceVersion: fmt.Sprint(1000 + i),
			CreationTimestamp: "2026-11-25T10:00:00Z",
			Labels:            map[string]string{"app": fmt.Sprintf("service-%d", svc), "app.kubernetes.io/managed-by": "helm"},
			Annotations:       map[string]string{"endpoints.kubernetes.io/last-change-trigger-time": "2026-11-25T10:00:00Z"},
			ManagedFields: []ManagedFieldsEntry{{Manager: "kube-controller-manager", Operation: "Update", APIVersion: "v1",
				Time: "2026-11-25T10:00:00Z", FieldsType: "FieldsV1",
				FieldsV1: []byte(`{"f:metadata":{"f:annotations":{".":{},"f:endpoints.kubernetes.io/last-change-trigger-time":{}},"f:labels":{".":{},"f:app":{}}},"f:subsets":{}}`)}},
		}}
		sub := EndpointSubset{Ports: []EndpointPort{{Name: "http", Port: 8080, Protocol: "TCP"}}}
		for a := range 3 {
			sub.Addresses = append(sub.Addresses, EndpointAddress{
				IP:       fmt.Sprintf("10.%d.%d.%d", svc/250, svc%250, (i+a)%250),
				NodeName: Ptr(fmt.Sprintf("node-%d", a)),
				TargetRef: &ObjectReference{Kind: "Pod", Namespace: fmt.Sprintf("team-%d", svc%10),
					Name: fmt.Sprintf("service-%d-7d9f8-%d", svc, a), UID: fmt.Sprintf("a1b2c3d4-0000-0000-0000-%012d", i)},
			})
		}
		e.Subsets = []EndpointSubset{sub}
		obj := EnvelopeProto("v1", "Endpoints", MarshalEndpointsProto(e))
		b = append(b, FrameProto(WatchEventProto("MODIFIED", obj))...)
	}
	return b
}

// SeedFiles reads every file the globs match (the captured answers of the
// real apiserver, the fixtures): the seeds of the fuzz targets and the
// differential tests. No match at all fails tb: a seedless fuzz target
// would pass while testing nothing.
func SeedFiles(tb testing.TB, globs ...string) [][]byte {
	tb.Helper()
	var out [][]byte
	for _, glob := range globs {
		files, err := filepath.Glob(glob)
		if err != nil {
			tb.Fatal(err)
		}
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				tb.Fatal(err)
			}
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		tb.Fatalf("no seed files in %v", globs)
	}
	return out
}

// CaseVariantKeys reports whether data spells one of keys in another case
// ("lABels"): encoding/json matches struct fields regardless of case, the
// apiserver's JSON (and kdisc's scanner) does not. Such inputs, like
// invalid UTF-8 (which encoding/json replaces), are where a differential
// fuzz target against encoding/json must let the two differ.
func CaseVariantKeys(data []byte, keys ...string) bool {
	lower := bytes.ToLower(data)
	for _, k := range keys {
		if bytes.Count(lower, []byte(`"`+strings.ToLower(k)+`"`)) != bytes.Count(data, []byte(`"`+k+`"`)) {
			return true
		}
	}
	return false
}
