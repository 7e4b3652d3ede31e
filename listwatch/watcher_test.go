package listwatch

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc/apiserver"
	"github.com/kdisc/kdisc/internal/fakeapi"
	"github.com/kdisc/kdisc/selector"
	"github.com/kdisc/kdisc/shm"
)

// harness runs a Watcher against a fake apiserver into an in-memory table.
type harness struct {
	t      *testing.T
	w      *Watcher
	table  *shm.Reader
	cancel context.CancelFunc
	done   chan struct{}
}

// fastOptions list in pages, as the tests written before the streaming
// list expect; the streaming list's tests (watchlist_test.go) turn it on.
func fastOptions() Options {
	return Options{
		NoStreamingList: true,
		MinBackoff:      20 * time.Millisecond,
		MaxBackoff:      200 * time.Millisecond,
		MinWatchTimeout: time.Minute,
		Weight:          50,
		Logger:          slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

func start(t *testing.T, api *fakeapi.Server, o Options, client ...apiserver.Options) *harness {
	t.Helper()
	co := apiserver.Options{Schema: "http", Host: api.Host(), Port: api.Port()}
	if len(client) > 0 {
		co = client[0]
	}
	return startStore(t, co, o, 1<<20, nil)
}

// startStore is start into a table of size bytes, written through the
// Store wrap makes of it (the table itself when wrap is nil).
func startStore(t *testing.T, co apiserver.Options, o Options, size int64, wrap func(*shm.Writer) Store) *harness {
	t.Helper()
	c, err := apiserver.New(co)
	require.NoError(t, err)
	table, err := shm.Create("", size)
	require.NoError(t, err)
	o.Client, o.Store = c, table
	if wrap != nil {
		o.Store = wrap(table)
	}
	h := &harness{t: t, w: New(o), table: table.Reader(), done: make(chan struct{})}
	var ctx context.Context
	ctx, h.cancel = context.WithCancel(context.Background())
	go func() { defer close(h.done); h.w.Run(ctx) }()
	t.Cleanup(func() {
		h.cancel()
		<-h.done
		table.Close()
	})
	return h
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (h *harness) hosts(service string) []string {
	nodes, ok := h.table.Lookup(nil, service)
	if !ok {
		return nil
	}
	out := []string{}
	for _, n := range nodes {
		out = append(out, n.Host()+":"+strconv.Itoa(int(n.Port)))
	}
	return out
}

func (h *harness) waitHosts(service string, want ...string) {
	h.t.Helper()
	eventually(h.t, service+" = "+fmtList(want), func() bool { return equal(h.hosts(service), want) })
}

func fmtList(s []string) string {
	if s == nil {
		return "not found"
	}
	return "[" + joinComma(s) + "]"
}

func joinComma(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ","
		}
		out += x
	}
	return out
}

func equal(a, b []string) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func endpoints(ns, name string, port int32, ips ...string) *fakeapi.Endpoints {
	return fakeapi.NewEndpoints(ns, name, "http", port, ips...)
}

func lists(reqs []fakeapi.Request) (n int) {
	for _, r := range reqs {
		if r.Resource != "" && !r.Watch {
			n++
		}
	}
	return n
}

func lastWatch(reqs []fakeapi.Request) fakeapi.Request {
	for i := len(reqs) - 1; i >= 0; i-- {
		if reqs[i].Watch {
			return reqs[i]
		}
	}
	return fakeapi.Request{}
}

func TestListPagesThenWatches(t *testing.T) {
	api := fakeapi.New(t)
	for i := range 5 {
		api.PutEndpoints(endpoints("default", "svc"+strconv.Itoa(i), 80, "10.0.0."+strconv.Itoa(i+1)))
	}
	o := fastOptions()
	o.PageSize = 2
	h := start(t, api, o)
	eventually(t, "ready", h.w.Ready)
	for i := range 5 {
		assert.Equal(t, []string{"10.0.0." + strconv.Itoa(i+1) + ":80"}, h.hosts("default/svc"+strconv.Itoa(i)+":http"))
	}
	api.WaitRequests(fakeapi.IsWatch(""), 1)
	reqs := api.Requests()
	var pages []fakeapi.Request
	for _, r := range reqs {
		if !r.Watch {
			pages = append(pages, r)
		}
	}
	require.Len(t, pages, 3, "5 objects in pages of 2")
	assert.Equal(t, "2", pages[0].Param("limit"))
	assert.Empty(t, pages[0].Param("continue"))
	assert.NotEmpty(t, pages[1].Param("continue"))
	w := lastWatch(reqs)
	assert.Equal(t, api.ResourceVersion(), w.Param("resourceVersion"), "watch from the list's resourceVersion")
	assert.Equal(t, "true", w.Param("allowWatchBookmarks"))
	secs, err := strconv.Atoi(w.Param("timeoutSeconds"))
	require.NoError(t, err)
	assert.True(t, secs >= 60 && secs < 120, "timeoutSeconds %d in [min, 2*min)", secs)
}

func TestWatchAppliesEvents(t *testing.T) {
	api := fakeapi.New(t)
	api.PutEndpoints(endpoints("default", "web", 80, "10.0.0.1"))
	h := start(t, api, fastOptions())
	h.waitHosts("default/web:http", "10.0.0.1:80")
	api.WaitWatchers(1)

	api.PutEndpoints(endpoints("default", "web", 80, "10.0.0.2", "10.0.0.1"))
	h.waitHosts("default/web:http", "10.0.0.1:80", "10.0.0.2:80")
	api.PutEndpoints(endpoints("shop", "cart", 8080, "fd00::1"))
	h.waitHosts("shop/cart:http", "fd00::1:8080")
	api.DeleteEndpoints("default", "web")
	h.waitHosts("default/web:http")
	api.PutEndpoints(endpoints("shop", "cart", 8080)) // scaled to zero
	h.waitHosts("shop/cart:http")
	// An event is counted after its table write: wait for the counts.
	st := h.w.Stats()
	eventually(t, "1 added, 2 modified, 1 deleted", func() bool {
		return st.Added.Load() == 1 && st.Modified.Load() == 2 && st.Deleted.Load() == 1
	})
	assert.NotZero(t, st.LastEvent.Load())
	assert.Equal(t, 1, lists(api.Requests()), "events never cause a list")
}

func TestWatchResumesWithoutRelist(t *testing.T) {
	api := fakeapi.New(t)
	api.PutEndpoints(endpoints("default", "web", 80, "10.0.0.1"))
	h := start(t, api, fastOptions())
	api.WaitWatchers(1)

	// A clean end (the server's timeout, a restart): resume from the last event.
	rv := api.PutEndpoints(endpoints("default", "web", 80, "10.0.0.2"))
	h.waitHosts("default/web:http", "10.0.0.2:80")
	api.CloseWatches()
	reqs := api.WaitRequests(fakeapi.IsWatch(""), 2)
	assert.Equal(t, rv, lastWatch(reqs).Param("resourceVersion"))

	// A bookmark moves the resourceVersion without an object.
	api.WaitWatchers(1)
	api.PutEndpointSlice(&fakeapi.EndpointSlice{Metadata: fakeapi.ObjectMeta{Namespace: "x", Name: "y"}, AddressType: "IPv4"}) // another resource bumps the global RV
	api.SendBookmark()
	eventually(t, "bookmark", func() bool { return h.w.Stats().Bookmarks.Load() == 1 })
	api.CloseWatches()
	reqs = api.WaitRequests(fakeapi.IsWatch(""), 3)
	assert.Equal(t, api.ResourceVersion(), lastWatch(reqs).Param("resourceVersion"), "resumed from the bookmark")

	// A connection dropped in the middle of an event: resume from the last complete one.
	api.WaitWatchers(1)
	api.Fail(fakeapi.IsWatch(""), fakeapi.DropMidEvent(), 1)
	api.CloseWatches()
	api.WaitRequests(fakeapi.IsWatch(""), 4)
	rv = api.PutEndpoints(endpoints("default", "web", 80, "10.0.0.3"))
	h.waitHosts("default/web:http", "10.0.0.3:80")
	assert.Equal(t, 1, lists(api.Requests()), "no relist after clean ends, bookmarks or drops")
	_ = rv
}

func TestGoneRelistsAndRemovesStale(t *testing.T) {
	for _, asHTTP := range []bool{false, true} {
		t.Run("http410="+strconv.FormatBool(asHTTP), func(t *testing.T) {
			var opts []fakeapi.Option
			if asHTTP {
				opts = append(opts, fakeapi.WithWatchExpiredAsHTTPError())
			}
			api := fakeapi.New(t, opts...)
			api.PutEndpoints(endpoints("default", "keep", 80, "10.0.0.1"))
			api.PutEndpoints(endpoints("default", "gone", 80, "10.0.0.2"))
			h := start(t, api, fastOptions())
			h.waitHosts("default/gone:http", "10.0.0.2:80")
			api.WaitWatchers(1)

			// Readers must never see "keep" vanish, not even during the relist.
			stop := make(chan struct{})
			var missing sync.WaitGroup
			var vanished bool
			missing.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, ok := h.table.Lookup(nil, "default/keep:http"); !ok {
						vanished = true
					}
				}
			})

			// While kdisc is disconnected: "gone" is deleted, "new" appears,
			// and history is compacted past kdisc's resourceVersion.
			api.Fail(fakeapi.IsWatch(""), fakeapi.InternalError(), -1)
			api.CloseWatches()
			api.WaitRequests(func(r fakeapi.Request) bool { return r.Fault != "" }, 1)
			api.DeleteEndpoints("default", "gone")
			api.PutEndpoints(endpoints("default", "new", 80, "10.0.0.3"))
			api.Compact()
			api.ClearFaults()

			h.waitHosts("default/new:http", "10.0.0.3:80")
			h.waitHosts("default/gone:http")
			close(stop)
			missing.Wait()
			assert.False(t, vanished, "a relist must never remove a key it returns")
			assert.Equal(t, []string{"10.0.0.1:80"}, h.hosts("default/keep:http"))
			assert.Equal(t, uint64(1), h.w.Stats().Relists.Load())
			assert.Equal(t, 2, lists(api.Requests()))
		})
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	api := fakeapi.New(t)
	api.PutEndpoints(endpoints("default", "web", 80, "10.0.0.1"))
	api.Fail(fakeapi.IsList(""), fakeapi.TooManyRequests(1), 1)
	h := start(t, api, fastOptions())
	h.waitHosts("default/web:http", "10.0.0.1:80")
	reqs := api.Requests()
	require.GreaterOrEqual(t, len(reqs), 2)
	gap := reqs[1].Time.Sub(reqs[0].Time)
	assert.GreaterOrEqual(t, gap, 900*time.Millisecond, "Retry-After: 1 waits about a second (backoff alone would be 20ms)")
	assert.Equal(t, uint64(1), h.w.Stats().ListErrors.Load())
}

