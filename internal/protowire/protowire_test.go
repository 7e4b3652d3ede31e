package protowire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"testing"
	"testing/iotest"
)

func tag(field int, t Type) []byte { return AppendVarint(nil, uint64(field)<<3|uint64(t)) }

func str(field int, s string) []byte {
	b := append(tag(field, Bytes), AppendVarint(nil, uint64(len(s)))...)
	return append(b, s...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// A message: 1: "a", 2: {1: 7, 3: "x"}, 5: fixed32, 6: fixed64; read in
// place with nested bounds.
func TestDecoderNestedMessage(t *testing.T) {
	inner := cat(tag(1, Varint), AppendVarint(nil, 7), str(3, "x"))
	msg := cat(str(1, "a"), str(2, string(inner)), tag(5, Fixed32), []byte{1, 2, 3, 4}, tag(6, Fixed64), make([]byte, 8), str(1, "b"))
	var d Decoder
	d.Reset(msg)
	var got []string
	var n uint64
	for d.Next(d.Len()) {
		switch d.Field() {
		case 1:
			got = append(got, d.String())
		case 2:
			end := d.Message()
			for d.Next(end) {
				if d.Field() == 1 {
					n = d.Uint64()
				} else {
					d.Skip()
				}
			}
		default:
			d.Skip()
		}
	}
	if d.Err() != nil || len(got) != 2 || got[0] != "a" || got[1] != "b" || n != 7 {
		t.Fatalf("got %q %d err %v", got, n, d.Err())
	}
}

// Every length is hostile: a field that reaches past its message (not
// only past the data) is an error, and so is every cut of a valid message.
func TestDecoderBoundsEveryLength(t *testing.T) {
	inner := str(1, "hello")
	// The inner message claims 5 bytes of string, but its own length
	// says it has 3: the string must not be read from the outer bytes.
	lying := cat(tag(2, Bytes), []byte{3}, inner, str(1, "zz"))
	var d Decoder
	d.Reset(lying)
	for d.Next(d.Len()) {
		if d.Field() == 2 {
			end := d.Message()
			for d.Next(end) {
				_ = d.String()
			}
		} else {
			d.Skip()
		}
	}
	if !errors.Is(d.Err(), ErrTruncated) {
		t.Fatalf("a string past its message's end: want ErrTruncated, got %v", d.Err())
	}

	f1, f2 := str(1, "a"), str(2, string(cat(tag(1, Varint), []byte{0x96, 0x01}, str(3, "xyz"))))
	whole := cat(f1, f2, tag(7, Fixed64), make([]byte, 8))
	for cut := 1; cut < len(whole); cut++ {
		if cut == len(f1) || cut == len(f1)+len(f2) {
			continue // between fields: a whole (shorter) message
		}
		d.Reset(whole[:cut])
		for d.Next(d.Len()) {
			if d.Field() == 2 {
				end := d.Message()
				for d.Next(end) {
					d.Skip()
				}
			} else {
				d.Skip()
			}
		}
		if d.Err() == nil {
			t.Errorf("cut at %d of %d: no error", cut, len(whole))
		}
	}
	// A length of 2^63 must not overflow into a small one.
	d.Reset(cat(tag(1, Bytes), AppendVarint(nil, math.MaxUint64), []byte("x")))
	for d.Next(d.Len()) {
		d.Skip()
	}
	if !errors.Is(d.Err(), ErrTruncated) {
		t.Fatalf("huge length: %v", d.Err())
	}
}

func TestDecoderTagsAndWireTypes(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"field 0", cat(tag(0, Varint), []byte{1}), false},
		{"field above 2^29-1", cat(AppendVarint(nil, uint64(MaxField+1)<<3), []byte{1}), false},
		{"largest field", cat(AppendVarint(nil, uint64(MaxField)<<3), []byte{1}), true},
		{"a group skipped", cat(tag(9, StartGroup), str(1, "x"), tag(2, StartGroup), tag(2, EndGroup), tag(9, EndGroup), str(1, "y")), true},
		{"an end group alone", cat(tag(9, EndGroup)), false},
		{"an unclosed group", cat(tag(9, StartGroup), str(1, "x")), false},
		{"wire type 6", cat(tag(1, 6)), false},
		{"varint of 11 bytes", cat(tag(1, Varint), bytes.Repeat([]byte{0xff}, 10), []byte{1}), false},
		{"varint of 10 bytes", cat(tag(1, Varint), bytes.Repeat([]byte{0xff}, 9), []byte{1}), true},
	} {
		var d Decoder
		d.Reset(tc.b)
		for d.Next(d.Len()) {
			d.Skip()
		}
		if (d.Err() == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", tc.name, d.Err(), tc.ok)
		}
	}
	// A field read as the wrong wire type is an error, not a guess.
	var d Decoder
	d.Reset(str(1, "x"))
	for d.Next(d.Len()) {
		_ = d.Uint64()
	}
	if d.Err() == nil {
		t.Fatal("a string read as a varint: no error")
	}
}

