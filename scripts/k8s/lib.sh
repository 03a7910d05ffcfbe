# Shared by scripts/k8s/up.sh and down.sh; source it.

# The cluster's private directory: every file, socket and state the harness
# makes lives here; record.txt lists what it made outside (pids, cgroups,
# the bridge, iptables chains) so that down.sh removes exactly that.
K8S_DIR=${K8S_DIR:-/tmp/flotilla-k8s}
K8S_NODE=flotilla-node
K8S_BRIDGE=flk8s0
K8S_POD_CIDR=10.244.0.0/16
K8S_SVC_CIDR=10.96.0.0/16
K8S_DNS_IP=10.96.0.10
K8S_CGROUP=flotilla-k8s

k8s_say() { echo "k8s: $*" >&2; }
k8s_die() { echo "k8s: $*" >&2; exit 1; }
k8s_record() { echo "$*" >>"$K8S_DIR/record.txt"; }

# k8s_node_ip: the address of the default route's interface (a dummy
# interface cannot be made on these machines).
k8s_node_ip() {
  local dev
  dev=$(ip -4 route show default | awk '{for(i=1;i<NF;i++) if($i=="dev"){print $(i+1); exit}}')
  [ -n "$dev" ] || k8s_die "no default route: the node needs an address (give one in K8S_NODE_IP)"
  ip -4 -o addr show dev "$dev" | awk '{split($4,a,"/"); print a[1]; exit}'
}

# k8s_image_tar NAME:TAG OUT.tar ENTRYPOINT DIR: writes a one-layer
# docker-archive of DIR's files (FROM scratch) that `ctr images import` loads.
k8s_image_tar() {
  local ref=$1 out=$2 entry=$3 dir=$4 w
  w=$(mktemp -d)
  tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -C "$dir" -cf "$w/layer.tar" .
  local diff; diff=$(sha256sum "$w/layer.tar" | cut -d' ' -f1)
  printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":["%s"],"User":"0"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$entry" "$diff" >"$w/config.json"
  local cfg; cfg=$(sha256sum "$w/config.json" | cut -d' ' -f1)
  mv "$w/config.json" "$w/$cfg.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["layer.tar"]}]' "$cfg" "$ref" >"$w/manifest.json"
  tar -C "$w" -cf "$out" manifest.json "$cfg.json" layer.tar
  rm -rf "$w"
}

k8s_ctr() { ctr --address "$K8S_DIR/containerd/containerd.sock" -n k8s.io "$@"; }
k8s_kubectl() { "$K8S_BIN/kubectl" --kubeconfig "$K8S_DIR/pki/admin.kubeconfig" "$@"; }

# k8s_chains: every iptables and ip6tables chain, as "CMD TABLE CHAIN".
k8s_chains() {
  local cmd t
  for cmd in iptables ip6tables; do
    command -v "$cmd-save" >/dev/null || continue
    for t in filter nat mangle raw; do
      "$cmd-save" -t "$t" 2>/dev/null | sed -n "s/^:\([^ ]*\) .*/$cmd $t \1/p"
    done
  done
}
