package listwatch

import (
	"errors"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc/internal/fakeapi"
	"github.com/kdisc/kdisc/listwatch/services"
	"github.com/kdisc/kdisc/shm"
)

// Tests of the streaming list (watchlist.go): scripted, and against the
// fake apiserver.

// streamingOptions are scriptOptions with the streaming list on, as in
// production.
func streamingOptions() Options {
	o := scriptOptions()
	o.NoStreamingList = false
	return o
}

func callsOf(calls []call, verb string) []call {
	var out []call
	for _, c := range calls {
		if c.verb == verb {
			out = append(out, c)
		}
	}
	return out
}

func TestReadBookmark(t *testing.T) {
	rv, end, err := services.ReadBookmark(initialEnd("42").Object, false)
	require.NoError(t, err)
	assert.Equal(t, "42", rv)
	assert.True(t, end)
	rv, end, err = services.ReadBookmark(bookmark("43").Object, false)
	require.NoError(t, err)
	assert.Equal(t, "43", rv)
	assert.False(t, end)
	for _, raw := range []string{
		`{"metadata":{"resourceVersion":"1","annotations":{"k8s.io/initial-events-end":"false"}}}`,
		`{"metadata":{"resourceVersion":"1","annotations":{"other":"true"}}}`,
		`{"metadata":{"resourceVersion":"1","annotations":null}}`,
		`{"metadata":`,
	} {
		assert.False(t, initialEventsEnd(&Event{Type: "BOOKMARK", Object: []byte(raw)}), raw)
	}
}

// The first list is one streaming request: its initial events build the
// state, which the table gets (and is ready) at the end bookmark; the same
// stream then goes on as the watch, and a watch that ends resumes from the
// last resourceVersion without listing again.
func TestStreamingListThenWatch(t *testing.T) {
	l := runScript(t, streamingOptions(),
		watchList(io.EOF,
			ev("ADDED", epJSON("default", "web", "7", "10.0.0.1")),
			ev("ADDED", epJSON("default", "api", "8", "10.0.0.2")),
			initialEnd("10"),
			ev("MODIFIED", epJSON("default", "web", "11", "10.0.0.3")),
		),
		watchEvents(nil),
	)
	l.clock.runUntil(t, "the watch resumed", func() bool { return l.lw.count(VerbWatch) == 1 })
	assert.True(t, l.w.Ready())
	assert.Equal(t, []string{"10.0.0.3:80"}, l.hosts("default/web:http"))
	assert.Equal(t, []string{"10.0.0.2:80"}, l.hosts("default/api:http"))
	calls := l.lw.getCalls()
	require.Len(t, calls, 2)
	assert.Equal(t, verbWatchList, calls[0].verb)
	assert.Equal(t, WatchOptions{ResourceVersion: "", TimeoutSeconds: calls[0].watch.TimeoutSeconds, SendInitialEvents: true}, calls[0].watch)
	assert.Equal(t, "11", calls[1].watch.ResourceVersion, "resumed after the last event of the streaming list's watch")
	assert.False(t, calls[1].watch.SendInitialEvents)
	assert.Zero(t, l.lw.count(VerbList), "no LIST at all")
	s := l.w.Stats()
	assert.Equal(t, uint64(1), s.Lists.Load())
	assert.Equal(t, uint64(1), s.StreamingLists.Load())
	assert.Zero(t, s.PaginatedLists.Load())
	assert.Equal(t, uint64(1), s.Modified.Load(), "initial events are the list, not watch events")
	assert.Zero(t, s.Added.Load())
	assert.True(t, l.w.StreamingList())
}

// Before the end bookmark nothing is applied and the table is not ready;
// a stream that breaks there is a failed list (backoff, retried with a
// streaming list), never half applied.
func TestStreamingListCutBeforeTheEnd(t *testing.T) {
	for _, end := range []error{io.EOF, io.ErrUnexpectedEOF} {
		t.Run(end.Error(), func(t *testing.T) {
			l := runScript(t, streamingOptions(),
				watchList(end, ev("ADDED", epJSON("default", "web", "7", "10.0.0.1"))),
				watchList(end, ev("ADDED", epJSON("default", "web", "7", "10.0.0.1"))),
				watchList(nil, ev("ADDED", epJSON("default", "web", "7", "10.0.0.1")), initialEnd("10")),
			)
			l.clock.runUntil(t, "three streaming lists", func() bool { return l.lw.count(verbWatchList) == 3 })
			calls := l.lw.getCalls()
			assertBackoff(t, gaps(calls))
			l.clock.runUntil(t, "ready", l.w.Ready)
			assert.Equal(t, []string{"10.0.0.1:80"}, l.hosts("default/web:http"))
			s := l.w.Stats()
			assert.Equal(t, uint64(2), s.ListErrors.Load())
			assert.Equal(t, uint64(1), s.Lists.Load())
			assert.Zero(t, s.WatchErrors.Load())
			assert.True(t, l.w.StreamingList(), "a broken stream is no reason to give up streaming lists")
		})
	}
}

