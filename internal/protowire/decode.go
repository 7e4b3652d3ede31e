// Package protowire reads the protobuf wire format as the Kubernetes
// apiserver writes it, knowing nothing of what the messages mean:
// varints, tags and wire types, bounded length-delimited fields, skipping
// what the reader does not ask for, the "k8s\x00" envelope
// (runtime.Unknown) and the 4-byte big-endian framing of a watch stream
// (";stream=watch").
//
// Every length comes from the peer and is hostile: a field can never reach
// past the message that holds it, and a frame or field held in memory is
// bounded. Field order is not relied on, and a field may come more than
// once (a repeated field split, a message merged): callers read fields as
// they come.
//
// Strings are borrowed: Decoder.String returns a string aliasing the bytes
// decoded, valid while they are.
package protowire

import (
	"errors"
	"fmt"
	"unsafe"
)

// Type is a wire type.
type Type uint8

const (
	Varint     Type = 0
	Fixed64    Type = 1
	Bytes      Type = 2 // length-delimited: strings, bytes, messages
	StartGroup Type = 3 // deprecated groups: skipped, never read
	EndGroup   Type = 4
	Fixed32    Type = 5
)

// MaxField is the largest field number the format allows.
const MaxField = 1<<29 - 1

var (
	// ErrTruncated: a varint, a length or a value reaches past the end of
	// the message (or the data) that holds it.
	ErrTruncated = errors.New("protobuf: truncated")
	// ErrFieldNumber: a tag with field number 0 or above MaxField.
	ErrFieldNumber = errors.New("protobuf: invalid field number")
)

// Decoder reads one message held whole in memory. The first error sticks:
// every later read returns a zero value and Next returns false, so a
// decoder reads on and checks Err once.
//
// Nested messages are read in place, bounded by their end offset:
//
//	for d.Next(d.Len()) { // the whole message
//		switch d.Field() {
//		case 1:
//			end := d.Message()
//			for d.Next(end) { ... }
//		default:
//			d.Skip()
//		}
//	}
type Decoder struct {
	b   []byte
	i   int
	lim int    // the end of the message whose field is being read
	tag uint32 // of the field being read: its number<<3 | its wire type
	err error
}

// Reset starts decoding b.
func (d *Decoder) Reset(b []byte) { *d = Decoder{b: b, lim: len(b)} }

// Len is the end offset of the whole data: Next's bound at the top level.
func (d *Decoder) Len() int { return len(d.b) }

// Err is the first error met, or nil.
func (d *Decoder) Err() error { return d.err }

// Offset is how far the decoder has read.
func (d *Decoder) Offset() int { return d.i }

func (d *Decoder) fail(err error) {
	if d.err == nil {
		d.err = fmt.Errorf("%w at byte %d", err, d.i)
	}
	d.i, d.lim = len(d.b), len(d.b)
}

// Next reads the tag of the next field of the message that ends at end,
// and reports whether there is one. Field and Type name it; the caller
// must then read its value (String, Uint64, Message, ...) or Skip it.
//
// A one-byte tag (fields 1 to 15, nearly every tag Kubernetes writes) is
// read here, small enough to inline; after an error d.i is at the end of
// the data (fail), so this path never runs then.
func (d *Decoder) Next(end int) bool {
	if i := d.i; i < end && i < len(d.b) {
		if tag := d.b[i]; tag-1<<3 < 0x80-1<<3 { // 1<<3 <= tag < 0x80
			d.i, d.lim, d.tag = i+1, end, uint32(tag)
			return true
		}
	}
	return d.nextSlow(end)
}

// nextSlow is Next at the end of a message, after an error, or for a tag
// of more than one byte (or field number 0).
func (d *Decoder) nextSlow(end int) bool {
	if d.i >= end || d.err != nil {
		return d.atEnd(end)
	}
	d.lim = end
	tag := d.varintLong()
	if n := tag >> 3; n-1 >= MaxField { // 0 wraps around
		d.fail(ErrFieldNumber)
		return false
	}
	d.tag = uint32(tag)
	return d.err == nil
}

// atEnd is Next at the end of a message, or after an error: a field that
// reached past the message's end is an error.
func (d *Decoder) atEnd(end int) bool {
	if d.err == nil && d.i > end {
		d.fail(ErrTruncated)
	}
	return false
}

// Field is the number of the field Next read.
func (d *Decoder) Field() int32 { return int32(d.tag >> 3) }

// Type is the wire type of the field Next read.
func (d *Decoder) Type() Type { return Type(d.tag & 7) }

// varint reads a varint of at most 10 bytes within the current bound.
// Bits past 64 are dropped, as the Go protobuf runtimes of Kubernetes do.
// Most varints (tags, lengths of names and addresses) are one byte: that
// case is small enough to inline (the profile of WatchApplyProtobuf: a
// quarter of the time was this function's call and loop).
func (d *Decoder) varint() uint64 {
	if d.i < d.lim {
		if c := d.b[d.i]; c < 0x80 {
			d.i++
			return uint64(c)
		}
	}
	return d.varintLong()
}

func (d *Decoder) varintLong() uint64 {
	var v uint64
	for shift, i := uint(0), d.i; shift < 70; shift += 7 {
		if i >= d.lim {
			d.fail(ErrTruncated)
			return 0
		}
		c := d.b[i]
		i++
		if shift < 64 {
			v |= uint64(c&0x7f) << shift
		}
		if c < 0x80 {
			d.i = i
			return v
		}
	}
	d.fail(errors.New("protobuf: varint over 10 bytes"))
	return 0
}

