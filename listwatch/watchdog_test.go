package listwatch

import (
	"sync/atomic"
	"testing"
	"time"
)

// The watchdog measures silence from the last kick, though an event does
// not reset its timer: the timer that fires first finds the watch heard
// from within idle and waits out the rest; only idle of silence ends it.
func TestWatchdogMeasuresSilenceFromTheLastEvent(t *testing.T) {
	clock := newFakeClock()
	var ended atomic.Int32
	const idle = 10 * time.Second
	dog := startWatchdog(clock, idle, clock.Now(), func() { ended.Add(1) })
	defer dog.stop()

	clock.Step(6 * time.Second)
	dog.kick(clock.Now()) // heard from at 6 s: silent until 16 s is fine
	clock.Step(4 * time.Second)
	// 10 s: the first timer fired and re-armed itself for the 6 s left.
	eventually(t, "the timer re-armed for the rest", func() bool {
		d, ok := clock.nextAfterFunc()
		return ok && d == 6*time.Second
	})
	if dog.idled() || ended.Load() != 0 {
		t.Fatal("watchdog fired 4 s after an event (idle is 10 s)")
	}
	clock.Step(6*time.Second - time.Nanosecond)
	if dog.idled() {
		t.Fatal("watchdog fired before idle of silence")
	}
	clock.Step(time.Nanosecond)
	eventually(t, "the watchdog to fire", func() bool { return ended.Load() == 1 })
	if !dog.idled() {
		t.Fatal("idled() false after firing")
	}
}

// A stopped watchdog never calls onIdle, even when its timer is due.
func TestWatchdogStoppedNeverFires(t *testing.T) {
	clock := newFakeClock()
	var ended atomic.Int32
	dog := startWatchdog(clock, time.Second, clock.Now(), func() { ended.Add(1) })
	dog.stop()
	clock.Step(time.Hour)
	if clock.pending() != 0 || ended.Load() != 0 || dog.idled() {
		t.Fatalf("stopped watchdog: %d timers pending, onIdle called %d times", clock.pending(), ended.Load())
	}
}
