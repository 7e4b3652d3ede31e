#!/usr/bin/env bash
# deploy/build.sh [OUT]: build kdisc as it ships, into OUT (default ./kdisc):
# static (CGO_ENABLED=0: no libc, Go's own DNS resolver), -trimpath (no
# build paths in the binary, so the same commit and toolchain give the same
# bytes), stripped, and with the commit it was built from, which
# `kdisc version` prints (-dirty when tracked files have local changes).
# Go cannot stamp the commit itself in a git worktree or with
# -buildvcs=false, so it is passed with -X. The image (deploy/image.sh), the
# quick start and the benchmarks build kdisc with this script.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:-kdisc}")
cd "$root"
rev=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [[ $rev != unknown ]] && [[ -n $(git status --porcelain --untracked-files=no) ]]; then
	rev+=-dirty
fi
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.revision=$rev" -o "$out" ./cmd/kdisc
