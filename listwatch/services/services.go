package services

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"

	"github.com/kdisc/kdisc/internal/jsonscan"
	"github.com/kdisc/kdisc/shm"
)

// serviceOptions say how objects become nodes.
type serviceOptions struct {
	weight uint32 // of every node
	// fallback (EndpointSlices): a port with no ready endpoint serves the
	// endpoints that are serving and terminating, as kube-proxy does.
	fallback bool
	// node and zone (EndpointSlices), when set: if every ready endpoint of
	// a port has node hints and one is for node, only those are served;
	// else the same with zone hints and zone. Hints never apply to the
	// fallback.
	node, zone string
	withDetail bool // keep node detail (nodeName, zone, targetRef)
}

type hostPort struct {
	addr netip.Addr
	name string
	port uint16
}

// appendDetail appends one node's detail:
// {"host":..,"port":..,"node_name":..,"zone":..,"target_ref":{"kind":..,"name":..,"uid":..}},
// each field absent when unknown.
func appendDetail(b []byte, node shm.Node, where *placement) []byte {
	b = append(b, `{"host":"`...)
	b = node.AppendHost(b) // an IP address or a DNS name: nothing to escape
	b = append(b, `","port":`...)
	b = strconv.AppendUint(b, uint64(node.Port), 10)
	if i := where; i != nil {
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
	if a, ok := parseIPv4Canonical(s); ok {
		return a, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		a, err = parseIPv4Sloppy(s)
	}
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%w: address %q", errMalformed, s)
	}
	return a, nil
}

// parseIPv4Canonical reads the form nearly every address of the API has,
// dotted decimal without leading zeros, in a few instructions; anything
// else (IPv6, leading zeros, garbage) is left to netip.ParseAddr, which
// reads this form to the same address (netip's general parser was 8% of
// the instructions of BenchmarkWatchApplyProtobuf).
func parseIPv4Canonical(s string) (netip.Addr, bool) {
	var a [4]byte
	i := 0
	for k := range a {
		if k > 0 {
			if i >= len(s) || s[i] != '.' {
				return netip.Addr{}, false
			}
			i++
		}
		// One to three digits, unrolled: no leading zero, at most 255.
		if i >= len(s) || s[i]-'0' > 9 {
			return netip.Addr{}, false
		}
		v := uint(s[i] - '0')
		i++
		if i < len(s) && s[i]-'0' <= 9 {
			if v == 0 {
				return netip.Addr{}, false
			}
			v = v*10 + uint(s[i]-'0')
			i++
			if i < len(s) && s[i]-'0' <= 9 {
				v = v*10 + uint(s[i]-'0')
				i++
				if v > 255 {
					return netip.Addr{}, false
				}
			}
		}
		a[k] = byte(v)
	}
	return netip.AddrFrom4(a), i == len(s)
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
		return x.Name == y.Name && x.Number == y.Number && slices.Equal(x.Nodes, y.Nodes)
	})
}

// endpointsState: one Endpoints object is one service, so the table
// itself is the state. Each object's value is built and written at once,
// and a list writes its services as they come. Nothing is kept per
// service but what the table cannot tell: a fingerprint of what it was
// last given, and which services are served from a truncated object.
// (What a full table refused, the Sink keeps with the refusal.)
type endpointsState struct {
	serviceOptions
	names *interner
	// overCapacity: the services whose Endpoints object is truncated now
	// (object.truncated); onTruncated, when set, hears each one that
	// becomes so.
	overCapacity map[string]struct{}
	onTruncated  func(key string)
	// written holds, by the hash of a service's key, the hash of the
	// value and node detail the table last stored for it (wrote): an
	// object that changes nothing kdisc serves (a pod joining
	// notReadyAddresses, a new annotation: about half the events of a
	// rolling update) then costs no table write. 16 bytes a service
	// where a copy of the value cost 143. Colliding keys only cost
	// writes: an event is skipped only when both 64-bit hashes match.
	written map[uint64]uint64

	// Reused by build, ports and unpack: what they return is valid
	// until the next call of any.
	key      []byte
	entries  []portEntry
	portList []shm.Port
	nodes    []shm.Node
	packed   []byte
	keySum   uint64 // build's: the hash of the key it returned
	sum      uint64 // and of the value and detail
}

// portEntry is one node of one port while a value is built; a port listed
// without addresses has a portEntry with no node (declared), whose node holds
// only the port's number.
type portEntry struct {
	port     string
	node     shm.Node
	info     *placement
	declared bool
}

func newEndpointsState(weight uint32) *endpointsState {
	return &endpointsState{serviceOptions: serviceOptions{weight: weight}, names: newInterner(),
		overCapacity: map[string]struct{}{}, written: map[uint64]uint64{}}
}

