package listwatch

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/kdisc/kdisc/internal/cputime"
	"github.com/kdisc/kdisc/internal/fakeapi"
	"github.com/kdisc/kdisc/shm"
)

// BenchmarkWatchApply decodes watch events straight off a stream and
// applies them to a table: what kdisc does per event. Compare with the
// ~17k events/s notes.md measured for a client-go informer on one core.
func BenchmarkWatchApply(b *testing.B) {
	benchWatchApply(b, fakeapi.WatchStreamJSON(10_000, 1_000), func(r io.Reader) eventSource { return newEventReader(r) })
}

// eventSource is a wire format's event reader.
type eventSource interface{ next(*Event) error }

// benchWatchApply decodes the events of stream (10,000 of them) with the
// reader open makes and applies them to a table.
func benchWatchApply(b *testing.B, stream []byte, open func(io.Reader) eventSource) {
	benchWatchApplyOpts(b, stream, open, false)
}

// benchWatchApplyOpts is benchWatchApply of Endpoints or (slices)
// EndpointSlices.
func benchWatchApplyOpts(b *testing.B, stream []byte, open func(io.Reader) eventSource, slices bool) {
	const events = 10_000
	table, err := shm.Create("", 4<<20)
	if err != nil {
		b.Fatal(err)
	}
	defer table.Close()
	w := New(Options{Store: table, Weight: 50, EndpointSlices: slices, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	cpu := cputime.Start(b)
	for b.Loop() {
		er := open(bytes.NewReader(stream))
		var ev Event
		var rv resourceVersion
		for {
			err := er.next(&ev)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if err := w.apply(&ev, &rv); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(events*b.N)/b.Elapsed().Seconds(), "events/s")
	cpu.Report(b, events) // per event
	if w.Stats().Skipped.Load() != 0 {
		b.Fatal("events skipped")
	}
}

// BenchmarkWatchApplyProtobuf is BenchmarkWatchApply with the same events
// in protobuf.
func BenchmarkWatchApplyProtobuf(b *testing.B) {
	benchWatchApply(b, fakeapi.WatchStreamProto(10_000, 1_000), func(r io.Reader) eventSource { return newProtoEventReader(r) })
}

// watchStreamSlicesProto is n MODIFIED EndpointSlice events in protobuf,
// round-robin over services slices of 3 ready endpoints (targetRef,
// nodeName, zone, labels, managedFields), each moving the slice's
// addresses as internal/replay's events do: every event changes its
// service's value, so every event is also a table write.
func watchStreamSlicesProto(n, services int) []byte {
	var b []byte
	tru := true
	for i := range n {
		svc := i % services
		name := fmt.Sprintf("service-%d", svc)
		s := &fakeapi.EndpointSlice{Metadata: fakeapi.ObjectMeta{
			Name: name + "-x7k2p", Namespace: fmt.Sprintf("team-%d", svc%10), GenerateName: name + "-",
			UID: fmt.Sprintf("5d3c1a9e-0b7f-4f7e-9a51-%012d", svc), ResourceVersion: fmt.Sprint(1000 + i),
			CreationTimestamp: "2026-11-25T10:00:00Z",
			Labels: map[string]string{"kubernetes.io/service-name": name, "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
				"app.kubernetes.io/managed-by": "helm"},
			Annotations: map[string]string{"endpoints.kubernetes.io/last-change-trigger-time": "2026-11-25T10:00:00Z"},
			ManagedFields: []fakeapi.ManagedFieldsEntry{{Manager: "kube-controller-manager", Operation: "Update", APIVersion: "discovery.k8s.io/v1",
				Time: "2026-11-25T10:00:00Z", FieldsType: "FieldsV1",
				FieldsV1: []byte(`{"f:addressType":{},"f:endpoints":{},"f:metadata":{"f:generateName":{},"f:labels":{".":{},"f:kubernetes.io/service-name":{}}},"f:ports":{}}`)}},
		}, AddressType: "IPv4", Ports: []fakeapi.EndpointSlicePort{{Name: fakeapi.Ptr("http"), Protocol: fakeapi.Ptr("TCP"), Port: fakeapi.Ptr(int32(8080))}}}
		for a := range 3 {
			s.Endpoints = append(s.Endpoints, fakeapi.Endpoint{
				Addresses:  []string{fmt.Sprintf("10.%d.%d.%d", svc/250, (i/services+a)%250, svc%250)},
				Conditions: fakeapi.EndpointConditions{Ready: &tru, Serving: &tru, Terminating: fakeapi.Ptr(false)},
				NodeName:   fakeapi.Ptr(fmt.Sprintf("node-%d", a)), Zone: fakeapi.Ptr("zone-a"),
				TargetRef: &fakeapi.ObjectReference{Kind: "Pod", Namespace: fmt.Sprintf("team-%d", svc%10),
					Name: fmt.Sprintf("%s-7d9f8-%d", name, a), UID: fmt.Sprintf("a1b2c3d4-0000-0000-0000-%012d", i)},
			})
		}
		obj := fakeapi.EnvelopeProto("discovery.k8s.io/v1", "EndpointSlice", fakeapi.MarshalEndpointSliceProto(s))
		b = append(b, fakeapi.FrameProto(fakeapi.WatchEventProto("MODIFIED", obj))...)
	}
	return b
}

// BenchmarkWatchApplySlicesProtobuf is BenchmarkWatchApplyProtobuf with
// EndpointSlices whose every event changes its service (what the sentinel
// of bench/compare.sh waits on): decode, fold, merge and table write.
func BenchmarkWatchApplySlicesProtobuf(b *testing.B) {
	benchWatchApplyOpts(b, watchStreamSlicesProto(10_000, 1_000), func(r io.Reader) eventSource { return newProtoEventReader(r) }, true)
}

// A watch event that changes its service allocates nothing: not the
// resourceVersion kept (copied into a reused buffer, a string only when a
// watch starts), not the table write (it allocated a *shm.FullError per
// write, for errors.As, even when the write succeeded).
func TestChangingEventAllocatesNothing(t *testing.T) {
	table, err := shm.Create("", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer table.Close()
	for _, slices := range []bool{false, true} {
		w := New(Options{Store: table, Weight: 50, EndpointSlices: slices, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		stream, open := fakeapi.WatchStreamProto(2, 1), func(r io.Reader) eventSource { return newProtoEventReader(r) }
		if slices {
			stream = watchStreamSlicesProto(2, 1)
		}
		// Two events of one service with different addresses (one
		// service: the address moves with the event's index), in turn.
		var evs [2]Event
		er := open(bytes.NewReader(stream))
		for i := range evs {
			if err := er.next(&evs[i]); err != nil {
				t.Fatal(err)
			}
			evs[i].Object = bytes.Clone(evs[i].Object)
		}
		var rv resourceVersion
		i := 0
		allocs := testing.AllocsPerRun(200, func() {
			if err := w.apply(&evs[i%2], &rv); err != nil {
				t.Fatal(err)
			}
			i++
		})
		if w.Stats().Skipped.Load() != 0 || table.Stats().Entries == 0 {
			t.Fatalf("slices %v: events skipped or nothing written", slices)
		}
		if allocs > 0 {
			t.Errorf("slices %v: %.1f allocations per changing event, want 0", slices, allocs)
		}
	}
}

// BenchmarkWatchApplyProtobufChanging is BenchmarkWatchApplyProtobuf over
// 1,024 services rather than 1,000: each event then moves its service's
// addresses (with 1,000 they repeat: 1,000 is a multiple of 250, so every
// event after a service's first leaves its value as it was, and the
// benchmark above measures events that change nothing).
func BenchmarkWatchApplyProtobufChanging(b *testing.B) {
	benchWatchApply(b, fakeapi.WatchStreamProto(10_000, 1_024), func(r io.Reader) eventSource { return newProtoEventReader(r) })
}
