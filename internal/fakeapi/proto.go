package fakeapi

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// A small protobuf encoder for the types of objects.go, by the field
// numbers of k8s.io/api's generated.proto (core/v1, discovery/v1) and
// apimachinery's (meta/v1, runtime), so the fake apiserver serves
// application/vnd.kubernetes.protobuf as kube-apiserver does. It is test
// code: testdata/proto checks it against k8s.io/api's generated Marshal.
//
// Like the generated code it writes fields in field-number order, a
// non-pointer scalar always (empty or not) and a pointer one when set.

// pb appends protobuf fields to a byte slice.
type pb []byte

func (b *pb) tag(field int, wt byte) { *b = appendVarint(*b, uint64(field)<<3|uint64(wt)) }

func (b *pb) varint(field int, v uint64) {
	b.tag(field, 0)
	*b = appendVarint(*b, v)
}

func (b *pb) bytes(field int, v []byte) {
	b.tag(field, 2)
	*b = appendVarint(*b, uint64(len(v)))
	*b = append(*b, v...)
}

func (b *pb) str(field int, v string) { b.bytes(field, []byte(v)) }

func (b *pb) optStr(field int, v *string) {
	if v != nil {
		b.str(field, *v)
	}
}

func (b *pb) boolean(field int, v bool) {
	n := uint64(0)
	if v {
		n = 1
	}
	b.varint(field, n)
}

func (b *pb) optBool(field int, v *bool) {
	if v != nil {
		b.boolean(field, *v)
	}
}

// int32 as the format writes it: a negative one sign-extended to 10 bytes.
func (b *pb) int32(field int, v int32) { b.varint(field, uint64(int64(v))) }

// message appends an embedded message that fill writes.
func (b *pb) message(field int, fill func(*pb)) {
	var m pb
	fill(&m)
	b.bytes(field, m)
}

// stringMap appends a map<string,string> field, keys sorted as the
// generated code writes them.
func (b *pb) stringMap(field int, m map[string]string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b.message(field, func(e *pb) { e.str(1, k); e.str(2, m[k]) })
	}
}

func appendVarint(dst []byte, v uint64) []byte {
	for v >= 0x80 {
		dst = append(dst, byte(v)|0x80)
		v >>= 7
	}
	return append(dst, byte(v))
}

// timeMsg appends a meta/v1 Time from an RFC 3339 string ("" or
// unparsable: the zero time, as the generated code writes a zero Time).
func (b *pb) timeMsg(field int, rfc3339 string) {
	var secs int64
	if t, err := time.Parse(time.RFC3339, rfc3339); err == nil {
		secs = t.Unix()
	}
	b.message(field, func(m *pb) { m.varint(1, uint64(secs)); m.int32(2, 0) })
}

func (b *pb) objectMeta(field int, m *ObjectMeta) {
	b.message(field, func(e *pb) {
		e.str(1, m.Name)
		e.str(2, m.GenerateName)
		e.str(3, m.Namespace)
		e.str(4, "") // selfLink
		e.str(5, m.UID)
		e.str(6, m.ResourceVersion)
		e.varint(7, uint64(m.Generation))
		e.timeMsg(8, m.CreationTimestamp)
		e.stringMap(11, m.Labels)
		e.stringMap(12, m.Annotations)
		for i := range m.OwnerReferences {
			o := &m.OwnerReferences[i]
			e.message(13, func(r *pb) {
				r.str(1, o.Kind)
				r.str(3, o.Name)
				r.str(4, o.UID)
				r.str(5, o.APIVersion)
				r.optBool(6, o.Controller)
				r.optBool(7, o.BlockOwnerDeletion)
			})
		}
		for i := range m.ManagedFields {
			f := &m.ManagedFields[i]
			e.message(17, func(r *pb) {
				r.str(1, f.Manager)
				r.str(2, f.Operation)
				r.str(3, f.APIVersion)
				if f.Time != "" {
					r.timeMsg(4, f.Time)
				}
				r.str(6, f.FieldsType)
				if f.FieldsV1 != nil {
					r.message(7, func(v *pb) { v.bytes(1, f.FieldsV1) })
				}
				r.str(8, f.Subresource)
			})
		}
	})
}

