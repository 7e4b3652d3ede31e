// Package jsonscan frames and scans JSON bytes, fast, and knows nothing of
// what they mean: it is the leaf under kdisc's list-watch (beside
// internal/protowire, its protobuf counterpart).
//
// The hot path of discovery is decoding watch events and LIST items, most
// of whose bytes (managedFields, annotations, targetRefs) discovery never
// reads. json-iterator's Skip reads every field name of what it skips as a
// Go string (the profile of BenchmarkWatchApply: ReadString, Skip and the
// allocator over half the time, 128 allocations per event), so the hot path
// uses two small byte-level readers instead:
//
//   - a Reader cuts a stream into complete top-level values (watch
//     events) or walks a LIST envelope, reading the body in chunks into
//     one reused buffer;
//   - a Scanner decodes one value held in memory, matching only the keys
//     its caller reads and skipping everything else by its bytes.
//
// Strings are borrowed: a Scanner returns strings that alias the bytes it
// reads (unsafe.String), valid only until those bytes are reused (the next
// event or item). Code that keeps a decoded string clones or interns it.
package jsonscan

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// MaxFrame bounds one watch event or LIST item: the apiserver refuses
// objects over 1.5 MiB (etcd's request limit), so anything this large is
// not an object kdisc should buffer.
const MaxFrame = 64 << 20

var errFrameTooLarge = fmt.Errorf("a single JSON value over %d bytes", MaxFrame)

// Reader reads JSON values from a stream into a reused buffer.
type Reader struct {
	r     io.Reader
	buf   []byte // data is buf[off:len(buf)]
	off   int
	err   error // sticky read error (io.EOF at the end)
	chunk int   // bytes asked of r per read
}

// NewReader reads r, asking it for chunk bytes at a time.
func NewReader(r io.Reader, chunk int) *Reader {
	return &Reader{r: r, buf: make([]byte, 0, 2*chunk), chunk: chunk}
}

// fill reads more of the stream, keeping buf[off:], and reports whether
// anything arrived. The bytes of earlier values may move: callers hold
// offsets relative to off, not slices, across a fill.
func (f *Reader) fill() bool {
	if f.err != nil {
		return false
	}
	if f.off > 0 && f.off == len(f.buf) {
		f.buf, f.off = f.buf[:0], 0
	}
	if cap(f.buf)-len(f.buf) < f.chunk {
		if f.off > 0 && f.off >= len(f.buf)/2 { // slide down rather than grow
			n := copy(f.buf, f.buf[f.off:])
			f.buf, f.off = f.buf[:n], 0
		}
		if cap(f.buf)-len(f.buf) < f.chunk {
			grown := make([]byte, len(f.buf)-f.off, 2*cap(f.buf)+f.chunk)
			copy(grown, f.buf[f.off:])
			f.buf, f.off = grown, 0
		}
	}
	for range 100 { // a reader returning 0, nil forever is broken
		n, err := f.r.Read(f.buf[len(f.buf):cap(f.buf)])
		f.buf = f.buf[:len(f.buf)+n]
		if err != nil {
			f.err = err
		}
		if n > 0 {
			return true
		}
		if err != nil {
			return false
		}
	}
	f.err = io.ErrNoProgress
	return false
}

// Peek skips white space and returns the next byte without consuming it.
// At the end of the stream it returns the read error (io.EOF when clean).
func (f *Reader) Peek() (byte, error) {
	for {
		for f.off < len(f.buf) {
			switch c := f.buf[f.off]; c {
			case ' ', '\t', '\n', '\r':
				f.off++
			default:
				return c, nil
			}
		}
		if !f.fill() {
			return 0, f.err
		}
	}
}

// Expect consumes the byte c, which must come next.
func (f *Reader) Expect(c byte) error {
	got, err := f.Peek()
	if err != nil {
		return UnexpectedEOF(err)
	}
	if got != c {
		return fmt.Errorf("json: expected %q, found %q", c, got)
	}
	f.off++
	return nil
}

