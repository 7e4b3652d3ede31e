package replay

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc"
	"github.com/kdisc/kdisc/config"
)

func start(t *testing.T, o Options) (*Server, string) {
	t.Helper()
	s := New(o)
	hs := httptest.NewServer(s)
	t.Cleanup(func() { s.Close(); hs.Close() })
	return s, hs.URL
}

type meta struct {
	Name            string            `json:"name"`
	Namespace       string            `json:"namespace"`
	ResourceVersion string            `json:"resourceVersion"`
	Continue        string            `json:"continue"`
	Remaining       *int              `json:"remainingItemCount"`
	Annotations     map[string]string `json:"annotations"`
	Labels          map[string]string `json:"labels"`
}

type object struct {
	Kind     string `json:"kind"`
	Metadata meta   `json:"metadata"`
}

type list struct {
	Kind     string   `json:"kind"`
	Metadata meta     `json:"metadata"`
	Items    []object `json:"items"`
}

type event struct {
	Type   string `json:"type"`
	Object object `json:"object"`
}

func get(t *testing.T, base, path string, q url.Values) *http.Response {
	t.Helper()
	resp, err := http.Get(base + path + "?" + q.Encode())
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestListPages(t *testing.T) {
	for _, slices := range []bool{false, true} {
		s, base := start(t, Options{Services: 7, Events: 2, Slices: slices})
		var names []string
		cont := ""
		pages := 0
		for {
			q := url.Values{"limit": {"3"}}
			if cont != "" {
				q.Set("continue", cont)
			}
			resp := get(t, base, s.Path(), q)
			require.Equal(t, 200, resp.StatusCode)
			assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			var l list
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&l))
			assert.Equal(t, "7", l.Metadata.ResourceVersion)
			pages++
			for _, it := range l.Items {
				names = append(names, it.Metadata.Namespace+"/"+it.Metadata.Name)
			}
			if l.Metadata.Continue == "" {
				assert.Nil(t, l.Metadata.Remaining)
				break
			}
			require.NotNil(t, l.Metadata.Remaining)
			assert.Equal(t, 7-len(names), *l.Metadata.Remaining)
			cont = l.Metadata.Continue
		}
		assert.Equal(t, 3, pages)
		require.Len(t, names, 7)
		if slices {
			assert.Equal(t, "team-1/service-1-x7k2p", names[1])
		} else {
			assert.Equal(t, "team-1/service-1", names[1])
		}

		// No limit: everything in one page.
		var l list
		require.NoError(t, json.NewDecoder(get(t, base, s.Path(), nil).Body).Decode(&l))
		assert.Len(t, l.Items, 7)
		assert.Empty(t, l.Metadata.Continue)
		lists, _, _, _ := s.Stats()
		assert.Equal(t, int64(4), lists)
	}
}

func TestBadRequests(t *testing.T) {
	s, base := start(t, Options{Services: 2, Events: 1})
	for _, q := range []url.Values{
		{"continue": {"bogus"}},
		{"limit": {"-1"}},
		{"watch": {"1"}, "resourceVersion": {"abc"}},
		{"watch": {"1"}, "sendInitialEvents": {"true"}},
	} {
		resp := get(t, base, s.Path(), q)
		assert.Equal(t, 400, resp.StatusCode, q)
		b, _ := io.ReadAll(resp.Body)
		assert.Contains(t, string(b), `"kind":"Status"`)
	}
	assert.Equal(t, 404, get(t, base, "/apis/discovery.k8s.io/v1/endpointslices", nil).StatusCode)
}

// readEvents reads n watch events, checking each line is one JSON event.
func readEvents(t *testing.T, r *bufio.Reader, n int) []event {
	t.Helper()
	var out []event
	for range n {
		line, err := r.ReadBytes('\n')
		require.NoError(t, err)
		var ev event
		require.NoError(t, json.Unmarshal(line, &ev), "%s", line)
		out = append(out, ev)
	}
	return out
}

