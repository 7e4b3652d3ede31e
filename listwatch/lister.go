package listwatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kdisc/kdisc/apiserver"
	"github.com/kdisc/kdisc/selector"
)

// ListerWatcher is what the loop asks of the apiserver, as client-go's
// reflector is fed by a ListerWatcher: one page of a LIST, or a WATCH
// stream. The HTTP implementation wraps *apiserver.Client; tests feed the
// loop exact sequences of pages, events and errors through their own.
//
// Errors are the apiserver's *apiserver.StatusError, or transport errors;
// Classify says what each means. The streaming list is a Watch with
// WatchOptions.SendInitialEvents: its stream starts with an ADDED event per
// object and a BOOKMARK annotated k8s.io/initial-events-end, then goes on
// as a watch.
type ListerWatcher interface {
	// List reads one page, calling item with each item's raw bytes (valid
	// only during the call; JSON, or protobuf in a k8s envelope: proto),
	// and returns the page's list metadata.
	List(ctx context.Context, o ListOptions, item func(raw []byte, proto bool)) (ListMeta, error)
	// Watch opens a watch stream. The stream ends when ctx ends.
	Watch(ctx context.Context, o WatchOptions) (EventStream, error)
}

// ListOptions select one LIST page. Limit 0 asks for everything at once.
type ListOptions struct {
	Limit    int
	Continue string
}

// ListMeta is what a LIST page says besides its items.
type ListMeta struct {
	ResourceVersion string
	Continue        string
}

// WatchOptions start a watch; bookmarks are always asked for.
type WatchOptions struct {
	ResourceVersion string
	TimeoutSeconds  int
	// SendInitialEvents asks for the streaming list
	// (sendInitialEvents=true, resourceVersionMatch=NotOlderThan): the
	// state as of ResourceVersion or newer ("": the latest) as ADDED
	// events, ended by the initial-events-end bookmark, then the watch.
	// Until that bookmark the list's idle timeout applies: a stream
	// silent (no byte) for ListIdleTimeout is given up.
	SendInitialEvents bool
}

// Event is one watch event as the wire carries it: its type and its
// object's raw bytes, JSON or (Proto) protobuf in its "k8s\x00" envelope
// (runtime.Unknown). What the object means is the sink's to read
// (services.Sink); the loop reads only bookmarks and errors.
type Event struct {
	Type   string
	Object []byte
	Proto  bool
}

// EventStream is an open watch.
type EventStream interface {
	// Next reads the next event into ev, reusing ev.Object's memory (the
	// previous event's bytes are overwritten). It returns io.EOF when the
	// server ended the stream cleanly between events.
	Next(ev *Event) error
	Close() error
}

// Request verbs, as counted in Stats.Requests.
const (
	VerbList  = "list"
	VerbWatch = "watch"
)

// httpListerWatcher speaks to the apiserver over HTTP: it builds the
// collection's URLs, negotiates the wire format, and frames the answers
// (framejson.go, frameproto.go).
type httpListerWatcher struct {
	client *apiserver.Client
	path   string     // collection URL path
	query  url.Values // selectors; never modified
	clock  Clock
	// listIdle bounds the silence while a LIST page is read: a server
	// that sent headers and then stopped is given up after this long
	// without a byte.
	listIdle time.Duration
	count    func(verb, code string)
	accept   string // the Accept header (Wire format)
}

// get sends one request with the negotiated Accept header and reports
// whether its answer is protobuf (else JSON): any other Content-Type of a
// 2xx answer is an error naming it. Media-type parameters are ignored
// except stream=watch, which a LIST answer must not have.
func (h *httpListerWatcher) get(ctx context.Context, q url.Values, watch bool) (*http.Response, bool, error) {
	resp, err := h.client.GetAccepting(ctx, h.path, q, h.accept)
	if err != nil {
		return nil, false, err
	}
	proto, err := answerFormat(resp.Header.Get("Content-Type"), watch)
	if err != nil {
		resp.Body.Close()
		return nil, false, err
	}
	return resp, proto, nil
}

// answerFormat reads a 2xx answer's Content-Type: protobuf or JSON.
// None at all is read as JSON, as before content negotiation.
func answerFormat(contentType string, watch bool) (proto bool, err error) {
	if contentType == "" {
		return false, nil
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false, &ContentTypeError{ContentType: contentType}
	}
	if params["stream"] != "" && (!watch || params["stream"] != "watch") {
		return false, &ContentTypeError{ContentType: contentType}
	}
	switch mt {
	case apiserver.MediaProtobuf:
		return true, nil
	case apiserver.MediaJSON:
		return false, nil
	}
	return false, &ContentTypeError{ContentType: contentType}
}

