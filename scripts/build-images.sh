#!/usr/bin/env bash
# Builds Flotilla's two container images, flotilla-coord:VERSION and
# flotilla-swarmnode:VERSION (each also tagged latest), from statically
# linked binaries (CGO_ENABLED=0, -trimpath) on an empty base (FROM
# scratch: nothing is pulled). Each image holds its binary, the host's CA
# certificates (for HTTPS trackers), /etc/passwd and /etc/group naming the
# non-root user 65532 it runs as, and nothing else: no shell.
#
# VERSION is what `coord version` of the built binary prints (its "+" turned
# into "-", which image tags cannot hold). A binary without module or VCS
# version is stamped with -X main.version from git (commit, "-dirty").
#
# Usage: scripts/build-images.sh [--tar DIR] [--docker] [--max-mb N]
#   (no flag)  build with Docker (docker build), fails if Docker is missing
#   --tar DIR  write DIR/flotilla-coord.tar and DIR/flotilla-swarmnode.tar
#              without Docker: one-layer docker-archive tarballs made with
#              tar and sha256sum, that `docker load -i` and
#              `ctr -n k8s.io images import` both accept
#   --docker   with --tar: also build the images in Docker
#   --max-mb N fail when an image is N MB or more (default 30)
#   --tag TAG  tag the images TAG alone instead of VERSION and latest (tests
#              use their own tag, so they never replace an operator's images)
# It prints each image's size. Environment: GOARCH (default the host's).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_go build-images

tar_dir="" use_docker=auto max_mb=30 only_tag=""
while [ $# -gt 0 ]; do
  case $1 in
    --tar) tar_dir=${2:?--tar needs a directory}; shift 2 ;;
    --docker) use_docker=yes; shift ;;
    --max-mb) max_mb=${2:?--max-mb needs a number}; shift 2 ;;
    --tag) only_tag=${2:?--tag needs a tag}; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-images: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ "$use_docker" = auto ]; then
  if [ -n "$tar_dir" ]; then use_docker=no; else use_docker=yes; fi
fi
if [ "$use_docker" = yes ] && ! docker info >/dev/null 2>&1; then
  echo "build-images: Docker is not running here; write tarballs without it with --tar DIR" >&2
  exit 1
fi

readonly uid=65532
readonly certs=/etc/ssl/certs/ca-certificates.crt
if [ ! -s "$certs" ]; then
  echo "build-images: $certs is missing: install Debian's ca-certificates (apt-get install ca-certificates)" >&2
  exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/flotilla-images.XXXXXX")
trap 'rm -rf "$work"' EXIT
goarch=${GOARCH:-$(go env GOARCH)}

# The version stamp: git's commit when the build has no version of its own
# (cli.Version reads the module version or the VCS stamp, which a worktree
# or a source tarball may not give).
stamp=""
if git rev-parse --git-dir >/dev/null 2>&1; then
  stamp=$(git rev-parse --short=12 HEAD)
  git diff --quiet HEAD -- 2>/dev/null || stamp+="-dirty"
fi
build() { # build OUTDIR [LDFLAGS_EXTRA]
  CGO_ENABLED=0 GOOS=linux GOARCH=$goarch go build -trimpath \
    -ldflags "-s -w $2" -o "$1/" ./cmd/coord ./cmd/swarmnode
}
echo "build-images: building coord and swarmnode (static, $goarch)" >&2
with_progress build-images "building coord and swarmnode" build "$work/bin" ""
if [ "$("$work/bin/coord" version 2>/dev/null || true)" = "coord dev" ] && [ -n "$stamp" ]; then
  with_progress build-images "stamping the version" build "$work/bin" "-X main.version=$stamp"
fi
version=$("$work/bin/coord" version) version=${version#coord }
version=${version//+/-}
if ! [[ $version =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]]; then
  echo "build-images: coord version printed \"$version\", which is not an image tag" >&2
  exit 1
fi
tags=("$version" latest)
if [ -n "$only_tag" ]; then
  if ! [[ $only_tag =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]]; then
    echo "build-images: --tag $only_tag is not an image tag" >&2
    exit 2
  fi
  tags=("$only_tag")
fi
case $goarch in
  386|amd64|arm|arm64|ppc64le|s390x|riscv64) ;;
  *) echo "build-images: GOARCH $goarch is not an image architecture this script knows" >&2; exit 1 ;;
esac

