package fakeapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// watcher is one open WATCH stream. The store pushes into its unbounded
// queue under the store lock; the handler goroutine drains it, so a slow
// client never blocks a test's Put.
type watcher struct {
	res       *resource
	filter    *filter
	bookmarks bool
	proto     bool // frames in protobuf (";stream=watch")
	startRV   uint64

	mu    sync.Mutex
	queue []watchItem
	wake  chan struct{} // cap 1: something was queued
	stop  chan struct{} // closed by closeWatches
	once  sync.Once
}

// watchItem is an event, or a bookmark when ev is nil.
type watchItem struct {
	ev          *event
	bookmarkRV  uint64
	initialDone bool // the bookmark closing sendInitialEvents
}

func newWatcher(res *resource, f *filter, bookmarks bool) *watcher {
	return &watcher{res: res, filter: f, bookmarks: bookmarks,
		wake: make(chan struct{}, 1), stop: make(chan struct{})}
}

func (w *watcher) push(it watchItem) {
	w.mu.Lock()
	w.queue = append(w.queue, it)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *watcher) drain() []watchItem {
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.queue
	w.queue = nil
	return q
}

func (w *watcher) end() { w.once.Do(func() { close(w.stop) }) }

// frame renders one item as the line the real server writes, or nil when
// the watcher's selectors filter it out. As in the watch cache, an object
// that starts matching arrives as ADDED and one that stops matching as
// DELETED.
func (w *watcher) frame(it watchItem) []byte {
	if it.ev == nil {
		if w.proto {
			return protoBookmarkFrame(w.res, it.bookmarkRV, it.initialDone)
		}
		return bookmarkFrame(w.res, it.bookmarkRV, it.initialDone)
	}
	ev := it.ev
	cur := w.filter.matches(ev.obj)
	old := ev.prev != nil && w.filter.matches(ev.prev)
	typ := ev.typ
	switch ev.typ {
	case "ADDED":
		if !cur {
			return nil
		}
	case "MODIFIED":
		switch {
		case cur && !old:
			typ = "ADDED"
		case !cur && old:
			typ = "DELETED"
		case !cur && !old:
			return nil
		}
	case "DELETED":
		if !old {
			return nil
		}
	}
	if w.proto {
		return protoEventFrame(w.res, typ, protoMessage(w.res, ev.obj.full))
	}
	return eventFrame(typ, ev.obj.full)
}

func eventFrame(typ string, obj []byte) []byte {
	var b bytes.Buffer
	b.WriteString(`{"type":"` + typ + `","object":`)
	b.Write(obj)
	b.WriteString("}\n")
	return b.Bytes()
}

// bookmarkFrame encodes an empty object of the resource's type carrying
// only the revision, exactly as the real server does, so an EndpointSlice
// bookmark has "addressType":"" and "endpoints":null and a client must not
// mistake it for data.
func bookmarkFrame(res *resource, rv uint64, initialDone bool) []byte {
	obj := res.newObject()
	obj.setType(res.kind, res.apiVersion)
	obj.meta().ResourceVersion = formatRV(rv)
	if initialDone {
		obj.meta().Annotations = map[string]string{"k8s.io/initial-events-end": "true"}
	}
	b, _ := json.Marshal(obj)
	return eventFrame("BOOKMARK", b)
}

func protoBookmarkFrame(res *resource, rv uint64, initialDone bool) []byte {
	obj := res.newObject()
	obj.meta().ResourceVersion = formatRV(rv)
	if initialDone {
		obj.meta().Annotations = map[string]string{"k8s.io/initial-events-end": "true"}
	}
	return protoEventFrame(res, "BOOKMARK", protoMessageOf(obj))
}

func (w *watcher) errorFrame(st *Status) []byte {
	if w.proto {
		return FrameProto(WatchEventProto("ERROR", protoStatus(st)))
	}
	return errorFrame(st)
}

func errorFrame(st *Status) []byte {
	b, _ := json.Marshal(st)
	return eventFrame("ERROR", b)
}