func (b *pb) objectReference(field int, r *ObjectReference) {
	if r == nil {
		return
	}
	b.message(field, func(e *pb) {
		e.str(1, r.Kind)
		e.str(2, r.Namespace)
		e.str(3, r.Name)
		e.str(4, r.UID)
		e.str(5, r.APIVersion)
		e.str(6, r.ResourceVersion)
		e.str(7, r.FieldPath)
	})
}

// MarshalEndpointsProto encodes e as the v1 Endpoints message (no
// envelope).
func MarshalEndpointsProto(e *Endpoints) []byte {
	var b pb
	b.objectMeta(1, &e.Metadata)
	for i := range e.Subsets {
		s := &e.Subsets[i]
		b.message(2, func(m *pb) {
			addrs := func(field int, as []EndpointAddress) {
				for j := range as {
					a := &as[j]
					m.message(field, func(x *pb) {
						x.str(1, a.IP)
						x.objectReference(2, a.TargetRef)
						x.str(3, a.Hostname)
						x.optStr(4, a.NodeName)
					})
				}
			}
			addrs(1, s.Addresses)
			addrs(2, s.NotReadyAddresses)
			for j := range s.Ports {
				p := &s.Ports[j]
				m.message(3, func(x *pb) {
					x.str(1, p.Name)
					x.int32(2, p.Port)
					x.str(3, p.Protocol)
					x.optStr(4, p.AppProtocol)
				})
			}
		})
	}
	return b
}

// MarshalEndpointSliceProto encodes s as the discovery/v1 EndpointSlice
// message (no envelope).
func MarshalEndpointSliceProto(s *EndpointSlice) []byte {
	var b pb
	b.objectMeta(1, &s.Metadata)
	for i := range s.Endpoints {
		ep := &s.Endpoints[i]
		b.message(2, func(m *pb) {
			for _, a := range ep.Addresses {
				m.str(1, a)
			}
			m.message(2, func(c *pb) {
				c.optBool(1, ep.Conditions.Ready)
				c.optBool(2, ep.Conditions.Serving)
				c.optBool(3, ep.Conditions.Terminating)
			})
			m.optStr(3, ep.Hostname)
			m.objectReference(4, ep.TargetRef)
			m.stringMap(5, ep.DeprecatedTopology)
			m.optStr(6, ep.NodeName)
			m.optStr(7, ep.Zone)
			if h := ep.Hints; h != nil {
				m.message(8, func(x *pb) {
					for _, z := range h.ForZones {
						x.message(1, func(f *pb) { f.str(1, z.Name) })
					}
					for _, n := range h.ForNodes {
						x.message(2, func(f *pb) { f.str(1, n.Name) })
					}
				})
			}
		})
	}
	for i := range s.Ports {
		p := &s.Ports[i]
		b.message(3, func(m *pb) {
			m.optStr(1, p.Name)
			m.optStr(2, p.Protocol)
			if p.Port != nil {
				m.int32(3, *p.Port)
			}
			m.optStr(4, p.AppProtocol)
		})
	}
	b.str(4, s.AddressType)
	return b
}

// MarshalListProto encodes a List message (EndpointsList,
// EndpointSliceList): its ListMeta, then items, each already encoded.
func MarshalListProto(resourceVersion, continueToken string, items [][]byte) []byte {
	var b pb
	b.message(1, func(m *pb) {
		m.str(1, "") // selfLink
		m.str(2, resourceVersion)
		m.str(3, continueToken)
	})
	for _, it := range items {
		b.bytes(2, it)
	}
	return b
}

// MarshalStatusProto encodes a meta/v1 Status (failure) message.
func MarshalStatusProto(code int32, reason, message string, retryAfterSeconds int32, causes []string) []byte {
	var b pb
	b.message(1, func(m *pb) { m.str(1, ""); m.str(2, ""); m.str(3, "") })
	b.str(2, "Failure")
	b.str(3, message)
	b.str(4, reason)
	if retryAfterSeconds != 0 || len(causes) > 0 {
		b.message(5, func(d *pb) {
			d.str(1, "")
			d.str(2, "")
			d.str(3, "")
			for _, c := range causes {
				d.message(4, func(x *pb) { x.str(1, c); x.str(2, ""); x.str(3, "") })
			}
			d.int32(5, retryAfterSeconds)
			d.str(6, "")
		})
	}
	b.int32(6, code)
	return b
}