// build reads object o: it returns its service and node detail (nil
// without node detail), keeps its value for ports and its fingerprint
// for unchanged, and records whether the service is served from a
// truncated object now. A malformed object is an error, and changes
// nothing. The key is valid until the next call.
func (s *endpointsState) build(o *object) (key string, detail []byte, err error) {
	s.entries = s.entries[:0]
	for _, sub := range o.subsets {
		for _, p := range sub.ports {
			if err := validPort(p); err != nil {
				return "", nil, err
			}
			k := s.names.portKey(p)
			s.entries = append(s.entries, portEntry{port: k, declared: true, node: shm.Node{Port: uint16(p.number)}})
			for i, ip := range sub.addresses {
				addr, err := parseIP(ip)
				if err != nil {
					return "", nil, err
				}
				var info *placement
				if s.withDetail && i < len(sub.infos) {
					info = sub.infos[i]
				}
				s.entries = append(s.entries, portEntry{port: k, node: shm.Node{Addr: addr, Port: uint16(p.number), Weight: s.weight}, info: info})
			}
		}
	}
	sortEntries(s.entries)
	if s.withDetail {
		detail = detailJSON(s.entries)
	}
	key = s.keyOf(o)
	s.noteTruncated(key, o.truncated)
	// The fingerprint, from the entries: an unchanged value need not be
	// made into ports at all (ports).
	s.packed = append(packEntries(s.packed[:0], s.entries), detail...) // packed ports are self-delimiting
	s.keySum, s.sum = xxhash.Sum64String(key), xxhash.Sum64(s.packed)
	return key, detail, nil
}

// ports is the value of the service build returned last, valid until the
// next call of build, ports or unpack.
func (s *endpointsState) ports() []shm.Port {
	s.portList, s.nodes = portsOf(s.entries, s.portList[:0], s.nodes[:0])
	return s.portList
}

// unchanged reports whether the table was last given, for the service
// build returned, the value and detail build returned.
func (s *endpointsState) unchanged() bool {
	sum, ok := s.written[s.keySum]
	return ok && sum == s.sum
}

// wrote records that the table holds what build returned.
func (s *endpointsState) wrote() { s.written[s.keySum] = s.sum }

// deleted records that the table no longer holds service key.
func (s *endpointsState) deleted(key string) { delete(s.written, xxhash.Sum64String(key)) }

// keyOf is the service of o, valid until the next call.
func (s *endpointsState) keyOf(o *object) string {
	s.key = append(append(append(s.key[:0], o.namespace...), '/'), o.name...)
	return jsonscan.Borrow(s.key)
}

// noteTruncated records whether the service key is truncated now.
func (s *endpointsState) noteTruncated(key string, truncated bool) {
	_, was := s.overCapacity[key]
	switch {
	case truncated && !was:
		key = strings.Clone(key)
		s.overCapacity[key] = struct{}{}
		if s.onTruncated != nil {
			s.onTruncated(key)
		}
	case !truncated && was:
		delete(s.overCapacity, key)
	}
}

func (s *endpointsState) truncated() int { return len(s.overCapacity) }

// forget drops what is kept of the service of a deleted object, and
// returns the service (valid until the next call).
func (s *endpointsState) forget(o *object) string {
	key := s.keyOf(o)
	delete(s.overCapacity, key)
	return key
}

// keepTruncated forgets every truncated service that listed does not
// hold: what a relist did not find.
func (s *endpointsState) keepTruncated(listed func(key string) bool) {
	for k := range s.overCapacity {
		if !listed(k) {
			delete(s.overCapacity, k)
		}
	}
}

// unpack returns the value packed (packPorts) of a service a full table
// refused.
func (s *endpointsState) unpack(packed []byte) []shm.Port {
	s.portList, s.nodes = unpackPorts(packed, s.portList[:0], s.nodes[:0], s.names)
	return s.portList
}

// sortEntries orders entries by port name, then node, declared entries
// first; stable, so that of the same node listed twice the first listing's
// node detail is kept.
func sortEntries(es []portEntry) {
	for i := 1; i < len(es); i++ {
		if compareEntries(&es[i-1], &es[i]) > 0 {
			slices.SortStableFunc(es, func(a, b portEntry) int { return compareEntries(&a, &b) })
			return
		}
	}
	// Already in order, as an Endpoints object's addresses mostly are:
	// the Endpoints controller sorts them.
}

