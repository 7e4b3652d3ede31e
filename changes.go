package kdisc

import (
	"sync"
	"time"

	"github.com/kdisc/kdisc/shm"
)

// changePoll is how often OnChange looks at the tables' change counters:
// one atomic load per table when nothing changed.
const changePoll = 10 * time.Millisecond

// OnChange calls fn with the name of each service whose nodes changed
// ("namespace/name", or "id/namespace/name" with several clusters), so
// that a proxy can rebuild that service's balancer instead of polling
// every service. It works alike for Start and Attach: each table keeps a
// log of its last changes in its header, which a goroutine started here
// reads every 10 ms. fn runs on that goroutine, one call at a time; a
// service that changed several times between two looks is reported once.
// When a table changed more than its log holds, or was replaced (a new
// kdisc run with another shared_size), every service it holds or held is
// reported. Until OnChange is called, nothing runs and nothing is counted.
//
// The returned stop ends the notifications and waits until fn is no longer
// running.
func (d *Discovery) OnChange(fn func(service string)) (stop func()) {
	done, quit := make(chan struct{}), make(chan struct{})
	watches := make([]*changeWatch, len(d.clusters))
	for i, c := range d.clusters {
		watches[i] = newChangeWatch(c)
	}
	go func() {
		defer close(done)
		tick := time.NewTicker(changePoll)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
				for _, w := range watches {
					w.poll(fn)
				}
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(quit); <-done }) }
}

// changeWatch follows one table's change log and turns key hashes into
// service names.
type changeWatch struct {
	c      *cluster
	gen    uint64 // the writer run (and file) since counts in
	since  uint64
	names  map[uint64]string // every key seen, so deleted ones keep a name
	prefix string            // "id/" in multi mode
}

func newChangeWatch(c *cluster) *changeWatch {
	w := &changeWatch{c: c, names: map[uint64]string{}}
	if c.id != "" {
		w.prefix = c.id + "/"
	}
	w.gen = c.reader.Generation()
	w.since, _ = c.reader.Changes(0, nil)
	w.learnAll()
	return w
}

func (w *changeWatch) learnAll() {
	w.c.reader.Range(func(key string, _ []shm.Port) bool {
		w.names[shm.KeyHash(key)] = key
		return true
	})
}

func (w *changeWatch) poll(fn func(string)) {
	var hashes []uint64
	gen := w.c.reader.Generation()
	now, complete := w.c.reader.Changes(w.since, func(h uint64) { hashes = append(hashes, h) })
	if gen != w.gen || gen != w.c.reader.Generation() {
		complete = false // another file or writer run: its log counts anew
	}
	if now == w.since && complete {
		return
	}
	w.gen, w.since = gen, now
	seen := map[string]bool{}
	report := func(key string) {
		if !seen[key] {
			seen[key] = true
			fn(w.prefix + key)
		}
	}
	if !complete { // too many changes, or another file: anything may have changed
		old := w.names
		w.names = map[uint64]string{}
		w.learnAll()
		for _, k := range old {
			report(k)
		}
		for _, k := range w.names {
			report(k)
		}
		return
	}
	for _, h := range hashes {
		found := false
		w.c.reader.KeysWithHash(h, func(key string) {
			w.names[h] = key
			found = true
			report(key)
		})
		if k, ok := w.names[h]; ok && !found { // deleted
			delete(w.names, h)
			report(k)
		}
	}
}
