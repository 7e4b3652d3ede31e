package listwatch

import (
	"math/rand/v2"
	"time"
)

// backoff waits exponentially longer after each failure, from min to max,
// with full jitter in the upper half so that many kdisc processes restarted
// together do not retry in lockstep.
type backoff struct {
	min, max time.Duration
	next     time.Duration
}

func (b *backoff) reset() { b.next = 0 }

// maxRetryAfter bounds a server's Retry-After, so that kdisc still
// converges within 30 s of the apiserver becoming reachable again.
const maxRetryAfter = 30 * time.Second

// delay returns how long to wait now: the next backoff step, or the
// server's Retry-After when that is longer.
func (b *backoff) delay(retryAfter time.Duration) time.Duration {
	if b.next == 0 {
		b.next = b.min
	}
	d := b.next/2 + rand.N(b.next/2+1)
	b.next = min(2*b.next, b.max)
	return max(d, min(retryAfter, maxRetryAfter))
}