func TestForbiddenIsReportedAndRecovers(t *testing.T) {
	api := fakeapi.New(t)
	api.PutEndpoints(endpoints("default", "web", 80, "10.0.0.1"))
	api.Fail(fakeapi.IsList(""), fakeapi.Forbidden("system:serviceaccount:kdisc:kdisc"), -1)
	h := start(t, api, fastOptions())
	eventually(t, "403 in status", func() bool { return h.w.Status().Error != "" })
	st := h.w.Status()
	assert.False(t, st.Ready)
	assert.Contains(t, st.Error, "403 Forbidden from apiserver")
	assert.Contains(t, st.Error, "cannot list resource")
	api.ClearFaults()
	eventually(t, "ready", h.w.Ready)
	assert.Empty(t, h.w.Status().Error)
}

func TestBackoffNeverHotLoops(t *testing.T) {
	api := fakeapi.New(t)
	api.Fail(fakeapi.AnyRequest, fakeapi.InternalError(), -1)
	o := fastOptions()
	o.MinBackoff, o.MaxBackoff = 50*time.Millisecond, 100*time.Millisecond
	start(t, api, o)
	api.WaitRequests(fakeapi.AnyRequest, 5)
	reqs := api.Requests()
	for i := 1; i < len(reqs); i++ {
		assert.GreaterOrEqual(t, reqs[i].Time.Sub(reqs[i-1].Time), 25*time.Millisecond, "request %d came too soon", i)
	}
}

