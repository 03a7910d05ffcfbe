#!/usr/bin/env bash
# Installs the reference BitTorrent programs that Flotilla is benchmarked
# against (cmd/flotilla-bench runs this by itself when one is missing):
#   Debian packages: aria2 (aria2c), transmission-cli, opentracker, mktorrent
#   Go modules, pinned: rain (github.com/cenkalti/rain v1.13.0) and
#   anacrolix/torrent's CLI (github.com/anacrolix/torrent v1.58.1)
# Usage: scripts/install-reference-clients.sh [BIN_DIR]   (default ./.refbin)
# The Go-built programs land in BIN_DIR as `rain` and `anacrolix-torrent`.
# Installs only what is missing; needs root (or sudo) only for apt-get.
set -euo pipefail
bin=$(realpath -m "${1:-./.refbin}")
mkdir -p "$bin"

need_apt=()
for pair in aria2c:aria2 transmission-cli:transmission-cli opentracker:opentracker \
            mktorrent:mktorrent; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need_apt+=("${pair#*:}")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
  echo "installing Debian packages: ${need_apt[*]}" >&2
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# The module proxy serves these exact versions but may refuse to list
# versions, so `go install pkg@version` of rain fails on its deprecation
# lookup; building inside a scratch module avoids that.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
if [ ! -x "$bin/rain" ]; then
  echo "building rain v1.13.0 into $bin" >&2
  (cd "$scratch" && go mod init refbuild >/dev/null 2>&1 &&
   go get github.com/cenkalti/rain@v1.13.0 >/dev/null 2>&1 &&
   CGO_ENABLED=0 go build -o "$bin/rain" github.com/cenkalti/rain)
fi
if [ ! -x "$bin/anacrolix-torrent" ]; then
  echo "building anacrolix/torrent v1.58.1 into $bin" >&2
  GOBIN="$scratch/gobin" go install github.com/anacrolix/torrent/cmd/torrent@v1.58.1
  mv "$scratch/gobin/torrent" "$bin/anacrolix-torrent"
fi
for p in aria2c transmission-cli opentracker mktorrent; do
  printf '%-18s %s\n' "$p" "$(command -v "$p")"
done
printf '%-18s %s\n' rain "$bin/rain" anacrolix-torrent "$bin/anacrolix-torrent"
