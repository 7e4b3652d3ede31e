package listwatch

import (
	"bytes"
	"encoding/binary"
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
	// detail returns the node detail of a service (node_detail): a JSON
	// array of its nodes with where they run; nil when node detail is
	// off or the service does not exist.
	detail(key string) []byte
	// each calls fn for every service that exists.
	each(fn func(key string))
	// carry copies what from knows of object o (by its namespace and
	// name) into this state: a relist that finds o malformed keeps o's
	// last good version, so that o's later DELETED event still removes it.
	carry(from services, o *object)
}

// serviceOptions say how objects become nodes.
type serviceOptions struct {
	weight uint32 // of every node
	// fallback (EndpointSlices): a port with no ready endpoint serves the
	// endpoints that are serving and terminating, as kube-proxy does.
	fallback bool
	// zone (EndpointSlices), when set: if every endpoint served for a
	// port has zone hints and one is for zone, only those are served.
	zone       string
	withDetail bool // keep node detail (nodeName, zone, targetRef)
}

// infoNode is a node and, with node detail, where it runs.
type infoNode struct {
	node shm.Node
	info *nodeInfo
}

// portSet collects nodes under port names; build sorts and de-duplicates.
// A port listed without nodes is kept (a port with no address to serve).
type portSet map[string][]infoNode

// declare lists port name k, with no node yet.
func (ps portSet) declare(k string) {
	if _, ok := ps[k]; !ok {
		ps[k] = nil
	}
}

func (ps portSet) add(k string, n shm.Node, info *nodeInfo) {
	ps[k] = append(ps[k], infoNode{node: n, info: info})
}

// build returns the ports sorted by name, their nodes sorted and
// de-duplicated, and with detail the node detail JSON: every node of
// every port in that order, each host and port once.
func (ps portSet) build(detail bool) ([]shm.Port, []byte) {
	if len(ps) == 0 {
		if detail {
			return nil, []byte("[]")
		}
		return nil, nil
	}
	out := make([]shm.Port, 0, len(ps))
	infos := map[string][]infoNode{}
	for name, list := range ps {
		slices.SortStableFunc(list, func(a, b infoNode) int { return shm.Compare(a.node, b.node) })
		list = slices.CompactFunc(list, func(a, b infoNode) bool { return a.node == b.node }) // same host and port seen twice
		var nodes []shm.Node
		if len(list) > 0 {
			nodes = make([]shm.Node, len(list))
			for i, in := range list {
				nodes[i] = in.node
			}
		}
		out = append(out, shm.Port{Name: name, Nodes: nodes})
		if detail {
			infos[name] = list
		}
	}
	slices.SortFunc(out, func(a, b shm.Port) int { return strings.Compare(a.Name, b.Name) })
	if !detail {
		return out, nil
	}
	b := []byte{'['}
	seen := map[hostPort]struct{}{}
	for _, p := range out {
		for _, in := range infos[p.Name] {
			hp := hostPort{in.node.Addr, in.node.Name, in.node.Port}
			if _, dup := seen[hp]; dup {
				continue
			}
			seen[hp] = struct{}{}
			if len(b) > 1 {
				b = append(b, ',')
			}
			b = appendDetail(b, in)
		}
	}
	return out, append(b, ']')
}

type hostPort struct {
	addr netip.Addr
	name string
	port uint16
}

// appendDetail appends one node's detail:
// {"host":..,"port":..,"node_name":..,"zone":..,"target_ref":{"kind":..,"name":..,"uid":..}},
// each field absent when unknown.
func appendDetail(b []byte, in infoNode) []byte {
	b = append(b, `{"host":"`...)
	b = in.node.AppendHost(b) // an IP address or a DNS name: nothing to escape
	b = append(b, `","port":`...)
	b = strconv.AppendUint(b, uint64(in.node.Port), 10)
	if i := in.info; i != nil {
		b = appendField(b, "node_name", i.nodeName)
		b = appendField(b, "zone", i.zone)
		if i.kind != "" || i.name != "" || i.uid != "" {
			b = append(b, `,"target_ref":{`...)
			n := len(b)
			for _, f := range [...][2]string{{"kind", i.kind}, {"name", i.name}, {"uid", i.uid}} {
				if f[1] != "" {
					if len(b) > n {
						b = append(b, ',')
					}
					b = shm.AppendJSONString(b, f[0])
					b = append(b, ':')
					b = shm.AppendJSONString(b, f[1])
				}
			}
			b = append(b, '}')
		}
	}
	return append(b, '}')
}