func TestIdleWatchIsDropped(t *testing.T) {
	api := fakeapi.New(t)
	api.PutEndpoints(endpoints("default", "web", 80, "10.0.0.1"))
	api.Fail(fakeapi.IsWatch(""), fakeapi.Stall(), 1)
	o := fastOptions()
	// Every later watch ends at the server's timeout (1 s) and must not
	// race the idle drop: a grace of 2 s, not 100 ms, on a loaded machine.
	o.MinWatchTimeout, o.IdleGrace = time.Second, 2*time.Second
	h := start(t, api, o)
	h.waitHosts("default/web:http", "10.0.0.1:80")
	api.WaitRequests(fakeapi.IsWatch(""), 2) // the stalled one was given up
	api.PutEndpoints(endpoints("default", "web", 80, "10.0.0.9"))
	h.waitHosts("default/web:http", "10.0.0.9:80")
	assert.Equal(t, 1, lists(api.Requests()))
	assert.Equal(t, uint64(1), h.w.Stats().WatchErrors.Load())
}

func TestMalformedObjectsAreSkipped(t *testing.T) {
	api := fakeapi.New(t)
	api.PutEndpoints(endpoints("default", "web", 80, "10.0.0.1"))
	api.Fail(fakeapi.IsList(""), fakeapi.Malformed(), 1)
	h := start(t, api, fastOptions())
	eventually(t, "ready", h.w.Ready)
	h.waitHosts("default/web:http", "10.0.0.1:80")
	assert.Equal(t, uint64(1), h.w.Stats().Skipped.Load())

	// A malformed watch event is skipped too; the stream goes on and the
	// table keeps what it had. (The real apiserver refuses bad addresses on
	// write, so a bad value can only come from a broken object like this;
	// services_test.go covers bad addresses in an object.)
	api.WaitWatchers(1)
	api.Fail(fakeapi.IsWatch(""), fakeapi.Malformed(), 1)
	api.CloseWatches()
	api.WaitRequests(func(r fakeapi.Request) bool { return r.Watch && r.Fault != "" }, 1)
	api.PutEndpoints(endpoints("default", "other", 80, "10.0.0.5"))
	h.waitHosts("default/other:http", "10.0.0.5:80")
	assert.Equal(t, []string{"10.0.0.1:80"}, h.hosts("default/web:http"))
	assert.Equal(t, uint64(2), h.w.Stats().Skipped.Load())
	assert.Zero(t, h.w.Stats().WatchErrors.Load(), "a malformed object does not break the watch")
}

