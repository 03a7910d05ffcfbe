#!/usr/bin/env bash
# Checking data already on disk: coord vs `aria2c --check-integrity`, same
# files, same run.
#
#   scripts/bench-check-existing.sh [GIB] [--cold]     # default 4 GiB, warm cache
#
# Writes GIB GiB of random data (four files) and its torrent (1 MiB pieces,
# a tracker nobody listens on), then times `coord download` into the folder
# that already holds the data (no resume record: it hashes the files and,
# finding everything, exits) and `aria2c --check-integrity` on the same
# files (it hashes them and, complete, exits). --cold drops the page cache
# before each run (root); otherwise the data is read once beforehand so
# both find it cached. Needs Go, aria2 and mktorrent. KEEP=1 keeps the work
# directory.
set -euo pipefail
cd "$(dirname "$0")/.."
gib=${1:-4}
cold=0
[ "${2:-}" = --cold ] && cold=1
for p in aria2c mktorrent go; do
  command -v "$p" >/dev/null || { echo "bench-check-existing: needs $p (apt-get install aria2 mktorrent; Go from go.dev/dl)" >&2; exit 1; }
done
if [ "$cold" = 1 ] && [ ! -w /proc/sys/vm/drop_caches ]; then
  echo "bench-check-existing: --cold drops the page cache and needs root" >&2; exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/flotilla-check.XXXXXX")
trap 'if [ "${KEEP:-0}" = 1 ]; then echo "bench-check-existing: kept $work"; else rm -rf "$work"; fi' EXIT

echo "bench-check-existing: building coord; writing $gib GiB of random data and its torrent in $work"
go build -o "$work/coord" ./cmd/coord
mkdir -p "$work/data/existing"
per=$((gib * 256))   # MiB per file, four files
for i in 1 2 3 4; do
  head -c "${per}M" /dev/urandom >"$work/data/existing/part$i.bin"
done
mktorrent -l 20 -a "http://127.0.0.1:9/announce" -o "$work/t.torrent" "$work/data/existing" >/dev/null

prepare() {
  sync
  if [ "$cold" = 1 ]; then echo 3 >/proc/sys/vm/drop_caches; else cat "$work"/data/existing/* >/dev/null; fi
}
seconds() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", b-a}'; }

echo "bench-check-existing: $gib GiB, $([ "$cold" = 1 ] && echo cold || echo warm) cache"
prepare
start=$(date +%s.%N)
"$work/coord" download "$work/t.torrent" --dht=false --out "$work/data" --listen 127.0.0.1:0 --progress none >"$work/coord.log" 2>&1 ||
  { echo "bench-check-existing: coord failed:" >&2; tail -5 "$work/coord.log" >&2; exit 1; }
end=$(date +%s.%N)
grep -q "received 0 bytes" "$work/coord.log" || { echo "bench-check-existing: coord downloaded data:" >&2; cat "$work/coord.log" >&2; exit 1; }
echo "coord   $(seconds "$start" "$end") s   ($(grep -o 'checked [0-9]* pieces in [0-9.]* s' "$work/coord.log"))"
rm -rf "$work/data/.flotilla"

prepare
start=$(date +%s.%N)
aria2c --no-conf=true --enable-dht=false --bt-enable-lpd=false --enable-peer-exchange=false --disable-ipv6=true \
  --file-allocation=none --summary-interval=0 --console-log-level=warn --show-console-readout=false \
  --listen-port=$((20000 + RANDOM % 20000)) --check-integrity=true --seed-time=0 --bt-stop-timeout=1 \
  --dir="$work/data" "$work/t.torrent" >"$work/aria2c.log" 2>&1 ||
  { echo "bench-check-existing: aria2c failed:" >&2; tail -5 "$work/aria2c.log" >&2; exit 1; }
end=$(date +%s.%N)
echo "aria2c  $(seconds "$start" "$end") s   (--check-integrity)"
