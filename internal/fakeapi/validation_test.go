package fakeapi

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func TestPutRefusesWhatTheRealServerRefuses(t *testing.T) {
	s := New(t)
	subset := func(ips []string, ports ...EndpointPort) []EndpointSubset {
		var as []EndpointAddress
		for _, ip := range ips {
			as = append(as, EndpointAddress{IP: ip})
		}
		return []EndpointSubset{{Addresses: as, Ports: ports}}
	}
	endpoints := func(name string, subsets []EndpointSubset) *Endpoints {
		return &Endpoints{Metadata: ObjectMeta{Name: name, Namespace: "ns"}, Subsets: subsets}
	}
	slice := func(name, addressType string, addrs ...string) *EndpointSlice {
		return &EndpointSlice{Metadata: ObjectMeta{Name: name, Namespace: "ns"}, AddressType: addressType,
			Endpoints: []Endpoint{{Addresses: addrs}}}
	}
	const loopback = "may not be in the loopback range (127.0.0.0/8, ::1/128)"
	for _, c := range []struct {
		obj  object
		want string
	}{
		// Messages seen from v1.37.2 (testdata/kube/README.md) first.
		{endpoints("web", subset([]string{"10.1.0.1"}, EndpointPort{Name: "http", Port: 80}, EndpointPort{Port: 8080})),
			`Endpoints "web" is invalid: subsets[0].ports[1].name: Required value`},
		{endpoints("loop", subset([]string{"127.0.0.1"}, EndpointPort{Port: 80})),
			`Endpoints "loop" is invalid: subsets[0].addresses[0].ip: Invalid value: "127.0.0.1": ` + loopback},
		{slice("loop", "IPv4", "127.0.0.1"),
			`EndpointSlice.discovery.k8s.io "loop" is invalid: endpoints[0].addresses[0]: Invalid value: "127.0.0.1": ` + loopback},
		// The same rules elsewhere.
		{endpoints("loop6", []EndpointSubset{{NotReadyAddresses: []EndpointAddress{{IP: "10.0.0.1"}, {IP: "::1"}}}}),
			`Endpoints "loop6" is invalid: subsets[0].notReadyAddresses[1].ip: Invalid value: "::1": ` + loopback},
		{slice("loop6", "IPv6", "::1"),
			`EndpointSlice.discovery.k8s.io "loop6" is invalid: endpoints[0].addresses[0]: Invalid value: "::1": ` + loopback},
		{slice("v6in4", "IPv4", "10.0.0.1", "fd00::1"),
			`EndpointSlice.discovery.k8s.io "v6in4" is invalid: endpoints[0].addresses[1]: Invalid value: "fd00::1": must be a valid IPv4 address`},
		{slice("v4in6", "IPv6", "10.0.0.1"),
			`EndpointSlice.discovery.k8s.io "v4in6" is invalid: endpoints[0].addresses[0]: Invalid value: "10.0.0.1": must be a valid IPv6 address`},
		{slice("badtype", "IP", "10.0.0.1"),
			`EndpointSlice.discovery.k8s.io "badtype" is invalid: addressType: Unsupported value: "IP": supported values: "FQDN", "IPv4", "IPv6"`},
		{slice("host", "FQDN", "db"),
			`EndpointSlice.discovery.k8s.io "host" is invalid: endpoints[0].addresses[0]: Invalid value: "db": should be a domain with at least two segments separated by dots`},
		{slice("noaddr", "IPv4"),
			`EndpointSlice.discovery.k8s.io "noaddr" is invalid: endpoints[0].addresses: Required value: must contain at least 1 address`},
		{endpoints("noaddr", subset(nil, EndpointPort{Port: 80})),
			"Endpoints \"noaddr\" is invalid: subsets[0]: Required value: must specify `addresses` or `notReadyAddresses`"},
		{endpoints("two", subset([]string{"0.0.0.0", "169.254.1.1"}, EndpointPort{Port: 0})),
			`Endpoints "two" is invalid: [subsets[0].addresses[0].ip: Invalid value: "0.0.0.0": may not be unspecified (0.0.0.0), ` +
				`subsets[0].addresses[1].ip: Invalid value: "169.254.1.1": may not be in the link-local range (169.254.0.0/16, fe80::/10), ` +
				`subsets[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive]`},
	} {
		rv := s.ResourceVersion()
		var err error
		switch o := c.obj.(type) {
		case *Endpoints:
			_, err = s.TryPutEndpoints(o)
		case *EndpointSlice:
			_, err = s.TryPutEndpointSlice(o)
		}
		var st *Status
		if !errors.As(err, &st) || st.Error() != c.want || st.Code != 422 || st.Reason != "Invalid" ||
			st.Details == nil || st.Details.Name != c.obj.meta().Name || len(st.Details.Causes) == 0 {
			t.Errorf("got %v (%+v)\nwant %s", err, st, c.want)
		}
		if s.ResourceVersion() != rv {
			t.Errorf("%s: a refused object was stored", c.want)
		}
	}
	// Valid: a single unnamed port, FQDN, no endpoints.
	for _, o := range []object{
		endpoints("solo", subset([]string{"10.1.0.5"}, EndpointPort{Port: 9000})),
		slice("db", "FQDN", "db-0.db.example.internal"),
		&EndpointSlice{Metadata: ObjectMeta{Name: "empty", Namespace: "ns"}, AddressType: "IPv4"},
	} {
		if _, err := s.store.put(resourceOf(o), o); err != nil {
			t.Errorf("refused: %v", err)
		}
	}
}

func resourceOf(o object) *resource {
	if _, ok := o.(*Endpoints); ok {
		return resEndpoints
	}
	return resEndpointSlices
}

// fatalTB records Fatalf instead of failing the test.
type fatalTB struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.msg = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func TestPutFailsTheTestWithTheRealMessage(t *testing.T) {
	tb := &fatalTB{TB: t}
	s := New(tb)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.PutEndpoints(&Endpoints{Metadata: ObjectMeta{Name: "web"}, Subsets: []EndpointSubset{{
			Addresses: []EndpointAddress{{IP: "10.0.0.1"}},
			Ports:     []EndpointPort{{Name: "http", Port: 80}, {Port: 81}},
		}}})
		t.Error("PutEndpoints returned")
	}()
	<-done
	if want := `Endpoints "web" is invalid: subsets[0].ports[1].name: Required value`; !strings.Contains(tb.msg, want) {
		t.Errorf("Fatalf %q, want it to hold %q", tb.msg, want)
	}
}
