// Package listwatch keeps a table in step with the Endpoints or
// EndpointSlices of one Kubernetes cluster, the way client-go's reflector
// does, written small and by hand:
//
//   - A streaming list first (watchlist.go: a WATCH with
//     sendInitialEvents=true, ready at its initial-events-end bookmark,
//     which then goes on as the watch); an apiserver that refuses it (a
//     4xx) is listed in pages from then on.
//   - LIST in pages (limit + continue) with the label selector. One
//     namespace (namespace_selector.equal) is listed and watched on its
//     namespaced path: a cluster-wide fieldSelector=metadata.namespace=X
//     loses every page after the first on the real apiserver. An expired
//     continue token restarts the list once, then falls back to one
//     unpaginated LIST. A page silent for ListIdleTimeout is given up.
//   - WATCH from the list's resourceVersion with bookmarks and a randomised
//     timeoutSeconds; a watch that ends, drops, or is silent (no event, no
//     bookmark) for WatchIdleTimeout resumes from the last resourceVersion,
//     without listing again.
//   - 410 Gone (HTTP or a watch ERROR event) lists again. After a list every
//     service it did not return is removed; nothing is emptied in between,
//     so readers keep the old value of a service until it is replaced.
//   - Failures are classified in one place (errors.go) and back off
//     exponentially with jitter from 0.5 s to 30 s, honouring Retry-After;
//     only an object or bookmark event counts as progress. The table keeps
//     serving the last known nodes.
//   - Time comes from a Clock and the apiserver is reached through a
//     ListerWatcher, so tests drive the loop exactly.
package listwatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kdisc/kdisc/apiserver"
	"github.com/kdisc/kdisc/internal/jsonscan"
	"github.com/kdisc/kdisc/internal/protowire"
	"github.com/kdisc/kdisc/selector"
	"github.com/kdisc/kdisc/shm"
)

// Store is the table a Watcher writes: *shm.Writer.
type Store interface {
	Put(key string, ports []shm.Port) error
	Delete(key string) bool
	// PutDetail stores opaque bytes beside key's value, DeleteDetail
	// removes them: the node detail (Options.NodeDetail), used only when
	// it is on.
	PutDetail(key string, detail []byte) error
	DeleteDetail(key string) bool
	Keys(fn func(key string) bool)
	SetReady(ready bool)
	// SetSynced records when the table last agreed with the apiserver.
	SetSynced(at time.Time)
}

// Options configure a Watcher. Zero durations take the defaults.
type Options struct {
	Client *apiserver.Client
	Store  Store
	// ListerWatcher, when set, is used instead of Client (tests feed the
	// loop exact pages, events and errors through it).
	ListerWatcher ListerWatcher
	// Clock is the loop's time; nil: the real clock.
	Clock          Clock
	EndpointSlices bool                // watch discovery.k8s.io/v1 EndpointSlices instead of v1 Endpoints
	Namespaces     *selector.Namespace // nil: every namespace
	LabelSelector  string              // canonical label selector, sent to the server
	Weight         uint32              // weight of every node
	Logger         *slog.Logger

	// EndpointSlices only. NoTerminatingFallback turns off serving, for a
	// port with no ready endpoint, the endpoints that are serving and
	// terminating (terminating_fallback: false). Node, when set, serves
	// only the endpoints hinted for it when every ready endpoint of a port
	// has node hints (hints.forNodes) and one is for Node; else Zone, when
	// set, does the same with zone hints. Hints never narrow the
	// terminating fallback.
	NoTerminatingFallback bool
	Node, Zone            string
	// NodeDetail stores, beside each service, its nodes' nodeName, zone
	// and targetRef (Store.PutDetail).
	NodeDetail bool

	// JSON asks the apiserver for JSON only (content_type: json). By
	// default every LIST and WATCH asks for protobuf, accepting JSON, and
	// reads whichever the answer's Content-Type names.
	JSON bool

	PageSize int // LIST limit, default 500
	// NoStreamingList lists in pages only, never with a streaming list
	// (sendInitialEvents); without it the streaming list is tried first
	// and the pages are the fallback.
	NoStreamingList bool
	ListIdleTimeout time.Duration // a LIST page silent this long (no byte) is given up and retried, default 20s
	MinWatchTimeout time.Duration // each watch asks for a random timeout in [min, 2*min), default 5m
	IdleGrace       time.Duration // a watch silent for its timeout plus this is dropped, default 30s
	// WatchIdleTimeout: a watch without any event or bookmark for this
	// long is dropped and resumed from the last resourceVersion, default
	// 2.5m (the apiserver sends a bookmark about once a minute).
	WatchIdleTimeout time.Duration
	MinBackoff       time.Duration // default 500ms
	MaxBackoff       time.Duration // default 30s
}

