package kdisc_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/kdisc/kdisc"
	"github.com/kdisc/kdisc/config"
)

// A stand-in for the Kubernetes API server: one Endpoints object in the
// LIST, and a WATCH that stays open with nothing to say.
const endpointsList = `{"kind":"EndpointsList","apiVersion":"v1","metadata":{"resourceVersion":"7"},"items":[
 {"metadata":{"namespace":"default","name":"plat-dev","resourceVersion":"7"},
  "subsets":[{"addresses":[{"ip":"10.5.10.110"},{"ip":"10.5.10.109"}],"ports":[{"name":"port","port":3306}]}]}]}`

func apiserver(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Query().Get("watch") == "" {
		fmt.Fprint(w, endpointsList)
		return
	}
	w.(http.Flusher).Flush()
	<-r.Context().Done()
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
