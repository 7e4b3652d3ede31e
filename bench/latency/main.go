// Command latency measures event → visible latency across processes: how
// long after the apiserver writes a watch event a reader in another
// process sees its result in kdisc's shared-memory table.
//
//	go run ./bench/latency [-rates 1000,10000] [-duration 5s] [-kdisc PATH] [-poll 0] [-procs 1]
//
// For each rate R it serves a replay apiserver (internal/replay) in this
// process: one Endpoints object, then R MODIFIED events per second for the
// duration, each written and flushed on its own on a fixed schedule, its
// send time (after the flush) recorded. It runs `kdisc run` as a separate
// process against it (built static from this checkout unless -kdisc is
// given), and reads the table from this process with kdisc.Attach and
// Lookup in a loop: spinning by default, yielding with runtime.Gosched,
// with this process held to -procs cores (default 1, so that on a 2-core
// machine the reader and the server leave the other core to kdisc); -poll
// D sleeps D between lookups instead, which adds Go's timer slack (about
// a millisecond) to every figure. Every event changes the object's
// addresses: the third octet is the event's sequence number mod 250, so
// the reader knows which event it sees. Event i is visible once the table
// shows event i or a later one (kdisc may apply several events before
// readers look); its latency is that time minus its send time. Both times
// are this process's monotonic clock. A lag of 250 events or more makes
// the sequence number ambiguous; such observations are counted and
// reported, and take the oldest candidate (which overstates the latency).
//
// It prints, per rate, the events sent and seen and the latency p50, p90,
// p99, p99.9 and max from the server's write to the reader's view; and
// kdisc's own share, from reading the event off its socket to the change
// being in the table (its kdisc_event_apply_seconds histogram, read from
// its control API at the end: bucket bounds, so "at most").
package main

import (
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
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kdisc/kdisc"
	"github.com/kdisc/kdisc/config"
	"github.com/kdisc/kdisc/internal/replay"
)

const service = "team-0/service-0:http" // replay's service 0

func main() {
	rates := flag.String("rates", "1000,10000", "comma-separated event rates (events/s)")
	duration := flag.Duration("duration", 5*time.Second, "how long events are sent at each rate")
	bin := flag.String("kdisc", "", "kdisc binary (default: deploy/build.sh of this checkout)")
	poll := flag.Duration("poll", 0, "reader: sleep between lookups (0: spin, yielding with runtime.Gosched)")
	procs := flag.Int("procs", 1, "GOMAXPROCS of this process (the reader and the replay server); kdisc keeps its own")
	flag.Parse()
	// On a 2-core machine a spinning reader and the paced server on one
	// core leave the other to kdisc; on two they would take kdisc's.
	runtime.GOMAXPROCS(*procs)
	if err := run(*rates, *duration, *bin, *poll); err != nil {
		fmt.Fprintln(os.Stderr, "latency:", err)
		os.Exit(1)
	}
}

func run(rates string, duration time.Duration, bin string, poll time.Duration) error {
	tmp, err := os.MkdirTemp("", "kdisc-latency-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if bin == "" {
		bin = filepath.Join(tmp, "kdisc")
		build := exec.Command("deploy/build.sh", bin) // static, as shipped, with its version
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building kdisc: %w", err)
		}
	}
	fmt.Printf("%-8s %8s %8s %9s %9s %9s %9s %9s %9s   %s\n", "rate/s", "sent", "seen", "p50", "p90", "p99", "p99.9", "max", "ambiguous", "kdisc's own receive→visible (kdisc_event_apply_seconds), p50 / p99 / p99.9 at most")
	for _, r := range strings.Split(rates, ",") {
		rate, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || rate <= 0 {
			return fmt.Errorf("-rates: %q", r)
		}
		res, err := measure(tmp, bin, rate, duration, poll)
		if err != nil {
			return fmt.Errorf("rate %d: %w", rate, err)
		}
		fmt.Println(res)
	}
	return nil
}

type result struct {
	rate, sent, seen, ambiguous int
	lat                         []time.Duration
	own                         string // kdisc's own share, from its metrics
}

func (r result) String() string {
	slices.Sort(r.lat)
	q := func(p float64) string {
		if len(r.lat) == 0 {
			return "-"
		}
		return r.lat[min(len(r.lat)-1, int(p*float64(len(r.lat))))].Round(time.Microsecond).String()
	}
	return fmt.Sprintf("%-8d %8d %8d %9s %9s %9s %9s %9s %9d   %s", r.rate, r.sent, r.seen, q(0.50), q(0.90), q(0.99), q(0.999), q(1), r.ambiguous, r.own)
}

