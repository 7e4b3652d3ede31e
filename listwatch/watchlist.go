package listwatch

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/kdisc/kdisc/apiserver"
	"github.com/kdisc/kdisc/listwatch/services"
)

// The streaming list (KEP-3157, "watch-list"): instead of LIST pages, one
// WATCH with sendInitialEvents=true and resourceVersionMatch=NotOlderThan.
// The apiserver sends the current state as ADDED events from its watch
// cache, then a BOOKMARK annotated k8s.io/initial-events-end, then carries
// on as a watch from there. It spares the apiserver the memory of building
// list pages, and kdisc a second request.
//
// The initial events are handed to the sink as a list, exactly as list
// pages are (services.Sink.ListItem): nothing changes in the table before the end bookmark,
// where the state replaces the old one (listed: stale services removed,
// readiness, sync time). A stream that ends before the bookmark is a failed
// list: the table keeps its content and the loop backs off and lists
// again. An apiserver that refuses the request with a 4xx (v1.27 to v1.33
// without the WatchList feature: 422; older ones refuse
// resourceVersionMatch on a watch) makes the watcher list in pages from
// then on.

// initialEventsEnd reports whether a BOOKMARK event's object ends the
// initial events of a streaming list.
func initialEventsEnd(ev *Event) bool {
	_, end, err := services.ReadBookmark(ev.Object, ev.Proto)
	return err == nil && end
}

// initialList is a streaming list in progress; its initial events build
// the sink's list (services.Sink.BeginList), as list's pages do.
type initialList struct {
	objects int
	start   time.Time
	logged  time.Time
	done    bool // the initial-events-end bookmark came: the stream is a watch now
}

func (w *Watcher) newInitialList() *initialList {
	now := w.clock.Now()
	w.sink.BeginList()
	return &initialList{start: now, logged: now}
}

// errUnsupportedWatchList says the apiserver does not serve streaming
// lists (it refused the request, or its stream is not one); the watcher
// lists in pages from then on.
type errUnsupportedWatchList struct{ err error }

func (e *errUnsupportedWatchList) Error() string {
	return "the apiserver does not serve streaming lists: " + e.err.Error()
}
func (e *errUnsupportedWatchList) Unwrap() error { return e.err }

// errInitialEventsCut is a streaming list whose stream ended cleanly before
// its initial-events-end bookmark: a failed list, retried.
var errInitialEventsCut = errors.New("stream ended before the initial-events-end bookmark")

// errInitialEventsTimedOut is a streaming list that the apiserver ended at
// the watch's timeoutSeconds, before its initial-events-end bookmark: the
// timeout bounds the initial events too, so a list that slow would never
// complete as a streaming list. The watcher lists in pages instead, at
// once, that time (as client-go's reflector falls back to a LIST when a
// watch-list fails; the next relist tries a streaming list again).
type errInitialEventsTimedOut struct{ timeout time.Duration }

func (e *errInitialEventsTimedOut) Error() string {
	return fmt.Sprintf("the apiserver ended the stream at its timeoutSeconds (%s), before the initial-events-end bookmark", e.timeout)
}

// refusesWatchList reports whether err, the streaming list request's
// failure, means the apiserver does not serve streaming lists: a 4xx
// answer, other than the ones that mean something else (401 and 403: an
// operator must act; 410: list again; 429: throttled). 5xx, 429 and
// transport errors back off and try the streaming list again.
func refusesWatchList(err error) bool {
	var se *apiserver.StatusError
	if !errors.As(err, &se) || se.Code < 400 || se.Code >= 500 {
		return false
	}
	switch se.Code {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusGone, http.StatusTooManyRequests:
		return false
	}
	return !isTooLargeResourceVersion(se)
}

// initialEvent folds one event of a streaming list's initial events into
// l. At the initial-events-end bookmark it applies the list (listed) and
// sets rv to the bookmark's resourceVersion.
func (w *Watcher) initialEvent(l *initialList, ev *Event, rv *resourceVersion) error {
	switch ev.Type {
	case "ADDED":
		l.objects++
		if now := w.clock.Now(); now.Sub(l.logged) >= time.Second {
			l.logged = now
			w.logProgress(l.objects, 0, l.start, now)
		}
		return w.listItem(ev)
	case "BOOKMARK":
		next, end, err := services.ReadBookmark(ev.Object, ev.Proto)
		if err != nil || !end {
			// The apiserver ignored sendInitialEvents (a periodic
			// bookmark comes only after the initial events).
			return &errUnsupportedWatchList{fmt.Errorf("a bookmark without %s before the initial events ended", services.InitialEventsEndAnnotation)}
		}
		w.stats.Bookmarks.Add(1)
		l.done = true
		w.stats.StreamingLists.Add(1)
		w.listed(l.objects, next, l.start, "streaming")
		rv.set(next)
		return nil
	case "ERROR":
		err := w.apply(ev, rv)
		if refusesWatchList(err) {
			return &errUnsupportedWatchList{err}
		}
		return err
	}
	// Only ADDED events come before the end bookmark from an apiserver
	// that serves streaming lists.
	return &errUnsupportedWatchList{fmt.Errorf("a %s event before the initial events ended", ev.Type)}
}
