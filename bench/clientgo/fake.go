// Package clientgo measures kdisc side by side with a client-go informer,
// both over real HTTP on loopback against the same fake apiserver. See
// bench/clientgo.md.
package clientgo

import (
	"bytes"
	"fmt"
	"net/http"
	"sync/atomic"
	"syscall"
	"time"
)

// Marker is the service of the last watch event: once a client shows it,
// the client has applied every event before it.
const (
	MarkerNamespace = "bench"
	MarkerName      = "marker"
)

// endpoints writes one realistic Endpoints object (3 addresses with
// targetRefs, labels, an annotation, managedFields; about 1.2 KB), the same
// shape as listwatch/bench_test.go's watchStream. seed moves the addresses.
func endpoints(b *bytes.Buffer, ns, name string, rv, seed int) {
	fmt.Fprintf(b, `{"kind":"Endpoints","apiVersion":"v1","metadata":{"name":"%s","namespace":"%s","uid":"5d3c1a9e-0b7f-4f7e-9a51-%012d","resourceVersion":"%d","creationTimestamp":"2026-11-25T10:00:00Z","labels":{"app":"%s","app.kubernetes.io/managed-by":"helm"},"annotations":{"endpoints.kubernetes.io/last-change-trigger-time":"2026-11-25T10:00:00Z"},"managedFields":[{"manager":"kube-controller-manager","operation":"Update","apiVersion":"v1","time":"2026-11-25T10:00:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:annotations":{".":{},"f:endpoints.kubernetes.io/last-change-trigger-time":{}},"f:labels":{".":{},"f:app":{}}},"f:subsets":{}}}]},"subsets":[{"addresses":[`,
		name, ns, rv, rv, name)
	for a := range 3 {
		if a > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(b, `{"ip":"10.%d.%d.%d","nodeName":"node-%d","targetRef":{"kind":"Pod","namespace":"%s","name":"%s-7d9f8-%d","uid":"a1b2c3d4-0000-0000-0000-%012d"}}`,
			rv%250, seed%250, (seed+a)%250, a, ns, name, a, seed)
	}
	b.WriteString(`],"ports":[{"name":"http","port":8080,"protocol":"TCP"}]}]}`)
}

// Service returns the namespace and name of service i.
func Service(i int) (ns, name string) {
	return fmt.Sprintf("team-%d", i%10), fmt.Sprintf("service-%d", i)
}

// Fake is a stand-in for the apiserver's /api/v1/endpoints: a LIST of
// Services objects (resourceVersion 1..Services), then one WATCH that
// streams Events MODIFIED events round-robin over them and an ADDED event of
// the marker, as fast as the client reads, then stays open and silent.
// Later watches (none are expected) stay open and silent.
type Fake struct {
	list, watch []byte
	watched     atomic.Bool
	// WatchStart is set (UnixNano) when the first watch starts streaming;
	// OnWatch, when set, runs right before.
	WatchStart atomic.Int64
	OnWatch    func()
	quit       chan struct{}
}

// NewFake builds the LIST and WATCH bodies once, up front.
func NewFake(services, events int) *Fake {
	f := &Fake{quit: make(chan struct{})}
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"kind":"EndpointsList","apiVersion":"v1","metadata":{"resourceVersion":"%d"},"items":[`, services)
	for i := range services {
		if i > 0 {
			b.WriteByte(',')
		}
		ns, name := Service(i)
		endpoints(&b, ns, name, i+1, i)
	}
	b.WriteString("]}")
	f.list = offHeap(b.Bytes())
	b.Reset()
	for i := range events {
		ns, name := Service(i % services)
		b.WriteString(`{"type":"MODIFIED","object":`)
		endpoints(&b, ns, name, services+1+i, i)
		b.WriteString("}\n")
	}
	b.WriteString(`{"type":"ADDED","object":`)
	endpoints(&b, MarkerNamespace, MarkerName, services+events+1, 0)
	b.WriteString("}\n")
	f.watch = offHeap(b.Bytes())
	return f
}

// offHeap copies b to anonymous memory outside the Go heap, so that the
// fake's 25 MB of bodies neither count in the heap figures nor raise the
// GC's goal for the client under test. It is never unmapped.
func offHeap(b []byte) []byte {
	m, err := syscall.Mmap(-1, 0, len(b), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		panic(err)
	}
	copy(m, b)
	return m
}

// Again is a fresh Fake serving the same bodies.
func (f *Fake) Again() *Fake {
	return &Fake{list: f.list, watch: f.watch, quit: make(chan struct{})}
}

// WatchBytes is the size of the watch stream.
func (f *Fake) WatchBytes() int { return len(f.watch) }

// Close ends the open watches, so that the HTTP server can close.
func (f *Fake) Close() { close(f.quit) }

func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	switch {
	case r.URL.Path != "/api/v1/endpoints":
		http.NotFound(w, r)
	case q.Get("sendInitialEvents") != "":
		// Streaming lists are not served: client-go falls back to LIST.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"BadRequest","code":400}`)
	case q.Get("watch") == "":
		w.Header().Set("Content-Type", "application/json")
		w.Write(f.list)
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		if !f.watched.Swap(true) {
			if f.OnWatch != nil {
				f.OnWatch()
			}
			f.WatchStart.Store(time.Now().UnixNano())
			w.Write(f.watch)
			w.(http.Flusher).Flush()
		}
		select {
		case <-r.Context().Done():
		case <-f.quit:
		}
	}
}
