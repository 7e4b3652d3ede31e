package jsonscan

import (
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// values is a stream of JSON values of every kind, with the bytes that
// make bracket counting hard: braces and quotes inside strings, escapes,
// white space between values.
const values = `{"a":"}{\"","b":[1,{"c":"\\"}],"d":null}` + "\n" +
	`[ "x" , {} , [] ]` + ` "str\"ing{" ` + "\t" + `{"e":{"f":{"g":"h"}}}` + "\r\n" +
	`{"unicode":"\u00e9\ud83d\ude00 é","n":-1.5e3,"t":true}`

// splitReader returns data in two reads, cut at at.
type splitReader struct {
	data []byte
	at   int
}

func (r *splitReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := len(r.data)
	if r.at > 0 {
		n, r.at = min(n, r.at), 0
	}
	n = copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// Reader.Value hands out each value of a stream exactly as encoding/json's
// Decoder delimits it, however the stream is split into reads, then
// io.EOF at the clean end.
func TestReaderValueAgreesWithEncodingJSON(t *testing.T) {
	var want []string
	dec := json.NewDecoder(strings.NewReader(values))
	for {
		var v json.RawMessage
		if err := dec.Decode(&v); err == io.EOF {
			break
		} else {
			require.NoError(t, err)
		}
		want = append(want, string(v))
	}
	require.Len(t, want, 5)
	readers := map[string]func() io.Reader{"one byte": func() io.Reader { return iotest.OneByteReader(strings.NewReader(values)) }}
	for at := 1; at < len(values); at++ {
		readers["cut at "+strconv.Itoa(at)] = func() io.Reader { return &splitReader{data: []byte(values), at: at} }
	}
	for name, open := range readers {
		f := NewReader(open(), 4) // a small chunk: values span many reads
		var got []string
		for {
			v, err := f.Value()
			if err == io.EOF {
				break
			}
			require.NoError(t, err, name)
			got = append(got, string(v))
		}
		assert.Equal(t, want, got, name)
	}
}

// A stream cut inside a value is an unexpected end, never a clean one.
func TestReaderCutValue(t *testing.T) {
	f := NewReader(strings.NewReader(`{"a":[1,2`), 16)
	_, err := f.Value()
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
}

// Reader.Line returns the rest of the line without consuming it; Discard
// consumes what the caller read of it.
func TestReaderLine(t *testing.T) {
	f := NewReader(strings.NewReader("{\"a\":1}\n{\"b\":2}"), 4)
	line, err := f.Line()
	require.NoError(t, err)
	assert.Equal(t, `{"a":1}`, string(line))
	f.Discard(len(line))
	v, err := f.Value()
	require.NoError(t, err)
	assert.Equal(t, `{"b":2}`, string(v))
}

// A Scanner reads an object's members as encoding/json does: the same
// keys, the same strings (escapes decoded), and it skips every other
// value whole.
func TestScannerAgreesWithEncodingJSON(t *testing.T) {
	dec := json.NewDecoder(strings.NewReader(values))
	for {
		var raw json.RawMessage
		if dec.Decode(&raw) == io.EOF {
			break
		}
		if raw[0] != '{' {
			continue
		}
		var want map[string]any
		require.NoError(t, json.Unmarshal(raw, &want))
		got := map[string]any{}
		var s Scanner
		s.Reset(raw)
		for ok := s.Open('{'); ok; ok = s.More('}') {
			key := strings.Clone(s.Key())
			if s.Next() == '"' {
				got[key] = s.Str()
				continue
			}
			start := s.Pos()
			s.Skip()
			var v any
			require.NoError(t, json.Unmarshal(raw[start:s.Pos()], &v), "skipped %q", raw[start:s.Pos()])
			got[key] = v
		}
		s.End()
		require.NoError(t, s.Err())
		assert.Equal(t, want, got)
	}
}

// Strings borrow the bytes they were read from (no copy) unless they had
// escapes.
func TestScannerStringsBorrow(t *testing.T) {
	b := []byte(`["plain","esc\"aped"]`)
	var s Scanner
	s.Reset(b)
	require.True(t, s.Open('['))
	plain := s.Str()
	require.True(t, s.More(']'))
	escaped := s.Str()
	require.False(t, s.More(']'))
	s.End()
	require.NoError(t, s.Err())
	copy(b[2:], "PLAIN")
	assert.Equal(t, "PLAIN", plain, "borrowed")
	assert.Equal(t, `esc"aped`, escaped)
	assert.Equal(t, "abc", Borrow([]byte("abc")))
}

// Malformed JSON is an error that sticks: every read after it returns a
// zero value, so a decoder checks Err once at the end.
func TestScannerErrorsStick(t *testing.T) {
	for _, in := range []string{`{"a":}`, `{"a" 1}`, `{"a":"x}`, `[1,]`, `{"a":tru}`, `{"a":1} x`, `{"a":01x}`} {
		var s Scanner
		s.Reset([]byte(in))
		for ok := s.Open('{'); ok; ok = s.More('}') {
			s.Key()
			s.Skip()
		}
		s.End()
		require.Error(t, s.Err(), in)
		assert.Equal(t, "", s.Str(), "after an error: %s", in)
		assert.False(t, s.Open('{'), in)
	}
	var s Scanner
	s.Reset([]byte(`"\q"`))
	assert.Equal(t, "", s.Str(), "a string is checked when read (skipped, only its end is found)")
	assert.Error(t, s.Err())
	s.Reset([]byte(`{"a":1}`))
	require.True(t, s.Open('{'))
	assert.Equal(t, "a", s.Key())
	assert.Equal(t, int32(1), s.Int32())
	assert.False(t, s.More('}'))
	s.End()
	assert.NoError(t, s.Err())
}
