package listwatch

// resourceVersion is where the next watch starts: the resourceVersion of
// the last list, object event or bookmark. Every object event moves it, so
// it is copied into one reused buffer (the event's bytes are overwritten
// by the next) and made a string only when read: a watch opening, a log
// line. A string per event was the loop's one allocation per event.
type resourceVersion struct {
	b   []byte
	s   string // string(b), when valid
	has bool   // s is string(b)
}

// set moves the position to v; "" (an object or bookmark without one)
// leaves it where it is.
func (r *resourceVersion) set(v string) {
	if v == "" || (r.has && v == r.s) {
		return
	}
	r.b = append(r.b[:0], v...)
	r.has = false
}

// reset forgets the position: the next watch needs a list first.
func (r *resourceVersion) reset() { r.b, r.s, r.has = r.b[:0], "", true }

func (r *resourceVersion) empty() bool { return len(r.b) == 0 }

func (r *resourceVersion) String() string {
	if !r.has {
		r.s, r.has = string(r.b), true
	}
	return r.s
}
