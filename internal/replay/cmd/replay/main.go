// Command replay serves a replay apiserver (package replay) on loopback in
// JSON; see replay.Main. bench/clientgo/cmd/replay is the same command
// serving protobuf too.
package main

import "github.com/kdisc/kdisc/internal/replay"

func main() { replay.Main(nil) }
