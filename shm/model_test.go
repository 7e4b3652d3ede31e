package shm

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The table against a trivially correct model: random sequences of Put,
// Delete, Get, Lookup and Range on a small table (so that it fills up)
// and on a plain map, where a Put refused with *FullError leaves the
// model unchanged. They must agree after every step (after sync.Map's
// TestMapMatchesRWMutex).
func TestTableMatchesMap(t *testing.T) {
	sequences, steps := 2000, 100
	if testing.Short() || raceEnabled {
		sequences = 300
	}
	bigs := 0         // big values stored (heads and pieces)
	inlines := 0      // values stored in their index cell
	smallRecords := 0 // values of one small port stored as a record (a record slot, layout 7)
	for seq := range sequences {
		seed := uint64(seq)
		rnd := rand.New(rand.NewPCG(seed, 42))
		w, err := Create("", MinSize+int64(rnd.IntN(3))*16<<10)
		require.NoError(t, err)
		r := w.Reader()
		model := map[string][]Port{}
		for step := range steps {
			key := fmt.Sprintf("ns-%d/svc-%d", rnd.IntN(3), rnd.IntN(40))
			if rnd.IntN(4) == 0 { // too long for a cell: a record slot whatever the value (layout 7)
				key = fmt.Sprintf("ns-%d/a-service-name-too-long-for-a-cell-%d", rnd.IntN(3), rnd.IntN(10))
			}
			where := func() string { return fmt.Sprintf("seed %d step %d key %s", seed, step, key) }
			switch op := rnd.IntN(10); {
			case op < 5:
				ports := randomPorts(rnd)
				err := w.Put(key, ports)
				var full *FullError
				switch {
				case err == nil:
					model[key] = ports
					if rec, _ := appendRecord(nil, key, ports); uint64(len(rec)) > w.t.inlineMax() {
						bigs++
					}
					if _, ok := encodeCell(key, ports); ok {
						inlines++
					} else if len(ports) == 1 && len(ports[0].Nodes) <= cellMaxNodes {
						smallRecords++
					}
				case errors.As(err, &full):
					require.Equal(t, key, full.Key, where())
				default:
					t.Fatalf("%s: Put: %v", where(), err)
				}
			case op < 7:
				_, had := model[key]
				require.Equal(t, had, w.Delete(key), "%s: Delete reports presence", where())
				delete(model, key)
			case op < 9:
				got, ok := r.Get(key)
				want, had := model[key]
				require.Equal(t, had, ok, "%s: Get presence", where())
				if had {
					require.Equal(t, want, got, "%s: Get value", where())
				}
				for _, p := range want {
					nodes, ans := r.Find(nil, key+":"+p.Name)
					if len(p.Nodes) == 0 {
						require.Equal(t, NotReady, ans, "%s: port %s has no nodes (table not ready)", where(), p.Name)
						continue
					}
					require.Equal(t, Found, ans, "%s: Find %s", where(), p.Name)
					require.Equal(t, p.Nodes, nodes, "%s: Find %s", where(), p.Name)
				}
			default:
				got := map[string][]Port{}
				r.Range(func(k string, ports []Port) bool { got[k] = ports; return true })
				require.Equal(t, len(model), len(got), "%s: Range count", where())
				for k, want := range model {
					require.Equal(t, want, got[k], "%s: Range %s", where(), k)
				}
				require.Equal(t, len(model), w.Stats().Entries, "%s: Stats.Entries", where())
			}
		}
		require.NoError(t, r.Close())
		require.NoError(t, w.Close())
	}
	t.Logf("%d big values stored, %d inline, %d small records", bigs, inlines, smallRecords)
	assert.Positive(t, bigs)
	assert.Positive(t, inlines)
	assert.Positive(t, smallRecords)
}

// randomPorts makes a value as listwatch would store it: ports sorted by
// name, nodes sorted and distinct, sometimes large, sometimes empty.
func randomPorts(rnd *rand.Rand) []Port {
	if rnd.IntN(3) == 0 {
		return smallPorts(rnd)
	}
	n := rnd.IntN(4)
	if rnd.IntN(8) == 0 {
		n = 0 // a service with no port at all
	}
	names := []string{"9p", "dns", "http", "https-metrics", "p"} // "9p": a digit first, not a number
	var ports []Port
	for _, name := range names[:n] {
		p := Port{Name: name}
		count := rnd.IntN(6)
		switch rnd.IntN(50) {
		case 0, 1:
			count = 100 + rnd.IntN(400) // fills a small table
		case 2:
			count = 400 + rnd.IntN(800) // often a big value (heads and pieces), or too big
		}
		port := uint16(1 + rnd.IntN(65535))
		for i := range count {
			var nd Node
			switch rnd.IntN(5) {
			case 0:
				nd = Node{Addr: netip.AddrFrom16([16]byte{0xfd, 15: byte(i), 14: byte(i >> 8)})}
			case 1:
				nd = Node{Name: fmt.Sprintf("n%d.example.com", i)}
			default:
				nd = Node{Addr: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})}
			}
			nd.Port, nd.Weight = port, 50
			if rnd.IntN(4) == 0 {
				nd.Port, nd.Weight = uint16(1+rnd.IntN(65535)), uint32(rnd.IntN(100))
			}
			p.Nodes = append(p.Nodes, nd)
		}
		slices.SortFunc(p.Nodes, Compare)
		p.Nodes = slices.CompactFunc(p.Nodes, func(a, b Node) bool { return Compare(a, b) == 0 })
		if len(p.Nodes) == 0 {
			p.Nodes, p.Number = nil, port // a port with no node keeps its number
		}
		ports = append(ports, p)
	}
	return ports
}

// smallPorts makes a value around the edges of an inline cell:
// one port of 0 to 5 IPv4 nodes sharing its number and weight, or
// sometimes one node apart.
func smallPorts(rnd *rand.Rand) []Port {
	names := []string{"9p", "dns", "http", "https-metrics", "p", "a-port-name-of-21-byte"}
	p := Port{Name: names[rnd.IntN(len(names))]}
	port, weight := uint16(1+rnd.IntN(65535)), uint32(rnd.IntN(3))
	for i := range rnd.IntN(6) {
		p.Nodes = append(p.Nodes, Node{Addr: netip.AddrFrom4([4]byte{10, byte(rnd.IntN(2)), byte(i), byte(rnd.IntN(256))}), Port: port, Weight: weight})
	}
	if len(p.Nodes) > 0 && rnd.IntN(8) == 0 {
		p.Nodes[0].Weight++
	}
	slices.SortFunc(p.Nodes, Compare)
	p.Nodes = slices.CompactFunc(p.Nodes, func(a, b Node) bool { return Compare(a, b) == 0 })
	if len(p.Nodes) == 0 {
		p.Nodes, p.Number = nil, port
	}
	return []Port{p}
}
