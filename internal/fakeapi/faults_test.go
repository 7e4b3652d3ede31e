package fakeapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

func TestStatusFaults(t *testing.T) {
	for _, c := range []struct {
		fault      Fault
		path       string
		code       int
		retryAfter string
		body       string
	}{
		{TooManyRequests(3), "/api/v1/endpoints", 429, "3",
			`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Too many requests, please try again later.","reason":"TooManyRequests","details":{"retryAfterSeconds":3},"code":429}`},
		{InternalError(), "/api/v1/endpoints", 500, "",
			`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Internal error occurred: etcdserver: request timed out","reason":"InternalError","details":{"causes":[{"message":"etcdserver: request timed out"}]},"code":500}`},
		{ServiceUnavailable(5), "/api/v1/endpoints?watch=1", 503, "5", ""},
		{Forbidden("system:serviceaccount:apisix:apisix"), "/api/v1/endpoints", 403, "",
			`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"endpoints is forbidden: User \"system:serviceaccount:apisix:apisix\" cannot list resource \"endpoints\" in API group \"\" at the cluster scope","reason":"Forbidden","details":{"kind":"endpoints"},"code":403}`},
		{Forbidden("x"), "/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices?watch=true", 403, "",
			`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"endpointslices.discovery.k8s.io is forbidden: User \"x\" cannot watch resource \"endpointslices\" in API group \"discovery.k8s.io\" in the namespace \"shop\"","reason":"Forbidden","details":{"group":"discovery.k8s.io","kind":"endpointslices"},"code":403}`},
		{Unauthorized(), "/api/v1/endpoints", 401, "",
			`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}`},
	} {
		t.Run(c.fault.String(), func(t *testing.T) {
			s := loaded(t)
			s.Fail(AnyRequest, c.fault, 2)
			for range 2 {
				resp, b := get(t, s, c.path)
				if resp.StatusCode != c.code || resp.Header.Get("Retry-After") != c.retryAfter ||
					resp.Header.Get("Content-Type") != "application/json" {
					t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, b)
				}
				if st := status(t, b); st.Code != c.code || c.body != "" && strings.TrimSpace(string(b)) != c.body {
					t.Fatalf("body %s\nwant %s", b, c.body)
				}
			}
			if resp, _ := get(t, s, "/api/v1/endpoints"); resp.StatusCode != 200 {
				t.Fatalf("fault outlived its count: %d", resp.StatusCode)
			}
			reqs := s.Requests()
			if reqs[0].Fault != c.fault.String() || reqs[2].Fault != "" {
				t.Fatalf("log: %+v", reqs)
			}
		})
	}
}

func TestFaultMatchers(t *testing.T) {
	s := loaded(t)
	s.Fail(IsWatch(EndpointSlicesResource), InternalError(), -1)
	s.Fail(IsList(""), TooManyRequests(1), 1)
	codes := func(path string) int { resp, _ := get(t, s, path); return resp.StatusCode }
	if c := codes("/api/v1/endpoints?watch=1&timeoutSeconds=1&resourceVersion=99999"); c != 504 {
		t.Fatal(c) // not matched: served (too large rv)
	}
	if c := codes("/apis/discovery.k8s.io/v1/endpointslices"); c != 429 {
		t.Fatal(c)
	}
	if c := codes("/apis/discovery.k8s.io/v1/endpointslices"); c != 200 {
		t.Fatal(c)
	}
	for range 3 {
		if c := codes("/apis/discovery.k8s.io/v1/endpointslices?watch=1"); c != 500 {
			t.Fatal(c)
		}
	}
	s.ClearFaults()
	w := watch(t, s, "/apis/discovery.k8s.io/v1/endpointslices?watch=1&resourceVersion="+s.ResourceVersion())
	if w.resp.StatusCode != 200 {
		t.Fatal(w.resp.StatusCode)
	}
}

