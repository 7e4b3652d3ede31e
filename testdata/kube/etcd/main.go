// Command etcd is a plain etcd server (go.etcd.io/etcd/server/v3/etcdmain)
// built from pinned sources for kdisc's end-to-end tests; see ../build.sh.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
