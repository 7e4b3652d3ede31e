package replay

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Main is the replay command (internal/replay/cmd/replay, and with enc
// bench/clientgo/cmd/replay, which also serves protobuf): it serves a
// replay apiserver on loopback until SIGINT or SIGTERM, for benchmarks that
// run kdisc and other clients as separate processes against one server.
//
//	replay -services 10000 -events 100000 [-resource endpoints|endpointslices] [-addr 127.0.0.1:0]
//
// Once every body is built and the port is open, it prints one line on
// stdout, the server's URL (http://127.0.0.1:PORT), and logs the sizes on
// stderr. On exit it logs the requests it served. enc, when not nil, turns
// objects into protobuf (see Protobuf); without it only JSON is served.
func Main(enc Protobuf) {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	services := flag.Int("services", 10000, "objects in the LIST (one per service)")
	events := flag.Int("events", 100000, "MODIFIED events replayed before the sentinel")
	addrs := flag.Int("addrs", 3, "addresses per object")
	resource := flag.String("resource", "endpoints", "endpoints or endpointslices")
	flag.Parse()
	if *resource != "endpoints" && *resource != "endpointslices" {
		fmt.Fprintln(os.Stderr, "replay: -resource must be endpoints or endpointslices")
		os.Exit(2)
	}
	begin := time.Now()
	s := New(Options{Services: *services, Events: *events, Addrs: *addrs, Slices: *resource == "endpointslices"})
	list, stream := s.Sizes()
	fmt.Fprintf(os.Stderr, "replay: %s: %d objects (%.1f MB), %d events + sentinel (%.1f MB), built in %v\n",
		s.Path(), *services, float64(list)/1e6, *events, float64(stream)/1e6, time.Since(begin).Round(time.Millisecond))
	if enc != nil {
		begin = time.Now()
		if err := s.WithProtobuf(enc); err != nil {
			fmt.Fprintln(os.Stderr, "replay:", err)
			os.Exit(1)
		}
		list, stream = s.ProtobufSizes()
		fmt.Fprintf(os.Stderr, "replay: protobuf: list items %.1f MB, events + sentinel %.1f MB, built in %v\n",
			float64(list)/1e6, float64(stream)/1e6, time.Since(begin).Round(time.Millisecond))
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "replay:", err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("http://%s\n", ln.Addr())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	s.Close()
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
	lists, watches, streaming, pb := s.Stats()
	fmt.Fprintf(os.Stderr, "replay: served %d LIST pages, %d WATCHes, %d streaming lists; %d of them in protobuf\n", lists, watches, streaming, pb)
}
