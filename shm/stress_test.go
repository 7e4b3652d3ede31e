package shm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Self-checking values: everything in the value of key k at version v is
// derived from v, and v%stressKeys == k, so a reader can tell a torn or
// misplaced value from any consistent one without knowing which version
// the writer is at.
const stressKeys = 64

// The first stressStable keys are never deleted, so their port p0 must
// always be found: a reader answering "not found" for them would be hiding
// an inconsistency rather than reporting it.
const stressStable = 8

func stressKey(k int) string { return "stress/svc-" + strconv.Itoa(k) }

func stressPorts(v uint32) int { return 1 + int(v%3) }

func stressNodes(v uint32, j int) int {
	if v%stressKeys%16 == 13 { // keys 13, 29, 45, 61: often a big value (heads and pieces)
		return 300 + int(v/7+uint32(j)*5)%300
	}
	if v/stressKeys%6 == 4 && stressPorts(v) == 1 { // IPv4, one port: 1 to 4 nodes fit an inline cell, 5 do not (a record slot)
		return 1 + int(v/7)%5
	}
	return 1 + int(v/7+uint32(j)*5)%29
}

// stressNode is node i of port j at version v; name is scratch space for
// the DNS name. Every node of a version has the same port and weight, so a
// version whose nodes are all of one family is stored in a fixed-width body
// (one in six versions each for IPv4 and IPv6), any other one node by
// node: torn reads hit every body format and Lookup's inline path.
// (The first versions are mixed: they are the largest, and fill the
// cross-process test's shard.)
func stressNode(v uint32, j, i int, name []byte) (Node, []byte) {
	n := Node{Port: uint16(v), Weight: v}
	kind := (int(v) + i + j) % 3
	switch v / stressKeys % 6 {
	case 4:
		kind = 0
	case 5:
		kind = 1
	}
	switch kind {
	case 0:
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], v)
		n.Addr = netip.AddrFrom4(a)
	case 1:
		a := [16]byte{0x20, 0x01, 0, 0, 0, 0, byte(j), byte(i)}
		binary.BigEndian.PutUint32(a[2:], v)
		n.Addr = netip.AddrFrom16(a)
	default:
		name = append(name[:0], 'n')
		name = strconv.AppendInt(name, int64(i), 10)
		name = append(name, "-p"...)
		name = strconv.AppendInt(name, int64(j), 10)
		name = append(name, ".v"...)
		name = strconv.AppendUint(name, uint64(v), 10)
		name = append(name, ".stress.example"...)
	}
	return n, name
}

func stressValue(v uint32) []Port {
	ports := make([]Port, stressPorts(v))
	for j := range ports {
		ports[j].Name = "p" + strconv.Itoa(j)
		for i := range stressNodes(v, j) {
			n, name := stressNode(v, j, i, nil)
			if len(name) > 0 {
				n.Name = string(name)
			}
			ports[j].Nodes = append(ports[j].Nodes, n)
		}
	}
	return ports
}

// checkStressPort verifies nodes as port j of key k; it returns the version.
func checkStressPort(k, j int, nodes []Node, scratch []byte) (uint32, error) {
	if len(nodes) == 0 {
		return 0, fmt.Errorf("key %d port %d: no nodes", k, j)
	}
	v := nodes[0].Weight
	if int(v%stressKeys) != k {
		return v, fmt.Errorf("key %d port %d: version %d belongs to key %d", k, j, v, v%stressKeys)
	}
	if want := stressNodes(v, j); len(nodes) != want {
		return v, fmt.Errorf("key %d port %d version %d: %d nodes, want %d", k, j, v, len(nodes), want)
	}
	for i, got := range nodes {
		want, name := stressNode(v, j, i, scratch)
		if got.Addr != want.Addr || got.Port != want.Port || got.Weight != want.Weight || got.Name != string(name) {
			return v, fmt.Errorf("key %d port %d version %d node %d: got %+v, want %+v %q", k, j, v, i, got, want, name)
		}
	}
	return v, nil
}

func checkStressValue(k int, ports []Port, scratch []byte) (uint32, error) {
	if len(ports) == 0 {
		return 0, fmt.Errorf("key %d: no ports", k)
	}
	v0, err := checkStressPort(k, 0, ports[0].Nodes, scratch)
	if err != nil {
		return v0, err
	}
	if len(ports) != stressPorts(v0) {
		return v0, fmt.Errorf("key %d version %d: %d ports, want %d", k, v0, len(ports), stressPorts(v0))
	}
	for j, p := range ports {
		if p.Name != "p"+strconv.Itoa(j) {
			return v0, fmt.Errorf("key %d version %d: port %d named %q", k, v0, j, p.Name)
		}
		v, err := checkStressPort(k, j, p.Nodes, scratch)
		if err != nil {
			return v, err
		}
		if v != v0 {
			return v, fmt.Errorf("key %d: port %d at version %d, port 0 at %d", k, j, v, v0)
		}
	}
	return v0, nil
}