// Elements walks the object or array that comes next: after its open
// byte, each reads one element (an object's member: name, colon and
// value; or an array's item) and must consume it; elements reads the
// commas between them and the close.
func (f *Reader) Elements(open, close byte, each func() error) error {
	if err := f.Expect(open); err != nil {
		return err
	}
	if c, err := f.Peek(); err == nil && c == close {
		f.off++
		return nil
	}
	for {
		if err := each(); err != nil {
			return err
		}
		c, err := f.Peek()
		if err != nil {
			return UnexpectedEOF(err)
		}
		f.off++
		switch c {
		case ',':
		case close:
			return nil
		default:
			return fmt.Errorf("json: expected ',' or %q, found %q", close, c)
		}
	}
}

// Key reads an object member's name and the colon after it.
func (f *Reader) Key() (string, error) {
	raw, err := f.Value()
	if err != nil {
		return "", UnexpectedEOF(err)
	}
	var s Scanner
	s.Reset(raw)
	key := strings.Clone(s.Str()) // raw is reused by the next read
	if s.End(); s.err != nil {
		return "", s.err
	}
	return key, f.Expect(':')
}

// Discard consumes the next n bytes, which the caller has read from what
// Line returned.
func (f *Reader) Discard(n int) { f.off += n }

// Line returns the bytes up to the next newline (or the end of the
// stream) without consuming them; valid until the next read.
func (f *Reader) Line() ([]byte, error) {
	searched := 0
	for {
		if nl := bytes.IndexByte(f.buf[f.off+searched:], '\n'); nl >= 0 {
			return f.buf[f.off : f.off+searched+nl], nil
		}
		searched = len(f.buf) - f.off
		if searched > MaxFrame {
			return nil, errFrameTooLarge
		}
		if !f.fill() {
			if f.err == io.EOF {
				return f.buf[f.off:], nil
			}
			return nil, f.err
		}
	}
}

// Value returns the next complete JSON value (of any type) and consumes
// it. The bytes are valid until the next call. It checks only the
// structure needed to find the value's end; its content is checked by
// whoever decodes it.
func (f *Reader) Value() ([]byte, error) {
	if _, err := f.Peek(); err != nil {
		return nil, err
	}
	var s valueEnd
	scanned := 0 // bytes of the value looked at, from f.off
	for {
		n, done := s.scan(f.buf[f.off+scanned:])
		scanned += n
		if done {
			v := f.buf[f.off : f.off+scanned]
			f.off += scanned
			return v, nil
		}
		if scanned > MaxFrame {
			return nil, errFrameTooLarge
		}
		if !f.fill() {
			if f.err == io.EOF && s.scalar && scanned > 0 {
				v := f.buf[f.off : f.off+scanned] // a number or literal ends with the stream
				f.off += scanned
				return v, nil
			}
			return nil, UnexpectedEOF(f.err)
		}
	}
}

// UnexpectedEOF turns io.EOF, met inside a value, into
// io.ErrUnexpectedEOF.
func UnexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// valueEnd finds where one JSON value ends, fed the value's bytes in
// pieces.
type valueEnd struct {
	started bool
	scalar  bool // a number or literal: ends at the first byte not of it
	depth   int
	inStr   bool
	esc     bool
}

