package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jsoniter "github.com/json-iterator/go"

	"github.com/kdisc/kdisc"
	"github.com/kdisc/kdisc/config"
	"github.com/kdisc/kdisc/shm"
)

// kdisc bench: lookups per second and their latency, on a synthetic
// private table or on the live tables of a running `kdisc run`.

type benchOptions struct {
	services, addrs, ports int
	duration               time.Duration
	parallel               int
	keys                   string
	baseline               bool
	output                 string
}

func benchFlags(fs *flag.FlagSet) *benchOptions {
	o := &benchOptions{}
	fs.IntVar(&o.services, "services", 10000, "synthetic table: number of services")
	fs.IntVar(&o.addrs, "addrs", 3, "synthetic table: addresses per service")
	fs.IntVar(&o.ports, "ports", 1, "synthetic table: ports per service (each port is a key)")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "how long to look up (each baseline as long again)")
	fs.IntVar(&o.parallel, "parallel", runtime.GOMAXPROCS(0), "goroutines looking up at once")
	fs.StringVar(&o.keys, "keys", "uniform", "key popularity: uniform or zipf")
	fs.BoolVar(&o.baseline, "baseline", false, "also measure a map under sync.RWMutex and a sync.Map with the same data")
	fs.StringVar(&o.output, "o", "text", "output format: text or json")
	return o
}

func (o *benchOptions) check() error {
	switch {
	case o.services < 1 || o.addrs < 1 || o.ports < 1:
		return errors.New("-services, -addrs and -ports must be at least 1")
	case o.addrs > 1<<16 || o.ports > 1000:
		return errors.New("-addrs at most 65536, -ports at most 1000")
	case o.duration <= 0:
		return errors.New("-duration must be positive")
	case o.parallel < 1:
		return errors.New("-parallel must be at least 1")
	case o.keys != "uniform" && o.keys != "zipf":
		return fmt.Errorf("-keys must be uniform or zipf, not %q", o.keys)
	case o.output != "text" && o.output != "json":
		return fmt.Errorf("-o must be text or json, not %q", o.output)
	}
	return nil
}

// lookupFunc is what is measured: append key's nodes to dst.
type lookupFunc func(dst []kdisc.Node, key string) ([]kdisc.Node, bool)

// benchData is what every candidate holds: the keys looked up and, for
// the baselines, each key's nodes.
type benchData struct {
	what   string // a description for the text output
	keys   []string
	values map[string][]kdisc.Node
	lookup lookupFunc // kdisc's
	close  func()
}

// bench runs `kdisc bench`; cfg is nil for the synthetic table.
func bench(o *benchOptions, cfg *config.Config, shmDir string, stdout, stderr io.Writer) int {
	var (
		data *benchData
		err  error
	)
	if cfg == nil {
		data, err = syntheticData(o)
	} else {
		data, err = attachedData(cfg, shmDir)
	}
	if err != nil {
		fmt.Fprintf(stderr, "kdisc bench: %v\n", err)
		return exitError
	}
	defer data.close()

	seqs := keySequences(len(data.keys), o)
	p := newProgress(stderr, o.duration)
	results := []benchResult{runBench("kdisc", data.lookup, data.keys, seqs, o, p)}
	if o.baseline {
		rw := &rwMap{m: data.values}
		var sm sync.Map
		for k, v := range data.values {
			sm.Store(k, v)
		}
		results = append(results,
			runBench("map+RWMutex", rw.lookup, data.keys, seqs, o, p),
			runBench("sync.Map", func(dst []kdisc.Node, k string) ([]kdisc.Node, bool) {
				v, ok := sm.Load(k)
				if !ok {
					return dst, false
				}
				return append(dst, v.([]kdisc.Node)...), true
			}, data.keys, seqs, o, p))
	}
	p.done()

	if o.output == "json" {
		out := results[0].json()
		if o.baseline {
			out.Baseline = map[string]benchJSON{"rwmutex_map": results[1].json(), "sync_map": results[2].json()}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			fmt.Fprintf(stderr, "kdisc bench: %v\n", err)
			return exitError
		}
	} else {
		writeBenchText(stdout, data, o, results)
	}
	for _, r := range results {
		if r.ops == 0 {
			fmt.Fprintf(stderr, "kdisc bench: warning: %s completed no lookup in %v (a starved machine? a longer -duration)\n", r.name, r.elapsed.Round(time.Millisecond))
		}
		if r.notFound > 0 {
			fmt.Fprintf(stderr, "kdisc bench: warning: %s: %d of %d lookups found nothing (the table changed during the run?)\n", r.name, r.notFound, r.ops)
		}
	}
	return exitOK
}