// stressReads hammers r until stop, checking every value. It returns the
// first inconsistency.
type readCounts struct {
	reads, found, distinct atomic.Int64
	gaveUp                 atomic.Int64 // lookups that stopped waiting for the writer (NotReady)
}

func stressRead(r *Reader, stop func() bool, c *readCounts) error {
	seen := make(map[uint32]struct{})
	buf := make([]Node, 0, 64)
	var scratch []byte
	scratch = make([]byte, 0, 64)
	keys := make([]string, stressKeys)
	for k := range keys {
		keys[k] = stressKey(k)
	}
	for i := 0; !stop(); i++ {
		k := i % stressKeys
		var v uint32
		var err error
		var ok bool
		retries := r.Retries()
		if i%8 == 7 {
			var ports []Port
			ports, ok = r.Get(keys[k])
			if ok {
				v, err = checkStressValue(k, ports, scratch)
			}
		} else {
			j := i / stressKeys % 3
			buf, ok = r.Lookup(buf[:0], keys[k]+":p"+strconv.Itoa(j))
			if ok {
				v, err = checkStressPort(k, j, buf, scratch)
			}
		}
		if !ok && k < stressStable && (i%8 == 7 || i/stressKeys%3 == 0) {
			// A lookup gives up (NotReady, by design: a bounded wait)
			// when the writer stalls mid-change, as a loaded machine
			// deschedules it; that takes at least 32 retries. Not found
			// with fewer is a wrong answer.
			if r.Retries()-retries >= 32 {
				c.gaveUp.Add(1)
				continue
			}
			err = fmt.Errorf("key %d (never deleted) not found", k)
		}
		if err != nil {
			return err
		}
		c.reads.Add(1)
		if n := c.gaveUp.Load(); n > 10 && n*100 > c.reads.Load() {
			return fmt.Errorf("%d of %d lookups gave up waiting for the writer", n, c.reads.Load())
		}
		if ok {
			c.found.Add(1)
			if _, dup := seen[v]; !dup {
				seen[v] = struct{}{}
				c.distinct.Add(1)
			}
		}
	}
	return nil
}

// stressWrite churns the table: new versions of random keys (values of
// varying size, forcing compactions) and deletes. bigs counts the values
// stored as big values (heads and pieces), inlines those stored in their
// index cell.
func stressWrite(t *testing.T, w *Writer, done func(ops int) bool) (puts, deletes, bigs, inlines int) {
	next := make([]uint32, stressKeys)
	rnd := rand.New(rand.NewPCG(1, 2))
	for ops := 0; !done(ops); ops++ {
		k := rnd.IntN(stressKeys)
		if rnd.IntN(10) == 0 && k >= stressStable {
			w.Delete(stressKey(k))
			deletes++
			continue
		}
		next[k]++
		v := next[k]*stressKeys + uint32(k)
		err := w.Put(stressKey(k), stressValue(v))
		var full *FullError
		if !errors.As(err, &full) { // a full table keeps the old value: fine
			require.NoError(t, err)
		}
		if rec, _ := appendRecord(nil, stressKey(k), stressValue(v)); err == nil && uint64(len(rec)) > w.t.inlineMax() {
			bigs++
		}
		if _, ok := encodeCell(stressKey(k), stressValue(v)); err == nil && ok {
			inlines++
		}
		puts++
	}
	return puts, deletes, bigs, inlines
}

func TestStressInProcess(t *testing.T) {
	w, err := Create("", 256<<10)
	require.NoError(t, err)
	defer w.Close()
	for k := range stressKeys {
		require.NoError(t, w.Put(stressKey(k), stressValue(uint32(stressKeys+k))))
	}
	var stopped atomic.Bool
	var wg sync.WaitGroup
	counts := make([]readCounts, 2)
	errs := make([]error, len(counts))
	for g := range counts {
		r := w.Reader()
		defer r.Close()
		wg.Go(func() { errs[g] = stressRead(r, stopped.Load, &counts[g]) })
	}
	start := time.Now()
	puts, _, bigs, inlines := stressWrite(t, w, func(ops int) bool {
		if ops >= 2_000_000 || time.Since(start) > 10*time.Second {
			return true
		}
		return time.Since(start) > 200*time.Millisecond && ops > 2000 &&
			counts[0].found.Load() > 2000 && counts[1].found.Load() > 2000
	})
	stopped.Store(true)
	wg.Wait()
	assert.Positive(t, bigs, "big values were stored while read")
	assert.Positive(t, inlines, "values were stored in index cells while read")
	for g := range counts {
		require.NoError(t, errs[g])
		assert.Greater(t, counts[g].distinct.Load(), int64(50))
		t.Logf("reader %d: %d reads, %d found, %d versions, %d gave up; writer: %d puts (%d big, %d inline), %d compactions",
			g, counts[g].reads.Load(), counts[g].found.Load(), counts[g].distinct.Load(), counts[g].gaveUp.Load(), puts, bigs, inlines, w.Stats().Compactions)
	}
}

