package listwatch

import (
	"bytes"
	"io"
	"log/slog"
	"testing"

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
	const events = 10_000
	table, err := shm.Create("", 4<<20)
	if err != nil {
		b.Fatal(err)
	}
	defer table.Close()
	w := New(Options{Store: table, Weight: 50, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	cpu := startCPU(b)
	for b.Loop() {
		er := open(bytes.NewReader(stream))
		var ev Event
		rv := ""
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
	cpu.report(b, events) // per event
	if w.Stats().Skipped.Load() != 0 {
		b.Fatal("events skipped")
	}
}

// BenchmarkWatchApplyProtobuf is BenchmarkWatchApply with the same events
// in protobuf.
func BenchmarkWatchApplyProtobuf(b *testing.B) {
	benchWatchApply(b, fakeapi.WatchStreamProto(10_000, 1_000), func(r io.Reader) eventSource { return newProtoEventReader(r) })
}