func TestTokenFileRotation(t *testing.T) {
	api := fakeapi.New(t, fakeapi.WithToken("one"))
	api.PutEndpoints(endpoints("default", "web", 80, "10.0.0.1"))
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("one\n"), 0o600))
	h := start(t, api, fastOptions(), apiserver.Options{Schema: "http", Host: api.Host(), Port: api.Port(), TokenFile: tokenFile})
	eventually(t, "ready", h.w.Ready)
	api.WaitWatchers(1) // the watch opens after the list is applied: CloseWatches below must find it

	// Rotate: the server now wants "two", the file says so.
	api.SetToken("two")
	require.NoError(t, os.WriteFile(tokenFile, []byte("two"), 0o600))
	future := time.Now().Add(time.Minute)
	require.NoError(t, os.Chtimes(tokenFile, future, future)) // a distinct mtime even on coarse clocks
	api.CloseWatches()
	reqs := api.WaitRequests(func(r fakeapi.Request) bool { return r.Authorization == "Bearer two" }, 1)
	assert.NotEmpty(t, reqs)
	api.PutEndpoints(endpoints("default", "web", 80, "10.0.0.2"))
	h.waitHosts("default/web:http", "10.0.0.2:80")
}

func TestSelectors(t *testing.T) {
	api := fakeapi.New(t)
	for _, ns := range []string{"default", "my-app", "my-app2", "kube-system"} {
		e := endpoints(ns, "web", 80, "10.0.0.1")
		e.Metadata.Labels = map[string]string{"tier": "front"}
		api.PutEndpoints(e)
	}
	api.PutEndpoints(endpoints("my-app", "nolabel", 80, "10.0.0.2"))
	nsSel, err := selector.NewNamespace("", "", nil, []string{"kube-.*", "my-app"})
	require.NoError(t, err)
	labels, err := selector.ParseLabels(`tier="front"`)
	require.NoError(t, err)
	o := fastOptions()
	o.Namespaces, o.LabelSelector = nsSel, labels.String()
	h := start(t, api, o)
	eventually(t, "ready", h.w.Ready)
	assert.NotNil(t, h.hosts("default/web:http"))
	assert.NotNil(t, h.hosts("my-app2/web:http"), "not_match is anchored: my-app does not exclude my-app2")
	assert.Nil(t, h.hosts("my-app/web:http"))
	assert.Nil(t, h.hosts("kube-system/web:http"))
	assert.Nil(t, h.hosts("my-app/nolabel:http"), "label selector applied by the server")
	assert.Equal(t, "tier=front", api.Requests()[0].Param("labelSelector"))

	eq, err := selector.NewNamespace("default", "", nil, nil)
	require.NoError(t, err)
	o.Namespaces = eq
	h2 := start(t, api, o)
	eventually(t, "ready", h2.w.Ready)
	assert.Nil(t, h2.hosts("my-app2/web:http"))
	found := false
	for _, r := range api.Requests() {
		found = found || r.Path == "/api/v1/namespaces/default/endpoints" && r.Param("fieldSelector") == ""
	}
	assert.True(t, found, "equal goes to the server as the namespaced path")

	neq, err := selector.NewNamespace("", "default", nil, nil)
	require.NoError(t, err)
	o.Namespaces = neq
	h3 := start(t, api, o)
	eventually(t, "ready", h3.w.Ready)
	assert.Nil(t, h3.hosts("default/web:http"))
	found = false
	for _, r := range api.Requests() {
		found = found || r.Path == "/api/v1/endpoints" && r.Param("fieldSelector") == "metadata.namespace!=default"
	}
	assert.True(t, found, "not_equal goes as a field selector on the cluster-wide path (it pages correctly)")
}

