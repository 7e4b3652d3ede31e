package services

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc/internal/jsonscan"
	"github.com/kdisc/kdisc/shm"
)

const conditionsSliceJSON = `{"metadata":{"name":"web-abc","namespace":"shop","labels":{"kubernetes.io/service-name":"web"}},"addressType":"IPv4","endpoints":[` +
	`{"addresses":["10.0.0.1"],"conditions":{"ready":false,"serving":true,"terminating":true},"nodeName":"n1","zone":"a","targetRef":{"kind":"Pod","namespace":"shop","name":"p1","uid":"u1"},"hints":{"forZones":[{"name":"a"},{"name":"b"}],"forNodes":[{"name":"n1"}]}},` +
	`{"addresses":["10.0.0.2"],"conditions":{"ready":false,"serving":false,"terminating":true}},` +
	`{"addresses":["10.0.0.3"],"conditions":{"ready":false,"serving":null,"terminating":null},"hints":{}},` +
	`{"addresses":["10.0.0.4"]}` +
	`],"ports":[{"name":"http","port":80}]}`

func TestDecodeConditionsAndHints(t *testing.T) {
	o := decode(t, conditionsSliceJSON)
	require.Len(t, o.endpoints, 4)
	e := o.endpoints
	assert.Equal(t, []bool{false, false, false, true}, []bool{e[0].ready, e[1].ready, e[2].ready, e[3].ready})
	assert.Equal(t, []bool{true, false, true, true}, []bool{e[0].serving, e[1].serving, e[2].serving, e[3].serving}, "absent or null serving means serving")
	assert.Equal(t, []bool{true, true, false, false}, []bool{e[0].terminating, e[1].terminating, e[2].terminating, e[3].terminating}, "absent or null terminating means not terminating")
	assert.Equal(t, []string{"a", "b"}, e[0].zones)
	assert.Nil(t, e[2].zones, "empty hints: no zone")
	assert.Nil(t, e[0].info, "no detail unless asked")

	var d object
	require.NoError(t, decodeObjectDetail(new(jsonscan.Scanner), []byte(conditionsSliceJSON), &d, true))
	assert.Equal(t, &placement{nodeName: "n1", zone: "a", kind: "Pod", name: "p1", uid: "u1"}, d.endpoints[0].info)
	assert.Nil(t, d.endpoints[1].info, "nothing known: no detail")

	require.NoError(t, decodeObjectDetail(new(jsonscan.Scanner), []byte(endpointsJSON), &d, true))
	assert.Equal(t, []*placement{{nodeName: "n1", kind: "Pod", name: "p1", uid: "u1"}, nil}, d.subsets[0].infos)
}

// webSlice is an IPv4 EndpointSlice object of shop/web with port http:80.
func webSlice(name string, eps ...endpoint) *object {
	return &object{namespace: "shop", name: name, serviceName: "web", addressType: "IPv4", endpoints: eps, ports: []port{{name: "http", number: 80}}}
}

func ep(ip string, ready, serving, terminating bool, zones ...string) endpoint {
	return endpoint{addresses: []string{ip}, ready: ready, serving: serving, terminating: terminating, zones: zones}
}

func hostsOf(ports []shm.Port, name string) []string {
	for _, p := range ports {
		if p.Name == name {
			out := []string{}
			for _, n := range p.Nodes {
				out = append(out, n.Host())
			}
			return out
		}
	}
	return nil
}

