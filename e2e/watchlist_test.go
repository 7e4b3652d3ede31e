package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc/internal/fakeapi"
	"github.com/kdisc/kdisc/internal/kubetest"
)

// watchListServices is more than one LIST page of kdisc (limit 500): the
// streaming list has no pages, every object comes on one stream.
const watchListServices = 600

// TestStreamingListOnRealServer: against the real kube-apiserver v1.37,
// `kdisc run` lists Endpoints and EndpointSlices with a streaming list (one
// WATCH with sendInitialEvents, ready at its initial-events-end bookmark),
// never a LIST, serves every object once ready, and takes later changes on
// the same stream.
func TestStreamingListOnRealServer(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c.APIServer, "e2e-watchlist")
	cctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	require.NoError(t, kubetest.ForEach(cctx, watchListServices, 16, func(ctx context.Context, i int) error {
		name := bigName(i)
		if _, err := c.ApplyEndpoints(ctx, ns, name, kubetest.Subset([]string{bigIP("10.73.", i)}, httpPort)); err != nil {
			return err
		}
		_, err := c.ApplyEndpointSlice(ctx, ns, kubetest.EndpointSlice{Name: name + "-x1", Service: name,
			Ports: []kubetest.SlicePort{kubetest.Port("http", 8080)}, Endpoints: []kubetest.SliceEndpoint{{Addresses: []string{bigIP("10.74.", i)}}}})
		return err
	}))

	for _, slices := range []bool{false, true} {
		t.Run("slices="+strconv.FormatBool(slices), func(t *testing.T) {
			want, _, err := apiServices(ctx(t), c.APIServer, ns, slices, 50)
			require.NoError(t, err)
			require.Len(t, want, watchListServices)
			d := newDaemon(t, singleConfig(c.KdiscCluster(fmt.Sprintf("namespace_selector:\n  equal: %s\nwatch_endpoint_slices: %v\n", ns, slices))))
			d.Start()
			d.WaitReady(30 * time.Second)
			got, err := kdiscServices(d, ns)
			require.NoError(t, err)
			assert.Empty(t, want.diff(got), "every service of the namespace is served once ready")

			m := mustScrape(t, d)
			one := map[string]string{"cluster": ""}
			assertCounter(t, m, "kdisc_lists_by_mode_total", map[string]string{"cluster": "", "mode": "streaming"}, 1)
			assertCounter(t, m, "kdisc_lists_by_mode_total", map[string]string{"cluster": "", "mode": "paginated"}, 0)
			assertCounter(t, m, "kdisc_streaming_list", one, 1)
			assertCounter(t, m, "kdisc_list_errors_total", one, 0)
			_, listed := metric(m, "kdisc_apiserver_requests_total", map[string]string{"cluster": "", "verb": "list"})
			assert.False(t, listed, "no LIST request at all")
			// The list is logged after readiness is set: wait for the line.
			eventually(t, 10*time.Second, "the list logged as streaming", func() (bool, string) {
				return strings.Contains(d.Logs(), "mode=streaming"), "no mode=streaming in the log"
			})

			// A change after the initial events comes on the same stream.
			last := bigName(watchListServices - 1)
			if slices {
				_, err = c.ApplyEndpointSlice(ctx(t), ns, kubetest.EndpointSlice{Name: "late-x1", Service: "late",
					Ports: []kubetest.SlicePort{kubetest.Port("http", 8080)}, Endpoints: []kubetest.SliceEndpoint{{Addresses: []string{"10.75.0.2"}}}})
				require.NoError(t, err)
				d.waitNodes(ns+"/late:http", nodesJSON(50, "10.75.0.2:8080"))
				require.NoError(t, c.DeleteEndpointSlice(ctx(t), ns, "late-x1"))
			} else {
				_, err = c.ApplyEndpoints(ctx(t), ns, "late", kubetest.Subset([]string{"10.75.0.1"}, httpPort))
				require.NoError(t, err)
				d.waitNodes(ns+"/late:http", nodesJSON(50, "10.75.0.1:80"))
				require.NoError(t, c.DeleteEndpoints(ctx(t), ns, "late"))
			}
			d.waitNodes(ns+"/late:http", "")
			assert.NotEmpty(t, got[ns+"/"+last])
			m = mustScrape(t, d)
			assertCounter(t, m, "kdisc_apiserver_requests_total", map[string]string{"cluster": "", "verb": "watch", "code": "200"}, 1)
			assertCounter(t, m, "kdisc_watches_total", one, 1)
		})
	}
}

// TestStreamingListFallbackToPages: `kdisc run` against an apiserver that
// refuses the streaming list as v1.33 does (422 Invalid: the WatchList
// feature gate is off) lists in pages at once, says so once in its log and
// in /metrics, and does not ask again after a 410 relist.
func TestStreamingListFallbackToPages(t *testing.T) {
	api := fakeapi.New(t, fakeapi.WithoutWatchList(), fakeapi.WithToken("tok"))
	for i := range 700 {
		api.PutEndpoints(fakeapi.NewEndpoints("default", bigName(i), "http", 80, bigIP("10.76.", i)))
	}
	d := newDaemon(t, singleConfig(fmt.Sprintf("service: {schema: http, host: %s, port: %d}\nclient: {token: tok}\n", api.Host(), api.Port())))
	d.Start()
	d.WaitReady(30 * time.Second)
	got, err := kdiscServices(d, "default")
	require.NoError(t, err)
	assert.Len(t, got, 700)

	// A 410: the relist is paginated too.
	api.Fail(fakeapi.IsWatch(""), fakeapi.InternalError(), -1)
	api.CloseWatches()
	api.WaitRequests(func(r fakeapi.Request) bool { return r.Fault != "" }, 1)
	api.DeleteEndpoints("default", bigName(0))
	api.Compact()
	api.ClearFaults()
	d.waitNodes("default/"+bigName(0)+":http", "")

	m := mustScrape(t, d)
	one := map[string]string{"cluster": ""}
	assertCounter(t, m, "kdisc_streaming_list", one, 0)
	assertCounter(t, m, "kdisc_lists_by_mode_total", map[string]string{"cluster": "", "mode": "paginated"}, 2)
	assertCounter(t, m, "kdisc_lists_by_mode_total", map[string]string{"cluster": "", "mode": "streaming"}, 0)
	assertCounter(t, m, "kdisc_apiserver_requests_total", map[string]string{"cluster": "", "verb": "watch", "code": "422"}, 1)
	assertCounter(t, m, "kdisc_list_errors_total", one, 0)
	streaming, lists := 0, 0
	for _, r := range api.Requests() {
		if r.Param("sendInitialEvents") != "" {
			streaming++
		}
		if r.Resource != "" && !r.Watch {
			lists++
		}
	}
	assert.Equal(t, 1, streaming, "asked once")
	assert.Equal(t, 4, lists, "two paginated lists of two pages")
	assert.Equal(t, 1, strings.Count(d.Logs(), "listing in pages from now on"), "logged once")
}

func assertCounter(t *testing.T, m []sample, name string, labels map[string]string, want float64) {
	t.Helper()
	v, ok := metric(m, name, labels)
	if assert.True(t, ok, "/metrics has %s%v", name, labels) {
		assert.Equal(t, want, v, "%s%v", name, labels)
	}
}