// Watcher runs the list-watch loop of one cluster.
type Watcher struct {
	o         Options
	log       *slog.Logger
	lw        ListerWatcher
	clock     Clock
	path      string // collection URL path
	namespace string // the one namespace listed (namespace_selector.equal), "" for all
	kind      string // for logs: "endpoints" or "endpointslices"
	services  services
	stats     Stats
	status    status
	// streaming: the next list is a streaming list; false once the
	// apiserver refused one (or Options.NoStreamingList).
	streaming atomic.Bool
	// unstored holds services a full table refused (false), or whose
	// node detail it refused after storing their nodes (true); they are
	// tried again, only what was refused, whenever a delete frees space.
	unstored map[string]bool
	// warnedTruncated: the services whose truncated Endpoints was logged,
	// once per service for the Watcher's life.
	warnedTruncated map[string]struct{}

	writeKey  func(key string)  // w.write
	misframed bool              // fold met errMisframed: the watch must end (apply, initialEvent)
	obj       object            // decode scratch, reused; its strings jsonscan.Borrow the bytes decoded
	scan      jsonscan.Scanner  // decode scratch, reused
	proto     protowire.Decoder // decode scratch, reused
	ev        event             // watch event scratch, reused
}

// New returns a Watcher; Run starts it.
func New(o Options) *Watcher {
	if o.PageSize <= 0 {
		o.PageSize = 500
	}
	if o.ListIdleTimeout <= 0 {
		// Long enough for an apiserver assembling a big page, short
		// enough that a black-holed LIST converges within 30 s of the
		// apiserver being reachable again.
		o.ListIdleTimeout = 20 * time.Second
	}
	if o.MinWatchTimeout <= 0 {
		o.MinWatchTimeout = 5 * time.Minute
	}
	if o.IdleGrace <= 0 {
		o.IdleGrace = 30 * time.Second
	}
	if o.WatchIdleTimeout <= 0 {
		o.WatchIdleTimeout = 150 * time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 500 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = RealClock{}
	}
	w := &Watcher{o: o, log: o.Logger, clock: o.Clock, unstored: map[string]bool{}, warnedTruncated: map[string]struct{}{}}
	w.writeKey = w.write // once: a method value made per event would be an allocation per event
	w.stats.initHistograms()
	// namespace_selector.equal lists and watches that namespace on its
	// namespaced path. Never as a cluster-wide fieldSelector
	// metadata.namespace=X with a limit: kube-apiserver (seen in v1.37.2)
	// answers that LIST's continuation with 0 items and no continue token,
	// losing every object after the first page. (not_equal's != and label
	// selectors page correctly on the cluster-wide path.)
	prefix := ""
	if w.namespace = w.equalNamespace(); w.namespace != "" {
		prefix = "/namespaces/" + w.namespace
	}
	if o.EndpointSlices {
		w.path, w.kind = "/apis/discovery.k8s.io/v1"+prefix+"/endpointslices", "endpointslices"
	} else {
		w.path, w.kind = "/api/v1"+prefix+"/endpoints", "endpoints"
	}
	w.lw = o.ListerWatcher
	if w.lw == nil {
		accept := apiserver.AcceptProtobufOrJSON
		if o.JSON {
			accept = apiserver.MediaJSON
		}
		w.lw = &httpListerWatcher{client: o.Client, path: w.path, query: w.query(), clock: o.Clock, listIdle: o.ListIdleTimeout, count: w.stats.countRequest, accept: accept}
	}
	w.services = w.newServices()
	w.streaming.Store(!o.NoStreamingList)
	return w
}

// url is the collection URL, for logs.
func (w *Watcher) url() string {
	if w.o.Client == nil {
		return w.path
	}
	return w.o.Client.URL(w.path, w.query())
}

