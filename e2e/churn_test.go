package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kdisc/kdisc/internal/kubetest"
)

// churn keeps changing the Endpoints svc-00..svc-NN of a namespace, as
// admin and straight to the apiserver (never through kdisc's proxy), every
// tick: mostly new addresses, sometimes a delete or a re-create. Writes
// that fail (apiserver down, etcd paused) are counted and given up after
// a short timeout; the apiserver's own state is the truth tests compare
// with, so churn keeps no model of it.
type churn struct {
	a       *kubetest.APIServer
	ns      string
	n       int
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	writes  atomic.Int64
	fails   atomic.Int64
	deletes atomic.Int64
}

func churnName(i int) string { return fmt.Sprintf("svc-%02d", i) }

func startChurn(a *kubetest.APIServer, ns string, n int, every time.Duration) *churn {
	ch := &churn{a: a, ns: ns, n: n, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(ch.done)
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ch.stop:
				return
			case <-tick.C:
			}
			ch.step(rng)
		}
	}()
	return ch
}

func (ch *churn) step(rng *rand.Rand) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	i := rng.IntN(ch.n)
	var err error
	if rng.IntN(10) == 0 {
		err = ch.a.DeleteEndpoints(ctx, ch.ns, churnName(i))
		if err == nil {
			ch.deletes.Add(1)
		}
	} else {
		addrs := make([]string, 1+rng.IntN(3))
		for k := range addrs {
			addrs[k] = fmt.Sprintf("10.77.%d.%d", i, 1+rng.IntN(250))
		}
		_, err = ch.a.ApplyEndpoints(ctx, ch.ns, churnName(i), kubetest.Subset(addrs, httpPort))
	}
	if err != nil {
		ch.fails.Add(1)
		return
	}
	ch.writes.Add(1)
}

// Stop ends the churn and waits for its last write to return.
func (ch *churn) Stop() {
	ch.once.Do(func() { close(ch.stop) })
	<-ch.done
}