// A first streaming list that breaks leaves the table not ready. Of
// Endpoints, what it delivered is written as it came (each object is its
// service whole: issue 7 asks for no second copy of every service beside
// the table), and is served as a found answer is before readiness; a
// service it did not reach answers not ready, not unknown.
func TestStreamingListNotReadyBeforeTheEnd(t *testing.T) {
	l := runScript(t, streamingOptions(),
		watchList(nil, ev("ADDED", epJSON("default", "web", "7", "10.0.0.1"))), // then silence
	)
	eventually(t, "the stream holds after its first event", func() bool { return l.lw.blocked() == 1 })
	eventually(t, "its first event written", func() bool { return l.hosts("default/web:http") != nil })
	assert.False(t, l.w.Ready())
	r := l.table.Reader()
	defer r.Close()
	assert.False(t, r.Ready())
	assert.Equal(t, []string{"10.0.0.1:80"}, l.hosts("default/web:http"))
	_, answer := r.Find(nil, "default/other:http")
	assert.Equal(t, shm.NotReady, answer)
	assert.False(t, l.w.Status().Healthy, "not healthy before a list completed")
}

// After a 410 the relist is a streaming list again; a service the new list
// lacks is removed at its end bookmark, not before, and a relist that breaks
// removes nothing (of Endpoints, what it delivered is written as it came).
func TestGoneRelistsWithStreamingList(t *testing.T) {
	l := runScript(t, streamingOptions(),
		watchList(io.EOF,
			ev("ADDED", epJSON("default", "keep", "7", "10.0.0.1")),
			ev("ADDED", epJSON("default", "gone", "8", "10.0.0.2")),
			initialEnd("10"),
			ev("MODIFIED", epJSON("default", "keep", "11", "10.0.0.1")), // progress: the 410 below relists at once
		),
		watchEvents(io.EOF, errorEvent(410, "Expired", "too old resource version: 11 (15)", "")),
		watchList(io.ErrUnexpectedEOF, ev("ADDED", epJSON("default", "keep", "16", "10.0.0.5"))),
	)
	l.clock.runUntil(t, "the relist broke", func() bool { return l.w.Stats().ListErrors.Load() == 1 })
	assert.Equal(t, []string{"10.0.0.5:80"}, l.hosts("default/keep:http"), "what the broken relist delivered is written")
	assert.Equal(t, []string{"10.0.0.2:80"}, l.hosts("default/gone:http"), "nothing removed before the end")
	assert.True(t, l.w.Ready())

	l.lw.add(watchList(nil, ev("ADDED", epJSON("default", "keep", "16", "10.0.0.5")), initialEnd("20")))
	// A list is counted before the table is rewritten: wait for the table.
	l.clock.runUntil(t, "relisted", func() bool {
		return l.w.Stats().Lists.Load() == 2 && l.hosts("default/gone:http") == nil
	})
	assert.Equal(t, []string{"10.0.0.5:80"}, l.hosts("default/keep:http"), "written before the stale service is removed")
	calls := l.lw.getCalls()
	assert.Equal(t, []string{verbWatchList, VerbWatch, verbWatchList, verbWatchList}, verbs(calls))
	assert.Equal(t, "", calls[2].watch.ResourceVersion)
	assert.Equal(t, calls[1].at, calls[2].at, "the usual 410 lists again at once")
	assert.Equal(t, uint64(1), l.w.Stats().Relists.Load())
	assert.Equal(t, uint64(2), l.w.Stats().StreamingLists.Load())
	assert.Zero(t, l.lw.count(VerbList))
}

func verbs(calls []call) []string {
	var out []string
	for _, c := range calls {
		out = append(out, c.verb)
	}
	return out
}

