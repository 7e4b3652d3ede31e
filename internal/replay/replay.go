// Package replay is an apiserver stand-in for benchmarks: it serves one
// resource (Endpoints or EndpointSlices) from bodies serialised once, up
// front, so that it is never what a benchmark measures.
//
// It holds Services objects (resourceVersion 1..Services, one per service,
// three addresses and one port by default, with real-looking metadata:
// labels, annotations, ownerReferences, managedFields) and a replay of
// Events MODIFIED events round-robin over them (resourceVersion
// Services+1..Services+Events, each changing the addresses), followed by
// one ADDED event for the sentinel service replay/sentinel (port http).
// A client that shows the sentinel has applied every event before it.
//
// It speaks what a list-watch client asks:
//
//   - LIST, paginated (limit and continue; the continue token is opaque),
//     at resourceVersion Services;
//   - WATCH from a resourceVersion: every event after it, as fast as the
//     client reads, then silence until the client leaves, timeoutSeconds
//     passes or the server closes;
//   - the streaming list (watch=1&sendInitialEvents=true&
//     resourceVersionMatch=NotOlderThan): an ADDED event per object, a
//     BOOKMARK annotated k8s.io/initial-events-end at resourceVersion
//     Services, then the replay as for WATCH.
//
// Each client gets the whole replay: any number of clients, one after the
// other or at once, can be measured against one server.
//
// It answers in JSON, and, once WithProtobuf has built the protobuf
// bodies, in application/vnd.kubernetes.protobuf to a client whose Accept
// header prefers it, as kube-apiserver negotiates: LIST bodies in the
// "k8s\x00" envelope, watches and streaming lists as
// application/vnd.kubernetes.protobuf;stream=watch frames.
package replay

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Sentinel names the service whose ADDED event ends the replay.
const (
	SentinelNamespace = "replay"
	SentinelName      = "sentinel"
	// Sentinel is its query in kdisc's single mode.
	Sentinel = SentinelNamespace + "/" + SentinelName + ":http"
)

// Options size the data.
type Options struct {
	Services int  // objects in the LIST, one per service
	Events   int  // MODIFIED events before the sentinel
	Addrs    int  // addresses per object; 0 means 3
	Slices   bool // serve discovery.k8s.io/v1 EndpointSlices instead of v1 Endpoints

	// Rate, when > 0, paces a watch's events (not the initial events of a
	// streaming list) at Rate per second on a fixed schedule, each written
	// and flushed on its own, instead of as fast as the connection takes
	// them; the first waits for Gate to close (nil: at once). Sent, when
	// set, is called with each event's index and the time its write and
	// flush returned. For bench/latency.
	Rate float64
	Gate <-chan struct{}
	Sent func(i int, at time.Time)
}

// Server serves the resource of its Options; it is an http.Handler.
type Server struct {
	o      Options
	path   string // the cluster-wide collection path
	kind   string // of the list: EndpointsList or EndpointSliceList
	apiVer string

	objs    []byte // the list's objects, back to back
	objOff  []int  // object i is objs[objOff[i]:objOff[i+1]]
	events  []byte // "{"type":...,"object":...}\n" per event, sentinel last
	eventAt []int  // event i starts at events[eventAt[i]]; len Events+2

	quit   chan struct{}
	closed atomic.Bool

	pb *pbBodies // nil until WithProtobuf

	lists, watches, streamingLists, protobufs atomic.Int64
}

// New builds every body. It takes about a second per 100 MB of events.
func New(o Options) *Server {
	if o.Addrs <= 0 {
		o.Addrs = 3
	}
	s := &Server{o: o, quit: make(chan struct{})}
	appendObj := appendEndpoints
	s.path, s.kind, s.apiVer = "/api/v1/endpoints", "EndpointsList", "v1"
	if o.Slices {
		appendObj = appendSlice
		s.path, s.kind, s.apiVer = "/apis/discovery.k8s.io/v1/endpointslices", "EndpointSliceList", "discovery.k8s.io/v1"
	}
	s.objOff = make([]int, 0, o.Services+1)
	for i := range o.Services {
		s.objOff = append(s.objOff, len(s.objs))
		ns, name := service(i)
		s.objs = appendObj(s.objs, ns, name, i+1, i, o.Addrs)
	}
	s.objOff = append(s.objOff, len(s.objs))
	s.eventAt = make([]int, 0, o.Events+2)
	for i := range o.Events {
		s.eventAt = append(s.eventAt, len(s.events))
		ns, name := service(i % max(o.Services, 1))
		if o.Services == 0 {
			ns, name = "team-0", "service-0"
		}
		s.events = append(s.events, `{"type":"MODIFIED","object":`...)
		s.events = appendObj(s.events, ns, name, o.Services+1+i, o.Services+i, o.Addrs)
		s.events = append(s.events, "}\n"...)
	}
	s.eventAt = append(s.eventAt, len(s.events))
	s.events = append(s.events, `{"type":"ADDED","object":`...)
	s.events = appendObj(s.events, SentinelNamespace, SentinelName, o.Services+o.Events+1, 1<<20, o.Addrs)
	s.events = append(s.events, "}\n"...)
	s.eventAt = append(s.eventAt, len(s.events))
	return s
}

