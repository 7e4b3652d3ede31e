package listwatch

import (
	"bytes"
	"io"
	"testing"

	"github.com/kdisc/kdisc/internal/cputime"
	"github.com/kdisc/kdisc/internal/fakeapi"
)

// BenchmarkEventReader frames and splits watch events, without decoding
// the objects: the cost of the stream reader alone.
func BenchmarkEventReader(b *testing.B) {
	stream := fakeapi.WatchStreamJSON(10_000, 1_000)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	cpu := cputime.Start(b)
	defer cpu.Report(b, 1)
	for b.Loop() {
		er := newEventReader(bytes.NewReader(stream))
		var ev Event
		for {
			if err := er.next(&ev); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}
