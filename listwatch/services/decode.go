package services

import (
	"errors"
	"fmt"
	"strings"

	"github.com/kdisc/kdisc/internal/jsonscan"
)

// The JSON decoder reads only what discovery needs of one object, with
// internal/jsonscan's Scanner: it matches the keys discovery reads and
// skips everything else by its bytes. The frame reader (listwatch) holds
// one item or event at a time, so a malformed object (say, a number where
// a string belongs) breaks only its own decode, not the stream: it is
// skipped, logged and counted.

// object is what discovery needs of an Endpoints or an EndpointSlice. Its
// strings are borrowed from the bytes it was decoded from (see
// internal/jsonscan): whatever keeps one beyond the event clones or interns it.
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
	addresses []string     // only "addresses": notReadyAddresses are not served
	infos     []*placement // with node detail: per address, nil when nothing is known
	ports     []port
}

type endpoint struct {
	addresses   []string
	ready       bool       // conditions.ready; absent means ready
	serving     bool       // conditions.serving; absent means serving
	terminating bool       // conditions.terminating; absent means not terminating
	zones       []string   // hints.forZones names
	forNodes    []string   // hints.forNodes names (trafficDistribution: PreferSameNode)
	info        *placement // with node detail; nil when nothing is known
}

// placement is where an address runs (its node, zone and pod): what
// node_detail stores beside each node. Its strings
// are owned (cloned at decode): node detail keeps them.
type placement struct {
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
		err = &TrailingError{At: s.Pos()}
	}
	if o.name == "" || o.namespace == "" {
		return errMalformed
	}
	return err
}

// TrailingError says the bytes handed over held a whole object and more
// bytes after it, from At: nothing was applied. Whether the bytes were
// framed wrong, or the object is followed by more of its event, is for
// whoever framed them to say (listwatch's JSON event reader hands over an
// object this way: see its line shortcut).
type TrailingError struct{ At int }

func (e *TrailingError) Error() string {
	return fmt.Sprintf("json: data after the object, at byte %d", e.At)
}

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
				var info placement
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
	var info placement
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
func (i placement) orNil() *placement {
	if i == (placement{}) {
		return nil
	}
	return &i
}

// readTargetRef reads an ObjectReference's kind, name and uid.
func readTargetRef(s *jsonscan.Scanner, info *placement) {
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