// scan consumes bytes of b, returning how many belong to the value and
// whether the value ended within them.
func (s *valueEnd) scan(b []byte) (int, bool) {
	i := 0
	if !s.started {
		if len(b) == 0 {
			return 0, false
		}
		s.started = true
		switch b[0] {
		case '{', '[':
			s.depth = 1
		case '"':
			s.inStr = true
		default:
			s.scalar = true
		}
		i = 1
	}
	if s.scalar {
		for ; i < len(b); i++ {
			if !isScalarByte(b[i]) {
				return i, true
			}
		}
		return i, false
	}
	// Locals, not the fields, in the loop: it is the hottest of decoding.
	depth, inStr, esc := s.depth, s.inStr, s.esc
	defer func() { s.depth, s.inStr, s.esc = depth, inStr, esc }()
	for i < len(b) {
		if inStr {
			if esc {
				esc = false
				i++
				continue
			}
			j, isEsc := quote(b[i:])
			if j < 0 {
				return len(b), false
			}
			if isEsc {
				// Past the backslash and the byte it escapes: the quote
				// search resumes after both (the escaped byte may be in
				// the next piece of a stream).
				i += j + 1
				esc = true
				continue
			}
			i += j + 1
			inStr = false
			if depth == 0 {
				return i, true
			}
			continue
		}
		switch b[i] {
		case '"':
			inStr = true
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1, true
			}
		}
		i++
	}
	return i, false
}

// isScalarByte reports whether c may continue a number or a literal
// (true, false, null).
func isScalarByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '+' || c == '.'
}

// Scanner decodes one JSON value held whole in memory. The first error
// sticks: every later read returns a zero value, so decoders read on and
// check err once at the end.
type Scanner struct {
	b   []byte
	i   int
	err error
}

func (s *Scanner) Reset(b []byte) { *s = Scanner{b: b} }

// Err is the first error met, nil while the bytes read well.
func (s *Scanner) Err() error { return s.err }

// Pos is the offset of the next byte to read.
func (s *Scanner) Pos() int { return s.i }

// Consume skips white space and consumes c if it comes next, reporting
// whether it did.
func (s *Scanner) Consume(c byte) bool {
	if s.Next() != c {
		return false
	}
	s.i++
	return true
}

var ErrUnexpectedEnd = errors.New("json: unexpected end of value")

func (s *Scanner) fail(what string) {
	if s.err != nil {
		return
	}
	if s.i >= len(s.b) {
		s.err = fmt.Errorf("%w: expected %s", ErrUnexpectedEnd, what)
		return
	}
	lo, hi := max(0, s.i-20), min(len(s.b), s.i+20)
	s.err = fmt.Errorf("json: expected %s at byte %d, near %q", what, s.i, s.b[lo:hi])
	s.i = len(s.b) // every later read finds the end
}

// Next skips white space and returns the next byte (0 at the end or after
// an error).
func (s *Scanner) Next() byte {
	i, b := s.i, s.b
	for ; i < len(b); i++ {
		if c := b[i]; c > ' ' || (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
			s.i = i
			return c
		}
	}
	s.i = i
	return 0
}

// Open starts an object ('{') or an array ('[') and reports whether it
// has a first member; null reads as empty. Then, after each member,
// More(close) moves past the comma and reports whether another follows:
//
//	for ok := s.Open('{'); ok; ok = s.More('}') { key := s.Key(); ... }
func (s *Scanner) Open(kind byte) bool {
	switch s.Next() {
	case kind:
		s.i++
	case 'n':
		s.literal("null")
		return false
	default:
		s.fail(kindName(kind))
		return false
	}
	if s.Next() == kind+2 { // '{'+2 is '}', '['+2 is ']'
		s.i++
		return false
	}
	return s.err == nil
}

func (s *Scanner) More(close byte) bool {
	switch s.Next() {
	case ',':
		s.i++
		return true
	case close:
		s.i++
		return false
	}
	s.fail(fmt.Sprintf("',' or %q", close))
	return false
}

func kindName(kind byte) string {
	if kind == '{' {
		return "an object"
	}
	return "an array"
}

// Key reads an object member's name and the colon after it.
func (s *Scanner) Key() string {
	k := s.Str()
	if s.Next() != ':' {
		s.fail("':'")
		return ""
	}
	s.i++
	return k
}

