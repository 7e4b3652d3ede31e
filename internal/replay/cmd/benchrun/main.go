// Command benchrun measures one client process against a replay
// apiserver, and renders the comparison table of bench/compare.sh.
//
//	benchrun measure [-config FILE -shm-dir DIR] [-sentinel SERVICE] -- COMMAND ARGS...
//	benchrun report RESULTS.tsv
//
// measure starts COMMAND and times, from just before it starts:
//
//   - ready: with -config (COMMAND is `kdisc run` with that config and
//     shm dir), when the table says it finished its first full list; read
//     from another process through kdisc.Attach, polled every millisecond
//     (a header load and one lookup per poll: nothing kdisc waits on).
//     Without -config, when COMMAND prints a line "ready" on stdout.
//   - sentinel: when the sentinel service is found (kdisc.Attach polled as
//     above), or when COMMAND prints a line "sentinel".
//   - peak RSS: VmHWM of /proc/PID/status, read once the sentinel is seen
//     (the high-water mark: the peak over the whole run).
//   - CPU: user+system time of COMMAND, after it exits on SIGTERM.
//
// It prints one JSON line: ready_ms, sentinel_ms, peak_rss_kb, cpu_ms.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kdisc/kdisc"
	"github.com/kdisc/kdisc/config"
	"github.com/kdisc/kdisc/internal/replay"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchrun measure [-config FILE -shm-dir DIR] [-sentinel S] -- COMMAND...\n       benchrun report RESULTS.tsv")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "measure":
		err = measure(os.Args[2:], os.Stdout)
	case "report":
		if len(os.Args) != 3 {
			err = errors.New("report: want one RESULTS.tsv")
			break
		}
		var f *os.File
		if f, err = os.Open(os.Args[2]); err == nil {
			err = report(f, os.Stdout)
			f.Close()
		}
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchrun:", err)
		os.Exit(1)
	}
}

// Result is one measured run.
type Result struct {
	ReadyMs    float64 `json:"ready_ms"`
	SentinelMs float64 `json:"sentinel_ms"`
	PeakRSSKB  int64   `json:"peak_rss_kb"`
	CPUMs      float64 `json:"cpu_ms"`
}

func measure(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("benchrun measure", flag.ContinueOnError)
	cfgFile := fs.String("config", "", "kdisc config of the `kdisc run` COMMAND: watch its table")
	shmDir := fs.String("shm-dir", "", "shm dir of the `kdisc run` COMMAND")
	sentinel := fs.String("sentinel", replay.Sentinel, "the service that shows the replay was applied")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("measure: no COMMAND after --")
	}
	var cfg *config.Config
	if *cfgFile != "" {
		var err error
		if cfg, err = config.Load(*cfgFile); err != nil {
			return err
		}
		if *shmDir == "" || cfg.Multi {
			return errors.New("measure: -config needs -shm-dir, and a single-cluster config")
		}
	}

	cmd := exec.Command(fs.Arg(0), fs.Args()[1:]...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var lines *bufio.Scanner
	if cfg == nil {
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		lines = bufio.NewScanner(out)
	} else {
		cmd.Stdout = os.Stderr
	}
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	var res Result
	var err error
	if cfg == nil {
		go func() {
			// Wait must not run before the pipe is drained; read on.
			res.ReadyMs, res.SentinelMs, err = fromLines(lines, begin)
			exited <- err
		}()
		select {
		case err = <-exited:
		case <-time.After(*timeout):
			err = errors.New("timed out")
		}
	} else {
		res.ReadyMs, res.SentinelMs, err = fromTable(cfg, *shmDir, *sentinel, begin, *timeout)
	}
	if err == nil {
		res.PeakRSSKB, err = vmHWM(cmd.Process.Pid)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	wait := make(chan error, 1)
	go func() { wait <- cmd.Wait() }()
	select {
	case <-wait:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-wait
	}
	if err != nil {
		return err
	}
	if ps := cmd.ProcessState; ps != nil {
		res.CPUMs = float64(ps.UserTime()+ps.SystemTime()) / float64(time.Millisecond)
	}
	return json.NewEncoder(stdout).Encode(res)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// fromLines reads COMMAND's stdout for "ready" and "sentinel" lines, then
// drains it.
func fromLines(sc *bufio.Scanner, begin time.Time) (ready, sentinel float64, err error) {
	for sc.Scan() {
		now := time.Since(begin)
		switch strings.TrimSpace(sc.Text()) {
		case "ready":
			ready = ms(now)
		case "sentinel":
			sentinel = ms(now)
			if ready == 0 {
				return 0, 0, errors.New("sentinel before ready")
			}
			go func() {
				for sc.Scan() {
				}
			}()
			return ready, sentinel, nil
		}
	}
	return 0, 0, fmt.Errorf("COMMAND ended its output before the sentinel: %v", sc.Err())
}

// fromTable polls kdisc's table from this process, as a proxy reads it.
func fromTable(cfg *config.Config, shmDir, sentinel string, begin time.Time, timeout time.Duration) (ready, seen float64, err error) {
	deadline := begin.Add(timeout)
	// Attach finds a table created after it only on its next periodic
	// check (every 500 ms): wait for the file, then attach.
	path := filepath.Join(shmDir, cfg.Clusters[0].TableName())
	for {
		if _, err := os.Stat(path); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("no table at %s", path)
		}
		time.Sleep(time.Millisecond)
	}
	d, err := kdisc.Attach(shmDir, cfg)
	if err != nil {
		return 0, 0, err
	}
	defer d.Close()
	buf := make([]kdisc.Node, 0, 16)
	for {
		if ready == 0 && d.Ready() {
			ready = ms(time.Since(begin))
		}
		if _, ok := d.Nodes(buf[:0], sentinel); ok {
			seen = ms(time.Since(begin))
			if ready == 0 {
				ready = seen
			}
			return ready, seen, nil
		}
		if time.Now().After(deadline) {
			return 0, 0, errors.New("timed out waiting for the sentinel")
		}
		time.Sleep(time.Millisecond)
	}
}

// vmHWM is the peak resident set size of pid, in KiB.
func vmHWM(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmHWM in /proc/PID/status")
}