func TestEndpointSlicesEndToEnd(t *testing.T) {
	api := fakeapi.New(t)
	ready, notReady := true, false
	slice := func(name string, typ string, eps []fakeapi.Endpoint, ports ...fakeapi.EndpointSlicePort) *fakeapi.EndpointSlice {
		return &fakeapi.EndpointSlice{
			Metadata:    fakeapi.ObjectMeta{Namespace: "shop", Name: name, Labels: map[string]string{"kubernetes.io/service-name": "web"}},
			AddressType: typ, Endpoints: eps, Ports: ports,
		}
	}
	http := fakeapi.EndpointSlicePort{Name: fakeapi.Ptr("http"), Port: fakeapi.Ptr(int32(80))}
	api.PutEndpointSlice(slice("web-1", "IPv4", []fakeapi.Endpoint{
		{Addresses: []string{"10.0.0.2"}, Conditions: fakeapi.EndpointConditions{Ready: &ready}},
		{Addresses: []string{"10.0.0.3"}, Conditions: fakeapi.EndpointConditions{Ready: &notReady}},
	}, http))
	api.PutEndpointSlice(slice("web-2", "IPv4", []fakeapi.Endpoint{
		{Addresses: []string{"10.0.0.1"}}, // no conditions: ready
		{Addresses: []string{"10.0.0.2"}},
	}, http))
	o := fastOptions()
	o.EndpointSlices = true
	h := start(t, api, o)
	h.waitHosts("shop/web:http", "10.0.0.1:80", "10.0.0.2:80")
	api.WaitWatchers(1)

	api.PutEndpointSlice(slice("web-3", "FQDN", []fakeapi.Endpoint{{Addresses: []string{"db.example.com"}}}, http))
	h.waitHosts("shop/web:http", "10.0.0.1:80", "10.0.0.2:80", "db.example.com:80")
	api.DeleteEndpointSlice("shop", "web-2")
	h.waitHosts("shop/web:http", "10.0.0.2:80", "db.example.com:80")

	nodes, ok := h.table.Lookup(nil, "shop/web:http")
	require.True(t, ok)
	assert.Equal(t, netip.MustParseAddr("10.0.0.2"), nodes[0].Addr)
	assert.Equal(t, "db.example.com", nodes[1].Name)
}