// serveWatch answers WATCH: replay after resourceVersion, then live
// changes, until the client leaves, timeoutSeconds passes, the test calls
// CloseWatches, or the server closes.
func (s *Server) serveWatch(w http.ResponseWriter, r *http.Request, req Request, res *resource, f *filter, fault Fault) {
	q := r.URL.Query()
	var timeout <-chan time.Time
	if v := q.Get("timeoutSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeStatus(w, badRequest("invalid timeoutSeconds: "+v))
			return
		}
		if n > 0 {
			t := time.NewTimer(time.Duration(n) * time.Second)
			defer t.Stop()
			timeout = t.C
		}
	}
	rvParam := q.Get("resourceVersion")
	initial := rvParam == "" || rvParam == "0"
	sendInitial, _ := strconv.ParseBool(q.Get("sendInitialEvents"))
	if st := s.checkWatchList(q.Has("sendInitialEvents"), q.Get("resourceVersionMatch")); st != nil {
		writeStatus(w, st)
		return
	}
	var from uint64
	if !initial {
		var err error
		if from, err = strconv.ParseUint(rvParam, 10, 64); err != nil {
			writeStatus(w, badRequest("invalid resource version: "+rvParam))
			return
		}
	}
	if sendInitial {
		initial = true
	}
	bookmarks, _ := strconv.ParseBool(q.Get("allowWatchBookmarks"))

	// Too old or too new is known before any byte is sent; whether the
	// client sees a 410 status or a 200 with an ERROR event is the
	// switch WithWatchExpiredAsHTTPError.
	wt := newWatcher(res, f, bookmarks)
	wt.proto = isProto(w)
	st := s.store.addWatcher(wt, from, initial)
	if st.tooNew {
		writeStatus(w, tooLargeStatus(from, st.current))
		return
	}
	if st.tooOld && s.cfg.expiredAsHTTP {
		writeStatus(w, tooOldStatus(from, st.compacted))
		return
	}
	if !st.tooOld {
		defer s.store.removeWatcher(wt)
	}
	if sendInitial && bookmarks {
		wt.push(watchItem{bookmarkRV: wt.startRV, initialDone: true})
	}

	w.Header().Set("Content-Type", "application/json")
	if wt.proto {
		w.Header().Set("Content-Type", mediaProtobufWatch)
	}
	w.Header().Set("Transfer-Encoding", "chunked")
	w.WriteHeader(http.StatusOK)
	sw := newSplitWriter(w, s.seed, uint64(req.Seq))
	if err := sw.rc.Flush(); err != nil {
		return
	}
	if fault.kind == faultStall && !s.stall(w, r, fault) {
		return
	}
	if st.tooOld {
		_ = sw.write(wt.errorFrame(tooOldStatus(from, st.compacted)))
		return
	}
	if fault.kind == faultMalformed {
		frame := eventFrame("ADDED", malformedItem(res, req.Namespace, wt.startRV, true))
		if wt.proto {
			frame = protoEventFrame(res, "ADDED", malformedProto(res, req.Namespace, wt.startRV))
		}
		if err := sw.write(frame); err != nil {
			return
		}
	}
	paced := sendInitial && s.cfg.initialEvery > 0 // WithSlowInitialEvents
	for {
		var frames [][]byte
		for _, it := range wt.drain() {
			if b := wt.frame(it); b != nil {
				frames = append(frames, b)
			}
		}
		for ; paced && len(frames) > 0; frames = frames[1:] {
			if err := sw.write(frames[0]); err != nil {
				return
			}
			select {
			case <-time.After(s.cfg.initialEvery):
			case <-wt.stop:
				return
			case <-timeout:
				return
			case <-r.Context().Done():
				return
			case <-s.done:
				return
			}
		}
		paced = false
		if fault.kind == faultDrop && len(frames) > 0 {
			_ = sw.half(frames[0])
			s.hangUp(w)
			return
		}
		if err := sw.writeFrames(frames); err != nil {
			return
		}
		select {
		case <-wt.wake:
		case <-wt.stop:
			return
		case <-timeout:
			return
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		}
	}
}

// checkWatchList validates a watch's sendInitialEvents and
// resourceVersionMatch as the real server's ValidateListOptions does (422
// Invalid), and refuses the streaming list when the server is configured
// without it (WithoutWatchList, WithWatchListRefused).
func (s *Server) checkWatchList(sendInitial bool, match string) *Status {
	var errs []fieldError
	if sendInitial {
		if match != "NotOlderThan" {
			errs = append(errs, fieldError{"FieldValueForbidden", "resourceVersionMatch", "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"})
		}
		switch s.cfg.watchListCode {
		case 0:
		case http.StatusUnprocessableEntity:
			errs = append(errs, fieldError{"FieldValueForbidden", "sendInitialEvents", "Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled"})
		case http.StatusBadRequest:
			return badRequest("sendInitialEvents is not supported here")
		default:
			return newStatus(s.cfg.watchListCode, strings.ReplaceAll(http.StatusText(s.cfg.watchListCode), " ", ""), "sendInitialEvents: "+http.StatusText(s.cfg.watchListCode))
		}
	} else if match != "" {
		errs = append(errs, fieldError{"FieldValueForbidden", "resourceVersionMatch", "Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"})
	}
	if len(errs) == 0 {
		return nil
	}
	return invalidStatus(listOptionsResource, "", errs)
}

// listOptionsResource names ListOptions in a 422, as the real server does:
// ListOptions.meta.k8s.io "" is invalid: ...
var listOptionsResource = &resource{kind: "ListOptions", group: "meta.k8s.io"}
