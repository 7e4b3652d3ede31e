package fakeapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
)

func ep(ns, name string, labels map[string]string, ips ...string) *Endpoints {
	var addrs []EndpointAddress
	for _, ip := range ips {
		addrs = append(addrs, EndpointAddress{IP: ip})
	}
	return &Endpoints{
		Metadata: ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Subsets:  []EndpointSubset{{Addresses: addrs, Ports: []EndpointPort{{Name: "http", Port: 80, Protocol: "TCP"}}}},
	}
}

func TestWatchReplaysThenStreams(t *testing.T) {
	s := loaded(t)
	from := list(t, s, "/api/v1/endpoints").Metadata.ResourceVersion

	rvAdd := s.PutEndpoints(ep("ns", "a", nil, "10.0.0.1"))
	s.PutEndpointSlice(&EndpointSlice{Metadata: ObjectMeta{Name: "a-1", Namespace: "ns"}, AddressType: "IPv4"})
	rvMod := s.PutEndpoints(ep("ns", "a", nil, "10.0.0.1", "10.0.0.2"))
	rvDel := s.DeleteEndpoints("ns", "a")

	w := watch(t, s, "/api/v1/endpoints?watch=1&allowWatchBookmarks=true&resourceVersion="+from)
	if w.resp.StatusCode != 200 || w.resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %v", w.resp.StatusCode, w.resp.Header)
	}
	for _, want := range []struct{ typ, rv string }{{"ADDED", rvAdd}, {"MODIFIED", rvMod}, {"DELETED", rvDel}} {
		ev := w.next()
		m := meta(t, ev.Object)
		if ev.Type != want.typ || m.ResourceVersion != want.rv || m.Name != "a" {
			t.Fatalf("got %s %s, want %s at %s", ev.Type, ev.Object, want.typ, want.rv)
		}
		if !bytes.HasPrefix(ev.Object, []byte(`{"kind":"Endpoints","apiVersion":"v1","metadata":`)) {
			t.Fatalf("event object lacks kind/apiVersion: %s", ev.Object)
		}
	}
	// Live.
	rv := s.PutEndpoints(ep("ns", "b", nil, "10.0.0.3"))
	if ev := w.next(); ev.Type != "ADDED" || meta(t, ev.Object).ResourceVersion != rv {
		t.Fatalf("live: %s %s", ev.Type, ev.Object)
	}
	// The log shows the watch resumed from the list's revision.
	r := s.WaitRequests(IsWatch(EndpointsResource), 1)[0]
	if r.Param("resourceVersion") != from || r.Param("allowWatchBookmarks") != "true" || !r.Watch {
		t.Fatalf("logged %+v", r)
	}
}

func TestWatchFromZeroSendsCurrentState(t *testing.T) {
	s := loaded(t)
	w := watch(t, s, "/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices?watch=true&resourceVersion=0")
	var got []string
	for range 4 {
		ev := w.next()
		if ev.Type != "ADDED" {
			t.Fatalf("%s", ev.Type)
		}
		m := meta(t, ev.Object)
		got = append(got, m.Namespace+"/"+m.Name)
	}
	slices.Sort(got)
	if want := []string{"shop/empty-2kd8s", "shop/legacy-x8kfj", "shop/web-4bqzd", "shop/web-p9c2m"}; !slices.Equal(got, want) {
		t.Fatalf("%v", got)
	}
}

func TestSendInitialEventsEndsWithAnnotatedBookmark(t *testing.T) {
	s := loaded(t)
	w := watch(t, s, "/api/v1/namespaces/ipv6/endpoints?watch=1&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan")
	if ev := w.next(); ev.Type != "ADDED" {
		t.Fatal(ev.Type)
	}
	ev := w.next()
	want := `{"kind":"Endpoints","apiVersion":"v1","metadata":{"resourceVersion":"` + s.ResourceVersion() + `","annotations":{"k8s.io/initial-events-end":"true"}}}`
	if ev.Type != "BOOKMARK" || string(ev.Object) != want {
		t.Fatalf("%s %s", ev.Type, ev.Object)
	}
}