func TestTerminatingFallback(t *testing.T) {
	const (
		ready   = true
		serving = true
		term    = true
	)
	for _, c := range []struct {
		name     string
		eps      []endpoint
		want     []string // with the fallback (default)
		wantNoFB []string // terminating_fallback: false
	}{
		{"all terminating", []endpoint{ep("10.0.0.1", !ready, serving, term), ep("10.0.0.2", !ready, serving, term)},
			[]string{"10.0.0.1", "10.0.0.2"}, []string{}},
		{"mixed: ready ones win", []endpoint{ep("10.0.0.1", ready, serving, !term), ep("10.0.0.2", !ready, serving, term)},
			[]string{"10.0.0.1"}, []string{"10.0.0.1"}},
		{"terminating and not serving", []endpoint{ep("10.0.0.1", !ready, !serving, term), ep("10.0.0.2", !ready, serving, term)},
			[]string{"10.0.0.2"}, []string{}},
		{"not ready, not terminating (starting)", []endpoint{ep("10.0.0.1", !ready, serving, !term)},
			[]string{}, []string{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, fallback := range []bool{true, false} {
				s := newSliceState(50)
				s.fallback = fallback
				require.NoError(t, s.set(webSlice("web-1", c.eps...), func(string) {}))
				ports, ok := s.value("shop/web")
				require.True(t, ok)
				want := c.want
				if !fallback {
					want = c.wantNoFB
				}
				assert.Equal(t, want, hostsOf(ports, "http"), "fallback=%v", fallback)
			}
		})
	}

	// Across slices: one slice's ready endpoint stops the fallback.
	s := newSliceState(50)
	require.NoError(t, s.set(webSlice("web-1", ep("10.0.0.1", !ready, serving, term)), func(string) {}))
	require.NoError(t, s.set(webSlice("web-2", ep("10.0.0.2", ready, serving, !term)), func(string) {}))
	assert.Equal(t, []string{"10.0.0.2"}, hostsOf(value(s, "shop/web"), "http"))
}

func TestZoneHints(t *testing.T) {
	for _, c := range []struct {
		name string
		eps  []endpoint
		want []string
	}{
		{"all hinted, some for my zone", []endpoint{ep("10.0.0.1", true, true, false, "a"), ep("10.0.0.2", true, true, false, "b"), ep("10.0.0.3", true, true, false, "b", "a")},
			[]string{"10.0.0.1", "10.0.0.3"}},
		{"not all hinted", []endpoint{ep("10.0.0.1", true, true, false, "a"), ep("10.0.0.2", true, true, false)},
			[]string{"10.0.0.1", "10.0.0.2"}},
		{"none for my zone", []endpoint{ep("10.0.0.1", true, true, false, "b"), ep("10.0.0.2", true, true, false, "c")},
			[]string{"10.0.0.1", "10.0.0.2"}},
		{"hints of endpoints not served do not count", []endpoint{ep("10.0.0.1", true, true, false, "a"), ep("10.0.0.2", true, true, false, "b"), ep("10.0.0.9", false, true, true)},
			[]string{"10.0.0.1"}},
		// kube-proxy reads hints from ready endpoints only, and with none
		// ready serves every serving and terminating one, hints unread
		// (pkg/proxy/topology.go: topologyModeFromHints returns "" without
		// a ready endpoint; the fallback filter checks no topology).
		{"hints never apply to the fallback", []endpoint{ep("10.0.0.1", false, true, true, "a"), ep("10.0.0.2", false, true, true, "b")},
			[]string{"10.0.0.1", "10.0.0.2"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSliceState(50)
			s.zone = "a"
			require.NoError(t, s.set(webSlice("web-1", c.eps...), func(string) {}))
			assert.Equal(t, c.want, hostsOf(value(s, "shop/web"), "http"))
			s = newSliceState(50)
			require.NoError(t, s.set(webSlice("web-1", c.eps...), func(string) {}))
			assert.Len(t, hostsOf(value(s, "shop/web"), "http"), len(servedAll(c.eps)), "no zone set: all")
		})
	}
}

// forNodes is e with node hints (hints.forNodes).
func forNodes(e endpoint, nodes ...string) endpoint {
	e.forNodes = nodes
	return e
}

