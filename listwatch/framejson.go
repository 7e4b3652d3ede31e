package listwatch

import (
	"bytes"
	"errors"
	"io"
	"strings"

	"github.com/kdisc/kdisc/internal/jsonscan"
)

// The JSON frame readers: a LIST answer's items, streamed one at a time,
// and a watch stream's events, with internal/jsonscan. They hand over each
// object's raw bytes; objects are decoded by the sink. A response body is
// never read whole: only one item (or one watch event) at a time is held,
// in a reused buffer, so a malformed item breaks only its own decode, not
// the stream.

// listPage is what a LIST answer says besides its items.
type listPage struct {
	resourceVersion string
	continueToken   string
}

// readList streams a LIST answer from r, calling item with each item's raw
// JSON (valid only during the call).
func readList(r io.Reader, item func(raw []byte)) (listPage, error) {
	var page listPage
	f := jsonscan.NewReader(r, 32<<10)
	err := f.Elements('{', '}', func() error { // a member of the list object
		key, err := f.Key()
		if err != nil {
			return err
		}
		switch key {
		case "metadata":
			raw, err := f.Value()
			if err != nil {
				return err
			}
			return readListMeta(raw, &page)
		case "items":
			if c, err := f.Peek(); err == nil && c == 'n' { // null
				_, err := f.Value()
				return err
			}
			return f.Elements('[', ']', func() error {
				raw, err := f.Value()
				if err == nil {
					item(raw)
				}
				return err
			})
		}
		_, err = f.Value()
		return err
	})
	if err != nil {
		return page, jsonscan.UnexpectedEOF(err)
	}
	if page.resourceVersion == "" {
		return page, errors.New("list answer has no metadata.resourceVersion")
	}
	return page, nil
}

func readListMeta(raw []byte, page *listPage) error {
	var s jsonscan.Scanner
	s.Reset(raw)
	for ok := s.Open('{'); ok; ok = s.More('}') {
		switch s.Key() {
		case "resourceVersion":
			page.resourceVersion = strings.Clone(s.Str())
		case "continue":
			page.continueToken = strings.Clone(s.Str())
		default:
			s.Skip()
		}
	}
	s.End()
	return s.Err()
}

// eventReader reads the JSON events of a watch stream (one object after
// another, newline-delimited by the apiserver).
type eventReader struct {
	f *jsonscan.Reader
	s jsonscan.Scanner
}

func newEventReader(r io.Reader) *eventReader {
	return &eventReader{f: jsonscan.NewReader(r, 16<<10)}
}

// next reads the next event into ev. ev.Object aliases the reader's
// buffer: valid until the next call. It returns io.EOF when the stream
// ended cleanly between events.
//
// The apiserver writes one event per line, and a JSON encoder never puts
// a raw newline inside a value: so the line is tried first (IndexByte
// finds it at memory speed) and decoding it checks that it holds one
// whole event. Only an event that does not end its line (a pretty-printed
// stream, say) is framed by counting brackets instead.
func (er *eventReader) next(ev *Event) error {
	f := er.f
	c, err := f.Peek()
	if err != nil {
		return err // io.EOF at a clean end
	}
	if c != '{' {
		return errors.New("watch stream: unexpected data")
	}
	line, err := f.Line()
	if err != nil {
		return err
	}
	if n, ok := er.shortcut(line, ev); ok {
		f.Discard(n)
		return nil
	}
	if n, err := er.decode(line, ev); err == nil {
		f.Discard(n)
		return nil
	} else if !errors.Is(err, jsonscan.ErrUnexpectedEnd) {
		return err
	}
	raw, err := f.Value()
	if err != nil {
		return err
	}
	_, err = er.decode(raw, ev)
	return err
}

