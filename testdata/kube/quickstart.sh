#!/usr/bin/env bash
# The README's first command: run kdisc for real on a machine with no
# cluster. Builds (once, ~12 min on 2 cores; cached in ~/.cache/kdisc) a
# real kube-apiserver and etcd, starts them on 127.0.0.1, creates example
# services in namespace demo, runs `kdisc run` with least-privilege
# credentials, shows `kdisc nodes` and the dump, and keeps running until
# Ctrl-C.
#
#   testdata/kube/quickstart.sh            start everything
#   testdata/kube/quickstart.sh scale N    (another terminal) set demo/web to N addresses
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
bin="${KDISC_CACHE:-${HOME:-/tmp}/.cache/kdisc}/quickstart/bin"
mkdir -p "$bin"
if [[ "${1:-}" != "scale" ]]; then
	bash testdata/kube/build.sh >/dev/null
fi
deploy/build.sh "$bin/kdisc" # static, as shipped, with its version
go build -o "$bin/quickstart" ./internal/kubetest/cmd/quickstart
exec "$bin/quickstart" -kdisc "$bin/kdisc" "$@"
