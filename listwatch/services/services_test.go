package services

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc/shm"
)

func ipNode(ip string, port uint16) shm.Node {
	return shm.Node{Addr: netip.MustParseAddr(ip), Port: port, Weight: 50}
}

func collect() (func(string), *[]string) {
	var keys []string
	return func(k string) { keys = append(keys, k) }, &keys
}

// buildValue is build, and the value built (ports).
func buildValue(s *endpointsState, o *object) (string, []shm.Port, []byte, error) {
	key, detail, err := s.build(o)
	if err != nil {
		return "", nil, nil, err
	}
	return key, s.ports(), detail, nil
}

// An Endpoints object is its service: build gives its key and value (the
// table keeps it; nothing is kept here but which services are truncated).
func TestEndpointsServices(t *testing.T) {
	s := newEndpointsState(50)
	o := object{namespace: "default", name: "db", subsets: []subset{
		{addresses: []string{"10.0.0.2", "10.0.0.10"}, ports: []port{{name: "sql", number: 3306}, {number: 9104}}},
		{addresses: []string{"10.0.0.3"}, ports: []port{{name: "sql", number: 3307}}},
	}}
	key, ports, detail, err := buildValue(s, &o)
	require.NoError(t, err)
	assert.Equal(t, "default/db", key)
	assert.Nil(t, detail, "node detail off")
	assert.Equal(t, []shm.Port{
		{Name: "9104", Nodes: []shm.Node{ipNode("10.0.0.10", 9104), ipNode("10.0.0.2", 9104)}},
		{Name: "sql", Nodes: []shm.Node{ipNode("10.0.0.10", 3306), ipNode("10.0.0.2", 3306), ipNode("10.0.0.3", 3307)}},
	}, ports, "unnamed port by number; one name with several numbers lists all; host text order")

	notReady := object{namespace: "default", name: "db", subsets: []subset{{ports: []port{{name: "sql", number: 3306}}}}}
	_, ports, _, err = buildValue(s, &notReady)
	require.NoError(t, err)
	assert.Equal(t, []shm.Port{{Name: "sql", Number: 3306}}, ports, "the port is listed without nodes, with its number (issue 12.2)")

	empty := object{namespace: "default", name: "db"}
	_, ports, _, err = buildValue(s, &empty)
	require.NoError(t, err)
	assert.Empty(t, ports, "scaled to zero: no port")

	truncated := o
	truncated.truncated = true
	_, _, _, err = buildValue(s, &truncated)
	require.NoError(t, err)
	assert.Equal(t, 1, s.truncated())
	assert.Equal(t, "default/db", s.forget(&truncated))
	assert.Zero(t, s.truncated(), "deleted: no longer counted")

	bad := object{namespace: "default", name: "db", subsets: []subset{{addresses: []string{"10.0.0.300"}, ports: []port{{number: 80}}}}}
	_, _, _, err = buildValue(s, &bad)
	assert.ErrorIs(t, err, errMalformed)
	bad.subsets[0] = subset{addresses: []string{"10.0.0.1"}, ports: []port{{number: 70000}}}
	_, _, _, err = buildValue(s, &bad)
	assert.ErrorIs(t, err, errMalformed)
}

func TestSliceServicesMerge(t *testing.T) {
	s := newSliceState(50)
	changed, keys := collect()
	a := object{namespace: "shop", name: "web-a", serviceName: "web", addressType: "IPv4",
		endpoints: []endpoint{{addresses: []string{"10.1.0.2"}, ready: true}, {addresses: []string{"10.1.0.9"}, ready: false}},
		ports:     []port{{name: "http", number: 80}}}
	b := object{namespace: "shop", name: "web-b", serviceName: "web", addressType: "IPv4",
		endpoints: []endpoint{{addresses: []string{"10.1.0.1", "10.1.0.2"}, ready: true}},
		ports:     []port{{name: "http", number: 80}, {name: "", number: 8443}, {name: "all"}}}
	require.NoError(t, s.set(&a, changed))
	require.NoError(t, s.set(&b, changed))
	assert.Equal(t, []string{"shop/web", "shop/web"}, *keys)
	assert.Equal(t, []shm.Port{
		{Name: "8443", Nodes: []shm.Node{ipNode("10.1.0.1", 8443), ipNode("10.1.0.2", 8443)}},
		{Name: "http", Nodes: []shm.Node{ipNode("10.1.0.1", 80), ipNode("10.1.0.2", 80)}},
	}, value(s, "shop/web"), "slices merged, address+port de-duplicated, not-ready and portless skipped")

	s.remove(&b, changed)
	assert.Equal(t, []shm.Port{{Name: "http", Nodes: []shm.Node{ipNode("10.1.0.2", 80)}}}, value(s, "shop/web"))
	a.endpoints[0].ready = false
	require.NoError(t, s.set(&a, changed))
	ports, ok := s.value("shop/web")
	assert.True(t, ok, "no ready endpoint: the service stays")
	assert.Equal(t, []shm.Port{{Name: "http", Number: 80}}, ports, "its port is listed without nodes, with its number (issue 12.2)")
	a.ports = nil
	require.NoError(t, s.set(&a, changed))
	ports, ok = s.value("shop/web")
	assert.True(t, ok, "a slice without ports: the service stays")
	assert.Empty(t, ports)
	s.remove(&a, changed)
	_, ok = s.value("shop/web")
	assert.False(t, ok, "its last slice deleted: gone")
	n := 0
	s.each(func(string) { n++ })
	assert.Zero(t, n)
}