func (w *Watcher) newServices() services {
	if w.o.EndpointSlices {
		s := newSliceServices(w.o.Weight)
		s.fallback, s.node, s.zone, s.withDetail = !w.o.NoTerminatingFallback, w.o.Node, w.o.Zone, w.o.NodeDetail
		return s
	}
	s := newEndpointsServices(w.o.Weight)
	s.withDetail, s.onTruncated = w.o.NodeDetail, w.warnTruncated
	return s
}

// warnTruncated says, once per service, that its Endpoints object lists
// only part of its addresses.
func (w *Watcher) warnTruncated(key string) {
	if _, done := w.warnedTruncated[key]; done {
		return
	}
	w.warnedTruncated[key] = struct{}{}
	w.log.Warn("Endpoints truncated: the Endpoints controller keeps at most 1000 addresses (endpoints.kubernetes.io/over-capacity: truncated), so the service is served from part of its pods; set watch_endpoint_slices: true to serve them all",
		"service", key)
}

// Stats returns the watcher's counters.
func (w *Watcher) Stats() *Stats { return &w.stats }

// Status reports readiness and the latest failure.
func (w *Watcher) Status() Status { return w.status.get() }

// Ready reports whether the first full list has been applied.
func (w *Watcher) Ready() bool { return w.status.ready.Load() }

// StreamingList reports whether the watcher lists with a streaming list
// (false once the apiserver refused one, or with Options.NoStreamingList).
func (w *Watcher) StreamingList() bool { return w.streaming.Load() }

// Run lists and watches until ctx ends. It never gives up on its own: every
// failure is retried after a backoff, and the table keeps its last values.
// Classify (errors.go) decides what each failure means.
func (w *Watcher) Run(ctx context.Context) {
	bo := backoff{min: w.o.MinBackoff, max: w.o.MaxBackoff}
	w.log.Info("connecting", "resource", w.kind, "url", w.url())
	rv := ""
	// Since the last list: nothing arrived (no object, no bookmark), and
	// whether a watch failed in between. A 410 on the first watch after a
	// list with neither is a server that disagrees with itself: listing at
	// once would make a list → 410 → list hot loop, so it backs off.
	justListed, failedSinceList := false, false
	pagesOnce := false // the last streaming list outlasted its timeout: list in pages
	for ctx.Err() == nil {
		var initial *initialList // a streaming list: the watch below lists first
		if rv == "" && w.streaming.Load() && !pagesOnce {
			initial = w.newInitialList()
		} else if rv == "" {
			var err error
			if rv, err = w.list(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				w.stats.ListErrors.Add(1)
				if !w.fail(ctx, &bo, "list", err) {
					return
				}
				continue
			}
			justListed, failedSinceList, pagesOnce = true, false, false
			w.log.Info("watching", "resource", w.kind, "resourceVersion", rv)
		}
		start := w.clock.Now()
		progressed, err := w.watch(ctx, &rv, initial)
		if ctx.Err() != nil {
			return
		}
		if initial != nil && !initial.done {
			// The streaming list failed before its end: nothing of it
			// was applied, the table keeps its content.
			var refused *errUnsupportedWatchList
			if errors.As(err, &refused) {
				w.streaming.Store(false)
				w.log.Info("streaming list refused: listing in pages from now on", "resource", w.kind, "error", err)
				continue
			}
			var slow *errInitialEventsTimedOut
			if errors.As(err, &slow) {
				pagesOnce = true
				w.log.Warn("streaming list outlasted its timeout: listing in pages this time", "resource", w.kind, "error", err)
				continue
			}
			w.stats.ListErrors.Add(1)
			if !w.fail(ctx, &bo, "list", err) {
				return
			}
			continue
		}
		if initial != nil {
			justListed, failedSinceList = true, false
		}
		if progressed {
			// Only an object or a bookmark is progress: a watch that
			// opened and then failed (an ERROR event) is not.
			bo.reset()
			justListed = false
		}
		if err == nil && !progressed && w.clock.Now().Sub(start) < veryShortWatch {
			err = fmt.Errorf("watch %s: %w", w.kind, errVeryShortWatch)
		}
		if err == nil {
			w.log.Debug("watch ended, resuming", "resource", w.kind, "resourceVersion", rv)
			continue
		}
		class := Classify(err)
		if class.Relist() {
			rv = ""
			w.stats.Relists.Add(1)
		}
		if class == ClassExpired && !justListed {
			// The usual 410: kdisc was away longer than the server keeps
			// history. List again at once.
			w.log.Info("410 Gone: listing again", "resource", w.kind, "error", err)
			continue
		}
		if class == ClassExpired && failedSinceList {
			// The first answer after an outage: the apiserver is back
			// (a 410 proves it) and the failures before it have been
			// waited for. List again at once, jittered so that a fleet
			// does not relist in lockstep; the backoff is not reset
			// (only progress does), so a server that keeps failing
			// still meets a growing wait.
			d := rand.N(w.o.MinBackoff)
			w.log.Info("410 Gone after a failed watch: listing again", "resource", w.kind, "delay", d.Round(time.Millisecond), "error", err)
			if !w.sleep(ctx, d) {
				return
			}
			continue
		}
		if class != ClassVeryShortWatch && class != ClassExpired {
			w.stats.WatchErrors.Add(1) // ended by an error, not by a clean end
		}
		failedSinceList = true
		if !w.fail(ctx, &bo, "watch", err) {
			return
		}
	}
}

