// Package fakeapi is an in-process fake kube-apiserver for tests of kdisc's
// list-watch loop, facade and CLI. It serves core/v1 Endpoints and
// discovery.k8s.io/v1 EndpointSlices over real HTTP (or HTTPS) with the
// wire behaviour of kube-apiserver v1.37 that clients must tolerate:
// paginated LISTs with expiring continue tokens (and the real server's
// trap: a cluster-wide LIST with fieldSelector=metadata.namespace=X loses
// every page after the first), WATCH streams that replay
// history, bookmarks, 410 Expired in both of its forms, events cut into
// arbitrary chunks, and injectable faults. Every request is logged so
// tests can assert what the client sent.
//
// A typical test:
//
//	s := fakeapi.New(t, fakeapi.WithToken("tok"))
//	s.LoadFixture(fakeapi.Fixture("endpoints.json"))
//	s.Fail(fakeapi.IsList(fakeapi.EndpointsResource), fakeapi.TooManyRequests(1), 1)
//	// ... start the client against s.URL with token "tok" ...
//	s.WaitWatchers(1)                         // listed (after one 429) and watching
//	s.PutEndpoints(&fakeapi.Endpoints{...})  // the client sees MODIFIED
//	s.CloseWatches()                          // it must re-watch from its last RV:
//	r := s.WaitRequests(fakeapi.IsWatch(""), 2)[1]
//	// r.Param("resourceVersion") is the last RV it saw; no second LIST was made.
//
// Faults fire in the order armed; a request refused for its token (401)
// consumes none. Put, Delete, LoadFixture and the Wait helpers fail the
// test on error and belong on the test's goroutine. Put and LoadFixture
// default and validate objects as the real server does, and refuse (fail
// the test with the real 422 message) what it refuses: loopback addresses,
// an unnamed port among several, addresses not of the slice's addressType.
// TryPutEndpoints and TryPutEndpointSlice return the refusal instead.
//
// captured_test.go holds the answers to the shape of what a real
// kube-apiserver v1.37.2 sent (testdata/kube/captured).
package fakeapi

