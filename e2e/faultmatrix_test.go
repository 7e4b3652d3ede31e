package e2e

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc/internal/kubetest"
)

// The fault matrix: `kdisc run` against the real apiserver while services
// churn, through a loopback proxy (faultProxy), and one fault at a time.
// Each case asserts, per the contract:
//
//   - during the fault (a measured window of faultWindow): /readyz stays
//     200 and the last known nodes are served; /metrics tells the state
//     (kdisc_watch_healthy 0 where kdisc is refused or cut off,
//     kdisc_last_sync_age_seconds growing where nothing can sync); and
//     requests are bounded: at most 5 plus one per second
//     (kdisc_apiserver_requests_total over the window);
//   - after it: within 30 s plus one LIST of the apiserver being reachable
//     again, kdisc's table equals the apiserver's Endpoints in the
//     namespace (changes made during the fault and right after it
//     included), and /metrics says healthy again.
//
// Each measured convergence is logged and, with KDISC_FAULTMATRIX_MD=FILE,
// written as a markdown table (bench/faultmatrix.md comes from such a run).

const (
	faultWindow  = 10 * time.Second // how long each fault persists, at least
	churnN       = 20               // services the churn changes
	convergeWait = 45 * time.Second // how long to wait for convergence, to measure it even when it is late
	maxBackoff   = 30 * time.Second // the contract's cap: converged within this plus one LIST
)

type faultCase struct {
	name  string
	fault string // for the table
	// setup runs before kdisc starts (optional).
	setup func(t *testing.T, f *faultRun)
	// inject starts the fault and returns when kdisc met it.
	inject func(t *testing.T, f *faultRun) time.Time
	// heal ends the fault and returns when the apiserver was reachable
	// (and willing) again: the convergence clock starts there.
	heal func(t *testing.T, f *faultRun) time.Time
	// refused: kdisc gets an error at once (reset, 401, 403), so
	// kdisc_watch_healthy must say 0 during the window.
	refused bool
	// noSync: nothing can reach kdisc during the fault, so
	// kdisc_last_sync_age_seconds must grow with it.
	noSync bool
	// window: how long the fault persists (default faultWindow).
	window time.Duration
	// quiet: no churn before the fault, so that nothing (no event, no
	// bookmark) reaches kdisc between its list and the fault.
	quiet bool
	// after checks kdisc's log once it converged (optional).
	after func(t *testing.T, f *faultRun)
}

// faultRun is one case's world.
type faultRun struct {
	c         *kubetest.Cluster
	ns        string
	proxy     *faultProxy
	d         *daemon
	tokenFile string // kdisc's token file (a copy the test may rewrite)
	user      string // the identity behind tokenFile
}

func (f *faultRun) writeToken(t *testing.T, token string) {
	t.Helper()
	// As kubelet rotates a projected token: write beside, rename over.
	next := f.tokenFile + ".next"
	require.NoError(t, os.WriteFile(next, []byte(token+"\n"), 0o600))
	require.NoError(t, os.Rename(next, f.tokenFile))
}