// WithProtobuf builds the protobuf bodies from the JSON ones, each object
// turned into its message by enc, and serves them from then on to clients
// that ask for protobuf. Call it before serving.
func (s *Server) WithProtobuf(enc Protobuf) error { return s.buildProtobuf(enc) }

// ProtobufSizes returns the bytes of the protobuf LIST's items and of the
// protobuf replay's frames (0, 0 without WithProtobuf).
func (s *Server) ProtobufSizes() (list, replay int) {
	if s.pb == nil {
		return 0, 0
	}
	return len(s.pb.items), len(s.pb.events)
}

// Path is the collection path served, e.g. /api/v1/endpoints.
func (s *Server) Path() string { return s.path }

// ListRV is the resourceVersion of the LIST.
func (s *Server) ListRV() int { return s.o.Services }

// LastRV is the resourceVersion of the sentinel's event.
func (s *Server) LastRV() int { return s.o.Services + s.o.Events + 1 }

// Sizes returns the bytes of the LIST's objects and of the whole replay.
func (s *Server) Sizes() (list, replay int) { return len(s.objs), len(s.events) }

// Stats counts the requests served: LISTs (pages), WATCHes, streaming
// lists, and how many of all those were answered in protobuf.
func (s *Server) Stats() (lists, watches, streamingLists, protobuf int64) {
	return s.lists.Load(), s.watches.Load(), s.streamingLists.Load(), s.protobufs.Load()
}

// Close ends the open watches (then an http.Server can shut down).
func (s *Server) Close() {
	if !s.closed.Swap(true) {
		close(s.quit)
	}
}

// bufSize is the write buffer: each write to the connection is this big.
const bufSize = 1 << 20

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		status(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "only GET is served")
		return
	}
	if r.URL.Path != s.path {
		status(w, http.StatusNotFound, "NotFound", "the replay serves "+s.path+" only")
		return
	}
	pb, ok := s.wantsProtobuf(r.Header.Get("Accept"))
	if !ok {
		status(w, http.StatusNotAcceptable, "NotAcceptable", "only application/json and "+ContentTypeProtobuf+" are served")
		return
	}
	q := r.URL.Query()
	if v := q.Get("watch"); v == "" || v == "0" || v == "false" {
		s.list(w, pb, q.Get("limit"), q.Get("continue"))
		return
	}
	timeout := time.Duration(0)
	if t := q.Get("timeoutSeconds"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 {
			status(w, http.StatusBadRequest, "BadRequest", "timeoutSeconds: "+t)
			return
		}
		timeout = time.Duration(n) * time.Second
	}
	if q.Get("sendInitialEvents") == "true" {
		if q.Get("resourceVersionMatch") != "NotOlderThan" || q.Get("allowWatchBookmarks") != "true" {
			status(w, http.StatusBadRequest, "BadRequest", "sendInitialEvents=true needs resourceVersionMatch=NotOlderThan and allowWatchBookmarks=true")
			return
		}
		s.streamingLists.Add(1)
		s.watch(w, r, pb, timeout, true, 0)
		return
	}
	from, ok := s.replayFrom(q.Get("resourceVersion"))
	if !ok {
		status(w, http.StatusBadRequest, "BadRequest", "resourceVersion: "+q.Get("resourceVersion"))
		return
	}
	s.watches.Add(1)
	s.watch(w, r, pb, timeout, false, from)
}

// replayFrom is the index of the first event after resourceVersion rv.
// "" and "0" (any, or most recent) start at the LIST's resourceVersion.
func (s *Server) replayFrom(rv string) (int, bool) {
	if rv == "" || rv == "0" {
		return 0, true
	}
	n, err := strconv.Atoi(rv)
	if err != nil || n < 0 {
		return 0, false
	}
	return min(max(n-s.o.Services, 0), s.o.Events+1), true
}

const continuePrefix = "cmVwbGF5" // opaque to clients: base64 "replay"

// list writes one page: limit objects (0: all) from the continue token's
// position, with a continue token and remainingItemCount when more are left.
func (s *Server) list(w http.ResponseWriter, pb bool, limitArg, cont string) {
	limit := 0
	if limitArg != "" {
		n, err := strconv.Atoi(limitArg)
		if err != nil || n < 0 {
			status(w, http.StatusBadRequest, "BadRequest", "limit: "+limitArg)
			return
		}
		limit = n
	}
	from := 0
	if cont != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(cont, continuePrefix))
		if !strings.HasPrefix(cont, continuePrefix) || err != nil || n < 0 || n > s.o.Services {
			status(w, http.StatusBadRequest, "BadRequest", "continue: invalid token")
			return
		}
		from = n
	}
	to := s.o.Services
	if limit > 0 {
		to = min(from+limit, s.o.Services)
	}
	s.lists.Add(1)
	if pb {
		s.protobufs.Add(1)
		s.listProtobuf(w, from, to)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	bw := bufio.NewWriterSize(w, bufSize)
	head := make([]byte, 0, 256)
	head = append(head, `{"kind":"`...)
	head = append(head, s.kind...)
	head = append(head, `","apiVersion":"`...)
	head = append(head, s.apiVer...)
	head = append(head, `","metadata":{"resourceVersion":"`...)
	head = strconv.AppendInt(head, int64(s.o.Services), 10)
	head = append(head, '"')
	if to < s.o.Services {
		head = append(head, `,"continue":"`+continuePrefix...)
		head = strconv.AppendInt(head, int64(to), 10)
		head = append(head, `","remainingItemCount":`...)
		head = strconv.AppendInt(head, int64(s.o.Services-to), 10)
	}
	head = append(head, `},"items":[`...)
	_, _ = bw.Write(head)
	for i := from; i < to; i++ {
		if i > from {
			_ = bw.WriteByte(',')
		}
		_, _ = bw.Write(s.objs[s.objOff[i]:s.objOff[i+1]])
	}
	_, _ = bw.WriteString("]}")
	_ = bw.Flush()
}

