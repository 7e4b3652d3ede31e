package protowire

import (
	"bytes"
	"errors"
	"fmt"
)

// Magic starts every object the apiserver encodes as protobuf (a LIST
// answer, a Status, the object of a watch event): a runtime.Unknown
// message follows it.
const Magic = "k8s\x00"

// runtime.Unknown's fields (k8s.io/apimachinery/pkg/runtime/generated.proto).
const (
	unknownTypeMeta        = 1
	unknownRaw             = 2
	unknownContentEncoding = 3
)

// IsEnvelope reports whether b starts with the protobuf magic.
func IsEnvelope(b []byte) bool { return bytes.HasPrefix(b, []byte(Magic)) }

// Unwrap returns the message inside an envelope: the Magic, then a
// runtime.Unknown whose raw field holds the object. The result aliases b.
func Unwrap(b []byte) ([]byte, error) {
	if !IsEnvelope(b) {
		return nil, errors.New("protobuf: no k8s envelope")
	}
	var d Decoder
	d.Reset(b[len(Magic):])
	var raw []byte
	for d.Next(d.Len()) {
		switch d.Field() {
		case unknownRaw:
			raw = d.Raw() // a bytes field: the last one wins
		case unknownContentEncoding:
			if enc := d.String(); enc != "" {
				return nil, fmt.Errorf("protobuf: unsupported content encoding %q", enc)
			}
		default:
			d.Skip() // typeMeta, contentType
		}
	}
	if err := d.Err(); err != nil {
		return nil, err
	}
	return raw, nil
}

// EnvelopeHeader appends to dst the bytes that, followed by n bytes of a
// message, make an envelope of it: the Magic and a runtime.Unknown with
// only its raw field, n bytes long.
func EnvelopeHeader(dst []byte, n int) []byte {
	dst = append(dst, Magic...)
	dst = append(dst, unknownRaw<<3|byte(Bytes))
	return AppendVarint(dst, uint64(n))
}

// MaxEnvelopeHeader bounds len(EnvelopeHeader(nil, n)).
const MaxEnvelopeHeader = len(Magic) + 1 + 10

// AppendVarint appends v as a varint.
func AppendVarint(dst []byte, v uint64) []byte {
	for v >= 0x80 {
		dst = append(dst, byte(v)|0x80)
		v >>= 7
	}
	return append(dst, byte(v))
}