// fail records err in the status, logs it as its class says, and waits the
// next backoff step (or the server's Retry-After, capped); false when ctx
// ended meanwhile.
func (w *Watcher) fail(ctx context.Context, bo *backoff, op string, err error) bool {
	class := Classify(err)
	d := bo.delay(apiserver.RetryAfter(err))
	w.status.setFailure(class, describe(class, w.resourceName(), err))
	w.log.Log(ctx, class.level(), "backing off", "resource", w.kind, "op", op, "class", string(class),
		"delay", d.Round(time.Millisecond), "error", err)
	return w.sleep(ctx, d)
}

// resourceName is the resource as RBAC names it.
func (w *Watcher) resourceName() string {
	if w.o.EndpointSlices {
		return "endpointslices (group discovery.k8s.io)"
	}
	return "endpoints"
}

// synced records a successful list or a watch object or bookmark event.
func (w *Watcher) synced(now time.Time) {
	w.status.lastSync.Store(now.UnixNano())
	w.status.setOK()
	w.o.Store.SetSynced(now)
}

// sleep waits d or until ctx ends; it reports whether to go on.
func (w *Watcher) sleep(ctx context.Context, d time.Duration) bool {
	t := w.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}

// list reads every page, then applies the whole list at once and returns
// its resourceVersion. An expired continue token (410) restarts the list;
// when the restarted list's token expires too (pages read slower than the
// server keeps history), it falls back to one unpaginated LIST, as
// client-go's pager does.
func (w *Watcher) list(ctx context.Context) (string, error) {
	limit := w.o.PageSize
	for restarted := false; ; restarted = true {
		start := w.clock.Now()
		next, keep := w.newServices(), map[string]struct{}{}
		n, rv, continuing, err := w.listInto(ctx, next, keep, limit, start)
		if continuing && Classify(err) == ClassExpired && limit > 0 {
			if !restarted {
				w.log.Info("continue token expired: listing again from the start", "resource", w.kind)
			} else {
				w.log.Warn("continue token expired again: listing everything in one unpaginated LIST", "resource", w.kind)
				limit = 0
			}
			continue
		}
		if err != nil {
			return "", err
		}
		w.stats.PaginatedLists.Add(1)
		w.listed(next, keep, n, rv, start, "paginated")
		return rv, nil
	}
}

// listed makes a whole list (n objects at rv, begun at start) the current
// state: stale services removed, the table synced and ready.
func (w *Watcher) listed(next services, keep map[string]struct{}, n int, rv string, start time.Time, mode string) {
	w.stats.Lists.Add(1)
	w.replace(next, keep)
	w.synced(w.clock.Now())
	if !w.status.ready.Swap(true) {
		w.o.Store.SetReady(true)
	}
	took := w.clock.Now().Sub(start)
	w.stats.ListDuration.Observe(took)
	w.log.Info("listed", "resource", w.kind, "mode", mode, "objects", n, "took", took.Round(time.Millisecond), "resourceVersion", rv)
}

// listItem folds one listed object into into; keep hears the services
// of objects skipped as malformed.
func (w *Watcher) listItem(raw []byte, into services, keep map[string]struct{}) {
	if _, bad := w.fold(raw, into, nil); bad {
		// A bad object must not take away what was served: its
		// service keeps its value, and the loop keeps the
		// object's last good version, so a later DELETED event
		// of it still lands.
		if key := w.serviceKey(&w.obj); key != "" {
			keep[key] = struct{}{}
		}
		if w.obj.namespace != "" && w.obj.name != "" {
			into.carry(w.services, &w.obj)
		}
	}
}

