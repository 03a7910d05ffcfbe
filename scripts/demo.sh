#!/usr/bin/env bash
# Flotilla's demo, on one machine, offline: builds coord and swarmnode,
# generates a payload (SIZE, default 256MiB) and its torrent, starts
# opentracker and three upload-capped aria2c seeders on loopback (internal/lab,
# through `flotilla-bench --serve`), starts two swarm nodes on their own
# loopback addresses, then downloads the torrent with `coord download` as the
# coordinator of a cluster — its progress display shows the local swarm and
# each node — checks the result's SHA-256 and removes everything it started
# (KEEP=1 keeps the files). Installs opentracker and aria2 with apt-get if
# missing. Afterwards, `go install ./cmd/coord ./cmd/swarmnode` puts the
# commands in $(go env GOPATH)/bin.
set -euo pipefail
cd "$(dirname "$0")/.."
size=${SIZE:-256MiB}

. scripts/lib.sh
apt_install_missing demo opentracker:opentracker aria2c:aria2 sha256sum:coreutils
need_go demo

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

echo "demo: building coord, swarmnode and the lab (flotilla-bench) into $work/bin; the first build compiles Go's standard library and every dependency (minutes), later ones take seconds"
with_progress demo "building" go build -o "$work/bin/" ./cmd/coord ./cmd/swarmnode ./cmd/flotilla-bench

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
# The coordinator key: the nodes obey only the coordinator holding it.
"$work/bin/coord" keygen --coordinator "$work/coordinator.key" >"$work/coordinator.pub"
for n in 1 2; do
  ip=127.0.0.1$n
  "$work/bin/swarmnode" --name "node$n" --join "$coord_ip:7946" --cluster-listen "$ip:7946" \
    --listen "$ip:0" --cluster-key-file "$work/cluster.key" --coordinator-pubkey-file "$work/coordinator.pub" >"$work/node$n.log" 2>&1 &
  node_pids+=($!)
  echo "demo: swarm node node$n on $ip (log: $work/node$n.log)"
done
# --dht=false: the demo is offline; its swarm is found through the local tracker.
echo "demo: coord download $TORRENT --dht=false --out $work/out --listen $coord_ip:6881 --cluster-listen $coord_ip:7946 --cluster-key-file cluster.key --coordinator-key-file coordinator.key"
echo
"$work/bin/coord" download "$TORRENT" --dht=false --out "$work/out" --listen "$coord_ip:6881" \
  --cluster-listen "$coord_ip:7946" --cluster-key-file "$work/cluster.key" --coordinator-key-file "$work/coordinator.key"
echo
echo "demo: checking the download against the payload's SHA-256"
(cd "$work/out" && sha256sum -c "$SHA256SUMS")
echo "demo: OK, byte-identical"
echo "demo: to use coord yourself: go install ./cmd/coord ./cmd/swarmnode  (they land in $(go env GOPATH)/bin; add it to PATH)"
