package listwatch

import (
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/kdisc/kdisc/internal/fakeapi"
	"github.com/kdisc/kdisc/internal/kdisctest"
	"github.com/kdisc/kdisc/shm"
)

// answer is what the table answers for service now.
func (h *harness) answer(service string) shm.Answer {
	_, a := h.table.Find(nil, service)
	return a
}

func (h *harness) waitAnswer(service string, want shm.Answer) {
	h.t.Helper()
	eventually(h.t, service+" answers "+want.String(), func() bool { return h.answer(service) == want })
}

// notReadyEndpoints is an Endpoints whose only address is not ready.
func notReadyEndpoints(ns, name string, port int32, ip string) *fakeapi.Endpoints {
	return &fakeapi.Endpoints{Metadata: fakeapi.ObjectMeta{Namespace: ns, Name: name}, Subsets: []fakeapi.EndpointSubset{{
		NotReadyAddresses: []fakeapi.EndpointAddress{{IP: ip}},
		Ports:             []fakeapi.EndpointPort{{Name: "http", Port: port, Protocol: "TCP"}},
	}}}
}

// TestEmptyServicesStay: a service that exists without an address to serve
// stays in the table (empty), through list, watch and relist; only its
// deletion removes it (unknown).
func TestEmptyServicesStay(t *testing.T) {
	api := fakeapi.New(t)
	api.PutEndpoints(endpoints("default", "zero", 80))                         // no subsets
	api.PutEndpoints(notReadyEndpoints("default", "starting", 80, "10.0.0.9")) // only notReadyAddresses
	api.PutEndpoints(endpoints("default", "gone", 80))
	h := start(t, api, fastOptions())
	h.waitAnswer("default/zero:http", shm.Empty)
	assert.Equal(t, shm.Empty, h.answer("default/zero:other"), "no port at all: empty for every port")
	assert.Equal(t, shm.Empty, h.answer("default/starting:http"), "a port without a ready address: empty")
	assert.Equal(t, shm.Unknown, h.answer("default/starting:other"), "a port the service does not have: unknown")
	assert.Equal(t, shm.Unknown, h.answer("default/nope:http"))
	api.WaitWatchers(1)

	api.PutEndpoints(endpoints("default", "zero", 80, "10.0.0.1"))
	h.waitHosts("default/zero:http", "10.0.0.1:80")
	api.PutEndpoints(endpoints("default", "zero", 80)) // scaled to zero again
	h.waitAnswer("default/zero:http", shm.Empty)
	api.PutEndpoints(notReadyEndpoints("default", "new", 80, "10.0.0.8")) // a new service, not ready yet
	h.waitAnswer("default/new:http", shm.Empty)
	api.DeleteEndpoints("default", "zero")
	h.waitAnswer("default/zero:http", shm.Unknown)

	// A relist keeps the empty services it returns and removes the others.
	api.Fail(fakeapi.IsWatch(""), fakeapi.InternalError(), -1)
	api.CloseWatches()
	api.WaitRequests(func(r fakeapi.Request) bool { return r.Fault != "" }, 1)
	api.DeleteEndpoints("default", "gone")
	api.Compact()
	api.ClearFaults()
	h.waitAnswer("default/gone:http", shm.Unknown)
	assert.Equal(t, shm.Empty, h.answer("default/starting:http"))
	assert.Equal(t, shm.Empty, h.answer("default/new:http"))
	assert.Equal(t, uint64(1), h.w.Stats().Relists.Load())
}

// TestEmptySliceServices: slices whose endpoints are all not ready, or that
// list no port, keep their service (empty); deleting the last slice
// removes it.
func TestEmptySliceServices(t *testing.T) {
	api := fakeapi.New(t)
	no := false
	http := fakeapi.EndpointSlicePort{Name: fakeapi.Ptr("http"), Port: fakeapi.Ptr(int32(80))}
	api.PutEndpointSlice(testSlice("web-1", "web", []fakeapi.Endpoint{
		{Addresses: []string{"10.0.0.1"}, Conditions: fakeapi.EndpointConditions{Ready: &no}},
	}, http))
	api.PutEndpointSlice(testSlice("idle-1", "idle", nil))
	o := fastOptions()
	o.EndpointSlices = true
	h := start(t, api, o)
	h.waitAnswer("shop/web:http", shm.Empty)
	assert.Equal(t, shm.Empty, h.answer("shop/idle:http"), "a slice without ports: empty for every port")
	api.WaitWatchers(1)

	api.PutEndpointSlice(testSlice("web-2", "web", []fakeapi.Endpoint{{Addresses: []string{"10.0.0.2"}}}, http))
	h.waitHosts("shop/web:http", "10.0.0.2:80")
	api.DeleteEndpointSlice("shop", "web-2")
	h.waitAnswer("shop/web:http", shm.Empty)
	api.DeleteEndpointSlice("shop", "web-1")
	h.waitAnswer("shop/web:http", shm.Unknown)
	api.DeleteEndpointSlice("shop", "idle-1")
	h.waitAnswer("shop/idle:http", shm.Unknown)
}