func TestUnwrap(t *testing.T) {
	unknown := cat(str(1, string(cat(str(1, "v1"), str(2, "Endpoints")))), str(2, "MSG"), str(3, ""), str(4, ""))
	raw, err := Unwrap(cat([]byte(Magic), unknown))
	if err != nil || string(raw) != "MSG" {
		t.Fatalf("got %q, %v", raw, err)
	}
	if _, err := Unwrap(cat([]byte(Magic), str(2, "MSG"), str(3, "gzip"))); err == nil {
		t.Fatal("a content encoding: no error")
	}
	if _, err := Unwrap([]byte(`{"kind":"Status"}`)); err == nil {
		t.Fatal("JSON: no error")
	}
	// EnvelopeHeader + message is an envelope Unwrap reads.
	msg := bytes.Repeat([]byte{'m'}, 300)
	env := append(EnvelopeHeader(nil, len(msg)), msg...)
	if raw, err := Unwrap(env); err != nil || !bytes.Equal(raw, msg) {
		t.Fatalf("EnvelopeHeader: %v", err)
	}
	if n := len(EnvelopeHeader(nil, math.MaxInt)); n > MaxEnvelopeHeader {
		t.Fatalf("header of %d bytes over MaxEnvelopeHeader", n)
	}
}

func frames(msgs ...string) []byte {
	var b []byte
	for _, m := range msgs {
		b = binary.BigEndian.AppendUint32(b, uint32(len(m)))
		b = append(b, m...)
	}
	return b
}

// The watch framing read through a reader that returns the stream in
// two reads split at every byte, and one byte at a time: the same frames.
func TestFrameSplitReadsAtEveryByte(t *testing.T) {
	want := []string{"first", "", string(bytes.Repeat([]byte{'x'}, 700)), "last"}
	stream := frames(want...)
	check := func(name string, r io.Reader) {
		t.Helper()
		pr := NewReader(r, 16, 1<<20) // a small chunk: frames span many reads
		for i, w := range want {
			got, err := pr.Frame()
			if err != nil || string(got) != w {
				t.Fatalf("%s: frame %d: %q, %v", name, i, got, err)
			}
		}
		if _, err := pr.Frame(); err != io.EOF {
			t.Fatalf("%s: after the last frame: %v, want io.EOF", name, err)
		}
	}
	for cut := 0; cut <= len(stream); cut++ {
		check("split", io.MultiReader(bytes.NewReader(stream[:cut]), bytes.NewReader(stream[cut:])))
	}
	check("one byte a read", iotest.OneByteReader(bytes.NewReader(stream)))
	check("data with EOF", iotest.DataErrReader(bytes.NewReader(stream)))
}

// A stream cut inside a frame (its length or its bytes) is an unexpected
// EOF, never a clean end; a length over the bound is refused before
// anything is buffered.
func TestFrameCutAndTooLarge(t *testing.T) {
	stream := frames("abc", "defgh")
	for cut := 1; cut < len(stream); cut++ {
		if cut == 7 { // between the frames: a clean end
			continue
		}
		pr := NewReader(bytes.NewReader(stream[:cut]), 4, 100)
		var err error
		for err == nil {
			_, err = pr.Frame()
		}
		if err != io.ErrUnexpectedEOF {
			t.Errorf("cut at %d: %v, want io.ErrUnexpectedEOF", cut, err)
		}
	}
	pr := NewReader(bytes.NewReader(binary.BigEndian.AppendUint32(nil, 1<<31)), 4, 1<<20)
	var tl *TooLargeError
	if _, err := pr.Frame(); !errors.As(err, &tl) {
		t.Fatalf("a 2 GiB frame: %v", err)
	}
}

