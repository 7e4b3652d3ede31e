package main

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc/internal/kdisctest"
)

// TestVersion: one line, kdisc MODULE-VERSION GO-VERSION REVISION, the
// module version the one written in version.go.
func TestVersion(t *testing.T) {
	r := kdiscRun(t, "version")
	require.Equal(t, exitOK, r.Code, r.Stderr)
	assert.Empty(t, r.Stderr)
	m := regexp.MustCompile(`^kdisc (\S+) (go\S+) (\S+)\n$`).FindStringSubmatch(r.Stdout)
	require.NotNil(t, m, "%q", r.Stdout)
	assert.Equal(t, "v"+version, m[1])
	assert.Regexp(t, `^v[0-9]+\.[0-9]+\.[0-9]+$`, m[1], "a semantic version")
	assert.Equal(t, runtime.Version(), m[2], "built by the toolchain running the test")
	// The tests build without -X main.revision: the revision is stamped by
	// go build in a plain git checkout, unknown in a worktree or with
	// -buildvcs=false (deploy/build.sh passes it; .ci/image.sh checks).
	assert.Regexp(t, `^([0-9a-f]{40}(-dirty)?|unknown)$`, m[3])
	r = kdiscRun(t, "version", "extra")
	assert.Equal(t, exitError, r.Code)
	assert.Contains(t, r.Stderr, "usage")
}

func TestVersionLine(t *testing.T) {
	v := "kdisc v" + version + " go1.26.8 "
	bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/kdisc/kdisc", Version: "v1.2.3"}, Settings: []debug.BuildSetting{
		{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "e36fc036a9408e6c5acb1454c7daf2a2439b14ef"}, {Key: "vcs.modified", Value: "true"},
	}}
	assert.Equal(t, v+"e36fc036a9408e6c5acb1454c7daf2a2439b14ef-dirty", versionLine(bi, "go1.26.8", ""))
	bi.Settings = bi.Settings[:2]
	assert.Equal(t, v+"e36fc036a9408e6c5acb1454c7daf2a2439b14ef", versionLine(bi, "go1.26.8", "ignored"), "Go's stamp wins")
	bi.Settings, bi.Main.Version = nil, "(devel)"
	assert.Equal(t, v+"abc123", versionLine(bi, "go1.26.8", "abc123"), "-X main.revision")
	assert.Equal(t, v+"unknown", versionLine(bi, "go1.26.8", ""))
	assert.Equal(t, v+"unknown", versionLine(nil, "go1.26.8", ""))
	bi.Main.Version = "v0.0.0-20261207011938-9741238c3ea1"
	assert.Equal(t, v+"9741238c3ea1", versionLine(bi, "go1.26.8", ""), "go install ...@commit")
	bi.Main.Version = "v0.1.1-0.20261207011938-9741238c3ea1+dirty"
	assert.Equal(t, v+"9741238c3ea1", versionLine(bi, "go1.26.8", ""))
}

func TestDumpTable(t *testing.T) {
	api := newAPI(t)
	api.PutEndpoints(endpoints("default", "web", "http", 8080, "10.5.10.110", "10.5.10.109"))
	api.PutEndpoints(endpoints("default", "kubernetes", "https", 6443, "172.18.164.170"))
	cfg := writeConfig(t, nil, api)
	dir := t.TempDir()
	waitReady(t, startRun(t, cfg, dir))

	r := kdiscRun(t, "dump", "-config", cfg, "-shm-dir", dir, "-o", "table")
	require.Equal(t, exitOK, r.Code, r.Stderr)
	assert.Equal(t, ""+
		"SERVICE             PORT   NODES  HOSTS\n"+
		"default/kubernetes  https  1      172.18.164.170:6443\n"+
		"default/web         http   2      10.5.10.109:8080 10.5.10.110:8080\n", r.Stdout)

	// json is the default, unchanged.
	def := kdiscRun(t, "dump", "-config", cfg, "-shm-dir", dir)
	js := kdiscRun(t, "dump", "-config", cfg, "-shm-dir", dir, "-o", "json")
	assert.Equal(t, exitOK, js.Code)
	assert.Equal(t, def.Stdout, js.Stdout)
	assert.True(t, strings.HasPrefix(js.Stdout, `{"endpoints":[`))

	r = kdiscRun(t, "dump", "-config", cfg, "-shm-dir", dir, "-o", "yaml")
	assert.Equal(t, exitError, r.Code)
	assert.Contains(t, r.Stderr, `-o: "yaml": want json or table`)
	assert.Empty(t, r.Stdout)
}

// watchLines runs `kdisc nodes -w` and sends each line it prints, with the
// time it arrived.
type watchLines struct {
	cmd   *exec.Cmd
	lines chan stamped
	done  chan error
}

type stamped struct {
	line string
	at   time.Time
}