func appendField(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, ',')
	b = shm.AppendJSONString(b, key)
	b = append(b, ':')
	return shm.AppendJSONString(b, v)
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

// endpointsServices: one Endpoints object is one service. It keeps each
// service's value packed (packPorts: about 12 bytes a node), not as Go
// structures: the table holds the value readers use, and this copy only
// serves relists, retries of what a full table refused, and telling a
// changed value from an unchanged one.
type endpointsServices struct {
	serviceOptions
	byKey map[string]*endpointsValue
	names *interner

	// Reused by set and value: what they return is valid until the next
	// call.
	key     []byte
	entries []entry
	packed  []byte
	ports   []shm.Port
	nodes   []shm.Node
}

type endpointsValue struct {
	key    string // the map's key, kept to hand out without allocating
	packed []byte // packPorts
	detail []byte // with node detail
}

// entry is one node of one port while a value is built; a port listed
// without addresses has an entry with no node (declared).
type entry struct {
	port     string
	node     shm.Node
	info     *nodeInfo
	declared bool
}

func newEndpointsServices(weight uint32) *endpointsServices {
	return &endpointsServices{serviceOptions: serviceOptions{weight: weight}, byKey: map[string]*endpointsValue{}, names: newInterner()}
}

func (s *endpointsServices) set(o *object, changed func(string)) error {
	s.entries = s.entries[:0]
	for _, sub := range o.subsets {
		for _, p := range sub.ports {
			if err := validPort(p); err != nil {
				return err
			}
			k := s.names.portKey(p)
			s.entries = append(s.entries, entry{port: k, declared: true})
			for i, ip := range sub.addresses {
				addr, err := parseIP(ip)
				if err != nil {
					return err
				}
				var info *nodeInfo
				if s.withDetail && i < len(sub.infos) {
					info = sub.infos[i]
				}
				s.entries = append(s.entries, entry{port: k, node: shm.Node{Addr: addr, Port: uint16(p.number), Weight: s.weight}, info: info})
			}
		}
	}
	sortEntries(s.entries)
	s.packed = packPorts(s.packed[:0], s.entries)
	var detail []byte
	if s.withDetail {
		detail = detailJSON(s.entries)
	}
	s.key = append(append(append(s.key[:0], o.namespace...), '/'), o.name...)
	v := s.byKey[string(s.key)]
	if v != nil && bytes.Equal(v.packed, s.packed) && bytes.Equal(v.detail, detail) {
		return nil
	}
	if v == nil {
		v = &endpointsValue{key: string(s.key)}
		s.byKey[v.key] = v // no ports: the service exists with none
	}
	v.packed = append(v.packed[:0], s.packed...) // no other state shares v: see carry
	v.detail = detail
	changed(v.key)
	return nil
}

func (s *endpointsServices) remove(o *object, changed func(string)) {
	s.key = append(append(append(s.key[:0], o.namespace...), '/'), o.name...)
	if v, ok := s.byKey[string(s.key)]; ok {
		delete(s.byKey, v.key)
		changed(v.key)
	}
}

func (s *endpointsServices) value(key string) ([]shm.Port, bool) {
	v, ok := s.byKey[key]
	if !ok {
		return nil, false
	}
	s.ports, s.nodes = unpackPorts(v.packed, s.ports[:0], s.nodes[:0], s.names)
	return s.ports, true
}

func (s *endpointsServices) detail(key string) []byte {
	if v, ok := s.byKey[key]; ok {
		return v.detail
	}
	return nil
}

func (s *endpointsServices) carry(from services, o *object) {
	key := o.namespace + "/" + o.name
	if v, ok := from.(*endpointsServices).byKey[key]; ok {
		c := *v // a copy: set rewrites a value's bytes in place
		c.packed = bytes.Clone(v.packed)
		s.byKey[key] = &c
	}
}

func (s *endpointsServices) each(fn func(string)) {
	for k := range s.byKey {
		fn(k)
	}
}

// sortEntries orders entries by port name, then node, declared entries
// first; stable, so that of the same node listed twice the first listing's
// node detail is kept.
func sortEntries(es []entry) {
	slices.SortStableFunc(es, func(a, b entry) int {
		if c := strings.Compare(a.port, b.port); c != 0 {
			return c
		}
		if a.declared != b.declared {
			if a.declared {
				return -1
			}
			return 1
		}
		if a.declared {
			return 0
		}
		return shm.Compare(a.node, b.node)
	})
}

