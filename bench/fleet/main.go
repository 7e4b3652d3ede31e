// Command fleet measures what a fleet of discovery clients costs the real
// kube-apiserver: K clients starting at once (a fleet restart), then a
// stream of EndpointSlice changes while they watch. See bench/RESULTS.md,
// "What a fleet costs the apiserver".
//
//	go run ./bench/fleet -kdisc BIN -informer BIN [-k 50] [-slices 10000]
//	    [-changes 1000] [-rate 100] [-clients kdisc-json,kdisc-protobuf,client-go-protobuf]
//	    [-watchlist=true] [-timeout 30m]
//
// It starts etcd and kube-apiserver v1.37.2 on loopback (internal/kubetest;
// the binaries come from testdata/kube/build.sh), creates -slices
// EndpointSlices (one per service, 3 ready endpoints, one port), and puts a
// counting TCP proxy in front of the apiserver: every client talks to the
// apiserver through it, so the bytes it relays from the apiserver are the
// bytes the fleet was sent (TLS records included). -watchlist=false starts
// the apiserver with --feature-gates=WatchList=false, so every client lists
// in pages (the apiserver refuses the streaming list; both kdisc and
// client-go then fall back to LIST pages).
//
// First it makes the changes with no client watching (what the writes
// alone cost). Then, for each client kind in -clients:
//
//   - start: K processes at once; the phase ends when all K are ready
//     (kdisc: its table says ready, read through kdisc.Attach; the
//     client-go informer: it prints "ready" once synced);
//   - changes: -changes merge-patches of one endpoint's address, round-robin
//     over the slices, at -rate per second, then one new EndpointSlice (the
//     sentinel); the phase ends when all K show the sentinel;
//   - the K processes are stopped (SIGTERM) before the next kind.
//
// Per phase it reports the apiserver's and etcd's CPU seconds
// (utime+stime of /proc/PID/stat), the apiserver's RSS before the phase and
// its peak during it (VmHWM of /proc/PID/status, reset at the phase's start
// through /proc/PID/clear_refs), the bytes the proxy relayed from the
// apiserver, and the wall time. On 2 shared cores the apiserver, etcd and
// the K clients share the CPU: CPU seconds are the figure to read, wall time
// is secondary.
//
// Client kinds: kdisc-json, kdisc-protobuf (kdisc run with content_type:
// json or protobuf), client-go-json, client-go-protobuf (bench/clientgo's
// informer, a shared EndpointSlice informer with a trivial handler; with
// -protobuf as kube-proxy configures it).
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kdisc/kdisc"
	"github.com/kdisc/kdisc/config"
	"github.com/kdisc/kdisc/internal/kubetest"
)

const namespace = "fleet"

func main() {
	kdiscBin := flag.String("kdisc", "", "kdisc binary (go build ./cmd/kdisc)")
	informerBin := flag.String("informer", "", "client-go informer binary (cd bench/clientgo && go build ./cmd/informer)")
	k := flag.Int("k", 50, "clients started at once")
	slices := flag.Int("slices", 10000, "EndpointSlices, one per service")
	changes := flag.Int("changes", 1000, "changes made while the clients watch")
	rate := flag.Float64("rate", 100, "changes per second")
	clients := flag.String("clients", "kdisc-json,kdisc-protobuf,client-go-protobuf", "client kinds, in order")
	watchList := flag.Bool("watchlist", true, "the apiserver serves streaming lists (false: every client lists in pages)")
	contentTypeKey := flag.Bool("content-type-key", true, "write content_type into kdisc's config (false for a kdisc that predates it; it speaks JSON)")
	out := flag.String("out", "", "folder for configs and logs (default: a new temporary folder, kept)")
	timeout := flag.Duration("timeout", 30*time.Minute, "bound on the whole run")
	flag.Parse()
	if err := run(*kdiscBin, *informerBin, *k, *slices, *changes, *rate, strings.Split(*clients, ","), *watchList, *contentTypeKey, *out, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().UTC().Format("15:04:05 ")+format+"\n", args...)
}

