package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc"
	"github.com/kdisc/kdisc/internal/kubetest"
)

const (
	bigPods     = 5000 // 80 KB of IPv6 addresses on one port: more than a v4 shard (~64 KiB) holds
	bigPerSlice = 100  // the EndpointSlice controller's default
)

// bigPod is pod i's IPv6 address in generation gen, in the canonical
// form the apiserver requires (RFC 5952).
func bigPod(gen, i int) string {
	return netip.AddrFrom16([16]byte{0xfd, 2: 0xb0, 3: byte(gen), 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i + 1)}).String()
}

// TestBigServiceRoll (issue 14, defect 1): one IPv6 service of 5,000
// ready endpoints (80 KB, over the ~64 KiB a v4 table shard held) spread
// over 50 EndpointSlices, in a 16 MiB table. Every pod is replaced: each
// slice deleted and made anew with new addresses. kdisc must then serve
// exactly the new set, never a deleted pod. Before layout v5 every write of
// the service was refused ("table full; the old value stays"): it was
// never served at all, and one grown past the limit kept serving pods that
// no longer exist.
func TestBigServiceRoll(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c.APIServer, "e2e-bigsvc")
	ports := []kubetest.SlicePort{kubetest.Port("http", 8080)}
	slice := func(gen, s int) kubetest.EndpointSlice {
		sl := kubetest.EndpointSlice{Name: fmt.Sprintf("big-g%d-%02d", gen, s), Service: "big", AddressType: "IPv6", Ports: ports}
		for i := s * bigPerSlice; i < (s+1)*bigPerSlice; i++ {
			sl.Endpoints = append(sl.Endpoints, kubetest.SliceEndpoint{Addresses: []string{bigPod(gen, i)}})
		}
		return sl
	}
	want := func(gen int) []string {
		out := make([]string, bigPods)
		for i := range out {
			out[i] = "[" + bigPod(gen, i) + "]:8080"
		}
		slices.Sort(out)
		return out
	}
	served := func(d *kdisc.Discovery) ([]string, kdisc.Answer) {
		nodes, a := d.Lookup(nil, ns+"/big:http")
		out := make([]string, len(nodes))
		for i, n := range nodes {
			out[i] = fmt.Sprintf("[%s]:%d", n.Host(), n.Port)
		}
		slices.Sort(out)
		return out, a
	}
	cctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	require.NoError(t, kubetest.ForEach(cctx, bigPods/bigPerSlice, 8, func(ctx context.Context, s int) error {
		_, err := c.ApplyEndpointSlice(ctx, ns, slice(0, s))
		return err
	}))

	d := startGo(t, singleConfig(c.KdiscCluster("namespace_selector:\n  equal: "+ns+"\nwatch_endpoint_slices: true\nshared_size: 16m\n")))
	first := want(0)
	eventually(t, 60*time.Second, "the 5,000 pods served", func() (bool, string) {
		got, a := served(d)
		return slices.Equal(got, first), fmt.Sprintf("%s, %d nodes", a, len(got))
	})

	// Replace every pod, a slice at a time: the new one made, the old one
	// deleted (a rolling update with surge).
	start := time.Now()
	for s := range bigPods / bigPerSlice {
		_, err := c.ApplyEndpointSlice(ctx(t), ns, slice(1, s))
		require.NoError(t, err)
		require.NoError(t, c.DeleteEndpointSlice(ctx(t), ns, fmt.Sprintf("big-g0-%02d", s)))
	}
	t.Logf("rolled %d slices in %v", bigPods/bigPerSlice, time.Since(start).Round(time.Millisecond))
	next := want(1)
	eventually(t, 60*time.Second, "exactly the new 5,000 pods served", func() (bool, string) {
		got, a := served(d)
		old := 0
		for _, h := range got {
			if _, deleted := slices.BinarySearch(first, h); deleted {
				old++
			}
		}
		return slices.Equal(got, next), fmt.Sprintf("%s, %d nodes, %d of them deleted pods", a, len(got), old)
	})
	got, a := served(d)
	assert.Equal(t, kdisc.Found, a)
	assert.Equal(t, next, got, "exactly the new set")
}

