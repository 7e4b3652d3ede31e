package kubetest

import (
	"context"
	"fmt"
	"sync"
)

// ForEach calls fn(ctx, i) for i in [0, n) on at most workers goroutines
// at once (a bounded pool: creating thousands of objects one by one is
// slow, all at once overloads the apiserver). It stops handing out work at
// the first error and returns it (with its index); ctx ending stops it too.
func ForEach(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) error {
	if workers < 1 {
		workers = 1
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan int)
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	for range min(workers, n) {
		wg.Go(func() {
			for i := range work {
				if err := fn(ctx, i); err != nil {
					once.Do(func() {
						firstErr = fmt.Errorf("kubetest: item %d: %w", i, err)
						cancel()
					})
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case work <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		// The caller's ctx ended (ours is only cancelled on an error).
		firstErr = ctx.Err()
	}
	return firstErr
}
