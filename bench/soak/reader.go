package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync/atomic"
	"time"

	"github.com/kdisc/kdisc/shm"
)

// runReader is a reader process: it opens the table and looks up random
// services ("soak/svc-NNNNN:http", NNNNN < services) until its stdin closes, reporting its
// counts as a JSON line every second and once more at the end.
func runReader(table string, services int) int {
	r, err := shm.Open(table)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer r.Close()
	var stopped atomic.Bool
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		stopped.Store(true)
	}()
	// The generator's services: every name, whether or not it exists now.
	keys := make([]string, services)
	for i := range keys {
		keys[i] = "soak/" + svcName(i) + ":http"
	}
	var lookups, misses, slowest atomic.Int64
	report := func() {
		b, _ := json.Marshal(readerReport{Lookups: lookups.Load(), Misses: misses.Load(), SlowestNs: slowest.Load()})
		fmt.Println(string(b))
	}
	report()
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				report()
			case <-done:
				return
			}
		}
	}()
	rnd := rand.New(rand.NewPCG(uint64(os.Getpid()), 0))
	buf := make([]shm.Node, 0, 16)
	for !stopped.Load() {
		for range 256 {
			begin := time.Now()
			var ok bool
			buf, ok = r.Lookup(buf[:0], keys[rnd.IntN(len(keys))])
			if d := int64(time.Since(begin)); d > slowest.Load() {
				slowest.Store(d)
			}
			if !ok {
				misses.Add(1)
			}
		}
		lookups.Add(256)
	}
	close(done)
	report()
	return 0
}