func compareEntries(a, b *portEntry) int {
	if a.port != b.port {
		return strings.Compare(a.port, b.port)
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
	if x, y := &a.node, &b.node; x.Name == "" && y.Name == "" && x.Addr.Is4() && y.Addr.Is4() {
		// compareNodes' IPv4 order without copying the nodes: the first
		// octet that differs decides, by its text's rank.
		p, q := x.Addr.As4(), y.Addr.As4()
		for i := range p {
			if p[i] != q[i] {
				return cmp.Compare(octetRank[p[i]], octetRank[q[i]])
			}
		}
		return cmp.Compare(x.Port, y.Port)
	}
	return compareNodes(a.node, b.node)
}

// compareNodes orders nodes as shm.Compare does (by host text, then port)
// without formatting two IPv4 addresses per comparison: dotted-decimal
// text compares octet by octet, each octet by its decimal text (a shorter
// one that is a prefix of the other is followed by '.' or the end, both
// below any digit), which octetRank gives in one load.
func compareNodes(a, b shm.Node) int {
	if a.Name != "" || b.Name != "" || !a.Addr.Is4() || !b.Addr.Is4() {
		return shm.Compare(a, b)
	}
	x, y := a.Addr.As4(), b.Addr.As4()
	for i := range x {
		if c := cmp.Compare(octetRank[x[i]], octetRank[y[i]]); c != 0 {
			return c
		}
	}
	return cmp.Compare(a.Port, b.Port)
}

// octetRank is each octet's place when the decimal texts of 0..255 are
// sorted as strings.
var octetRank = func() (rank [256]uint8) {
	var texts [256]string
	for i := range texts {
		texts[i] = strconv.Itoa(i)
	}
	order := make([]int, 256)
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(texts[a], texts[b]) })
	for place, o := range order {
		rank[o] = uint8(place)
	}
	return rank
}()

// packPorts appends ports packed: per port, its name's length, its name
// and its node count (uvarints), and its number when it has no node; per
// node, its family (4 or 6), address, port and weight.
func packPorts(b []byte, ports []shm.Port) []byte {
	for _, p := range ports {
		b = binary.AppendUvarint(b, uint64(len(p.Name)))
		b = append(b, p.Name...)
		b = binary.AppendUvarint(b, uint64(len(p.Nodes)))
		if len(p.Nodes) == 0 {
			b = binary.LittleEndian.AppendUint16(b, p.Number)
		}
		for _, n := range p.Nodes {
			b = packNode(b, n)
		}
	}
	return b
}

// packEntries appends what packPorts(portsOf(es)) appends, without
// making the ports: per port (a run of one name in sorted entries), its
// declared number when no node serves it, and each node once.
func packEntries(b []byte, es []portEntry) []byte {
	for i := 0; i < len(es); {
		j := i + 1
		for j < len(es) && es[j].port == es[i].port {
			j++
		}
		run := es[i:j]
		n := 0
		for k := range run {
			if served(run, k) {
				n++
			}
		}
		b = binary.AppendUvarint(b, uint64(len(run[0].port)))
		b = append(b, run[0].port...)
		b = binary.AppendUvarint(b, uint64(n))
		if n == 0 {
			b = binary.LittleEndian.AppendUint16(b, run[0].node.Port)
		}
		for k := range run {
			if served(run, k) {
				b = packNode(b, run[k].node)
			}
		}
		i = j
	}
	return b
}

// served reports whether portEntry k of one port's sorted entries is a node
// of the port (portsOf): not declared, and not the node before it again.
func served(run []portEntry, k int) bool {
	return !run[k].declared && (k == 0 || run[k-1].declared || run[k-1].node != run[k].node)
}

// packNode appends one node as packPorts does.
func packNode(b []byte, n shm.Node) []byte {
	if n.Addr.Is4() {
		a := n.Addr.As4()
		b = append(append(b, 4), a[:]...)
	} else {
		a := n.Addr.As16()
		b = append(append(b, 6), a[:]...)
	}
	b = binary.LittleEndian.AppendUint16(b, n.Port)
	return binary.LittleEndian.AppendUint32(b, n.Weight)
}

// unpackPorts reads what packPorts wrote into ports, whose nodes share
// the memory of nodes.
func unpackPorts(b []byte, ports []shm.Port, nodes []shm.Node, names *interner) ([]shm.Port, []shm.Node) {
	start := len(ports)
	var firsts [8]int
	first := firsts[:0]
	for len(b) > 0 {
		l, w := binary.Uvarint(b)
		ports = append(ports, shm.Port{Name: names.intern(jsonscan.Borrow(b[w : w+int(l)]))})
		first = append(first, len(nodes))
		b = b[w+int(l):]
		n, w := binary.Uvarint(b)
		b = b[w:]
		if n == 0 {
			ports[len(ports)-1].Number = binary.LittleEndian.Uint16(b)
			b = b[2:]
		}
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
	}
	setNodes(ports[start:], first, nodes)
	return ports, nodes
}

// setNodes points each port at its nodes, port i's starting at first[i]
// in nodes and ending where the next one's start. It runs once nodes is
// complete: while it grew, its memory may have moved.
func setNodes(ports []shm.Port, first []int, nodes []shm.Node) {
	for i := range ports {
		from, to := first[i], len(nodes)
		if i+1 < len(first) {
			to = first[i+1]
		}
		if to > from {
			ports[i].Nodes = nodes[from:to:to]
		}
	}
}