func TestExpiredContinueRestartsTheList(t *testing.T) {
	api := fakeapi.New(t)
	for i := range 3 {
		api.PutEndpoints(endpoints("default", "svc"+strconv.Itoa(i), 80, "10.0.0."+strconv.Itoa(i+1)))
	}
	isContinue := func(r fakeapi.Request) bool { return !r.Watch && r.Param("continue") != "" }
	api.Fail(isContinue, fakeapi.Stall(), 1)
	o := fastOptions()
	o.PageSize = 1
	h := start(t, api, o)
	api.WaitRequests(isContinue, 1) // held between page 1 and page 2
	api.ExpireContinueTokens()
	api.ReleaseStalls()
	eventually(t, "ready", h.w.Ready)
	for i := range 3 {
		assert.NotNil(t, h.hosts("default/svc"+strconv.Itoa(i)+":http"))
	}
	var firstPages int
	for _, r := range api.Requests() {
		if !r.Watch && r.Param("continue") == "" {
			firstPages++
		}
	}
	assert.Equal(t, 2, firstPages, "the list restarted from its first page")
	assert.Zero(t, h.w.Stats().ListErrors.Load(), "an expired continue token is not an error")
}

// A relist that meets a malformed object keeps serving what that service
// had: a bad object must not take a service away.
func TestRelistKeepsServiceOfMalformedObject(t *testing.T) {
	api := fakeapi.New(t)
	api.PutEndpoints(endpoints("default", "malformed", 80, "10.0.0.1")) // the fault's malformed item has this name
	api.PutEndpoints(endpoints("default", "web", 80, "10.0.0.2"))
	h := start(t, api, fastOptions())
	h.waitHosts("default/malformed:http", "10.0.0.1:80")
	api.WaitWatchers(1)

	// Disconnected; meanwhile the object turns malformed and history is
	// compacted, so kdisc must list again. The relist's fault is armed
	// before the watch may succeed (ClearFaults first would let the relist
	// slip in between).
	var down atomic.Bool
	down.Store(true)
	api.Fail(func(r fakeapi.Request) bool { return r.Watch && down.Load() }, fakeapi.InternalError(), -1)
	api.CloseWatches()
	api.WaitRequests(func(r fakeapi.Request) bool { return r.Watch && r.Fault != "" }, 1)
	api.DeleteEndpoints("default", "malformed")
	api.PutEndpoints(endpoints("default", "web", 80, "10.0.0.3"))
	api.Compact()
	api.Fail(fakeapi.IsList(""), fakeapi.Malformed(), 1)
	down.Store(false)

	// An Endpoints list writes each service as it comes: wait for the
	// relist's end, after which the loop watches again (a watch after the
	// list the fault answered), not for web.
	eventually(t, "a watch after the relist", func() bool {
		listed := false
		for _, r := range api.Requests() {
			listed = listed || !r.Watch && r.Fault != ""
			if listed && r.Watch && r.Fault == "" {
				return true
			}
		}
		return false
	})
	h.waitHosts("default/web:http", "10.0.0.3:80")
	assert.Equal(t, uint64(1), h.w.Stats().Relists.Load())
	assert.Equal(t, uint64(1), h.w.Stats().Skipped.Load())
	assert.Equal(t, []string{"10.0.0.1:80"}, h.hosts("default/malformed:http"), "the malformed object's service keeps its last value")
}

