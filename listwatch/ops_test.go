package listwatch

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc/internal/kdisctest"
	"github.com/kdisc/kdisc/shm"
)

// The latency histograms: one LIST, two events applied, one watch ended.
func TestLatencyHistograms(t *testing.T) {
	l := runScript(t, scriptOptions(),
		listOK("10", epJSON("default", "web", "9", "10.0.0.1")),
		watchEvents(io.EOF,
			ev("MODIFIED", epJSON("default", "web", "11", "10.0.0.2")),
			ev("ADDED", epJSON("default", "api", "12", "10.0.0.3")),
			bookmark("13")),
	)
	l.clock.runUntil(t, "the second watch", func() bool { return l.lw.count(VerbWatch) == 2 })
	s := l.w.Stats()
	assert.Equal(t, uint64(1), s.ListDuration.Snapshot().Count)
	assert.Equal(t, uint64(2), s.EventApply.Snapshot().Count, "object events only, not bookmarks")
	assert.Equal(t, uint64(1), s.WatchDuration.Snapshot().Count, "the watch that ended")
}

// Objects skipped are counted by reason; Skipped stays the total.
func TestSkippedByReason(t *testing.T) {
	l := runScript(t, scriptOptions(),
		listOK("10", epJSON("default", "web", "9", "10.0.0.1"),
			`{"metadata":{"name":"bad","namespace":"default","resourceVersion":"9"},"subsets":{"addresses":"x"}}`),
		watchEvents(nil),
	)
	l.clock.runUntil(t, "ready", l.w.Ready)
	s := l.w.Stats()
	assert.Equal(t, uint64(1), s.Skipped.Load())
	assert.Equal(t, map[string]uint64{SkipMalformed: 1, SkipRefused: 0}, s.SkippedByReason())
}

// pagedLW lists pages of items, each page taking perPage on the fake clock.
type pagedLW struct {
	clock          *fakeClock
	pages, perPage int
	took           time.Duration
}

func (p *pagedLW) List(ctx context.Context, o ListOptions, item func(raw []byte, proto bool)) (ListMeta, error) {
	page := 0
	if o.Continue != "" {
		fmt.Sscan(o.Continue, &page)
	}
	for i := range p.perPage {
		p.clock.Step(p.took / time.Duration(p.perPage))
		item([]byte(epJSON("default", fmt.Sprintf("s%d-%d", page, i), "5", "10.0.0.1")), false)
	}
	m := ListMeta{ResourceVersion: "5"}
	if page+1 < p.pages {
		m.Continue = fmt.Sprint(page + 1)
	}
	return m, nil
}

func (p *pagedLW) Watch(ctx context.Context, o WatchOptions) (EventStream, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// A long LIST logs its progress at most once a second: objects so far,
// pages, rate.
func TestListLogsProgress(t *testing.T) {
	clock := newFakeClock()
	var logs kdisctest.LogBuffer
	o := scriptOptions()
	o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	o.Clock = clock
	// 10 pages of 50 objects, 300 ms a page: 3 s in all.
	o.ListerWatcher = &pagedLW{clock: clock, pages: 10, perPage: 50, took: 300 * time.Millisecond}
	table, err := shm.Create("", 1<<20)
	require.NoError(t, err)
	defer table.Close()
	o.Store = table
	w := New(o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	eventually(t, "ready", w.Ready)

	lines := regexp.MustCompile(`(?m)^.*msg="listing \(in progress\)".*$`).FindAllString(logs.String(), -1)
	require.Len(t, lines, 2, "3 s of listing, logged after 1 s and 2 s (not at 3 s: it ended)\n%s", logs.String())
	assert.Regexp(t, `objects=167 pages=3 .*rate=167/s`, lines[0]) // 6 ms an object: 1.002 s, in the 4th page
	assert.Contains(t, lines[0], "elapsed=1s")
	assert.Contains(t, lines[1], "elapsed=2s")
	assert.Regexp(t, `rate=1[0-9][0-9]/s`, lines[1])
}
