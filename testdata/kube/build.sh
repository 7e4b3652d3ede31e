#!/usr/bin/env bash
# Builds a real kube-apiserver and etcd from the pinned nested modules in
# ./apiserver and ./etcd into a cache folder OUTSIDE the repository, keyed by
# version, and prints that folder on stdout (the only line written there).
#
#   KDISC_CACHE   cache root (default $HOME/.cache/kdisc)
#
# Binaries that already exist are reused. Concurrent runs wait for each other
# (flock on <folder>/.lock), and each binary is built into a temp file in the
# cache folder and renamed into place, so a half-written binary is never seen.
# Cold build on 2 cores: kube-apiserver ~10 min, etcd ~2 min; warm: instant.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

modver() { # modver DIR MODULE -> version required in DIR/go.mod
	awk -v m="$2" '$1 == m && $2 ~ /^v/ {print $2; exit} $1 == "require" && $2 == m {print $3; exit}' "$1/go.mod"
}
kube_version="$(modver "$here/apiserver" k8s.io/kubernetes)"
etcd_version="$(modver "$here/etcd" go.etcd.io/etcd/server/v3)"
if [[ -z "$kube_version" || -z "$etcd_version" ]]; then
	echo "build.sh: cannot read versions from $here/{apiserver,etcd}/go.mod" >&2
	exit 1
fi

root="${KDISC_CACHE:-${HOME:-/tmp}/.cache/kdisc}"
dir="$root/kube-${kube_version}-etcd-${etcd_version}"
mkdir -p "$dir"

# Serialise concurrent runs (e.g. several test packages at once) so the
# binaries are built once; without flock the temp+rename below still keeps
# racing runs safe, they just build twice.
if command -v flock >/dev/null 2>&1; then
	exec 9>"$dir/.lock"
	flock 9
fi

export GOWORK=off CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:-} -mod=readonly"

build() { # build NAME MODULE_DIR PACKAGE LDFLAGS
	local name="$1" moddir="$2" pkg="$3" ldflags="$4"
	if [[ -x "$dir/$name" ]]; then
		return 0
	fi
	local tmp start
	tmp="$(mktemp "$dir/.$name.XXXXXX")"
	start=$SECONDS
	echo "build.sh: building $name ($pkg) into $dir ..." >&2
	if ! (cd "$moddir" && go build -trimpath -ldflags "$ldflags" -o "$tmp" "$pkg") >&2; then
		rm -f "$tmp"
		echo "build.sh: building $name failed" >&2
		return 1
	fi
	chmod 0755 "$tmp"
	mv -f "$tmp" "$dir/$name"
	echo "build.sh: built $name in $((SECONDS - start))s" >&2
}

kminor="${kube_version#v1.}"
kminor="${kminor%%.*}"
vpkg=k8s.io/component-base/version
build kube-apiserver "$here/apiserver" k8s.io/kubernetes/cmd/kube-apiserver \
	"-s -w -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$kminor -X $vpkg.gitVersion=$kube_version -X $vpkg.gitTreeState=clean"
build etcd "$here/etcd" "github.com/kdisc/kdisc/testdata/kube/etcd" \
	"-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$etcd_version"

echo "$dir"
