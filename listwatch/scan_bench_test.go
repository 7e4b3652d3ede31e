package listwatch

import (
	"bytes"
	"io"
	"testing"

	"github.com/kdisc/kdisc/internal/jsonscan"
)

// BenchmarkEventReader frames and splits watch events, without decoding
// the objects: the cost of the stream reader alone.
func BenchmarkEventReader(b *testing.B) {
	stream := watchStream(10_000, 1_000)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	cpu := startCPU(b)
	defer cpu.report(b, 1)
	for b.Loop() {
		er := newEventReader(bytes.NewReader(stream))
		var ev event
		for {
			if err := er.next(&ev); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkDecodeObject decodes one realistic Endpoints object.
func BenchmarkDecodeObject(b *testing.B) {
	er := newEventReader(bytes.NewReader(watchStream(1, 1)))
	var ev event
	if err := er.next(&ev); err != nil {
		b.Fatal(err)
	}
	raw := bytes.Clone(ev.object)
	var s jsonscan.Scanner
	var o object
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	cpu := startCPU(b)
	defer cpu.report(b, 1)
	for b.Loop() {
		if err := decodeObjectDetail(&s, raw, &o, false); err != nil {
			b.Fatal(err)
		}
	}
}
