// Package listwatch keeps a table in step with the Endpoints or
// EndpointSlices of one Kubernetes cluster, the way client-go's reflector
// does, written small and by hand. It is the loop and the wire; what an
// object means is its sink's business (package listwatch/services), as
// client-go's Reflector hands objects to a Store:
//
//	wire (lister.go, framejson.go, frameproto.go): URLs, content
//	  negotiation, LIST pages and watch streams cut into Events
//	  (type, the object's raw bytes, its format)
//	→ loop (watcher.go, watchlist.go): what to ask for next, and when
//	→ sink (services.Sink): objects added, updated, deleted; a list
//	  begun, its items, its end; it writes the table
//
// The loop:
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
//   - 410 Gone (HTTP or a watch ERROR event) lists again. A list replaces
//     the sink's state at its end, when every service it did not return is
//     removed; nothing is emptied in between, so readers keep the old value
//     of a service until it is replaced. The table is written, then ready.
//   - Failures are classified in one place (errors.go) and back off
//     exponentially with jitter from 0.5 s to 30 s, honouring Retry-After;
//     only an object or bookmark event counts as progress. The table keeps
//     serving the last known nodes.
//   - Time comes from a Clock and the apiserver is reached through a
//     ListerWatcher, so tests drive the loop exactly.
package listwatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/kdisc/kdisc/apiserver"
	"github.com/kdisc/kdisc/listwatch/services"
	"github.com/kdisc/kdisc/selector"
)

