package listwatch

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/kdisc/kdisc/internal/jsonscan"
)

// The decoders below read only what discovery needs, with the byte-level
// scanner of jsonscan.go. A response body is never read whole: a LIST
// page is streamed, and only one item (or one watch event) at a time is
// held, in a reused buffer. Holding an item whole before decoding it means
// a malformed item (say, a number where a string belongs) breaks only that
// item's decode, not the stream: it is skipped, logged and counted.

// object is what discovery needs of an Endpoints or an EndpointSlice. Its
// strings are borrowed from the bytes it was decoded from (see
// jsonscan.go): whatever keeps one beyond the event clones or interns it.
// Its slices are reused from one decode to the next.
type object struct {
	namespace, name string
	resourceVersion string
	serviceName     string // EndpointSlice label kubernetes.io/service-name
	// truncated (Endpoints): annotated endpoints.kubernetes.io/over-capacity:
	// truncated, the Endpoints controller's mark of a list it cut at 1,000
	// addresses.
	truncated bool

	subsets []subset // Endpoints

	addressType string     // EndpointSlice: IPv4, IPv6 or FQDN
	endpoints   []endpoint // EndpointSlice
	ports       []port     // EndpointSlice
}

type subset struct {
	addresses []string    // only "addresses": notReadyAddresses are not served
	infos     []*nodeInfo // with node detail: per address, nil when nothing is known
	ports     []port
}

type endpoint struct {
	addresses   []string
	ready       bool      // conditions.ready; absent means ready
	serving     bool      // conditions.serving; absent means serving
	terminating bool      // conditions.terminating; absent means not terminating
	zones       []string  // hints.forZones names
	forNodes    []string  // hints.forNodes names (trafficDistribution: PreferSameNode)
	info        *nodeInfo // with node detail; nil when nothing is known
}

// nodeInfo is where an address runs: what node_detail stores. Its strings
// are owned (cloned at decode): node detail keeps them.
type nodeInfo struct {
	nodeName, zone  string
	kind, name, uid string // targetRef
}

type port struct {
	name   string
	number int32 // 0 when absent (an EndpointSlice port may omit it)
}

const (
	serviceNameLabel = "kubernetes.io/service-name"
	// overCapacityAnnotation, with the value "truncated", marks an
	// Endpoints object whose addresses the Endpoints controller cut at
	// 1,000 (an EndpointSlice has no such limit).
	overCapacityAnnotation = "endpoints.kubernetes.io/over-capacity"
)

// errMalformed marks an object that decoded but is not usable.
var errMalformed = errors.New("malformed object")

// decodeObject reads one Endpoints or EndpointSlice object from raw.
func decodeObject(raw []byte, o *object) error {
	var s jsonscan.Scanner
	return decodeObjectDetail(&s, raw, o, false)
}

// decodeObjectDetail is decodeObject with a reused scanner that also
// reads, when detail is true, each address's nodeName, zone and targetRef
// (node_detail).
func decodeObjectDetail(s *jsonscan.Scanner, raw []byte, o *object, detail bool) error {
	s.Reset(raw)
	o.reset()
	for ok := s.Open('{'); ok; ok = s.More('}') {
		switch s.Key() {
		case "metadata":
			readMetadata(s, o)
		case "subsets":
			for ok := s.Open('['); ok; ok = s.More(']') {
				readSubset(s, o.newSubset(), detail)
			}
		case "addressType":
			o.addressType = s.Str()
		case "endpoints":
			for ok := s.Open('['); ok; ok = s.More(']') {
				readEndpoint(s, o.newEndpoint(), detail)
			}
		case "ports":
			o.ports = readPorts(s, o.ports)
		default:
			s.Skip()
		}
	}
	if s.Err() != nil {
		return s.Err()
	}
	var err error
	if s.Next() != 0 {
		err = &trailingError{at: s.Pos()}
	}
	if o.name == "" || o.namespace == "" {
		return errMalformed
	}
	return err
}

