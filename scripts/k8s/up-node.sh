# Sourced by up.sh: cgroups, the private containerd with the CNI
# configuration, the pause and CoreDNS images, kubelet and kube-proxy.

# A cgroup of the cluster's own in every v1 hierarchy (kubelet's cgroupRoot),
# so that down.sh removes exactly the cgroups the pods had.
for h in /sys/fs/cgroup/*/; do
  h=${h%/}
  [ -L "$h" ] && continue
  [ -e "$h/cgroup.procs" ] || continue
  mkdir -p "$h/$K8S_CGROUP"
  k8s_record "cgroup $h/$K8S_CGROUP"
  if [ -e "$h/cpuset.cpus" ]; then
    cat "$h/cpuset.cpus" >"$h/$K8S_CGROUP/cpuset.cpus"
    cat "$h/cpuset.mems" >"$h/$K8S_CGROUP/cpuset.mems"
  fi
done

cat >"$K8S_DIR/cni/net.d/10-flotilla.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "flotilla-k8s", "plugins": [
  {"type": "bridge", "bridge": "$K8S_BRIDGE", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$K8S_DIR/cni/ipam",
            "ranges": [[{"subnet": "$K8S_POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}},
  {"type": "firewall"}
]}
JSON
k8s_record "link $K8S_BRIDGE"
# Directories made outside K8S_DIR whatever the configuration: libcni's
# cache (containerd), runc's state and the shims' sockets, kubelet's
# device-plugin socket. down.sh removes them if this cluster made them.
for d in /var/lib/cni /run/containerd /var/lib/kubelet; do
  [ -e "$d" ] || k8s_record "made $d"
done

ctrd=$K8S_DIR/containerd
cat >"$ctrd/config.toml" <<TOML
version = 2
root = "$ctrd/root"
state = "$ctrd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$ctrd/containerd.sock"
[ttrpc]
  address = "$ctrd/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$ctrd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  restrict_oom_score_adj = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "${K8S_SNAPSHOTTER:-overlayfs}"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$K8S_DIR/cni/net.d"
TOML
start containerd containerd --config "$ctrd/config.toml"
wait_for containerd 30 k8s_ctr version

# The pause image: a static C program on scratch; CoreDNS likewise.
gcc -static -O2 -o "$K8S_DIR/images/pause" "$here/pause.c"
mkdir -p "$K8S_DIR/images/pause-root" "$K8S_DIR/images/coredns-root"
cp "$K8S_DIR/images/pause" "$K8S_DIR/images/pause-root/pause"
cp "$K8S_BIN/coredns" "$K8S_DIR/images/coredns-root/coredns"
k8s_image_tar registry.k8s.io/pause:3.10 "$K8S_DIR/images/pause.tar" /pause "$K8S_DIR/images/pause-root"
k8s_image_tar flotilla.local/coredns:v1.12.4 "$K8S_DIR/images/coredns.tar" /coredns "$K8S_DIR/images/coredns-root"
k8s_ctr images import "$K8S_DIR/images/pause.tar" >/dev/null
k8s_ctr images import "$K8S_DIR/images/coredns.tar" >/dev/null

: >"$K8S_DIR/resolv.conf" # nothing inside the cluster resolves outside names
cat >"$K8S_DIR/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$K8S_CGROUP
containerRuntimeEndpoint: unix://$ctrd/containerd.sock
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: "$pki/ca.crt"}
authorization: {mode: AlwaysAllow}
tlsCertFile: "$pki/kubelet.crt"
tlsPrivateKeyFile: "$pki/kubelet.key"
clusterDNS: ["$K8S_DNS_IP"]
clusterDomain: cluster.local
resolvConf: "$K8S_DIR/resolv.conf"
podLogsDir: "$K8S_DIR/pod-logs"
failSwapOn: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "1%", nodefs.available: "1%", nodefs.inodesFree: "1%", imagefs.available: "1%"}
healthzBindAddress: 127.0.0.1
serializeImagePulls: false
maxPods: 40
YAML
start kubelet "$K8S_BIN/kubelet" --config="$K8S_DIR/kubelet/config.yaml" \
  --kubeconfig="$pki/kubelet.kubeconfig" --root-dir="$K8S_DIR/kubelet" \
  --hostname-override="$K8S_NODE" --node-ip="$NODE_IP"

cat >"$K8S_DIR/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$pki/kube-proxy.kubeconfig"}
mode: iptables
hostnameOverride: $K8S_NODE
clusterCIDR: $K8S_POD_CIDR
nodePortAddresses: ["$NODE_IP/32"]
iptables: {masqueradeAll: true}
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
YAML
start kube-proxy "$K8S_BIN/kube-proxy" --config="$K8S_DIR/kube-proxy.yaml"
wait_for "node $K8S_NODE to register" 90 k8s_kubectl get node "$K8S_NODE"
wait_for "node $K8S_NODE to be Ready" 120 k8s_kubectl wait --for=condition=Ready "node/$K8S_NODE" --timeout=5s