// A malformed object among the initial events is skipped and counted, and
// its service keeps what it served, as in a paginated relist; its later
// DELETED event still lands.
func TestStreamingListMalformedObject(t *testing.T) {
	bad := `{"metadata":{"name":"web","namespace":"default","resourceVersion":"15"},"subsets":{"addresses":"10.9.9.9"}}`
	l := runScript(t, streamingOptions(),
		watchList(io.EOF,
			ev("ADDED", epJSON("default", "web", "7", "10.0.0.1")),
			ev("ADDED", epJSON("default", "api", "8", "10.0.0.2")),
			initialEnd("10"),
			ev("MODIFIED", epJSON("default", "api", "11", "10.0.0.2")),
		),
		watchEvents(io.EOF, errorEvent(410, "Expired", "too old", "")),
		watchList(nil,
			ev("ADDED", bad), // web's object is malformed now
			ev("ADDED", epJSON("default", "api", "16", "10.0.0.2")),
			initialEnd("20"),
		),
	)
	l.clock.runUntil(t, "relisted", func() bool { return l.w.Stats().Lists.Load() == 2 })
	assert.Equal(t, uint64(1), l.w.Stats().Skipped.Load())
	assert.Equal(t, []string{"10.0.0.1:80"}, l.hosts("default/web:http"), "the malformed object's service keeps its value")
	assert.Equal(t, []string{"10.0.0.2:80"}, l.hosts("default/api:http"))
}

func TestStreamingListMalformedThenDeleted(t *testing.T) {
	bad := `{"metadata":{"name":"web","namespace":"default","resourceVersion":"15"},"subsets":{"addresses":"10.9.9.9"}}`
	l := runScript(t, streamingOptions(),
		watchList(io.EOF,
			ev("ADDED", epJSON("default", "web", "7", "10.0.0.1")),
			initialEnd("10"),
			ev("MODIFIED", epJSON("default", "web", "11", "10.0.0.1")),
		),
		watchEvents(io.EOF, errorEvent(410, "Expired", "too old", "")),
		watchList(nil, ev("ADDED", bad), initialEnd("20"), ev("DELETED", epJSON("default", "web", "21", "10.0.0.1"))),
	)
	l.clock.runUntil(t, "the delete applied", func() bool { return l.w.Stats().Deleted.Load() == 1 })
	assert.Nil(t, l.hosts("default/web:http"))
}

// An apiserver that refuses the streaming list with a 4xx (v1.33: 422; a
// proxy: 400) is listed in pages at once, and from then on: a relist after
// 410 is paginated too.
func TestStreamingListRefusedFallsBackToPages(t *testing.T) {
	for _, code := range []int{400, 404, 422} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			l := runScript(t, streamingOptions(),
				watchListErr(statusErr(code, "Invalid", "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled")),
				listOK("10", epJSON("default", "web", "9", "10.0.0.1")),
				watchEvents(io.EOF, ev("MODIFIED", epJSON("default", "web", "11", "10.0.0.1"))),
				watchEvents(io.EOF, errorEvent(410, "Expired", "too old", "")),
				listOK("20", epJSON("default", "web", "19", "10.0.0.2")),
				watchEvents(nil),
			)
			// A list is counted before the table is rewritten: wait for the table.
			l.clock.runUntil(t, "relisted", func() bool {
				return l.w.Stats().Lists.Load() == 2 && equal(l.hosts("default/web:http"), []string{"10.0.0.2:80"})
			})
			calls := l.lw.getCalls()
			assert.Equal(t, calls[0].at, calls[1].at, "the paginated LIST follows the refusal at once")
			assert.Equal(t, 1, l.lw.count(verbWatchList), "the refusal is remembered")
			assert.False(t, l.w.StreamingList())
			assert.Equal(t, uint64(2), l.w.Stats().PaginatedLists.Load())
			assert.Zero(t, l.w.Stats().StreamingLists.Load())
			assert.Zero(t, l.w.Stats().ListErrors.Load(), "a refusal is no error")
		})
	}
}