func TestTokenAndRotation(t *testing.T) {
	s := loaded(t, WithToken("old"))
	do := func(tok string) int {
		req, _ := http.NewRequest("GET", s.URL+"/api/v1/endpoints", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 401 && status(t, b).Reason != "Unauthorized" {
			t.Fatalf("%s", b)
		}
		return resp.StatusCode
	}
	if do("") != 401 || do("wrong") != 401 || do("old") != 200 {
		t.Fatal("token check")
	}
	s.SetToken("new")
	if do("old") != 401 || do("new") != 200 {
		t.Fatal("rotation")
	}
	auth := []string{}
	for _, r := range s.Requests() {
		auth = append(auth, r.Authorization)
	}
	if strings.Join(auth, ",") != ",Bearer wrong,Bearer old,Bearer old,Bearer new" {
		t.Fatalf("logged %q", auth)
	}
}

func TestDropMidEvent(t *testing.T) {
	s := loaded(t)
	s.Fail(IsList(EndpointsResource), DropMidEvent(), 1)
	resp, err := s.Client().Get(s.URL + "/api/v1/endpoints")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !isUnexpectedEOF(err) || len(b) == 0 || json.Valid(b) {
		t.Fatalf("list: %d, %d bytes, err %v", resp.StatusCode, len(b), err)
	}

	s.Fail(IsWatch(""), DropMidEvent(), 1)
	w := watch(t, s, "/api/v1/endpoints?watch=1&resourceVersion="+s.ResourceVersion())
	s.PutEndpoints(ep("ns", "a", nil, "10.0.0.1"))
	if err := w.end(); !isUnexpectedEOF(err) {
		t.Fatalf("watch end: %v", err)
	}
	s.WaitWatchers(0)
	// Next watch is whole again.
	w = watch(t, s, "/api/v1/endpoints?watch=1&resourceVersion=0")
	if ev := w.next(); ev.Type != "ADDED" {
		t.Fatal(ev.Type)
	}
}

func TestStall(t *testing.T) {
	s := loaded(t)
	s.Fail(AnyRequest, Stall(), 2)

	// The client gives up: headers arrived, the body never does.
	c := &http.Client{Timeout: 300 * time.Millisecond}
	resp, err := c.Get(s.URL + "/api/v1/endpoints")
	if err != nil {
		t.Fatalf("headers should arrive: %v", err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	var ne interface{ Timeout() bool }
	if resp.StatusCode != 200 || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("%d %v", resp.StatusCode, err)
	}

	// The test releases it: the request is then served in full.
	w := watch(t, s, "/api/v1/endpoints?watch=1&resourceVersion=0")
	s.WaitRequests(func(r Request) bool { return r.Fault == "Stall" }, 2)
	s.ReleaseStalls()
	if ev := w.next(); ev.Type != "ADDED" {
		t.Fatal(ev.Type)
	}
}

func TestMalformedWatchEvent(t *testing.T) {
	s := loaded(t)
	s.Fail(IsWatch(EndpointSlicesResource), Malformed(), 1)
	w := watch(t, s, "/apis/discovery.k8s.io/v1/endpointslices?watch=1&resourceVersion="+s.ResourceVersion())
	ev := w.next()
	var es EndpointSlice
	if ev.Type != "ADDED" || json.Unmarshal(ev.Object, &es) == nil {
		t.Fatalf("not malformed: %s %s", ev.Type, ev.Object)
	}
	if m := meta(t, ev.Object); m.ResourceVersion != s.ResourceVersion() {
		t.Fatalf("malformed event rv %s", m.ResourceVersion)
	}
	s.PutEndpointSlice(&EndpointSlice{Metadata: ObjectMeta{Name: "ok", Namespace: "ns"}, AddressType: "IPv4"})
	ev = w.next()
	if json.Unmarshal(ev.Object, &es) != nil || es.Metadata.Name != "ok" {
		t.Fatalf("%s", ev.Object)
	}
}

func TestTLS(t *testing.T) {
	s := New(t, WithTLS(), WithToken("tok"))
	s.LoadFixture(Fixture("endpoints-plat-dev-scaled.json"))
	if !strings.HasPrefix(s.URL, "https://") || s.Host() != "127.0.0.1" || s.Port() == 0 {
		t.Fatalf("%s %s %d", s.URL, s.Host(), s.Port())
	}
	pemBytes, err := os.ReadFile(s.CAFile(t))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatal("bad PEM")
	}
	req, _ := http.NewRequest("GET", s.URL+"/api/v1/namespaces/default/endpoints/plat-dev", nil)
	req.Header.Set("Authorization", "Bearer tok")
	trusting := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := trusting.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var e Endpoints
	err = json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if err != nil || len(e.Subsets[0].Addresses) != 3 {
		t.Fatalf("%v %+v", err, e)
	}
	// The system roots do not trust it.
	if _, err := (&http.Client{Transport: &http.Transport{}}).Do(req); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted: %v", err)
	}
	// DropMidEvent works over TLS too.
	s.Fail(AnyRequest, DropMidEvent(), 1)
	req, _ = http.NewRequestWithContext(context.Background(), "GET", s.URL+"/api/v1/endpoints", nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err = trusting.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !isUnexpectedEOF(err) {
		t.Fatalf("drop over TLS: %v", err)
	}
}

func TestWaitRequestsSeesLaterRequests(t *testing.T) {
	s := New(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, p := range []string{"/api/v1/endpoints?limit=500", "/api/v1/namespaces/a/endpoints?labelSelector=app%3Dx"} {
			resp, err := s.Client().Get(s.URL + p)
			if err == nil {
				resp.Body.Close()
			}
		}
	}()
	reqs := s.WaitRequests(IsList(EndpointsResource), 2)
	<-done
	if reqs[0].Param("limit") != "500" || reqs[1].Namespace != "a" || reqs[1].Param("labelSelector") != "app=x" || reqs[1].Seq != 2 {
		t.Fatalf("%+v", reqs)
	}
}

func TestHTTP2(t *testing.T) {
	s := loaded(t, WithHTTP2())
	w := watch(t, s, "/api/v1/endpoints?watch=1&resourceVersion=0")
	if w.resp.ProtoMajor != 2 {
		t.Fatalf("proto %s", w.resp.Proto)
	}
	if ev := w.next(); ev.Type != "ADDED" {
		t.Fatal(ev.Type)
	}
	s.Fail(IsWatch(""), DropMidEvent(), 1)
	d := watch(t, s, "/api/v1/endpoints?watch=1&resourceVersion="+s.ResourceVersion())
	s.PutEndpoints(ep("ns", "a", nil, "10.0.0.1"))
	if ev := w.next(); ev.Type != "ADDED" {
		t.Fatal(ev.Type)
	}
	if err := d.end(); err == nil || err == io.EOF {
		t.Fatalf("reset stream ended with %v", err)
	}
}