// trailingError says an object decoded whole but more bytes follow it.
type trailingError struct{ at int }

func (e *trailingError) Error() string {
	return fmt.Sprintf("json: data after the object, at byte %d", e.at)
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

// errMisframed: a watch event's line held more than its event in a way the
// line shortcut cannot read exactly. The watch ends there without applying
// the event, and resumes from the resourceVersion before it.
var errMisframed = errors.New("watch stream: an event's line holds more than the event")

// reset empties o, keeping the memory of its slices.
func (o *object) reset() {
	*o = object{subsets: o.subsets[:0], endpoints: o.endpoints[:0], ports: o.ports[:0]}
}

func (o *object) newSubset() *subset {
	o.subsets = grow(o.subsets)
	s := &o.subsets[len(o.subsets)-1]
	*s = subset{addresses: s.addresses[:0], infos: s.infos[:0], ports: s.ports[:0]}
	return s
}

func (o *object) newEndpoint() *endpoint {
	o.endpoints = grow(o.endpoints)
	e := &o.endpoints[len(o.endpoints)-1]
	*e = endpoint{addresses: e.addresses[:0], zones: e.zones[:0], forNodes: e.forNodes[:0], ready: true, serving: true}
	return e
}

// grow extends s by one element, reusing an element past its length (and
// the memory that element holds) when there is one.
func grow[T any](s []T) []T {
	if len(s) < cap(s) {
		return s[:len(s)+1]
	}
	var zero T
	return append(s, zero)
}

func readMetadata(s *jsonscan.Scanner, o *object) {
	for ok := s.Open('{'); ok; ok = s.More('}') {
		switch s.Key() {
		case "name":
			o.name = s.Str()
		case "namespace":
			o.namespace = s.Str()
		case "resourceVersion":
			o.resourceVersion = s.Str()
		case "labels":
			for ok := s.Open('{'); ok; ok = s.More('}') {
				if s.Key() == serviceNameLabel {
					o.serviceName = s.Str()
				} else {
					s.Skip()
				}
			}
		case "annotations":
			for ok := s.Open('{'); ok; ok = s.More('}') {
				if s.Key() == overCapacityAnnotation {
					o.truncated = s.OptStr() == "truncated"
				} else {
					s.Skip()
				}
			}
		default:
			s.Skip() // managedFields, ...
		}
	}
}

func readSubset(s *jsonscan.Scanner, sub *subset, detail bool) {
	for ok := s.Open('{'); ok; ok = s.More('}') {
		switch s.Key() {
		case "addresses":
			for ok := s.Open('['); ok; ok = s.More(']') {
				var info nodeInfo
				ip, hasIP := "", false
				for ok := s.Open('{'); ok; ok = s.More('}') {
					switch k := s.Key(); {
					case k == "ip":
						ip, hasIP = s.Str(), true
					case detail && k == "nodeName":
						info.nodeName = strings.Clone(s.OptStr())
					case detail && k == "targetRef":
						readTargetRef(s, &info)
					default:
						s.Skip()
					}
				}
				if !hasIP {
					continue
				}
				sub.addresses = append(sub.addresses, ip)
				if detail {
					sub.infos = append(sub.infos, info.orNil())
				}
			}
		case "ports":
			sub.ports = readPorts(s, sub.ports)
		default:
			s.Skip()
		}
	}
}

func readEndpoint(s *jsonscan.Scanner, e *endpoint, detail bool) {
	var info nodeInfo
	for ok := s.Open('{'); ok; ok = s.More('}') {
		switch s.Key() {
		case "addresses":
			for ok := s.Open('['); ok; ok = s.More(']') {
				e.addresses = append(e.addresses, s.Str())
			}
		case "conditions":
			// null means unknown: read as absent (ready, serving, not
			// terminating), as the API defines absent.
			for ok := s.Open('{'); ok; ok = s.More('}') {
				switch s.Key() {
				case "ready":
					e.ready = s.OptBool(e.ready)
				case "serving":
					e.serving = s.OptBool(e.serving)
				case "terminating":
					e.terminating = s.OptBool(e.terminating)
				default:
					s.Skip()
				}
			}
		case "hints":
			for ok := s.Open('{'); ok; ok = s.More('}') {
				switch s.Key() {
				case "forZones":
					e.zones = readNames(s, e.zones)
				case "forNodes":
					e.forNodes = readNames(s, e.forNodes)
				default:
					s.Skip()
				}
			}
		case "nodeName":
			if detail {
				info.nodeName = strings.Clone(s.OptStr())
			} else {
				s.Skip()
			}
		case "zone":
			if detail {
				info.zone = strings.Clone(s.OptStr())
			} else {
				s.Skip()
			}
		case "targetRef":
			if detail {
				readTargetRef(s, &info)
			} else {
				s.Skip()
			}
		default:
			s.Skip()
		}
	}
	if detail {
		e.info = info.orNil()
	}
}

// readNames appends the names of a list of {"name": ...} (hints.forZones,
// hints.forNodes).
func readNames(s *jsonscan.Scanner, names []string) []string {
	for ok := s.Open('['); ok; ok = s.More(']') {
		for ok := s.Open('{'); ok; ok = s.More('}') {
			if s.Key() == "name" {
				names = append(names, s.Str())
			} else {
				s.Skip()
			}
		}
	}
	return names
}

// orNil returns a copy of i, or nil when nothing is known.
func (i nodeInfo) orNil() *nodeInfo {
	if i == (nodeInfo{}) {
		return nil
	}
	return &i
}

// readTargetRef reads an ObjectReference's kind, name and uid.
func readTargetRef(s *jsonscan.Scanner, info *nodeInfo) {
	for ok := s.Open('{'); ok; ok = s.More('}') {
		switch s.Key() {
		case "kind":
			info.kind = strings.Clone(s.OptStr())
		case "name":
			info.name = strings.Clone(s.OptStr())
		case "uid":
			info.uid = strings.Clone(s.OptStr())
		default:
			s.Skip()
		}
	}
}

func readPorts(s *jsonscan.Scanner, ps []port) []port {
	for ok := s.Open('['); ok; ok = s.More(']') {
		var p port
		for ok := s.Open('{'); ok; ok = s.More('}') {
			switch s.Key() {
			case "name":
				p.name = s.Str()
			case "port":
				if !s.IsNull() {
					p.number = s.Int32()
				}
			default:
				s.Skip()
			}
		}
		ps = append(ps, p)
	}
	return ps
}

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

// event is one watch event: its type and its object's raw JSON.
type event struct {
	typ    string
	object []byte
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

// next reads the next event into ev. ev.object aliases the reader's
// buffer: valid until the next call. It returns io.EOF when the stream
// ended cleanly between events.
//
// The apiserver writes one event per line, and a JSON encoder never puts
// a raw newline inside a value: so the line is tried first (IndexByte
// finds it at memory speed) and decoding it checks that it holds one
// whole event. Only an event that does not end its line (a pretty-printed
// stream, say) is framed by counting brackets instead.
func (er *eventReader) next(ev *event) error {
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
// of it anyway, and Watcher.decode reads what follows the object as the
// general path would (eventTail). Any other line takes the general path.
func (er *eventReader) shortcut(line []byte, ev *event) (int, bool) {
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
	ev.typ, ev.object = typ, obj
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
func (er *eventReader) decode(raw []byte, ev *event) (int, error) {
	s := &er.s
	s.Reset(raw)
	ev.typ, ev.object = "", nil
	for ok := s.Open('{'); ok; ok = s.More('}') {
		switch s.Key() {
		case "type":
			ev.typ = eventType(s.Str())
		case "object":
			ev.object = s.Raw()
		default:
			s.Skip()
		}
	}
	if s.Err() != nil {
		return 0, s.Err()
	}
	if ev.typ == "" || len(ev.object) == 0 {
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
