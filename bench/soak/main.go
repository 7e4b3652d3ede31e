// Command soak runs `kdisc run` for a long time against an in-process fake
// apiserver that changes Endpoints at a steady rate, with reader processes
// looking services up in the shared table, and samples the kdisc process
// (RSS, threads, open fds) and its table (bytes used, entries) into a CSV.
// At the end it says whether each series stayed flat. See README.md.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kdisc/kdisc/internal/fakeapi"
)

type options struct {
	duration, sample time.Duration
	rate, services   int
	readers          int
	csv, kdisc, dir  string
	sharedSize       string
	seed             uint64
}

func main() {
	var o options
	reader := flag.Bool("reader", false, "internal: run as a reader process of the table at -table")
	table := flag.String("table", "", "internal: the table a -reader process reads")
	flag.DurationVar(&o.duration, "duration", 30*time.Minute, "how long to run")
	flag.DurationVar(&o.sample, "sample", time.Minute, "sampling interval")
	flag.IntVar(&o.rate, "rate", 2000, "watch events per second")
	flag.IntVar(&o.services, "services", 10000, "Endpoints services")
	flag.IntVar(&o.readers, "readers", 2, "reader processes")
	flag.StringVar(&o.csv, "csv", "soak.csv", "CSV file of the samples")
	flag.StringVar(&o.kdisc, "kdisc", "", "kdisc binary (default: deploy/build.sh into the work dir)")
	flag.StringVar(&o.dir, "dir", "", "work dir: config, table, kdisc log (default: a new temp dir)")
	flag.StringVar(&o.sharedSize, "shared-size", "4m", "shared_size of the table")
	flag.Uint64Var(&o.seed, "seed", uint64(time.Now().UnixNano()), "seed of the event generator")
	flag.Parse()
	if *reader {
		os.Exit(runReader(*table, o.services))
	}
	// fakeapi wants a testing.TB: testing.Benchmark hands one to a plain
	// program. The soak runs once, inside it (it never returns early
	// enough for Benchmark to want a second run; once guards anyway).
	code := 2
	var once sync.Once
	testing.Benchmark(func(b *testing.B) {
		once.Do(func() { code = soak(b, o) })
	})
	os.Exit(code)
}

func soak(tb testing.TB, o options) int {
	if o.dir == "" {
		d, err := os.MkdirTemp("", "kdisc-soak-")
		if err != nil {
			return fail(err)
		}
		o.dir = d
	}
	fmt.Printf("soak: %v, %d events/s over %d services, %d readers, sample every %v, seed %d, dir %s\n",
		o.duration, o.rate, o.services, o.readers, o.sample, o.seed, o.dir)
	if o.kdisc == "" {
		o.kdisc = filepath.Join(o.dir, "kdisc")
		out, err := exec.Command("deploy/build.sh", o.kdisc).CombinedOutput() // as shipped, with its version
		if err != nil {
			return fail(fmt.Errorf("deploy/build.sh: %v\n%s", err, out))
		}
	}

	// The fake apiserver and the initial services.
	api := fakeapi.New(tb, fakeapi.WithToken("soak-token"))
	gen := newGenerator(api, o.services, o.seed)
	if err := gen.load(); err != nil {
		return fail(err)
	}

	// kdisc run.
	cfg := filepath.Join(o.dir, "config.yaml")
	err := os.WriteFile(cfg, fmt.Appendf(nil, "discovery:\n  kubernetes:\n    service: {schema: http, host: %s, port: %d}\n    client: {token: soak-token}\n    shared_size: %s\n",
		api.Host(), api.Port(), o.sharedSize), 0o600)
	if err != nil {
		return fail(err)
	}
	shmDir := filepath.Join(o.dir, "shm")
	control, err := freeAddr()
	if err != nil {
		return fail(err)
	}
	logf, err := os.Create(filepath.Join(o.dir, "kdisc.log"))
	if err != nil {
		return fail(err)
	}
	defer logf.Close()
	kd := exec.Command(o.kdisc, "run", "-config", cfg, "-shm-dir", shmDir, "-control", control)
	kd.Stdout, kd.Stderr = logf, logf
	kd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := kd.Start(); err != nil {
		return fail(err)
	}
	exited := make(chan struct{})
	go func() { _ = kd.Wait(); close(exited) }()
	defer func() {
		_ = kd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = kd.Process.Kill()
			<-exited
		}
	}()
	m := &metricsClient{url: "http://" + control + "/metrics"}
	ready := time.Now()
	for {
		if code, _ := httpGet("http://" + control + "/readyz"); code == http.StatusOK {
			break
		}
		select {
		case <-exited:
			return fail(fmt.Errorf("kdisc run exited; see %s", logf.Name()))
		case <-time.After(20 * time.Millisecond): // poll interval
		}
		if time.Since(ready) > time.Minute {
			return fail(errors.New("kdisc run not ready within a minute"))
		}
	}
	fmt.Printf("kdisc run (pid %d) ready %v after start; log %s\n", kd.Process.Pid, time.Since(ready).Round(time.Millisecond), logf.Name())

	// Readers.
	var readers []*readerProc
	for range o.readers {
		r, err := startReader(filepath.Join(shmDir, "kubernetes"), o.services)
		if err != nil {
			return fail(err)
		}
		readers = append(readers, r)
	}
	defer func() {
		for _, r := range readers {
			r.stop()
		}
	}()

	// Churn, sample, stop.
	out, err := os.Create(o.csv)
	if err != nil {
		return fail(err)
	}
	defer out.Close()
	w := csvWriter{w: out}
	w.header()
	interrupted := make(chan os.Signal, 1)
	signal.Notify(interrupted, os.Interrupt, syscall.SIGTERM)
	stopGen := make(chan struct{})
	genDone := make(chan struct{})
	go func() { gen.run(o.rate, stopGen); close(genDone) }()
	start := time.Now()
	var samples []sample
	take := func() error {
		s, err := takeSample(kd.Process.Pid, m, start, gen, readers)
		if err != nil {
			return err
		}
		w.row(&s)
		samples = append(samples, s)
		fmt.Printf("%6.0fs  events %9d (%5.0f/s)  rss %6d KiB  threads %3d  fds %3d  table %8d B %6d entries  lookups %11d  misses %9d\n",
			s.elapsed.Seconds(), s.generated, s.genRate, s.rssKB, s.threads, s.fds, s.tableUsed, s.entries, s.lookups, s.misses)
		return nil
	}
	if err := take(); err != nil {
		return fail(err)
	}
	tick := time.NewTicker(o.sample)
	defer tick.Stop()
	end := time.After(o.duration)