// Str reads a string. The result aliases the scanned bytes unless it had
// escapes.
func (s *Scanner) Str() string {
	if s.Next() != '"' {
		s.fail("a string")
		return ""
	}
	start := s.i + 1
	j, esc := quote(s.b[start:])
	switch {
	case j < 0:
		s.i = len(s.b)
		s.fail("the end of a string")
		return ""
	case esc:
		return s.unescape(start) // rare: names and addresses have no escapes
	}
	s.i = start + j + 1
	return Borrow(s.b[start : start+j])
}

// quote finds the first quote or backslash in b: its index, and whether it
// is a backslash; -1 when b has neither. It looks at 8 bytes a step (the
// profile of decoding: the end of strings is where the time goes).
func quote(b []byte) (int, bool) {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		if m := zeroBytes(x^quotes) | zeroBytes(x^backslashes); m != 0 {
			i += bits.TrailingZeros64(m) >> 3
			return i, b[i] == '\\'
		}
	}
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			return i, false
		case '\\':
			return i, true
		}
	}
	return -1, false
}

const (
	ones        = 0x0101010101010101
	highs       = 0x8080808080808080
	quotes      = '"' * ones
	backslashes = '\\' * ones
)

// zeroBytes flags the zero bytes of x (the high bit of each); only the
// lowest flag is exact (a borrow may flag bytes above it), which is all
// quote needs.
func zeroBytes(x uint64) uint64 { return (x - ones) &^ x & highs }

