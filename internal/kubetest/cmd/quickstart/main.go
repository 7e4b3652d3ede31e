// Command quickstart is the README's first command (testdata/kube/quickstart.sh):
// it runs kdisc for real on a machine with no cluster.
//
//	quickstart -kdisc BIN            start a local kube-apiserver + etcd, create example
//	                                 services, run `kdisc run` with least-privilege
//	                                 credentials, show `kdisc nodes` and the dump, and
//	                                 keep running until Ctrl-C
//	quickstart -kdisc BIN scale N    set demo/web to N ready addresses (from another
//	                                 terminal, while the first one runs), then show what
//	                                 `kdisc nodes` answers
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/kdisc/kdisc/internal/kubetest"
)

// state is what a running quickstart leaves for `quickstart scale`.
type state struct {
	URL, CAFile, AdminTokenFile string
	Config, ShmDir              string
}

const control = "127.0.0.1:9090"

func main() {
	bin := flag.String("kdisc", "", "the kdisc binary")
	dir := flag.String("dir", filepath.Join(cacheDir(), "quickstart"), "folder for the config, the tables and the state file")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("quickstart: ")
	if *bin == "" {
		log.Fatal("-kdisc is required")
	}
	var err error
	switch flag.Arg(0) {
	case "":
		err = run(*bin, *dir)
	case "scale":
		n, convErr := strconv.Atoi(flag.Arg(1))
		if convErr != nil || n < 0 || n > 250 {
			log.Fatal("usage: quickstart scale N (0..250)")
		}
		err = scale(*bin, *dir, n)
	default:
		err = fmt.Errorf("unknown command %q", flag.Arg(0))
	}
	if err != nil {
		log.Fatal(err)
	}
}

func cacheDir() string {
	if d := os.Getenv("KDISC_CACHE"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "kdisc")
}

func run(bin, dir string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	c, err := kubetest.Start(ctx, kubetest.Options{Logf: log.Printf})
	if err != nil {
		return err
	}
	defer c.Stop()

	if err := examples(ctx, c); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	st := state{URL: c.URL, CAFile: c.CAFile, AdminTokenFile: c.AdminTokenFile,
		Config: filepath.Join(dir, "config.yaml"), ShmDir: filepath.Join(dir, "shm")}
	// The discovery identity holds exactly the README's ClusterRole.
	cfg := c.KdiscConfig("namespace_selector:\n  equal: demo\n")
	if err := os.WriteFile(st.Config, []byte(cfg), 0o644); err != nil {
		return err
	}
	stateJSON, _ := json.Marshal(st)
	if err := os.WriteFile(filepath.Join(dir, "state.json"), stateJSON, 0o600); err != nil {
		return err
	}

	kd := exec.Command(bin, "run", "-config", st.Config, "-control", control, "-shm-dir", st.ShmDir)
	kd.Stdout, kd.Stderr = os.Stderr, os.Stderr
	kd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := kd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- kd.Wait() }()
	defer func() {
		_ = kd.Process.Signal(syscall.SIGTERM)
		<-exited
	}()
	if err := waitReady(ctx, exited); err != nil {
		return err
	}
	log.Printf("kdisc is ready, %v after start", time.Since(start).Round(100*time.Millisecond))

	fmt.Printf("\n$ kdisc nodes -config %s -shm-dir %s demo/web:http\n", st.Config, st.ShmDir)
	show(bin, "nodes", "-config", st.Config, "-shm-dir", st.ShmDir, "demo/web:http")
	fmt.Printf("\n$ kdisc dump -config %s -shm-dir %s\n", st.Config, st.ShmDir)
	show(bin, "dump", "-config", st.Config, "-shm-dir", st.ShmDir)
	fmt.Printf(`
kdisc run is serving; its control API is http://%s (/v1/discovery/kubernetes/dump,
/v1/discovery/kubernetes/nodes?service=demo/web:http, /readyz, /metrics).

Change demo/web and watch it move, from another terminal:
  testdata/kube/quickstart.sh scale 5
  %s nodes -config %s -shm-dir %s demo/web:http

Press Ctrl-C to stop kdisc and the cluster.
`, control, bin, st.Config, st.ShmDir)
	select {
	case <-ctx.Done():
		fmt.Println()
		log.Print("stopping")
		return nil
	case err := <-exited:
		return fmt.Errorf("kdisc run exited: %v", err)
	}
}

// examples creates namespace demo with Endpoints web (three addresses)
// and db. No controller-manager runs, so nothing else creates them.
func examples(ctx context.Context, c *kubetest.Cluster) error {
	if err := c.CreateNamespace(ctx, "demo"); err != nil {
		return err
	}
	if err := applyWeb(ctx, c.APIServer, 3); err != nil {
		return err
	}
	_, err := c.ApplyEndpoints(ctx, "demo", "db", kubetest.Subset([]string{"10.1.2.1"}, kubetest.EndpointPort{Name: "mysql", Port: 3306, Protocol: "TCP"}))
	return err
}

func applyWeb(ctx context.Context, a *kubetest.APIServer, n int) error {
	ips := make([]string, n)
	for i := range ips {
		ips[i] = "10.1.1." + strconv.Itoa(i+1)
	}
	var subsets []kubetest.EndpointSubset
	if n > 0 {
		subsets = append(subsets, kubetest.Subset(ips, kubetest.EndpointPort{Name: "http", Port: 8080, Protocol: "TCP"}))
	}
	_, err := a.ApplyEndpoints(ctx, "demo", "web", subsets...)
	return err
}

func waitReady(ctx context.Context, exited chan error) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("kdisc run exited: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		resp, err := http.Get("http://" + control + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return errors.New("kdisc run not ready within 30 s (see its log above)")
}

func show(bin string, args ...string) {
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	_ = cmd.Run()
}

// scale sets demo/web to n addresses through the running quickstart's
// apiserver, then shows what kdisc serves.
func scale(bin, dir string, n int) error {
	raw, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return fmt.Errorf("no running quickstart (%v): start testdata/kube/quickstart.sh first", err)
	}
	var st state
	if err := json.Unmarshal(raw, &st); err != nil {
		return err
	}
	a, err := kubetest.Connect(st.URL, st.CAFile, st.AdminTokenFile)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := applyWeb(ctx, a, n); err != nil {
		return err
	}
	fmt.Printf("demo/web now has %d ready address(es). kdisc serves:\n", n)
	time.Sleep(100 * time.Millisecond) // for the eye only: the change lands in about a millisecond
	fmt.Printf("$ kdisc nodes -config %s -shm-dir %s demo/web:http\n", st.Config, st.ShmDir)
	show(bin, "nodes", "-config", st.Config, "-shm-dir", st.ShmDir, "demo/web:http")
	return nil
}
