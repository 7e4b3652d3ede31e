package listwatch

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/kdisc/kdisc/shm"
)

// A services folds Endpoints or EndpointSlice objects into the value each
// service has in the table: its ports and their nodes. It remembers enough
// to answer for a service after any sequence of events, and reports which
// services an object changed so that only those are rewritten.
type services interface {
	// set records an added or modified object.
	set(o *object, changed func(key string)) error
	// remove forgets a deleted object.
	remove(o *object, changed func(key string))
	// value returns the ports of a service and whether the service
	// exists. A service exists while its Endpoints object, or at least
	// one EndpointSlice labelled with it, does: with no port (scaled to
	// zero) its value is empty, and a port without an address to serve
	// has no nodes.
	value(key string) ([]shm.Port, bool)
	// each calls fn for every service that exists.
	each(fn func(key string))
	// carry copies what from knows of object o (by its namespace and
	// name) into this state: a relist that finds o malformed keeps o's
	// last good version, so that o's later DELETED event still removes it.
	carry(from services, o *object)
}

// portSet collects nodes under port names; ports() sorts and de-duplicates.
// A port listed without nodes is kept (a port with no address to serve).
type portSet map[string][]shm.Node

// declare lists port name k, with no node yet.
func (ps portSet) declare(k string) {
	if _, ok := ps[k]; !ok {
		ps[k] = nil
	}
}

func (ps portSet) ports() []shm.Port {
	if len(ps) == 0 {
		return nil
	}
	out := make([]shm.Port, 0, len(ps))
	for name, nodes := range ps {
		slices.SortFunc(nodes, shm.Compare)
		nodes = slices.Compact(nodes) // same host and port seen twice
		if len(nodes) == 0 {
			nodes = nil
		}
		out = append(out, shm.Port{Name: name, Nodes: nodes})
	}
	slices.SortFunc(out, func(a, b shm.Port) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// portKey is how a port is addressed in a nodes query: its name, or its
// number in decimal when it has none.
func portKey(p port) string {
	if p.name != "" {
		return p.name
	}
	return strconv.Itoa(int(p.number))
}

func validPort(p port) error {
	if p.number < 1 || p.number > 65535 {
		return fmt.Errorf("%w: port %q has number %d", errMalformed, p.name, p.number)
	}
	return nil
}

// parseIP reads an address as the API stores it. A zone is not an address
// a proxy can use from another host, so it is refused.
func parseIP(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		a, err = parseIPv4Sloppy(s)
	}
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%w: address %q", errMalformed, s)
	}
	return a, nil
}

// parseIPv4Sloppy reads dotted IPv4 with leading zeros ("10.0.0.02") as
// decimal, as Kubernetes' ParseIPSloppy does: the apiserver still accepts
// such addresses in the fields it has always accepted them in.
func parseIPv4Sloppy(s string) (netip.Addr, error) {
	var b [4]byte
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return netip.Addr{}, errMalformed
	}
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 8)
		if err != nil || p == "" || p[0] == '+' {
			return netip.Addr{}, errMalformed
		}
		b[i] = byte(n)
	}
	return netip.AddrFrom4(b), nil
}

func portsEqual(a, b []shm.Port) bool {
	return slices.EqualFunc(a, b, func(x, y shm.Port) bool {
		return x.Name == y.Name && slices.Equal(x.Nodes, y.Nodes)
	})
}

// endpointsServices: one Endpoints object is one service.
type endpointsServices struct {
	weight uint32
	byKey  map[string][]shm.Port
}

func newEndpointsServices(weight uint32) *endpointsServices {
	return &endpointsServices{weight: weight, byKey: map[string][]shm.Port{}}
}

func (s *endpointsServices) set(o *object, changed func(string)) error {
	ps := portSet{}
	for _, sub := range o.subsets {
		for _, p := range sub.ports {
			if err := validPort(p); err != nil {
				return err
			}
			ps.declare(portKey(p))
			for _, ip := range sub.addresses {
				addr, err := parseIP(ip)
				if err != nil {
					return err
				}
				k := portKey(p)
				ps[k] = append(ps[k], shm.Node{Addr: addr, Port: uint16(p.number), Weight: s.weight})
			}
		}
	}
	key := o.namespace + "/" + o.name
	ports := ps.ports()
	if prev, had := s.byKey[key]; had && portsEqual(prev, ports) {
		return nil
	}
	s.byKey[key] = ports // nil: the service exists with no port
	changed(key)
	return nil
}

func (s *endpointsServices) remove(o *object, changed func(string)) {
	key := o.namespace + "/" + o.name
	if _, ok := s.byKey[key]; ok {
		delete(s.byKey, key)
		changed(key)
	}
}

func (s *endpointsServices) value(key string) ([]shm.Port, bool) {
	ports, ok := s.byKey[key]
	return ports, ok
}