// EnvelopeProto wraps msg as kube-apiserver writes an object: "k8s\x00",
// then a runtime.Unknown with the object's apiVersion and kind, and msg
// as its raw bytes.
func EnvelopeProto(apiVersion, kind string, msg []byte) []byte {
	b := pb("k8s\x00")
	b.message(1, func(t *pb) { t.str(1, apiVersion); t.str(2, kind) })
	b.bytes(2, msg)
	b.str(3, "") // contentEncoding
	b.str(4, "") // contentType
	return b
}

// WatchEventProto encodes a meta/v1 WatchEvent whose object is obj (an
// envelope), without its frame.
func WatchEventProto(typ string, obj []byte) []byte {
	var b pb
	b.str(1, typ)
	b.message(2, func(r *pb) { r.bytes(1, obj) })
	return b
}

// FrameProto prefixes msg with its 4-byte big-endian length, as a
// ";stream=watch" stream frames each event.
func FrameProto(msg []byte) []byte {
	out := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(msg)), uint32(len(msg)))
	return append(out, msg...)
}

// Serving protobuf: a request whose Accept header names the protobuf
// media type gets it, as from kube-apiserver (which would also take a
// weighted or later-listed protobuf; the tests send it first or alone).

const (
	mediaProtobuf      = "application/vnd.kubernetes.protobuf"
	mediaProtobufWatch = mediaProtobuf + ";stream=watch"
)

func acceptsProtobuf(r *http.Request) bool {
	for _, a := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(a, ",") {
			mt, _, _ := strings.Cut(part, ";")
			if strings.TrimSpace(mt) == mediaProtobuf {
				return true
			}
		}
	}
	return false
}

// protoResponse marks a response to be written as protobuf.
type protoResponse struct{ http.ResponseWriter }

// Unwrap lets http.ResponseController flush and hijack through it.
func (p *protoResponse) Unwrap() http.ResponseWriter { return p.ResponseWriter }

func isProto(w http.ResponseWriter) bool {
	_, ok := w.(*protoResponse)
	return ok
}

// protoMessage encodes a stored object (its JSON) as its protobuf message.
func protoMessage(res *resource, jsonObj []byte) []byte {
	obj := res.newObject()
	if err := json.Unmarshal(jsonObj, obj); err != nil {
		panic("fakeapi: a stored object is not valid JSON: " + err.Error())
	}
	return protoMessageOf(obj)
}

func protoMessageOf(obj object) []byte {
	switch o := obj.(type) {
	case *Endpoints:
		return MarshalEndpointsProto(o)
	case *EndpointSlice:
		return MarshalEndpointSliceProto(o)
	}
	panic("fakeapi: no protobuf encoding for " + fmt.Sprintf("%T", obj))
}

func protoEventFrame(res *resource, typ string, msg []byte) []byte {
	return FrameProto(WatchEventProto(typ, EnvelopeProto(res.apiVersion, res.kind, msg)))
}

func protoStatus(st *Status) []byte {
	var causes []string
	retry := 0
	if st.Details != nil {
		retry = st.Details.RetryAfterSeconds
		for _, c := range st.Details.Causes {
			causes = append(causes, c.Reason)
		}
	}
	return EnvelopeProto("v1", "Status", MarshalStatusProto(int32(st.Code), st.Reason, st.Message, int32(retry), causes))
}

// malformedProto is malformedItem in protobuf: an object with its
// metadata whose readable fields have the wrong wire type (a condition or
// a port number as a string).
func malformedProto(res *resource, ns string, rv uint64) []byte {
	if ns == "" {
		ns = "default"
	}
	var b pb
	b.message(1, func(m *pb) {
		m.str(1, "malformed")
		m.str(3, ns)
		m.str(5, fakeUID("malformed", ns))
		m.str(6, strconv.FormatUint(rv, 10))
	})
	if res == resEndpointSlices {
		b.message(2, func(e *pb) {
			e.str(1, "10.9.9.9")
			e.message(2, func(c *pb) { c.str(1, "yes") })
		})
		b.str(4, "IPv4")
		return b
	}
	b.message(2, func(s *pb) {
		s.message(1, func(a *pb) { a.str(1, "10.9.9.9") })
		s.message(3, func(p *pb) { p.str(1, "http"); p.str(2, "eighty") })
	})
	return b
}
