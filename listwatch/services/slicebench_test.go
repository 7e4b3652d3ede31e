package services

import (
	"fmt"
	"testing"

	"github.com/kdisc/kdisc/internal/cputime"
)

// BenchmarkSliceServiceWrite: one watch event's work on a service of 3
// EndpointSlices of 100 ready endpoints each (the controller's default
// size), two ports: the changed slice folded in, then the service's value
// merged from its slices, as a write does.
func BenchmarkSliceServiceWrite(b *testing.B) {
	s := newSliceState(50)
	slices := make([]*object, 3)
	for i := range slices {
		o := &object{namespace: "shop", name: fmt.Sprintf("web-%d", i), serviceName: "web", addressType: "IPv4",
			ports: []port{{name: "http", number: 8080}, {name: "metrics", number: 9090}}}
		for j := range 100 {
			o.endpoints = append(o.endpoints, endpoint{addresses: []string{fmt.Sprintf("10.%d.%d.%d", i, j/250, j%250)}, ready: true, serving: true})
		}
		slices[i] = o
		if err := s.set(o, func(string) {}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	cpu := cputime.Start(b)
	for i := 0; b.Loop(); i++ {
		o := slices[i%3]
		e := &o.endpoints[i%100]
		e.ready = !e.ready // a pod flips readiness: a change every time
		if err := s.set(o, func(string) {}); err != nil {
			b.Fatal(err)
		}
		if _, ok := s.value("shop/web"); !ok {
			b.Fatal("no value")
		}
	}
	cpu.Report(b, 1)
}