// A service a full table refused is stored once deletes free space.
func TestFullTableStoresRefusedServiceLater(t *testing.T) {
	api := fakeapi.New(t)
	h := startStore(t, apiserver.Options{Schema: "http", Host: api.Host(), Port: api.Port()}, fastOptions(), 16<<10, nil)
	w, r := h.w, h.table
	eventually(t, "ready", w.Ready)
	api.WaitWatchers(1)

	var names []string
	for i := 0; w.Stats().TableFull.Load() == 0; i++ {
		require.Less(t, i, 2000, "a 16k table must fill up")
		name := "svc-" + strconv.Itoa(i)
		names = append(names, name)
		api.PutEndpoints(endpoints("default", name, 80, "10.1.0.1", "10.1.0.2", "10.1.0.3"))
		eventually(t, name+" applied", func() bool {
			_, ok := r.Lookup(nil, "default/"+name+":http")
			return ok || w.Stats().TableFull.Load() > 0
		})
	}
	refused := names[len(names)-1]
	_, ok := r.Lookup(nil, "default/"+refused+":http")
	require.False(t, ok, "the refused service is not in the table")
	for _, name := range names[:len(names)/2] {
		api.DeleteEndpoints("default", name)
	}
	eventually(t, refused+" stored after deletes freed space", func() bool {
		_, ok := r.Lookup(nil, "default/"+refused+":http")
		return ok
	})
	assert.Equal(t, uint64(1), w.Stats().TableFull.Load(), "counted once, not once per retry")
}

// countingStore counts, per key, the Puts that change the table: a Put of
// the value it holds changes nothing (no write, no OnChange).
type countingStore struct {
	*shm.Writer
	r    *shm.Reader
	mu   sync.Mutex
	puts map[string]int
}

func newCountingStore(t *testing.T, table *shm.Writer) countingStore {
	r := table.Reader()
	t.Cleanup(func() { r.Close() })
	return countingStore{Writer: table, r: r, puts: map[string]int{}}
}

func (c *countingStore) Put(key string, ports []shm.Port) error {
	if old, ok := c.r.Get(key); !ok || fmt.Sprint(old) != fmt.Sprint(ports) {
		c.mu.Lock()
		c.puts[strings.Clone(key)]++ // key is the caller's until Put returns
		c.mu.Unlock()
	}
	return c.Writer.Put(key, ports)
}

func (c *countingStore) count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.puts[key]
}

// A relist rewrites only the services that changed.
func TestRelistWritesOnlyChanges(t *testing.T) {
	api := fakeapi.New(t)
	api.PutEndpoints(endpoints("default", "same", 80, "10.0.0.1"))
	api.PutEndpoints(endpoints("default", "moved", 80, "10.0.0.2"))
	var store *countingStore
	h := startStore(t, apiserver.Options{Schema: "http", Host: api.Host(), Port: api.Port()}, fastOptions(), 1<<20, func(table *shm.Writer) Store {
		c := newCountingStore(t, table)
		store = &c
		return store
	})
	w := h.w
	eventually(t, "ready", w.Ready)
	api.WaitWatchers(1)
	firstSync := w.Status().LastSync

	api.Fail(fakeapi.IsWatch(""), fakeapi.InternalError(), -1)
	api.CloseWatches()
	api.WaitRequests(func(r fakeapi.Request) bool { return r.Watch && r.Fault != "" }, 1)
	api.PutEndpoints(endpoints("default", "moved", 80, "10.0.0.3"))
	api.Compact()
	api.ClearFaults()
	// A list is counted before its table writes, and "same" is written
	// (or not) in map order beside "moved": wait for the relist to be
	// applied whole (readers see "moved" changed, and the list's sync is
	// recorded after every write).
	eventually(t, "relist applied", func() bool {
		return w.Stats().Relists.Load() == 1 && store.count("default/moved") == 2 && w.Status().LastSync.After(firstSync)
	})
	assert.Equal(t, 1, store.count("default/same"), "unchanged: written by the first list only")
}