// syntheticKey is service i's key for port p, and syntheticNodes its nodes.
func syntheticService(i int) string {
	return "bench-" + strconv.Itoa(i%100) + "/service-" + strconv.Itoa(i)
}

func syntheticPort(p int) string {
	if p == 0 {
		return "http"
	}
	return "port-" + strconv.Itoa(p)
}

func syntheticNodes(i, p, addrs int) []kdisc.Node {
	nodes := make([]kdisc.Node, addrs)
	for a := range addrs {
		n := uint32(i*addrs + a)
		nodes[a] = kdisc.Node{Addr: netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)}), Port: uint16(8080 + p), Weight: 50}
	}
	slices.SortFunc(nodes, shm.Compare)
	return nodes
}

// syntheticData fills a private anonymous table, doubling its size until
// everything fits.
func syntheticData(o *benchOptions) (*benchData, error) {
	d := &benchData{values: make(map[string][]kdisc.Node, o.services*o.ports)}
	portNames := make([]string, o.ports)
	for p := range o.ports {
		portNames[p] = syntheticPort(p)
	}
	slices.Sort(portNames) // the table keeps ports sorted by name
	ports := make([][]shm.Port, o.services)
	for i := range o.services {
		svc := syntheticService(i)
		ports[i] = make([]shm.Port, 0, o.ports)
		for _, name := range portNames {
			p := 0
			if name != "http" {
				p, _ = strconv.Atoi(strings.TrimPrefix(name, "port-"))
			}
			nodes := syntheticNodes(i, p, o.addrs)
			key := svc + ":" + name
			d.keys = append(d.keys, key)
			d.values[key] = nodes
			ports[i] = append(ports[i], shm.Port{Name: name, Nodes: nodes})
		}
	}
	size := max(int64(1<<20), int64(o.services)*int64(64+o.ports*(48+o.addrs*8))*2)
	for ; ; size *= 2 {
		w, err := shm.Create("", size)
		if err != nil {
			return nil, err
		}
		var full error
		for i := range o.services {
			if full = w.Put(syntheticService(i), ports[i]); full != nil {
				break
			}
		}
		if full == nil {
			w.SetReady(true)
			r := w.Reader()
			d.lookup = r.Lookup
			d.close = func() { r.Close(); w.Close() }
			d.what = fmt.Sprintf("synthetic table of %d MiB: %d services × %d port(s) × %d address(es)", size>>20, o.services, o.ports, o.addrs)
			return d, nil
		}
		w.Close()
		var fe *shm.FullError
		if !errors.As(full, &fe) || size > 1<<36 {
			return nil, full
		}
	}
}

// attachedData reads the keys of the live tables (every service × port,
// from the dump) and their nodes, for the baselines.
func attachedData(cfg *config.Config, shmDir string) (*benchData, error) {
	d, err := kdisc.Attach(shmDir, cfg, trustedUIDs()...)
	if err != nil {
		return nil, err
	}
	data := &benchData{values: map[string][]kdisc.Node{}, lookup: d.Nodes, close: func() { d.Close() }}
	for _, c := range d.Dump().Endpoints {
		prefix := ""
		if cfg.Multi {
			prefix = c.ID + "/"
		}
		for _, e := range c.Endpoints {
			var ports map[string]json.RawMessage
			if err := jsoniter.ConfigCompatibleWithStandardLibrary.Unmarshal([]byte(e.Value), &ports); err != nil {
				d.Close()
				return nil, fmt.Errorf("dump of %s: %v", e.Name, err)
			}
			for port := range ports {
				key := prefix + e.Name + ":" + port
				if nodes, ok := d.Nodes(nil, key); ok {
					data.keys = append(data.keys, key)
					data.values[key] = nodes
				}
			}
		}
	}
	if len(data.keys) == 0 {
		d.Close()
		why := ""
		if !d.Ready() {
			why = fmt.Sprintf(" (not ready: is `kdisc run` running with -shm-dir %s?)", shmDir)
		}
		return nil, errors.New("the tables hold no service" + why)
	}
	slices.Sort(data.keys)
	data.what = fmt.Sprintf("live tables under %s: %d keys (service × port)", shmDir, len(data.keys))
	return data, nil
}

// seqLen is the length of each goroutine's precomputed key sequence:
// drawing keys costs the same for every candidate and nothing in the loop.
const seqLen = 1 << 16