func TestWatchReplaysThenSentinel(t *testing.T) {
	for _, slices := range []bool{false, true} {
		s, base := start(t, Options{Services: 5, Events: 12, Slices: slices})
		resp := get(t, base, s.Path(), url.Values{"watch": {"1"}, "resourceVersion": {"5"}, "allowWatchBookmarks": {"true"}})
		require.Equal(t, 200, resp.StatusCode)
		evs := readEvents(t, bufio.NewReader(resp.Body), 13)
		for i, ev := range evs[:12] {
			assert.Equal(t, "MODIFIED", ev.Type)
			assert.Equal(t, strconv.Itoa(6+i), ev.Object.Metadata.ResourceVersion)
		}
		last := evs[12]
		assert.Equal(t, "ADDED", last.Type)
		assert.Equal(t, SentinelNamespace, last.Object.Metadata.Namespace)
		assert.Equal(t, "18", last.Object.Metadata.ResourceVersion)
		assert.Equal(t, 18, s.LastRV())
		if slices {
			assert.Equal(t, "EndpointSlice", last.Object.Kind)
			assert.Equal(t, SentinelName, last.Object.Metadata.Labels["kubernetes.io/service-name"])
		} else {
			assert.Equal(t, SentinelName, last.Object.Metadata.Name)
		}

		// Resuming from an event's resourceVersion replays what follows it.
		resp = get(t, base, s.Path(), url.Values{"watch": {"1"}, "resourceVersion": {"15"}})
		evs = readEvents(t, bufio.NewReader(resp.Body), 3)
		assert.Equal(t, "16", evs[0].Object.Metadata.ResourceVersion)
		assert.Equal(t, "ADDED", evs[2].Type)
	}
}

func TestStreamingList(t *testing.T) {
	s, base := start(t, Options{Services: 4, Events: 3, Slices: true})
	resp := get(t, base, s.Path(), url.Values{
		"watch": {"1"}, "sendInitialEvents": {"true"}, "resourceVersionMatch": {"NotOlderThan"},
		"allowWatchBookmarks": {"true"}, "resourceVersion": {""},
	})
	require.Equal(t, 200, resp.StatusCode)
	evs := readEvents(t, bufio.NewReader(resp.Body), 4+1+3+1)
	for _, ev := range evs[:4] {
		assert.Equal(t, "ADDED", ev.Type)
	}
	bm := evs[4]
	assert.Equal(t, "BOOKMARK", bm.Type)
	assert.Equal(t, "EndpointSlice", bm.Object.Kind)
	assert.Equal(t, "4", bm.Object.Metadata.ResourceVersion)
	assert.Equal(t, "true", bm.Object.Metadata.Annotations["k8s.io/initial-events-end"])
	assert.Equal(t, "MODIFIED", evs[5].Type)
	assert.Equal(t, "ADDED", evs[8].Type)
	_, _, streaming, _ := s.Stats()
	assert.Equal(t, int64(1), streaming)
}

func TestWatchEnds(t *testing.T) {
	s, base := start(t, Options{Services: 1, Events: 1})
	// timeoutSeconds ends the stream cleanly once replayed.
	begin := time.Now()
	resp := get(t, base, s.Path(), url.Values{"watch": {"1"}, "timeoutSeconds": {"1"}})
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, 2, strings.Count(string(b), "\n"))
	assert.Less(t, time.Since(begin), 5*time.Second)

	// Close ends open watches.
	resp = get(t, base, s.Path(), url.Values{"watch": {"1"}})
	done := make(chan struct{})
	go func() { _, _ = io.ReadAll(resp.Body); close(done) }()
	time.Sleep(50 * time.Millisecond)
	s.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("watch still open after Close")
	}
}