// ContentTypeError: a 2xx answer in a format kdisc does not read.
type ContentTypeError struct{ ContentType string }

func (e *ContentTypeError) Error() string {
	return fmt.Sprintf("unsupported Content-Type %q (kdisc reads %s and %s)", e.ContentType, apiserver.MediaProtobuf, apiserver.MediaJSON)
}

func (h *httpListerWatcher) params() url.Values {
	q := make(url.Values, len(h.query)+4)
	for k, v := range h.query {
		q[k] = v
	}
	return q
}

// countResult counts one request by its HTTP code, "error" when no answer
// came.
func (h *httpListerWatcher) countResult(verb string, err error) {
	if h.count == nil {
		return
	}
	code := "200"
	if err != nil {
		var se *apiserver.StatusError
		if errors.As(err, &se) {
			code = strconv.Itoa(se.Code)
		} else {
			code = "error"
		}
	}
	h.count(verb, code)
}

// newHTTPListerWatcher is o's collection on o.Client; count hears each
// request's verb and answer.
func newHTTPListerWatcher(o Options, count func(verb, code string)) *httpListerWatcher {
	accept := apiserver.AcceptProtobufOrJSON
	if o.JSON {
		accept = apiserver.MediaJSON
	}
	return &httpListerWatcher{client: o.Client, path: collectionPath(o), query: selectors(o), clock: o.Clock, listIdle: o.ListIdleTimeout, count: count, accept: accept}
}

// collectionPath is the URL path of o's collection. namespace_selector.equal
// lists and watches that namespace on its namespaced path. Never as a
// cluster-wide fieldSelector metadata.namespace=X with a limit:
// kube-apiserver (seen in v1.37.2) answers that LIST's continuation with 0
// items and no continue token, losing every object after the first page.
// (not_equal's != and label selectors page correctly on the cluster-wide
// path.)
func collectionPath(o Options) string {
	prefix := ""
	if ns := equalNamespace(o.Namespaces); ns != "" {
		prefix = "/namespaces/" + ns
	}
	if o.EndpointSlices {
		return "/apis/discovery.k8s.io/v1" + prefix + "/endpointslices"
	}
	return "/api/v1" + prefix + "/endpoints"
}

// equalNamespace is the namespace of namespace_selector.equal, "" when
// another (or no) selector is set.
func equalNamespace(ns *selector.Namespace) string {
	if ns, ok := strings.CutPrefix(ns.FieldSelector(), "metadata.namespace="); ok {
		return ns
	}
	return ""
}

// selectors is the query that selects o's objects on its collection path.
func selectors(o Options) url.Values {
	q := url.Values{}
	if fs := o.Namespaces.FieldSelector(); fs != "" && equalNamespace(o.Namespaces) == "" {
		q.Set("fieldSelector", fs)
	}
	if o.LabelSelector != "" {
		q.Set("labelSelector", o.LabelSelector)
	}
	return q
}

// url is the collection URL, for logs.
func (h *httpListerWatcher) url() string {
	if h.client == nil {
		return h.path
	}
	return h.client.URL(h.path, h.query)
}