// 5xx, 429, 401, 403 and transport errors are no reason to give up the
// streaming list: they back off and try it again.
func TestStreamingListTransientFailuresRetry(t *testing.T) {
	for _, err := range []error{
		statusErr(500, "InternalError", "etcdserver: request timed out"),
		statusErr(503, "ServiceUnavailable", "the server is currently unable to handle the request"),
		statusErr(429, "TooManyRequests", "Too many requests, please try again later."),
		statusErr(401, "Unauthorized", "Unauthorized"),
		statusErr(403, "Forbidden", "endpoints is forbidden"),
		statusErr(410, "Expired", "too old"),
		errors.New("connection refused"),
	} {
		t.Run(err.Error(), func(t *testing.T) {
			l := runScript(t, streamingOptions(),
				watchListErr(err),
				watchListErr(err),
				watchList(nil, ev("ADDED", epJSON("default", "web", "7", "10.0.0.1")), initialEnd("10")),
			)
			l.clock.runUntil(t, "ready", l.w.Ready)
			calls := l.lw.getCalls()
			assert.Equal(t, []string{verbWatchList, verbWatchList, verbWatchList}, verbs(calls))
			for _, g := range gaps(calls) {
				assert.GreaterOrEqual(t, g, 250*time.Millisecond, "backed off")
			}
			assert.True(t, l.w.StreamingList())
			assert.Equal(t, uint64(2), l.w.Stats().ListErrors.Load())
		})
	}
}

// An ERROR event before the end bookmark: a 4xx means the apiserver does
// not serve streaming lists (fall back); a 5xx is a failed list (retry).
func TestStreamingListErrorEvent(t *testing.T) {
	l := runScript(t, streamingOptions(),
		watchList(io.EOF, errorEvent(500, "InternalError", "etcdserver: request timed out", "")),
		watchList(io.EOF, errorEvent(422, "Invalid", "sendInitialEvents: Forbidden", "")),
		listOK("10", epJSON("default", "web", "9", "10.0.0.1")),
		watchEvents(nil),
	)
	l.clock.runUntil(t, "ready", l.w.Ready)
	assert.Equal(t, []string{verbWatchList, verbWatchList, VerbList}, verbs(l.lw.getCalls())[:3])
	assert.Equal(t, uint64(1), l.w.Stats().ListErrors.Load())
	assert.False(t, l.w.StreamingList())
}

// A stream that is not a streaming list (an apiserver that ignored
// sendInitialEvents: a MODIFIED or DELETED event, or a bookmark without
// the annotation, before the end) is never applied: the watcher lists in
// pages instead.
func TestStreamingListIgnoredFallsBack(t *testing.T) {
	for name, e := range map[string]Event{
		"modified": ev("MODIFIED", epJSON("default", "web", "8", "10.0.0.9")),
		"deleted":  ev("DELETED", epJSON("default", "web", "8", "10.0.0.9")),
		"bookmark": bookmark("8"),
	} {
		t.Run(name, func(t *testing.T) {
			l := runScript(t, streamingOptions(),
				watchList(nil, ev("ADDED", epJSON("default", "web", "7", "10.0.0.9")), e),
				listOK("10", epJSON("default", "web", "9", "10.0.0.1")),
				watchEvents(nil),
			)
			l.clock.runUntil(t, "ready", l.w.Ready)
			assert.Equal(t, []string{"10.0.0.1:80"}, l.hosts("default/web:http"))
			assert.False(t, l.w.StreamingList())
		})
	}
}

// After the end bookmark the stream is a watch: its idle timeout applies
// (2.5 min without an event), and it resumes from the last resourceVersion.
func TestStreamingListWatchIdleTimeoutAfterTheEnd(t *testing.T) {
	l := runScript(t, streamingOptions(),
		watchList(nil, ev("ADDED", epJSON("default", "web", "7", "10.0.0.1")), initialEnd("10")),
		watchEvents(nil),
	)
	eventually(t, "the stream is open and silent", func() bool { return l.lw.blocked() == 1 && l.w.Ready() })
	l.clock.Step(150*time.Second - time.Millisecond)
	assert.Zero(t, l.lw.count(VerbWatch), "not yet")
	l.clock.Step(time.Millisecond)
	l.clock.runUntil(t, "a watch", func() bool { return l.lw.count(VerbWatch) == 1 })
	assert.Equal(t, "10", callsOf(l.lw.getCalls(), VerbWatch)[0].watch.ResourceVersion)
	assert.Equal(t, uint64(1), l.w.Stats().WatchErrors.Load())
	assert.Zero(t, l.w.Stats().ListErrors.Load())
}