// testSlice is an IPv4 EndpointSlice of service svc in namespace shop.
func testSlice(name, svc string, eps []fakeapi.Endpoint, ports ...fakeapi.EndpointSlicePort) *fakeapi.EndpointSlice {
	if eps == nil {
		eps = []fakeapi.Endpoint{}
	}
	if ports == nil {
		ports = []fakeapi.EndpointSlicePort{}
	}
	return &fakeapi.EndpointSlice{
		Metadata:    fakeapi.ObjectMeta{Namespace: "shop", Name: name, Labels: map[string]string{"kubernetes.io/service-name": svc}},
		AddressType: "IPv4", Endpoints: eps, Ports: ports,
	}
}

// detail is the node detail the table holds for key, "" when none.
func (h *harness) detail(key string) string {
	b, ok := h.table.Detail(nil, key)
	if !ok {
		return ""
	}
	return string(b)
}

func (h *harness) waitDetail(key, want string) {
	h.t.Helper()
	var got string
	eventually(h.t, key+" detail = "+want, func() bool { got = h.detail(key); return got == want })
}

func TestNodeDetailEndpoints(t *testing.T) {
	api := fakeapi.New(t)
	web := fakeapi.NewEndpoints("default", "web", "http", 80, "10.0.0.2", "10.0.0.1")
	web.Subsets[0].Addresses[0].NodeName = fakeapi.Ptr("n2")
	web.Subsets[0].Addresses[0].TargetRef = &fakeapi.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web-2", UID: "u2"}
	web.Subsets[0].Ports = append(web.Subsets[0].Ports, fakeapi.EndpointPort{Name: "admin", Port: 9000})
	api.PutEndpoints(web)
	api.PutEndpoints(endpoints("default", "zero", 80))
	o := fastOptions()
	o.NodeDetail = true
	h := start(t, api, o)
	h.waitDetail("default/web", `[{"host":"10.0.0.1","port":9000},{"host":"10.0.0.2","port":9000,"node_name":"n2","target_ref":{"kind":"Pod","name":"web-2","uid":"u2"}},`+
		`{"host":"10.0.0.1","port":80},{"host":"10.0.0.2","port":80,"node_name":"n2","target_ref":{"kind":"Pod","name":"web-2","uid":"u2"}}]`)
	h.waitDetail("default/zero", "[]") // an empty service has an empty detail (written in map order beside web's)
	api.WaitWatchers(1)

	// The same addresses on another pod: only the detail changes.
	web.Subsets[0].Addresses[0].TargetRef.UID = "u3"
	web.Subsets[0].Ports = web.Subsets[0].Ports[:1]
	api.PutEndpoints(web)
	h.waitDetail("default/web", `[{"host":"10.0.0.1","port":80},{"host":"10.0.0.2","port":80,"node_name":"n2","target_ref":{"kind":"Pod","name":"web-2","uid":"u3"}}]`)
	api.DeleteEndpoints("default", "web")
	h.waitAnswer("default/web:http", shm.Unknown)
	assert.Equal(t, "", h.detail("default/web"), "deleted with its service")
}