// detailJSON is the node detail of sorted entries: every node of every
// port in that order, each host and port once.
func detailJSON(es []portEntry) []byte {
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
		b = appendDetail(b, e.node, e.info)
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
	return in.intern(jsonscan.Borrow(strconv.AppendInt(buf[:0], int64(p.number), 10)))
}

// sliceState: a service is the union of every EndpointSlice labelled
// with its name in its namespace. It keeps what each slice contributes
// (merging needs it), and builds a service's value from its slices when
// the value is written.
type sliceState struct {
	serviceOptions
	slices    map[string]*slice // by namespace/sliceName
	byService map[string]*slice // by service key: the first of its slices
	names     *interner
	portSets  map[string]*portSet // interned by their text (portSetKey)

	// Reused by set and value: what value returns is valid until its next
	// call.
	id, svc  []byte
	next     contribution
	setKey   []byte
	built    *slice   // the first slice of the service whose merge s.entries holds; nil after any change
	declared []string // ports, while a service is built
	cands    []candidate
	keys     []candKey   // cands in order, sorted instead of them
	sorted   []candidate // cands in keys' order
	entries  []portEntry
	ports    []shm.Port
	nodes    []shm.Node
}

// slice is what one EndpointSlice contributes to its service, kept
// dense (the slices are most of what kdisc keeps in its heap): 64 bytes,
// its packed nodes, its id (the key of sliceState.slices) and, shared, its
// ports; the rarely used FQDN names and node detail out of line.
type slice struct {
	service string     // the service's key (often a view of the id: see join)
	next    *slice     // the service's next slice (few: a slice holds up to 100 endpoints by default)
	ports   *portSet   // every port with a number (interned: shared, never changed)
	nodes   []byte     // every address that may be served, paired with each port: packed (nodeIPv4)
	more    *sliceMore // nil unless the slice has FQDN addresses or node detail
}

// A slice's nodes are packed (they are most of what kdisc keeps in its
// heap): a byte that says how many bytes each node takes (nodeIPv4 in an
// IPv4 slice, the rule, else nodeAny), then each node: its flags (pnIPv4
// ...), its port's index in the slice's ports, its port number and, with
// pnFQDN, its index in the slice's names (little endian), then its
// address (4 bytes or 16). No nodes: no bytes. A node is one address and
// port that may be served or may stand in the way of another listing of
// the same address and port (see contribution).
const (
	nodeIPv4 = 6 + 4
	nodeAny  = 6 + 16
)

// count is the number of nodes of sl.
func (sl *slice) count() int {
	if len(sl.nodes) == 0 {
		return 0
	}
	return (len(sl.nodes) - 1) / int(sl.nodes[0])
}

// sliceMore is what few slices have.
type sliceMore struct {
	names []string     // FQDN addresses, by their nodes' name index
	infos []*placement // with node detail: per node
}

// portSet is the ports of a slice with a number, by portKey (interned),
// and their numbers.
type portSet struct {
	names []string
	nums  []uint16
}

// contribution is what contribution reads from an EndpointSlice, before
// it is kept as a slice.
type contribution struct {
	ports  []string
	nums   []uint16
	packed []byte // every address that may be served, paired with each port, packed
	names  []string
	infos  []*placement
}

const (
	pnIPv4        = 1 << iota
	pnFQDN        // the address is a DNS name
	pnReady       // conditions.ready
	pnTerminating // conditions.terminating (and serving, unless ready)
	pnHinted      // has hints.forZones
	pnForZone     // hints.forZones names the configured zone
	pnNodeHinted  // has hints.forNodes
	pnForNode     // hints.forNodes names the configured node
)

// unpack returns candidate i of sl.
func (sl *slice) unpack(i int, weight uint32) candidate {
	size := int(sl.nodes[0])
	off := 1 + i*size
	b := sl.nodes[off : off+size]
	flags, at := b[0], b[1]
	num := binary.LittleEndian.Uint16(b[2:4])
	pn := candidate{port: sl.ports.names[at], node: shm.Node{Port: num, Weight: weight}, flags: flags, portAt: at}
	switch {
	case flags&pnIPv4 != 0:
		a := [4]byte(b[6:10])
		pn.node.Addr = netip.AddrFrom4(a)
		pn.order = uint64(octetRank[a[0]])<<48 | uint64(octetRank[a[1]])<<40 | uint64(octetRank[a[2]])<<32 |
			uint64(octetRank[a[3]])<<24 | uint64(num)<<8 | 1
	case flags&pnFQDN != 0:
		pn.node.Name = sl.more.names[binary.LittleEndian.Uint16(b[4:6])]
	default:
		pn.node.Addr = netip.AddrFrom16([16]byte(b[6:22]))
	}
	if sl.more != nil && sl.more.infos != nil {
		pn.info = sl.more.infos[i]
	}
	return pn
}