// Against the fake apiserver: one request with the streaming list's
// parameters, no LIST, every object, then changes on the same stream.
func TestStreamingListFakeAPI(t *testing.T) {
	api := fakeapi.New(t)
	for i := range 30 {
		api.PutEndpoints(endpoints("default", "svc"+strconv.Itoa(i), 80, "10.0.0."+strconv.Itoa(i+1)))
	}
	o := fastOptions()
	o.NoStreamingList = false
	h := start(t, api, o)
	eventually(t, "ready", h.w.Ready)
	for i := range 30 {
		assert.Equal(t, []string{"10.0.0." + strconv.Itoa(i+1) + ":80"}, h.hosts("default/svc"+strconv.Itoa(i)+":http"))
	}
	api.PutEndpoints(endpoints("default", "late", 80, "10.0.1.1"))
	h.waitHosts("default/late:http", "10.0.1.1:80")
	reqs := api.Requests()
	require.Len(t, reqs, 1, "one request: the streaming list, then its watch")
	r := reqs[0]
	assert.True(t, r.Watch)
	for k, v := range map[string]string{"sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan", "allowWatchBookmarks": "true", "resourceVersion": ""} {
		assert.Equal(t, v, r.Param(k), k)
	}
	assert.Equal(t, uint64(1), h.w.Stats().StreamingLists.Load())
	assert.Equal(t, []RequestCount{{Verb: VerbWatch, Code: "200", N: 1}}, h.w.Stats().Requests())
}

// An apiserver that answers 422 like v1.33 (or 400) gets the paginated
// LIST, at once, for good.
func TestStreamingListFakeAPIRefused(t *testing.T) {
	for _, opt := range []fakeapi.Option{fakeapi.WithoutWatchList(), fakeapi.WithWatchListRefused(400)} {
		api := fakeapi.New(t, opt)
		api.PutEndpoints(endpoints("default", "keep", 80, "10.0.0.1"))
		api.PutEndpoints(endpoints("default", "gone", 80, "10.0.0.2"))
		o := fastOptions()
		o.NoStreamingList = false
		h := start(t, api, o)
		// The table is written before readiness is set: wait for both.
		h.waitHosts("default/keep:http", "10.0.0.1:80")
		eventually(t, "ready", h.w.Ready)
		api.WaitWatchers(1)
		// 410: the relist is paginated too.
		api.Fail(fakeapi.IsWatch(""), fakeapi.InternalError(), -1)
		api.CloseWatches()
		api.WaitRequests(func(r fakeapi.Request) bool { return r.Fault != "" }, 1)
		api.DeleteEndpoints("default", "gone")
		api.Compact()
		api.ClearFaults()
		h.waitHosts("default/gone:http")
		eventually(t, "relisted", func() bool { return h.w.Stats().Lists.Load() == 2 })
		streaming := 0
		for _, r := range api.Requests() {
			if r.Param("sendInitialEvents") != "" {
				streaming++
			}
		}
		assert.Equal(t, 1, streaming, "asked once")
		assert.Equal(t, 2, lists(api.Requests()))
		assert.False(t, h.w.StreamingList())
		assert.Equal(t, uint64(2), h.w.Stats().PaginatedLists.Load())
	}
}

// Against the fake apiserver: a stream cut mid-event before its end is
// retried; a 410 relists with a streaming list that removes the stale
// service at its end; a malformed object is skipped.
func TestStreamingListFakeAPIFaults(t *testing.T) {
	api := fakeapi.New(t)
	api.PutEndpoints(endpoints("default", "keep", 80, "10.0.0.1"))
	api.PutEndpoints(endpoints("default", "gone", 80, "10.0.0.2"))
	api.Fail(fakeapi.IsWatch(""), fakeapi.DropMidEvent(), 1)
	api.Fail(fakeapi.IsWatch(""), fakeapi.Malformed(), 1)
	o := fastOptions()
	o.NoStreamingList = false
	h := start(t, api, o)
	h.waitHosts("default/gone:http", "10.0.0.2:80")
	assert.Equal(t, uint64(1), h.w.Stats().ListErrors.Load(), "the cut stream")
	assert.Equal(t, uint64(1), h.w.Stats().Skipped.Load(), "the malformed object")
	api.WaitWatchers(1)

	api.Fail(fakeapi.IsWatch(""), fakeapi.InternalError(), -1)
	api.CloseWatches()
	api.WaitRequests(func(r fakeapi.Request) bool { return r.Fault == "InternalError" }, 1)
	api.DeleteEndpoints("default", "gone")
	api.PutEndpoints(endpoints("default", "new", 80, "10.0.0.3"))
	api.Compact()
	api.ClearFaults()
	h.waitHosts("default/new:http", "10.0.0.3:80")
	h.waitHosts("default/gone:http")
	assert.Equal(t, []string{"10.0.0.1:80"}, h.hosts("default/keep:http"))
	eventually(t, "two streaming lists", func() bool { return h.w.Stats().StreamingLists.Load() == 2 })
	assert.Equal(t, uint64(1), h.w.Stats().Relists.Load())
	assert.Zero(t, lists(api.Requests()), "never a LIST")
	assert.True(t, h.w.StreamingList())
}

