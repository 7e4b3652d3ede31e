#!/usr/bin/env bash
# bench/memory.sh: resident memory of the table mapping in kdisc run and
# in readers, after a number of watch events applied one by one.
#
# For each size it runs bench/soak (kdisc run against a fake apiserver
# that changes Endpoints at RATE events a second, and one soak reader
# process looking services up at random, as a proxy would), with the
# table on tmpfs. Once EVENTS events were generated it runs bench/memory,
# which looks up every service from a mapping of its own and reads the
# Rss of the table mapping of kdisc run, of the soak reader and of itself
# from /proc/PID/smaps. The table is sized as bench/compare.sh sizes it
# (400 bytes a service, at least 4 MiB).
#
#   bench/memory.sh                              # 10000:100000 and 50000:100000
#   SIZES="10000:100000" RATE=2000 bench/memory.sh
#   KDISC=/path/to/other/kdisc bench/memory.sh   # another build of kdisc run
#
# Prints one line per size.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
SIZES=${SIZES:-"10000:100000 50000:100000"}
RATE=${RATE:-2000}
OUT=$(mktemp -d "${TMPDIR:-/tmp}/kdisc-memory.XXXXXX")
shmroot=/dev/shm
[ -d "$shmroot" ] || shmroot=${TMPDIR:-/tmp}

export CGO_ENABLED=0
if [ -n "${KDISC:-}" ]; then cp "$KDISC" "$OUT/kdisc"; else (cd "$root" && go build -o "$OUT/kdisc" ./cmd/kdisc); fi
(cd "$root" && go build -o "$OUT/soak" ./bench/soak && go build -o "$OUT/memory" ./bench/memory)

soak_pid= dir=
cleanup() {
	[ -n "$soak_pid" ] && kill "$soak_pid" 2>/dev/null && wait "$soak_pid" 2>/dev/null
	[ -n "$dir" ] && rm -rf "$dir"
	soak_pid= dir=
	return 0
}
trap cleanup EXIT

for size in $SIZES; do
	services=${size%%:*} events=${size##*:}
	mb=$(((services * 400 + 1048575) / 1048576))
	[ "$mb" -lt 4 ] && mb=4
	dir=$(mktemp -d "$shmroot/kdisc-memory.XXXXXX")
	log=$OUT/soak-$services.log csv=$OUT/soak-$services.csv
	: >"$log" # before soak starts: the loops below must not read an older run's
	# Long enough for the events at RATE; stopped once measured.
	"$OUT/soak" -services "$services" -rate "$RATE" -readers 1 -sample 1s \
		-duration "$((events / RATE * 3 + 120))s" -shared-size "${mb}m" \
		-dir "$dir" -kdisc "$OUT/kdisc" -csv "$csv" >"$log" 2>&1 &
	soak_pid=$!
	# soak prints "kdisc run (pid N)", then a line a second: "Ns  events N ...".
	until kdisc_pid=$(sed -nE 's/^kdisc run \(pid ([0-9]+)\).*/\1/p' "$log") && [ -n "$kdisc_pid" ]; do
		kill -0 "$soak_pid" || { cat "$log" >&2; exit 1; }
		sleep 0.5
	done
	until [ "$(sed -nE 's/.*events +([0-9]+) .*/\1/p' "$log" | tail -1)" -ge "$events" ] 2>/dev/null; do
		kill -0 "$soak_pid" || { cat "$log" >&2; exit 1; }
		sleep 0.5
	done
	table=$dir/shm/kubernetes
	readers=$(pgrep -d, -f -- "-reader -table $table" || true)
	line=$("$OUT/memory" -table "$table" -pid "$kdisc_pid" -readers "$readers")
	# soak's last sample: kdisc's whole RSS (column 5), the table's bytes in use (8).
	sample=$(tail -1 "$csv")
	printf 'services=%s events>=%s rate=%s shared_size=%sm table_used_kb=%s kdisc_rss_kb=%s %s\n' "$services" "$events" "$RATE" "$mb" \
		"$(($(cut -d, -f8 <<<"$sample") / 1024))" "$(cut -d, -f5 <<<"$sample")" "$line"
	cleanup
done
rm -rf "$OUT"