// packPorts appends the value of sorted entries, each node once per port:
// per port, its name's length, its name and its node count (uvarints);
// per node, its family (4 or 6), address, port and weight.
func packPorts(b []byte, es []entry) []byte {
	for i := 0; i < len(es); {
		name := es[i].port
		b = binary.AppendUvarint(b, uint64(len(name)))
		b = append(b, name...)
		j := i
		for i < len(es) && es[i].port == name {
			i++
		}
		group := es[j:i]
		b = binary.AppendUvarint(b, uint64(countNodes(group)))
		for k, e := range group {
			if e.declared || (k > 0 && !group[k-1].declared && e.node == group[k-1].node) {
				continue
			}
			if e.node.Addr.Is4() {
				a := e.node.Addr.As4()
				b = append(b, 4)
				b = append(b, a[:]...)
			} else {
				a := e.node.Addr.As16()
				b = append(b, 6)
				b = append(b, a[:]...)
			}
			b = binary.LittleEndian.AppendUint16(b, e.node.Port)
			b = binary.LittleEndian.AppendUint32(b, e.node.Weight)
		}
	}
	return b
}

// countNodes counts the distinct nodes of one port's sorted entries.
func countNodes(group []entry) int {
	n := 0
	for k, e := range group {
		if !e.declared && (k == 0 || group[k-1].declared || e.node != group[k-1].node) {
			n++
		}
	}
	return n
}

// unpackPorts reads what packPorts wrote into ports, whose nodes share
// the memory of nodes.
func unpackPorts(b []byte, ports []shm.Port, nodes []shm.Node, names *interner) ([]shm.Port, []shm.Node) {
	type span struct {
		name     string
		from, to int
	}
	var spans [8]span
	list := spans[:0]
	for len(b) > 0 {
		l, w := binary.Uvarint(b)
		name := names.intern(borrow(b[w : w+int(l)]))
		b = b[w+int(l):]
		n, w := binary.Uvarint(b)
		b = b[w:]
		from := len(nodes)
		for range n {
			var node shm.Node
			if b[0] == 4 {
				node.Addr = netip.AddrFrom4([4]byte(b[1:5]))
				b = b[5:]
			} else {
				node.Addr = netip.AddrFrom16([16]byte(b[1:17]))
				b = b[17:]
			}
			node.Port = binary.LittleEndian.Uint16(b)
			node.Weight = binary.LittleEndian.Uint32(b[2:])
			b = b[6:]
			nodes = append(nodes, node)
		}
		list = append(list, span{name, from, len(nodes)})
	}
	for _, sp := range list { // nodes may have moved while growing
		var ns []shm.Node
		if sp.to > sp.from {
			ns = nodes[sp.from:sp.to:sp.to]
		}
		ports = append(ports, shm.Port{Name: sp.name, Nodes: ns})
	}
	return ports, nodes
}

// detailJSON is the node detail of sorted entries: every node of every
// port in that order, each host and port once.
func detailJSON(es []entry) []byte {
	b := []byte{'['}
	seen := map[hostPort]struct{}{}
	for _, e := range es {
		if e.declared {
			continue
		}
		hp := hostPort{e.node.Addr, e.node.Name, e.node.Port}
		if _, dup := seen[hp]; dup {
			continue
		}
		seen[hp] = struct{}{}
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = appendDetail(b, infoNode{node: e.node, info: e.info})
	}
	return append(b, ']')
}

// interner hands out one Go string per distinct port name (and decimal
// port number), so that names decoded from borrowed bytes can be kept
// without an allocation per event. It stops growing at a bound: past it,
// names are copied instead.
type interner struct {
	m map[string]string
}

const maxInterned = 4096

func newInterner() *interner { return &interner{m: map[string]string{}} }

// intern returns s, or the same text kept before, as a string of its own
// (s may be borrowed).
func (in *interner) intern(s string) string {
	if kept, ok := in.m[s]; ok {
		return kept
	}
	s = strings.Clone(s)
	if len(in.m) < maxInterned {
		in.m[s] = s
	}
	return s
}

// portKey is how port p is addressed in a nodes query: its name, or its
// number in decimal when it has none.
func (in *interner) portKey(p port) string {
	if p.name != "" {
		return in.intern(p.name)
	}
	var buf [8]byte
	return in.intern(borrow(strconv.AppendInt(buf[:0], int64(p.number), 10)))
}

// sliceServices: a service is the union of every EndpointSlice labelled
// with its name in its namespace.
type sliceServices struct {
	serviceOptions
	slices    map[string]slice               // by namespace/sliceName
	byService map[string]map[string]struct{} // service key -> slice ids
	names     *interner
}

