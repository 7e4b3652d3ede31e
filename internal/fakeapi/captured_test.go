package fakeapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The tests here hold the fake to the bytes a real kube-apiserver v1.37.2
// sent (testdata/kube/captured, recorded by internal/kubetest's smoke
// test). They replay the smoke test's writes on the fake, make the same
// requests, and compare the SHAPE of the answers: every JSON key path with
// the type of its value. Values (names, uids, times, resourceVersions,
// field managers) may differ; a missing or extra key, or another type, is
// a difference the fake must not have.
//
// In a shape, an array's elements are merged: "a[].b" has the union of the
// types "b" has across the elements, plus "absent" when some element lacks
// it. So an optional field present in one element and absent in another
// (nodeName on one address only) is part of the shape and must be the same
// on both sides.

const smokeNS = "kubetest-smoke"

func capturedFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "kube", "captured", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func capturedLines(t *testing.T, name string) [][]byte {
	t.Helper()
	return bytes.Split(bytes.TrimSuffix(capturedFile(t, name), []byte("\n")), []byte("\n"))
}

// shapeOf maps each key path of a JSON document to its sorted value types.
func shapeOf(t *testing.T, doc []byte) map[string]string {
	t.Helper()
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatalf("%v: %s", err, doc)
	}
	types := map[string]map[string]bool{}
	addShape(types, "$", v)
	out := map[string]string{}
	for p, ts := range types {
		out[p] = strings.Join(slices.Sorted(func(yield func(string) bool) {
			for t := range ts {
				if !yield(t) {
					return
				}
			}
		}), "|")
	}
	return out
}

func addShape(types map[string]map[string]bool, path string, v any) {
	add := func(p, typ string) {
		if types[p] == nil {
			types[p] = map[string]bool{}
		}
		types[p][typ] = true
	}
	switch v := v.(type) {
	case map[string]any:
		add(path, "object")
		for k, x := range v {
			addShape(types, path+"."+k, x)
		}
	case []any:
		add(path, "array")
		elems := make([]map[string]map[string]bool, len(v))
		all := map[string]bool{}
		for i, x := range v {
			elems[i] = map[string]map[string]bool{}
			addShape(elems[i], path+"[]", x)
			for p := range elems[i] {
				all[p] = true
			}
		}
		for _, e := range elems {
			for p := range all {
				if e[p] == nil {
					add(p, "absent")
				}
				for typ := range e[p] {
					add(p, typ)
				}
			}
		}
	case string:
		add(path, "string")
	case float64:
		add(path, "number")
	case bool:
		add(path, "bool")
	case nil:
		add(path, "null")
	}
}

// sameShape fails the test with every path whose types differ.
func sameShape(t *testing.T, what string, real, fake []byte) {
	t.Helper()
	r, f := shapeOf(t, real), shapeOf(t, fake)
	var diffs []string
	for _, p := range slices.Sorted(func(yield func(string) bool) {
		seen := map[string]bool{}
		for _, m := range []map[string]string{r, f} {
			for p := range m {
				if !seen[p] {
					seen[p] = true
					if !yield(p) {
						return
					}
				}
			}
		}
	}) {
		if r[p] != f[p] {
			diffs = append(diffs, fmt.Sprintf("  %s: real %q, fake %q", p, r[p], f[p]))
		}
	}
	if len(diffs) > 0 {
		t.Errorf("%s: shapes differ\n%s\nreal: %s\nfake: %s", what, strings.Join(diffs, "\n"), real, fake)
	}
}