// TestHelperProcess is a reader process for TestStressCrossProcess; it does
// nothing in a normal run.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv("KDISC_SHM_STRESS_READER")
	if path == "" {
		return
	}
	r, err := Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println("kdisc-helper ready")
	var stopped atomic.Bool
	go func() { // the parent closes our stdin to stop us
		io.Copy(io.Discard, os.Stdin)
		stopped.Store(true)
	}()
	hard := time.Now().Add(60 * time.Second)
	var c readCounts
	report := func(what string) {
		fmt.Printf("kdisc-helper %s %d %d %d\n", what, c.reads.Load(), c.found.Load(), c.distinct.Load())
	}
	tick := time.NewTicker(20 * time.Millisecond)
	go func() {
		for range tick.C {
			report("progress")
		}
	}()
	err = stressRead(r, func() bool { return stopped.Load() || time.Now().After(hard) }, &c)
	tick.Stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "TORN READ:", err)
		report("torn")
		os.Exit(3)
	}
	report("done")
	os.Exit(0)
}

type helper struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	ready  chan struct{}
	counts readCounts
	final  chan [3]int64
	stderr strings.Builder
}

func startHelper(t *testing.T, path string) *helper {
	exe, err := os.Executable()
	require.NoError(t, err)
	h := &helper{ready: make(chan struct{}), final: make(chan [3]int64, 1)}
	h.cmd = exec.Command(exe, "-test.run=^TestHelperProcess$", "-test.count=1")
	h.cmd.Env = append(os.Environ(), "KDISC_SHM_STRESS_READER="+path)
	h.cmd.Stderr = &h.stderr
	h.stdin, err = h.cmd.StdinPipe()
	require.NoError(t, err)
	out, err := h.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, h.cmd.Start())
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 2 || f[0] != "kdisc-helper" {
				continue
			}
			if f[1] == "ready" {
				close(h.ready)
				continue
			}
			var n [3]int64
			for i := range n {
				if len(f) > 2+i {
					n[i], _ = strconv.ParseInt(f[2+i], 10, 64)
				}
			}
			h.counts.reads.Store(n[0])
			h.counts.found.Store(n[1])
			h.counts.distinct.Store(n[2])
			if f[1] != "progress" {
				h.final <- n
			}
		}
	}()
	return h
}

// TestStressCrossProcess runs reader processes (this test binary, re-run as
// TestHelperProcess) against a file table while this process churns it.
// The race detector cannot see the mapping, so this is what proves that
// readers never return a torn value.
func TestStressCrossProcess(t *testing.T) {
	path := tablePath(t)
	// Two 66 KiB shards, half of them live data: puts compact a shard
	// often (and sometimes find it full), rewriting bytes being read. Four
	// keys' values are often bigger than a quarter of the shard: stored as
	// heads and pieces (layout v5).
	w, err := Create(path, 136<<10) // header + two shards the stress values crowd
	require.NoError(t, err)
	defer w.Close()
	for k := range stressKeys {
		require.NoError(t, w.Put(stressKey(k), stressValue(uint32(stressKeys+k))))
	}
	helpers := []*helper{startHelper(t, path), startHelper(t, path)}
	defer func() {
		for _, h := range helpers {
			h.cmd.Process.Kill() // no-op once they exited
		}
	}()
	for _, h := range helpers {
		select {
		case <-h.ready:
		case <-time.After(30 * time.Second):
			t.Fatalf("reader process did not start: %s", h.stderr.String())
		}
	}

	// Churn for at least 600 ms, and until every reader has seen many
	// versions (the machine may be busy); give up after 20 s or 5M ops.
	const minFound, minDistinct = 5000, 200
	start := time.Now()
	puts, deletes, bigs, inlines := stressWrite(t, w, func(ops int) bool {
		if ops%256 != 0 {
			return false
		}
		if ops >= 5_000_000 || time.Since(start) > 20*time.Second {
			return true
		}
		if time.Since(start) < 600*time.Millisecond {
			return false
		}
		for _, h := range helpers {
			if h.counts.found.Load() < minFound || h.counts.distinct.Load() < minDistinct {
				return false
			}
		}
		return true
	})
	churn := time.Since(start)
	st := w.Stats()
	t.Logf("writer: %d puts (%d big, %d inline), %d deletes, %d compactions, %d full in %v", puts, bigs, inlines, deletes, st.Compactions, st.FullErrors, churn)
	assert.Positive(t, bigs, "big values were stored while read")
	assert.Positive(t, inlines, "values were stored in index cells while read")
	assert.Greater(t, st.Compactions, uint64(puts/50))

	for i, h := range helpers {
		h.stdin.Close()
		var n [3]int64
		select {
		case n = <-h.final:
		case <-time.After(30 * time.Second):
			t.Fatalf("reader %d did not stop", i)
		}
		err := h.cmd.Wait()
		require.NoError(t, err, "reader %d: %s", i, h.stderr.String())
		t.Logf("reader process %d: %d reads, %d found, %d distinct versions", i, n[0], n[1], n[2])
		assert.GreaterOrEqual(t, n[1], int64(minFound))
		assert.GreaterOrEqual(t, n[2], int64(minDistinct))
	}
}
