package services

import (
	"bytes"
	"testing"

	"github.com/kdisc/kdisc/internal/cputime"
	"github.com/kdisc/kdisc/internal/fakeapi"
	"github.com/kdisc/kdisc/internal/jsonscan"
)

// BenchmarkDecodeObject decodes one realistic Endpoints object.
func BenchmarkDecodeObject(b *testing.B) {
	event := fakeapi.WatchStreamJSON(1, 1) // {"type":"MODIFIED","object":{...}}\n
	raw := bytes.TrimSuffix(bytes.TrimPrefix(event, []byte(`{"type":"MODIFIED","object":`)), []byte("}\n"))
	var s jsonscan.Scanner
	var o object
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	cpu := cputime.Start(b)
	defer cpu.Report(b, 1)
	for b.Loop() {
		if err := decodeObjectDetail(&s, raw, &o, false); err != nil {
			b.Fatal(err)
		}
	}
}
