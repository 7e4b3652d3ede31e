package fakeapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
)

func loaded(t *testing.T, opts ...Option) *Server {
	s := New(t, opts...)
	s.LoadFixture(Fixture("endpoints.json"))
	s.LoadFixture(Fixture("endpointslices.json"))
	return s
}

func TestListShape(t *testing.T) {
	s := loaded(t)
	resp, _ := get(t, s, "/api/v1/endpoints")
	if w := resp.Header.Get("Warning"); w != `299 - "v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice"` {
		t.Errorf("Warning %q", w)
	}
	if resp, _ := get(t, s, "/apis/discovery.k8s.io/v1/endpointslices"); resp.Header.Get("Warning") != "" {
		t.Error("warning on slices")
	}
	l := list(t, s, "/api/v1/endpoints")
	if l.Kind != "EndpointsList" || l.APIVersion != "v1" || l.Metadata.ResourceVersion != s.ResourceVersion() {
		t.Fatalf("list head %+v, rv now %s", l, s.ResourceVersion())
	}
	want := []string{"default/kubernetes", "default/plat-dev", "ipv6/api", "shop/empty", "shop/legacy", "shop/web"}
	if got := names(t, l.Items); !slices.Equal(got, want) {
		t.Fatalf("items %v, want %v (etcd key order)", got, want)
	}
	for _, it := range l.Items {
		if bytes.Contains(it, []byte(`"kind":"Endpoints"`)) || bytes.HasPrefix(it, []byte(`{"kind"`)) {
			t.Errorf("list item carries kind: %s", it)
		}
		m := meta(t, it)
		if m.UID == "" || m.ResourceVersion == "" || m.CreationTimestamp == "" || len(m.ManagedFields) == 0 {
			t.Errorf("incomplete metadata %+v", m)
		}
	}
	// An unnamed Endpoints port has no name at all.
	if !bytes.Contains(l.Items[4], []byte(`"ports":[{"port":8080,"protocol":"TCP"}]`)) {
		t.Errorf("legacy: %s", l.Items[4])
	}

	sl := list(t, s, "/apis/discovery.k8s.io/v1/endpointslices")
	if sl.Kind != "EndpointSliceList" || sl.APIVersion != "discovery.k8s.io/v1" {
		t.Fatalf("slice list head %+v", sl)
	}
	var all string
	for _, it := range sl.Items {
		all += string(it)
	}
	for _, want := range []string{
		`"conditions":{}`, `"ports":[{"name":"","protocol":"TCP","port":8080}]`, `"endpoints":null`,
		`"addressType":"IPv6"`, `"addressType":"FQDN"`, `"kubernetes.io/service-name":"web"`,
		`"endpointslice.kubernetes.io/managed-by":"endpointslice-controller.k8s.io"`,
		`"conditions":{"ready":false,"serving":false,"terminating":true}`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("slices lack %s", want)
		}
	}
	// Every resourceVersion comes from the one global counter.
	seen := map[string]bool{}
	for _, it := range append(l.Items, sl.Items...) {
		rv := meta(t, it).ResourceVersion
		if seen[rv] {
			t.Errorf("resourceVersion %s used twice", rv)
		}
		seen[rv] = true
	}
}

func TestEmptyList(t *testing.T) {
	s := New(t)
	_, b := get(t, s, "/api/v1/namespaces/none/endpoints")
	if want := `{"kind":"EndpointsList","apiVersion":"v1","metadata":{"resourceVersion":"1000"},"items":[]}` + "\n"; string(b) != want {
		t.Fatalf("got %s want %s", b, want)
	}
}

