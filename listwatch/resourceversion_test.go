package listwatch

import (
	"testing"
	"unsafe"
)

// An event's resourceVersion borrows the event's bytes, which the next
// event overwrites: the position keeps its own copy, and a string handed
// out (to a watch's URL, a log line) never changes under its holder.
func TestResourceVersionKeepsItsOwnCopy(t *testing.T) {
	var rv resourceVersion
	if !rv.empty() || rv.String() != "" {
		t.Fatalf("zero value: empty %v, %q", rv.empty(), rv.String())
	}
	buf := []byte("1001")
	rv.set(unsafe.String(&buf[0], len(buf))) // borrowed, as an event's is
	copy(buf, "2002")
	if got := rv.String(); got != "1001" {
		t.Fatalf("after the event's bytes were overwritten: %q, want 1001", got)
	}
	handed := rv.String()
	rv.set("3003")
	rv.set("") // an object without a resourceVersion: stays
	if handed != "1001" || rv.String() != "3003" || rv.empty() {
		t.Fatalf("handed out %q (want 1001), now %q (want 3003)", handed, rv.String())
	}
	rv.reset()
	if !rv.empty() || rv.String() != "" {
		t.Fatalf("after reset: empty %v, %q", rv.empty(), rv.String())
	}
}
