package listwatch

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestBackoffGrowsJittersAndCaps(t *testing.T) {
	b := backoff{min: 500 * time.Millisecond, max: 30 * time.Second}
	step := b.min
	for i := 0; i < 12; i++ {
		d := b.delay(0)
		assert.GreaterOrEqual(t, d, step/2, "attempt %d", i)
		assert.LessOrEqual(t, d, step, "attempt %d", i)
		step = min(2*step, b.max)
	}
	assert.LessOrEqual(t, b.delay(0), 30*time.Second, "capped at 30 s")
	b.reset()
	assert.LessOrEqual(t, b.delay(0), 500*time.Millisecond, "reset starts over")
}

func TestBackoffRetryAfter(t *testing.T) {
	b := backoff{min: 10 * time.Millisecond, max: 100 * time.Millisecond}
	assert.Equal(t, 2*time.Second, b.delay(2*time.Second), "Retry-After longer than the backoff wins")
	assert.Equal(t, 30*time.Second, b.delay(time.Hour), "but never more than 30 s")
}
