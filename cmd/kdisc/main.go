// Command kdisc is Kubernetes service discovery for proxies: `kdisc run`
// list-watches the configured clusters into shared-memory tables and serves
// the control API; `kdisc nodes` and `kdisc dump` read those tables from
// another process; `kdisc check` validates a configuration.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kdisc/kdisc"
	"github.com/kdisc/kdisc/config"
	"github.com/kdisc/kdisc/dump"
	"github.com/kdisc/kdisc/shm"
)

const usage = `usage:
  kdisc run   -config FILE [-control ADDR] [-shm-dir DIR]
  kdisc nodes -config FILE [-shm-dir DIR] SERVICE
  kdisc dump  -config FILE [-shm-dir DIR]
  kdisc check -config FILE
  kdisc bench [-config FILE [-shm-dir DIR] | -kubeconfig FILE] [-services N] [-addrs N] [-ports N]
              [-duration D] [-parallel P] [-keys uniform|zipf] [-baseline] [-o text|json]
  (run, nodes, dump, check: -kubeconfig FILE [-context NAME] instead of -config)
  kdisc version

options:
  run   -health ADDR   also serve /healthz and /readyz (and nothing else) on ADDR, for kubelet probes
  run                  GC defaults unless set in the environment: GOGC=50, and a soft memory limit
                       (GOMEMLIMIT) of 32 MiB + 4 x the sum of shared_size; GOGC/GOMEMLIMIT win
  nodes -w             print the answer again on every change ([] while not found), until SIGINT/SIGTERM
  dump  -o json|table  output format (default json)
  bench                without -config or -kubeconfig: a private table of synthetic services
`

// Exit codes of `kdisc nodes`: found, not found, error. Other commands
// exit 0 or exitError.
const (
	exitOK       = 0
	exitNotFound = 1 // unknown or empty, the table ready
	exitError    = 2
	exitNotReady = 3 // not found, and the table not ready
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitError
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("kdisc "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	src := sourceFlags(fs) // -config, or -kubeconfig [-context]
	shmDir, control := new(string), new(string)
	if cmd != "check" {
		fs.StringVar(shmDir, "shm-dir", kdisc.DefaultShmDir(), "folder of the shared-memory tables")
	}
	if cmd == "run" {
		fs.StringVar(control, "control", "127.0.0.1:9090", "address of the control API")
	}
	watch, output, health := new(bool), new(string), new(string)
	var benchOpts *benchOptions
	switch cmd {
	case "nodes":
		fs.BoolVar(watch, "w", false, "print the answer again on every change, until SIGINT/SIGTERM")
	case "dump":
		fs.StringVar(output, "o", "json", "output format: json or table")
	case "run":
		fs.StringVar(health, "health", "", "also serve /healthz and /readyz, only those, on this address (default off)")
	case "bench":
		benchOpts = benchFlags(fs)
	}
	switch cmd {
	case "version":
		return printVersion(args, stdout, stderr)
	case "run", "nodes", "dump", "check", "bench":
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "kdisc: unknown command %q\n%s", cmd, usage)
		return exitError
	}
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if cmd == "dump" {
		if err := checkOutput(*output); err != nil {
			fmt.Fprintf(stderr, "kdisc dump: %v\n", err)
			return exitError
		}
	}
	if cmd == "bench" {
		if err := benchOpts.check(); err != nil {
			fmt.Fprintf(stderr, "kdisc bench: %v\n", err)
			return exitError
		}
		if *src.config == "" && *src.kubeconfig == "" && *src.context == "" {
			return bench(benchOpts, nil, "", stdout, stderr)
		}
	}
	cfg := src.load(cmd, stderr)
	if cfg == nil {
		return exitError
	}
	switch cmd {
	case "check":
		return check(cfg, stdout)
	case "nodes":
		if fs.NArg() != 1 {
			fmt.Fprintf(stderr, "kdisc nodes: want exactly one SERVICE argument\n%s", usage)
			return exitError
		}
		if *watch {
			return watchNodes(cfg, *shmDir, fs.Arg(0), stdout, stderr)
		}
		return nodes(cfg, *shmDir, fs.Arg(0), stdout, stderr)
	case "dump":
		return dumpTables(cfg, *shmDir, *output, stdout, stderr)
	case "bench":
		return bench(benchOpts, cfg, *shmDir, stdout, stderr)
	default:
		return serve(cfg, *shmDir, *control, *health, stderr)
	}
}