loop:
	for {
		select {
		case <-tick.C:
			if err := take(); err != nil {
				return fail(err)
			}
		case <-end:
			break loop
		case <-interrupted:
			fmt.Println("interrupted: summarising what was sampled")
			break loop
		case <-exited:
			return fail(fmt.Errorf("kdisc run exited during the soak; see %s", logf.Name()))
		}
	}
	if time.Since(start)-samples[len(samples)-1].elapsed > o.sample/10 {
		if err := take(); err != nil {
			return fail(err)
		}
	}
	close(stopGen)
	<-genDone
	for _, r := range readers {
		r.stop()
	}
	last := samples[len(samples)-1]
	fmt.Printf("\n%d events in %v (%.0f/s; kdisc applied %d); %d relists, %d watches, %d table-full; readers: %d lookups (%.0f/s), %d misses\n",
		last.generated, last.elapsed.Round(time.Second), float64(last.generated)/last.elapsed.Seconds(), last.applied,
		last.relists, last.watches, last.tableFull, last.lookups, float64(last.lookups)/last.elapsed.Seconds(), last.misses)
	if errs := readerErrors(readers); errs != "" {
		fmt.Printf("reader errors: %s\n", errs)
		return 1
	}
	if !verdict(os.Stdout, samples) {
		return 1
	}
	return 0
}