func run(kdiscBin, informerBin string, k, slices, changes int, rate float64, kinds []string, watchList, contentTypeKey bool, out string, timeout time.Duration) error {
	for _, kind := range kinds {
		switch kind {
		case "kdisc-json", "kdisc-protobuf":
			if kdiscBin == "" {
				return errors.New("-kdisc is needed for " + kind)
			}
			if kind == "kdisc-protobuf" && !contentTypeKey {
				return errors.New("kdisc-protobuf needs content_type (-content-type-key)")
			}
		case "client-go-json", "client-go-protobuf":
			if informerBin == "" {
				return errors.New("-informer is needed for " + kind)
			}
		default:
			return fmt.Errorf("unknown client kind %q", kind)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if out == "" {
		var err error
		if out, err = os.MkdirTemp("", "kdisc-fleet-"); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	logf("output in %s; load: %s", out, loadavg())

	var args []string
	if !watchList {
		args = append(args, "--feature-gates=WatchList=false")
	}
	c, err := kubetest.Start(ctx, kubetest.Options{APIServerArgs: args, Logf: func(f string, a ...any) { logf(f, a...) }})
	if err != nil {
		return err
	}
	defer c.Stop()
	if err := c.CreateNamespace(ctx, namespace); err != nil {
		return err
	}
	begin := time.Now()
	if err := kubetest.ForEach(ctx, slices, 8, func(ctx context.Context, i int) error {
		_, err := c.ApplyEndpointSlice(ctx, namespace, slice(i, 0))
		return err
	}); err != nil {
		return err
	}
	logf("%d EndpointSlices created in %v", slices, time.Since(begin).Round(time.Millisecond))

	px, err := newProxy(fmt.Sprintf("%s:%d", c.Host, c.Port))
	if err != nil {
		return err
	}
	defer px.Close()
	f := &fleet{c: c, px: px, out: out, kdisc: kdiscBin, informer: informerBin, contentTypeKey: contentTypeKey, slices: slices, version: make([]int, slices)}

	var rows []row
	// What the writes alone cost, no client watching.
	if err := settle(ctx); err != nil {
		return err
	}
	m := f.begin()
	if err := f.change(ctx, changes, rate, 0); err != nil {
		return err
	}
	rows = append(rows, row{kind: "none", k: 0, changes: f.end(m)})
	logf("no watcher: %s", rows[0].changes)

	for round, kind := range kinds {
		if err := settle(ctx); err != nil {
			return err
		}
		r, err := f.measure(ctx, kind, k, changes, rate, round+1)
		if err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
		rows = append(rows, r)
	}
	fmt.Printf("kube-apiserver v1.37.2 + etcd on loopback; %d EndpointSlices; K = %d; %d changes at %g/s (%d tried again); streaming lists served: %v; load at the end: %s\n\n",
		slices, k, changes, rate, f.retries.Load(), watchList, loadavg())
	report(os.Stdout, rows)
	return nil
}

// wait waits d, or less when ctx ends first (then its error).
func wait(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// settle waits a few seconds so that one phase's tail (the apiserver
// closing watches, its GC) is not charged to the next.
func settle(ctx context.Context) error { return wait(ctx, 5*time.Second) }

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// slice is EndpointSlice i at its version gen: 3 ready endpoints whose
// addresses move with gen (versions next to each other differ) and port
// http 8080.
func slice(i, gen int) kubetest.EndpointSlice {
	eps := make([]kubetest.SliceEndpoint, 3)
	for a := range eps {
		eps[a] = kubetest.SliceEndpoint{
			Addresses:  []string{fmt.Sprintf("10.%d.%d.%d", i/250%250, i%250, a+1+gen%80*3)},
			Conditions: &kubetest.EndpointConditions{Ready: kubetest.Ptr(true), Serving: kubetest.Ptr(true), Terminating: kubetest.Ptr(false)},
			NodeName:   kubetest.Ptr(fmt.Sprintf("node-%d", (i+a)%100)),
			Zone:       kubetest.Ptr(fmt.Sprintf("zone-%c", 'a'+a)),
		}
	}
	return kubetest.EndpointSlice{
		Name:      fmt.Sprintf("svc-%d-abcde", i),
		Service:   fmt.Sprintf("svc-%d", i),
		Endpoints: eps,
		Ports:     []kubetest.SlicePort{kubetest.Port("http", 8080)},
	}
}

type fleet struct {
	c               *kubetest.Cluster
	px              *proxy
	out             string
	kdisc, informer string
	contentTypeKey  bool
	slices          int          // EndpointSlices
	version         []int        // of each slice: a change moves it on
	retries         atomic.Int64 // changes tried again
}

// mark is the counters at a phase's start.
type mark struct {
	at              time.Time
	apiCPU, etcdCPU float64
	bytes           int64
	rssBefore       int64
	apiPID, etcdPID int
	metrics         served
}

// served is what the apiserver's own metrics say it sent of EndpointSlices:
// watch events (a streaming list's initial events included) and their
// bytes, and the bytes of LIST responses, all before any compression.
type served struct{ events, eventBytes, listBytes float64 }

// scrape reads served from /metrics (as the admin).
func (f *fleet) scrape(ctx context.Context) served {
	b, code, err := f.c.Do(ctx, http.MethodGet, "/metrics", nil)
	if err != nil || code != http.StatusOK {
		logf("metrics: %d %v", code, err)
		return served{}
	}
	var s served
	for line := range strings.Lines(string(b)) {
		if !strings.Contains(line, `resource="endpointslices"`) {
			continue
		}
		sp := strings.LastIndexByte(strings.TrimSpace(line), ' ')
		v, _ := strconv.ParseFloat(strings.TrimSpace(line)[sp+1:], 64)
		switch {
		case strings.HasPrefix(line, "apiserver_watch_events_total{"):
			s.events += v
		case strings.HasPrefix(line, "apiserver_watch_events_sizes_sum{"):
			s.eventBytes += v
		case strings.HasPrefix(line, "apiserver_response_sizes_sum{") && strings.Contains(line, `verb="LIST"`):
			s.listBytes += v
		}
	}
	return s
}

// phase is what one phase cost.
type phase struct {
	wall, apiCPU, etcdCPU float64
	bytes                 int64
	rssBefore, rssPeak    int64 // kB
	served                served
}

func (p phase) String() string {
	return fmt.Sprintf("wall %.1f s, apiserver %.2f CPU-s, etcd %.2f CPU-s, %.3f MB sent, apiserver RSS %d → peak %d MB; metrics: %.0f watch events, %.1f MB, LIST %.1f MB",
		p.wall, p.apiCPU, p.etcdCPU, float64(p.bytes)/1e6, p.rssBefore/1024, p.rssPeak/1024,
		p.served.events, p.served.eventBytes/1e6, p.served.listBytes/1e6)
}

func (f *fleet) begin() mark {
	m := mark{apiPID: f.c.PID(), etcdPID: f.c.EtcdPID(), metrics: f.scrape(context.Background())}
	m.rssBefore = status(m.apiPID, "VmRSS:")
	// Reset the peak RSS to the current RSS (proc(5), clear_refs "5").
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", m.apiPID), []byte("5"), 0)
	m.apiCPU, m.etcdCPU = cpuSeconds(m.apiPID), cpuSeconds(m.etcdPID)
	m.bytes = f.px.sent.Load()
	m.at = time.Now()
	return m
}

func (f *fleet) end(m mark) phase {
	s := f.scrape(context.Background())
	return phase{
		served:    served{s.events - m.metrics.events, s.eventBytes - m.metrics.eventBytes, s.listBytes - m.metrics.listBytes},
		wall:      time.Since(m.at).Seconds(),
		apiCPU:    cpuSeconds(m.apiPID) - m.apiCPU,
		etcdCPU:   cpuSeconds(m.etcdPID) - m.etcdCPU,
		bytes:     f.px.sent.Load() - m.bytes,
		rssBefore: m.rssBefore,
		rssPeak:   status(m.apiPID, "VmHWM:"),
	}
}

// cpuSeconds is utime+stime of pid, from /proc/PID/stat.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command may hold spaces: the fields start after its ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ, 100 on Linux
}

// status is a "kB" field of /proc/PID/status.
func status(pid int, key string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, key); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// change makes n merge-patches at rate per second, each moving the
// addresses of one slice (round-robin), then, when sentinel > 0, creates
// the sentinel slice of that round.
func (f *fleet) change(ctx context.Context, n int, rate float64, sentinel int) error {
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	for i := range n {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		f.version[i%f.slices]++
		s := slice(i%f.slices, f.version[i%f.slices])
		wg.Go(func() {
			patch := map[string]any{"endpoints": s.Endpoints}
			path := "/apis/discovery.k8s.io/v1/namespaces/" + namespace + "/endpointslices/" + s.Name
			var err error
			// An apiserver this loaded resets a stream now and then
			// (HTTP/2 INTERNAL_ERROR): try a change up to 3 times.
			for range 3 {
				var b []byte
				var code int
				b, code, err = f.c.Do(ctx, http.MethodPatch, path, patch)
				if err == nil && code != http.StatusOK {
					err = fmt.Errorf("PATCH %s: %d %s", path, code, b)
				}
				if err == nil || ctx.Err() != nil {
					break
				}
				f.retries.Add(1)
			}
			if err != nil {
				failed.CompareAndSwap(nil, &err)
			}
		})
	}
	wg.Wait()
	if p := failed.Load(); p != nil {
		return *p
	}
	if sentinel > 0 {
		s := slice(0, 0)
		s.Name, s.Service = sentinelName(sentinel)+"-abcde", sentinelName(sentinel)
		if _, err := f.c.ApplyEndpointSlice(ctx, namespace, s); err != nil {
			return err
		}
	}
	return nil
}

func sentinelName(round int) string { return "sentinel-" + strconv.Itoa(round) }

type row struct {
	kind           string
	k              int
	start, changes phase
}

// measure runs one client kind: start K, all ready; changes, all see the
// sentinel; stop.
func (f *fleet) measure(ctx context.Context, kind string, k, changes int, rate float64, round int) (row, error) {
	r := row{kind: kind, k: k}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m := f.begin()
	procs := make([]*client, k)
	for i := range procs {
		c, err := f.startClient(ctx, kind, i, round)
		if err != nil {
			return r, err
		}
		procs[i] = c
		defer c.stop()
	}
	for _, c := range procs {
		if err := c.waitReady(ctx); err != nil {
			return r, err
		}
	}
	r.start = f.end(m)
	logf("%s: %d started, all ready: %s", kind, k, r.start)

	m = f.begin()
	if err := f.change(ctx, changes, rate, round); err != nil {
		return r, err
	}
	for _, c := range procs {
		if err := c.waitSentinel(ctx); err != nil {
			return r, err
		}
	}
	r.changes = f.end(m)
	logf("%s: %d changes, all saw the sentinel: %s", kind, changes, r.changes)
	return r, nil
}

// client is one kdisc or informer process.
type client struct {
	cmd      *exec.Cmd
	ready    func(context.Context) error
	sentinel func(context.Context) error
	cleanup  func()
}

func (c *client) waitReady(ctx context.Context) error    { return c.ready(ctx) }
func (c *client) waitSentinel(ctx context.Context) error { return c.sentinel(ctx) }

func (c *client) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
	if c.cleanup != nil {
		c.cleanup()
	}
}

func (f *fleet) startClient(ctx context.Context, kind string, i, round int) (*client, error) {
	logFile, err := os.Create(filepath.Join(f.out, fmt.Sprintf("%s-%d.log", kind, i)))
	if err != nil {
		return nil, err
	}
	url := "https://" + f.px.Addr()
	if strings.HasPrefix(kind, "client-go") {
		args := []string{"-url", url, "-resource", "endpointslices", "-ca", f.c.CAFile, "-token-file", f.c.DiscoveryTokenFile,
			"-sentinel", namespace + "/" + sentinelName(round)}
		if kind == "client-go-protobuf" {
			args = append(args, "-protobuf")
		}
		cmd := exec.Command(f.informer, args...)
		cmd.Stderr = logFile
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		lines := make(chan string, 4)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- strings.TrimSpace(sc.Text())
			}
			close(lines)
		}()
		want := func(what string) func(context.Context) error {
			return func(ctx context.Context) error {
				for {
					select {
					case l, ok := <-lines:
						if !ok {
							return fmt.Errorf("informer %d ended before %q (see its log)", i, what)
						}
						if l == what {
							return nil
						}
					case <-ctx.Done():
						return ctx.Err()
					}
				}
			}
		}
		return &client{cmd: cmd, ready: want("ready"), sentinel: want("sentinel"), cleanup: func() { logFile.Close() }}, nil
	}

	host, port, _ := net.SplitHostPort(f.px.Addr())
	ct := ""
	if f.contentTypeKey {
		ct = "content_type: " + strings.TrimPrefix(kind, "kdisc-") + "\n"
	}
	cfgText := fmt.Sprintf("discovery:\n  kubernetes:\n"+kubetest.Indent(`service:
  schema: https
  host: %s
  port: %s
  ca_file: %s
client:
  token_file: %s
shared_size: 8m
watch_endpoint_slices: true
%s`, "    "), host, port, f.c.CAFile, f.c.DiscoveryTokenFile, ct)
	cfgFile := filepath.Join(f.out, fmt.Sprintf("%s-%d.yaml", kind, i))
	if err := os.WriteFile(cfgFile, []byte(cfgText), 0o644); err != nil {
		return nil, err
	}
	// This process reads the table with the config as this checkout knows
	// it (a kdisc binary from a newer branch may know more keys; the
	// table's name and layout do not depend on content_type).
	own := cfgText
	if ct != "" {
		own = strings.Replace(cfgText, "    "+ct, "", 1)
	}
	cfg, err := config.Parse([]byte(own))
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("/dev/shm", "kdisc-fleet-")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(f.kdisc, "run", "-config", cfgFile, "-shm-dir", dir, "-control", "127.0.0.1:0")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	var d *kdisc.Discovery
	attach := func(ctx context.Context) error {
		path := filepath.Join(dir, cfg.Clusters[0].TableName())
		for d == nil {
			if _, err := os.Stat(path); err == nil {
				if d, err = kdisc.Attach(dir, cfg); err != nil {
					return err
				}
				break
			}
			if err := pause(ctx); err != nil {
				return err
			}
		}
		return nil
	}
	ready := func(ctx context.Context) error {
		if err := attach(ctx); err != nil {
			return err
		}
		for !d.Ready() {
			if err := pause(ctx); err != nil {
				return err
			}
		}
		return nil
	}
	query := namespace + "/" + sentinelName(round) + ":http"
	sentinel := func(ctx context.Context) error {
		if err := attach(ctx); err != nil {
			return err
		}
		buf := make([]kdisc.Node, 0, 4)
		for {
			if _, ok := d.Nodes(buf[:0], query); ok {
				return nil
			}
			if err := pause(ctx); err != nil {
				return err
			}
		}
	}
	return &client{cmd: cmd, ready: ready, sentinel: sentinel, cleanup: func() {
		if d != nil {
			d.Close()
		}
		os.RemoveAll(dir)
		logFile.Close()
	}}, nil
}