func (s *endpointsServices) carry(from services, o *object) {
	key := o.namespace + "/" + o.name
	if ports, ok := from.(*endpointsServices).byKey[key]; ok {
		s.byKey[key] = ports
	}
}

func (s *endpointsServices) each(fn func(string)) {
	for k := range s.byKey {
		fn(k)
	}
}

// sliceServices: a service is the union of every EndpointSlice labelled
// with its name in its namespace.
type sliceServices struct {
	weight    uint32
	slices    map[string]slice               // by namespace/sliceName
	byService map[string]map[string]struct{} // service key -> slice ids
}

// slice is what one EndpointSlice contributes to its service.
type slice struct {
	service string
	ports   []string // every port with a number, by portKey
	nodes   []portNode
}

type portNode struct {
	port string
	node shm.Node
}

func newSliceServices(weight uint32) *sliceServices {
	return &sliceServices{weight: weight, slices: map[string]slice{}, byService: map[string]map[string]struct{}{}}
}

func (s *sliceServices) set(o *object, changed func(string)) error {
	id := o.namespace + "/" + o.name
	if o.serviceName == "" { // not (or no longer) part of a service
		s.forget(id, changed)
		return nil
	}
	next := slice{service: o.namespace + "/" + o.serviceName}
	for _, p := range o.ports {
		if p.number == 0 {
			continue // no port number: nothing a proxy can dial
		}
		if err := validPort(p); err != nil {
			return err
		}
		next.ports = append(next.ports, portKey(p))
	}
	for _, e := range o.endpoints {
		if !e.ready {
			continue
		}
		for _, a := range e.addresses {
			n, err := sliceNode(o.addressType, a, s.weight)
			if err != nil {
				return err
			}
			for _, p := range o.ports {
				if p.number == 0 {
					continue // no port number: nothing a proxy can dial
				}
				if err := validPort(p); err != nil {
					return err
				}
				n.Port = uint16(p.number)
				next.nodes = append(next.nodes, portNode{port: portKey(p), node: n})
			}
		}
	}
	prev, had := s.slices[id]
	if had && prev.service == next.service && slices.Equal(prev.ports, next.ports) && slices.Equal(prev.nodes, next.nodes) {
		return nil
	}
	if had && prev.service != next.service {
		s.forget(id, changed)
	}
	s.slices[id] = next
	members := s.byService[next.service]
	if members == nil {
		members = map[string]struct{}{}
		s.byService[next.service] = members
	}
	members[id] = struct{}{}
	changed(next.service)
	return nil
}

func (s *sliceServices) remove(o *object, changed func(string)) {
	s.forget(o.namespace+"/"+o.name, changed)
}

func (s *sliceServices) forget(id string, changed func(string)) {
	prev, ok := s.slices[id]
	if !ok {
		return
	}
	delete(s.slices, id)
	members := s.byService[prev.service]
	delete(members, id)
	if len(members) == 0 {
		delete(s.byService, prev.service)
	}
	changed(prev.service)
}

func (s *sliceServices) carry(from services, o *object) {
	id := o.namespace + "/" + o.name
	prev, ok := from.(*sliceServices).slices[id]
	if !ok {
		return
	}
	s.forget(id, func(string) {})
	s.slices[id] = prev
	members := s.byService[prev.service]
	if members == nil {
		members = map[string]struct{}{}
		s.byService[prev.service] = members
	}
	members[id] = struct{}{}
}

func (s *sliceServices) value(key string) ([]shm.Port, bool) {
	members, ok := s.byService[key]
	if !ok {
		return nil, false
	}
	ps := portSet{}
	for id := range members {
		sl := s.slices[id]
		for _, p := range sl.ports {
			ps.declare(p)
		}
		for _, pn := range sl.nodes {
			ps[pn.port] = append(ps[pn.port], pn.node)
		}
	}
	return ps.ports(), true
}

func (s *sliceServices) each(fn func(string)) {
	for k := range s.byService {
		fn(k)
	}
}

// sliceNode reads one EndpointSlice address of the slice's addressType.
func sliceNode(addressType, a string, weight uint32) (shm.Node, error) {
	switch addressType {
	case "IPv4", "IPv6":
		addr, err := parseIP(a)
		if err != nil || addr.Is4() != (addressType == "IPv4") {
			return shm.Node{}, fmt.Errorf("%w: %s address %q", errMalformed, addressType, a)
		}
		return shm.Node{Addr: addr, Weight: weight}, nil
	case "FQDN":
		if !validDNSName(a) {
			return shm.Node{}, fmt.Errorf("%w: FQDN address %q", errMalformed, a)
		}
		return shm.Node{Name: a, Weight: weight}, nil
	}
	return shm.Node{}, fmt.Errorf("%w: addressType %q", errMalformed, addressType)
}

// validDNSName accepts RFC 1123 names: dot-separated labels of letters,
// digits and inner hyphens, at most 253 characters.
func validDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