func TestObjectSizes(t *testing.T) {
	for _, slices := range []bool{false, true} {
		s := New(Options{Services: 100, Events: 100, Slices: slices})
		l, r := s.Sizes()
		// Real-looking: about 1.2 to 2 KB per object with 3 addresses.
		assert.InDelta(t, 1600, l/100, 450, "slices=%v", slices)
		assert.InDelta(t, 1600, r/101, 450, "slices=%v", slices)
	}
}

// TestKdiscReadsIt runs kdisc itself against the replay: every service
// listed, every event applied, the sentinel found last.
func TestKdiscReadsIt(t *testing.T) {
	for _, slices := range []bool{false, true} {
		t.Run(map[bool]string{false: "endpoints", true: "endpointslices"}[slices], func(t *testing.T) {
			const services, events = 300, 1000
			_, base := start(t, Options{Services: services, Events: events, Slices: slices})
			u, _ := url.Parse(base)
			cfg, err := config.Parse([]byte("discovery:\n  kubernetes:\n    service: {schema: http, host: " + u.Hostname() +
				", port: " + u.Port() + "}\n    client: {token: t}\n    watch_endpoint_slices: " + strconv.FormatBool(slices) + "\n"))
			require.NoError(t, err)
			d, err := kdisc.Start(context.Background(), cfg)
			require.NoError(t, err)
			defer d.Close()
			deadline := time.Now().Add(20 * time.Second)
			for {
				if _, ok := d.Nodes(nil, Sentinel); ok {
					break
				}
				require.True(t, time.Now().Before(deadline), "sentinel not seen")
				time.Sleep(time.Millisecond)
			}
			assert.True(t, d.Ready())
			// The last event of service 7 decides its nodes.
			last := 0
			for i := range events {
				if i%services == 7 {
					last = i
				}
			}
			nodes, ok := d.Nodes(nil, "team-7/service-7:http")
			require.True(t, ok)
			require.Len(t, nodes, 3)
			want := string(ip(nil, services+1+last, services+last, 0))
			assert.Contains(t, []string{nodes[0].Host(), nodes[1].Host(), nodes[2].Host()}, want)
			assert.Equal(t, uint16(8080), nodes[0].Port)
			assert.Len(t, d.Dump().Endpoints[0].Endpoints, services+1)
		})
	}
}

// BenchmarkWatchStream is how fast the replay can be read over loopback:
// far faster than any client decodes it.
func BenchmarkWatchStream(b *testing.B) {
	s := New(Options{Services: 1000, Events: 20000})
	hs := httptest.NewServer(s)
	defer func() { s.Close(); hs.Close() }()
	_, size := s.Sizes()
	b.SetBytes(int64(size))
	for b.Loop() {
		resp, err := http.Get(hs.URL + s.Path() + "?watch=1&resourceVersion=1000&timeoutSeconds=0")
		if err != nil {
			b.Fatal(err)
		}
		r := bufio.NewReaderSize(resp.Body, 1<<20)
		got := 0
		for got < size {
			n, err := r.Discard(min(1<<20, size-got))
			got += n
			if err != nil {
				b.Fatal(err)
			}
		}
		resp.Body.Close()
	}
}

// A paced replay (bench/latency) holds its events until Gate closes, but
// the initial events and their bookmark reach the client at once: a
// streaming list is ready before the pacing starts.
func TestPacedStreamingListDeliversInitialEventsBeforeGate(t *testing.T) {
	gate := make(chan struct{}) // never closed here
	s, base := start(t, Options{Services: 2, Events: 3, Rate: 1000, Gate: gate})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+s.Path()+"?"+url.Values{
		"watch": {"1"}, "sendInitialEvents": {"true"}, "resourceVersionMatch": {"NotOlderThan"},
		"allowWatchBookmarks": {"true"}, "resourceVersion": {""},
	}.Encode(), nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	evs := readEvents(t, bufio.NewReader(resp.Body), 2+1) // fails at the deadline if held back
	assert.Equal(t, "BOOKMARK", evs[2].Type)
	assert.Equal(t, "true", evs[2].Object.Metadata.Annotations["k8s.io/initial-events-end"])
}