func TestTypedObjectsEncodeLikeTheServer(t *testing.T) {
	s := New(t)
	s.PutEndpointSlice(&EndpointSlice{
		Metadata:    ObjectMeta{Name: "x-1", Namespace: "ns", Labels: map[string]string{"kubernetes.io/service-name": "x"}},
		AddressType: "IPv4",
		Endpoints:   []Endpoint{{Addresses: []string{"10.1.1.1"}}},
		Ports:       []EndpointSlicePort{{Name: Ptr(""), Port: Ptr[int32](80), Protocol: Ptr("TCP")}},
	})
	s.PutEndpoints(&Endpoints{
		Metadata: ObjectMeta{Name: "x", Namespace: "ns"},
		Subsets:  []EndpointSubset{{Addresses: []EndpointAddress{{IP: "10.1.1.1"}}, Ports: []EndpointPort{{Port: 80, Protocol: "TCP"}}}},
	})
	_, b := get(t, s, "/apis/discovery.k8s.io/v1/namespaces/ns/endpointslices/x-1")
	for _, want := range []string{`{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"name":"x-1","namespace":"ns","uid":"`,
		`"generation":1,`, `"endpoints":[{"addresses":["10.1.1.1"],"conditions":{}}]`, `"ports":[{"name":"","protocol":"TCP","port":80}]`,
		`"managedFields":[{"manager":"kube-controller-manager","operation":"Update","apiVersion":"discovery.k8s.io/v1"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("slice lacks %s:\n%s", want, b)
		}
	}
	_, b = get(t, s, "/api/v1/namespaces/ns/endpoints/x")
	if !strings.Contains(string(b), `"subsets":[{"addresses":[{"ip":"10.1.1.1"}],"ports":[{"port":80,"protocol":"TCP"}]}]}`) {
		t.Errorf("endpoints: %s", b)
	}
	resp, b := get(t, s, "/api/v1/namespaces/ns/endpoints/nope")
	if st := status(t, b); resp.StatusCode != 404 || st.Reason != "NotFound" || st.Message != `endpoints "nope" not found` {
		t.Errorf("missing object: %d %s", resp.StatusCode, b)
	}
}

func TestPaginationIsConsistent(t *testing.T) {
	s := loaded(t)
	full := names(t, list(t, s, "/apis/discovery.k8s.io/v1/endpointslices").Items)

	first := list(t, s, "/apis/discovery.k8s.io/v1/endpointslices?limit=3")
	if first.Metadata.Continue == "" || first.Metadata.RemainingItemCount == nil || *first.Metadata.RemainingItemCount != int64(len(full)-3) {
		t.Fatalf("first page meta %+v", first.Metadata)
	}
	// A change after the first page is not seen by the later pages: they
	// read at the first page's revision, as etcd does.
	s.PutEndpointSlice(&EndpointSlice{Metadata: ObjectMeta{Name: "zzz", Namespace: "zzz"}, AddressType: "IPv4"})
	s.DeleteEndpointSlice("shop", "web-p9c2m")

	got := names(t, first.Items)
	cont := first.Metadata.Continue
	for cont != "" {
		p := list(t, s, "/apis/discovery.k8s.io/v1/endpointslices?limit=3&continue="+cont)
		if p.Metadata.ResourceVersion != first.Metadata.ResourceVersion {
			t.Fatalf("page rv %s, first %s", p.Metadata.ResourceVersion, first.Metadata.ResourceVersion)
		}
		got = append(got, names(t, p.Items)...)
		cont = p.Metadata.Continue
		if (cont == "") != (p.Metadata.RemainingItemCount == nil) {
			t.Fatalf("continue %q with remainingItemCount %v", cont, p.Metadata.RemainingItemCount)
		}
	}
	if !slices.Equal(got, full) {
		t.Fatalf("pages %v, want %v", got, full)
	}
	reqs := s.WaitRequests(func(r Request) bool { return r.Param("continue") != "" && r.Param("limit") == "3" }, 2)
	if len(reqs) != 2 {
		t.Fatalf("%d continued requests logged", len(reqs))
	}
}

func TestContinueWithSelectorHasNoRemainingCount(t *testing.T) {
	s := loaded(t)
	p := list(t, s, "/api/v1/endpoints?limit=1&labelSelector=app")
	if p.Metadata.Continue == "" || p.Metadata.RemainingItemCount != nil {
		t.Fatalf("meta %+v", p.Metadata)
	}
}

func TestContinueExpired(t *testing.T) {
	for _, expire := range []struct {
		name string
		do   func(*Server)
	}{
		{"ExpireContinueTokens", (*Server).ExpireContinueTokens},
		{"Compact", func(s *Server) { s.PutEndpoints(&Endpoints{Metadata: ObjectMeta{Name: "new"}}); s.Compact() }},
	} {
		t.Run(expire.name, func(t *testing.T) {
			s := loaded(t)
			p := list(t, s, "/api/v1/endpoints?limit=2")
			expire.do(s)
			resp, b := get(t, s, "/api/v1/endpoints?limit=2&continue="+p.Metadata.Continue)
			st := status(t, b)
			if resp.StatusCode != http.StatusGone || st.Kind != "Status" || st.APIVersion != "v1" || st.Status != "Failure" ||
				st.Reason != "Expired" || st.Code != 410 ||
				!strings.HasPrefix(st.Message, "The provided continue parameter is too old to display a consistent list result.") {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			// The 410 carries a token that continues, inconsistently, at
			// the latest revision.
			if st.Metadata.Continue == "" {
				t.Fatalf("no continue in %s", b)
			}
			rest := list(t, s, "/api/v1/endpoints?limit=100&continue="+st.Metadata.Continue)
			if got := names(t, rest.Items); len(got) == 0 || got[0] != "ipv6/api" {
				t.Fatalf("continued at latest: %v", got)
			}
			// A fresh list paginates again.
			if p := list(t, s, "/api/v1/endpoints?limit=2"); p.Metadata.Continue == "" {
				t.Fatal("no continue on a fresh list")
			} else {
				list(t, s, "/api/v1/endpoints?limit=2&continue="+p.Metadata.Continue)
			}
		})
	}
}

func TestListBadRequests(t *testing.T) {
	s := loaded(t)
	p := list(t, s, "/api/v1/endpoints?limit=2")
	for path, msg := range map[string]string{
		"/api/v1/endpoints?limit=2&resourceVersion=5&continue=" + p.Metadata.Continue: "specifying resource version is not allowed when using continue",
		"/api/v1/endpoints?continue=garbage":                                          "continue key is not valid",
		"/api/v1/endpoints?labelSelector=first%3D%22a%22":                             `unable to parse requirement: values[0][first]: Invalid value: "\"a\"": a valid label must be`,
		"/api/v1/endpoints?fieldSelector=spec.foo%3Db":                                "field label not supported: spec.foo",
	} {
		resp, b := get(t, s, path)
		st := status(t, b)
		if resp.StatusCode != 400 || st.Reason != "BadRequest" || st.Code != 400 || !strings.Contains(st.Message, msg) {
			t.Errorf("%s: %d %s", path, resp.StatusCode, b)
		}
	}
}

func TestListAtExactRV(t *testing.T) {
	s := loaded(t)
	rv := s.ResourceVersion()
	s.DeleteEndpoints("shop", "web")
	l := list(t, s, "/api/v1/endpoints?resourceVersion="+rv+"&resourceVersionMatch=Exact")
	if l.Metadata.ResourceVersion != rv || !slices.Contains(names(t, l.Items), "shop/web") {
		t.Fatalf("exact list at %s: %v", rv, names(t, l.Items))
	}
	l = list(t, s, "/api/v1/endpoints?resourceVersion="+rv+"&resourceVersionMatch=NotOlderThan")
	if slices.Contains(names(t, l.Items), "shop/web") {
		t.Fatal("NotOlderThan served a stale list")
	}
	s.Compact()
	resp, b := get(t, s, "/api/v1/endpoints?resourceVersion="+rv+"&resourceVersionMatch=Exact")
	if resp.StatusCode != 410 || status(t, b).Reason != "Expired" {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
}

func TestSelectors(t *testing.T) {
	s := loaded(t)
	for path, want := range map[string][]string{
		"/api/v1/namespaces/shop/endpoints":                                                       {"shop/empty", "shop/legacy", "shop/web"},
		"/api/v1/endpoints?fieldSelector=metadata.namespace%3Dshop":                               {"shop/empty", "shop/legacy", "shop/web"},
		"/api/v1/endpoints?fieldSelector=metadata.namespace%3D%3Dipv6":                            {"ipv6/api"},
		"/api/v1/endpoints?fieldSelector=metadata.namespace!%3Dshop":                              {"default/kubernetes", "default/plat-dev", "ipv6/api"},
		"/api/v1/endpoints?fieldSelector=metadata.namespace!%3Dshop,metadata.name!%3Dapi":         {"default/kubernetes", "default/plat-dev"},
		"/api/v1/endpoints?labelSelector=app%3Dweb":                                               {"shop/web"},
		"/api/v1/endpoints?labelSelector=app+in+(web,+legacy)":                                    {"shop/legacy", "shop/web"},
		"/api/v1/endpoints?labelSelector=app,app+notin+(web,legacy),app!%3Dempty":                 {"default/plat-dev", "ipv6/api"},
		"/api/v1/endpoints?labelSelector=!app":                                                    {"default/kubernetes"},
		"/api/v1/endpoints?labelSelector=tier%3D%3Dfrontend,app%3Dweb":                            {"shop/web"},
		"/api/v1/namespaces/shop/endpoints?fieldSelector=metadata.namespace%3Ddefault":            nil,
		"/apis/discovery.k8s.io/v1/endpointslices?labelSelector=kubernetes.io/service-name%3Dweb": {"shop/web-4bqzd", "shop/web-p9c2m"},
		"/apis/discovery.k8s.io/v1/namespaces/external/endpointslices":                            {"external/db-fqdn"},
	} {
		if got := names(t, list(t, s, path).Items); !slices.Equal(got, want) {
			t.Errorf("%s: got %v want %v", path, got, want)
		}
	}
}

func TestLabelSelectorParser(t *testing.T) {
	labels := map[string]string{"a": "1", "b": "x", "example.com/c": "y"}
	for sel, want := range map[string]bool{
		"": true, "a": true, "!a": false, "z": false, "!z": true, "a=1": true, "a==2": false, "a!=2": true, "z!=2": true,
		"b in (x,y)": true, "b in (y)": false, "b notin (y)": true, "z notin (y)": true, "z in (y)": false,
		"a>0": true, "a<1": false, "example.com/c=y,a=1": true, "example.com/c=y, a=2": false, " a = 1 , b = x ": true,
	} {
		reqs, err := parseLabelSelector(sel)
		if err != nil {
			t.Errorf("%q: %v", sel, err)
			continue
		}
		f := &filter{labels: reqs}
		if got := f.matches(&stored{labels: labels}); got != want {
			t.Errorf("%q matches %v, want %v", sel, got, want)
		}
	}
	for _, bad := range []string{`a="1"`, "a in (", "a,,b", "Example.com/c=y", "a=b c", "a>x", "-a"} {
		if _, err := parseLabelSelector(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestMalformedListItem(t *testing.T) {
	s := loaded(t)
	s.Fail(IsList(EndpointsResource), Malformed(), 1)
	l := list(t, s, "/api/v1/endpoints")
	bad := 0
	for _, it := range l.Items {
		var e Endpoints
		if err := json.Unmarshal(it, &e); err != nil {
			bad++
		}
	}
	if bad != 1 || len(l.Items) != 7 {
		t.Fatalf("%d items, %d malformed", len(l.Items), bad)
	}
	if l := list(t, s, "/api/v1/endpoints"); len(l.Items) != 6 {
		t.Fatalf("fault not consumed: %d items", len(l.Items))
	}
}

// The real kube-apiserver v1.37.2 answers a cluster-wide LIST with
// fieldSelector=metadata.namespace=X and a limit with the first page, and
// the continuation with 0 items and no continue token: everything after
// the first page is lost (notes.md; testdata/kube/captured/
// list-namespace-field-selector-*.json). The namespaced path, a !=
// selector and label selectors page correctly. The fake does the same.
func TestClusterWideNamespaceFieldSelectorPagingTrap(t *testing.T) {
	s := New(t)
	for i := range 5 {
		s.PutEndpoints(NewEndpoints("trap", "svc-"+string(rune('a'+i)), "http", 80, "10.0.0.1"))
		s.PutEndpoints(NewEndpoints("other", "svc-"+string(rune('a'+i)), "http", 80, "10.0.0.1"))
	}
	all := func(path string) []string {
		t.Helper()
		var got []string
		cont := ""
		for {
			p := list(t, s, path+"&continue="+cont)
			got = append(got, names(t, p.Items)...)
			if cont = p.Metadata.Continue; cont == "" {
				return got
			}
		}
	}
	first := list(t, s, "/api/v1/endpoints?limit=2&fieldSelector=metadata.namespace%3Dtrap")
	if len(first.Items) != 2 || first.Metadata.Continue == "" {
		t.Fatalf("first page %d items, continue %q", len(first.Items), first.Metadata.Continue)
	}
	next := list(t, s, "/api/v1/endpoints?limit=2&fieldSelector=metadata.namespace%3Dtrap&continue="+first.Metadata.Continue)
	if len(next.Items) != 0 || next.Metadata.Continue != "" || next.Metadata.ResourceVersion == "" {
		t.Fatalf("continuation: %d items, continue %q, rv %q; the real server sends 0 items and no continue", len(next.Items), next.Metadata.Continue, next.Metadata.ResourceVersion)
	}
	if got := all("/api/v1/endpoints?limit=2&fieldSelector=metadata.namespace%3Dtrap"); len(got) != 2 {
		t.Fatalf("cluster-wide with the equal selector: %v", got)
	}
	if got := all("/api/v1/endpoints?limit=2&fieldSelector=metadata.namespace%3D%3Dtrap"); len(got) != 2 {
		t.Fatalf("== is the same selector: %v", got)
	}
	if got := all("/apis/discovery.k8s.io/v1/endpointslices?limit=2&fieldSelector=metadata.namespace%3Dtrap"); len(got) != 0 {
		t.Fatalf("no slices: %v", got)
	}
	// What pages correctly.
	if got := all("/api/v1/namespaces/trap/endpoints?limit=2"); len(got) != 5 {
		t.Fatalf("namespaced path: %v", got)
	}
	if got := all("/api/v1/endpoints?limit=2&fieldSelector=metadata.namespace%21%3Dtrap"); len(got) != 5 {
		t.Fatalf("!= selector: %v", got)
	}
	if got := all("/api/v1/endpoints?limit=2&labelSelector=app"); len(got) != 0 {
		t.Fatalf("label selector: %v", got)
	}
	if got := all("/api/v1/endpoints?limit=2"); len(got) != 10 {
		t.Fatalf("no selector: %v", got)
	}
}
