package listwatch

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeClock is a Clock that moves only when the test steps it. Timers fire
// in deadline order as Step passes them.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c        *fakeClock
	ch       chan time.Time
	f        func()
	deadline time.Time
	active   bool
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	return c.add(&fakeTimer{c: c, ch: make(chan time.Time, 1)}, d)
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	return c.add(&fakeTimer{c: c, f: f}, d)
}

func (c *fakeClock) add(t *fakeTimer, d time.Duration) *fakeTimer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t.deadline, t.active = c.now.Add(d), true
	c.timers = append(c.timers, t)
	c.fireLocked()
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.active = false
	t.c.removeLocked(t)
	return was
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.c.removeLocked(t)
	t.deadline, t.active = t.c.now.Add(d), true
	t.c.timers = append(t.c.timers, t)
	t.c.fireLocked()
	return was
}

func (c *fakeClock) removeLocked(t *fakeTimer) {
	c.timers = slices.DeleteFunc(c.timers, func(x *fakeTimer) bool { return x == t })
}

// fireLocked fires every timer whose deadline has come, earliest first.
func (c *fakeClock) fireLocked() {
	slices.SortStableFunc(c.timers, func(a, b *fakeTimer) int { return a.deadline.Compare(b.deadline) })
	for len(c.timers) > 0 && !c.timers[0].deadline.After(c.now) {
		t := c.timers[0]
		c.timers = c.timers[1:]
		t.active = false
		if t.f != nil {
			go t.f()
		} else {
			select {
			case t.ch <- c.now:
			default:
			}
		}
	}
}

// Step moves the clock on by d, firing the timers it passes.
func (c *fakeClock) Step(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.fireLocked()
}

// nextWait returns how far away the earliest pending NewTimer timer (a
// wait of the loop, not an idle watchdog) is, and whether there is one.
func (c *fakeClock) nextWait() (time.Duration, bool) {
	return c.next(func(t *fakeTimer) bool { return t.ch != nil })
}

// nextAfterFunc is nextWait of the AfterFunc timers (idle watchdogs).
func (c *fakeClock) nextAfterFunc() (time.Duration, bool) {
	return c.next(func(t *fakeTimer) bool { return t.f != nil })
}

// next returns how far away the earliest pending timer of the kind is,
// and whether there is one.
func (c *fakeClock) next(kind func(*fakeTimer) bool) (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.timers {
		if kind(t) {
			return t.deadline.Sub(c.now), true
		}
	}
	return 0, false
}

// timers counts the pending timers.
func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// waitTimers polls (real time, with a deadline) until at least n timers
// are pending: the loop has reached a wait.
func (c *fakeClock) waitTimers(t *testing.T, n int) {
	t.Helper()
	eventually(t, "pending timers", func() bool { return c.pending() >= n })
}

// runUntil steps the clock to each wait of the loop (its backoff sleeps)
// while cond does not hold: the waits pass at once, in order, and the
// test sees every step. Idle watchdogs (AfterFunc) are not stepped to;
// they fire only when a step passes them. It fails the test after a
// real-time deadline.
func (c *fakeClock) runUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		if d, ok := c.nextWait(); ok {
			c.Step(d)
			continue
		}
		time.Sleep(time.Millisecond) // poll: the loop is working
	}
}