// Borrow returns b as a string without copying: valid while b is.
func Borrow(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// unescape reads the string starting at start (after its quote) that has
// escapes, into new memory.
func (s *Scanner) unescape(start int) string {
	out := make([]byte, 0, 32)
	i := start
	for i < len(s.b) {
		c := s.b[i]
		switch {
		case c == '"':
			s.i = i + 1
			return string(out)
		case c < 0x20:
			s.i = i
			s.fail("no control character in a string")
			return ""
		case c != '\\':
			out = append(out, c)
			i++
			continue
		}
		if i+1 >= len(s.b) {
			break
		}
		i += 2
		switch e := s.b[i-1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, n := s.hex4(i)
			if n == 0 {
				return ""
			}
			i += n
			if utf16.IsSurrogate(r) {
				if r2, n2 := s.surrogate(i); n2 > 0 {
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						r, i = d, i+n2
					} else {
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			s.i = i - 1
			s.fail("a valid escape")
			return ""
		}
	}
	s.i = len(s.b)
	s.fail("the end of a string")
	return ""
}

// hex4 reads the 4 hex digits of a \u escape at i.
func (s *Scanner) hex4(i int) (rune, int) {
	if i+4 > len(s.b) {
		s.i = len(s.b)
		s.fail("4 hex digits")
		return 0, 0
	}
	v, err := strconv.ParseUint(string(s.b[i:i+4]), 16, 16)
	if err != nil {
		s.i = i
		s.fail("4 hex digits")
		return 0, 0
	}
	return rune(v), 4
}

// surrogate reads the \uXXXX that may follow a high surrogate at i.
func (s *Scanner) surrogate(i int) (rune, int) {
	if i+6 > len(s.b) || s.b[i] != '\\' || s.b[i+1] != 'u' {
		return 0, 0
	}
	v, err := strconv.ParseUint(string(s.b[i+2:i+6]), 16, 16)
	if err != nil {
		return 0, 0
	}
	return rune(v), 6
}

// IsNull consumes a null and reports whether there was one.
func (s *Scanner) IsNull() bool {
	if s.Next() == 'n' {
		s.literal("null")
		return true
	}
	return false
}

func (s *Scanner) literal(lit string) {
	if !bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
		s.fail(lit)
		return
	}
	s.i += len(lit)
}

// OptStr reads a string or null ("").
func (s *Scanner) OptStr() string {
	if s.IsNull() {
		return ""
	}
	return s.Str()
}

// OptBool reads true, false, or null (absent).
func (s *Scanner) OptBool(absent bool) bool {
	switch s.Next() {
	case 't':
		s.literal("true")
		return true
	case 'f':
		s.literal("false")
		return false
	case 'n':
		s.literal("null")
		return absent
	}
	s.fail("a boolean")
	return absent
}

// Int32 reads an integer that fits in an int32.
func (s *Scanner) Int32() int32 {
	s.Next()
	start := s.i
	for s.i < len(s.b) && isScalarByte(s.b[s.i]) {
		s.i++
	}
	n, err := strconv.ParseInt(Borrow(s.b[start:s.i]), 10, 32)
	if err != nil {
		s.i = start
		s.fail("an integer")
		return 0
	}
	return int32(n)
}

// Skip moves past one value of any type, looking only at its bytes.
func (s *Scanner) Skip() {
	switch c := s.Next(); {
	case c == 0:
		s.fail("a value")
	case c == '"':
		s.skipString()
	case c == '{' || c == '[':
		s.skipNested()
	case isScalarByte(c):
		start := s.i
		for s.i < len(s.b) && isScalarByte(s.b[s.i]) {
			s.i++
		}
		if !validScalar(s.b[start:s.i]) {
			s.i = start
			s.fail("a value")
		}
	default:
		s.fail("a value")
	}
}

func (s *Scanner) skipString() {
	if n := stringEnd(s.b[s.i+1:]); n >= 0 {
		s.i += 1 + n + 1
		return
	}
	s.i = len(s.b)
	s.fail("the end of a string")
}

// stringEnd returns the index of the quote that ends the string whose
// contents start b, or -1. Skipping needs no unescaping, so it looks for
// quotes alone, 8 bytes a step, and counts the backslashes before one to
// tell whether it is escaped.
func stringEnd(b []byte) int {
	i := 0
	for {
		for ; i+8 <= len(b); i += 8 {
			if m := zeroBytes(binary.LittleEndian.Uint64(b[i:]) ^ quotes); m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				goto found
			}
		}
		for ; i < len(b) && b[i] != '"'; i++ {
		}
		if i == len(b) {
			return -1
		}
	found:
		run := 0
		for j := i - 1; j >= 0 && b[j] == '\\'; j-- {
			run++
		}
		if run%2 == 0 {
			return i
		}
		i++ // an escaped quote
	}
}

// skipNested moves past an object or array by counting brackets outside
// strings: what is inside is not checked, only skipped.
func (s *Scanner) skipNested() {
	if n := nestedEnd(s.b[s.i:]); n > 0 {
		s.i += n
		return
	}
	s.i = len(s.b)
	s.fail("the end of an object or array")
}

// nestedEnd returns the length of the object or array that starts b, or
// -1 when b ends first. Strings are skipped with stringEnd: most bytes of
// what discovery skips (managedFields, annotations, targetRefs) are in
// strings.
func nestedEnd(b []byte) int {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			n := stringEnd(b[i+1:])
			if n < 0 {
				return -1
			}
			i += n + 1
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
		}
	}
	return -1
}

// validScalar accepts the literals and anything a JSON number may be
// (strconv checks the number's syntax).
func validScalar(b []byte) bool {
	switch string(b) {
	case "true", "false", "null":
		return true
	}
	if b[0] != '-' && (b[0] < '0' || b[0] > '9') {
		return false
	}
	_, err := strconv.ParseFloat(Borrow(b), 64)
	return err == nil || errors.Is(err, strconv.ErrRange)
}

// Raw returns the bytes of the next value (any type) and moves past it.
func (s *Scanner) Raw() []byte {
	s.Next()
	start := s.i
	s.Skip()
	if s.err != nil {
		return nil
	}
	return s.b[start:s.i]
}

// End checks that nothing but white space follows the value.
func (s *Scanner) End() {
	if s.Next() != 0 {
		s.fail("the end of the value")
	}
}
