#!/usr/bin/env bash
# bench/compare.sh: kdisc against a client-go informer, as separate
# processes over loopback HTTP against the same replay apiserver
# (internal/replay, served by bench/clientgo/cmd/replay, which negotiates
# JSON or protobuf as kube-apiserver does). It measures start → ready,
# start → sentinel visible and peak RSS, and prints a table of medians and
# ratios (kdisc / client-go) with the issue's targets. See bench/README.md.
#
#   bench/compare.sh                    # everything: 2 sizes x 2 resources x 2 formats x 3 runs each side
#   RUNS=5 FORMATS=protobuf bench/compare.sh
#   SIZES="2000:20000" RESOURCES=endpoints RUNS=1 bench/compare.sh   # a quick check
#
# Environment: RUNS (default 3), SIZES ("services:events ...", default
# "10000:100000 50000:200000"), RESOURCES (default "endpoints
# endpointslices"), FORMATS (default "protobuf json": each side speaks it,
# kdisc with content_type, client-go with ContentType, as kube-proxy sets
# application/vnd.kubernetes.protobuf), OUT (folder for binaries, logs and
# results.tsv; default a new temporary folder, kept). Both sides use the
# streaming list (client-go's WatchListClient is on by default in v0.37).
# A kdisc that does not know content_type speaks JSON only: its protobuf
# rows are then left out (and said so). KDISC_BIN: a kdisc binary to
# measure instead of building this checkout's. Needs Go; the client-go module is
# fetched through the Go module proxy on first use.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-3}
SIZES=${SIZES:-"10000:100000 50000:200000"}
RESOURCES=${RESOURCES:-"endpoints endpointslices"}
FORMATS=${FORMATS:-"protobuf json"}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/kdisc-compare.XXXXXX")}
mkdir -p "$OUT/bin" "$OUT/logs"
shmroot=/dev/shm
[ -d "$shmroot" ] || shmroot=${TMPDIR:-/tmp}

log() { printf '%s\n' "$*" >&2; }

log "== building into $OUT/bin"
# Both clients are built as kdisc ships (deploy/build.sh, the binary of the
# image): CGO_ENABLED=0, a static binary that maps no libc.
export CGO_ENABLED=0
if [ -n "${KDISC_BIN:-}" ]; then
	cp "$KDISC_BIN" "$OUT/bin/kdisc"
else
	(cd "$root" && deploy/build.sh "$OUT/bin/kdisc")
fi
(cd "$root" && go build -o "$OUT/bin/benchrun" ./internal/replay/cmd/benchrun)
(cd "$root/bench/clientgo" && go build -o "$OUT/bin/informer" ./cmd/informer \
	&& go build -o "$OUT/bin/replay" ./cmd/replay)

# Does this kdisc know content_type? (Before it did, it spoke JSON only.)
printf 'discovery:\n  kubernetes:\n    service: {schema: http, host: 127.0.0.1, port: 1}\n    content_type: json\n' >"$OUT/ct.yaml"
kdisc_formats=json
"$OUT/bin/kdisc" check -config "$OUT/ct.yaml" >/dev/null 2>&1 && kdisc_formats="json protobuf"

replay_pid=
cleanup() { [ -n "$replay_pid" ] && kill "$replay_pid" 2>/dev/null && wait "$replay_pid" 2>/dev/null; return 0; }
trap cleanup EXIT

results=$OUT/results.tsv
printf '# services\tevents\tresource\tformat\tside\trun\tready_ms\tsentinel_ms\tpeak_rss_kb\tcpu_ms\n' >"$results"

# tsv turns benchrun's JSON line into the fields after "run".
tsv() { sed -E 's/.*"ready_ms":([0-9.]+),"sentinel_ms":([0-9.]+),"peak_rss_kb":([0-9]+),"cpu_ms":([0-9.]+).*/\1\t\2\t\3\t\4/'; }

run_kdisc() { # services events resource run port format
	local cfg="$OUT/kdisc-$3.yaml" dir line
	local mb=$((($1 * 400 + 1048575) / 1048576))
	[ "$mb" -lt 4 ] && mb=4
	local slices=false ct=
	[ "$3" = endpointslices ] && slices=true
	[ "$kdisc_formats" != json ] && ct="content_type: $6"
	cat >"$cfg" <<EOF
discovery:
  kubernetes:
    service: {schema: http, host: 127.0.0.1, port: $5}
    client: {token: bench}
    shared_size: ${mb}m
    watch_endpoint_slices: $slices
    $ct
EOF
	# benchrun reads the table with the config as this checkout knows it
	# (a KDISC_BIN from a newer branch may know more keys than it).
	grep -v content_type "$cfg" >"$cfg.own"
	dir=$(mktemp -d "$shmroot/kdisc-compare.XXXXXX")
	local logf="$OUT/logs/kdisc-$1-$3-$6-$4.log"
	line=$("$OUT/bin/benchrun" measure -config "$cfg.own" -shm-dir "$dir" -- \
		"$OUT/bin/kdisc" run -config "$cfg" -shm-dir "$dir" -control 127.0.0.1:0 2>"$logf")
	rm -rf "$dir"
	if grep -q shared_size "$logf"; then
		log "kdisc: table too small, see $logf"
		exit 1
	fi
	printf '%s\t%s\t%s\t%s\tkdisc\t%s\t%s\n' "$1" "$2" "$3" "$6" "$4" "$(tsv <<<"$line")" >>"$results"
	log "   kdisc     $line"
}

run_clientgo() { # services events resource run url format
	local line pb=
	[ "$6" = protobuf ] && pb=-protobuf
	line=$("$OUT/bin/benchrun" measure -- "$OUT/bin/informer" -url "$5" -resource "$3" $pb 2>"$OUT/logs/client-go-$1-$3-$6-$4.log")
	printf '%s\t%s\t%s\t%s\tclient-go\t%s\t%s\n' "$1" "$2" "$3" "$6" "$4" "$(tsv <<<"$line")" >>"$results"
	log "   client-go $line"
}

log "== load before: $(uptime)"
[ "$kdisc_formats" = json ] && log "== this kdisc speaks JSON only (no content_type): its protobuf rows are left out"
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
			for format in $FORMATS; do
				kd=run_kdisc
				[[ " $kdisc_formats " == *" $format "* ]] || kd=:
				# Alternate which side goes first.
				if [ $((run % 2)) -eq 1 ]; then
					$kd "$services" "$events" "$resource" "$run" "$port" "$format"
					run_clientgo "$services" "$events" "$resource" "$run" "$url" "$format"
				else
					run_clientgo "$services" "$events" "$resource" "$run" "$url" "$format"
					$kd "$services" "$events" "$resource" "$run" "$port" "$format"
				fi
			done
		done
		kill "$replay_pid"
		wait "$replay_pid" 2>/dev/null || true
		replay_pid=
	done
done
log "== load after: $(uptime)"

{
	echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(go version | cut -d' ' -f3-)"
	echo "kdisc: $("$OUT/bin/kdisc" version 2>/dev/null | head -1 || echo unknown)${KDISC_BIN:+ (KDISC_BIN=$KDISC_BIN)}; bench: $(cd "$root" && git describe --always --dirty 2>/dev/null || echo unknown)"
	echo
	"$OUT/bin/benchrun" report "$results"
} | tee "$OUT/report.md"
log "== results: $results, report: $OUT/report.md, logs: $OUT/logs"