import (
	"encoding/pem"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is a running fake apiserver. Create it with New; it is closed by
// the test's cleanup.
type Server struct {
	// URL is the base URL, e.g. "http://127.0.0.1:41234".
	URL string

	t     testing.TB
	cfg   config
	seed  uint64
	ts    *httptest.Server
	store *store
	done  chan struct{} // closed when the server shuts down

	mu      sync.Mutex
	token   string
	reqs    []Request
	rules   []*rule
	changed chan struct{} // closed and replaced on any log/watcher change
	release chan struct{} // closed and replaced by ReleaseStalls
	closed  bool          // no more t.Logf
}

// testLog sends net/http's server errors (a client's TLS handshake
// failure, say) to the test log, while the test is running.
type testLog struct{ s *Server }

func (l testLog) Write(p []byte) (int, error) {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	if !l.s.closed {
		l.s.t.Logf("%s", strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

// Request is one logged request.
type Request struct {
	Seq           int        // 1-based arrival order
	Time          time.Time  // arrival
	Method        string     // "GET"
	Path          string     // URL path, e.g. "/api/v1/namespaces/default/endpoints"
	Query         url.Values // parsed query
	Authorization string     // the Authorization header as sent
	Accept        string     // the Accept header as sent: protobuf is served when it names it
	Resource      string     // EndpointsResource, EndpointSlicesResource, or "" for other paths
	Namespace     string     // namespace in the path, "" when cluster-wide
	Name          string     // object name for a GET of one object
	Watch         bool       // watch=1/true
	Fault         string     // the fault that answered it (Fault.String, or "BadToken" for a 401 from SetToken), "" if none
}

// Param returns the first value of query parameter k.
func (r Request) Param(k string) string { return r.Query.Get(k) }

type config struct {
	tls           bool
	http2         bool
	token         string
	seed          uint64
	waitTimeout   time.Duration
	expiredAsHTTP bool
	watchListCode int // 0: streaming lists are served; else refused with this code
	initialEvery  time.Duration
}

// Option configures New.
type Option func(*config)

// WithTLS serves HTTPS with httptest's self-signed certificate (valid for
// 127.0.0.1 and ::1); see CAPEM and CAFile.
func WithTLS() Option { return func(c *config) { c.tls = true } }

// WithHTTP2 also offers HTTP/2 over TLS (implies WithTLS), as the real
// apiserver does; DropMidEvent then resets the stream instead of closing
// a TCP connection.
func WithHTTP2() Option { return func(c *config) { c.tls, c.http2 = true, true } }

// WithToken requires "Authorization: Bearer tok" (401 otherwise). See
// SetToken.
func WithToken(tok string) Option { return func(c *config) { c.token = tok } }

// WithSeed seeds the random chunk splits (default 1), to replay a failure.
func WithSeed(seed uint64) Option { return func(c *config) { c.seed = seed } }

// WithWaitTimeout bounds WaitRequests and WaitWatchers (default 10s).
func WithWaitTimeout(d time.Duration) Option { return func(c *config) { c.waitTimeout = d } }

// WithWatchExpiredAsHTTPError makes a watch from a compacted revision get
// an immediate HTTP 410 Status instead of the real server's usual 200
// followed by an ERROR event (some proxies and older servers do this).
func WithWatchExpiredAsHTTPError() Option { return func(c *config) { c.expiredAsHTTP = true } }

// WithoutWatchList makes the server refuse streaming lists (a WATCH with
// sendInitialEvents) as kube-apiserver v1.33 does with its WatchList
// feature gate off: 422 Invalid, "sendInitialEvents is forbidden for watch
// unless the WatchList feature gate is enabled". LIST and plain WATCH are
// served as usual.
func WithoutWatchList() Option { return WithWatchListRefused(http.StatusUnprocessableEntity) }

// WithWatchListRefused refuses streaming lists with code: 422 as
// WithoutWatchList, 400 BadRequest (what a proxy in front of an apiserver
// may answer), or any other code with its HTTP status text.
func WithWatchListRefused(code int) Option { return func(c *config) { c.watchListCode = code } }

// WithSlowInitialEvents sends a streaming list's initial events (and its
// end bookmark) one at a time, every d: a big cluster, a slow server or a
// slow client. The watch's timeoutSeconds ends the stream meanwhile, as
// the real server's does.
func WithSlowInitialEvents(d time.Duration) Option { return func(c *config) { c.initialEvery = d } }

// New starts a fake apiserver, closed by t.Cleanup.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	cfg := config{seed: 1, waitTimeout: 10 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	s := &Server{
		t: t, cfg: cfg, seed: cfg.seed, token: cfg.token,
		done:    make(chan struct{}),
		changed: make(chan struct{}),
		release: make(chan struct{}),
	}
	s.store = newStore(s.notify)
	s.ts = httptest.NewUnstartedServer(s)
	s.ts.Config.ErrorLog = log.New(testLog{s}, "fakeapi: ", 0)
	if cfg.tls {
		s.ts.EnableHTTP2 = cfg.http2
		s.ts.StartTLS()
	} else {
		s.ts.Start()
	}
	s.URL = s.ts.URL
	t.Cleanup(s.close)
	return s
}

// close ends watches and stalls first: httptest.Server.Close waits for
// every handler to return.
func (s *Server) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	close(s.done)
	s.ts.CloseClientConnections()
	s.ts.Close()
}

// Host is the server's IP address ("127.0.0.1").
func (s *Server) Host() string {
	h, _, _ := net.SplitHostPort(s.ts.Listener.Addr().String())
	return h
}

// Port is the server's TCP port.
func (s *Server) Port() int {
	_, p, _ := net.SplitHostPort(s.ts.Listener.Addr().String())
	n, _ := strconv.Atoi(p)
	return n
}

// Client is an *http.Client that trusts the server (for TLS).
func (s *Server) Client() *http.Client { return s.ts.Client() }

// CAPEM is the PEM of the certificate to trust (nil without WithTLS).
func (s *Server) CAPEM() []byte {
	if s.ts.TLS == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.ts.Certificate().Raw})
}