// sameAs reports whether sl contributes what next does.
func (sl *slice) sameAs(next *contribution) bool {
	var names []string
	var infos []*placement
	if sl.more != nil {
		names, infos = sl.more.names, sl.more.infos
	}
	return sl.ports.is(next.ports, next.nums) && bytes.Equal(sl.nodes, next.packed) && slices.Equal(names, next.names) &&
		slices.EqualFunc(infos, next.infos, func(a, b *placement) bool { return a == b || a != nil && b != nil && *a == *b })
}

// is reports whether ps holds ports names numbered nums.
func (ps *portSet) is(names []string, nums []uint16) bool {
	return ps != nil && slices.Equal(ps.names, names) && slices.Equal(ps.nums, nums)
}

// portSet returns the ports of next, shared with every slice that has
// the same (interned up to a bound, as the port names are).
func (s *sliceState) portSet(next *contribution) *portSet {
	s.setKey = s.setKey[:0]
	for i, name := range next.ports { // each: its name's length, its name, its number
		s.setKey = append(binary.AppendUvarint(s.setKey, uint64(len(name))), name...)
		s.setKey = binary.BigEndian.AppendUint16(s.setKey, next.nums[i])
	}
	if ps, ok := s.portSets[string(s.setKey)]; ok {
		return ps
	}
	ps := &portSet{names: slices.Clone(next.ports), nums: slices.Clone(next.nums)}
	if len(s.portSets) < maxInterned {
		s.portSets[string(s.setKey)] = ps
	}
	return ps
}

// keep makes sl hold what next holds, reusing sl's memory: no other
// state shares it (see carry).
func (sl *slice) keep(next *contribution) {
	if cap(sl.nodes) < len(next.packed) {
		sl.nodes = make([]byte, 0, len(next.packed)) // no spare room: it would be kept
	}
	sl.nodes = append(sl.nodes[:0], next.packed...)
	if len(next.names) == 0 && len(next.infos) == 0 {
		sl.more = nil
		return
	}
	if sl.more == nil {
		sl.more = &sliceMore{}
	}
	sl.more.names = append(sl.more.names[:0], next.names...)
	sl.more.infos = append(sl.more.infos[:0], next.infos...)
	if len(sl.more.infos) == 0 {
		sl.more.infos = nil // unpack tells detail by a nil infos
	}
}

// candidate is a node that may be served for one port, while a service
// is built (unpacked from a slice's packed node).
type candidate struct {
	port   string
	node   shm.Node
	flags  uint8 // of its packed node
	portAt uint8 // its packed node's port index
	info   *placement
	// order: an IPv4 node's place in compareNodes' order as one number
	// (its octets' text ranks, then its port); 0 for other nodes.
	order uint64
}

// candKey is a candidate while candidates are sorted (16 bytes to move
// instead of a candidate's 100): its port's place among the service's
// ports, its order, and where it is in sliceState.cands.
type candKey struct {
	order uint64
	port  uint32
	i     int32
}

// compareCandidates orders candidates by port, then node (as
// compareNodes), then preference.
func compareCandidates(a, b candidate) int {
	if c := strings.Compare(a.port, b.port); c != 0 {
		return c
	}
	var c int
	if a.order != 0 && b.order != 0 {
		c = cmp.Compare(a.order, b.order)
	} else {
		c = compareNodes(a.node, b.node)
	}
	if c != 0 {
		return c
	}
	return comparePreference(a, b)
}

func (pn candidate) is(flag uint8) bool { return pn.flags&flag != 0 }

func newSliceState(weight uint32) *sliceState {
	return &sliceState{serviceOptions: serviceOptions{weight: weight, fallback: true}, slices: map[string]*slice{}, byService: map[string]*slice{}, names: newInterner(),
		portSets: map[string]*portSet{}}
}

// set records an added or modified slice; changed hears each service
// whose value that changes (two when the slice moves between services).
func (s *sliceState) set(o *object, changed func(string)) error {
	s.built = nil
	s.id = append(append(append(s.id[:0], o.namespace...), '/'), o.name...)
	prev := s.slices[string(s.id)]
	if o.serviceName == "" { // not (or no longer) part of a service
		s.forget(string(s.id), prev, changed)
		return nil
	}
	if err := s.contribution(o, &s.next); err != nil {
		return err
	}
	s.svc = append(append(append(s.svc[:0], o.namespace...), '/'), o.serviceName...)
	if prev != nil && prev.service != string(s.svc) {
		s.forget(string(s.id), prev, changed)
		prev = nil
	}
	if prev != nil && prev.sameAs(&s.next) {
		return nil
	}
	if prev == nil {
		id := string(s.id)
		prev = &slice{}
		s.join(id, string(s.svc), prev)
		s.slices[id] = prev
	}
	if !prev.ports.is(s.next.ports, s.next.nums) {
		prev.ports = s.portSet(&s.next)
	}
	prev.keep(&s.next)
	changed(prev.service)
	return nil
}

