// Command replay is internal/replay's command serving protobuf as well as
// JSON (see replay.Main): the objects' protobuf comes from k8s.io/api's
// generated Marshal (package protoreplay). bench/compare.sh runs this one.
package main

import (
	"github.com/kdisc/kdisc/bench/clientgo/protoreplay"
	"github.com/kdisc/kdisc/internal/replay"
)

func main() { replay.Main(protoreplay.Marshal) }