// keySequences draws, per goroutine, seqLen indexes into the keys.
// Zipf (s=1.1) ranks a random permutation of the keys, so the popular
// ones are spread over the table.
func keySequences(n int, o *benchOptions) [][]int32 {
	perm := rand.New(rand.NewPCG(1, 2)).Perm(n)
	seqs := make([][]int32, o.parallel)
	for g := range seqs {
		r := rand.New(rand.NewPCG(uint64(g)+1, 7919))
		var z *rand.Zipf
		if o.keys == "zipf" && n > 1 {
			z = rand.NewZipf(r, 1.1, 1, uint64(n-1))
		}
		s := make([]int32, seqLen)
		for i := range s {
			if z != nil {
				s[i] = int32(perm[z.Uint64()])
			} else {
				s[i] = int32(r.IntN(n))
			}
		}
		seqs[g] = s
	}
	return seqs
}

type rwMap struct {
	mu sync.RWMutex
	m  map[string][]kdisc.Node
}

func (m *rwMap) lookup(dst []kdisc.Node, k string) ([]kdisc.Node, bool) {
	m.mu.RLock()
	nodes, ok := m.m[k]
	dst = append(dst, nodes...)
	m.mu.RUnlock()
	return dst, ok
}

// Latency is sampled: in each batch of 64 lookups, one is timed on its own
// with two monotonic clock reads, and the cost of a clock read pair
// (the fastest of many back-to-back pairs, measured at start) is taken
// off. Throughput counts every lookup.
const batch = 64

var epoch = time.Now()

func clock() int64 { return int64(time.Since(epoch)) }

// clockCost is the least time between two back-to-back clock reads.
func clockCost() int64 {
	least := int64(1 << 62)
	for range 20000 {
		t0 := clock()
		least = min(least, clock()-t0)
	}
	return least
}

type benchResult struct {
	name          string
	ops, notFound uint64
	elapsed       time.Duration
	hist          histogram
	mallocs       uint64
}

// counter is one goroutine's lookup count, alone on its cache line.
type counter struct {
	n atomic.Uint64
	_ [56]byte
}

func runBench(name string, lookup lookupFunc, keys []string, seqs [][]int32, o *benchOptions, p *progress) benchResult {
	cost := clockCost()
	var (
		stop  atomic.Bool
		wg    sync.WaitGroup
		start = make(chan struct{})
	)
	counts := make([]counter, o.parallel)
	hists := make([]histogram, o.parallel)
	misses := make([]counter, o.parallel)
	for g := range o.parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seq, h := seqs[g], &hists[g]
			buf := make([]kdisc.Node, 0, 1024)
			var ok bool
			var n, miss uint64
			i := 0
			<-start
			// At least one batch: a goroutine the scheduler starts only
			// after the deadline (a loaded machine) still measures, so
			// the rates are never 0/0 (JSON cannot encode them).
			for first := true; first || !stop.Load(); first = false {
				for range batch - 1 {
					if buf, ok = lookup(buf[:0], keys[seq[i&(seqLen-1)]]); !ok {
						miss++
					}
					i++
				}
				t0 := clock()
				buf, ok = lookup(buf[:0], keys[seq[i&(seqLen-1)]])
				h.record(clock() - t0 - cost)
				if !ok {
					miss++
				}
				i++
				n += batch
				counts[g].n.Store(n)
			}
			misses[g].n.Store(miss)
		}()
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	// The run's clock starts here, after the GC: a deadline set before it
	// could pass during a slow GC on a busy machine, leaving no time to
	// look anything up.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	deadline := time.NewTimer(o.duration)
	defer deadline.Stop()
	begin := time.Now()
	close(start)
	p.begin(name)
wait:
	for {
		select {
		case <-tick.C:
			var n uint64
			for g := range counts {
				n += counts[g].n.Load()
			}
			p.show(time.Since(begin), n)
		case <-deadline.C:
			break wait
		}
	}
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(begin)
	runtime.ReadMemStats(&after)
	r := benchResult{name: name, elapsed: elapsed, mallocs: after.Mallocs - before.Mallocs}
	for g := range o.parallel {
		r.ops += counts[g].n.Load()
		r.notFound += misses[g].n.Load()
		r.hist.merge(&hists[g])
	}
	return r
}

// histogram is log-linear: exact below 64 ns, then 32 buckets per power
// of two (within about 3%), up to 2^45 ns; the maximum is exact.
type histogram struct {
	counts [64 + 40*32]uint64
	max    int64
	n      uint64
}

func bucket(v int64) int {
	if v < 64 {
		return int(max(v, 0))
	}
	shift := bits.Len64(uint64(v)) - 6 // v>>shift is in [32, 64)
	return min(64+(shift-1)*32+int(v>>shift)-32, 64+40*32-1)
}

// bucketValue is the middle of bucket b's range.
func bucketValue(b int) int64 {
	if b < 64 {
		return int64(b)
	}
	shift := (b-64)/32 + 1
	low := int64(32+(b-64)%32) << shift
	return low + (int64(1)<<shift)/2
}

