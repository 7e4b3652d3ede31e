package kdiscgrpc_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/kdisc/kdisc"
	"github.com/kdisc/kdisc/config"
	kdiscgrpc "github.com/kdisc/kdisc/contrib/grpc"
	"github.com/kdisc/kdisc/shm"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// The configuration `kdisc run -config` reads; Attach needs the same one
// to find its tables.
const kdiscConfig = `
discovery:
  kubernetes:
    service: {host: 10.96.0.1, port: 443}
    client: {token_file: /var/run/secrets/kubernetes.io/serviceaccount/token}
`

// A client beside `kdisc run` calls the Service default/echo on its port
// named grpc, spreading calls over its ready endpoints.
func Example() {
	shmDir, stop := kdiscRun() // stands in for `kdisc run -shm-dir DIR`
	defer stop()

	cfg, err := config.Parse([]byte(kdiscConfig))
	if err != nil {
		panic(err)
	}
	d, err := kdisc.Attach(shmDir, cfg)
	if err != nil {
		panic(err)
	}
	defer d.Close() // after the channels that use it

	conn, err := grpc.NewClient("kdisc:///default/echo:grpc",
		grpc.WithResolvers(kdiscgrpc.NewBuilder(d)),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		panic(err)
	}
	defer conn.Close()

	resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	fmt.Println(resp.GetStatus(), err)
	// Output:
	// SERVING <nil>
}

// kdiscRun starts a gRPC server on loopback and writes the table that
// `kdisc run` would keep for it: default/echo, port grpc, ready.
func kdiscRun() (shmDir string, stop func()) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(lis)

	dir, err := os.MkdirTemp("", "kdiscgrpc-example-")
	if err != nil {
		panic(err)
	}
	w, err := shm.Create(filepath.Join(dir, "kubernetes"), 1<<20)
	if err != nil {
		panic(err)
	}
	ap := netip.MustParseAddrPort(lis.Addr().String())
	nodes := []kdisc.Node{{Addr: ap.Addr(), Port: ap.Port(), Weight: 100}}
	if err := w.Put("default/echo", []shm.Port{{Name: "grpc", Nodes: nodes}}); err != nil {
		panic(err)
	}
	w.SetReady(true)
	return dir, func() { srv.Stop(); w.Close(); os.RemoveAll(dir) }
}
