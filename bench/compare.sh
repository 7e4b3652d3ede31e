#!/usr/bin/env bash
# bench/compare.sh: kdisc against a client-go informer, as separate
# processes over loopback HTTP against the same replay apiserver
# (internal/replay). It measures start → ready, start → sentinel visible
# and peak RSS, and prints a table of medians and ratios (kdisc / client-go)
# with the issue's targets. See bench/README.md.
#
#   bench/compare.sh                    # everything: 2 sizes x 2 resources x 3 runs each side
#   RUNS=5 bench/compare.sh
#   SIZES="2000:20000" RESOURCES=endpoints RUNS=1 bench/compare.sh   # a quick check
#
# Environment: RUNS (default 3), SIZES ("services:events ...", default
# "10000:100000 50000:200000"), RESOURCES (default "endpoints
# endpointslices"), OUT (folder for binaries, logs and results.tsv; default
# a new temporary folder, kept). Needs Go; the client-go module is fetched
# through the Go module proxy on first use.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-3}
SIZES=${SIZES:-"10000:100000 50000:200000"}
RESOURCES=${RESOURCES:-"endpoints endpointslices"}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/kdisc-compare.XXXXXX")}
mkdir -p "$OUT/bin" "$OUT/logs"
shmroot=/dev/shm
[ -d "$shmroot" ] || shmroot=${TMPDIR:-/tmp}

log() { printf '%s\n' "$*" >&2; }

log "== building into $OUT/bin"
# Both clients are built as kdisc ships (deploy/build.sh, the binary of the
# image): CGO_ENABLED=0, a static binary that maps no libc.
export CGO_ENABLED=0
(cd "$root" && deploy/build.sh "$OUT/bin/kdisc" \
	&& go build -o "$OUT/bin/replay" ./internal/replay/cmd/replay \
	&& go build -o "$OUT/bin/benchrun" ./internal/replay/cmd/benchrun)
(cd "$root/bench/clientgo" && go build -o "$OUT/bin/informer" ./cmd/informer)

replay_pid=
cleanup() { [ -n "$replay_pid" ] && kill "$replay_pid" 2>/dev/null && wait "$replay_pid" 2>/dev/null; return 0; }
trap cleanup EXIT

results=$OUT/results.tsv
printf '# services\tevents\tresource\tside\trun\tready_ms\tsentinel_ms\tpeak_rss_kb\tcpu_ms\n' >"$results"

# tsv turns benchrun's JSON line into the fields after "run".
tsv() { sed -E 's/.*"ready_ms":([0-9.]+),"sentinel_ms":([0-9.]+),"peak_rss_kb":([0-9]+),"cpu_ms":([0-9.]+).*/\1\t\2\t\3\t\4/'; }

run_kdisc() { # services events resource run port
	local cfg="$OUT/kdisc-$3.yaml" dir line
	local mb=$((($1 * 400 + 1048575) / 1048576))
	[ "$mb" -lt 4 ] && mb=4
	local slices=false
	[ "$3" = endpointslices ] && slices=true
	cat >"$cfg" <<EOF
discovery:
  kubernetes:
    service: {schema: http, host: 127.0.0.1, port: $5}
    client: {token: bench}
    shared_size: ${mb}m
    watch_endpoint_slices: $slices
EOF
	dir=$(mktemp -d "$shmroot/kdisc-compare.XXXXXX")
	local logf="$OUT/logs/kdisc-$1-$3-$4.log"
	line=$("$OUT/bin/benchrun" measure -config "$cfg" -shm-dir "$dir" -- \
		"$OUT/bin/kdisc" run -config "$cfg" -shm-dir "$dir" -control 127.0.0.1:0 2>"$logf")
	rm -rf "$dir"
	if grep -q shared_size "$logf"; then
		log "kdisc: table too small, see $logf"
		exit 1
	fi
	printf '%s\t%s\t%s\tkdisc\t%s\t%s\n' "$1" "$2" "$3" "$4" "$(tsv <<<"$line")" >>"$results"
	log "   kdisc     $line"
}

run_clientgo() { # services events resource run url
	local line
	line=$("$OUT/bin/benchrun" measure -- "$OUT/bin/informer" -url "$5" -resource "$3" 2>"$OUT/logs/client-go-$1-$3-$4.log")
	printf '%s\t%s\t%s\tclient-go\t%s\t%s\n' "$1" "$2" "$3" "$4" "$(tsv <<<"$line")" >>"$results"
	log "   client-go $line"
}

log "== load before: $(uptime)"
for size in $SIZES; do
	services=${size%%:*} events=${size##*:}
	for resource in $RESOURCES; do
		log "== $services services, $events events, $resource"
		: >"$OUT/url"
		"$OUT/bin/replay" -services "$services" -events "$events" -resource "$resource" \
			>"$OUT/url" 2>"$OUT/logs/replay-$services-$resource.log" &
		replay_pid=$!
		for _ in $(seq 600); do [ -s "$OUT/url" ] && break; sleep 0.1; done
		url=$(head -n1 "$OUT/url")
		[ -n "$url" ] || { log "replay did not start; see $OUT/logs"; exit 1; }
		port=${url##*:}
		for run in $(seq "$RUNS"); do
			# Alternate which side goes first.
			if [ $((run % 2)) -eq 1 ]; then
				run_kdisc "$services" "$events" "$resource" "$run" "$port"
				run_clientgo "$services" "$events" "$resource" "$run" "$url"
			else
				run_clientgo "$services" "$events" "$resource" "$run" "$url"
				run_kdisc "$services" "$events" "$resource" "$run" "$port"
			fi
		done
		kill "$replay_pid"
		wait "$replay_pid" 2>/dev/null || true
		replay_pid=
	done
done
log "== load after: $(uptime)"

{
	echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(go version | cut -d' ' -f3-)"
	echo "kdisc: $(cd "$root" && git describe --always --dirty 2>/dev/null || echo unknown)"
	echo
	"$OUT/bin/benchrun" report "$results"
} | tee "$OUT/report.md"
log "== results: $results, report: $OUT/report.md, logs: $OUT/logs"