// shortcut reads a line in the shape the apiserver writes an object
// event, {"type":"ADDED|MODIFIED|DELETED","object":{...}}, handing over
// the object's bytes without a pass to find where it ends: everything up
// to the line's last brace, which closes the event, when the line cannot
// hold a second event (oneObject). Decoding the object reads every byte
// of it anyway: a sink that finds bytes after the object says where it
// ended (services.TrailingError), and exactObject reads what follows as
// the general path would, or fails the stream. Any other line takes the
// general path.
func (er *eventReader) shortcut(line []byte, ev *Event) (int, bool) {
	line = bytes.TrimRight(line, " \t\r")
	if len(line) < 2 || line[len(line)-1] != '}' || !oneObject(line) {
		return 0, false
	}
	s := &er.s
	s.Reset(line)
	if !s.Open('{') || s.Key() != "type" {
		return 0, false
	}
	typ := eventType(s.Str())
	if typ != "ADDED" && typ != "MODIFIED" && typ != "DELETED" {
		return 0, false
	}
	if !s.More('}') || s.Key() != "object" || s.Next() != '{' {
		return 0, false
	}
	obj := bytes.TrimRight(line[s.Pos():len(line)-1], " \t\r\n")
	if len(obj) < 2 || obj[len(obj)-1] != '}' {
		return 0, false
	}
	ev.Type, ev.Object, ev.Proto = typ, obj, false
	return len(line), true
}

// oneObject reports whether line cannot hold two JSON objects one after
// the other (a stream need not put each on its own line): nowhere in it
// does a '{' follow a '}' with only white space between, which inside one
// JSON value happens only within a string (such a line takes the general
// path).
func oneObject(line []byte) bool {
	for i := 0; ; i++ {
		j := bytes.IndexByte(line[i:], '{')
		if j < 0 {
			return true
		}
		i += j
		k := i - 1
		for k >= 0 && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r' || line[k] == '\n') {
			k--
		}
		if k >= 0 && line[k] == '}' {
			return false
		}
	}
}

// decode reads the event that starts raw, returning the bytes it took.
func (er *eventReader) decode(raw []byte, ev *Event) (int, error) {
	s := &er.s
	s.Reset(raw)
	ev.Type, ev.Object, ev.Proto = "", nil, false
	for ok := s.Open('{'); ok; ok = s.More('}') {
		switch s.Key() {
		case "type":
			ev.Type = eventType(s.Str())
		case "object":
			ev.Object = s.Raw()
		default:
			s.Skip()
		}
	}
	if s.Err() != nil {
		return 0, s.Err()
	}
	if ev.Type == "" || len(ev.Object) == 0 {
		return 0, errors.New("watch stream: event without type or object")
	}
	return s.Pos(), nil
}

// eventType returns the event type as a constant string for the types
// the API defines (no allocation), or a copy of anything else.
func eventType(t string) string {
	for _, known := range [...]string{"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"} {
		if t == known {
			return known
		}
	}
	return strings.Clone(t)
}

// eventMembers reports whether b, what follows an event's object on its
// line when eventReader.shortcut took the rest of the line for the object,
// is only more members of the event (",\"key\":value", none of them a
// second type or object): then the object was read exactly. Anything else
// (the event closed early and more follows on its line, data that is not
// a member, a second type or object) is a line the shortcut misread.
func eventMembers(b []byte) bool {
	var s jsonscan.Scanner
	s.Reset(b)
	for s.Consume(',') {
		if k := s.Key(); k == "type" || k == "object" {
			return false
		}
		s.Skip()
	}
	return s.Err() == nil && s.Next() == 0
}

// exactObject is obj, an event's object as the line shortcut handed it
// over, cut at, where its decoder found that it ended: what follows must
// be only more members of the event, else the line was misread and the
// watch must end (errMisframed).
func exactObject(obj []byte, at int) ([]byte, error) {
	if !eventMembers(obj[at:]) {
		return nil, errMisframed
	}
	return obj[:at], nil
}

// errMisframed: a watch event's line held more than its event in a way the
// line shortcut cannot read exactly. The watch ends there without applying
// the event, and resumes from the resourceVersion before it.
var errMisframed = errors.New("watch stream: an event's line holds more than the event")
