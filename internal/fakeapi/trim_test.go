package fakeapi

import (
	"slices"
	"testing"
)

func TestTrimHistory(t *testing.T) {
	s := New(t)
	s.PutEndpoints(ep("ns", "gone", nil, "10.0.0.9"))
	s.DeleteEndpoints("ns", "gone")
	var rvs []string
	for i := range 20 {
		rvs = append(rvs, s.PutEndpoints(ep("ns", "a", nil, "10.0.0.1", "10.0.1."+string(rune('1'+i%9)))))
	}
	s.TrimHistory(5)

	// A watcher 5 events behind resumes; one 6 behind is too old.
	w := watch(t, s, "/api/v1/endpoints?watch=1&resourceVersion="+rvs[14])
	for _, want := range rvs[15:] {
		if ev := w.next(); ev.Type != "MODIFIED" || meta(t, ev.Object).ResourceVersion != want {
			t.Fatalf("got %s %s, want MODIFIED at %s", ev.Type, ev.Object, want)
		}
	}
	w = watch(t, s, "/api/v1/endpoints?watch=1&resourceVersion="+rvs[13])
	if ev := w.next(); ev.Type != "ERROR" || status(t, ev.Object).Code != 410 {
		t.Fatalf("%s %s", ev.Type, ev.Object)
	}

	// Only the versions a snapshot at the oldest kept revision needs stay;
	// a LIST sees the current state.
	if vs := s.store.keys[resEndpoints]["ns/a"]; len(vs) != 6 || vs[0].rv != s.store.compacted {
		t.Fatalf("%d versions kept, first at %d, compacted %d", len(vs), vs[0].rv, s.store.compacted)
	}
	if _, ok := s.store.keys[resEndpoints]["ns/gone"]; ok {
		t.Fatal("a deletion older than the kept history is still stored")
	}
	l := list(t, s, "/api/v1/endpoints")
	if got := names(t, l.Items); !slices.Equal(got, []string{"ns/a"}) {
		t.Fatalf("list: %v", got)
	}
	s.TrimHistory(100) // more than there is: a no-op
	if len(s.store.events) != 5 {
		t.Fatalf("%d events", len(s.store.events))
	}
}
