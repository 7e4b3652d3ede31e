#!/usr/bin/env bash
# deploy/image.sh: build kdisc's container image from scratch, offline, and
# check it. One command:
#
#   deploy/image.sh                      # builds localhost/kdisc:VERSION
#   IMAGE=registry.example.com/infra/kdisc:0.1.0 deploy/image.sh
#
# The image holds only:
#   /kdisc                             the static binary (deploy/build.sh)
#   /etc/ssl/certs/ca-certificates.crt Debian's CA bundle, for a kubeconfig
#                                      cluster outside the pod
#   /etc/passwd, /etc/group            root and kdisc (uid/gid 65532)
# with ENTRYPOINT ["/kdisc"], USER 65532:65532 and OCI labels (source,
# revision, version, created) plus the Go toolchain and the CA bundle's
# version. It is reproducible: the same commit, Go toolchain, CA bundle and
# buildah give the same digest (every time stamp is the commit's time,
# SOURCE_DATE_EPOCH, unless set).
#
# Needs root (buildah's storage in /var/lib/containers); installs Debian's
# buildah and podman with apt-get when missing (the .debs are kept in
# ~/.cache/kdisc/apt). No registry is contacted. At the end it prints the
# image's name, ID and digest, and checks its config with buildah inspect
# (buildah run would ignore ENTRYPOINT and USER). Push it with
#   podman push IMAGE docker://REGISTRY/kdisc:VERSION
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

need=()
command -v buildah >/dev/null || need+=(buildah)
command -v podman >/dev/null || need+=(podman)
[[ -f /etc/ssl/certs/ca-certificates.crt ]] || need+=(ca-certificates)
if ((${#need[@]})); then
	cache=${KDISC_CACHE:-${HOME:-/tmp}/.cache/kdisc}/apt
	mkdir -p "$cache/partial"
	echo "image.sh: installing ${need[*]} (apt-get; .debs kept in $cache)" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q -o Dir::Cache::Archives="$cache" "${need[@]}" >&2 ||
		{ apt-get update -q >&2 && apt-get install -y -q -o Dir::Cache::Archives="$cache" "${need[@]}" >&2; }
fi

tmp=$(mktemp -d)
ctr=
cleanup() {
	[[ -n $ctr ]] && buildah rm "$ctr" >/dev/null 2>&1
	rm -rf "$tmp"
}
trap cleanup EXIT

# The binary, and what it says about itself: kdisc vVERSION goX REVISION.
deploy/build.sh "$tmp/kdisc"
read -r _ modversion goversion revision < <("$tmp/kdisc" version)
version=${modversion#v}
IMAGE=${IMAGE:-localhost/kdisc:$version}
source_url=${SOURCE_URL:-https://github.com/kdisc/kdisc}
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
cabundle=$(dpkg-query -W -f='${Version}' ca-certificates 2>/dev/null || echo unknown)
if [[ $revision == *-dirty ]]; then
	echo "image.sh: building from a checkout with local changes ($revision): not reproducible from the commit" >&2
fi

cp /etc/ssl/certs/ca-certificates.crt "$tmp/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nkdisc:x:65532:65532:kdisc:/:/sbin/nologin\n' >"$tmp/passwd"
printf 'root:x:0:\nkdisc:x:65532:\n' >"$tmp/group"
touch -d "@$epoch" "$tmp"/*

ctr=$(buildah from scratch)
buildah copy --quiet --chown 0:0 --chmod 0555 "$ctr" "$tmp/kdisc" /kdisc
buildah copy --quiet --chown 0:0 --chmod 0444 "$ctr" "$tmp/ca-certificates.crt" /etc/ssl/certs/ca-certificates.crt
buildah copy --quiet --chown 0:0 --chmod 0444 "$ctr" "$tmp/passwd" /etc/passwd
buildah copy --quiet --chown 0:0 --chmod 0444 "$ctr" "$tmp/group" /etc/group
buildah config \
	--os linux --arch "$(go env GOARCH)" \
	--entrypoint '["/kdisc"]' --cmd '' \
	--user 65532:65532 --workingdir / \
	--label org.opencontainers.image.title=kdisc \
	--label org.opencontainers.image.description="Kubernetes service discovery for proxies and gateways" \
	--label org.opencontainers.image.source="$source_url" \
	--label org.opencontainers.image.revision="$revision" \
	--label org.opencontainers.image.version="$version" \
	--label org.opencontainers.image.created="$created" \
	--label io.kdisc.go.version="$goversion" \
	--label io.kdisc.ca-certificates.version="debian $cabundle" \
	"$ctr"
buildah commit --quiet --omit-history --identity-label=false --timestamp "$epoch" "$ctr" "$IMAGE" >/dev/null
buildah rm "$ctr" >/dev/null
ctr=

# Check what buildah run cannot show: the config a runtime will use.
inspect() { buildah inspect --type image --format "$1" "$IMAGE"; }
fail() {
	echo "image.sh: $IMAGE: $*" >&2
	exit 1
}
[[ $(inspect '{{.OCIv1.Config.Entrypoint}} {{.OCIv1.Config.Cmd}}') == '[/kdisc] []' ]] ||
	fail "entrypoint and cmd are $(inspect '{{.OCIv1.Config.Entrypoint}} {{.OCIv1.Config.Cmd}}'), want [/kdisc] []"
[[ $(inspect '{{.OCIv1.Config.User}}') == 65532:65532 ]] || fail "user is $(inspect '{{.OCIv1.Config.User}}'), want 65532:65532"
for kv in "org.opencontainers.image.revision=$revision" "org.opencontainers.image.version=$version" \
	"org.opencontainers.image.source=$source_url" "io.kdisc.go.version=$goversion" \
	"io.kdisc.ca-certificates.version=debian $cabundle"; do
	got=$(inspect "{{index .OCIv1.Config.Labels \"${kv%%=*}\"}}")
	[[ $got == "${kv#*=}" ]] || fail "label ${kv%%=*} is '$got', want '${kv#*=}'"
done

id=$(inspect '{{.FromImageID}}')
digest=$(inspect '{{.FromImageDigest}}')
echo "image:    $IMAGE"
echo "id:       $id"
echo "digest:   $digest"
echo "kdisc:    $modversion $goversion $revision"
echo "labels:   version=$version revision=$revision go=$goversion ca-certificates=debian $cabundle created=$created"
echo "config:   entrypoint [\"/kdisc\"], user 65532:65532 (checked)"