# rootfs NAME: the image's files under $work/NAME/rootfs.
rootfs() {
  local r=$work/$1/rootfs
  mkdir -p "$r/usr/local/bin" "$r/etc/ssl/certs" "$r/tmp" "$r/data"
  cp "$work/bin/$1" "$r/usr/local/bin/$1"
  cp "$certs" "$r/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nflotilla:x:%d:%d:flotilla:/data:/sbin/nologin\n' $uid $uid >"$r/etc/passwd"
  printf 'root:x:0:\nflotilla:x:%d:\n' $uid >"$r/etc/group"
  chmod 0755 "$r/usr/local/bin/$1"
  chmod 1777 "$r/tmp"
}

# image_size_ok NAME BYTES: prints the size and checks the limit.
failed=0
image_size_ok() {
  local mb
  mb=$(awk -v b="$2" 'BEGIN { printf "%.1f", b / 1e6 }')
  echo "build-images: $1 is $mb MB ($2 bytes)"
  if [ "$2" -ge $((max_mb * 1000000)) ]; then
    echo "build-images: $1 is over the $max_mb MB limit" >&2
    failed=1
  fi
}

# docker_image NAME: docker build of the rootfs.
docker_image() {
  local name=$1 dir=$work/$1
  cat >"$dir/Dockerfile" <<EOF
FROM scratch
COPY rootfs/ /
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER $uid:$uid
WORKDIR /data
LABEL org.opencontainers.image.title="flotilla-$name" org.opencontainers.image.version="$version"
ENTRYPOINT ["/usr/local/bin/$name"]
EOF
  local t targs=()
  for t in "${tags[@]}"; do targs+=(-t "flotilla-$name:$t"); done
  if ! docker build -q "${targs[@]}" "$dir" >"$dir/build.log" 2>&1; then
    cat "$dir/build.log" >&2
    echo "build-images: docker build of flotilla-$name failed (its output is above)" >&2
    exit 1
  fi
  image_size_ok "flotilla-$name:${tags[0]}" "$(docker image inspect --format '{{.Size}}' "flotilla-$name:${tags[0]}")"
}

# tar_image NAME: a docker-archive (docker save layout) of one layer,
# without Docker: manifest.json, the config named by its digest, the layer.
tar_image() {
  local name=$1 dir=$work/$1 out
  out=$dir/archive
  mkdir -p "$out"
  # Reproducible: sorted names, owner root (the user only reads them), fixed time.
  tar --sort=name --numeric-owner --owner=0 --group=0 --mtime=@0 \
    -C "$dir/rootfs" -cf "$dir/layer.tar" .
  local diff_id cfg_id
  diff_id=$(sha256sum "$dir/layer.tar" | cut -d' ' -f1)
  mkdir -p "$out/$diff_id"
  mv "$dir/layer.tar" "$out/$diff_id/layer.tar"
  printf '1.0' >"$out/$diff_id/VERSION"
  cat >"$dir/config.json" <<EOF
{"architecture":"$goarch","os":"linux","created":"1970-01-01T00:00:00Z",
"config":{"User":"$uid:$uid","Env":["PATH=/usr/local/bin","SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"],
"Entrypoint":["/usr/local/bin/$name"],"WorkingDir":"/data",
"Labels":{"org.opencontainers.image.title":"flotilla-$name","org.opencontainers.image.version":"$version"}},
"rootfs":{"type":"layers","diff_ids":["sha256:$diff_id"]},
"history":[{"created":"1970-01-01T00:00:00Z","created_by":"scripts/build-images.sh"}]}
EOF
  cfg_id=$(sha256sum "$dir/config.json" | cut -d' ' -f1)
  mv "$dir/config.json" "$out/$cfg_id.json"
  local t repotags="" repos=""
  for t in "${tags[@]}"; do
    repotags+="${repotags:+,}\"flotilla-$name:$t\""
    repos+="${repos:+,}\"$t\":\"$diff_id\""
  done
  printf '[{"Config":"%s.json","RepoTags":[%s],"Layers":["%s/layer.tar"]}]\n' "$cfg_id" "$repotags" "$diff_id" >"$out/manifest.json"
  printf '{"flotilla-%s":{%s}}\n' "$name" "$repos" >"$out/repositories"
  mkdir -p "$tar_dir"
  tar --sort=name --numeric-owner --owner=0 --group=0 --mtime=@0 \
    -C "$out" -cf "$tar_dir/flotilla-$name.tar" .
  image_size_ok "$tar_dir/flotilla-$name.tar (flotilla-$name:${tags[0]})" "$(stat -c %s "$tar_dir/flotilla-$name.tar")"
}

for name in coord swarmnode; do
  rootfs "$name"
  if [ "$use_docker" = yes ]; then docker_image "$name"; fi
  if [ -n "$tar_dir" ]; then tar_image "$name"; fi
done
[ "$failed" = 0 ] || exit 1
echo "build-images: version $version"
