package kdisc_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/kdisc/kdisc"
	"github.com/kdisc/kdisc/config"
)

// A stand-in for the Kubernetes API server: one Endpoints object, served
// as a LIST or as a streaming list (a WATCH with sendInitialEvents: an
// ADDED event per object, then a bookmark marking their end, as
// kube-apiserver v1.37 does), and a WATCH that stays open with nothing to
// say.
const platDev = `{"metadata":{"namespace":"default","name":"plat-dev","resourceVersion":"7"},
  "subsets":[{"addresses":[{"ip":"10.5.10.110"},{"ip":"10.5.10.109"}],"ports":[{"name":"port","port":3306}]}]}`

const (
	endpointsList = `{"kind":"EndpointsList","apiVersion":"v1","metadata":{"resourceVersion":"7"},"items":[` + platDev + `]}`
	initialEvents = `{"type":"ADDED","object":` + platDev + "}\n" +
		`{"type":"BOOKMARK","object":{"kind":"Endpoints","apiVersion":"v1","metadata":{"resourceVersion":"7","annotations":{"k8s.io/initial-events-end":"true"}}}}` + "\n"
)

// serveStandIn answers a LIST, or opens a WATCH (with the initial events
// when asked for); it reports whether it opened a watch.
func serveStandIn(w http.ResponseWriter, r *http.Request) (watching bool) {
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Query().Get("watch") == "" {
		fmt.Fprint(w, endpointsList)
		return false
	}
	if r.URL.Query().Get("sendInitialEvents") == "true" {
		fmt.Fprint(w, initialEvents)
	}
	w.(http.Flusher).Flush()
	return true
}

func apiserver(w http.ResponseWriter, r *http.Request) {
	if serveStandIn(w, r) {
		<-r.Context().Done()
	}
}

func Example() {
	api := httptest.NewServer(http.HandlerFunc(apiserver))
	defer api.Close()

	cfg, err := config.Parse(fmt.Appendf(nil, `
discovery:
  kubernetes:
    service: {schema: http, host: 127.0.0.1, port: %d}
    client: {token: my-service-account-token}
    default_weight: 50
`, api.Listener.Addr().(*net.TCPAddr).Port))
	if err != nil {
		panic(err)
	}

	d, err := kdisc.Start(context.Background(), cfg, kdisc.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		panic(err)
	}
	defer d.Close()
	for deadline := time.Now().Add(10 * time.Second); !d.Ready() && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}

	buf := make([]kdisc.Node, 0, 16) // reused: Nodes does not allocate when it fits
	nodes, ok := d.Nodes(buf[:0], "default/plat-dev:port")
	fmt.Println(ok)
	for _, n := range nodes {
		fmt.Println(n.Host(), n.Port, n.Weight)
	}
	_, ok = d.Nodes(buf[:0], "default/plat-dev:http")
	fmt.Println(ok)
	// Output:
	// true
	// 10.5.10.109 3306 50
	// 10.5.10.110 3306 50
	// false
}

// startExample starts discovery against a stand-in apiserver whose watch
// sends one change, plat-dev gaining an address, when change is closed.
func startExample(shmDir string, change <-chan struct{}) (*kdisc.Discovery, func()) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !serveStandIn(w, r) {
			return
		}
		select {
		case <-change:
			fmt.Fprint(w, `{"type":"MODIFIED","object":{"metadata":{"namespace":"default","name":"plat-dev","resourceVersion":"8"},`+
				`"subsets":[{"addresses":[{"ip":"10.5.10.110"},{"ip":"10.5.10.109"},{"ip":"10.5.10.111"}],"ports":[{"name":"port","port":3306}]}]}}`+"\n")
			w.(http.Flusher).Flush()
		case <-r.Context().Done():
		}
		<-r.Context().Done()
	}))
	cfg, err := config.Parse(fmt.Appendf(nil, "discovery:\n  kubernetes:\n    service: {schema: http, host: 127.0.0.1, port: %d}\n    client: {token: t}\n",
		api.Listener.Addr().(*net.TCPAddr).Port))
	if err != nil {
		panic(err)
	}
	opts := []kdisc.Option{kdisc.WithLogger(slog.New(slog.DiscardHandler))}
	if shmDir != "" {
		opts = append(opts, kdisc.WithShmDir(shmDir))
	}
	d, err := kdisc.Start(context.Background(), cfg, opts...)
	if err != nil {
		panic(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !d.Ready() && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	return d, func() { d.Close(); api.Close() }
}

// A proxy learns which service changed and rebuilds only its balancer.
func ExampleDiscovery_OnChange() {
	change := make(chan struct{})
	d, done := startExample("", change)
	defer done()

	changed := make(chan string, 1)
	stop := d.OnChange(func(service string) { changed <- service })
	defer stop()

	close(change) // the apiserver reports a new address
	service := <-changed
	nodes, _ := d.Nodes(nil, service+":port")
	fmt.Println(service, len(nodes))
	// Output:
	// default/plat-dev 3
}

// Lookup says why nothing was found, so a proxy can answer 404 or 503.
func ExampleDiscovery_Lookup() {
	d, done := startExample("", nil)
	defer done()

	for _, service := range []string{"default/plat-dev:port", "default/plat-dev:3306", "default/nope:port"} {
		nodes, answer := d.Lookup(nil, service)
		fmt.Println(service, answer, len(nodes))
	}
	// Output:
	// default/plat-dev:port found 2
	// default/plat-dev:3306 found 2
	// default/nope:port unknown 0
}

// Another process (here the same one, for the example) reads the tables
// that kdisc run keeps, without talking to the apiserver.
func ExampleAttach() {
	dir, err := os.MkdirTemp("", "kdisc-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	shmDir := filepath.Join(dir, "tables")
	_, done := startExample(shmDir, nil) // what `kdisc run -shm-dir DIR` does
	defer done()

	cfg, err := config.Parse([]byte("discovery:\n  kubernetes:\n    service: {host: 127.0.0.1, port: 6443}\n    client: {token: unused}\n"))
	if err != nil {
		panic(err)
	}
	r, err := kdisc.Attach(shmDir, cfg)
	if err != nil {
		panic(err)
	}
	defer r.Close()
	nodes, ok := r.Nodes(nil, "default/plat-dev:port")
	fmt.Println(ok, len(nodes), r.Ready())
	// Output:
	// true 2 true
}
