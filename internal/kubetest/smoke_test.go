package kubetest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kdisc/kdisc/internal/kubetest"
)

var capture = flag.Bool("capture", false, "rewrite testdata/kube/captured/ with real responses (KDISC_E2E=1 go test ./internal/kubetest -args -capture)")

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(kubetest.Main(m, kubetest.Options{}))
}

// event is one line of a watch stream.
type event struct {
	Type   string          `json:"type"`
	Object json.RawMessage `json:"object"`
}

// watchStream reads a watch response line by line, keeping the raw lines.
type watchStream struct {
	t      *testing.T
	resp   *http.Response
	lines  chan []byte
	errc   chan error
	cancel context.CancelFunc
}

func openWatch(t *testing.T, a *kubetest.APIServer, token, path string) *watchStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := a.Request(ctx, token, http.MethodGet, path, nil)
	if err != nil {
		cancel()
		t.Fatalf("watch %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		b := new(bytes.Buffer)
		_, _ = b.ReadFrom(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("watch %s: %d %s", path, resp.StatusCode, b)
	}
	w := &watchStream{t: t, resp: resp, lines: make(chan []byte, 100), errc: make(chan error, 1), cancel: cancel}
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			w.lines <- append([]byte(nil), sc.Bytes()...)
		}
		w.errc <- sc.Err()
		close(w.lines)
	}()
	t.Cleanup(w.close)
	return w
}

func (w *watchStream) close() {
	w.cancel()
	w.resp.Body.Close()
}

// next returns the next event (and its raw line) or fails after timeout.
func (w *watchStream) next(timeout time.Duration) (event, []byte) {
	w.t.Helper()
	select {
	case line, ok := <-w.lines:
		if !ok {
			w.t.Fatalf("watch ended: %v", <-w.errc)
		}
		var ev event
		if err := json.Unmarshal(line, &ev); err != nil {
			w.t.Fatalf("watch line %q: %v", line, err)
		}
		return ev, line
	case <-time.After(timeout):
		w.t.Fatalf("no watch event within %v", timeout)
	}
	panic("unreachable")
}

// nextOf skips events of other types (e.g. a BOOKMARK) until one of typ.
func (w *watchStream) nextOf(typ string, timeout time.Duration) (event, []byte) {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ev, line := w.next(time.Until(deadline))
		if ev.Type == typ {
			return ev, line
		}
		w.t.Logf("skipping %s event", ev.Type)
	}
}

func capturedDir(t *testing.T) string {
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "testdata", "kube", "captured")
}

// save writes data, byte for byte as the apiserver sent it, under
// testdata/kube/captured.
func save(t *testing.T, name string, data []byte) {
	t.Helper()
	if !*capture {
		return
	}
	dir := capturedDir(t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustOK(t *testing.T, what string, b []byte, code int, err error) []byte {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if code != http.StatusOK {
		t.Fatalf("%s: %d %s", what, code, b)
	}
	return b
}

type status struct {
	Kind    string `json:"kind"`
	Status  string `json:"status"`
	Reason  string `json:"reason"`
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func parseStatus(t *testing.T, b []byte) status {
	t.Helper()
	var s status
	if err := json.Unmarshal(b, &s); err != nil || s.Kind != "Status" {
		t.Fatalf("not a Status object (%v): %s", err, b)
	}
	return s
}
