package listwatch

import (
	"errors"
	"io"

	jsoniter "github.com/json-iterator/go"
)

// The decoders below read JSON field by field with json-iterator and keep
// only what discovery needs. A response body is never read whole: a LIST
// page is streamed, and only one item (or one watch event) at a time is
// captured into a reusable buffer. Capturing an item before decoding it
// means a malformed item (say, a number where a string belongs) breaks only
// that item's decode, not the stream: it is skipped, logged and counted.

// object is what discovery needs of an Endpoints or an EndpointSlice.
type object struct {
	namespace, name string
	resourceVersion string
	serviceName     string // EndpointSlice label kubernetes.io/service-name

	subsets []subset // Endpoints

	addressType string     // EndpointSlice: IPv4, IPv6 or FQDN
	endpoints   []endpoint // EndpointSlice
	ports       []port     // EndpointSlice
}

type subset struct {
	addresses []string // only "addresses": notReadyAddresses are not served
	ports     []port
}

type endpoint struct {
	addresses []string
	ready     bool // conditions.ready; absent means ready
}

type port struct {
	name   string
	number int32 // 0 when absent (an EndpointSlice port may omit it)
}

const serviceNameLabel = "kubernetes.io/service-name"

// errMalformed marks an object that decoded but is not usable.
var errMalformed = errors.New("malformed object")

// decodeObject reads one Endpoints or EndpointSlice object from it.
func decodeObject(it *jsoniter.Iterator, o *object) error {
	*o = object{}
	for f := it.ReadObject(); f != ""; f = it.ReadObject() {
		switch f {
		case "metadata":
			readMetadata(it, o)
		case "subsets":
			for it.ReadArray() {
				o.subsets = append(o.subsets, readSubset(it))
			}
		case "addressType":
			o.addressType = it.ReadString()
		case "endpoints":
			for it.ReadArray() {
				o.endpoints = append(o.endpoints, readEndpoint(it))
			}
		case "ports":
			o.ports = readPorts(it, o.ports)
		default:
			it.Skip()
		}
	}
	if it.Error != nil && it.Error != io.EOF {
		return it.Error
	}
	if o.name == "" || o.namespace == "" {
		return errMalformed
	}
	return nil
}

func readMetadata(it *jsoniter.Iterator, o *object) {
	for f := it.ReadObject(); f != ""; f = it.ReadObject() {
		switch f {
		case "name":
			o.name = it.ReadString()
		case "namespace":
			o.namespace = it.ReadString()
		case "resourceVersion":
			o.resourceVersion = it.ReadString()
		case "labels":
			for k := it.ReadObject(); k != ""; k = it.ReadObject() {
				if k == serviceNameLabel {
					o.serviceName = it.ReadString()
				} else {
					it.Skip()
				}
			}
		default:
			it.Skip() // managedFields, annotations, resourceVersion, ...
		}
	}
}

func readSubset(it *jsoniter.Iterator) subset {
	var s subset
	for f := it.ReadObject(); f != ""; f = it.ReadObject() {
		switch f {
		case "addresses":
			for it.ReadArray() {
				for g := it.ReadObject(); g != ""; g = it.ReadObject() {
					if g == "ip" {
						s.addresses = append(s.addresses, it.ReadString())
					} else {
						it.Skip()
					}
				}
			}
		case "ports":
			s.ports = readPorts(it, nil)
		default:
			it.Skip()
		}
	}
	return s
}

func readEndpoint(it *jsoniter.Iterator) endpoint {
	e := endpoint{ready: true}
	for f := it.ReadObject(); f != ""; f = it.ReadObject() {
		switch f {
		case "addresses":
			for it.ReadArray() {
				e.addresses = append(e.addresses, it.ReadString())
			}
		case "conditions":
			for g := it.ReadObject(); g != ""; g = it.ReadObject() {
				if g != "ready" {
					it.Skip()
				} else if !it.ReadNil() { // null means unknown: read as ready
					e.ready = it.ReadBool()
				}
			}
		default:
			it.Skip()
		}
	}
	return e
}

func readPorts(it *jsoniter.Iterator, ps []port) []port {
	for it.ReadArray() {
		var p port
		for f := it.ReadObject(); f != ""; f = it.ReadObject() {
			switch f {
			case "name":
				p.name = it.ReadString()
			case "port":
				if !it.ReadNil() {
					p.number = it.ReadInt32()
				}
			default:
				it.Skip()
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
	it := jsoniter.Parse(jsoniter.ConfigDefault, r, 32<<10)
	buf := make([]byte, 0, 4<<10) // non-nil: jsoniter captures into it
	for f := it.ReadObject(); f != ""; f = it.ReadObject() {
		switch f {
		case "metadata":
			for g := it.ReadObject(); g != ""; g = it.ReadObject() {
				switch g {
				case "resourceVersion":
					page.resourceVersion = it.ReadString()
				case "continue":
					page.continueToken = it.ReadString()
				default:
					it.Skip()
				}
			}
		case "items":
			for it.ReadArray() {
				buf = it.SkipAndAppendBytes(buf[:0])
				if it.Error != nil {
					break
				}
				item(buf)
			}
		default:
			it.Skip()
		}
	}
	if it.Error != nil && it.Error != io.EOF {
		return page, it.Error
	}
	if page.resourceVersion == "" {
		return page, errors.New("list answer has no metadata.resourceVersion")
	}
	return page, nil
}

// event is one watch event: its type and its object's raw JSON.
type event struct {
	typ    string
	object []byte
}

// eventReader reads the newline-delimited JSON events of a watch stream.
type eventReader struct {
	it *jsoniter.Iterator
}

func newEventReader(r io.Reader) *eventReader {
	return &eventReader{it: jsoniter.Parse(jsoniter.ConfigDefault, r, 16<<10)}
}

// next reads the next event into ev, reusing ev.object's memory. It returns
// io.EOF when the stream ended cleanly between events.
func (er *eventReader) next(ev *event) error {
	it := er.it
	if it.WhatIsNext() == jsoniter.InvalidValue {
		if it.Error == nil {
			return errors.New("watch stream: unexpected data")
		}
		return it.Error // io.EOF at a clean end
	}
	if ev.object == nil {
		ev.object = make([]byte, 0, 4<<10) // non-nil: jsoniter captures into it
	}
	ev.typ, ev.object = "", ev.object[:0]
	for f := it.ReadObject(); f != ""; f = it.ReadObject() {
		switch f {
		case "type":
			ev.typ = it.ReadString()
		case "object":
			ev.object = it.SkipAndAppendBytes(ev.object)
		default:
			it.Skip()
		}
	}
	if it.Error != nil {
		if it.Error == io.EOF {
			return io.ErrUnexpectedEOF // the stream broke inside an event
		}
		return it.Error
	}
	if ev.typ == "" || len(ev.object) == 0 {
		return errors.New("watch stream: event without type or object")
	}
	return nil
}

// readResourceVersion returns metadata.resourceVersion of a raw object.
func readResourceVersion(it *jsoniter.Iterator) string {
	rv := ""
	for f := it.ReadObject(); f != ""; f = it.ReadObject() {
		if f != "metadata" {
			it.Skip()
			continue
		}
		for g := it.ReadObject(); g != ""; g = it.ReadObject() {
			if g == "resourceVersion" {
				rv = it.ReadString()
			} else {
				it.Skip()
			}
		}
	}
	return rv
}