// smokeServer replays the writes TestSmoke makes before it lists, as a
// test would write them: no uid, time, managedFields, and no protocol on
// the https port or name on the unnamed slice port (the real server
// defaults both).
func smokeServer(t *testing.T, opts ...Option) *Server {
	s := New(t, opts...)
	s.PutEndpoints(&Endpoints{
		Metadata: ObjectMeta{Name: "web", Namespace: smokeNS, Labels: map[string]string{"app": "web"}},
		Subsets: []EndpointSubset{{
			Addresses:         []EndpointAddress{{IP: "10.1.0.1"}, {IP: "10.1.0.2", NodeName: Ptr("node-a")}},
			NotReadyAddresses: []EndpointAddress{{IP: "10.1.0.9"}},
			Ports:             []EndpointPort{{Name: "http", Port: 80, Protocol: "TCP"}, {Name: "https", Port: 8443}},
		}},
	})
	s.PutEndpoints(smokeEndpoints("solo", "10.1.0.5", EndpointPort{Port: 9000}))
	s.PutEndpointSlice(&EndpointSlice{
		Metadata:    ObjectMeta{Name: "web-abcde", Namespace: smokeNS, Labels: map[string]string{"kubernetes.io/service-name": "web"}},
		AddressType: "IPv4",
		Endpoints: []Endpoint{
			{Addresses: []string{"10.1.0.1"}, Conditions: EndpointConditions{Ready: Ptr(true)}, NodeName: Ptr("node-a")},
			{Addresses: []string{"10.1.0.3"}},
		},
		Ports: []EndpointSlicePort{{Name: Ptr("http"), Protocol: Ptr("TCP"), Port: Ptr[int32](80)}, {Port: Ptr[int32](8080)}},
	})
	return s
}

// smokeEndpoints is kubetest.ApplyEndpoints' object: no labels, one subset.
func smokeEndpoints(name, ip string, ports ...EndpointPort) *Endpoints {
	return &Endpoints{
		Metadata: ObjectMeta{Name: name, Namespace: smokeNS},
		Subsets:  []EndpointSubset{{Addresses: []EndpointAddress{{IP: ip}}, Ports: ports}},
	}
}

func smokeSlice(name, addressType string, eps []Endpoint) *EndpointSlice {
	return &EndpointSlice{
		Metadata:    ObjectMeta{Name: name, Namespace: smokeNS, Labels: map[string]string{"kubernetes.io/service-name": "web"}},
		AddressType: addressType, Endpoints: eps,
		Ports: []EndpointSlicePort{{Name: Ptr("http"), Port: Ptr[int32](80), Protocol: Ptr("TCP")}},
	}
}

func TestCapturedLists(t *testing.T) {
	s := smokeServer(t)
	for _, c := range []struct{ file, path string }{
		{"endpoints-list.json", "/api/v1/namespaces/" + smokeNS + "/endpoints"},
		{"endpointslices-list.json", "/apis/discovery.k8s.io/v1/namespaces/" + smokeNS + "/endpointslices"},
	} {
		real := capturedFile(t, c.file)
		resp, fake := get(t, s, c.path)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", c.path, resp.StatusCode, fake)
		}
		sameShape(t, c.file, real, fake)
		// Item by item too: each item's optional fields are its own.
		var rl, fl listBody
		_ = json.Unmarshal(real, &rl)
		_ = json.Unmarshal(fake, &fl)
		if len(rl.Items) != len(fl.Items) {
			t.Fatalf("%s: %d items, fake %d", c.file, len(rl.Items), len(fl.Items))
		}
		for i := range rl.Items {
			sameShape(t, fmt.Sprintf("%s item %d", c.file, i), rl.Items[i], fl.Items[i])
		}
	}
}

// sameEvents compares watch lines one by one: the event envelope and the
// object inside.
func sameEvents(t *testing.T, file string, real [][]byte, fake []watchEvent) {
	t.Helper()
	if len(real) != len(fake) {
		t.Fatalf("%s: %d events, fake %d", file, len(real), len(fake))
	}
	for i, line := range real {
		var ev watchEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Type != fake[i].Type {
			t.Errorf("%s line %d: %s, fake %s", file, i+1, ev.Type, fake[i].Type)
		}
		fb, _ := json.Marshal(fake[i])
		sameShape(t, fmt.Sprintf("%s line %d (%s)", file, i+1, ev.Type), line, fb)
	}
}

func TestCapturedEndpointsWatch(t *testing.T) {
	s := smokeServer(t)
	w := watch(t, s, "/api/v1/namespaces/"+smokeNS+"/endpoints?watch=1&allowWatchBookmarks=true&resourceVersion="+s.ResourceVersion())
	if ws := w.resp.Header.Values("Warning"); len(ws) != 1 || ws[0] != endpointsWarning {
		t.Errorf("watch Warning %q", ws)
	}
	// kubetest.ApplyEndpoints replaces the whole object: the label goes.
	s.PutEndpoints(smokeEndpoints("web", "10.1.0.1", EndpointPort{Name: "http", Port: 80, Protocol: "TCP"}))
	s.PutEndpoints(smokeEndpoints("db", "192.168.7.1", EndpointPort{Name: "mysql", Port: 3306, Protocol: "TCP"}))
	s.DeleteEndpoints(smokeNS, "db")
	got := []watchEvent{w.next(), w.next(), w.next()}

	wl := watch(t, s, "/api/v1/namespaces/"+smokeNS+"/endpoints?watch=1&allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan")
	got = append(got, wl.next()) // ADDED solo
	wl.next()                    // ADDED web
	got = append(got, wl.next()) // BOOKMARK
	sameEvents(t, "endpoints-watch.jsonl", capturedLines(t, "endpoints-watch.jsonl"), got)
}