// logProgress logs a long list's progress.
func (w *Watcher) logProgress(objects, pages int, start, now time.Time) {
	elapsed := now.Sub(start)
	w.log.Info("listing (in progress)", "resource", w.kind, "objects", objects, "pages", pages,
		"elapsed", elapsed.Round(100*time.Millisecond), "rate", fmt.Sprintf("%.0f/s", float64(objects)/elapsed.Seconds()))
}

// listInto reads every page (of limit objects; 0: all at once) into into;
// keep hears the services of objects skipped as malformed. continuing
// says whether a failure was on a continuation page. A list that takes
// long (a big cluster) logs its progress at most once a second from start.
func (w *Watcher) listInto(ctx context.Context, into services, keep map[string]struct{}, limit int, start time.Time) (objects int, rv string, continuing bool, err error) {
	lo := ListOptions{Limit: limit}
	pages, logged := 0, start
	for {
		page, err := w.lw.List(ctx, lo, func(raw []byte) {
			objects++
			if now := w.clock.Now(); now.Sub(logged) >= time.Second {
				logged = now
				w.logProgress(objects, pages, start, now)
			}
			w.listItem(raw, into, keep)
		})
		if err != nil {
			return objects, "", lo.Continue != "", fmt.Errorf("list %s: %w", w.kind, err)
		}
		pages++
		if page.Continue == "" {
			return objects, page.ResourceVersion, false, nil
		}
		lo.Continue = page.Continue
	}
}

// replace makes next the current state and rewrites the table to match:
// every changed service of next is written, then every other key deleted,
// except the services of malformed objects (keep): a bad object must not
// take away what was served. A kept service that next holds is written
// like any other: next merged the malformed object's last good version
// (carry) with what the relist found of its other objects.
func (w *Watcher) replace(next services, keep map[string]struct{}) {
	prev, refused := w.services, w.unstored
	w.services, w.unstored = next, map[string]bool{}
	w.stats.Truncated.Store(int64(next.truncated()))
	next.each(func(key string) {
		// A relist mostly finds what the watch already wrote: rewrite
		// only what changed, or what a full table refused before.
		if _, retry := refused[key]; !retry && sameValue(prev, next, key) && (!w.o.NodeDetail || bytes.Equal(prev.detail(key), next.detail(key))) {
			return
		}
		w.write(key)
	})
	var stale []string
	w.o.Store.Keys(func(key string) bool {
		if _, skip := keep[key]; !skip && !exists(next, key) {
			stale = append(stale, key)
		}
		return true
	})
	for _, key := range stale {
		w.delete(key)
	}
}

// sameValue reports whether key has the same value in a and b (both
// without it counts as the same).
func sameValue(a, b services, key string) bool {
	pa, oka := a.value(key)
	pb, okb := b.value(key)
	return oka == okb && portsEqual(pa, pb)
}

func exists(s services, key string) bool {
	_, ok := s.value(key)
	return ok
}

// write stores the current value of key, or deletes it when the service
// no longer exists. A service without an address to serve is stored (it
// answers "empty", not "unknown").
func (w *Watcher) write(key string) {
	ports, ok := w.services.value(key)
	if !ok {
		w.delete(key)
		return
	}
	err := w.o.Store.Put(key, ports)
	var full *shm.FullError
	switch {
	case err == nil:
		delete(w.unstored, key)
		w.putDetail(key)
	case !errors.As(err, &full):
		w.stats.skippedRefused.Add(1)
		w.stats.Skipped.Add(1)
		w.log.Error("table refused the service; the old value stays", "service", key, "error", err)
	default:
		w.stats.TableFull.Add(1)
		w.unstored[key] = false
		w.log.Error("table full; the old value stays", "service", key, "error", err)
	}
}

// putDetail stores key's node detail (with node detail on) after its
// nodes were stored. A full table refusing it is no refused service: the
// nodes are served; the detail is tried again when space frees up.
func (w *Watcher) putDetail(key string) bool {
	if !w.o.NodeDetail {
		return true
	}
	err := w.o.Store.PutDetail(key, w.services.detail(key))
	if err == nil {
		return true
	}
	var full *shm.FullError
	if errors.As(err, &full) {
		w.unstored[key] = true
	}
	w.log.Error("node detail not stored (the nodes were)", "service", key, "error", err)
	return false
}