// pause waits 5 ms (50 clients polled: the poll must stay cheap).
func pause(ctx context.Context) error { return wait(ctx, 5*time.Millisecond) }

// proxy relays TCP connections to the apiserver and counts the bytes it
// relays from the apiserver.
type proxy struct {
	ln   net.Listener
	to   string
	sent atomic.Int64
}

func newProxy(to string) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{ln: ln, to: to}
	go p.serve()
	return p, nil
}

func (p *proxy) Addr() string { return p.ln.Addr().String() }
func (p *proxy) Close()       { p.ln.Close() }

func (p *proxy) serve() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer in.Close()
			up, err := net.Dial("tcp", p.to)
			if err != nil {
				return
			}
			defer up.Close()
			go func() {
				_, _ = io.Copy(up, in)
				up.(*net.TCPConn).CloseWrite()
			}()
			_, _ = io.Copy(countingWriter{in, &p.sent}, up)
		}()
	}
}

type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n.Add(int64(n))
	return n, err
}

func report(w io.Writer, rows []row) {
	fmt.Fprintln(w, "| clients | phase | wall, s | apiserver CPU-s | per client, ms | etcd CPU-s | sent on the wire, MB | per client, MB | encoded (metrics): watch events, MB; LIST, MB | apiserver RSS before → peak, MB |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
	for _, r := range rows {
		line := func(name string, p phase, k int) {
			per, perMB := "—", "—"
			if k > 0 {
				per = fmt.Sprintf("%.0f", p.apiCPU*1000/float64(k))
				perMB = fmt.Sprintf("%.2f", float64(p.bytes)/1e6/float64(k))
			}
			fmt.Fprintf(w, "| %s | %s | %.1f | %.2f | %s | %.2f | %.1f | %s | %.0f, %.1f; %.1f | %d → %d |\n",
				r.label(), name, p.wall, p.apiCPU, per, p.etcdCPU, float64(p.bytes)/1e6, perMB,
				p.served.events, p.served.eventBytes/1e6, p.served.listBytes/1e6, p.rssBefore/1024, p.rssPeak/1024)
		}
		if r.k > 0 {
			line("start, all ready", r.start, r.k)
		}
		line("changes, all saw the last", r.changes, r.k)
	}
}

func (r row) label() string {
	if r.k == 0 {
		return "no client watching"
	}
	return fmt.Sprintf("%d × %s", r.k, r.kind)
}
