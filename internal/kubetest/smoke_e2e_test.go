package kubetest_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kdisc/kdisc/internal/kubetest"
)

const ns = "kubetest-smoke"

func TestSmoke(t *testing.T) {
	c := kubetest.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	if err := c.CreateNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}

	// An Endpoints with two ready addresses, one not ready, a named and an
	// unnamed port. The write carries a deprecation Warning header.
	resp, err := c.Request(ctx, c.AdminToken, http.MethodPost, "/api/v1/namespaces/"+ns+"/endpoints", map[string]any{
		"apiVersion": "v1", "kind": "Endpoints",
		"metadata": map[string]any{"name": "web", "labels": map[string]string{"app": "web"}},
		"subsets": []kubetest.EndpointSubset{{
			Addresses:         []kubetest.EndpointAddress{{IP: "10.1.0.1"}, {IP: "10.1.0.2", NodeName: kubetest.Ptr("node-a")}},
			NotReadyAddresses: []kubetest.EndpointAddress{{IP: "10.1.0.9"}},
			Ports:             []kubetest.EndpointPort{{Name: "http", Port: 80, Protocol: "TCP"}, {Name: "https", Port: 8443}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(resp)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create endpoints: %d %s", resp.StatusCode, body)
	}
	if w := resp.Header.Values("Warning"); len(w) == 0 || !strings.Contains(strings.Join(w, " "), "deprecated") {
		t.Errorf("no deprecation Warning header on an Endpoints write: %q", w)
	} else {
		t.Logf("Warning: %q", w)
	}

	// A port may be unnamed only when it is the subset's only port.
	if _, err := c.ApplyEndpoints(ctx, ns, "solo", kubetest.Subset([]string{"10.1.0.5"}, kubetest.EndpointPort{Port: 9000})); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ApplyEndpoints(ctx, ns, "twounnamed", kubetest.Subset([]string{"10.1.0.5"}, kubetest.EndpointPort{Port: 9000}, kubetest.EndpointPort{Name: "b", Port: 9001})); !kubetest.IsStatus(err, http.StatusUnprocessableEntity) {
		t.Errorf("Endpoints with an unnamed port among two: want 422, got %v", err)
	}

	// Loopback addresses are refused.
	if _, err := c.ApplyEndpoints(ctx, ns, "loop", kubetest.Subset([]string{"127.0.0.1"}, kubetest.EndpointPort{Port: 80})); !kubetest.IsStatus(err, http.StatusUnprocessableEntity) {
		t.Errorf("loopback Endpoints address: want 422, got %v", err)
	}

	if _, err := c.ApplyEndpointSlice(ctx, ns, kubetest.EndpointSlice{
		Name: "loop", Service: "loop",
		Endpoints: []kubetest.SliceEndpoint{{Addresses: []string{"127.0.0.1"}}},
		Ports:     []kubetest.SlicePort{kubetest.Port("http", 80)},
	}); !kubetest.IsStatus(err, http.StatusUnprocessableEntity) {
		t.Errorf("loopback EndpointSlice address: want 422, got %v", err)
	}

	// An EndpointSlice: one ready endpoint, one without conditions, a
	// named and an unnamed port.
	slice, err := c.ApplyEndpointSlice(ctx, ns, kubetest.EndpointSlice{
		Name: "web-abcde", Service: "web",
		Endpoints: []kubetest.SliceEndpoint{
			{Addresses: []string{"10.1.0.1"}, Conditions: &kubetest.EndpointConditions{Ready: kubetest.Ptr(true)}, NodeName: kubetest.Ptr("node-a")},
			{Addresses: []string{"10.1.0.3"}},
		},
		Ports: []kubetest.SlicePort{kubetest.Port("http", 80), {Port: kubetest.Ptr[int32](8080)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var stored struct {
		Endpoints []struct {
			Conditions json.RawMessage `json:"conditions"`
		} `json:"endpoints"`
		Ports []struct {
			Name *string `json:"name"`
		} `json:"ports"`
	}
	if err := json.Unmarshal(slice, &stored); err != nil {
		t.Fatal(err)
	}
	if got := string(stored.Endpoints[1].Conditions); got != "{}" {
		t.Errorf("endpoint without conditions stored as %s, notes.md says {}", got)
	}
	if n := stored.Ports[1].Name; n == nil || *n != "" {
		t.Errorf("unnamed slice port stored with name %v, notes.md says \"\"", n)
	}

	// LIST with the discovery token, TLS verified against the CA.
	epList := get(ctx, t, c.APIServer, c.DiscoveryToken, "/api/v1/namespaces/"+ns+"/endpoints", "list endpoints")
	slList := get(ctx, t, c.APIServer, c.DiscoveryToken, "/apis/discovery.k8s.io/v1/namespaces/"+ns+"/endpointslices", "list endpointslices")
	get(ctx, t, c.APIServer, c.DiscoveryToken, "/api/v1/endpoints", "cluster-wide list endpoints")
	get(ctx, t, c.APIServer, c.DiscoveryToken, "/apis/discovery.k8s.io/v1/endpointslices", "cluster-wide list endpointslices")
	for _, p := range []string{"/api/v1/namespaces/" + ns + "/endpoints", "/api/v1/namespaces/" + ns + "/endpoints?watch=1&timeoutSeconds=1"} {
		r, err := c.Request(ctx, c.DiscoveryToken, http.MethodGet, p, nil)
		if err != nil {
			t.Fatal(err)
		}
		readBody(r)
		// Reads of the deprecated API carry the Warning too, not only writes.
		if w := r.Header.Values("Warning"); len(w) == 0 || !strings.Contains(w[0], "deprecated") {
			t.Errorf("GET %s: Warning %q", p, w)
		}
	}
	save(t, "endpoints-list.json", epList)
	save(t, "endpointslices-list.json", slList)
	for _, l := range [][]byte{epList, slList} {
		var list struct {
			Kind  string            `json:"kind"`
			Items []json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal(l, &list); err != nil || len(list.Items) == 0 {
			t.Fatalf("list: %v, %d items: %s", err, len(list.Items), l)
		}
		if !strings.Contains(string(list.Items[0]), `"managedFields"`) {
			t.Errorf("%s item without managedFields", list.Kind)
		}
	}

	// WATCH from the list's resourceVersion, with bookmarks allowed.
	epRV, slRV := kubetest.ResourceVersion(epList), kubetest.ResourceVersion(slList)
	epw := openWatch(t, c.APIServer, c.DiscoveryToken, "/api/v1/namespaces/"+ns+"/endpoints?watch=1&allowWatchBookmarks=true&resourceVersion="+epRV)
	slw := openWatch(t, c.APIServer, c.DiscoveryToken, "/apis/discovery.k8s.io/v1/namespaces/"+ns+"/endpointslices?watch=1&allowWatchBookmarks=true&resourceVersion="+slRV)

	var epLines, slLines [][]byte
	if _, err := c.ApplyEndpoints(ctx, ns, "web", kubetest.Subset([]string{"10.1.0.1", "10.1.0.2", "10.1.0.4"}, kubetest.EndpointPort{Name: "http", Port: 80, Protocol: "TCP"})); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ApplyEndpoints(ctx, ns, "db", kubetest.Subset([]string{"192.168.7.1"}, kubetest.EndpointPort{Name: "mysql", Port: 3306, Protocol: "TCP"})); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteEndpoints(ctx, ns, "db"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"MODIFIED", "ADDED", "DELETED"} {
		_, line := epw.nextOf(want, 30*time.Second)
		epLines = append(epLines, line)
	}
	if _, err := c.ApplyEndpointSlice(ctx, ns, kubetest.EndpointSlice{
		Name: "web-abcde", Service: "web",
		Endpoints: []kubetest.SliceEndpoint{
			{Addresses: []string{"10.1.0.1"}, Conditions: &kubetest.EndpointConditions{Ready: kubetest.Ptr(false), Serving: kubetest.Ptr(true), Terminating: kubetest.Ptr(true)}},
			{Addresses: []string{"10.1.0.3"}},
		},
		Ports: []kubetest.SlicePort{kubetest.Port("http", 80)},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ApplyEndpointSlice(ctx, ns, kubetest.EndpointSlice{
		Name: "web-fghij", Service: "web", AddressType: "IPv6",
		Endpoints: []kubetest.SliceEndpoint{{Addresses: []string{"fd00:10::1"}, Conditions: &kubetest.EndpointConditions{Ready: kubetest.Ptr(true)}}},
		Ports:     []kubetest.SlicePort{kubetest.Port("http", 80)},
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteEndpointSlice(ctx, ns, "web-fghij"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"MODIFIED", "ADDED", "DELETED"} {
		_, line := slw.nextOf(want, 30*time.Second)
		slLines = append(slLines, line)
	}

	// A watch-list (sendInitialEvents) ends its initial ADDED events with a
	// BOOKMARK annotated k8s.io/initial-events-end: a real bookmark shape
	// without waiting a minute for a periodic one.
	wl := openWatch(t, c.APIServer, c.DiscoveryToken, "/api/v1/namespaces/"+ns+"/endpoints?watch=1&allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan")
	_, added := wl.nextOf("ADDED", 30*time.Second)
	ev, bookmark := wl.nextOf("BOOKMARK", 30*time.Second)
	if !strings.Contains(string(ev.Object), "k8s.io/initial-events-end") {
		t.Errorf("bookmark without initial-events-end annotation: %s", bookmark)
	}
	save(t, "endpoints-watch.jsonl", joinLines(append(epLines, added, bookmark)))
	save(t, "endpointslices-watch.jsonl", joinLines(slLines))

	// No rights: 403 with a Status body. Unknown token: 401.
	b, code, err := c.DoAs(ctx, c.NoRightsToken, http.MethodGet, "/api/v1/endpoints", nil)
	if err != nil || code != http.StatusForbidden {
		t.Fatalf("norights list: %d %v %s", code, err, b)
	}
	if s := parseStatus(t, b); s.Code != 403 || s.Reason != "Forbidden" || s.Status != "Failure" {
		t.Errorf("norights Status: %+v", s)
	}
	save(t, "status-403-forbidden.json", b)
	b, code, err = c.DoAs(ctx, c.NoRightsToken, http.MethodGet, "/apis/discovery.k8s.io/v1/endpointslices?watch=1", nil)
	if err != nil || code != http.StatusForbidden {
		t.Fatalf("norights watch: %d %v %s", code, err, b)
	}
	b, code, err = c.DoAs(ctx, "not-a-token", http.MethodGet, "/api/v1/endpoints", nil)
	if err != nil || code != http.StatusUnauthorized {
		t.Fatalf("bad token: %d %v %s", code, err, b)
	}
	save(t, "status-401-unauthorized.json", b)

	// A quoted label selector value is refused with 400 (notes.md).
	b, code, err = c.DoAs(ctx, c.DiscoveryToken, http.MethodGet, "/api/v1/endpoints?labelSelector="+url.QueryEscape(`app="web"`), nil)
	if err != nil || code != http.StatusBadRequest {
		t.Errorf("quoted label selector: want 400, got %d %v %s", code, err, b)
	} else {
		save(t, "status-400-label-selector.json", b)
	}
	get(ctx, t, c.APIServer, c.DiscoveryToken, "/api/v1/endpoints?labelSelector="+url.QueryEscape(`app=web`), "unquoted label selector")

	// The same rights through a client certificate and through a
	// ServiceAccount token (rbac.yaml binds ServiceAccount kdisc/kdisc).
	cert, err := tls.LoadX509KeyPair(c.DiscoveryCertFile, c.DiscoveryKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	tc := c.TLSConfig()
	tc.Certificates = []tls.Certificate{cert}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 30 * time.Second}
	r2, err := hc.Get(c.URL + "/apis/discovery.k8s.io/v1/endpointslices")
	if err != nil {
		t.Fatal(err)
	}
	if b := readBody(r2); r2.StatusCode != http.StatusOK {
		t.Errorf("mTLS list: %d %s", r2.StatusCode, b)
	}
	sa, err := c.ServiceAccountToken(ctx, "kdisc", "kdisc", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	get(ctx, t, c.APIServer, sa, "/api/v1/endpoints", "service account list")

	// Grant and revoke on a spare identity.
	spare := c.Users[kubetest.SpareUsers[0]]
	if err := c.GrantDiscovery(ctx, spare.User); err != nil {
		t.Fatal(err)
	}
	get(ctx, t, c.APIServer, spare.Token, "/api/v1/endpoints", "spare list after grant")
	if err := c.RevokeDiscovery(ctx, spare.User); err != nil {
		t.Fatal(err)
	}
	if _, code, _ := c.DoAs(ctx, spare.Token, http.MethodGet, "/api/v1/endpoints", nil); code != http.StatusForbidden {
		t.Errorf("spare list after revoke: %d", code)
	}
}

// TestSmoke410 shows the two reliable ways to make a watch resumed from an
// old resourceVersion get 410 Gone, and apiserver restart/second apiserver.
func TestSmoke410(t *testing.T) {
	c := kubetest.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const ns = "kubetest-410"
	if err := c.CreateNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	b, err := c.ApplyEndpoints(ctx, ns, "web", kubetest.Subset([]string{"10.2.0.1"}, kubetest.EndpointPort{Name: "http", Port: 80}))
	if err != nil {
		t.Fatal(err)
	}
	oldRV := kubetest.ResourceVersion(b)
	url0 := c.URL

	// 1. Watch cache on (default): a watch from oldRV is served from the
	// cache's history, even after an etcd compaction.
	if _, err := c.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	open := openWatch(t, c.APIServer, c.DiscoveryToken, "/api/v1/namespaces/"+ns+"/endpoints?watch=1&resourceVersion="+oldRV)
	if _, err := c.ApplyEndpoints(ctx, ns, "web", kubetest.Subset([]string{"10.2.0.2"}, kubetest.EndpointPort{Name: "http", Port: 80})); err != nil {
		t.Fatal(err)
	}
	if ev, line := open.next(30 * time.Second); ev.Type != "MODIFIED" {
		t.Fatalf("cached watch after compaction: %s", line)
	}
	// ExpireWatches restarts the apiserver: the open watch ends, and a
	// watch from oldRV gets an ERROR event with a 410 Expired Status.
	if err := c.ExpireWatches(ctx, c.APIServer); err != nil {
		t.Fatal(err)
	}
	select {
	case line, ok := <-open.lines:
		for ok {
			t.Logf("open watch, after restart: %s", line)
			line, ok = <-open.lines
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the watch open across the restart did not end")
	}
	if c.URL != url0 {
		t.Fatalf("URL changed across the restart: %s -> %s", url0, c.URL)
	}
	get(ctx, t, c.APIServer, c.DiscoveryToken, "/api/v1/namespaces/"+ns+"/endpoints/web", "data kept across the restart")
	w := openWatch(t, c.APIServer, c.DiscoveryToken, "/api/v1/namespaces/"+ns+"/endpoints?watch=1&resourceVersion="+oldRV)
	ev, line := w.next(30 * time.Second)
	if s := parseStatus(t, ev.Object); ev.Type != "ERROR" || s.Code != 410 || s.Reason != "Expired" {
		t.Fatalf("watch from %s after ExpireWatches: %s", oldRV, line)
	}
	save(t, "watch-410-expired-cached.jsonl", joinLines([][]byte{line}))

	// 2. Watch cache off: an etcd compaction is enough. A second apiserver
	// on the same etcd (own prefix, own objects) with --watch-cache=false.
	a2, err := c.StartSecondAPIServer(ctx, "--watch-cache=false")
	if err != nil {
		t.Fatal(err)
	}
	defer a2.StopAPIServer()
	if a2.URL == c.URL {
		t.Fatal("second apiserver on the same URL")
	}
	b = get(ctx, t, a2, a2.DiscoveryToken, "/api/v1/endpoints", "second apiserver list")
	if strings.Contains(string(b), ns) {
		t.Fatalf("second apiserver sees the first one's objects: %s", b)
	}
	if err := a2.CreateNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b"} {
		if b, err = a2.ApplyEndpoints(ctx, ns, name, kubetest.Subset([]string{"10.3.0.1"}, kubetest.EndpointPort{Port: 80})); err != nil {
			t.Fatal(err)
		}
	}
	rv2 := kubetest.ResourceVersion(b)
	page := get(ctx, t, a2, a2.DiscoveryToken, "/api/v1/namespaces/"+ns+"/endpoints?limit=1", "paginated list")
	var pl struct {
		Metadata struct {
			Continue string `json:"continue"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(page, &pl); err != nil || pl.Metadata.Continue == "" {
		t.Fatalf("no continue token: %v %s", err, page)
	}
	if _, err := c.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	w2 := openWatch(t, a2, a2.DiscoveryToken, "/api/v1/namespaces/"+ns+"/endpoints?watch=1&resourceVersion="+rv2)
	ev, line = w2.next(30 * time.Second)
	if s := parseStatus(t, ev.Object); ev.Type != "ERROR" || s.Code != 410 || s.Reason != "Expired" {
		t.Fatalf("uncached watch from %s after Compact: %s", rv2, line)
	}
	save(t, "watch-410-expired-uncached.jsonl", joinLines([][]byte{line}))
	b, code, err := a2.DoAs(ctx, a2.DiscoveryToken, http.MethodGet, "/api/v1/namespaces/"+ns+"/endpoints?limit=1&continue="+url.QueryEscape(pl.Metadata.Continue), nil)
	if err != nil || code != http.StatusGone {
		t.Fatalf("continue after Compact: %d %v %s", code, err, b)
	}
	if s := parseStatus(t, b); s.Reason != "Expired" {
		t.Errorf("continue after Compact: %+v", s)
	}
	save(t, "status-410-continue.json", b)
}

// get GETs path with token and fails the test unless the answer is 200.
func get(ctx context.Context, t *testing.T, a *kubetest.APIServer, token, path, what string) []byte {
	t.Helper()
	b, code, err := a.DoAs(ctx, token, http.MethodGet, path, nil)
	return mustOK(t, what, b, code, err)
}

func readBody(resp *http.Response) []byte {
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return []byte(b.String())
		}
	}
}

func joinLines(lines [][]byte) []byte {
	var out []byte
	for _, l := range lines {
		out = append(out, l...)
		out = append(out, '\n')
	}
	return out
}