func (d *Decoder) want(t Type) bool {
	if d.err == nil && d.Type() == t {
		return true
	}
	d.wrongType(t)
	return false
}

func (d *Decoder) wrongType(t Type) {
	if d.err == nil {
		d.fail(fmt.Errorf("protobuf: field %d has wire type %d, want %d", d.Field(), d.Type(), t))
	}
}

// Uint64 reads a varint field.
func (d *Decoder) Uint64() uint64 {
	if i := d.i; d.Type() == Varint && i < d.lim && i < len(d.b) && d.b[i] < 0x80 {
		d.i = i + 1 // one byte: a bool, a small number
		return uint64(d.b[i])
	}
	if !d.want(Varint) {
		return 0
	}
	return d.varint()
}

// Int32 reads an int32 varint field (truncated, as the format defines).
func (d *Decoder) Int32() int32 { return int32(d.Uint64()) }

// Bool reads a bool varint field.
func (d *Decoder) Bool() bool { return d.Uint64() != 0 }

// length reads a length prefix and checks it against the bound: the
// value's end.
func (d *Decoder) length() int {
	var n uint64
	if i := d.i; i < d.lim && i < len(d.b) && d.b[i] < 0x80 {
		n = uint64(d.b[i])
		d.i = i + 1
	} else if i+1 < d.lim && i+1 < len(d.b) && d.b[i+1] < 0x80 {
		n = uint64(d.b[i]&0x7f) | uint64(d.b[i+1])<<7 // two bytes: 128 to 16,383
		d.i = i + 2
	} else {
		n = d.varintLong() // after a failed read, 0 at the end of the data
	}
	if n > uint64(d.lim-d.i) {
		d.fail(ErrTruncated)
		return d.i
	}
	return d.i + int(n)
}

// shortEnd is, for a length-delimited field whose length is one byte
// and within bounds (most of them), the end of its value, with d.i moved
// past the length; else -1, d.i unmoved, for length and its checks.
// After an error d.i is at the end of the data, so this never reads on.
func (d *Decoder) shortEnd() int {
	if i := d.i; d.Type() == Bytes && i < d.lim && i < len(d.b) {
		if n := int(d.b[i]); n < 0x80 && n < d.lim-i {
			d.i = i + 1
			return i + 1 + n
		}
	}
	return -1
}

// Raw reads a length-delimited field: the bytes alias the decoded data.
func (d *Decoder) Raw() []byte {
	if end := d.shortEnd(); end >= 0 {
		b := d.b[d.i:end:end]
		d.i = end
		return b
	}
	if !d.want(Bytes) {
		return nil
	}
	end := d.length()
	b := d.b[d.i:end:end]
	d.i = end
	return b
}

// String reads a string field, borrowing the decoded bytes.
func (d *Decoder) String() string {
	return borrow(d.Raw())
}

// StringPair reads an entry of a map<string, string> field (key 1,
// value 2, either absent meaning "") as reading its fields one by one
// would, the last of each winning. The layout every encoder writes (key
// then value, short) is read in one step: labels and annotations are a
// good part of an object's fields.
func (d *Decoder) StringPair() (key, value string) {
	if !d.want(Bytes) {
		return "", ""
	}
	end := d.length()
	if b := d.b[d.i:end]; len(b) >= 4 && b[0] == 1<<3|byte(Bytes) && b[1] < 0x80 {
		k := int(b[1])
		if 4+k <= len(b) && b[2+k] == 2<<3|byte(Bytes) && b[3+k] < 0x80 && 4+k+int(b[3+k]) == len(b) {
			d.i = end
			return borrow(b[2 : 2+k]), borrow(b[4+k:])
		}
	}
	for d.Next(end) {
		switch d.Field() {
		case 1:
			key = d.String()
		case 2:
			value = d.String()
		default:
			d.Skip()
		}
	}
	return key, value
}

func borrow(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// Message enters an embedded message field and returns its end offset,
// for Next(end). After its fields the decoder is past it.
func (d *Decoder) Message() int {
	if end := d.shortEnd(); end >= 0 {
		return end
	}
	if !d.want(Bytes) {
		return d.i
	}
	return d.length()
}

// Skip moves past the value of the field Next read, by its wire type.
func (d *Decoder) Skip() {
	if end := d.shortEnd(); end >= 0 {
		d.i = end
		return
	}
	if d.err != nil {
		return
	}
	switch d.Type() {
	case Varint:
		d.varint()
	case Fixed64:
		d.advance(8)
	case Fixed32:
		d.advance(4)
	case Bytes:
		d.i = d.length()
	case StartGroup:
		d.skipGroup()
	default:
		d.fail(fmt.Errorf("protobuf: field %d has wire type %d", d.Field(), d.Type()))
	}
}

func (d *Decoder) advance(n int) {
	if d.lim-d.i < n {
		d.fail(ErrTruncated)
		return
	}
	d.i += n
}

// skipGroup skips a (deprecated) group up to its matching end, without
// recursion: the nesting is counted.
func (d *Decoder) skipGroup() {
	for depth := 1; depth > 0; {
		if !d.Next(d.lim) {
			d.fail(ErrTruncated)
			return
		}
		switch d.Type() {
		case StartGroup:
			depth++
		case EndGroup:
			depth--
		default:
			d.Skip()
		}
	}
}