// A streaming list whose stream goes silent before its end is given up
// after the list idle timeout (20 s without a byte), not the watch's.
func TestStreamingListIdleTimeout(t *testing.T) {
	api := fakeapi.New(t)
	api.PutEndpoints(endpoints("default", "web", 80, "10.0.0.1"))
	api.Fail(fakeapi.IsWatch(""), fakeapi.Stall(), 1)
	clock := newFakeClock()
	o := fastOptions()
	o.NoStreamingList = false
	o.Clock = clock
	h := start(t, api, o)
	api.WaitRequests(func(r fakeapi.Request) bool { return r.Fault == "Stall" }, 1)
	clock.waitTimers(t, 2) // the list idle timer and the watch's watchdog
	clock.Step(19 * time.Second)
	assert.Len(t, api.Requests(), 1, "19 s of silence: still waiting")
	clock.Step(time.Second)
	clock.runUntil(t, "ready", h.w.Ready)
	h.waitHosts("default/web:http", "10.0.0.1:80")
	assert.Equal(t, uint64(1), h.w.Stats().ListErrors.Load())
	assert.Equal(t, ClassNone, h.w.Status().ErrorClass)

	// Once listed, the 20 s no longer apply: the watch's idle timeout does.
	api.WaitWatchers(1)
	assert.Equal(t, 1, clock.pending(), "the watch's watchdog only: the list idle timer is stopped")
	clock.Step(60 * time.Second)
	api.PutEndpoints(endpoints("default", "late", 80, "10.0.0.2"))
	h.waitHosts("default/late:http", "10.0.0.2:80")
	assert.Len(t, api.Requests(), 2, "the same stream")
}

// A streaming list slower than its watch's timeoutSeconds (which bounds
// the initial events too) is ended by the apiserver before its end
// bookmark, every time: kdisc lists in pages instead, at once, and is
// ready. It retried the streaming list forever before (issue 15).
func TestSlowStreamingListFallsBackToPages(t *testing.T) {
	api := fakeapi.New(t, fakeapi.WithSlowInitialEvents(100*time.Millisecond))
	for i := range 30 {
		api.PutEndpoints(endpoints("default", "svc"+strconv.Itoa(i), 80, "10.0.0."+strconv.Itoa(i+1)))
	}
	o := fastOptions()
	o.NoStreamingList = false
	o.MinWatchTimeout = time.Second // timeoutSeconds=1; the initial events take 3 s
	h := start(t, api, o)
	eventually(t, "ready", h.w.Ready)
	for i := range 30 {
		assert.Equal(t, []string{"10.0.0." + strconv.Itoa(i+1) + ":80"}, h.hosts("default/svc"+strconv.Itoa(i)+":http"))
	}
	reqs := api.Requests()
	require.GreaterOrEqual(t, len(reqs), 2)
	assert.Equal(t, "true", reqs[0].Param("sendInitialEvents"))
	assert.Equal(t, "1", reqs[0].Param("timeoutSeconds"))
	assert.False(t, reqs[1].Watch, "then a LIST")
	assert.Equal(t, 1, lists(reqs), "one page")
	s := h.w.Stats()
	assert.Equal(t, uint64(1), s.PaginatedLists.Load())
	assert.Zero(t, s.StreamingLists.Load())
	assert.Zero(t, s.ListErrors.Load(), "the apiserver did nothing wrong")
	assert.True(t, h.w.StreamingList(), "a later relist tries the streaming list again")
}