// contribution reads what slice o contributes into next, reusing its
// memory.
func (s *sliceState) contribution(o *object, next *contribution) error {
	next.ports, next.nums, next.names, next.infos = next.ports[:0], next.nums[:0], next.names[:0], next.infos[:0]
	size := nodeAny
	if o.addressType == "IPv4" { // then every address is (sliceNode)
		size = nodeIPv4
	}
	next.packed = append(next.packed[:0], byte(size))
	var nums [8]int32 // the numbers of next.ports
	numbers := nums[:0]
	for _, p := range o.ports {
		if p.number == 0 {
			continue // no port number: nothing a proxy can dial
		}
		if err := validPort(p); err != nil {
			return err
		}
		next.ports = append(next.ports, s.names.portKey(p))
		next.nums = append(next.nums, uint16(p.number))
		numbers = append(numbers, p.number)
	}
	if len(next.ports) > math.MaxUint8+1 {
		return fmt.Errorf("%w: %d ports", errMalformed, len(next.ports))
	}
	for _, e := range o.endpoints {
		// Kept: what may be served (ready; serving and terminating, with
		// the fallback), and every endpoint that is not terminating, served
		// or not: it stands in the way of a terminating listing of the
		// same address and port (a pod IP reused while the old pod
		// terminates), as in kube-proxy's endpoint cache. A terminating
		// endpoint that is neither ready nor (with the fallback) serving
		// can never be served, nor win over another listing.
		if !e.ready && e.terminating && !(s.fallback && e.serving) {
			continue
		}
		var flags uint8
		if e.ready {
			flags |= pnReady
		}
		if e.terminating {
			flags |= pnTerminating
		}
		if len(e.zones) > 0 {
			flags |= pnHinted
		}
		if s.zone != "" && slices.Contains(e.zones, s.zone) {
			flags |= pnForZone
		}
		if len(e.forNodes) > 0 {
			flags |= pnNodeHinted
		}
		if s.node != "" && slices.Contains(e.forNodes, s.node) {
			flags |= pnForNode
		}
		for _, a := range e.addresses {
			n, err := sliceNode(o.addressType, a, s.weight)
			if err != nil {
				return err
			}
			var node [nodeAny]byte // packed (nodeIPv4), its port and number set per port
			node[0] = flags
			switch {
			case n.Name != "":
				if len(next.names) > math.MaxUint16 {
					return fmt.Errorf("%w: over %d FQDN addresses", errMalformed, math.MaxUint16+1)
				}
				node[0] |= pnFQDN
				binary.LittleEndian.PutUint16(node[4:6], uint16(len(next.names)))
				next.names = append(next.names, n.Name)
			case n.Addr.Is4():
				node[0] |= pnIPv4
				a4 := n.Addr.As4()
				copy(node[6:], a4[:])
			default:
				a16 := n.Addr.As16()
				copy(node[6:], a16[:])
			}
			for i := range next.ports {
				node[1] = uint8(i)
				binary.LittleEndian.PutUint16(node[2:4], uint16(numbers[i]))
				next.packed = append(next.packed, node[:size]...)
				if s.withDetail {
					next.infos = append(next.infos, e.info)
				}
			}
		}
	}
	if len(next.packed) == 1 {
		next.packed = next.packed[:0] // no nodes
	}
	return nil
}

// join adds slice sl, of id, to service key (sl.next must be nil).
func (s *sliceState) join(id, key string, sl *slice) {
	first := s.byService[key]
	if first != nil {
		sl.service = first.service
		for ; first.next != nil; first = first.next {
		}
		first.next = sl
		return
	}
	// A slice's name is most often its service's with a suffix (the
	// controller's generateName): the key is then a view of the id.
	if strings.HasPrefix(id, key) {
		key = id[:len(key)]
	} else {
		key = strings.Clone(key)
	}
	sl.service = key
	s.byService[key] = sl
}

// remove forgets a deleted slice.
func (s *sliceState) remove(o *object, changed func(string)) {
	s.id = append(append(append(s.id[:0], o.namespace...), '/'), o.name...)
	s.forget(string(s.id), s.slices[string(s.id)], changed)
}

