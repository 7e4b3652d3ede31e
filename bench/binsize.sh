#!/usr/bin/env bash
# bench/binsize.sh: the size of the kdisc binary as shipped (deploy/build.sh:
# static, stripped), and where the bytes go: symbol sizes of the unstripped
# binary (go tool nm -size) summed by package, as a Markdown table of the
# TOP (default 25) largest, the rest summed. Symbols without a package (type
# descriptors, go:* tables) are grouped under their prefix.
#
# It fails when the shipped binary is over MAX_BYTES (default 10 MiB): a
# guard against a dependency that drags in a lot, not a target to hand-tune
# code for. CI runs it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
TOP=${TOP:-25}
MAX_BYTES=${MAX_BYTES:-10485760}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$root"
deploy/build.sh "$tmp/kdisc-stripped"
CGO_ENABLED=0 go build -trimpath -o "$tmp/kdisc" ./cmd/kdisc
stripped=$(stat -c %s "$tmp/kdisc-stripped")
full=$(stat -c %s "$tmp/kdisc")
mib() { awk -v b="$1" 'BEGIN{printf "%.2f", b/1048576}'; }
echo "deploy/build.sh (CGO_ENABLED=0 go build -trimpath -ldflags='-s -w ...'): $stripped bytes ($(mib "$stripped") MiB; ceiling $(mib "$MAX_BYTES") MiB); unstripped $full bytes"
echo
# Only symbols stored in the file: below the start of .bss (BSS takes no
# bytes in the binary; crypto/internal/fips140/drbg.memory alone is 32 MiB).
bss=$(readelf -SW "$tmp/kdisc" | awk '$2==".bss"{print $4}')
go tool nm -size -sort size "$tmp/kdisc" | awk -v top="$TOP" -v bss="$bss" '
function pad(h) { while (length(h) < 16) h = "0" h; return tolower(h) }
function pkg(name,   s, n, parts, p, j, rest, d) {
	if (name ~ /^type:/) return "(type descriptors)"
	if (name ~ /^go:/) return "(go: tables)"
	s = name
	sub(/\[.*$/, "", s)            # generic instantiations
	n = split(s, parts, "/")
	rest = parts[n]
	p = ""
	for (j = 1; j < n; j++) p = p parts[j] "/"
	d = index(rest, ".")
	if (d > 0) rest = substr(rest, 1, d - 1)
	return p rest
}
NF >= 4 && $3 != "U" && $2 > 0 && pad($1) < pad(bss) {
	name = $0
	sub(/^ *[0-9a-f]+ +[0-9]+ +[A-Za-z] +/, "", name)
	size[pkg(name)] += $2; total += $2
}
END { for (p in size) printf "%d\t%s\n", size[p], p }' | sort -rn >"$tmp/pkgs"
total=$(awk -F'\t' '{s += $1} END {print s}' "$tmp/pkgs")
echo "| package | bytes | share |"
echo "| --- | ---: | ---: |"
head -n "$TOP" "$tmp/pkgs" | awk -F'\t' -v t="$total" '{printf "| %s | %d | %.1f%% |\n", $2, $1, 100*$1/t}'
tail -n +"$((TOP + 1))" "$tmp/pkgs" | awk -F'\t' -v t="$total" '{s+=$1; n++} END {printf "| (%d other packages) | %d | %.1f%% |\n", n, s, 100*s/t}'
echo "| **all symbols** | $total | 100% |"
echo
echo "kdisc's own packages (github.com/kdisc/kdisc/...):"
grep 'github.com/kdisc/' "$tmp/pkgs" | awk -F'\t' '{s+=$1; printf "  %-45s %8d\n", $2, $1} END {printf "  %-45s %8d\n", "(sum)", s}'
if ((stripped > MAX_BYTES)); then
	echo "binsize: the shipped binary is $stripped bytes, over the ceiling of $MAX_BYTES (MAX_BYTES): find what grew (the table above)" >&2
	exit 1
fi
