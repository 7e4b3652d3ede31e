#!/usr/bin/env bash
# Flake hunt, as CI's was found (issue 15): every test of the four
# packages 20 times under the race detector while two busy loops load the
# two cores. Usage: bench/flakes.sh [COUNT [PACKAGE...]] (default 20, and
# the four packages). The busy loops are killed on exit. Results:
# bench/flakes.md.
set -uo pipefail
cd "$(dirname "$0")/.."
count="${1:-20}"
shift || true
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(./listwatch ./shm ./cmd/kdisc .)
loops=()
for _ in 1 2; do
	(while :; do :; done) &
	loops+=($!)
done
trap 'kill "${loops[@]}" 2>/dev/null' EXIT INT TERM
log=$(mktemp "${TMPDIR:-/tmp}/flakes.XXXXXX")
echo "full output: $log"
uptime
go test -race -count="$count" -timeout 90m "${pkgs[@]}" >"$log" 2>&1
rc=$?
grep -E '^(--- FAIL|FAIL|ok|panic:)|^\s+\S+_test\.go:[0-9]+:' "$log"
uptime
exit "$rc"
