package fakeapi

import (
	"math/rand/v2"
	"net/http"
	"slices"
)

// splitWriter writes each payload in a few pieces cut at random points
// (inside strings, numbers, escapes, anywhere), flushing after each piece,
// so every piece reaches the client as its own HTTP chunk. A client that
// assumes one event per chunk or per Read breaks here, as it would behind a
// real proxy. The cuts come from a per-request seeded generator: a failing
// run replays with the same seed.
type splitWriter struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	rng *rand.Rand
}

func newSplitWriter(w http.ResponseWriter, seed, seq uint64) *splitWriter {
	return &splitWriter{w: w, rc: http.NewResponseController(w), rng: rand.New(rand.NewPCG(seed, seq))}
}

// cuts returns sorted cut offsets strictly inside (0, n).
func (sw *splitWriter) cuts(n int) []int {
	if n < 2 {
		return nil
	}
	k := 1 + sw.rng.IntN(4) // 1..4 cuts, but one payload in 8 goes whole
	if sw.rng.IntN(8) == 0 {
		k = 0
	}
	var cs []int
	for range k {
		cs = append(cs, 1+sw.rng.IntN(n-1))
	}
	slices.Sort(cs)
	return slices.Compact(cs)
}

// write sends b in pieces; it stops at the first error (client gone).
func (sw *splitWriter) write(b []byte) error {
	start := 0
	for _, c := range append(sw.cuts(len(b)), len(b)) {
		if err := sw.piece(b[start:c]); err != nil {
			return err
		}
		start = c
	}
	return nil
}

func (sw *splitWriter) piece(p []byte) error {
	if _, err := sw.w.Write(p); err != nil {
		return err
	}
	return sw.rc.Flush()
}

// writeFrames writes consecutive frames, joining random runs of them
// before cutting: the real server flushes only when its queue is empty, so
// one chunk may end one event and start the next.
func (sw *splitWriter) writeFrames(frames [][]byte) error {
	var group []byte
	for i, f := range frames {
		group = append(group, f...)
		if i+1 < len(frames) && sw.rng.IntN(3) == 0 {
			continue
		}
		if err := sw.write(group); err != nil {
			return err
		}
		group = group[:0]
	}
	return nil
}

// half sends a prefix of b (at least one byte, never all of it), for the
// fault that drops the connection in the middle of an event.
func (sw *splitWriter) half(b []byte) error {
	n := 1
	if len(b) > 2 {
		n = 1 + sw.rng.IntN(len(b)-1)
	}
	return sw.write(b[:n])
}