func TestFaultMatrix(t *testing.T) {
	c := cluster(t)
	cases := []faultCase{
		{
			name:  "apiserver-sigkill",
			fault: "kube-apiserver SIGKILLed under churn, restarted after the window",
			inject: func(t *testing.T, f *faultRun) time.Time {
				t.Cleanup(func() { _ = f.c.StartAPIServer(context.Background()) })
				f.c.KillAPIServer()
				return time.Now()
			},
			heal: func(t *testing.T, f *faultRun) time.Time {
				require.NoError(t, f.c.StartAPIServer(ctx(t)))
				return time.Now()
			},
			refused: true, noSync: true,
		},
		{
			// Issue 15: a quiet kdisc (nothing since its list) whose
			// apiserver is away long enough for the backoff to pass 10 s
			// meets 410 Gone on its first watch after the restart (etcd
			// moved on meanwhile). That 410 proves the apiserver is back:
			// kdisc must list again at once, not wait the doubled
			// transport backoff (19.6 s seen), which broke the 30 s bound.
			name:   "apiserver-down-long",
			fault:  "kube-apiserver SIGKILLed for 25 s (backoff past 10 s), etcd revision moved on meanwhile, restarted: its first watch gets 410 Gone",
			window: 25 * time.Second,
			quiet:  true,
			inject: func(t *testing.T, f *faultRun) time.Time {
				t.Cleanup(func() { _ = f.c.StartAPIServer(context.Background()) })
				f.c.KillAPIServer()
				began := time.Now()
				// Past kdisc's resourceVersion: the restarted watch cache
				// starts after it, so kdisc's watch resumes into 410 Gone.
				_, err := f.c.BumpRevision(ctx(t))
				require.NoError(t, err)
				return began
			},
			heal: func(t *testing.T, f *faultRun) time.Time {
				require.NoError(t, f.c.StartAPIServer(ctx(t)))
				return time.Now()
			},
			after: func(t *testing.T, f *faultRun) {
				logs := f.d.Logs()
				assert.Contains(t, logs, "410 Gone", "the first watch after the restart met 410 Gone")
				assert.NotContains(t, logs, "class=expired", "the 410 is answered by listing at once, not after a backoff")
			},
			refused: true, noSync: true,
		},
		{
			name:  "etcd-paused",
			fault: "etcd SIGSTOPped (kdisc's connections cut meanwhile), SIGCONT after the window",
			inject: func(t *testing.T, f *faultRun) time.Time {
				t.Cleanup(func() { _ = f.c.ResumeEtcd() })
				require.NoError(t, f.c.PauseEtcd())
				// kdisc must come back while etcd is frozen: the apiserver
				// answers what its watch cache can, the rest hangs.
				f.proxy.CloseAll()
				return time.Now()
			},
			heal: func(t *testing.T, f *faultRun) time.Time {
				require.NoError(t, f.c.ResumeEtcd())
				return time.Now()
			},
		},
		{
			name:  "blackhole-mid-watch",
			fault: "connection black-holed mid-WATCH (no FIN/RST, new connections hang too); healed after the window, old connections stay dead",
			inject: func(t *testing.T, f *faultRun) time.Time {
				f.proxy.Blackhole()
				return time.Now()
			},
			heal: func(t *testing.T, f *faultRun) time.Time {
				f.proxy.Heal()
				return time.Now()
			},
			noSync: true,
		},
		{
			name:  "blackhole-mid-list",
			fault: "connection black-holed mid-LIST (a relist after 410 Gone, cut after 128 KiB of a ~1 MB page); healed after the window, old connections stay dead",
			setup: func(t *testing.T, f *faultRun) {
				// 400 services of 100 addresses: one LIST page of ~1 MB,
				// under the 500-object page so defect 1 stays out of it.
				require.NoError(t, kubetest.ForEach(ctx(t), 400, 16, func(ctx context.Context, i int) error {
					addrs := make([]string, 100)
					for k := range addrs {
						addrs[k] = fmt.Sprintf("10.%d.%d.%d", 90+i/250, i%250, k+1)
					}
					_, err := f.c.ApplyEndpoints(ctx, f.ns, fmt.Sprintf("big-%03d", i), kubetest.Subset(addrs, httpPort))
					return err
				}))
			},
			inject: func(t *testing.T, f *faultRun) time.Time {
				t.Cleanup(func() { _ = f.c.StartAPIServer(context.Background()) })
				f.proxy.Arm(128 << 10)
				// Past every resourceVersion kdisc holds: its watch resumes
				// into 410 Gone and it lists again, into the trap.
				require.NoError(t, f.c.ExpireWatches(ctx(t), f.c.APIServer))
				select {
				case <-f.proxy.Tripped():
				case <-time.After(60 * time.Second):
					t.Fatalf("kdisc did not list again within 60 s of the apiserver's restart past its resourceVersion")
				}
				return f.proxy.TrippedAt()
			},
			heal: func(t *testing.T, f *faultRun) time.Time {
				f.proxy.Heal()
				return time.Now()
			},
			noSync: true,
		},
		{
			name:  "rbac-revoked",
			fault: "RBAC revoked (ClusterRoleBinding deleted, connections cut), granted back after the window",
			setup: func(t *testing.T, f *faultRun) {
				id := f.c.Users[kubetest.SpareUsers[5]]
				require.NoError(t, f.c.GrantDiscovery(ctx(t), id.User))
				t.Cleanup(func() { _ = f.c.RevokeDiscovery(context.Background(), id.User) })
				f.user = id.User
				f.writeToken(t, id.Token)
			},
			inject: func(t *testing.T, f *faultRun) time.Time {
				require.NoError(t, f.c.RevokeDiscovery(ctx(t), f.user))
				// A revoked rule is only checked when a request starts: cut
				// the open watch, as an apiserver restart or a load
				// balancer would.
				f.proxy.CloseAll()
				return time.Now()
			},
			heal: func(t *testing.T, f *faultRun) time.Time {
				require.NoError(t, f.c.GrantDiscovery(ctx(t), f.user))
				return time.Now()
			},
			refused: true, noSync: true,
		},
		{
			name:  "token-invalid",
			fault: "token file rewritten to an invalid token (connections cut), rewritten back after the window",
			inject: func(t *testing.T, f *faultRun) time.Time {
				f.writeToken(t, "invalid-"+strconv.FormatInt(time.Now().UnixNano(), 36))
				f.proxy.CloseAll()
				return time.Now()
			},
			heal: func(t *testing.T, f *faultRun) time.Time {
				f.writeToken(t, f.c.DiscoveryToken)
				return time.Now()
			},
			refused: true, noSync: true,
		},
	}
	for _, fc := range cases {
		t.Run(fc.name, func(t *testing.T) { runFaultCase(t, c, fc) })
	}
	writeFaultTable(t)
}