// listProtobuf writes objects from..to as an enveloped list.
func (s *Server) listProtobuf(w http.ResponseWriter, from, to int) {
	cont, remaining := "", 0
	if to < s.o.Services {
		cont, remaining = continuePrefix+strconv.Itoa(to), s.o.Services-to
	}
	meta := appendBytesField(nil, 1, listMeta(s.o.Services, cont, remaining))
	items := s.pb.items[s.pb.itemOff[from]:s.pb.itemOff[to]]
	head := envelopeHead(make([]byte, 0, 256), s.pb.typeMeta, len(meta)+len(items))
	head = append(head, meta...)
	w.Header().Set("Content-Type", ContentTypeProtobuf)
	w.Header().Set("Content-Length", strconv.Itoa(len(head)+len(items)+len(envelopeTail)))
	bw := bufio.NewWriterSize(w, bufSize)
	_, _ = bw.Write(head)
	_, _ = bw.Write(items)
	_, _ = bw.WriteString(envelopeTail)
	_ = bw.Flush()
}

// watch streams the replay from event from (with the initial events and
// their bookmark first when initial), then waits for the client to leave,
// the timeout or Close.
func (s *Server) watch(w http.ResponseWriter, r *http.Request, pb bool, timeout time.Duration, initial bool, from int) {
	events, eventAt := s.events, s.eventAt
	if pb {
		s.protobufs.Add(1)
		events, eventAt = s.pb.events, s.pb.eventAt
		w.Header().Set("Content-Type", ContentTypeProtobuf+";stream=watch")
	} else {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(http.StatusOK)
	flusher := w.(http.Flusher)
	flusher.Flush()
	ctx := r.Context()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	bw := bufio.NewWriterSize(w, bufSize)
	if initial && pb {
		_, _ = bw.Write(s.pb.initial)
	} else if initial {
		for i := range s.o.Services {
			_, _ = bw.WriteString(`{"type":"ADDED","object":`)
			_, _ = bw.Write(s.objs[s.objOff[i]:s.objOff[i+1]])
			_, _ = bw.WriteString("}\n")
		}
		fmt.Fprintf(bw, `{"type":"BOOKMARK","object":{"kind":"%s","apiVersion":"%s","metadata":{"resourceVersion":"%d","creationTimestamp":null,"annotations":{"k8s.io/initial-events-end":"true"}}}}`+"\n",
			strings.TrimSuffix(s.kind, "List"), s.apiVer, s.o.Services)
	}
	if err := bw.Flush(); err != nil {
		return
	}
	if s.o.Rate > 0 {
		flusher.Flush() // the initial events reach the client before the pacing waits for Gate
		s.paced(ctx, w, flusher, events, eventAt, from)
		return
	}
	rest := events[eventAt[from]:]
	for len(rest) > 0 {
		n := min(len(rest), bufSize)
		if _, err := w.Write(rest[:n]); err != nil {
			return
		}
		rest = rest[n:]
	}
	flusher.Flush()
	select {
	case <-ctx.Done():
	case <-s.quit:
	}
}

// paced writes events from index from at Options.Rate per second.
func (s *Server) paced(ctx context.Context, w io.Writer, flusher http.Flusher, events []byte, eventAt []int, from int) {
	if s.o.Gate != nil {
		select {
		case <-s.o.Gate:
		case <-ctx.Done():
			return
		case <-s.quit:
			return
		}
	}
	interval := time.Duration(float64(time.Second) / s.o.Rate)
	start := time.Now()
	for i := from; i < len(eventAt)-1; i++ {
		due := start.Add(time.Duration(i-from) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		if _, err := w.Write(events[eventAt[i]:eventAt[i+1]]); err != nil {
			return
		}
		flusher.Flush()
		if s.o.Sent != nil {
			s.o.Sent(i, time.Now())
		}
		select {
		case <-ctx.Done():
			return
		case <-s.quit:
			return
		default:
		}
	}
	select {
	case <-ctx.Done():
	case <-s.quit:
	}
}

// status writes a metav1.Status as the apiserver does.
func status(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":%q,"reason":"%s","code":%d}`+"\n", msg, reason, code)
}