// CAFile writes CAPEM to a file in t.TempDir() and returns its path, for
// a config's service.ca_file.
func (s *Server) CAFile(t testing.TB) string {
	t.Helper()
	pemBytes := s.CAPEM()
	if pemBytes == nil {
		t.Fatal("fakeapi: CAFile needs WithTLS")
	}
	p := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(p, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// SetToken changes the bearer token required from now on ("" accepts any
// request). Open watches are not affected, as on the real server, which
// authenticates a request once.
func (s *Server) SetToken(tok string) {
	s.mu.Lock()
	s.token = tok
	s.mu.Unlock()
}

// PutEndpoints creates or replaces an Endpoints object and returns the new
// resourceVersion. Watchers get ADDED or MODIFIED. The object is defaulted
// and validated as the real server does (protocol TCP; refused: loopback
// or other special addresses, an unnamed port among several, a subset
// without addresses); a refused object fails the test with the real 422
// message. See TryPutEndpoints.
func (s *Server) PutEndpoints(e *Endpoints) string {
	s.t.Helper()
	return s.put(resEndpoints, e)
}

// PutEndpointSlice creates or replaces an EndpointSlice object and returns
// the new resourceVersion. As with PutEndpoints, it is defaulted (port
// name "", protocol TCP) and validated (addresses must match addressType,
// no loopback or other special IPs); a refused object fails the test.
func (s *Server) PutEndpointSlice(e *EndpointSlice) string {
	s.t.Helper()
	return s.put(resEndpointSlices, e)
}

// TryPutEndpoints is PutEndpoints for a test that expects a refusal: the
// error is the real server's 422 *Status (Code, Reason "Invalid",
// Details.Causes).
func (s *Server) TryPutEndpoints(e *Endpoints) (string, error) { return s.store.put(resEndpoints, e) }

// TryPutEndpointSlice is PutEndpointSlice returning the refusal.
func (s *Server) TryPutEndpointSlice(e *EndpointSlice) (string, error) {
	return s.store.put(resEndpointSlices, e)
}

func (s *Server) put(res *resource, obj object) string {
	s.t.Helper()
	rv, err := s.store.put(res, obj)
	if err != nil {
		s.t.Fatalf("fakeapi: put %s: %v", res.kind, err)
	}
	return rv
}

// DeleteEndpoints deletes ns/name and returns the deletion's
// resourceVersion, "" if there was no such object.
func (s *Server) DeleteEndpoints(ns, name string) string { return s.store.del(resEndpoints, ns, name) }

// DeleteEndpointSlice deletes ns/name and returns the deletion's
// resourceVersion, "" if there was no such object.
func (s *Server) DeleteEndpointSlice(ns, name string) string {
	return s.store.del(resEndpointSlices, ns, name)
}

// ResourceVersion is the current global revision.
func (s *Server) ResourceVersion() string { return formatRV(s.store.currentRV()) }

// Compact forgets history up to now: a watch from an older
// resourceVersion gets 410 Expired, and so does an older continue token.
func (s *Server) Compact() { s.store.compact() }

// ExpireContinueTokens makes every continue token issued so far answer
// 410 Expired, without touching the watch history. The resourceVersion
// moves on by one (as writes to other resources move it on a real
// cluster), so tokens issued from now on are told apart from older ones.
func (s *Server) ExpireContinueTokens() {
	s.store.mu.Lock()
	s.store.rv++
	s.store.tokensFrom = s.store.rv
	s.store.mu.Unlock()
}

// SendBookmark sends a BOOKMARK at the current resourceVersion on every
// open watch that asked for bookmarks (allowWatchBookmarks=true), after
// the events already queued on it.
func (s *Server) SendBookmark() { s.store.bookmark() }

// CloseWatches ends every open watch stream cleanly (as a timeout, an
// apiserver restart or a load balancer does); clients must re-watch.
func (s *Server) CloseWatches() { s.store.closeWatches() }

// Fail arms fault f for the next `times` requests that match (times < 0:
// every matching request until ClearFaults). Faults armed earlier are
// consumed first.
func (s *Server) Fail(match Matcher, f Fault, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules = append(s.rules, &rule{match: match, fault: f, left: times})
}

// ClearFaults disarms every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	s.rules = nil
	s.mu.Unlock()
}

// ReleaseStalls lets every request held by a Stall fault continue.
func (s *Server) ReleaseStalls() {
	s.mu.Lock()
	close(s.release)
	s.release = make(chan struct{})
	s.mu.Unlock()
}

// Requests returns a copy of the request log.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// WaitRequests waits until at least n logged requests match and returns
// all of them; it fails the test after the wait timeout. Call it from the
// test's goroutine.
func (s *Server) WaitRequests(match Matcher, n int) []Request {
	s.t.Helper()
	var got []Request
	s.waitFor(func() bool {
		got = got[:0]
		for _, r := range s.reqs {
			if match(r) {
				got = append(got, r)
			}
		}
		return len(got) >= n
	}, func() string {
		return fmt.Sprintf("%d matching requests (have %d); log:\n%s", n, len(got), s.logText())
	})
	return got
}

// WaitWatchers waits until exactly n watch streams are open (0: all
// ended); it fails the test after the wait timeout.
func (s *Server) WaitWatchers(n int) {
	s.t.Helper()
	s.waitFor(func() bool { return s.store.watcherCount() == n },
		func() string { return fmt.Sprintf("%d open watches (have %d)", n, s.store.watcherCount()) })
}

// ActiveWatchers is the number of open watch streams.
func (s *Server) ActiveWatchers() int { return s.store.watcherCount() }

// waitFor re-evaluates cond (under s.mu) on every change until it holds.
func (s *Server) waitFor(cond func() bool, what func() string) {
	s.t.Helper()
	deadline := time.NewTimer(s.cfg.waitTimeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		ok, ch := cond(), s.changed
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			s.mu.Lock()
			msg := what()
			s.mu.Unlock()
			s.t.Fatalf("fakeapi: timed out after %v waiting for %s", s.cfg.waitTimeout, msg)
		}
	}
}