// Node hints (trafficDistribution: PreferSameNode) come before zone hints,
// as in kube-proxy's topologyModeFromHints (pkg/proxy/topology.go): if
// every ready endpoint has node hints and one names this node, only those
// are served; otherwise the zone rule decides.
func TestNodeHints(t *testing.T) {
	const r, s, term = true, true, true
	for _, c := range []struct {
		name       string
		node, zone string
		eps        []endpoint
		want       []string
	}{
		{"all node-hinted, some for my node", "n1", "a", []endpoint{
			forNodes(ep("10.0.0.1", r, s, !term, "a"), "n1"), forNodes(ep("10.0.0.2", r, s, !term, "a"), "n2"), forNodes(ep("10.0.0.3", r, s, !term, "b"), "n1")},
			[]string{"10.0.0.1", "10.0.0.3"}},
		{"node hints win over zone hints", "n2", "b", []endpoint{
			forNodes(ep("10.0.0.1", r, s, !term, "a"), "n1"), forNodes(ep("10.0.0.2", r, s, !term, "a"), "n2"), forNodes(ep("10.0.0.3", r, s, !term, "b"), "n3")},
			[]string{"10.0.0.2"}},
		{"none for my node: the zone rule", "n9", "a", []endpoint{
			forNodes(ep("10.0.0.1", r, s, !term, "a"), "n1"), forNodes(ep("10.0.0.2", r, s, !term, "b"), "n2")},
			[]string{"10.0.0.1"}},
		{"not all node-hinted: the zone rule", "n1", "b", []endpoint{
			forNodes(ep("10.0.0.1", r, s, !term, "a"), "n1"), ep("10.0.0.2", r, s, !term, "b")},
			[]string{"10.0.0.2"}},
		{"not all node-hinted, no zone: all", "n1", "", []endpoint{
			forNodes(ep("10.0.0.1", r, s, !term), "n1"), ep("10.0.0.2", r, s, !term)},
			[]string{"10.0.0.1", "10.0.0.2"}},
		{"none for my node, no zone: all", "n9", "", []endpoint{
			forNodes(ep("10.0.0.1", r, s, !term), "n1"), forNodes(ep("10.0.0.2", r, s, !term), "n2")},
			[]string{"10.0.0.1", "10.0.0.2"}},
		{"hints of endpoints not ready do not count", "n1", "", []endpoint{
			forNodes(ep("10.0.0.1", r, s, !term), "n1"), forNodes(ep("10.0.0.2", r, s, !term), "n2"), ep("10.0.0.3", !r, s, !term), ep("10.0.0.4", !r, s, term)},
			[]string{"10.0.0.1"}},
		{"node unset: node hints unread", "", "", []endpoint{
			forNodes(ep("10.0.0.1", r, s, !term), "n1"), forNodes(ep("10.0.0.2", r, s, !term), "n2")},
			[]string{"10.0.0.1", "10.0.0.2"}},
		{"never on the fallback", "n1", "a", []endpoint{
			forNodes(ep("10.0.0.1", !r, s, term, "a"), "n1"), forNodes(ep("10.0.0.2", !r, s, term, "b"), "n2")},
			[]string{"10.0.0.1", "10.0.0.2"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			sv := newSliceState(50)
			sv.node, sv.zone = c.node, c.zone
			require.NoError(t, sv.set(webSlice("web-1", c.eps...), func(string) {}))
			assert.Equal(t, c.want, hostsOf(value(sv, "shop/web"), "http"))
		})
	}
}

func TestDecodeNodeHints(t *testing.T) {
	o := decode(t, conditionsSliceJSON)
	require.Len(t, o.endpoints, 4)
	assert.Equal(t, []string{"n1"}, o.endpoints[0].forNodes)
	assert.Nil(t, o.endpoints[2].forNodes, "empty hints: no node")
}

func servedAll(eps []endpoint) []endpoint {
	var ready, term []endpoint
	for _, e := range eps {
		if e.ready {
			ready = append(ready, e)
		} else if e.serving && e.terminating {
			term = append(term, e)
		}
	}
	if len(ready) > 0 {
		return ready
	}
	return term
}