// forget drops slice sl of id (nil: nothing to do) from its service.
func (s *sliceState) forget(id string, sl *slice, changed func(string)) {
	s.built = nil
	if sl == nil {
		return
	}
	delete(s.slices, id)
	key := sl.service
	switch first := s.byService[key]; {
	case first == sl && sl.next == nil:
		delete(s.byService, key)
	case first == sl:
		s.byService[key] = sl.next
	default:
		for ; first.next != sl; first = first.next {
		}
		first.next = sl.next
	}
	sl.next = nil
	changed(key)
}

// carry copies what from knows of slice o (by its namespace and name)
// into this state: a relist that finds o malformed keeps o's last good
// version, so that o's later DELETED event still removes it.
func (s *sliceState) carry(from *sliceState, o *object) {
	s.built = nil
	id := o.namespace + "/" + o.name
	prev, ok := from.slices[id]
	if !ok {
		return
	}
	s.forget(id, s.slices[id], func(string) {})
	// A copy: set rewrites a slice's memory in place (its ports are
	// never changed: shared).
	c := &slice{ports: prev.ports, nodes: slices.Clone(prev.nodes)}
	if prev.more != nil {
		c.more = &sliceMore{names: slices.Clone(prev.more.names), infos: slices.Clone(prev.more.infos)}
	}
	s.join(id, prev.service, c)
	s.slices[id] = c
}

// value returns the ports of a service and whether the service exists.
// A service exists while at least one EndpointSlice labelled with it
// does: with no port its value is empty, and a port without an address
// to serve has no nodes.
func (s *sliceState) value(key string) ([]shm.Port, bool) {
	if !s.build(key) {
		return nil, false
	}
	s.ports, s.nodes = portsOf(s.entries, s.ports[:0], s.nodes[:0])
	return s.ports, true
}

// has is value's second result, without building the value.
func (s *sliceState) has(key string) bool {
	_, ok := s.byService[key]
	return ok
}

// detail returns the node detail of a service (node_detail): a JSON
// array of its nodes with where they run; nil when node detail is off or
// the service does not exist.
func (s *sliceState) detail(key string) []byte {
	if !s.withDetail || !s.build(key) {
		return nil
	}
	return detailJSON(s.entries)
}

// declaredEntry is the declared portEntry of port name of the service
// whose first slice is first, with the port's number (its first slice's),
// kept if the port gets no node.
func declaredEntry(first *slice, name string) portEntry {
	for sl := first; sl != nil; sl = sl.next {
		if k := slices.Index(sl.ports.names, name); k >= 0 {
			return portEntry{port: name, declared: true, node: shm.Node{Port: sl.ports.nums[k]}}
		}
	}
	return portEntry{port: name, declared: true}
}

// build merges the slices of service key into s.entries, sorted: per port,
// the nodes to serve.
func (s *sliceState) build(key string) bool {
	svc, ok := s.byService[key]
	if !ok {
		return false
	}
	if svc == s.built { // value then detail of one write: built once
		return true
	}
	s.built = svc
	s.entries, s.cands, s.declared, s.keys = s.entries[:0], s.cands[:0], s.declared[:0], s.keys[:0]
	for sl := svc; sl != nil; sl = sl.next {
		s.declared = append(s.declared, sl.ports.names...)
	}
	slices.Sort(s.declared)
	s.declared = slices.Compact(s.declared)
	for sl := svc; sl != nil; sl = sl.next {
		var places [8]uint32
		place := places[:0] // of each port of sl in s.declared
		for _, p := range sl.ports.names {
			at, _ := slices.BinarySearch(s.declared, p)
			place = append(place, uint32(at))
		}
		for i := range sl.count() {
			pn := sl.unpack(i, s.weight)
			s.keys = append(s.keys, candKey{order: pn.order, port: place[pn.portAt], i: int32(len(s.cands))})
			s.cands = append(s.cands, pn)
		}
	}
	// By port, then node, the preferred listing of a node first: one
	// endpoint per address and port.
	slices.SortFunc(s.keys, func(a, b candKey) int {
		if a.port != b.port {
			return cmp.Compare(a.port, b.port)
		}
		if a.order != b.order && a.order != 0 && b.order != 0 {
			return cmp.Compare(a.order, b.order)
		}
		return compareCandidates(s.cands[a.i], s.cands[b.i])
	})
	s.sorted = s.sorted[:0]
	for j, k := range s.keys {
		pn := &s.cands[k.i]
		if j > 0 && k.port == s.keys[j-1].port && pn.node == s.sorted[len(s.sorted)-1].node {
			continue // the same address and port, less preferred
		}
		s.sorted = append(s.sorted, *pn)
	}
	s.cands, s.sorted = s.sorted, s.cands
	// The entries in sortEntries' order as they are made: per port, its
	// declared portEntry, then its nodes (serve keeps their order).
	d := 0
	for i := 0; i < len(s.cands); {
		j := i + 1
		for j < len(s.cands) && s.cands[j].port == s.cands[i].port {
			j++
		}
		for ; d < len(s.declared) && s.declared[d] <= s.cands[i].port; d++ {
			s.entries = append(s.entries, declaredEntry(svc, s.declared[d]))
		}
		for _, pn := range s.serve(s.cands[i:j]) {
			s.entries = append(s.entries, portEntry{port: pn.port, node: pn.node, info: pn.info})
		}
		i = j
	}
	for ; d < len(s.declared); d++ {
		s.entries = append(s.entries, declaredEntry(svc, s.declared[d]))
	}
	return true
}

