package listwatch

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/kdisc/kdisc/internal/fakeapi"
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
