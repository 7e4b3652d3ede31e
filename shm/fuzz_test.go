package shm

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzReaderGarbage: a reader given arbitrary table bytes (behind a header
// it accepts) never panics, never hangs and never reads outside the
// mapping: every offset and length it reads is checked before use.
func FuzzReaderGarbage(f *testing.F) {
	// Seeds: real shards with real records of every body format.
	w, err := Create("", MinSize)
	if err != nil {
		f.Fatal(err)
	}
	for i, ports := range [][]Port{
		{{Name: "http", Nodes: []Node{ip("10.0.0.1", 80, 50), ip("10.0.0.2", 80, 50)}}},
		{{Name: "dns", Nodes: []Node{fqdn("a.example.com", 53, 1), ip("fd00::1", 53, 2)}}, {Name: "http"}},
		{{Name: "v6", Nodes: []Node{ip("fd00::1", 443, 50)}}},
		nil,
		{{Name: "http", Nodes: bigNodes(800, 1, false)}, {Name: "9000", Number: 9000}},                                                  // a big value: a head and pieces
		{{Name: "http", Nodes: []Node{ip("10.0.0.1", 80, 50), ip("10.0.0.2", 80, 50), ip("10.0.0.3", 80, 50), ip("10.0.0.4", 80, 50)}}}, // a full inline cell
		{{Name: "8443", Number: 8443}}, // an inline cell with no node
	} {
		if err := w.Put("ns/svc-"+string(rune('a'+i)), ports); err != nil {
			f.Fatal(err)
		}
	}
	// Records of small services (keys too long for a cell): enough to
	// grow the record slots (layout 7) past one cache line.
	for i := range 8 {
		if err := w.Put(fuzzLongKey(i), []Port{{Name: "http", Nodes: []Node{ip("10.0.1.1", 80, 50)}}}); err != nil {
			f.Fatal(err)
		}
	}
	shard := make([]byte, w.t.shardBytes)
	for i := 0; i < len(shard); i += 8 {
		v := w.t.load(headerBytes + uint64(i))
		for j := range 8 {
			shard[i+j] = byte(v >> (8 * j))
		}
	}
	if rec, _ := appendRecord(nil, "ns/svc-e", []Port{{Name: "http", Nodes: bigNodes(800, 1, false)}}); uint64(len(rec)) <= w.t.inlineMax() {
		f.Fatal("ns/svc-e is not a big value")
	}
	w.Close()
	f.Add(shard)
	f.Add(shard[:256])
	f.Add([]byte{})

	f.Fuzz(fuzzReaderBody)
}

func fuzzReaderBody(t *testing.T, data []byte) {
	path := filepath.Join(t.TempDir(), "kubernetes")
	w, err := Create(path, MinSize)
	if err != nil {
		t.Fatal(err)
	}
	w.SetReady(true)
	// Write the fuzz bytes over the shard, word by word, as a
	// broken or hostile writer could.
	so := uint64(headerBytes)
	for i := uint64(0); i+8 <= uint64(len(data)) && i < w.t.shardBytes; i += 8 {
		var v uint64
		for j := range uint64(8) {
			v |= uint64(data[i+j]) << (8 * j)
		}
		w.t.store(so+i, v)
	}
	// An odd sequence means "a live writer is changing the shard":
	// readers wait for it (bounded), which a fuzzer need not time.
	w.t.store(so+sSeq, w.t.load(so+sSeq)&^1)
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]Node, 0, 16)
	for _, q := range []string{"ns/svc-a:http", "ns/svc-b:dns", "ns/svc-b:http", "ns/svc-b:53", "ns/svc-c:v6", "ns/svc-d:x", "ns/svc-e:http", "ns/svc-e:9000", "ns/svc-e:8080", "ns/svc-f:http", "ns/svc-f:80", "ns/svc-g:8443", "ns/svc-g:9", "x"} {
		buf, _ = r.Find(buf[:0], q)
	}
	for i := range 8 {
		buf, _ = r.Find(buf[:0], fuzzLongKey(i)+":http")
	}
	_, _ = r.Get(fuzzLongKey(0))
	_, _ = r.Get("ns/svc-a")
	_, _ = r.Get("ns/svc-f")
	_, _ = r.Get("ns/svc-e")
	_, _ = r.Detail(nil, "ns/svc-e")
	r.KeysWithHash(KeyHash("ns/svc-e"), func(string) {})
	r.Range(func(string, []Port) bool { return true })
	r.Close()
	w.Close()
	// A writer restarting on the damaged table checks it (check, sweepBig)
	// without panicking, and keeps only what is consistent.
	if w, err = Create(path, MinSize); err != nil {
		t.Fatal(err)
	}
	w.Close()
	os.Remove(path)
}

// fuzzLongKey is the key of a record seeded for the fuzzer.
func fuzzLongKey(i int) string { return "ns/a-service-key-too-long-for-a-cell-" + string(rune('a'+i)) }