func (h *histogram) record(v int64) {
	h.counts[bucket(v)]++
	h.max = max(h.max, v)
	h.n++
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.max = max(h.max, o.max)
	h.n += o.n
}

// quantile is the value at quantile q (0..1), never above the maximum.
func (h *histogram) quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n-1)) + 1
	if rank >= h.n {
		return h.max
	}
	var seen uint64
	for b, c := range h.counts {
		if seen += c; seen >= rank {
			return min(bucketValue(b), h.max)
		}
	}
	return h.max
}

// benchJSON is the contract's JSON shape.
type benchJSON struct {
	OpsPerSec   float64              `json:"ops_per_sec"`
	NsPerOp     float64              `json:"ns_per_op"`
	P50         int64                `json:"p50_ns"`
	P90         int64                `json:"p90_ns"`
	P99         int64                `json:"p99_ns"`
	P999        int64                `json:"p999_ns"`
	Max         int64                `json:"max_ns"`
	AllocsPerOp float64              `json:"allocs_per_op"`
	Lookups     uint64               `json:"lookups"`
	NotFound    uint64               `json:"not_found"`
	Baseline    map[string]benchJSON `json:"baseline,omitempty"`
}

func (r *benchResult) opsPerSec() float64 { return float64(r.ops) / r.elapsed.Seconds() }

// json is the result in the contract's shape. A candidate that completed
// no lookup has 0 for its per-lookup figures (JSON has no NaN or Inf).
func (r *benchResult) json() benchJSON {
	ops := r.opsPerSec()
	j := benchJSON{
		OpsPerSec: float64(int64(ops)),
		P50:       r.hist.quantile(0.50),
		P90:       r.hist.quantile(0.90),
		P99:       r.hist.quantile(0.99),
		P999:      r.hist.quantile(0.999),
		Max:       r.hist.max,
		Lookups:   r.ops,
		NotFound:  r.notFound,
	}
	if r.ops > 0 {
		j.NsPerOp = float64(int64(1e9/ops*100)) / 100
		j.AllocsPerOp = float64(r.mallocs) / float64(r.ops)
	}
	return j
}

func writeBenchText(w io.Writer, data *benchData, o *benchOptions, results []benchResult) {
	fmt.Fprintf(w, "kdisc bench: %s\n", data.what)
	fmt.Fprintf(w, "%d keys, %s, %d goroutines, %v per candidate\n\n", len(data.keys), o.keys, o.parallel, o.duration)
	fmt.Fprintf(w, "%-12s %14s %8s %7s %7s %7s %7s %9s %10s\n", "", "lookups/s", "ns/op", "p50", "p90", "p99", "p99.9", "max", "allocs/op")
	for _, r := range results {
		j := r.json()
		fmt.Fprintf(w, "%-12s %14s %8.2f %7d %7d %7d %7d %9d %10.3g\n", r.name, thousands(int64(j.OpsPerSec)), j.NsPerOp,
			j.P50, j.P90, j.P99, j.P999, j.Max, j.AllocsPerOp)
	}
	fmt.Fprintf(w, "\nns/op is 1 s / (lookups/s, all goroutines together). Latencies (ns) are of single lookups:\n"+
		"one in %d timed with two monotonic clock reads, their own cost taken off.\n", batch)
}

func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// progress is a line on stderr at most once a second: rewritten in place
// with \r on a terminal, a line each time otherwise.
type progress struct {
	w        io.Writer
	tty      bool
	duration time.Duration
	name     string
	buf      []byte
	shown    bool
}

func newProgress(w io.Writer, d time.Duration) *progress {
	p := &progress{w: w, duration: d, buf: make([]byte, 0, 128)}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) begin(name string) { p.name = name }

// show writes without allocating: it runs while allocations are counted.
func (p *progress) show(elapsed time.Duration, ops uint64) {
	b := p.buf[:0]
	if p.tty {
		b = append(b, '\r')
	}
	b = append(b, "kdisc bench: "...)
	b = append(b, p.name...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(elapsed.Round(time.Second).Seconds()), 10)
	b = append(b, "s/"...)
	b = strconv.AppendInt(b, int64(p.duration.Seconds()), 10)
	b = append(b, "s, "...)
	b = strconv.AppendFloat(b, float64(ops)/elapsed.Seconds()/1e6, 'f', 1, 64)
	b = append(b, "M lookups/s"...)
	if p.tty {
		b = append(b, "\x1b[K"...)
	} else {
		b = append(b, '\n')
	}
	_, _ = p.w.Write(b)
	p.buf, p.shown = b, true
}

// done clears the progress line on a terminal.
func (p *progress) done() {
	if p.tty && p.shown {
		_, _ = io.WriteString(p.w, "\r\x1b[K")
	}
}