// delete removes key and, since that frees space, stores what a full
// table refused before.
func (w *Watcher) delete(key string) {
	delete(w.unstored, key)
	if w.o.NodeDetail {
		w.o.Store.DeleteDetail(key)
	}
	if !w.o.Store.Delete(key) {
		return
	}
	for k, detailOnly := range w.unstored {
		ports, ok := w.services.value(k)
		switch {
		case !ok:
			delete(w.unstored, k)
		case detailOnly: // the nodes are stored: do not write (and notify) them again
			if w.putDetail(k) {
				delete(w.unstored, k)
				w.log.Info("stored the node detail the full table had refused", "service", k)
			}
		case w.o.Store.Put(k, ports) == nil:
			delete(w.unstored, k)
			w.log.Info("stored a service the full table had refused", "service", k)
			w.putDetail(k)
		}
	}
}

// equalNamespace is the namespace of namespace_selector.equal, "" when
// another (or no) selector is set.
func (w *Watcher) equalNamespace() string {
	if ns, ok := strings.CutPrefix(w.o.Namespaces.FieldSelector(), "metadata.namespace="); ok {
		return ns
	}
	return ""
}

func (w *Watcher) query() url.Values {
	q := url.Values{}
	if fs := w.o.Namespaces.FieldSelector(); fs != "" && w.namespace == "" {
		q.Set("fieldSelector", fs)
	}
	if w.o.LabelSelector != "" {
		q.Set("labelSelector", w.o.LabelSelector)
	}
	return q
}

// fold decodes one raw object (into w.obj) and records it in into;
// changed (nil during a list) hears which services it changed. A malformed
// object is skipped, logged and counted, and reported as bad; w.obj holds
// what could be read of it.
func (w *Watcher) fold(raw []byte, into services, changed func(string)) (rv string, bad bool) {
	o, err := w.decode(raw)
	if err == errMisframed { // not the object's fault: the stream's (see apply)
		w.misframed = true
		return "", false
	}
	if err == nil && !w.o.Namespaces.Allows(o.namespace) {
		return o.resourceVersion, false
	}
	if changed == nil {
		changed = func(string) {}
	}
	if err == nil {
		err = into.set(o, changed)
	}
	if err != nil {
		w.skip(o, err)
		return o.resourceVersion, true
	}
	return o.resourceVersion, false
}

// decode reads one raw object into the watcher's scratch object, whose
// strings borrow raw's bytes.
func (w *Watcher) decode(raw []byte) (*object, error) {
	if protowire.IsEnvelope(raw) {
		return &w.obj, decodeProtoObject(&w.proto, raw, &w.obj, w.o.EndpointSlices, w.o.NodeDetail)
	}
	err := decodeObjectDetail(&w.scan, raw, &w.obj, w.o.NodeDetail)
	// A watch event's object as eventReader.shortcut hands it over may be
	// followed by the event's other members (the apiserver writes the
	// object last, so this is rare).
	if te, ok := err.(*trailingError); ok {
		if eventMembers(raw[te.at:]) {
			err = nil
		} else {
			err = errMisframed
		}
	}
	return &w.obj, err
}

func (w *Watcher) skip(o *object, err error) {
	w.stats.Skipped.Add(1)
	// Cloned: a log handler may keep what it is given past this event.
	w.log.Warn("skipping malformed object", "resource", w.kind, "namespace", strings.Clone(o.namespace), "name", strings.Clone(o.name), "error", err)
}

// serviceKey is the table key of the service o belongs to, "" if unknown.
func (w *Watcher) serviceKey(o *object) string {
	name := o.name
	if w.o.EndpointSlices {
		name = o.serviceName
	}
	if o.namespace == "" || name == "" {
		return ""
	}
	return o.namespace + "/" + name
}