func TestWatchTooOld(t *testing.T) {
	s := loaded(t)
	old := s.ResourceVersion()
	s.PutEndpoints(ep("ns", "a", nil, "10.0.0.1"))
	s.Compact()
	cur := s.ResourceVersion()
	wantStatus := `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: ` +
		old + ` (` + cur + `)","reason":"Expired","code":410}`

	// The real server: 200, one ERROR event, end of stream.
	w := watch(t, s, "/api/v1/endpoints?watch=1&resourceVersion="+old)
	if w.resp.StatusCode != 200 {
		t.Fatal(w.resp.StatusCode)
	}
	if ev := w.next(); ev.Type != "ERROR" || string(ev.Object) != wantStatus {
		t.Fatalf("%s %s", ev.Type, ev.Object)
	}
	if err := w.end(); err != io.EOF {
		t.Fatalf("stream end: %v", err)
	}
	// Watching from the compaction point itself is fine.
	w = watch(t, s, "/api/v1/endpoints?watch=1&resourceVersion="+cur)
	rv := s.PutEndpoints(ep("ns", "b", nil, "10.0.0.1"))
	if ev := w.next(); meta(t, ev.Object).ResourceVersion != rv {
		t.Fatal(string(ev.Object))
	}

	// The switch: an immediate HTTP 410.
	s2 := New(t, WithWatchExpiredAsHTTPError())
	s2.PutEndpoints(ep("ns", "a", nil, "10.0.0.1"))
	s2.Compact()
	resp, b := get(t, s2, "/api/v1/endpoints?watch=1&resourceVersion=1000")
	if resp.StatusCode != 410 || strings.TrimSpace(string(b)) != `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1000 (1001)","reason":"Expired","code":410}` {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	if n := s2.ActiveWatchers(); n != 0 {
		t.Fatalf("%d watchers left", n)
	}
}

func TestWatchTooNewAndBadRV(t *testing.T) {
	s := New(t)
	resp, b := get(t, s, "/api/v1/endpoints?watch=1&resourceVersion=99999")
	if st := status(t, b); resp.StatusCode != 504 || st.Reason != "Timeout" || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	resp, b = get(t, s, "/api/v1/endpoints?watch=1&resourceVersion=abc")
	if resp.StatusCode != 400 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
}

func TestBookmarks(t *testing.T) {
	s := loaded(t)
	from := s.ResourceVersion()
	with := watch(t, s, "/apis/discovery.k8s.io/v1/endpointslices?watch=1&allowWatchBookmarks=true&resourceVersion="+from)
	without := watch(t, s, "/apis/discovery.k8s.io/v1/endpointslices?watch=1&resourceVersion="+from)
	s.WaitWatchers(2)
	s.SendBookmark()
	rv := s.PutEndpointSlice(&EndpointSlice{Metadata: ObjectMeta{Name: "n", Namespace: "ns"}, AddressType: "IPv4"})

	ev := with.next()
	want := `{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"resourceVersion":"` + from + `"},"addressType":"","endpoints":null,"ports":null}`
	if ev.Type != "BOOKMARK" || string(ev.Object) != want {
		t.Fatalf("%s %s", ev.Type, ev.Object)
	}
	if ev := with.next(); ev.Type != "ADDED" {
		t.Fatal(ev.Type)
	}
	// No bookmark for a watch that did not ask: the next event is the put.
	if ev := without.next(); ev.Type != "ADDED" || meta(t, ev.Object).ResourceVersion != rv {
		t.Fatalf("%s %s", ev.Type, ev.Object)
	}
}

func TestWatchSelectorTransitions(t *testing.T) {
	s := New(t)
	s.PutEndpoints(ep("ns", "a", map[string]string{"app": "web"}, "10.0.0.1"))
	w := watch(t, s, "/api/v1/endpoints?watch=1&labelSelector=app%3Dweb&fieldSelector=metadata.namespace%3Dns&resourceVersion="+s.ResourceVersion())
	s.PutEndpoints(ep("other", "a", map[string]string{"app": "web"}, "10.0.0.1")) // other namespace: unseen
	s.PutEndpoints(ep("ns", "a", map[string]string{"app": "db"}, "10.0.0.1"))     // leaves the selection
	s.PutEndpoints(ep("ns", "a", map[string]string{"app": "db"}, "10.0.0.2"))     // unseen
	s.PutEndpoints(ep("ns", "a", map[string]string{"app": "web"}, "10.0.0.3"))    // enters it
	s.PutEndpoints(ep("ns", "a", map[string]string{"app": "web"}, "10.0.0.4"))
	s.DeleteEndpoints("ns", "a")
	var got []string
	for range 4 {
		ev := w.next()
		var e Endpoints
		if err := json.Unmarshal(ev.Object, &e); err != nil {
			t.Fatal(err)
		}
		got = append(got, ev.Type+" "+e.Subsets[0].Addresses[0].IP)
	}
	want := []string{"DELETED 10.0.0.1", "ADDED 10.0.0.3", "MODIFIED 10.0.0.4", "DELETED 10.0.0.4"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
}

func TestWatchEnds(t *testing.T) {
	s := New(t)
	w := watch(t, s, "/api/v1/endpoints?watch=1&timeoutSeconds=1")
	if err := w.end(); err != io.EOF {
		t.Fatalf("timeout end: %v", err)
	}
	s.WaitWatchers(0)

	a := watch(t, s, "/api/v1/endpoints?watch=1")
	b := watch(t, s, "/apis/discovery.k8s.io/v1/endpointslices?watch=1")
	s.WaitWatchers(2)
	s.CloseWatches()
	if err := a.end(); err != io.EOF {
		t.Fatal(err)
	}
	if err := b.end(); err != io.EOF {
		t.Fatal(err)
	}
	s.WaitWatchers(0)

	// A client going away frees its watcher.
	c := watch(t, s, "/api/v1/endpoints?watch=1")
	s.WaitWatchers(1)
	c.cancel()
	s.WaitWatchers(0)
}

// TestChunkSplits reads the HTTP chunk framing itself: events are cut at
// arbitrary points, the pieces reassemble into the exact events, and the
// cuts are the same for the same seed.
func TestChunkSplits(t *testing.T) {
	run := func(seed uint64) (chunks [][]byte, body []byte) {
		s := New(t, WithSeed(seed))
		s.LoadFixture(Fixture("endpoints.json"))
		s.LoadFixture(Fixture("endpointslices.json"))
		path := "/apis/discovery.k8s.io/v1/endpointslices?watch=1&resourceVersion=1000"
		chunks = rawChunks(t, s, path, func(b []byte) bool { return bytes.Count(b, []byte("\n")) == 8 })
		return chunks, bytes.Join(chunks, nil)
	}
	inside, spanning := 0, 0
	for seed := range uint64(10) {
		chunks, body := run(seed)
		lines := bytes.Split(bytes.TrimSuffix(body, []byte("\n")), []byte("\n"))
		if len(lines) != 8 {
			t.Fatalf("seed %d: %d lines", seed, len(lines))
		}
		for _, l := range lines {
			var ev watchEvent
			if err := json.Unmarshal(l, &ev); err != nil || ev.Type != "ADDED" {
				t.Fatalf("seed %d: event %q: %v", seed, l, err)
			}
			var es EndpointSlice
			if err := json.Unmarshal(ev.Object, &es); err != nil || es.Kind != "EndpointSlice" {
				t.Fatalf("seed %d: object: %v", seed, err)
			}
		}
		for _, c := range chunks[:len(chunks)-1] {
			if c[len(c)-1] != '\n' {
				inside++ // the chunk ends inside an event
			}
			if i := bytes.IndexByte(c, '\n'); i >= 0 && i < len(c)-1 {
				spanning++ // the chunk ends one event and starts the next
			}
		}
	}
	if inside < 10 || spanning < 5 {
		t.Fatalf("over 10 seeds: %d chunks cut inside an event, %d span two", inside, spanning)
	}
	sizes := func(cs [][]byte) (n []int) {
		for _, c := range cs {
			n = append(n, len(c))
		}
		return n
	}
	a, _ := run(42)
	b, _ := run(42)
	c, _ := run(43)
	if !slices.Equal(sizes(a), sizes(b)) {
		t.Fatal("same seed, different cuts")
	}
	if slices.Equal(sizes(a), sizes(c)) {
		t.Fatal("different seeds, same cuts")
	}
}

func TestWatchNotGETAndUnknownPaths(t *testing.T) {
	s := New(t)
	resp, err := s.Client().Post(s.URL+"/api/v1/namespaces/a/endpoints", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatal(resp.StatusCode)
	}
	if resp, b := get(t, s, "/api/v1/pods"); resp.StatusCode != 404 || status(t, b).Reason != "NotFound" {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	if resp, b := get(t, s, "/version"); resp.StatusCode != 200 || !strings.Contains(string(b), `"gitVersion":"v1.37.2"`) {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
}

// A server without the streaming list answers as v1.33 does with its
// WatchList feature gate off; plain watches and lists still work.
func TestWithoutWatchListRefusesStreamingLists(t *testing.T) {
	s := New(t, WithoutWatchList())
	s.PutEndpoints(ep("ns", "a", nil, "10.0.0.1"))
	resp, b := get(t, s, "/api/v1/endpoints?watch=1&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan")
	want := `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled","reason":"Invalid","details":{"group":"meta.k8s.io","kind":"ListOptions","causes":[{"reason":"FieldValueForbidden","message":"Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled","field":"sendInitialEvents"}]},"code":422}`
	if resp.StatusCode != 422 || strings.TrimSpace(string(b)) != want {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	if l := list(t, s, "/api/v1/endpoints?limit=500"); len(l.Items) != 1 {
		t.Fatalf("list: %d items", len(l.Items))
	}
	w := watch(t, s, "/api/v1/endpoints?watch=1&resourceVersion=0")
	if ev := w.next(); ev.Type != "ADDED" {
		t.Fatal(ev.Type)
	}

	s400 := New(t, WithWatchListRefused(400))
	if resp, b := get(t, s400, "/api/v1/endpoints?watch=1&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan"); resp.StatusCode != 400 || status(t, b).Reason != "BadRequest" {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
}

// sendInitialEvents needs resourceVersionMatch=NotOlderThan, and
// resourceVersionMatch on a watch needs sendInitialEvents (the real
// server's ValidateListOptions).
func TestStreamingListValidation(t *testing.T) {
	s := New(t)
	for path, msg := range map[string]string{
		"/api/v1/endpoints?watch=1&sendInitialEvents=true&allowWatchBookmarks=true":                              "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
		"/api/v1/endpoints?watch=1&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&resourceVersion=0": "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
	} {
		resp, b := get(t, s, path)
		if st := status(t, b); resp.StatusCode != 422 || st.Reason != "Invalid" || !strings.Contains(st.Message, msg) {
			t.Errorf("%s: %d %s", path, resp.StatusCode, b)
		}
	}
}