// logText renders the log for failure messages; s.mu held.
func (s *Server) logText() string {
	var b strings.Builder
	for _, r := range s.reqs {
		fmt.Fprintf(&b, "  #%d %s %s?%s", r.Seq, r.Method, r.Path, r.Query.Encode())
		if r.Fault != "" {
			fmt.Fprintf(&b, " [%s]", r.Fault)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func (s *Server) notify() {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// stall holds the request after its headers; false when it should end.
func (s *Server) stall(w http.ResponseWriter, r *http.Request, f Fault) bool {
	_ = http.NewResponseController(w).Flush()
	select {
	case <-f.release:
		return true
	case <-r.Context().Done():
	case <-s.done:
	}
	return false
}

// hangUp closes the TCP connection under the response, mid-body: the
// client sees an unexpected EOF in the middle of a chunked body.
func (s *Server) hangUp(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // HTTP/2: reset the stream instead
	}
	_ = conn.Close()
}

// route parses an API path: resource, namespace, object name.
func route(path string) (res *resource, ns, name string, ok bool) {
	var rest string
	switch {
	case strings.HasPrefix(path, "/api/v1/"):
		res, rest = resEndpoints, strings.TrimPrefix(path, "/api/v1/")
	case strings.HasPrefix(path, "/apis/discovery.k8s.io/v1/"):
		res, rest = resEndpointSlices, strings.TrimPrefix(path, "/apis/discovery.k8s.io/v1/")
	default:
		return nil, "", "", false
	}
	parts := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	if len(parts) >= 3 && parts[0] == "namespaces" {
		ns, parts = parts[1], parts[2:]
	}
	if len(parts) == 0 || len(parts) > 2 || parts[0] != res.name {
		return nil, "", "", false
	}
	if len(parts) == 2 {
		name = parts[1]
	}
	return res, ns, name, true
}

// ServeHTTP logs the request, authenticates it, applies an armed fault,
// then serves it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	res, ns, name, isAPI := route(r.URL.Path)
	q := r.URL.Query()
	watch := false
	if v := q.Get("watch"); v != "" {
		watch, _ = strconv.ParseBool(v)
	}
	req := Request{
		Time: time.Now(), Method: r.Method, Path: r.URL.Path, Query: q,
		Authorization: r.Header.Get("Authorization"), Accept: r.Header.Get("Accept"),
		Namespace: ns, Name: name, Watch: watch && isAPI && name == "",
	}
	if isAPI {
		req.Resource = res.name
	}

	s.mu.Lock()
	req.Seq = len(s.reqs) + 1
	var fault Fault
	authOK := s.token == "" || req.Authorization == "Bearer "+s.token
	if authOK {
		for _, ru := range s.rules {
			if ru.left != 0 && ru.match(req) {
				fault = ru.fault
				fault.release = s.release // ReleaseStalls from now on frees it
				ru.left--
				req.Fault = fault.String()
				break
			}
		}
	} else {
		req.Fault = "BadToken"
	}
	s.reqs = append(s.reqs, req)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()

	if acceptsProtobuf(r) {
		w = &protoResponse{w}
	}
	h := w.Header()
	h.Set("Audit-Id", fakeUID("audit", strconv.Itoa(req.Seq)))
	h.Set("Cache-Control", "no-cache, private")
	h.Set("X-Kubernetes-Pf-Flowschema-Uid", fakeUID("flowschema", "service-accounts"))
	h.Set("X-Kubernetes-Pf-Prioritylevel-Uid", fakeUID("prioritylevel", "workload-low"))

	if !authOK {
		writeStatus(w, unauthorizedStatus())
		return
	}
	if st := faultStatus(fault, req, res); st != nil {
		writeStatus(w, st)
		return
	}
	switch {
	case r.URL.Path == "/version":
		h.Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(versionJSON))
		return
	case !isAPI:
		st := newStatus(http.StatusNotFound, "NotFound", "the server could not find the requested resource")
		st.Details = &StatusDetails{}
		writeStatus(w, st)
		return
	case r.Method != http.MethodGet:
		writeStatus(w, newStatus(http.StatusMethodNotAllowed, "MethodNotAllowed",
			"the server does not allow this method on the requested resource"))
		return
	}
	if v := q.Get("watch"); v != "" {
		if _, err := strconv.ParseBool(v); err != nil {
			writeStatus(w, badRequest(fmt.Sprintf("invalid watch parameter %q", v)))
			return
		}
	}
	if res == resEndpoints {
		// Since v1.33 every request for v1 Endpoints that passes
		// authorization carries this warning (clients log it).
		h.Set("Warning", endpointsWarning)
	}
	f, st := newFilter(ns, q.Get("fieldSelector"), q.Get("labelSelector"))
	switch {
	case st != nil:
		writeStatus(w, st)
	case name != "":
		s.serveGet(w, req, res)
	case req.Watch:
		s.serveWatch(w, r, req, res, f, fault)
	default:
		s.serveList(w, r, req, res, f, fault)
	}
}

const endpointsWarning = `299 - "v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice"`

const versionJSON = `{"major":"1","minor":"37","emulationMajor":"1","emulationMinor":"37","minCompatibilityMajor":"1","minCompatibilityMinor":"36","gitVersion":"v1.37.2","gitCommit":"0000000000000000000000000000000000000000","gitTreeState":"clean","buildDate":"2026-04-22T00:00:00Z","goVersion":"go1.26.2","compiler":"gc","platform":"linux/amd64"}
`