func TestCapturedEndpointSlicesWatch(t *testing.T) {
	s := smokeServer(t)
	w := watch(t, s, "/apis/discovery.k8s.io/v1/namespaces/"+smokeNS+"/endpointslices?watch=1&allowWatchBookmarks=true&resourceVersion="+s.ResourceVersion())
	s.PutEndpointSlice(smokeSlice("web-abcde", "IPv4", []Endpoint{
		{Addresses: []string{"10.1.0.1"}, Conditions: EndpointConditions{Ready: Ptr(false), Serving: Ptr(true), Terminating: Ptr(true)}},
		{Addresses: []string{"10.1.0.3"}},
	}))
	s.PutEndpointSlice(smokeSlice("web-fghij", "IPv6", []Endpoint{{Addresses: []string{"fd00:10::1"}, Conditions: EndpointConditions{Ready: Ptr(true)}}}))
	s.DeleteEndpointSlice(smokeNS, "web-fghij")
	sameEvents(t, "endpointslices-watch.jsonl", capturedLines(t, "endpointslices-watch.jsonl"), []watchEvent{w.next(), w.next(), w.next()})
}

func TestCapturedWatchExpired(t *testing.T) {
	s := smokeServer(t)
	old := s.ResourceVersion()
	s.PutEndpoints(smokeEndpoints("solo", "10.1.0.6", EndpointPort{Port: 9000}))
	s.Compact()
	ev := watch(t, s, "/api/v1/namespaces/"+smokeNS+"/endpoints?watch=1&resourceVersion="+old).next()
	for _, file := range []string{"watch-410-expired-cached.jsonl", "watch-410-expired-uncached.jsonl"} {
		sameEvents(t, file, capturedLines(t, file), []watchEvent{ev})
	}
	// The message is the watch cache's (what users run); the uncached
	// form differs only in wording.
	cached := regexp.MustCompile(`^too old resource version: \d+ \(\d+\)$`)
	if st := status(t, ev.Object); !cached.MatchString(st.Message) {
		t.Errorf("message %q", st.Message)
	}
}