// namespace_selector.equal lists and watches the one namespace on its
// namespaced path, with no namespace field selector: the real apiserver
// drops every page after the first of a cluster-wide LIST with
// fieldSelector=metadata.namespace=X (issue 6, defect 1; the fake
// reproduces it).
func TestNamespaceEqualListsEveryPageOnTheNamespacedPath(t *testing.T) {
	for _, slices := range []bool{false, true} {
		t.Run("slices="+strconv.FormatBool(slices), func(t *testing.T) {
			api := fakeapi.New(t)
			put := func(ns, name, ip string) {
				if slices {
					api.PutEndpointSlice(&fakeapi.EndpointSlice{
						Metadata:    fakeapi.ObjectMeta{Namespace: ns, Name: name + "-1", Labels: map[string]string{"kubernetes.io/service-name": name}},
						AddressType: "IPv4", Endpoints: []fakeapi.Endpoint{{Addresses: []string{ip}}},
						Ports: []fakeapi.EndpointSlicePort{{Name: fakeapi.Ptr("http"), Port: fakeapi.Ptr(int32(80))}},
					})
				} else {
					api.PutEndpoints(endpoints(ns, name, 80, ip))
				}
			}
			for i := range 5 {
				put("trap", "svc"+strconv.Itoa(i), "10.0.0."+strconv.Itoa(i+1))
				put("other", "svc"+strconv.Itoa(i), "10.0.1."+strconv.Itoa(i+1))
			}
			eq, err := selector.NewNamespace("trap", "", nil, nil)
			require.NoError(t, err)
			o := fastOptions()
			o.PageSize, o.Namespaces, o.EndpointSlices = 2, eq, slices
			h := start(t, api, o)
			eventually(t, "ready", h.w.Ready)
			for i := range 5 {
				assert.Equal(t, []string{"10.0.0." + strconv.Itoa(i+1) + ":80"}, h.hosts("trap/svc"+strconv.Itoa(i)+":http"), "svc%d", i)
				assert.Nil(t, h.hosts("other/svc"+strconv.Itoa(i)+":http"))
			}
			api.WaitRequests(fakeapi.IsWatch(""), 1)
			put("trap", "late", "10.0.0.9")
			h.waitHosts("trap/late:http", "10.0.0.9:80")
			prefix := "/api/v1/namespaces/trap/endpoints"
			if slices {
				prefix = "/apis/discovery.k8s.io/v1/namespaces/trap/endpointslices"
			}
			for _, r := range api.Requests() {
				assert.Equal(t, prefix, r.Path)
				assert.Empty(t, r.Param("fieldSelector"), "no namespace field selector on the namespaced path")
			}
		})
	}
}

// refusingDetailStore is a table whose PutDetail of one key always finds
// the table full.
type refusingDetailStore struct {
	countingStore
	refuse string
}

func (s *refusingDetailStore) PutDetail(key string, detail []byte) error {
	if key == s.refuse {
		return &shm.FullError{Key: key, Need: len(detail), Size: 1 << 20}
	}
	return s.Writer.PutDetail(key, detail)
}

// Issue 14, defect 1 (node detail): a detail the table refuses after it
// stored the service's nodes is no refused service (not counted in
// TableFull), and the deletes that follow retry the detail only: they do
// not write the unchanged nodes again (and notify OnChange) each time.
// Before the fix: TableFull 1, and one more Put of default/big per delete.
func TestRefusedDetailIsNotARefusedService(t *testing.T) {
	api := fakeapi.New(t)
	var store *refusingDetailStore
	o := fastOptions()
	o.NodeDetail = true
	h := startStore(t, apiserver.Options{Schema: "http", Host: api.Host(), Port: api.Port()}, o, 1<<20, func(table *shm.Writer) Store {
		store = &refusingDetailStore{countingStore: newCountingStore(t, table), refuse: "default/big"}
		return store
	})
	w, r := h.w, h.table
	eventually(t, "ready", w.Ready)
	api.WaitWatchers(1)

	api.PutEndpoints(endpoints("default", "big", 80, "10.1.0.1", "10.1.0.2"))
	eventually(t, "default/big stored", func() bool { _, ok := r.Lookup(nil, "default/big:http"); return ok })
	for i := range 3 {
		name := "other-" + strconv.Itoa(i)
		api.PutEndpoints(endpoints("default", name, 80, "10.2.0.1"))
		eventually(t, name+" stored", func() bool { _, ok := r.Lookup(nil, "default/"+name+":http"); return ok })
		api.DeleteEndpoints("default", name)
		eventually(t, name+" deleted", func() bool { _, ok := r.Lookup(nil, "default/"+name+":http"); return !ok })
	}
	// The retries follow each delete's table write: wait for the last
	// delete to be applied whole (an event is counted after the sink).
	eventually(t, "3 deletes applied", func() bool { return w.Stats().Deleted.Load() == 3 })
	assert.Equal(t, uint64(0), w.Stats().TableFull.Load(), "the nodes were stored: no service refused")
	assert.Equal(t, 1, store.count("default/big"), "the unchanged nodes are not written again on every delete")
}
