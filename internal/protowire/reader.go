package protowire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Reader reads a protobuf stream without holding it whole: the frames of
// a watch stream, or the fields of a LIST answer one by one, into one
// reused buffer. What it returns is valid until its next call.
type Reader struct {
	r     io.Reader
	buf   []byte // data is buf[off:]
	off   int
	err   error // sticky read error (io.EOF at the end)
	chunk int   // bytes asked of r per read
	max   int   // the largest frame or field held in memory
	read  int64 // bytes consumed
}

// NewReader reads r in chunks of chunk bytes, holding at most max bytes
// of one frame or field.
func NewReader(r io.Reader, chunk, max int) *Reader {
	return &Reader{r: r, buf: make([]byte, 0, 2*chunk), chunk: chunk, max: max}
}

// TooLargeError: a frame or field longer than the reader holds.
type TooLargeError struct{ Len, Max uint64 }

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("protobuf: a frame or field of %d bytes, over the %d held", e.Len, e.Max)
}

// Consumed is how many bytes of the stream have been consumed.
func (r *Reader) Consumed() int64 { return r.read }

// fill reads until at least n bytes are buffered, keeping buf[off:]; it
// fails with io.ErrUnexpectedEOF (or the read error) when the stream ends
// first.
func (r *Reader) fill(n int) error {
	for len(r.buf)-r.off < n {
		if r.err != nil {
			if r.err == io.EOF {
				return io.ErrUnexpectedEOF
			}
			return r.err
		}
		if r.off > 0 { // slide down what is left: less than n bytes
			m := copy(r.buf, r.buf[r.off:])
			r.buf, r.off = r.buf[:m], 0
		}
		if want := max(n, len(r.buf)+r.chunk); cap(r.buf) < want {
			grown := make([]byte, len(r.buf), max(want, 2*cap(r.buf)))
			copy(grown, r.buf)
			r.buf = grown
		}
		r.read1()
	}
	return nil
}

// read1 reads once into the free space of buf.
func (r *Reader) read1() {
	for range 100 { // a reader returning 0, nil forever is broken
		n, err := r.r.Read(r.buf[len(r.buf):cap(r.buf)])
		r.buf = r.buf[:len(r.buf)+n]
		if err != nil {
			r.err = err
			return
		}
		if n > 0 {
			return
		}
	}
	r.err = io.ErrNoProgress
}

// AtEOF reports whether the stream ended cleanly here: nothing is
// buffered and the underlying reader said io.EOF. Any other read error
// is returned.
func (r *Reader) AtEOF() (bool, error) {
	if r.off < len(r.buf) {
		return false, nil
	}
	if r.err == nil {
		r.off, r.buf = 0, r.buf[:0]
		r.read1()
	}
	if r.off < len(r.buf) {
		return false, nil
	}
	if r.err == io.EOF {
		return true, nil
	}
	return false, r.err
}

// Next returns the next n bytes, consuming them.
func (r *Reader) Next(n int) ([]byte, error) {
	if n < 0 || n > r.max {
		return nil, &TooLargeError{Len: uint64(max(n, 0)), Max: uint64(r.max)}
	}
	if err := r.fill(n); err != nil {
		return nil, err
	}
	b := r.buf[r.off : r.off+n : r.off+n]
	r.off += n
	r.read += int64(n)
	return b, nil
}

// Frame reads one frame of a watch stream: a 4-byte big-endian length,
// then that many bytes. It returns io.EOF when the stream ended cleanly
// between frames.
func (r *Reader) Frame() ([]byte, error) {
	if eof, err := r.AtEOF(); eof || err != nil {
		if eof {
			return nil, io.EOF
		}
		return nil, err
	}
	if err := r.fill(4); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(r.buf[r.off:])
	if uint64(n) > uint64(r.max) {
		return nil, &TooLargeError{Len: uint64(n), Max: uint64(r.max)}
	}
	r.off += 4
	r.read += 4
	return r.Next(int(n))
}

// Varint reads a varint.
func (r *Reader) Varint() (uint64, error) {
	var v uint64
	for shift := uint(0); shift < 70; shift += 7 {
		if err := r.fill(1); err != nil {
			return 0, err
		}
		c := r.buf[r.off]
		r.off++
		r.read++
		if shift < 64 {
			v |= uint64(c&0x7f) << shift
		}
		if c < 0x80 {
			return v, nil
		}
	}
	return 0, errors.New("protobuf: varint over 10 bytes")
}

// Tag reads a field's tag. It returns io.EOF when the stream ended
// cleanly before it.
func (r *Reader) Tag() (int32, Type, error) {
	if eof, err := r.AtEOF(); eof || err != nil {
		if eof {
			return 0, 0, io.EOF
		}
		return 0, 0, err
	}
	tag, err := r.Varint()
	if err != nil {
		return 0, 0, err
	}
	if n := tag >> 3; n == 0 || n > MaxField {
		return 0, 0, ErrFieldNumber
	} else {
		return int32(n), Type(tag & 7), nil
	}
}

// Length reads a length prefix, which must not exceed limit (what is
// left of the message holding the field).
func (r *Reader) Length(limit int64) (int64, error) {
	n, err := r.Varint()
	if err != nil {
		return 0, err
	}
	if n > uint64(limit) {
		return 0, ErrTruncated
	}
	return int64(n), nil
}

// Discard consumes n bytes without holding them.
func (r *Reader) Discard(n int64) error {
	for n > 0 {
		if r.off == len(r.buf) {
			if err := r.fill(1); err != nil {
				return err
			}
		}
		k := min(n, int64(len(r.buf)-r.off))
		r.off += int(k)
		r.read += k
		n -= k
	}
	return nil
}

// Skip consumes the value of a field of wire type t, which must not reach
// past limit (what is left of the message holding it). Groups are not
// skipped in a stream: an error.
func (r *Reader) Skip(t Type, limit int64) error {
	start := r.read
	var err error
	switch t {
	case Varint:
		_, err = r.Varint()
	case Fixed64:
		err = r.Discard(8)
	case Fixed32:
		err = r.Discard(4)
	case Bytes:
		var n int64
		if n, err = r.Length(limit); err == nil {
			if n > limit-(r.read-start) {
				return ErrTruncated
			}
			err = r.Discard(n)
		}
	default:
		return fmt.Errorf("protobuf: wire type %d in a stream", t)
	}
	if err == nil && r.read-start > limit {
		return ErrTruncated
	}
	return err
}
