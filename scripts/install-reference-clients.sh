#!/usr/bin/env bash
# Installs the reference BitTorrent programs that Flotilla is benchmarked
# against (cmd/flotilla-bench runs this by itself when one is missing):
#   Debian packages: aria2 (aria2c), transmission-cli, opentracker, mktorrent
#   Go modules, pinned: rain (github.com/cenkalti/rain v1.13.0) and
#   anacrolix/torrent's CLI (github.com/anacrolix/torrent v1.58.1)
# Usage: scripts/install-reference-clients.sh [BIN_DIR]   (default ./.refbin)
# The Go-built programs land in BIN_DIR as `rain` and `anacrolix-torrent`.
# Installs only what is missing; needs root (or sudo) only for apt-get.
# A build that fails shows its output, and the script ends saying which.
set -euo pipefail
bin=$(realpath -m "${1:-./.refbin}")
mkdir -p "$bin"

. "$(dirname "$0")/lib.sh"
need_go install-reference-clients
# g++ and git: the Go modules below build with cgo and are fetched with git
# when the module proxy is not used.
apt_install_missing install-reference-clients \
  aria2c:aria2 transmission-cli:transmission-cli opentracker:opentracker \
  mktorrent:mktorrent gcc:gcc g++:g++ git:git

# The module proxy serves these exact versions but may refuse to list
# versions, so `go install pkg@version` of rain fails on its deprecation
# lookup; building inside a scratch module avoids that.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# build NAME CMD...: runs a build quietly, and on failure shows its output
# and says what failed (flotilla-bench repeats that last line).
build() {
  local name=$1; shift
  if ! "$@" >"$scratch/build.log" 2>&1; then
    cat "$scratch/build.log" >&2
    echo "install-reference-clients: building $name failed (its output is above)" >&2
    return 1
  fi
}
failed=()
if [ ! -x "$bin/rain" ]; then
  echo "building rain v1.13.0 into $bin" >&2
  build rain bash -c "cd '$scratch' && go mod init refbuild && go get github.com/cenkalti/rain@v1.13.0 &&
    CGO_ENABLED=0 go build -o '$bin/rain' github.com/cenkalti/rain" || failed+=(rain)
fi
if [ ! -x "$bin/anacrolix-torrent" ]; then
  echo "building anacrolix/torrent v1.58.1 into $bin" >&2
  build anacrolix-torrent env GOBIN="$scratch/gobin" go install github.com/anacrolix/torrent/cmd/torrent@v1.58.1 &&
    mv "$scratch/gobin/torrent" "$bin/anacrolix-torrent" || failed+=(anacrolix-torrent)
fi
for p in aria2c transmission-cli opentracker mktorrent "$bin/rain" "$bin/anacrolix-torrent"; do
  printf '%-18s %s\n' "$(basename "$p")" "$(command -v "$p" || echo "(missing)")"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "install-reference-clients: could not build ${failed[*]} (the build output is above)" >&2
  exit 1
fi
