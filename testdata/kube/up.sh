#!/usr/bin/env bash
# Starts a real kube-apiserver + etcd on loopback for humans (quick start,
# manual testing), building them on first use (~12 min cold). Ctrl-C stops
# them cleanly. Flags are passed to internal/kubetest/cmd/kube-up:
#   -env-file FILE   write KDISC_KUBE_URL, KUBERNETES_SERVICE_HOST/PORT,
#                    KDISC_KUBE_CA_FILE, KDISC_KUBE_TOKEN_FILE ... once ready
#   -second          also start a second apiserver (multi-cluster)
#   -keep            keep the cluster folder after stopping
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
# Build the binaries first so their progress is visible before anything else.
bash testdata/kube/build.sh >/dev/null
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/kube-up" ./internal/kubetest/cmd/kube-up
"$tmp/kube-up" "$@"