// One endpoint per address and port. When a pod IP is reused while the old
// pod terminates, the address is listed twice: kube-proxy keeps one
// endpoint and prefers the listing that is not terminating
// (pkg/proxy/endpointslicecache.go, addEndpoints: a listing replaces one
// seen before unless it is terminating). Where both are not terminating,
// the ready one wins (kube-proxy keeps whichever came last), so that the
// answer does not depend on the order of events. Each case is applied in
// both orders, as two slices and as one.
func TestOneEndpointPerAddressAndPort(t *testing.T) {
	const r, s, term = true, true, true
	withInfo := func(e endpoint, pod string) endpoint {
		e.info = &placement{kind: "Pod", name: pod}
		return e
	}
	for _, c := range []struct {
		name       string
		zone       string
		old, new   endpoint
		others     []endpoint
		want       []string
		wantDetail string
	}{
		{"new pod starting: the old one's terminating listing is not served", "",
			ep("10.0.0.5", !r, s, term), ep("10.0.0.5", !r, !s, !term), nil,
			[]string{}, `[]`},
		{"new pod starting, another pod terminating: the fallback serves only that one", "",
			ep("10.0.0.5", !r, s, term), ep("10.0.0.5", !r, !s, !term), []endpoint{ep("10.0.0.7", !r, s, term)},
			[]string{"10.0.0.7"}, `[{"host":"10.0.0.7","port":80}]`},
		{"new pod ready: served once, as the new pod", "",
			withInfo(ep("10.0.0.5", !r, s, term), "old"), withInfo(ep("10.0.0.5", r, s, !term), "new"), nil,
			[]string{"10.0.0.5"}, `[{"host":"10.0.0.5","port":80,"target_ref":{"kind":"Pod","name":"new"}}]`},
		{"both not terminating: the ready one wins", "",
			withInfo(ep("10.0.0.5", !r, s, !term), "moved-stale"), withInfo(ep("10.0.0.5", r, s, !term), "moved"), nil,
			[]string{"10.0.0.5"}, `[{"host":"10.0.0.5","port":80,"target_ref":{"kind":"Pod","name":"moved"}}]`},
		{"the winner's hints count, the loser's do not", "a",
			ep("10.0.0.5", !r, s, term), ep("10.0.0.5", r, s, !term, "a"), []endpoint{ep("10.0.0.6", r, s, !term, "b")},
			[]string{"10.0.0.5"}, `[{"host":"10.0.0.5","port":80}]`},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, order := range []string{"old first", "new first"} {
				first, second := c.old, c.new
				if order == "new first" {
					first, second = second, first
				}
				sliced := newSliceState(50)
				one := newSliceState(50)
				for _, sv := range []*sliceState{sliced, one} {
					sv.zone, sv.withDetail = c.zone, true
				}
				require.NoError(t, sliced.set(webSlice("web-1", append([]endpoint{first}, c.others...)...), func(string) {}))
				require.NoError(t, sliced.set(webSlice("web-2", second), func(string) {}))
				require.NoError(t, one.set(webSlice("web-1", append([]endpoint{first, second}, c.others...)...), func(string) {}))
				for name, sv := range map[string]*sliceState{"two slices": sliced, "one slice": one} {
					assert.Equal(t, c.want, hostsOf(value(sv, "shop/web"), "http"), "%s, %s", name, order)
					assert.Equal(t, c.wantDetail, string(sv.detail("shop/web")), "%s, %s", name, order)
				}
			}
		})
	}
}

// build makes a service's entries in sortEntries' order without sorting
// them again, one per port and node: checked on random services of every
// address type, port layout and condition.
func TestSliceBuildEntriesSorted(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	addrs := map[string][]string{
		"IPv4": {"10.0.0.1", "10.0.0.2", "10.0.0.10", "9.1.1.1", "100.1.1.1", "10.0.1.1"},
		"IPv6": {"fd00::1", "fd00::2", "fd00::10", "2001:db8::1"},
		"FQDN": {"a.example.com", "b.example.com", "a.example.org"},
	}
	portSets := [][]port{{{name: "http", number: 80}}, {{name: "http", number: 8080}, {name: "", number: 9090}}, {{name: "b", number: 1}, {name: "a", number: 2}}, {}}
	for i := range 300 {
		s := newSliceState(50)
		s.zone, s.node, s.withDetail = "a", "n1", i%2 == 0
		for n := range 1 + rng.IntN(4) {
			typ := []string{"IPv4", "IPv6", "FQDN"}[rng.IntN(3)]
			o := &object{namespace: "shop", name: "web-" + strconv.Itoa(n), serviceName: "web", addressType: typ, ports: portSets[rng.IntN(len(portSets))]}
			for range rng.IntN(6) {
				e := endpoint{addresses: []string{addrs[typ][rng.IntN(len(addrs[typ]))]}, ready: rng.IntN(2) == 0, serving: rng.IntN(2) == 0, terminating: rng.IntN(2) == 0}
				if rng.IntN(2) == 0 {
					e.zones, e.forNodes = []string{"a"}, []string{"n" + strconv.Itoa(rng.IntN(2))}
				}
				if rng.IntN(2) == 0 {
					e.info = &placement{name: "p" + strconv.Itoa(rng.IntN(3))}
				}
				o.endpoints = append(o.endpoints, e)
			}
			require.NoError(t, s.set(o, func(string) {}))
		}
		require.True(t, s.build("shop/web"))
		sorted := slices.Clone(s.entries)
		sortEntries(sorted)
		require.Equal(t, sorted, s.entries, "case %d", i)
		for j := 1; j < len(s.entries); j++ {
			a, b := s.entries[j-1], s.entries[j]
			require.False(t, a.port == b.port && a.declared == b.declared && a.node == b.node, "case %d: %v listed twice", i, b)
		}
	}
}