// slice is what one EndpointSlice contributes to its service.
type slice struct {
	service string
	ports   []string   // every port with a number, by portKey
	nodes   []portNode // every address that may be served, paired with each port
}

// portNode is one address and port of a slice that may be served: a ready
// endpoint's, or (with the fallback) a serving and terminating one's.
type portNode struct {
	port    string
	node    shm.Node
	ready   bool // else serving and terminating
	hinted  bool // has hints.forZones
	forZone bool // hints.forZones names the configured zone
	info    *nodeInfo
}

func (a portNode) equal(b portNode) bool {
	return a.port == b.port && a.node == b.node && a.ready == b.ready && a.hinted == b.hinted && a.forZone == b.forZone &&
		(a.info == b.info || a.info != nil && b.info != nil && *a.info == *b.info)
}

func newSliceServices(weight uint32) *sliceServices {
	return &sliceServices{serviceOptions: serviceOptions{weight: weight, fallback: true}, slices: map[string]slice{}, byService: map[string]map[string]struct{}{}, names: newInterner()}
}

func (s *sliceServices) set(o *object, changed func(string)) error {
	id := o.namespace + "/" + o.name
	if o.serviceName == "" { // not (or no longer) part of a service
		s.forget(id, changed)
		return nil
	}
	next := slice{service: o.namespace + "/" + o.serviceName}
	var nums []int32
	for _, p := range o.ports {
		if p.number == 0 {
			continue // no port number: nothing a proxy can dial
		}
		if err := validPort(p); err != nil {
			return err
		}
		next.ports = append(next.ports, s.names.portKey(p))
		nums = append(nums, p.number)
	}
	for _, e := range o.endpoints {
		if !e.ready && !(s.fallback && e.serving && e.terminating) {
			continue
		}
		pn := portNode{ready: e.ready, hinted: len(e.zones) > 0, forZone: s.zone != "" && slices.Contains(e.zones, s.zone)}
		if s.withDetail {
			pn.info = e.info
		}
		for _, a := range e.addresses {
			n, err := sliceNode(o.addressType, a, s.weight)
			if err != nil {
				return err
			}
			for i, p := range next.ports {
				n.Port = uint16(nums[i])
				pn.port, pn.node = p, n
				next.nodes = append(next.nodes, pn)
			}
		}
	}
	prev, had := s.slices[id]
	if had && prev.service == next.service && slices.Equal(prev.ports, next.ports) && slices.EqualFunc(prev.nodes, next.nodes, portNode.equal) {
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
	ports, _, ok := s.build(key, false)
	return ports, ok
}

func (s *sliceServices) detail(key string) []byte {
	if !s.withDetail {
		return nil
	}
	_, d, _ := s.build(key, true)
	return d
}

// build merges the slices of service key: per port, the nodes to serve.
func (s *sliceServices) build(key string, detail bool) ([]shm.Port, []byte, bool) {
	members, ok := s.byService[key]
	if !ok {
		return nil, nil, false
	}
	ps := portSet{}
	cands := map[string][]portNode{}
	for id := range members {
		sl := s.slices[id]
		for _, p := range sl.ports {
			ps.declare(p)
		}
		for _, pn := range sl.nodes {
			cands[pn.port] = append(cands[pn.port], pn)
		}
	}
	for port, list := range cands {
		for _, pn := range s.serve(list) {
			ps.add(port, pn.node, pn.info)
		}
	}
	ports, d := ps.build(detail)
	return ports, d, true
}

// serve picks, from the candidates of one port, those to serve: the ready
// ones; with none, the serving and terminating ones (when the fallback is
// on, set keeps only those besides the ready ones); then, with a zone,
// only those hinted for it, if every one has hints and one is for it.
func (s *sliceServices) serve(list []portNode) []portNode {
	var sel []portNode
	for _, pn := range list {
		if pn.ready {
			sel = append(sel, pn)
		}
	}
	if len(sel) == 0 && s.fallback {
		sel = list
	}
	if s.zone == "" || len(sel) == 0 {
		return sel
	}
	all, mine := true, false
	for _, pn := range sel {
		all = all && pn.hinted
		mine = mine || pn.forZone
	}
	if !all || !mine {
		return sel
	}
	return slices.DeleteFunc(slices.Clone(sel), func(pn portNode) bool { return !pn.forZone })
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
		return shm.Node{Name: strings.Clone(a), Weight: weight}, nil // a is borrowed
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

func (s *sliceServices) each(fn func(string)) {
	for k := range s.byService {
		fn(k)
	}
}
