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
	info        *nodeInfo // with node detail; nil when nothing is known
}

// nodeInfo is where an address runs: what node_detail stores.
type nodeInfo struct {
	nodeName, zone  string
	kind, name, uid string // targetRef
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
	return decodeObjectDetail(it, o, false)
}

// decodeObjectDetail is decodeObject that also reads, when detail is
// true, each address's nodeName, zone and targetRef (node_detail).
func decodeObjectDetail(it *jsoniter.Iterator, o *object, detail bool) error {
	*o = object{}
	for f := it.ReadObject(); f != ""; f = it.ReadObject() {
		switch f {
		case "metadata":
			readMetadata(it, o)
		case "subsets":
			for it.ReadArray() {
				o.subsets = append(o.subsets, readSubset(it, detail))
			}
		case "addressType":
			o.addressType = it.ReadString()
		case "endpoints":
			for it.ReadArray() {
				o.endpoints = append(o.endpoints, readEndpoint(it, detail))
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

func readSubset(it *jsoniter.Iterator, detail bool) subset {
	var s subset
	for f := it.ReadObject(); f != ""; f = it.ReadObject() {
		switch f {
		case "addresses":
			for it.ReadArray() {
				var info nodeInfo
				ip, hasIP := "", false
				for g := it.ReadObject(); g != ""; g = it.ReadObject() {
					switch {
					case g == "ip":
						ip, hasIP = it.ReadString(), true
					case detail && g == "nodeName":
						info.nodeName = readOptString(it)
					case detail && g == "targetRef":
						readTargetRef(it, &info)
					default:
						it.Skip()
					}
				}
				if !hasIP {
					continue
				}
				s.addresses = append(s.addresses, ip)
				if detail {
					s.infos = append(s.infos, info.orNil())
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

func readEndpoint(it *jsoniter.Iterator, detail bool) endpoint {
	e := endpoint{ready: true, serving: true}
	var info nodeInfo
	for f := it.ReadObject(); f != ""; f = it.ReadObject() {
		switch f {
		case "addresses":
			for it.ReadArray() {
				e.addresses = append(e.addresses, it.ReadString())
			}
		case "conditions":
			// null means unknown: read as absent (ready, serving, not
			// terminating), as the API defines absent.
			for g := it.ReadObject(); g != ""; g = it.ReadObject() {
				switch g {
				case "ready":
					e.ready = readOptBool(it, e.ready)
				case "serving":
					e.serving = readOptBool(it, e.serving)
				case "terminating":
					e.terminating = readOptBool(it, e.terminating)
				default:
					it.Skip()
				}
			}
		case "hints":
			for g := it.ReadObject(); g != ""; g = it.ReadObject() {
				if g != "forZones" {
					it.Skip()
					continue
				}
				for it.ReadArray() {
					for h := it.ReadObject(); h != ""; h = it.ReadObject() {
						if h == "name" {
							e.zones = append(e.zones, it.ReadString())
						} else {
							it.Skip()
						}
					}
				}
			}
		case "nodeName":
			if detail {
				info.nodeName = readOptString(it)
			} else {
				it.Skip()
			}
		case "zone":
			if detail {
				info.zone = readOptString(it)
			} else {
				it.Skip()
			}
		case "targetRef":
			if detail {
				readTargetRef(it, &info)
			} else {
				it.Skip()
			}
		default:
			it.Skip()
		}
	}
	if detail {
		e.info = info.orNil()
	}
	return e
}

// orNil returns a copy of i, or nil when nothing is known.
func (i nodeInfo) orNil() *nodeInfo {
	if i == (nodeInfo{}) {
		return nil
	}
	return &i
}

func readOptBool(it *jsoniter.Iterator, absent bool) bool {
	if it.ReadNil() {
		return absent
	}
	return it.ReadBool()
}

func readOptString(it *jsoniter.Iterator) string {
	if it.ReadNil() {
		return ""
	}
	return it.ReadString()
}

// readTargetRef reads an ObjectReference's kind, name and uid.
func readTargetRef(it *jsoniter.Iterator, info *nodeInfo) {
	for f := it.ReadObject(); f != ""; f = it.ReadObject() {
		switch f {
		case "kind":
			info.kind = readOptString(it)
		case "name":
			info.name = readOptString(it)
		case "uid":
			info.uid = readOptString(it)
		default:
			it.Skip()
		}
	}
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
	// json-iterator's ReadObject takes a ',' where '{' belongs (as the
	// continuation of an object), and then reads differently depending on
	// how the body arrives: demand the objects (found by FuzzReadList).
	isObject := func() bool {
		if it.WhatIsNext() != jsoniter.ObjectValue {
			it.ReportError("readList", "expected a JSON object")
			return false
		}
		return true
	}
	if !isObject() {
		return page, it.Error
	}
	for f := it.ReadObject(); f != ""; f = it.ReadObject() {
		switch f {
		case "metadata":
			if !isObject() {
				break
			}
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