func startWatch(t *testing.T, cfg, dir, service string) *watchLines {
	t.Helper()
	cmd := exec.Command(kdisctest.Binary(t), "nodes", "-w", "-config", cfg, "-shm-dir", dir, service)
	cmd.Env = append(append(os.Environ(), "GORACE=atexit_sleep_ms=0 exitcode=66"), testEnv...)
	cmd.Stderr = io.Discard
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	w := &watchLines{cmd: cmd, lines: make(chan stamped, 100), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			w.lines <- stamped{sc.Text(), time.Now()}
		}
		close(w.lines)
		w.done <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return w
}

func (w *watchLines) next(t *testing.T) stamped {
	t.Helper()
	select {
	case l, ok := <-w.lines:
		require.True(t, ok, "kdisc nodes -w ended")
		return l
	case <-time.After(10 * time.Second):
		t.Fatal("kdisc nodes -w printed nothing for 10 s")
		return stamped{}
	}
}

func (w *watchLines) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case l := <-w.lines:
		t.Fatalf("kdisc nodes -w printed %q although nothing changed", l.line)
	case <-time.After(d):
	}
}

// TestNodesWatch: `kdisc nodes -w` prints the answer at start ([] while
// not found, also before any kdisc run), then again on each change
// within 100 ms, and exits 0 on SIGINT or SIGTERM.
func TestNodesWatch(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			api := newAPI(t)
			api.PutEndpoints(endpoints("default", "web", "http", 80, "10.0.0.1"))
			cfg := writeConfig(t, nil, api)
			dir := filepath.Join(t.TempDir(), "tables") // kdisc run creates it

			w := startWatch(t, cfg, dir, "default/web:http")
			assert.Equal(t, "[]", w.next(t).line, "no table yet")
			s := startRun(t, cfg, dir)
			assert.Equal(t, `[{"host":"10.0.0.1","port":80,"weight":50}]`, w.next(t).line)
			waitReady(t, s)
			api.WaitWatchers(1)
			w.quiet(t, 150*time.Millisecond)

			var lat []time.Duration
			for _, ip := range []string{"10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"} {
				api.PutEndpoints(endpoints("default", "web", "http", 80, ip))
				begin := time.Now()
				l := w.next(t)
				assert.Equal(t, `[{"host":"`+ip+`","port":80,"weight":50}]`, l.line)
				lat = append(lat, l.at.Sub(begin))
			}
			slices.Sort(lat)
			t.Logf("Put returned -> kdisc nodes -w printed it: %v", lat)
			assert.Less(t, lat[len(lat)/2], 100*time.Millisecond, "a change is printed within 100 ms")

			api.DeleteEndpoints("default", "web")
			assert.Equal(t, "[]", w.next(t).line, "deleted: not found")
			// Another service changing prints nothing.
			api.PutEndpoints(endpoints("default", "other", "http", 80, "10.9.0.1"))
			w.quiet(t, 200*time.Millisecond)

			require.NoError(t, w.cmd.Process.Signal(sig))
			select {
			case err := <-w.done:
				assert.NoError(t, err, "exit 0 on %v", sig)
			case <-time.After(5 * time.Second):
				t.Fatalf("kdisc nodes -w still running 5 s after %v", sig)
			}
		})
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestHealthListener: -health serves /healthz and /readyz and nothing
// else; the control API is unchanged.
func TestHealthListener(t *testing.T) {
	api := newAPI(t)
	api.PutEndpoints(endpoints("default", "web", "http", 80, "10.0.0.1"))
	cfg := writeConfig(t, nil, api)
	s := kdisctest.NewDaemon(t, cfg, t.TempDir())
	s.Env, s.Health = testEnv, true
	s.Start()
	health := s.HealthAddr()
	waitReady(t, s)

	code, body := get(t, "http://"+health+"/healthz")
	assert.Equal(t, http.StatusOK, code)
	assert.JSONEq(t, `{"status":"ok"}`, body)
	code, body = get(t, "http://"+health+"/readyz")
	assert.Equal(t, http.StatusOK, code)
	assert.JSONEq(t, `{"ready":true}`, body)
	for _, path := range []string{"/metrics", "/v1/discovery/kubernetes/dump", "/v1/discovery/kubernetes/nodes?service=default/web:http"} {
		code, _ = get(t, "http://"+health+path)
		assert.Equal(t, http.StatusNotFound, code, path)
		code, _ = s.Get(path)
		assert.Equal(t, http.StatusOK, code, "the control API still serves %s", path)
	}
	stop(t, s)

	// A bad address fails the start, as a bad -control does.
	r := kdiscRun(t, "run", "-config", cfg, "-shm-dir", t.TempDir(), "-control", "127.0.0.1:0", "-health", "256.0.0.1:1")
	assert.Equal(t, exitError, r.Code)
	assert.Contains(t, r.Stderr, "health")
}
