#!/usr/bin/env bash
# Brings up a real single-node Kubernetes v1.34.2 from an empty state in
# K8S_DIR (default /tmp/flotilla-k8s): PKI, etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, a private containerd, kubelet,
# kube-proxy (iptables), CNI (bridge, host-local, portmap, firewall) and
# CoreDNS as a pod; it returns when the node and CoreDNS are Ready. Needs
# root and the Debian packages of scripts/install-test-deps.sh; the
# Kubernetes programs come from scripts/k8s/build-binaries.sh (cached).
# How each blocker of these machines is met: ../shared/NOTES-kubernetes.md
# and docs/kubernetes.md. Everything it starts or makes outside K8S_DIR is
# listed in K8S_DIR/record.txt; scripts/k8s/down.sh removes exactly that.
# Prints the kubeconfig's path; `export KUBECONFIG=...` and use
# K8S_DIR/bin/kubectl (the v1.34.2 kubectl).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
[ "$(id -u)" -eq 0 ] || k8s_die "up.sh needs root (it runs containerd, kubelet and kube-proxy)"
for c in etcd containerd runc ctr iptables conntrack openssl gcc; do
  command -v "$c" >/dev/null || k8s_die "$c is missing: run scripts/install-test-deps.sh"
done
[ -x /usr/lib/cni/bridge ] || k8s_die "the CNI plugins are missing: run scripts/install-test-deps.sh"
if [ -e "$K8S_DIR/record.txt" ]; then
  k8s_say "$K8S_DIR holds a cluster already; removing it first (down.sh)"
  "$here/down.sh"
fi
K8S_BIN=${K8S_BIN:-$("$here/build-binaries.sh")}
NODE_IP=${K8S_NODE_IP:-$(k8s_node_ip)}
for port in 2379 2380 6443 10250 10256 10257 10259; do
  if ss -Htln "sport = :$port" | grep -q .; then
    stale=$(ls -d "${TMPDIR:-/tmp}"/flotilla-k8s*/record.txt /tmp/flotilla-k8s*/record.txt 2>/dev/null | sort -u | sed 's,/record.txt$,,' | paste -sd' ' || true)
    k8s_die "port $port is in use: another cluster runs here?${stale:+ Clusters left: $stale: stop one with K8S_DIR=DIR scripts/k8s/down.sh}"
  fi
done
ip link show "$K8S_BRIDGE" >/dev/null 2>&1 && k8s_die "bridge $K8S_BRIDGE exists: a cluster's leftovers? remove it: ip link del $K8S_BRIDGE"
rm -rf "$K8S_DIR"
mkdir -p "$K8S_DIR"/{pki,logs,etcd,containerd,kubelet,cni/net.d,cni/ipam,images,manifests,pod-logs}
echo "bin $K8S_BIN" >"$K8S_DIR/record.txt"
k8s_record "nodeip $NODE_IP"
# What already existed, so that down.sh removes only what this cluster made.
k8s_chains >"$K8S_DIR/iptables-before.txt"
start=$SECONDS

# start NAME CMD...: runs a daemon in the background, its output in
# logs/NAME.log, its pid recorded.
start() {
  local name=$1; shift
  setsid "$@" >"$K8S_DIR/logs/$name.log" 2>&1 </dev/null &
  k8s_record "pid $name $!"
}
# wait_for WHAT SECONDS CMD...: polls CMD every 0.5 s.
wait_for() {
  local what=$1 limit=$2; shift 2
  local t0=$SECONDS
  until "$@" >/dev/null 2>&1; do
    if [ $((SECONDS - t0)) -ge "$limit" ]; then
      k8s_say "timed out after ${limit}s waiting for $what; the logs are in $K8S_DIR/logs"
      tail -n 30 "$K8S_DIR"/logs/*.log >&2 || true
      exit 1
    fi
    sleep 0.5
  done
}

. "$here/up-pki.sh"
. "$here/up-control.sh"
. "$here/up-node.sh"
. "$here/up-dns.sh"
mkdir -p "$K8S_DIR/bin" && ln -sf "$K8S_BIN/kubectl" "$K8S_DIR/bin/kubectl"
k8s_say "cluster up in $((SECONDS - start)) s (node $K8S_NODE at $NODE_IP; logs in $K8S_DIR/logs; stop with scripts/k8s/down.sh)"
echo "$K8S_DIR/pki/admin.kubeconfig"
