#!/usr/bin/env bash
# Many small files under a low descriptor limit: coord vs aria2c, same run.
#
#   scripts/bench-many-files.sh [FILES] [ULIMIT]      # default 10000 256
#
# Makes FILES small files (4 KiB each, 100 directories) and their torrent,
# starts opentracker and an aria2c seeder on loopback, then downloads the
# torrent with `coord download` and with aria2c, each under `ulimit -n
# ULIMIT`, and prints the wall time and the peak number of descriptors of
# each (sampled from /proc every 10 ms), after checking both copies. Needs
# Go, opentracker, aria2 and mktorrent (Debian packages). KEEP=1 keeps the
# work directory.
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-10000}
limit=${2:-256}
for p in opentracker aria2c mktorrent go; do
  command -v "$p" >/dev/null || { echo "bench-many-files: needs $p (apt-get install opentracker aria2 mktorrent; Go from go.dev/dl)" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/flotilla-manyfiles.XXXXXX")
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "${KEEP:-0}" = 1 ]; then echo "bench-many-files: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

echo "bench-many-files: building coord; making $files files of 4 KiB in $work/data/many"
go build -o "$work/coord" ./cmd/coord
for d in $(seq 0 99); do
  n=$(( files / 100 + (d < files % 100 ? 1 : 0) ))
  [ "$n" -gt 0 ] || continue
  mkdir -p "$work/data/many/d$d"
  head -c $((n * 4096)) /dev/urandom | (cd "$work/data/many/d$d" && split -a 6 -d -b 4096 - f)
done

port=$((20000 + RANDOM % 20000))
announce="http://127.0.0.1:$port/announce"
mktorrent -l 16 -a "$announce" -o "$work/t.torrent" "$work/data/many" >/dev/null
hash=$(aria2c -S "$work/t.torrent" | awk '/Info Hash:/ {print $3}')
mkdir -p "$work/tracker" && chmod 755 "$work/tracker"
echo "$hash" >"$work/tracker/whitelist"
ot_user=(); [ "$(id -u)" -eq 0 ] && ot_user=(-u nobody)
(cd "$work/tracker" && exec opentracker -i 127.0.0.1 -p "$port" -P "$port" -A 127.0.0.1 -d "$work/tracker" -w whitelist "${ot_user[@]}") \
  >"$work/opentracker.log" 2>&1 &
pids+=($!)

aria2_common=(--no-conf=true --enable-dht=false --enable-dht6=false --bt-enable-lpd=false --enable-peer-exchange=false
  --disable-ipv6=true --file-allocation=none --bt-save-metadata=false --summary-interval=0 --console-log-level=warn
  --enable-color=false --show-console-readout=false)
echo "bench-many-files: starting the aria2c seeder (it hashes the files first)"
aria2c "${aria2_common[@]}" --interface=127.0.0.20 --listen-port=$((port + 1)) --dir="$work/data" \
  --check-integrity=true --bt-hash-check-seed=true --seed-ratio=0.0 "$work/t.torrent" >"$work/seeder.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 600); do
  "$work/coord" announce "$work/t.torrent" --port 1 --timeout 2s 2>/dev/null | grep -q ' 1 seeder' && break
  sleep 0.5
done

# run NAME COMMAND...: runs the command under the descriptor limit, prints
# its wall time and peak descriptors.
run() {
  local name=$1; shift
  local start end pid peak=0 n
  start=$(date +%s.%N)
  bash -c 'ulimit -n '"$limit"' && exec "$@"' bench "$@" >"$work/$name.log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    n=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l) || n=0
    [ "$n" -gt "$peak" ] && peak=$n
    sleep 0.01
  done
  wait "$pid" || { echo "bench-many-files: $name failed:" >&2; tail -5 "$work/$name.log" >&2; exit 1; }
  end=$(date +%s.%N)
  printf '%-8s %8.2f s  %5d descriptors at most\n' "$name" "$(awk -v a="$start" -v b="$end" 'BEGIN{print b-a}')" "$peak"
}

echo "bench-many-files: $files files, ulimit -n $limit"
run coord "$work/coord" download "$work/t.torrent" --dht=false --out "$work/coord-out" --listen 127.0.0.30:0 --progress none
run aria2c aria2c "${aria2_common[@]}" --interface=127.0.0.31 --listen-port=$((port + 2)) --dir="$work/aria2-out" \
  --seed-time=0 --bt-stop-timeout=0 "$work/t.torrent"
for out in coord-out aria2-out; do
  diff -r -q "$work/data/many" "$work/$out/many" >/dev/null || { echo "bench-many-files: $out differs from the data" >&2; exit 1; }
done
echo "bench-many-files: both copies match the data"