// Reader's field reads, as a LIST answer is streamed: tags, lengths
// bounded by what is left, skips that never hold what they skip.
func TestReaderFields(t *testing.T) {
	body := cat(str(1, "meta"), tag(3, Varint), []byte{0x96, 0x01}, str(2, string(bytes.Repeat([]byte{'i'}, 5000))), tag(4, Fixed32), []byte{1, 2, 3, 4})
	for cut := 0; cut <= len(body); cut += 37 {
		pr := NewReader(io.MultiReader(bytes.NewReader(body[:cut]), bytes.NewReader(body[cut:])), 64, 100)
		var seen []int32
		for {
			f, typ, err := pr.Tag()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			seen = append(seen, f)
			if f == 1 {
				n, err := pr.Length(1 << 20)
				if err != nil {
					t.Fatal(err)
				}
				if b, err := pr.Next(int(n)); err != nil || string(b) != "meta" {
					t.Fatalf("%q %v", b, err)
				}
				continue
			}
			if err := pr.Skip(typ, 1<<20); err != nil { // 5000 bytes skipped through a 100-byte bound
				t.Fatal(err)
			}
		}
		if len(seen) != 4 || pr.Consumed() != int64(len(body)) {
			t.Fatalf("cut %d: fields %v, consumed %d of %d", cut, seen, pr.Consumed(), len(body))
		}
	}
	pr := NewReader(bytes.NewReader(str(2, "abcdef")), 64, 100)
	if _, typ, err := pr.Tag(); err != nil || pr.Skip(typ, 3) == nil {
		t.Fatal("a field longer than what is left of its message: no error")
	}
}

// StringPair reads what reading a map entry's fields one by one reads
// (the last key and value winning, others skipped), with the same error,
// on every entry built from pieces that are and are not its fast layout:
// short and long strings, fields repeated, missing, reordered, of the
// wrong wire type, unknown, cut short.
func TestStringPairAgreesWithFields(t *testing.T) {
	long := string(bytes.Repeat([]byte{'v'}, 130))
	pieces := [][]byte{str(1, "k"), str(1, ""), str(1, long), str(2, "v"), str(2, ""), str(2, long), str(3, "x"),
		cat(tag(1, Varint), []byte{5}), cat(tag(2, Fixed32), []byte{1, 2, 3, 4}), {2 << 3, 0x80, 1}, {1<<3 | 2, 3, 'a'}, {0}}
	generic := func(d *Decoder) (key, value string) {
		end := d.Message()
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
	var entries [][]byte
	for _, a := range pieces {
		entries = append(entries, a)
		for _, b := range pieces {
			entries = append(entries, cat(a, b))
			for _, c := range pieces[:7] {
				entries = append(entries, cat(a, b, c))
			}
		}
	}
	for _, e := range entries {
		for _, msg := range [][]byte{cat(str(11, string(e)), str(1, "after")), cat(tag(11, Bytes), AppendVarint(nil, uint64(len(e)+1)), e)} {
			var fast, slow Decoder
			fast.Reset(msg)
			slow.Reset(msg)
			var got, want [3]string
			for fast.Next(fast.Len()) {
				if fast.Field() == 11 {
					got[0], got[1] = fast.StringPair()
				} else {
					got[2] = fast.String()
				}
			}
			for slow.Next(slow.Len()) {
				if slow.Field() == 11 {
					want[0], want[1] = generic(&slow)
				} else {
					want[2] = slow.String()
				}
			}
			if got != want || (fast.Err() == nil) != (slow.Err() == nil) || fast.Offset() != slow.Offset() {
				t.Fatalf("entry % x: StringPair %q %v, fields one by one %q %v", e, got, fast.Err(), want, slow.Err())
			}
		}
	}
}