// Store is the table a Watcher writes: *shm.Writer. Its content (a
// services.Table) is written by the Watcher's sink; the Watcher itself
// says when it is ready and when it last agreed with the apiserver.
type Store interface {
	services.Table
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

// Watcher runs the list-watch loop of one cluster: it lists, watches,
// backs off and resumes, and hands every object to its sink
// (services.Sink), which alone knows what objects mean and writes the
// table.
type Watcher struct {
	o      Options
	log    *slog.Logger
	lw     ListerWatcher
	url    string // the collection, for logs
	clock  Clock
	kind   string // for logs: "endpoints" or "endpointslices"
	sink   *services.Sink
	stats  Stats
	status status
	// streaming: the next list is a streaming list; false once the
	// apiserver refused one (or Options.NoStreamingList).
	streaming atomic.Bool
}

// since is the time from t (read from the Watcher's clock) to now. On the
// real clock it is time.Since, which reads only the monotonic clock: half
// what Now costs, and the loop times every event.
func (w *Watcher) since(t time.Time) time.Duration {
	if _, real := w.clock.(RealClock); real {
		return time.Since(t)
	}
	return w.clock.Now().Sub(t)
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
	w := &Watcher{o: o, log: o.Logger, clock: o.Clock, kind: "endpoints"}
	if o.EndpointSlices {
		w.kind = "endpointslices"
	}
	w.stats.initHistograms()
	w.sink = services.New(services.Options{
		EndpointSlices: o.EndpointSlices, Namespaces: o.Namespaces, Weight: o.Weight,
		NoTerminatingFallback: o.NoTerminatingFallback, Node: o.Node, Zone: o.Zone, NodeDetail: o.NodeDetail,
		Logger: o.Logger,
		Counters: services.Counters{Skipped: &w.stats.Skipped, Refused: &w.stats.skippedRefused,
			TableFull: &w.stats.TableFull, Truncated: &w.stats.Truncated},
	}, o.Store)
	w.lw, w.url = o.ListerWatcher, collectionPath(o)
	if w.lw == nil {
		h := newHTTPListerWatcher(o, w.stats.countRequest)
		w.lw, w.url = h, h.url()
	}
	w.streaming.Store(!o.NoStreamingList)
	return w
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
	w.log.Info("connecting", "resource", w.kind, "url", w.url)
	var rv resourceVersion
	// Since the last list: nothing arrived (no object, no bookmark), and
	// whether a watch failed in between. A 410 on the first watch after a
	// list with neither is a server that disagrees with itself: listing at
	// once would make a list → 410 → list hot loop, so it backs off.
	justListed, failedSinceList := false, false
	pagesOnce := false // the last streaming list outlasted its timeout: list in pages
	for ctx.Err() == nil {
		var initial *initialList // a streaming list: the watch below lists first
		if rv.empty() && w.streaming.Load() && !pagesOnce {
			initial = w.newInitialList()
		} else if rv.empty() {
			listed, err := w.list(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				w.stats.ListErrors.Add(1)
				if !w.fail(ctx, &bo, "list", err) {
					return
				}
				continue
			}
			rv.set(listed)
			justListed, failedSinceList, pagesOnce = true, false, false
			w.log.Info("watching", "resource", w.kind, "resourceVersion", rv.String())
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
			w.log.Debug("watch ended, resuming", "resource", w.kind, "resourceVersion", rv.String())
			continue
		}
		class := Classify(err)
		if class.Relist() {
			rv.reset()
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
		w.sink.BeginList()
		n, rv, continuing, err := w.listPages(ctx, limit, start)
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
		w.listed(n, rv, start, "paginated")
		return rv, nil
	}
}

// listed makes a whole list (n objects at rv, begun at start) the current
// state: the sink writes the table (stale services removed), and only then
// is it synced and ready.
func (w *Watcher) listed(n int, rv string, start time.Time, mode string) {
	w.stats.Lists.Add(1)
	w.sink.EndList()
	w.synced(w.clock.Now())
	if !w.status.ready.Swap(true) {
		w.o.Store.SetReady(true)
	}
	took := w.clock.Now().Sub(start)
	w.stats.ListDuration.Observe(took)
	w.log.Info("listed", "resource", w.kind, "mode", mode, "objects", n, "took", took.Round(time.Millisecond), "resourceVersion", rv)
}

// logProgress logs a long list's progress.
func (w *Watcher) logProgress(objects, pages int, start, now time.Time) {
	elapsed := now.Sub(start)
	w.log.Info("listing (in progress)", "resource", w.kind, "objects", objects, "pages", pages,
		"elapsed", elapsed.Round(100*time.Millisecond), "rate", fmt.Sprintf("%.0f/s", float64(objects)/elapsed.Seconds()))
}

// listPages reads every page (of limit objects; 0: all at once) into the
// sink's list. continuing says whether a failure was on a continuation
// page. A list that takes long (a big cluster) logs its progress at most
// once a second from start.
func (w *Watcher) listPages(ctx context.Context, limit int, start time.Time) (objects int, rv string, continuing bool, err error) {
	lo := ListOptions{Limit: limit}
	pages, logged := 0, start
	for {
		var itemErr error
		page, err := w.lw.List(ctx, lo, func(raw []byte, proto bool) {
			objects++
			if now := w.clock.Now(); now.Sub(logged) >= time.Second {
				logged = now
				w.logProgress(objects, pages, start, now)
			}
			if err := w.sink.ListItem(raw, proto); err != nil && itemErr == nil {
				itemErr = err // not one object: a LIST page's items are framed exactly
			}
		})
		if err == nil {
			err = itemErr
		}
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

// watch streams events from rv, applying each and advancing rv. It
// returns whether an object or bookmark event arrived (progress), and why
// the watch ended (nil: the server closed it cleanly, e.g. at its
// timeout). With initial, it is a streaming list first: its initial events
// build initial's state, applied at their end bookmark (initial.done);
// only what follows is progress, and a stream that ends before is an error.
func (w *Watcher) watch(ctx context.Context, rv *resourceVersion, initial *initialList) (progressed bool, err error) {
	timeout := w.o.MinWatchTimeout + rand.N(w.o.MinWatchTimeout)
	timeout = timeout.Truncate(time.Second)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The apiserver sends a bookmark about once a minute, and ends the
	// watch after timeout: silence longer than the idle timeout (or than
	// timeout plus a grace) means a dead connection or a stuck server,
	// which TCP alone may never report.
	idle := min(w.o.WatchIdleTimeout, timeout+w.o.IdleGrace)
	began := w.clock.Now()
	dog := startWatchdog(w.clock, idle, began, cancel)
	defer dog.stop()

	w.stats.Watches.Add(1)
	wrap := func(err error) error {
		if initial != nil && !initial.done {
			return fmt.Errorf("list %s (streaming): %w", w.kind, err)
		}
		return fmt.Errorf("watch %s: %w", w.kind, err)
	}
	stream, err := w.lw.Watch(ctx, WatchOptions{ResourceVersion: rv.String(), TimeoutSeconds: int(timeout / time.Second), SendInitialEvents: initial != nil})
	if err != nil {
		if dog.idled() {
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
			if dog.idled() {
				err = &IdleError{Op: "watch", Idle: idle}
			}
			return progressed, wrap(err)
		}
		now := w.clock.Now()
		dog.kick(now)
		w.stats.LastEvent.Store(now.UnixNano())
		if initial != nil && !initial.done {
			if err := w.initialEvent(initial, &ev, rv); err != nil {
				return false, wrap(err)
			}
			continue
		}
		if err := w.apply(&ev, rv); err != nil {
			return progressed, fmt.Errorf("watch %s: %w", w.kind, err)
		}
		switch ev.Type {
		case "ADDED", "MODIFIED", "DELETED":
			// The table is written: readers see the change from here.
			w.stats.EventApply.Observe(w.since(now))
			fallthrough
		case "BOOKMARK":
			progressed = true
			w.synced(now)
		}
	}
}

// apply hands one watch event to the sink, or reads it (a bookmark, an
// error), advancing rv.
func (w *Watcher) apply(ev *Event, rv *resourceVersion) error {
	switch ev.Type {
	case "ADDED":
		return w.applyObject(ev, added, rv, &w.stats.Added)
	case "MODIFIED":
		return w.applyObject(ev, modified, rv, &w.stats.Modified)
	case "DELETED":
		return w.applyObject(ev, deleted, rv, &w.stats.Deleted)
	case "BOOKMARK":
		next, _, _ := services.ReadBookmark(ev.Object, ev.Proto)
		rv.set(next)
		w.stats.Bookmarks.Add(1)
	case "ERROR":
		se := &apiserver.StatusError{}
		se.Code = readEventStatus(ev.Object, se)
		if se.Code == 0 {
			se.Code = http.StatusInternalServerError
		}
		return &WatchEventError{Status: se}
	default:
		w.log.Warn("ignoring unknown watch event", "resource", w.kind, "type", ev.Type)
	}
	return nil
}

// What an object event did to its object.
type change uint8

const (
	added change = iota
	modified
	deleted
)

// applyObject hands an object event's object to the sink (cut again by
// recut if the sink found it followed by more bytes), advances rv to the
// object's resourceVersion and counts the event.
func (w *Watcher) applyObject(ev *Event, c change, rv *resourceVersion, count *atomic.Uint64) error {
	next, err := w.hand(c, ev.Object, ev.Proto)
	if err != nil {
		if next, err = w.recut(ev, c, err); err != nil {
			return err
		}
	}
	rv.set(next)
	count.Add(1)
	return nil
}

// hand gives obj to the sink's method for c, returning what it returns.
func (w *Watcher) hand(c change, obj []byte, proto bool) (string, error) {
	switch c {
	case added:
		return w.sink.Add(obj, proto)
	case modified:
		return w.sink.Update(obj, proto)
	}
	return w.sink.Delete(obj, proto)
}

// recut hands an object event's object to the sink again when the sink
// found it followed by more bytes (err, a *TrailingError): cut where it
// ended, if what follows is more of the event (exactObject); else the
// stream was misread (errMisframed) and nothing is applied. It returns
// what the sink returned: the object's resourceVersion (borrowed).
func (w *Watcher) recut(ev *Event, c change, err error) (string, error) {
	te, ok := err.(*services.TrailingError)
	if !ok {
		return "", err
	}
	obj, err := exactObject(ev.Object, te.At)
	if err != nil {
		return "", err
	}
	return w.hand(c, obj, ev.Proto)
}

// listItem hands one of a streaming list's initial events to the sink,
// cut as object does.
func (w *Watcher) listItem(ev *Event) error {
	err := w.sink.ListItem(ev.Object, ev.Proto)
	if te, ok := err.(*services.TrailingError); ok {
		obj, err := exactObject(ev.Object, te.At)
		if err != nil {
			return err
		}
		return w.sink.ListItem(obj, ev.Proto)
	}
	return err
}