// faultRow is one line of bench/faultmatrix.md.
type faultRow struct {
	name, fault, did, readyz, metrics, converged string
}

var faultRows struct {
	mu   sync.Mutex
	rows []faultRow
}

func runFaultCase(t *testing.T, c *kubetest.Cluster, fc faultCase) {
	ns := namespace(t, c.APIServer, "e2e-fm")
	f := &faultRun{c: c, ns: ns, user: kubetest.UserDiscovery, tokenFile: writeFile(t, "token", c.DiscoveryToken+"\n")}
	row := faultRow{name: fc.name, fault: fc.fault}
	defer func() {
		if t.Failed() {
			row.converged += " — case FAILED"
		}
		faultRows.mu.Lock()
		faultRows.rows = append(faultRows.rows, row)
		faultRows.mu.Unlock()
	}()

	// Seed: the churned services and an anchor that never changes (the
	// last known nodes to be served throughout).
	require.NoError(t, kubetest.ForEach(ctx(t), churnN, 8, func(ctx context.Context, i int) error {
		_, err := c.ApplyEndpoints(ctx, ns, churnName(i), kubetest.Subset([]string{fmt.Sprintf("10.77.%d.1", i)}, httpPort))
		return err
	}))
	_, err := c.ApplyEndpoints(ctx(t), ns, "anchor", kubetest.Subset([]string{"10.78.0.1", "10.78.0.2"}, httpPort))
	require.NoError(t, err)
	anchor, anchorNodes := ns+"/anchor:http", nodesJSON(50, "10.78.0.1:80", "10.78.0.2:80")
	if fc.setup != nil {
		fc.setup(t, f)
	}

	f.proxy = newFaultProxy(t, net.JoinHostPort(c.Host, strconv.Itoa(c.Port)))
	_, proxyPort, _ := net.SplitHostPort(f.proxy.addr)
	body := c.KdiscCluster("namespace_selector:\n  equal: " + ns + "\n")
	body = replaceOnce(t, body, "port: "+strconv.Itoa(c.Port), "port: "+proxyPort)
	body = replaceOnce(t, body, c.DiscoveryTokenFile, f.tokenFile)
	f.d = newDaemon(t, singleConfig(body))
	d := f.d
	d.Start()
	d.WaitReady(60 * time.Second)
	_, _, diff := converge(t, d, c.APIServer, ns, false, time.Now(), 30*time.Second)
	require.Empty(t, diff, "kdisc serves the namespace before the fault")
	m := mustScrape(t, d)
	assertGauge(t, m, "kdisc_watch_healthy", 1, "healthy before the fault")

	var ch *churn
	if !fc.quiet {
		ch = startChurn(c.APIServer, ns, churnN, 100*time.Millisecond)
		defer ch.Stop()
		eventually(t, 20*time.Second, "the churn to write", func() (bool, string) {
			return ch.writes.Load() >= 5, fmt.Sprintf("%d writes, %d failed", ch.writes.Load(), ch.fails.Load())
		})
	}
	window := fc.window
	if window == 0 {
		window = faultWindow
	}

	// The fault, for a measured window.
	before := mustScrape(t, d)
	conns0 := f.proxy.accepted.Load()
	began := fc.inject(t, f)
	readyChecks, readyBad, anchorBad := 0, 0, 0
	var lastBad string
	for time.Since(began) < window {
		readyChecks++
		if code, b := d.Get("/readyz"); code != http.StatusOK {
			readyBad++
			lastBad = fmt.Sprintf("/readyz %d %s", code, b)
		}
		if code, b := d.Get("/v1/discovery/kubernetes/nodes?service=" + anchor); code != http.StatusOK || strings.TrimSpace(b) != anchorNodes {
			anchorBad++
			lastBad = fmt.Sprintf("nodes %d %s", code, b)
		}
		time.Sleep(250 * time.Millisecond) // sampling interval while the fault persists
	}
	out, code := d.nodes(anchor)
	assert.Equal(t, 0, code, "kdisc nodes serves the last known nodes during the fault: %s", out)
	assert.Equal(t, anchorNodes, out)
	during := mustScrape(t, d)
	elapsed := time.Since(began)
	conns := f.proxy.accepted.Load() - conns0
	assert.Zero(t, readyBad, "/readyz stays 200 during the fault (%d of %d checks failed; last %s)", readyBad, readyChecks, lastBad)
	assert.Zero(t, anchorBad, "the last known nodes are served during the fault (%d of %d checks failed; last %s)", anchorBad, readyChecks, lastBad)
	row.readyz = fmt.Sprintf("200 in %d/%d checks", readyChecks-readyBad, readyChecks)
	if anchorBad == 0 && code == 0 {
		row.readyz += "; last known nodes served"
	} else {
		row.readyz += fmt.Sprintf("; last known nodes NOT served in %d checks", anchorBad)
	}

	healthyDuring, hok := metric(during, "kdisc_watch_healthy", map[string]string{"cluster": ""})
	ageDuring, aok := metric(during, "kdisc_last_sync_age_seconds", map[string]string{"cluster": ""})
	reqs0, rok0 := metric(before, "kdisc_apiserver_requests_total", map[string]string{"cluster": ""})
	reqs1, rok1 := metric(during, "kdisc_apiserver_requests_total", map[string]string{"cluster": ""})
	assert.True(t, hok, `/metrics has kdisc_watch_healthy{cluster=""}`)
	assert.True(t, aok, `/metrics has kdisc_last_sync_age_seconds{cluster=""}`)
	assert.True(t, rok0 && rok1, `/metrics has kdisc_apiserver_requests_total{cluster="",verb,code}`)
	if fc.refused && hok {
		assert.Equal(t, 0.0, healthyDuring, "kdisc_watch_healthy is 0 while kdisc is refused or cut off")
	}
	if fc.noSync && aok {
		assert.GreaterOrEqual(t, ageDuring, elapsed.Seconds()-2, "kdisc_last_sync_age_seconds grows while nothing syncs (fault began %v ago)", elapsed.Round(time.Millisecond))
	}
	reqs := reqs1 - reqs0
	limit := 5 + math.Floor(elapsed.Seconds()) + 1
	// Each connection carries at least one request: the proxy's count is
	// a lower bound that does not depend on kdisc's own metrics.
	assert.LessOrEqual(t, float64(conns), limit, "at most 1 request per second after 5 failures: %d connections in %v", conns, elapsed.Round(time.Millisecond))
	if rok0 && rok1 {
		assert.LessOrEqual(t, reqs, limit, "at most 1 request per second after 5 failures: %v requests in %v", reqs, elapsed.Round(time.Millisecond))
		row.did = fmt.Sprintf("%s in %.0f s (limit %.0f): %s", plural(int(reqs), "request"), elapsed.Seconds(), limit, codes(requestsBy(before, ""), requestsBy(during, "")))
	} else {
		row.did = fmt.Sprintf("requests: counter absent (limit %.0f in %.0f s)", limit, elapsed.Seconds())
	}
	row.did += fmt.Sprintf("; %s to the proxy", plural(int(conns), "TCP connection"))
	row.metrics = fmt.Sprintf("during: watch_healthy %s, last_sync_age %s", show(healthyDuring, hok, ""), show(ageDuring, aok, " s"))

	// Heal; then changes the disconnected kdisc has not seen.
	lists0, _ := metric(mustScrape(t, d), "kdisc_lists_total", map[string]string{"cluster": ""})
	reach := fc.heal(t, f)
	if ch != nil {
		ch.Stop()
	}
	mustWrite(t, "delete svc-00", func(ctx context.Context) error { return c.DeleteEndpoints(ctx, ns, churnName(0)) })
	mustWrite(t, "change svc-01", func(ctx context.Context) error {
		_, err := c.ApplyEndpoints(ctx, ns, churnName(1), kubetest.Subset([]string{"10.79.0.1"}, httpPort))
		return err
	})
	mustWrite(t, "create after", func(ctx context.Context) error {
		_, err := c.ApplyEndpoints(ctx, ns, "after", kubetest.Subset([]string{"10.79.0.2"}, httpPort))
		return err
	})
	took, list, diff := converge(t, d, c.APIServer, ns, false, reach, convergeWait)
	bound := maxBackoff + list + time.Second // +1 s: polling and the dump itself
	if ch != nil {
		t.Logf("%s: churn wrote %d (%d failed, %d deletes)", fc.name, ch.writes.Load(), ch.fails.Load(), ch.deletes.Load())
	}
	t.Logf("%s: converged %v after the apiserver was reachable again (bound %v)", fc.name, took.Round(time.Millisecond), bound.Round(time.Millisecond))
	if diff != "" {
		t.Errorf("not converged %v after the apiserver was reachable again: %s", took.Round(time.Millisecond), diff)
		row.converged = fmt.Sprintf("**not within %v**", took.Round(time.Second))
	} else {
		assert.LessOrEqual(t, took, bound, "converged within 30 s plus one LIST of the apiserver being reachable again")
		row.converged = fmt.Sprintf("%.1f s (bound %.1f s)", took.Seconds(), bound.Seconds())
	}
	if fc.after != nil {
		fc.after(t, f)
	}

	// Healthy again, and saying so. A quiet healthy watch's sync age grows
	// until the next event or bookmark (about a minute), so one more change
	// gives the watch something to deliver.
	mustWrite(t, "change after convergence", func(ctx context.Context) error {
		_, err := c.ApplyEndpoints(ctx, ns, "after", kubetest.Subset([]string{"10.79.0.3"}, httpPort))
		return err
	})
	var after []sample
	for deadline := time.Now().Add(10 * time.Second); ; {
		after = mustScrape(t, d)
		h, hok := metric(after, "kdisc_watch_healthy", map[string]string{"cluster": ""})
		a, aok := metric(after, "kdisc_last_sync_age_seconds", map[string]string{"cluster": ""})
		if h == 1 && hok && aok && a < 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("after convergence, /metrics does not say healthy within 10 s: kdisc_watch_healthy %s, kdisc_last_sync_age_seconds %s (want 1 and < 5 s)",
				show(h, hok, ""), show(a, aok, " s"))
			break
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
	code, b := d.Get("/readyz")
	assert.Equal(t, http.StatusOK, code, b)
	healthyAfter, hok := metric(after, "kdisc_watch_healthy", map[string]string{"cluster": ""})
	ageAfter, aok := metric(after, "kdisc_last_sync_age_seconds", map[string]string{"cluster": ""})
	lists1, _ := metric(after, "kdisc_lists_total", map[string]string{"cluster": ""})
	row.metrics += fmt.Sprintf("; after: watch_healthy %s, last_sync_age %s", show(healthyAfter, hok, ""), show(ageAfter, aok, " s"))
	if lists1 > lists0 {
		row.did += fmt.Sprintf("; listed again after the fault (%.0f LIST)", lists1-lists0)
	} else {
		row.did += "; resumed the watch (no LIST)"
	}
}

func mustScrape(t *testing.T, d *daemon) []sample {
	t.Helper()
	s, err := scrape(d)
	require.NoError(t, err)
	return s
}

func assertGauge(t *testing.T, m []sample, name string, want float64, what string) {
	t.Helper()
	v, ok := metric(m, name, map[string]string{"cluster": ""})
	if assert.True(t, ok, `/metrics has %s{cluster=""}`, name) {
		assert.Equal(t, want, v, what)
	}
}

// mustWrite retries a write for up to 30 s (the apiserver may still be
// settling right after a fault).
func mustWrite(t *testing.T, what string, fn func(ctx context.Context) error) {
	t.Helper()
	var err error
	eventually(t, 30*time.Second, what, func() (bool, string) {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = fn(c)
		return err == nil, fmt.Sprint(err)
	})
}

func show(v float64, ok bool, unit string) string {
	if !ok {
		return "absent"
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + unit
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// codes lists the requests between two scrapes by verb and code.
func codes(before, after map[string]float64) string {
	var parts []string
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			parts = append(parts, fmt.Sprintf("%s ×%.0f", k, d))
		}
	}
	if len(parts) == 0 {
		return "none counted"
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// writeFaultTable writes the rows to $KDISC_FAULTMATRIX_MD, if set.
func writeFaultTable(t *testing.T) {
	path := os.Getenv("KDISC_FAULTMATRIX_MD")
	if path == "" {
		return
	}
	faultRows.mu.Lock()
	defer faultRows.mu.Unlock()
	var b strings.Builder
	b.WriteString("| case | fault | what kdisc did | /readyz during the fault | /metrics | measured convergence |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- |\n")
	for _, r := range faultRows.rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", r.name, r.fault, r.did, r.readyz, r.metrics, r.converged)
	}
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
	t.Logf("fault matrix table written to %s", path)
}