func measure(tmp, bin string, rate int, duration time.Duration, poll time.Duration) (result, error) {
	events := int(float64(rate) * duration.Seconds())
	sent := make([]atomic.Int64, events+1) // UnixNano-free: ns since base, monotonic
	base := time.Now()
	var nSent atomic.Int64
	gate := make(chan struct{})
	srv := replay.New(replay.Options{Services: 1, Events: events, Addrs: 3, Rate: float64(rate), Gate: gate,
		Sent: func(i int, at time.Time) {
			if i < events && sent[i].Load() == 0 {
				sent[i].Store(int64(at.Sub(base)) + 1) // +1: 0 means not sent
				nSent.Store(int64(i + 1))
			}
		}})
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return result{}, err
	}
	hs := &http.Server{Handler: srv}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()

	port := ln.Addr().(*net.TCPAddr).Port
	dir := filepath.Join(tmp, "shm-"+strconv.Itoa(rate))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return result{}, err
	}
	cfgFile := filepath.Join(tmp, "config.yaml")
	yaml := fmt.Sprintf("discovery:\n  kubernetes:\n    service: {schema: http, host: 127.0.0.1, port: %d}\n    client: {token: bench}\n", port)
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		return result{}, err
	}
	cfg, err := config.Load(cfgFile)
	if err != nil {
		return result{}, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	control, err := freePort()
	if err != nil {
		return result{}, err
	}
	cmd := exec.CommandContext(ctx, bin, "run", "-config", cfgFile, "-shm-dir", dir, "-control", control)
	logFile, err := os.Create(filepath.Join(tmp, "kdisc-"+strconv.Itoa(rate)+".log"))
	if err != nil {
		return result{}, err
	}
	defer logFile.Close()
	cmd.Stderr = logFile
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	defer cmd.Wait()
	defer cancel()

	d, err := kdisc.Attach(dir, cfg)
	if err != nil {
		return result{}, err
	}
	defer d.Close()
	buf := make([]kdisc.Node, 0, 8)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if nodes, ok := d.Nodes(buf[:0], service); ok && d.Ready() && len(nodes) > 0 {
			break
		}
		if time.Now().After(deadline) {
			return result{}, errors.New("kdisc run did not list the replay in 30 s; see its log in " + tmp)
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // the watch is open: kdisc idles on it
	close(gate)

	// Event i's addresses carry (1+i) mod 250 in their third octet (replay's
	// seed for event i of service 0 is 1+i). The table starts at the LIST's
	// object (seed 0).
	visible := make([]int64, events) // ns since base, +1; 0: not yet
	next := 0                        // first event not yet seen
	res := result{rate: rate}
	last := byte(0)
	end := time.Now().Add(duration + 10*time.Second)
	for next < events && time.Now().Before(end) {
		nodes, ok := d.Nodes(buf[:0], service)
		now := int64(time.Since(base)) + 1
		if ok && len(nodes) > 0 && nodes[0].Addr.Is4() {
			if oct := nodes[0].Addr.As4()[2]; oct != last {
				last = oct
				// The first j >= next with (1+j) % 250 == oct.
				j := next + ((int(oct)-(1+next)%250)+250)%250
				if j < events {
					if int64(j+250) < nSent.Load() { // j+250 was sent too: either could be on screen
						res.ambiguous++
					}
					for ; next <= j; next++ {
						visible[next] = now
					}
				}
			}
		}
		if poll > 0 {
			time.Sleep(poll)
		} else {
			runtime.Gosched()
		}
	}
	res.sent = int(nSent.Load())
	res.own = ownLatency(control)
	for i := range events {
		if s := sent[i].Load(); s != 0 && visible[i] != 0 {
			res.seen++
			res.lat = append(res.lat, time.Duration(visible[i]-s))
		}
	}
	return res, nil
}

// freePort returns a loopback address nothing listens on now.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// ownLatency reads kdisc's kdisc_event_apply_seconds histogram (from
// reading an event off the stream to its change being in the table) from
// its control API: the bucket bounds under which 50%, 99% and 99.9% of
// the events fell.
func ownLatency(control string) string {
	resp, err := http.Get("http://" + control + "/metrics")
	if err != nil {
		return "unavailable: " + err.Error()
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "unavailable: " + err.Error()
	}
	type bucket struct {
		le    float64
		count float64
	}
	var bs []bucket
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, "kdisc_event_apply_seconds_bucket{") {
			continue
		}
		_, rest, ok1 := strings.Cut(line, `le="`)
		le, _, ok2 := strings.Cut(rest, `"`)
		j := strings.LastIndexByte(line, ' ')
		if !ok1 || !ok2 || j < 0 {
			continue
		}
		bound, err1 := strconv.ParseFloat(le, 64)
		n, err2 := strconv.ParseFloat(line[j+1:], 64)
		if err1 == nil && err2 == nil {
			bs = append(bs, bucket{bound, n})
		}
	}
	if len(bs) == 0 || bs[len(bs)-1].count == 0 {
		return "no events in kdisc_event_apply_seconds"
	}
	total := bs[len(bs)-1].count
	at := func(q float64) string {
		for _, b := range bs {
			if b.count >= q*total {
				return (time.Duration(b.le * float64(time.Second))).String()
			}
		}
		return "-"
	}
	return at(0.5) + " / " + at(0.99) + " / " + at(0.999)
}