// comparePreference orders two listings of one address and port, the one
// to serve first, as kube-proxy's endpoint cache (pkg/proxy/
// endpointslicecache.go, addEndpoints) prefers the listing that is not
// terminating: a pod IP reused while the old pod terminates must not
// serve the old pod. Where kube-proxy keeps whichever came first, the
// ready one wins, then the one with more flags (hints), then the node
// detail, so that the answer does not depend on the order of events.
func comparePreference(a, b candidate) int {
	if c := cmp.Compare(a.flags&pnTerminating, b.flags&pnTerminating); c != 0 {
		return c
	}
	if c := cmp.Compare(b.flags&pnReady, a.flags&pnReady); c != 0 {
		return c
	}
	if c := cmp.Compare(b.flags, a.flags); c != 0 {
		return c
	}
	return compareInfo(a.info, b.info)
}

// compareInfo orders node detail: none first, then field by field.
func compareInfo(a, b *placement) int {
	switch {
	case a == b:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	return cmp.Or(strings.Compare(a.nodeName, b.nodeName), strings.Compare(a.zone, b.zone),
		strings.Compare(a.kind, b.kind), strings.Compare(a.name, b.name), strings.Compare(a.uid, b.uid))
}

// serve picks, from the candidates of one port (one listing per node),
// those to serve, as kube-proxy's topology (pkg/proxy/topology.go,
// CategorizeEndpoints) does: the ready ones, narrowed by hints; with none
// ready, every serving and terminating one, hints unread (the fallback).
// Hints: with node set, if every ready one has node hints and one is for
// node, only those; else, with zone set, the same with zone hints. It
// reorders list and returns a part of it, in list's order.
func (s *sliceState) serve(list []candidate) []candidate {
	ready := 0
	for _, pn := range list {
		if pn.is(pnReady) {
			ready++
		}
	}
	if ready == 0 {
		if !s.fallback {
			return list[:0]
		}
		return filter(list, pnTerminating)
	}
	sel := list
	if ready < len(list) {
		sel = filter(list, pnReady)
	}
	if s.node != "" && hintedFor(sel, pnNodeHinted, pnForNode) {
		return filter(sel, pnForNode)
	}
	if s.zone != "" && hintedFor(sel, pnHinted, pnForZone) {
		return filter(sel, pnForZone)
	}
	return sel
}

// hintedFor reports whether every one of list has hinted and one has mine.
func hintedFor(list []candidate, hinted, mine uint8) bool {
	found := false
	for _, pn := range list {
		if !pn.is(hinted) {
			return false
		}
		found = found || pn.is(mine)
	}
	return found
}

// filter moves the elements that have flag to the front of list, in their
// order, and returns them; the rest of list is overwritten.
func filter(list []candidate, flag uint8) []candidate {
	n := 0
	for i := range list {
		if list[i].flags&flag != 0 {
			if n != i {
				list[n] = list[i]
			}
			n++
		}
	}
	return list[:n]
}

// portsOf turns sorted entries into ports, each node once per port; the
// ports' nodes share the memory of nodes.
func portsOf(es []portEntry, ports []shm.Port, nodes []shm.Node) ([]shm.Port, []shm.Node) {
	start := len(ports)
	var firsts [8]int
	first := firsts[:0] // where each port's nodes start in nodes
	for i, e := range es {
		if i == 0 || e.port != es[i-1].port {
			// Declared entries sort first: the port's number, kept if it
			// gets no node (a query by number then answers empty).
			ports = append(ports, shm.Port{Name: e.port, Number: e.node.Port})
			first = append(first, len(nodes))
		}
		// Declared entries sort first; a node listed twice is served once.
		if !e.declared && (i == 0 || es[i-1].port != e.port || es[i-1].declared || es[i-1].node != e.node) {
			nodes = append(nodes, e.node)
		}
	}
	setNodes(ports[start:], first, nodes)
	for i := range ports[start:] {
		if len(ports[start+i].Nodes) > 0 {
			ports[start+i].Number = 0 // each node has its number
		}
	}
	return ports, nodes
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

// each calls fn for every service that exists.
func (s *sliceState) each(fn func(string)) {
	for k := range s.byService {
		fn(k)
	}
}