func TestSliceServicesRelabel(t *testing.T) {
	s := newSliceState(50)
	changed, keys := collect()
	o := object{namespace: "ns", name: "x-1", serviceName: "x", addressType: "IPv4",
		endpoints: []endpoint{{addresses: []string{"10.0.0.1"}, ready: true}}, ports: []port{{name: "p", number: 1}}}
	require.NoError(t, s.set(&o, changed))
	o.serviceName = "y"
	require.NoError(t, s.set(&o, changed))
	assert.Equal(t, []string{"ns/x", "ns/x", "ns/y"}, *keys)
	_, ok := s.value("ns/x")
	assert.False(t, ok)
	assert.NotNil(t, value(s, "ns/y"))
	o.serviceName = ""
	require.NoError(t, s.set(&o, changed))
	_, ok = s.value("ns/y")
	assert.False(t, ok, "a slice that loses its service label leaves the service")
}

// value is the ports of key, nil when the service is not known.
func value(s *sliceState, key string) []shm.Port {
	ports, _ := s.value(key)
	return ports
}

func TestSliceNodeTypes(t *testing.T) {
	n, err := sliceNode("FQDN", "db.example.com", 7)
	require.NoError(t, err)
	assert.Equal(t, shm.Node{Name: "db.example.com", Weight: 7}, n)
	n, err = sliceNode("IPv6", "fd00::1", 7)
	require.NoError(t, err)
	assert.Equal(t, "fd00::1", n.Host())
	for _, c := range [][2]string{{"IPv4", "fd00::1"}, {"IPv6", "10.0.0.1"}, {"FQDN", "-bad-.com"}, {"FQDN", "a..b"}, {"Other", "x"}, {"IPv6", "fe80::1%eth0"}} {
		_, err := sliceNode(c[0], c[1], 1)
		assert.ErrorIs(t, err, errMalformed, "%v", c)
	}
}

func TestParseIPSloppy(t *testing.T) {
	for in, want := range map[string]string{"10.0.0.02": "10.0.0.2", "010.001.000.255": "10.1.0.255", "fd00::1": "fd00::1"} {
		a, err := parseIP(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, a.String())
	}
	for _, in := range []string{"10.0.0.256", "10.0.0", "10.0.0.+1", "10..0.1", "x", "fe80::1%eth0"} {
		_, err := parseIP(in)
		assert.ErrorIs(t, err, errMalformed, in)
	}
}

// compareNodes orders IPv4 nodes exactly as shm.Compare (host text, then
// port), checked on every pair of a set of addresses chosen to differ in
// one octet's digits, length and value.
func TestCompareNodesAgreesWithShmCompare(t *testing.T) {
	octets := []byte{0, 1, 2, 9, 10, 11, 19, 20, 99, 100, 101, 109, 110, 199, 200, 249, 250, 255}
	var nodes []shm.Node
	for i, o := range octets {
		for _, at := range [][4]byte{{o, 1, 2, 3}, {10, o, 0, 1}, {10, 0, o, 1}, {10, 0, 0, o}} {
			nodes = append(nodes, shm.Node{Addr: netip.AddrFrom4(at), Port: uint16(80 + i%3)})
		}
	}
	nodes = append(nodes, shm.Node{Addr: netip.MustParseAddr("fd00::1")}, shm.Node{Name: "a.example"})
	for _, a := range nodes {
		for _, b := range nodes {
			if got, want := compareNodes(a, b), shm.Compare(a, b); got != want {
				t.Fatalf("compareNodes(%v:%d, %v:%d) = %d, shm.Compare says %d", a.Host(), a.Port, b.Host(), b.Port, got, want)
			}
		}
	}
}