// watch streams events from *rv, applying each and advancing *rv. It
// returns whether an object or bookmark event arrived (progress), and why
// the watch ended (nil: the server closed it cleanly, e.g. at its
// timeout). With initial, it is a streaming list first: its initial events
// build initial's state, applied at their end bookmark (initial.done);
// only what follows is progress, and a stream that ends before is an error.
func (w *Watcher) watch(ctx context.Context, rv *string, initial *initialList) (progressed bool, err error) {
	timeout := w.o.MinWatchTimeout + rand.N(w.o.MinWatchTimeout)
	timeout = timeout.Truncate(time.Second)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The apiserver sends a bookmark about once a minute, and ends the
	// watch after timeout: silence longer than the idle timeout (or than
	// timeout plus a grace) means a dead connection or a stuck server,
	// which TCP alone may never report.
	idle := min(w.o.WatchIdleTimeout, timeout+w.o.IdleGrace)
	var idled atomic.Bool
	watchdog := w.clock.AfterFunc(idle, func() { idled.Store(true); cancel() })
	defer watchdog.Stop()

	w.stats.Watches.Add(1)
	began := w.clock.Now()
	wrap := func(err error) error {
		if initial != nil && !initial.done {
			return fmt.Errorf("list %s (streaming): %w", w.kind, err)
		}
		return fmt.Errorf("watch %s: %w", w.kind, err)
	}
	stream, err := w.lw.Watch(ctx, WatchOptions{ResourceVersion: *rv, TimeoutSeconds: int(timeout / time.Second), SendInitialEvents: initial != nil})
	if err != nil {
		if idled.Load() {
			err = &IdleError{Op: "watch", Idle: idle}
		}
		if initial != nil && refusesWatchList(err) {
			err = &errUnsupportedWatchList{err}
		}
		return false, wrap(err)
	}
	defer stream.Close()
	defer func() { w.stats.WatchDuration.Observe(w.clock.Now().Sub(began)) }()
	if initial == nil {
		w.status.setOK() // the watch opened; an ERROR event will say otherwise
	}

	var ev Event
	for {
		err := stream.Next(&ev)
		if err == io.EOF && initial != nil && !initial.done {
			err = errInitialEventsCut
			if w.clock.Now().Sub(began) >= timeout {
				err = &errInitialEventsTimedOut{timeout}
			}
		}
		if err == io.EOF {
			return progressed, nil
		}
		if err != nil {
			if idled.Load() {
				err = &IdleError{Op: "watch", Idle: idle}
			}
			return progressed, wrap(err)
		}
		watchdog.Reset(idle)
		now := w.clock.Now()
		w.stats.LastEvent.Store(now.UnixNano())
		if initial != nil && !initial.done {
			if err := w.initialEvent(initial, &ev, rv); err != nil {
				return false, wrap(err)
			}
			continue
		}
		w.ev.typ, w.ev.object = ev.Type, ev.Object
		if err := w.apply(&w.ev, rv); err != nil {
			return progressed, fmt.Errorf("watch %s: %w", w.kind, err)
		}
		switch ev.Type {
		case "ADDED", "MODIFIED", "DELETED":
			// The table is written: readers see the change from here.
			w.stats.EventApply.Observe(w.clock.Now().Sub(now))
			fallthrough
		case "BOOKMARK":
			progressed = true
			w.synced(now)
		}
	}
}

// apply applies one watch event to the services and the table.
func (w *Watcher) apply(ev *event, rv *string) error {
	switch ev.typ {
	case "ADDED", "MODIFIED":
		if next, _ := w.fold(ev.object, w.services, w.writeKey); next != "" {
			*rv = strings.Clone(next) // borrowed from the event
		}
		if w.misframed {
			w.misframed = false
			return errMisframed
		}
		w.stats.Truncated.Store(int64(w.services.truncated()))
		if ev.typ == "ADDED" {
			w.stats.Added.Add(1)
		} else {
			w.stats.Modified.Add(1)
		}
	case "DELETED":
		o, err := w.decode(ev.object)
		if err == errMisframed {
			return err
		}
		if err != nil {
			w.skip(o, err)
			return nil
		}
		w.services.remove(o, w.writeKey)
		w.stats.Truncated.Store(int64(w.services.truncated()))
		if o.resourceVersion != "" {
			*rv = strings.Clone(o.resourceVersion)
		}
		w.stats.Deleted.Add(1)
	case "BOOKMARK":
		if next, _, _ := readBookmark(ev.object); next != "" {
			*rv = next
		}
		w.stats.Bookmarks.Add(1)
	case "ERROR":
		se := &apiserver.StatusError{}
		se.Code = readEventStatus(ev.object, se)
		if se.Code == 0 {
			se.Code = http.StatusInternalServerError
		}
		return &WatchEventError{Status: se}
	default:
		w.log.Warn("ignoring unknown watch event", "resource", w.kind, "type", ev.typ)
	}
	return nil
}