func (h *httpListerWatcher) List(ctx context.Context, o ListOptions, item func(raw []byte, proto bool)) (ListMeta, error) {
	q := h.params()
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Continue != "" {
		q.Set("continue", o.Continue)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The idle timer runs from before the request: headers that never
	// come count as silence too.
	idle := newIdleCancel(h.clock, h.listIdle, cancel)
	defer idle.stop()
	resp, proto, err := h.get(ctx, q, false)
	if err != nil {
		err = idle.explain(err)
		h.countResult(VerbList, err)
		return ListMeta{}, err
	}
	h.countResult(VerbList, nil)
	defer resp.Body.Close()
	body := &idleReader{r: resp.Body, idle: idle}
	var page listPage
	if proto {
		page, err = readProtoList(body, func(raw []byte) { item(raw, true) })
	} else {
		page, err = readList(body, func(raw []byte) { item(raw, false) })
	}
	if err != nil {
		return ListMeta{}, idle.explain(err)
	}
	// The decoder stops at the closing brace; reading on to EOF lets the
	// connection be reused for the next page.
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	return ListMeta{ResourceVersion: page.resourceVersion, Continue: page.continueToken}, nil
}

func (h *httpListerWatcher) Watch(ctx context.Context, o WatchOptions) (EventStream, error) {
	q := h.params()
	q.Set("watch", "1")
	q.Set("allowWatchBookmarks", "true")
	q.Set("resourceVersion", o.ResourceVersion)
	if o.SendInitialEvents {
		q.Set("sendInitialEvents", "true")
		q.Set("resourceVersionMatch", "NotOlderThan")
	}
	if o.TimeoutSeconds > 0 {
		q.Set("timeoutSeconds", strconv.Itoa(o.TimeoutSeconds))
	}
	if !o.SendInitialEvents {
		resp, proto, err := h.get(ctx, q, true)
		h.countResult(VerbWatch, err)
		if err != nil {
			return nil, err
		}
		return &httpStream{body: resp.Body, er: newEvents(resp.Body, proto)}, nil
	}
	// The streaming list: until its initial-events-end bookmark it is a
	// LIST, given up after ListIdleTimeout without a byte (the timer runs
	// from before the request, as for a page).
	ctx, cancel := context.WithCancel(ctx)
	idle := newIdleCancel(h.clock, h.listIdle, cancel)
	resp, proto, err := h.get(ctx, q, true)
	if err != nil {
		idle.stop()
		cancel()
		err = idle.explain(err)
		h.countResult(VerbWatch, err)
		return nil, err
	}
	h.countResult(VerbWatch, nil)
	return &httpStream{body: resp.Body, er: newEvents(&idleReader{r: resp.Body, idle: idle}, proto), idle: idle, cancel: cancel}, nil
}

// events reads the events of one watch stream, JSON or protobuf.
type events interface{ next(ev *Event) error }

func newEvents(r io.Reader, proto bool) events {
	if proto {
		return newProtoEventReader(r)
	}
	return newEventReader(r)
}

type httpStream struct {
	body io.ReadCloser
	er   events
	// A streaming list's idle timer (nil otherwise), stopped at the
	// initial-events-end bookmark; cancel ends the request.
	idle   *idleCancel
	cancel context.CancelFunc
}

func (s *httpStream) Next(ev *Event) error {
	err := s.er.next(ev)
	if s.idle == nil {
		return err
	}
	if err != nil {
		return s.idle.explain(err)
	}
	if ev.Type == "BOOKMARK" && initialEventsEnd(ev) {
		// The list is done: from here the watch's own idle timeout
		// (Watcher.watch) applies.
		s.idle.stop()
		s.idle = nil
	}
	return nil
}

func (s *httpStream) Close() error {
	if s.idle != nil {
		s.idle.stop()
	}
	if s.cancel != nil {
		s.cancel()
	}
	return s.body.Close()
}

// idleCancel cancels a request that has been silent for d.
type idleCancel struct {
	d       time.Duration
	t       Timer
	fired   atomic.Bool
	mu      sync.Mutex // orders reset against stop
	stopped bool       // under mu: reset does nothing any more
}

// A d of 0 never cancels.
func newIdleCancel(c Clock, d time.Duration, cancel context.CancelFunc) *idleCancel {
	ic := &idleCancel{d: d}
	if d <= 0 {
		return ic
	}
	ic.t = c.AfterFunc(d, func() {
		ic.fired.Store(true)
		cancel()
	})
	return ic
}

// reset restarts the silence count: something arrived.
func (ic *idleCancel) reset() {
	ic.mu.Lock()
	if ic.t != nil && !ic.fired.Load() && !ic.stopped {
		ic.t.Reset(ic.d)
	}
	ic.mu.Unlock()
}

func (ic *idleCancel) stop() {
	ic.mu.Lock()
	ic.stopped = true
	if ic.t != nil {
		ic.t.Stop()
	}
	ic.mu.Unlock()
}

// explain turns the cancellation the timer caused into an IdleError.
func (ic *idleCancel) explain(err error) error {
	if err != nil && ic.fired.Load() {
		return &IdleError{Op: "list", Idle: ic.d}
	}
	return err
}

// idleReader resets the idle timer on every byte read: a large page that
// keeps coming is never cut, one that stops is.
type idleReader struct {
	r    io.Reader
	idle *idleCancel
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.idle.reset()
	}
	return n, err
}

// IdleError says a request was given up because nothing arrived for Idle:
// a LIST page that stalled, or a watch without any event or bookmark.
type IdleError struct {
	Op   string // "list" or "watch"
	Idle time.Duration
}

func (e *IdleError) Error() string {
	return fmt.Sprintf("%s: nothing received for %s", e.Op, e.Idle)
}