// TestCapturedStatusBodies compares error bodies byte for byte where the
// real message is reproducible, by shape otherwise.
func TestCapturedStatusBodies(t *testing.T) {
	s := smokeServer(t, WithToken("discovery"))
	do := func(tok, path string) (int, []byte) {
		req, _ := http.NewRequest("GET", s.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.Bytes()
	}
	exact := func(file string, code, wantCode int, fake []byte) {
		t.Helper()
		if real := capturedFile(t, file); code != wantCode || !bytes.Equal(real, fake) {
			t.Errorf("%s: fake %d\n%s\nreal %d\n%s", file, code, fake, wantCode, real)
		}
	}

	s.Fail(AnyRequest, Forbidden("norights"), 1)
	code, b := do("discovery", "/api/v1/endpoints")
	exact("status-403-forbidden.json", code, 403, b)

	code, b = do("not-a-token", "/api/v1/endpoints")
	exact("status-401-unauthorized.json", code, 401, b)

	code, b = do("discovery", "/api/v1/endpoints?labelSelector="+url.QueryEscape(`app="web"`))
	exact("status-400-label-selector.json", code, 400, b)

	code, b = do("discovery", "/api/v1/namespaces/"+smokeNS+"/endpoints?limit=1")
	var page listBody
	if err := json.Unmarshal(b, &page); err != nil || code != 200 || page.Metadata.Continue == "" {
		t.Fatalf("%d %s", code, b)
	}
	s.ExpireContinueTokens()
	code, b = do("discovery", "/api/v1/namespaces/"+smokeNS+"/endpoints?limit=1&continue="+url.QueryEscape(page.Metadata.Continue))
	real := capturedFile(t, "status-410-continue.json")
	if code != 410 {
		t.Fatalf("%d %s", code, b)
	}
	sameShape(t, "status-410-continue.json", real, b)
	// The token inside is opaque to clients, but its layout is etcd's.
	token := func(body []byte) []byte {
		tok, err := base64.RawURLEncoding.DecodeString(status(t, body).Metadata.Continue)
		if err != nil {
			t.Fatalf("continue token: %v in %s", err, body)
		}
		return tok
	}
	sameShape(t, "status-410-continue.json continue token", token(real), token(b))
	if rs, fs := status(t, real), status(t, b); rs.Message != fs.Message {
		t.Errorf("410 message %q, real %q", fs.Message, rs.Message)
	}
}

func TestWarningOnEndpointsReads(t *testing.T) {
	s := smokeServer(t)
	for _, p := range []string{"/api/v1/namespaces/" + smokeNS + "/endpoints", "/api/v1/namespaces/" + smokeNS + "/endpoints?watch=1&timeoutSeconds=1"} {
		resp, _ := get(t, s, p)
		// The text testdata/kube/README.md records from v1.37.2.
		if w := resp.Header.Values("Warning"); len(w) != 1 || w[0] != `299 - "v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice"` {
			t.Errorf("GET %s: Warning %q", p, w)
		}
	}
	if resp, _ := get(t, s, "/apis/discovery.k8s.io/v1/namespaces/"+smokeNS+"/endpointslices?watch=1&timeoutSeconds=1"); resp.Header.Get("Warning") != "" {
		t.Error("Warning on an EndpointSlice watch")
	}
}

// TestCapturedNamespaceFieldSelectorPaging holds the fake's paging trap to
// what kube-apiserver v1.37.2 sent (internal/kubetest's
// TestNamespaceFieldSelectorPaging, 5 Endpoints in one namespace): a
// cluster-wide LIST with fieldSelector=metadata.namespace=X and limit=2
// gives 2 items and a continue token, the continuation 0 items and no
// continue token.
func TestCapturedNamespaceFieldSelectorPaging(t *testing.T) {
	const ns = "kubetest-paging"
	realFirst := capturedFile(t, "list-namespace-field-selector-page1.json")
	realNext := capturedFile(t, "list-namespace-field-selector-page2.json")
	s := New(t)
	for i := range 5 {
		s.PutEndpoints(&Endpoints{
			Metadata: ObjectMeta{Name: fmt.Sprintf("svc-%04d", i), Namespace: ns},
			Subsets: []EndpointSubset{{
				Addresses: []EndpointAddress{{IP: fmt.Sprintf("10.2.%d.%d", i/250, i%250+1)}},
				Ports:     []EndpointPort{{Name: "http", Port: 80, Protocol: "TCP"}},
			}},
		})
	}
	path := "/api/v1/endpoints?limit=2&fieldSelector=" + url.QueryEscape("metadata.namespace="+ns)
	_, fakeFirst := get(t, s, path)
	sameShape(t, "list-namespace-field-selector-page1.json", realFirst, fakeFirst)
	var rl, fl listBody
	if err := json.Unmarshal(realFirst, &rl); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(fakeFirst, &fl); err != nil {
		t.Fatal(err)
	}
	if len(rl.Items) != 2 || len(fl.Items) != 2 || rl.Metadata.Continue == "" || fl.Metadata.Continue == "" {
		t.Fatalf("first page: real %d items (continue %t), fake %d (continue %t)",
			len(rl.Items), rl.Metadata.Continue != "", len(fl.Items), fl.Metadata.Continue != "")
	}
	_, fakeNext := get(t, s, path+"&continue="+url.QueryEscape(fl.Metadata.Continue))
	sameShape(t, "list-namespace-field-selector-page2.json", realNext, fakeNext)
	var rn, fn listBody
	_ = json.Unmarshal(realNext, &rn)
	_ = json.Unmarshal(fakeNext, &fn)
	if len(rn.Items) != 0 || rn.Metadata.Continue != "" || len(fn.Items) != 0 || fn.Metadata.Continue != "" {
		t.Fatalf("continuation: real %d items (continue %q), fake %d (continue %q)", len(rn.Items), rn.Metadata.Continue, len(fn.Items), fn.Metadata.Continue)
	}
}