func fail(err error) int {
	fmt.Fprintln(os.Stderr, "soak:", err)
	return 2
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func httpGet(url string) (int, string) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// generator changes the fake apiserver's Endpoints: mostly MODIFIED (1 to
// 5 new addresses, so values change size and the table fragments), and a
// few services deleted and added back.
type generator struct {
	api      *fakeapi.Server
	services int
	rnd      *rand.Rand
	deleted  []bool
	n        atomic.Int64 // events written
	errs     atomic.Int64
}

func newGenerator(api *fakeapi.Server, services int, seed uint64) *generator {
	return &generator{api: api, services: services, rnd: rand.New(rand.NewPCG(seed, 0)), deleted: make([]bool, services)}
}

func svcName(i int) string { return fmt.Sprintf("svc-%05d", i) }

func (g *generator) endpoints(i int) *fakeapi.Endpoints {
	ips := make([]string, 1+g.rnd.IntN(5))
	for j := range ips {
		ips[j] = fmt.Sprintf("10.%d.%d.%d", g.rnd.IntN(256), g.rnd.IntN(256), 1+g.rnd.IntN(254))
	}
	return fakeapi.NewEndpoints("soak", svcName(i), "http", 8080, ips...)
}

func (g *generator) load() error {
	for i := range g.services {
		if _, err := g.api.TryPutEndpoints(g.endpoints(i)); err != nil {
			return err
		}
	}
	return nil
}

func (g *generator) event() {
	i := g.rnd.IntN(g.services)
	switch {
	case g.deleted[i]:
		g.deleted[i] = false
		if _, err := g.api.TryPutEndpoints(g.endpoints(i)); err != nil {
			g.errs.Add(1)
		}
	case g.rnd.IntN(100) == 0:
		g.deleted[i] = true
		g.api.DeleteEndpoints("soak", svcName(i))
	default:
		if _, err := g.api.TryPutEndpoints(g.endpoints(i)); err != nil {
			g.errs.Add(1)
		}
	}
	g.n.Add(1)
}

// run writes rate events a second until stop, in bursts every 10 ms, and
// trims the store's history every second to the last 10 s of events.
func (g *generator) run(rate int, stop <-chan struct{}) {
	const burst = 10 * time.Millisecond
	tick := time.NewTicker(burst)
	defer tick.Stop()
	start := time.Now()
	lastTrim := start
	var skipped int64 // events the schedule dropped: more than a second behind
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			due := int64(now.Sub(start).Seconds()*float64(rate)) - skipped
			if behind := due - g.n.Load(); behind > int64(rate) {
				skipped += behind - int64(rate)
				due -= behind - int64(rate)
			}
			for g.n.Load() < due {
				g.event()
			}
			if now.Sub(lastTrim) >= time.Second {
				g.api.TrimHistory(10 * rate)
				lastTrim = now
			}
		}
	}
}

// readerProc is a reader process: this program run with -reader.
type readerProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	mu     sync.Mutex
	latest readerReport
	stderr strings.Builder
	done   chan struct{}
	once   sync.Once
}

type readerReport struct {
	Lookups   int64  `json:"lookups"`
	Misses    int64  `json:"misses"`
	SlowestNs int64  `json:"slowest_ns"`
	Error     string `json:"error,omitempty"`
}

func startReader(table string, services int) (*readerProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	r := &readerProc{done: make(chan struct{})}
	r.cmd = exec.Command(exe, "-reader", "-table", table, "-services", strconv.Itoa(services))
	r.cmd.Stderr = &syncBuilder{b: &r.stderr, mu: &r.mu}
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if r.stdin, err = r.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := r.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := r.cmd.Start(); err != nil {
		return nil, err
	}
	first := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		n := 0
		for sc.Scan() {
			var rep readerReport
			if json.Unmarshal(sc.Bytes(), &rep) == nil {
				r.mu.Lock()
				r.latest = rep
				r.mu.Unlock()
				if n++; n == 1 {
					close(first)
				}
			}
		}
		_ = r.cmd.Wait()
		if n == 0 {
			close(first)
		}
		close(r.done)
	}()
	select {
	case <-first:
	case <-time.After(30 * time.Second):
		return nil, errors.New("reader process did not report")
	}
	return r, nil
}

func (r *readerProc) report() readerReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.latest
}

// stop closes the reader's stdin and waits for its last report.
func (r *readerProc) stop() {
	r.once.Do(func() {
		_ = r.stdin.Close()
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			_ = r.cmd.Process.Kill()
			<-r.done
		}
	})
}

func readerErrors(rs []*readerProc) string {
	var errs []string
	for i, r := range rs {
		rep := r.report()
		r.mu.Lock()
		stderr := r.stderr.String()
		r.mu.Unlock()
		if rep.Error != "" || stderr != "" {
			errs = append(errs, fmt.Sprintf("reader %d: %s %s", i, rep.Error, stderr))
		}
	}
	return strings.Join(errs, "; ")
}

type syncBuilder struct {
	b  *strings.Builder
	mu *sync.Mutex
}

func (s *syncBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// metricsClient reads kdisc's /metrics.
type metricsClient struct{ url string }

// get returns each sample's value, keyed by the metric name with its labels
// ("kdisc_table_entries{cluster=\"\"}").
func (m *metricsClient) get() (map[string]float64, error) {
	code, body := httpGet(m.url)
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %d %s", m.url, code, body)
	}
	out := map[string]float64{}
	for line := range strings.Lines(body) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, val, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(val, 64)
		if err == nil {
			out[name] = v
		}
	}
	return out, nil
}

// sum adds every sample of the metric name (all label sets).
func sum(ms map[string]float64, name string) float64 {
	var s float64
	for k, v := range ms {
		if k == name || strings.HasPrefix(k, name+"{") {
			s += v
		}
	}
	return s
}