func check(cfg *config.Config, stdout io.Writer) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	_ = enc.Encode(cfg.EffectiveLocal()) // local: exec args shown
	return exitOK
}

func nodes(cfg *config.Config, shmDir, service string, stdout, stderr io.Writer) int {
	d, err := kdisc.Attach(shmDir, cfg, trustedUIDs()...)
	if err != nil {
		fmt.Fprintf(stderr, "kdisc nodes: %v\n", err)
		return exitError
	}
	defer d.Close()
	found, answer := d.Lookup(nil, service)
	switch answer {
	case kdisc.Found:
	case kdisc.NotReady:
		fmt.Fprintf(stderr, "kdisc nodes: %s not found: not_ready (no `kdisc run` has finished a full list into the tables under %s)\n", service, shmDir)
		return exitNotReady
	default:
		fmt.Fprintf(stderr, "kdisc nodes: %s not found: %s\n", service, answer)
		return exitNotFound
	}
	fmt.Fprintf(stdout, "%s\n", shm.AppendNodesJSON(nil, found))
	return exitOK
}

// trustedUIDs is KDISC_TRUSTED_UIDS: users besides this one and root who
// may own the tables (kdisc run under another user than its readers).
func trustedUIDs() []kdisc.Option {
	uids, err := shm.ParseUIDs(os.Getenv("KDISC_TRUSTED_UIDS"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "kdisc: KDISC_TRUSTED_UIDS: %v (ignored)\n", err)
		return nil
	}
	return []kdisc.Option{kdisc.WithTrustedUIDs(uids...)}
}

func dumpTables(cfg *config.Config, shmDir, format string, stdout, stderr io.Writer) int {
	d, err := kdisc.Attach(shmDir, cfg, trustedUIDs()...)
	if err != nil {
		fmt.Fprintf(stderr, "kdisc dump: %v (is `kdisc run` running with -shm-dir %s?)\n", err, shmDir)
		return exitError
	}
	defer d.Close()
	if err := writeDump(stdout, d.Dump(), format); err != nil {
		fmt.Fprintf(stderr, "kdisc dump: %v\n", err)
		return exitError
	}
	for _, nr := range d.NotReady() {
		fmt.Fprintf(stderr, "kdisc dump: warning: table %q not ready: %s\n", nr.ID, nr.Reason)
	}
	return exitOK
}

// serve is `kdisc run`: list-watch into the tables and serve the control
// API until SIGINT or SIGTERM.
func serve(cfg *config.Config, shmDir, control, health string, stderr io.Writer) int {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	gcAttrs := gcDefaults(cfg, os.LookupEnv).apply()

	ln, err := net.Listen("tcp", control)
	if err != nil {
		log.Error("control API", "error", err)
		return exitError
	}
	var healthLn net.Listener
	if health != "" {
		if healthLn, err = net.Listen("tcp", health); err != nil {
			ln.Close()
			log.Error("health listener (-health)", "error", err)
			return exitError
		}
		defer healthLn.Close()
	}
	d, err := kdisc.Start(ctx, cfg, kdisc.WithShmDir(shmDir), kdisc.WithLogger(log))
	if err != nil {
		ln.Close()
		log.Error("start", "error", err)
		return exitError
	}
	srv := &http.Server{Handler: dump.Handler(d), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	attrs := append([]any{"control", ln.Addr().String(), "shm_dir", shmDir, "clusters", len(cfg.Clusters)}, gcAttrs...)
	var healthSrv *http.Server
	if healthLn != nil {
		healthSrv = &http.Server{Handler: dump.HealthHandler(d), ReadHeaderTimeout: 10 * time.Second}
		go func() { served <- healthSrv.Serve(healthLn) }()
		attrs = append(attrs, "health", healthLn.Addr().String())
	}
	log.Info("kdisc running", attrs...)

	code := exitOK
	select {
	case <-ctx.Done():
		stop() // a second signal now ends the process at once
		log.Info("stopping")
	case err := <-served:
		log.Error("control API", "error", err)
		code = exitError
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("control API shutdown", "error", err)
	}
	if healthSrv != nil {
		if err := healthSrv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("health listener shutdown", "error", err)
		}
	}
	if err := d.Close(); err != nil {
		log.Warn("closing tables", "error", err)
	}
	return code
}
