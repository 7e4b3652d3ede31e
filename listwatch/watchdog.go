package listwatch

import (
	"sync"
	"sync/atomic"
	"time"
)

// watchdog ends a watch that has been silent (no event, no bookmark) for
// idle: a dead connection or a stuck server, which TCP alone may never
// report.
//
// An event only records its time (kick: one atomic store). Resetting a
// timer per event instead takes a lock in the runtime's timer heap, about
// as much as decoding a small protobuf event's fields; so the timer is
// left to fire, and on firing looks at the time of the last event: still
// within idle of it, the timer is set again for what is left.
type watchdog struct {
	clock  Clock
	idle   time.Duration
	start  time.Time    // the watch's start: kicks are stored as time since it
	last   atomic.Int64 // time of the last kick, as a Duration since start
	onIdle func()

	mu      sync.Mutex // orders check against stop, and guards timer
	timer   Timer
	stopped bool
	fired   atomic.Bool
}

// startWatchdog arms a watchdog that calls onIdle (in its own goroutine)
// once nothing was kicked for idle since start.
func startWatchdog(clock Clock, idle time.Duration, start time.Time, onIdle func()) *watchdog {
	d := &watchdog{clock: clock, idle: idle, start: start, onIdle: onIdle}
	d.mu.Lock()
	d.timer = clock.AfterFunc(idle, d.check)
	d.mu.Unlock()
	return d
}

// kick records that the watch heard from the server at now.
func (d *watchdog) kick(now time.Time) { d.last.Store(int64(now.Sub(d.start))) }

// idled reports whether the watchdog ended the watch.
func (d *watchdog) idled() bool { return d.fired.Load() }

func (d *watchdog) check() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	silent := d.clock.Now().Sub(d.start) - time.Duration(d.last.Load())
	if silent < d.idle {
		d.timer.Reset(d.idle - silent)
		return
	}
	d.fired.Store(true)
	d.onIdle()
}

// stop disarms the watchdog; onIdle is not called after it returns.
func (d *watchdog) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopped = true
	d.timer.Stop()
}
