#!/usr/bin/env bash
# Flotilla's demo, on one machine, offline: builds coord and swarmnode,
# generates a payload (SIZE, default 256MiB) and its torrent, starts
# opentracker and three upload-capped aria2c seeders on loopback (internal/lab,
# through `flotilla-bench --serve`), starts two swarm nodes on their own
# loopback addresses, then downloads the torrent with `coord download` as the
# coordinator of a cluster — its progress display shows the local swarm and
# each node — checks the result's SHA-256 and removes everything it started
# (KEEP=1 keeps the files). Installs opentracker and aria2 with apt-get if
# missing.
set -euo pipefail
cd "$(dirname "$0")/.."
size=${SIZE:-256MiB}

need=()
for pair in opentracker:opentracker aria2c:aria2 sha256sum:coreutils; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
  echo "demo: installing ${need[*]}"
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v go >/dev/null || { echo "demo: needs Go 1.26 (apt-get install golang-go, or go.dev/dl)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/flotilla-demo.XXXXXX")
lab_pid=""
node_pids=()
cleanup() {
  for p in "${node_pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  for p in "${node_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "$lab_pid" ] && kill -0 "$lab_pid" 2>/dev/null; then
    kill -INT "$lab_pid" 2>/dev/null || true   # the lab stops its tracker and seeder
    wait "$lab_pid" 2>/dev/null || true
  fi
  if [ "${KEEP:-0}" = 1 ]; then echo "demo: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

echo "demo: building coord and the lab into $work/bin"
go build -o "$work/bin/coord" ./cmd/coord
go build -o "$work/bin/swarmnode" ./cmd/swarmnode
go build -o "$work/bin/flotilla-bench" ./cmd/flotilla-bench

echo "demo: making a $size payload and starting opentracker + three aria2c seeders (each capped at ${SEEDER_LIMIT:-8M}/s) on loopback"
"$work/bin/flotilla-bench" --serve --size "$size" --seeders 3 --seeder-limit "${SEEDER_LIMIT:-8M}" --dir "$work/lab" \
  --keep --info-file "$work/swarm.info" >"$work/lab.log" 2>&1 &
lab_pid=$!
for _ in $(seq 1 600); do
  [ -f "$work/swarm.info" ] && break
  if ! kill -0 "$lab_pid" 2>/dev/null; then
    echo "demo: the lab failed to start:" >&2; cat "$work/lab.log" >&2; exit 1
  fi
  sleep 0.2
done
[ -f "$work/swarm.info" ] || { echo "demo: the lab did not come up in 120 s" >&2; cat "$work/lab.log" >&2; exit 1; }
. "$work/swarm.info"
echo "demo: tracker $TRACKER, seeder $SEEDERS"

coord_ip=127.0.0.10
(umask 077 && "$work/bin/coord" keygen >"$work/cluster.key")
for n in 1 2; do
  ip=127.0.0.1$n
  "$work/bin/swarmnode" --name "node$n" --join "$coord_ip:7946" --cluster-listen "$ip:7946" \
    --listen "$ip:0" --cluster-key-file "$work/cluster.key" >"$work/node$n.log" 2>&1 &
  node_pids+=($!)
  echo "demo: swarm node node$n on $ip (log: $work/node$n.log)"
done
echo "demo: coord download $TORRENT --out $work/out --listen $coord_ip:6881 --cluster-listen $coord_ip:7946 --cluster-key-file cluster.key"
echo
"$work/bin/coord" download "$TORRENT" --out "$work/out" --listen "$coord_ip:6881" \
  --cluster-listen "$coord_ip:7946" --cluster-key-file "$work/cluster.key"
echo
echo "demo: checking the download against the payload's SHA-256"
(cd "$work/out" && sha256sum -c "$SHA256SUMS")
echo "demo: OK, byte-identical"