func TestNodeDetailSlices(t *testing.T) {
	api := fakeapi.New(t)
	http := fakeapi.EndpointSlicePort{Name: fakeapi.Ptr("http"), Port: fakeapi.Ptr(int32(80))}
	api.PutEndpointSlice(testSlice("web-1", "web", []fakeapi.Endpoint{
		{Addresses: []string{"10.0.0.1"}, NodeName: fakeapi.Ptr("n1"), Zone: fakeapi.Ptr("a"),
			TargetRef: &fakeapi.ObjectReference{Kind: "Pod", Namespace: "shop", Name: "web-1", UID: "u1"}},
		{Addresses: []string{"10.0.0.2"}, Conditions: fakeapi.EndpointConditions{Ready: fakeapi.Ptr(false)}, NodeName: fakeapi.Ptr("n2")},
	}, http))
	o := fastOptions()
	o.EndpointSlices, o.NodeDetail = true, true
	h := start(t, api, o)
	h.waitDetail("shop/web", `[{"host":"10.0.0.1","port":80,"node_name":"n1","zone":"a","target_ref":{"kind":"Pod","name":"web-1","uid":"u1"}}]`)

	// Without node_detail nothing is stored beside the service.
	api2 := fakeapi.New(t)
	api2.PutEndpointSlice(testSlice("web-1", "web", []fakeapi.Endpoint{{Addresses: []string{"10.0.0.1"}, NodeName: fakeapi.Ptr("n1")}}, http))
	o.NodeDetail = false
	h2 := start(t, api2, o)
	h2.waitHosts("shop/web:http", "10.0.0.1:80")
	assert.Equal(t, "", h2.detail("shop/web"))
}

// truncatedEndpoints is ns/name with ips on http:port, marked as the
// Endpoints controller marks a list it cut at 1,000 addresses.
func truncatedEndpoints(ns, name string, port int32, ips ...string) *fakeapi.Endpoints {
	e := endpoints(ns, name, port, ips...)
	e.Metadata.Annotations = map[string]string{"endpoints.kubernetes.io/over-capacity": "truncated"}
	return e
}

// A truncated Endpoints object is served as it is, with one warning per
// service for the Watcher's life (naming the service and the way out) and
// a gauge of the services truncated now, which falls when the annotation
// goes and does not count a service twice across a relist.
func TestTruncatedEndpointsWarnOnceAndCount(t *testing.T) {
	api := fakeapi.New(t)
	api.PutEndpoints(truncatedEndpoints("default", "big", 80, "10.0.0.1"))
	api.PutEndpoints(endpoints("default", "small", 80, "10.0.0.9"))
	var logs kdisctest.LogBuffer
	o := fastOptions()
	o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	h := start(t, api, o)
	h.waitHosts("default/big:http", "10.0.0.1:80")
	truncated := func(n int64) {
		t.Helper()
		eventually(t, "the truncated gauge says "+strconv.FormatInt(n, 10), func() bool { return h.w.Stats().Truncated.Load() == n })
	}
	warnings := func() int { return strings.Count(logs.String(), "Endpoints truncated") }
	truncated(1)
	assert.Equal(t, 1, warnings())
	line := logs.String()
	assert.Contains(t, line, "service=default/big")
	assert.Contains(t, line, "watch_endpoint_slices: true")
	api.WaitWatchers(1)

	api.PutEndpoints(truncatedEndpoints("default", "big", 80, "10.0.0.1", "10.0.0.2")) // still truncated
	h.waitHosts("default/big:http", "10.0.0.1:80", "10.0.0.2:80")
	assert.Equal(t, int64(1), h.w.Stats().Truncated.Load())
	api.PutEndpoints(truncatedEndpoints("default", "other", 80, "10.0.1.1"))
	h.waitHosts("default/other:http", "10.0.1.1:80")
	truncated(2)
	assert.Equal(t, 2, warnings(), "one warning per service")

	// The annotation goes (scaled below 1,000): so does the count; it
	// comes back: counted, not warned again.
	api.PutEndpoints(endpoints("default", "big", 80, "10.0.0.1", "10.0.0.2")) // only the annotation changed
	truncated(1)
	api.PutEndpoints(truncatedEndpoints("default", "big", 80, "10.0.0.1", "10.0.0.2"))
	truncated(2)
	assert.Equal(t, 2, warnings(), "once per service")

	// A relist counts what it lists, once.
	api.Fail(fakeapi.IsWatch(""), fakeapi.InternalError(), -1)
	api.CloseWatches()
	api.WaitRequests(func(r fakeapi.Request) bool { return r.Fault != "" }, 1)
	api.DeleteEndpoints("default", "other")
	api.Compact()
	api.ClearFaults()
	h.waitAnswer("default/other:http", shm.Unknown)
	truncated(1)
	assert.Equal(t, 2, warnings())
	api.WaitWatchers(1)
	api.DeleteEndpoints("default", "big")
	h.waitAnswer("default/big:http", shm.Unknown)
	truncated(0)
}
