package kdisc

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/kdisc/kdisc/listwatch"
	"github.com/kdisc/kdisc/shm"
)

// WriteMetrics writes the Prometheus text exposition of every cluster's
// counters (label cluster="<id>", "" in single mode). Counting is done by
// the writer; lookups are never counted, so reads stay free of shared
// writes.
func (d *Discovery) WriteMetrics(w io.Writer) {
	type metric struct {
		name, help, typ string
		value           func(c *cluster) float64
	}
	stat := func(f func(c *cluster) uint64) func(c *cluster) float64 {
		return func(c *cluster) float64 {
			if c.watcher == nil {
				return 0
			}
			return float64(f(c))
		}
	}
	metrics := []metric{
		{"kdisc_ready", "1 once the cluster's first full list is applied.", "gauge", func(c *cluster) float64 {
			if c.watcher != nil {
				return b2f(c.watcher.Ready())
			}
			return b2f(c.reader.Ready())
		}},
		{"kdisc_lists_total", "LISTs completed.", "counter", stat(func(c *cluster) uint64 { return c.watcher.Stats().Lists.Load() })},
		{"kdisc_list_errors_total", "LISTs failed.", "counter", stat(func(c *cluster) uint64 { return c.watcher.Stats().ListErrors.Load() })},
		{"kdisc_watches_total", "WATCH requests started.", "counter", stat(func(c *cluster) uint64 { return c.watcher.Stats().Watches.Load() })},
		{"kdisc_watch_errors_total", "WATCHes ended by an error.", "counter", stat(func(c *cluster) uint64 { return c.watcher.Stats().WatchErrors.Load() })},
		{"kdisc_relists_total", "LISTs done again after 410 Gone.", "counter", stat(func(c *cluster) uint64 { return c.watcher.Stats().Relists.Load() })},
		{"kdisc_streaming_list", "1 while the cluster lists with a streaming list (a WATCH with sendInitialEvents, ready at its initial-events-end bookmark), 0 once the apiserver refused one (a 4xx) and it lists in pages.", "gauge", func(c *cluster) float64 {
			return b2f(c.watcher != nil && c.watcher.StreamingList())
		}},
		{"kdisc_table_full_total", "Updates refused because the table (shared_size) is full; the old value stayed.", "counter", stat(func(c *cluster) uint64 { return c.watcher.Stats().TableFull.Load() })},
		{"kdisc_services_truncated", "Services served now from an Endpoints object that the Endpoints controller truncated at 1,000 addresses (annotation endpoints.kubernetes.io/over-capacity: truncated): their other pods get no traffic through kdisc. Watch EndpointSlices instead (watch_endpoint_slices: true).", "gauge", func(c *cluster) float64 {
			if c.watcher == nil {
				return 0
			}
			return float64(c.watcher.Stats().Truncated.Load())
		}},
		{"kdisc_table_bytes_used", "Bytes of the table in use.", "gauge", func(c *cluster) float64 { return float64(c.tableStats().UsedBytes) }},
		{"kdisc_table_bytes_capacity", "Size of the table (shared_size).", "gauge", func(c *cluster) float64 { return float64(c.tableStats().TotalBytes) }},
		{"kdisc_table_bytes_total", "Deprecated: use kdisc_table_bytes_capacity. Size of the table (shared_size).", "gauge", func(c *cluster) float64 { return float64(c.tableStats().TotalBytes) }},
		{"kdisc_table_entries", "Services in the table.", "gauge", func(c *cluster) float64 { return float64(c.tableStats().Entries) }},
		{"kdisc_last_event_age_seconds", "Seconds since the last watch event (or bookmark); -1 before any.", "gauge", func(c *cluster) float64 {
			if c.watcher == nil || c.watcher.Stats().LastEvent.Load() == 0 {
				return -1
			}
			return time.Since(time.Unix(0, c.watcher.Stats().LastEvent.Load())).Seconds()
		}},
		{"kdisc_watch_healthy", "1 while the cluster's list-watch works (its last list or watch attempt succeeded), 0 while the apiserver is unreachable or refuses; the table keeps serving the last known nodes.", "gauge", func(c *cluster) float64 {
			return b2f(c.watcher != nil && c.watcher.Status().Healthy)
		}},
		{"kdisc_last_sync_age_seconds", "Seconds since the last successful list, or watch object or bookmark event; -1 before any.", "gauge", func(c *cluster) float64 {
			if c.watcher == nil {
				return -1
			}
			last := c.watcher.Status().LastSync
			if last.IsZero() {
				return -1
			}
			return max(time.Since(last).Seconds(), 0)
		}},
	}
	for _, m := range metrics {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", m.name, m.help, m.name, m.typ)
		for _, c := range d.clusters {
			fmt.Fprintf(w, "%s{cluster=%q} %g\n", m.name, c.id, m.value(c))
		}
	}
	fmt.Fprintf(w, "# HELP kdisc_objects_skipped_total Objects skipped, by reason: malformed (an object that does not decode or validate), refused (a service the table refused for another reason than being full: see kdisc_table_full_total). Sum over reason for the total.\n# TYPE kdisc_objects_skipped_total counter\n")
	for _, c := range d.clusters {
		var by map[string]uint64
		if c.watcher != nil {
			by = c.watcher.Stats().SkippedByReason()
		}
		for _, reason := range []string{listwatch.SkipMalformed, listwatch.SkipRefused} {
			fmt.Fprintf(w, "kdisc_objects_skipped_total{cluster=%q,reason=%q} %d\n", c.id, reason, by[reason])
		}
	}
	fmt.Fprintf(w, "# HELP kdisc_lists_by_mode_total LISTs completed, by mode: streaming (a WATCH with sendInitialEvents) or paginated (LIST pages). Sum over mode for kdisc_lists_total.\n# TYPE kdisc_lists_by_mode_total counter\n")
	for _, c := range d.clusters {
		var streaming, paginated uint64
		if c.watcher != nil {
			streaming, paginated = c.watcher.Stats().StreamingLists.Load(), c.watcher.Stats().PaginatedLists.Load()
		}
		fmt.Fprintf(w, "kdisc_lists_by_mode_total{cluster=%q,mode=\"streaming\"} %d\n", c.id, streaming)
		fmt.Fprintf(w, "kdisc_lists_by_mode_total{cluster=%q,mode=\"paginated\"} %d\n", c.id, paginated)
	}
	histograms := []struct {
		name, help string
		get        func(s *listwatch.Stats) *listwatch.Histogram
	}{
		{"kdisc_event_apply_seconds", "Seconds from reading a watch event (ADDED, MODIFIED, DELETED) off the stream to its change being in the table, visible to readers.", func(s *listwatch.Stats) *listwatch.Histogram { return s.EventApply }},
		{"kdisc_list_duration_seconds", "Seconds a successful LIST took, every page (or every initial event of a streaming list) read and applied to the table.", func(s *listwatch.Stats) *listwatch.Histogram { return s.ListDuration }},
		{"kdisc_watch_duration_seconds", "Seconds each watch ran, from its request to its end (the server's timeout, an error, an idle timeout or 410 Gone).", func(s *listwatch.Stats) *listwatch.Histogram { return s.WatchDuration }},
	}
	for _, h := range histograms {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s histogram\n", h.name, h.help, h.name)
		for _, c := range d.clusters {
			var s listwatch.HistogramSnapshot
			if c.watcher != nil {
				s = h.get(c.watcher.Stats()).Snapshot()
			}
			for i, le := range s.Bounds {
				fmt.Fprintf(w, "%s_bucket{cluster=%q,le=\"%s\"} %d\n", h.name, c.id, strconv.FormatFloat(le, 'g', -1, 64), s.Cumulative[i])
			}
			fmt.Fprintf(w, "%s_bucket{cluster=%q,le=\"+Inf\"} %d\n", h.name, c.id, s.Count)
			fmt.Fprintf(w, "%s_sum{cluster=%q} %g\n", h.name, c.id, s.Sum)
			fmt.Fprintf(w, "%s_count{cluster=%q} %d\n", h.name, c.id, s.Count)
		}
	}
	fmt.Fprintf(w, "# HELP kdisc_events_total Watch events applied, by type.\n# TYPE kdisc_events_total counter\n")
	for _, c := range d.clusters {
		if c.watcher == nil {
			continue
		}
		s := c.watcher.Stats()
		for _, e := range []struct {
			typ string
			n   uint64
		}{{"ADDED", s.Added.Load()}, {"MODIFIED", s.Modified.Load()}, {"DELETED", s.Deleted.Load()}, {"BOOKMARK", s.Bookmarks.Load()}} {
			fmt.Fprintf(w, "kdisc_events_total{cluster=%q,type=%q} %d\n", c.id, e.typ, e.n)
		}
	}
	fmt.Fprintf(w, "# HELP kdisc_apiserver_requests_total Requests to the apiserver, by verb (list, watch) and HTTP code (error: no answer came).\n# TYPE kdisc_apiserver_requests_total counter\n")
	for _, c := range d.clusters {
		if c.watcher == nil {
			continue
		}
		for _, r := range c.watcher.Stats().Requests() {
			fmt.Fprintf(w, "kdisc_apiserver_requests_total{cluster=%q,verb=%q,code=%q} %d\n", c.id, r.Verb, r.Code, r.N)
		}
	}
}

// tableStats is the writer's view of the table; zero when attached.
func (c *cluster) tableStats() shm.Stats {
	if c.writer == nil {
		return shm.Stats{}
	}
	return c.writer.Stats()
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