// Issue 12, items 1 and 2, on the real apiserver (v1.37.2 accepts port
// names that are all digits). kompose names every Service port by its
// number: compose ports "8080:80" and "9090:8080" give a port named "8080"
// (target 80) and one named "9090" (target 8080). ns/web:8080 is the port
// named 8080, only: before, it also mixed in the pods of port "9090",
// whose target port is 8080. And a named port with no address answers
// empty by its number as by its name (before: unknown by number), through
// Endpoints and EndpointSlices.
func TestPortNameWinsAndEmptyByNumber(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c.APIServer, "e2e-portnum")
	_, err := c.ApplyEndpointSlice(ctx(t), ns, kubetest.EndpointSlice{Name: "web-abc", Service: "web",
		Ports:     []kubetest.SlicePort{kubetest.Port("8080", 80), kubetest.Port("9090", 8080)},
		Endpoints: []kubetest.SliceEndpoint{{Addresses: []string{"10.95.0.1"}}, {Addresses: []string{"10.95.0.2"}}}})
	require.NoError(t, err)
	_, err = c.ApplyEndpoints(ctx(t), ns, "web", kubetest.Subset([]string{"10.95.0.1", "10.95.0.2"},
		kubetest.EndpointPort{Name: "8080", Port: 80, Protocol: "TCP"}, kubetest.EndpointPort{Name: "9090", Port: 8080, Protocol: "TCP"}))
	require.NoError(t, err)
	// A named port whose only pod is not ready.
	_, err = c.ApplyEndpointSlice(ctx(t), ns, kubetest.EndpointSlice{Name: "idle-abc", Service: "idle",
		Ports:     []kubetest.SlicePort{kubetest.Port("http", 8080)},
		Endpoints: []kubetest.SliceEndpoint{{Addresses: []string{"10.95.0.3"}, Conditions: &kubetest.EndpointConditions{Ready: kubetest.Ptr(false)}}}})
	require.NoError(t, err)
	_, err = c.ApplyEndpoints(ctx(t), ns, "idle", kubetest.EndpointSubset{
		NotReadyAddresses: []kubetest.EndpointAddress{{IP: "10.95.0.3"}},
		Ports:             []kubetest.EndpointPort{{Name: "http", Port: 8080, Protocol: "TCP"}}})
	require.NoError(t, err)

	base := "namespace_selector:\n  equal: " + ns + "\n"
	for _, tc := range []struct {
		name string
		cfg  string
	}{{"endpoints", base}, {"endpointslices", base + "watch_endpoint_slices: true\n"}} {
		t.Run(tc.name, func(t *testing.T) {
			d := startGo(t, singleConfig(c.KdiscCluster(tc.cfg)))
			waitHosts(t, d, ns+"/web:8080", "10.95.0.1:80/50", "10.95.0.2:80/50")
			waitHosts(t, d, ns+"/web:9090", "10.95.0.1:8080/50", "10.95.0.2:8080/50")
			waitHosts(t, d, ns+"/web:80", "10.95.0.1:80/50", "10.95.0.2:80/50") // no port named 80: by number
			eventually(t, 30*time.Second, "idle:http and idle:8080 empty", func() (bool, string) {
				_, byName := d.Lookup(nil, ns+"/idle:http")
				_, byNumber := d.Lookup(nil, ns+"/idle:8080")
				return byName == kdisc.Empty && byNumber == kdisc.Empty, fmt.Sprintf("by name %s, by number %s", byName, byNumber)
			})
			_, a := d.Lookup(nil, ns+"/idle:8081")
			assert.Equal(t, kdisc.Unknown, a)
		})
	}
}