// parseIPv4Canonical, the fast path of parseIP, reads an address only
// where netip.ParseAddr reads the same one, and reads every IPv4 address
// in its canonical text: checked on every address built from octet texts
// chosen around its limits, and on random strings of digits and dots.
func TestParseIPv4CanonicalAgreesWithNetip(t *testing.T) {
	check := func(s string) {
		got, ok := parseIPv4Canonical(s)
		want, err := netip.ParseAddr(s)
		if ok && (err != nil || got != want) {
			t.Fatalf("parseIPv4Canonical(%q) = %v; netip: %v, %v", s, got, want, err)
		}
		if !ok && err == nil && want.Is4() && want.String() == s {
			t.Fatalf("parseIPv4Canonical(%q) left a canonical address to the slow path", s)
		}
	}
	octets := []string{"0", "00", "01", "1", "9", "10", "19", "99", "100", "199", "200", "249", "250", "255", "256", "260", "300", "999", "1000", "0255", "", "+1", "-1", "a", " 1"}
	for _, a := range octets {
		for _, b := range octets {
			check(a + "." + b + ".0.1")
			check("10.0." + a + "." + b)
			check("10." + a + "." + b)
			check("10.0.0." + a + ".")
			check(a + "." + b + ".1.2.3")
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	const alphabet = "0123456789....:x"
	for range 300_000 {
		var b strings.Builder
		for range rng.IntN(17) {
			b.WriteByte(alphabet[rng.IntN(len(alphabet))])
		}
		check(b.String())
	}
}

// sortEntries (which skips sorting entries already in order) orders
// entries as a stable sort by port, declared first, then compareNodes
// does; packEntries packs sorted entries as packPorts packs the ports
// portsOf makes of them; and unpackPorts reads those back: checked on
// random entries of several ports, declared and not, IPv4 and IPv6, with
// nodes listed twice.
func TestSortEntriesAndPackedPorts(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	addrs := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.10"),
		netip.MustParseAddr("10.0.0.9"), netip.MustParseAddr("10.0.0.100"), netip.MustParseAddr("10.1.0.0"), netip.MustParseAddr("100.1.1.1"),
		netip.MustParseAddr("9.1.1.1"), netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")}
	names := []string{"http", "a", "9090", ""}
	for i := range 20_000 {
		var es []portEntry
		for range rng.IntN(9) {
			e := portEntry{port: names[rng.IntN(len(names))]}
			e.node.Port = uint16(80 + rng.IntN(3))
			if rng.IntN(3) == 0 {
				e.declared = true
			} else {
				e.node.Addr, e.node.Weight = addrs[rng.IntN(len(addrs))], uint32(1+rng.IntN(2))
			}
			es = append(es, e)
		}
		want := slices.Clone(es)
		slices.SortStableFunc(want, func(a, b portEntry) int { // by port, declared first, then compareNodes
			if c := strings.Compare(a.port, b.port); c != 0 {
				return c
			}
			if a.declared || b.declared {
				if a.declared == b.declared {
					return 0
				}
				if a.declared {
					return -1
				}
				return 1
			}
			return compareNodes(a.node, b.node)
		})
		sortEntries(es)
		require.Equal(t, want, es, "case %d", i)
		ports, _ := portsOf(es, nil, nil)
		require.Equal(t, packPorts(nil, ports), packEntries(nil, es), "case %d: %+v", i, es)
		got, _ := unpackPorts(packPorts(nil, ports), nil, nil, newInterner())
		require.Equal(t, ports, got, "case %d: %+v", i, es)
	}
}

// has says what value's second result says, through random sets and
// removes (slices moving between services, services losing their last
// slice or every port).
func TestHasAgreesWithValue(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	keys := []string{"shop/a", "shop/b", "shop/c", "other/a"}
	st := newSliceState(1)
	for i := range 3000 {
		key := keys[rng.IntN(len(keys))]
		ns, name, _ := strings.Cut(key, "/")
		o := &object{namespace: ns, name: name + "-" + string(rune('0'+rng.IntN(3))), addressType: "IPv4"}
		o.serviceName = keys[rng.IntN(len(keys))][len(ns)+1:]
		if rng.IntN(2) == 0 {
			o.ports = []port{{name: "http", number: 80}}
			o.endpoints = []endpoint{{addresses: []string{"10.0.0.1"}, ready: true}}
		}
		if rng.IntN(3) == 0 {
			st.remove(o, func(string) {})
		} else {
			require.NoError(t, st.set(o, func(string) {}))
		}
		for _, k := range keys {
			_, ok := st.value(k)
			require.Equal(t, ok, st.has(k), "step %d, %s", i, k)
		}
	}
}
