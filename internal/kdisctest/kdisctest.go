// Package kdisctest runs the kdisc binary as a subprocess for tests: it
// builds cmd/kdisc once per test binary (with -race when the test binary
// has the race detector on), runs CLI commands to completion with Run, and
// runs `kdisc run` as a Daemon.
//
// Every subprocess gets GORACE=atexit_sleep_ms=0 exitcode=66: a data race
// ends it with exit code 66, and it does not sleep a second at exit (the
// race runtime's default), which would slow every short command.
package kdisctest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const raceEnv = "GORACE=atexit_sleep_ms=0 exitcode=66"

var build struct {
	once      sync.Once
	dir, path string
	err       error
}

// Binary returns the path of the kdisc binary, building cmd/kdisc on the
// first call of the test binary; a failed build fails t. Call
// RemoveBinary from TestMain once the tests have run.
func Binary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "kdisctest-bin-")
		if err != nil {
			build.err = err
			return
		}
		build.dir, build.path = dir, filepath.Join(dir, "kdisc")
		args := []string{"build", "-o", build.path}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "github.com/kdisc/kdisc/cmd/kdisc")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build ./cmd/kdisc: %v\n%s", err, out)
		}
	})
	require.NoError(t, build.err)
	return build.path
}

// RemoveBinary deletes what Binary built, if anything.
func RemoveBinary() {
	if build.dir != "" {
		_ = os.RemoveAll(build.dir)
	}
}

// Result is how a CLI run ended.
type Result struct {
	Code           int // exit code; -1 when killed by a signal
	Stdout, Stderr string
	Took           time.Duration
}

// Run runs `kdisc args...` to completion (killed after 30 s) with the
// test's environment plus env. It fails t only if kdisc cannot be run.
func Run(t testing.TB, env []string, args ...string) Result {
	t.Helper()
	bin := Binary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(append(os.Environ(), raceEnv), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	begin := time.Now()
	err := cmd.Run()
	r := Result{Stdout: stdout.String(), Stderr: stderr.String(), Took: time.Since(begin)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	default:
		t.Fatalf("kdisc %v: %v", args, err)
	}
	return r
}

// Daemon is a `kdisc run -config Config -shm-dir ShmDir` process with the
// control API on a free loopback port. Set the exported fields before
// Start. It may be started again after Stop, on the same ShmDir.
//
// When the test ends it is stopped; the test fails if its log reports a
// data race, and the log (of every start) is printed if the test failed
// or KDISC_E2E_LOGS=1.
type Daemon struct {
	Config string   // -config
	Source []string // instead of -config Config when set, e.g. {"-kubeconfig", FILE}
	ShmDir string   // -shm-dir
	Env    []string // added to the test's environment
	Wrap   []string // command prefix, e.g. a mount-namespace wrapper
	Args   []string // more flags of kdisc run
	// Health adds -health on a loopback port of its own (HealthAddr),
	// picked again with the control port when either is taken.
	Health bool

	t       testing.TB
	logs    LogBuffer
	cleanup bool
	control string // host:port of the control API
	health  string // host:port of -health, with Health
	cmd     *exec.Cmd
	exited  chan struct{}
	err     error // of Wait, once exited is closed
}

// NewDaemon prepares `kdisc run`; Start runs it.
func NewDaemon(t testing.TB, config, shmDir string) *Daemon {
	return &Daemon{t: t, Config: config, ShmDir: shmDir}
}

// Start runs the daemon and returns once /healthz answers 200; it fails
// the test if that takes over 20 s or the process exits first. It picks
// other ports if kdisc found a chosen one taken.
func (d *Daemon) Start() {
	d.t.Helper()
	require.Nil(d.t, d.cmd, "kdisctest: Start on a running daemon")
	bin := Binary(d.t)
	if !d.cleanup {
		d.cleanup = true
		d.t.Cleanup(d.finish)
	}
	for attempt := 0; ; attempt++ {
		from := d.logs.Len()
		d.start(bin)
		healthy := d.waitHealthy(20 * time.Second)
		if healthy {
			return
		}
		err := d.Stop()
		out := d.logs.String()[from:]
		// Someone took the port between our check and kdisc's listen.
		if attempt < 3 && strings.Contains(out, "address already in use") {
			continue
		}
		d.t.Fatalf("kdisc run did not serve /healthz: %v\n%s", err, out)
	}
}

func (d *Daemon) start(bin string) {
	d.t.Helper()
	// Both ports are held until both are picked, so they differ.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(d.t, err)
	d.control = l.Addr().String()
	if d.Health {
		h, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(d.t, err)
		d.health = h.Addr().String()
		h.Close()
	}
	l.Close()
	source := []string{"-config", d.Config}
	if d.Source != nil {
		source = d.Source
	}
	args := append(append(append([]string{}, d.Wrap...), bin, "run"), source...)
	args = append(args, "-control", d.control, "-shm-dir", d.ShmDir)
	if d.Health {
		args = append(args, "-health", d.health)
	}
	args = append(args, d.Args...)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(append(os.Environ(), raceEnv), d.Env...)
	cmd.Stdout, cmd.Stderr = &d.logs, &d.logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(d.t, cmd.Start())
	exited := make(chan struct{})
	d.cmd, d.exited, d.err = cmd, exited, nil
	go func() { d.err = cmd.Wait(); close(exited) }()
}

func (d *Daemon) waitHealthy(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-d.exited:
			return false
		default:
		}
		if code, _ := d.Get("/healthz"); code == http.StatusOK {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

func (d *Daemon) finish() {
	_ = d.Stop()
	if strings.Contains(d.logs.String(), "DATA RACE") {
		d.t.Errorf("kdisc run reported a data race")
	}
	if d.t.Failed() || os.Getenv("KDISC_E2E_LOGS") == "1" {
		d.t.Logf("kdisc run log:\n%s", d.logs.String())
	}
}

// Stop is StopWith(SIGTERM).
func (d *Daemon) Stop() error { return d.StopWith(syscall.SIGTERM) }

// StopWith sends sig and waits for the exit: the error of the exit (nil
// for exit code 0), or an error if it took over 10 s (then it is killed).
// It returns nil if the daemon is not running.
func (d *Daemon) StopWith(sig os.Signal) error {
	if d.cmd == nil {
		return nil
	}
	cmd := d.cmd
	d.cmd = nil
	_ = cmd.Process.Signal(sig)
	select {
	case <-d.exited:
		return d.err
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-d.exited
		return fmt.Errorf("kdisc run did not stop within 10 s of %v", sig)
	}
}

// Get sends GET path to the control API and returns the status code and
// body; 0 and the error when it does not answer within 5 s.
func (d *Daemon) Get(path string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.control+path, nil)
	if err != nil {
		return 0, err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// WaitReady polls /readyz until it answers 200 and returns that body; it
// fails the test after timeout.
func (d *Daemon) WaitReady(timeout time.Duration) string {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		code, body := d.Get("/readyz")
		if code == http.StatusOK {
			return body
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("timed out after %v waiting for /readyz 200; last: %d %s", timeout, code, body)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Logs is the daemon's stdout and stderr so far, of every start.
func (d *Daemon) Logs() string { return d.logs.String() }

// HealthAddr is the host:port of -health (with Health), once started.
func (d *Daemon) HealthAddr() string { return d.health }
