#!/usr/bin/env bash
# Stops the cluster scripts/k8s/up.sh started in K8S_DIR (default
# /tmp/flotilla-k8s) and removes what it made, using K8S_DIR/record.txt:
# its daemons by pid, the pods' processes and containerd shims, every mount
# under K8S_DIR, the pods' network namespaces and libcni cache entries, the
# cgroups, the bridge, and
# the iptables chains that were not there before up.sh (with the rules
# jumping to them). Docker's containerd, chains and networks are left
# alone. The daemons' logs stay in K8S_DIR/logs; the rest of K8S_DIR goes.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
rec=$K8S_DIR/record.txt
[ -e "$rec" ] || { k8s_say "no cluster in $K8S_DIR (no record.txt); nothing to do"; exit 0; }
[ "$(id -u)" -eq 0 ] || k8s_die "down.sh needs root"
K8S_BIN=$(sed -n 's/^bin //p' "$rec")
sock=$K8S_DIR/containerd/containerd.sock

# alive NAME PID: PID is still the process up.sh started (not a reused pid).
alive() { [ -r "/proc/$2/cmdline" ] && tr '\0' ' ' <"/proc/$2/cmdline" | grep -q -- "$1"; }
stop_pid() { # NAME PID
  local name=$1 pid=$2 i
  alive "$name" "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null
  for i in $(seq 100); do alive "$name" "$pid" || return 0; sleep 0.1; done
  k8s_say "$name ($pid) ignored SIGTERM for 10 s; killing it"
  kill -KILL "$pid" 2>/dev/null
}
pid_of() { sed -n "s/^pid $1 //p" "$rec" | tail -1; }

for d in kube-proxy kubelet; do p=$(pid_of $d); [ -z "$p" ] || stop_pid "$d" "$p"; done

# The pods' network namespaces, as our containerd knows them, then their tasks.
netns=() ids=()
if [ -S "$sock" ] && k8s_ctr version >/dev/null 2>&1; then
  for id in $(k8s_ctr containers ls -q 2>/dev/null); do
    ids+=("$id")
    while read -r ns; do netns+=("$ns"); done < <(k8s_ctr containers info "$id" 2>/dev/null |
      grep -o '"/var/run/netns/[^"]*"\|"/run/netns/[^"]*"' | tr -d '"' | sort -u)
    k8s_ctr tasks kill -s SIGKILL "$id" >/dev/null 2>&1
  done
  for id in $(k8s_ctr tasks ls -q 2>/dev/null); do k8s_ctr tasks delete -f "$id" >/dev/null 2>&1; done
fi
printf '%s\n' "${netns[@]}" | sort -u | grep . | sed 's/^/netns /' >>"$rec"

# Processes left in the cluster's cgroups (pods) and containerd's shims.
for cg in $(sed -n 's/^cgroup //p' "$rec"); do
  [ -d "$cg" ] && find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null
done | sort -u | xargs -r kill -KILL 2>/dev/null
for p in /proc/[0-9]*; do
  { tr "\0" " " <"$p/cmdline"; } 2>/dev/null | grep -q -- "-address $sock " && kill -KILL "${p#/proc/}" 2>/dev/null
done

for d in kube-scheduler kube-controller-manager kube-apiserver containerd etcd; do
  p=$(pid_of $d); [ -z "$p" ] || stop_pid "$d" "$p"
done

# Mounts under K8S_DIR (deepest first), then the pods' network namespaces.
awk -v d="$K8S_DIR/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do
  umount "$m" 2>/dev/null || umount -l "$m"
done
for ns in $(sed -n 's/^netns //p' "$rec" | sort -u); do
  umount "$ns" 2>/dev/null; rm -f "$ns"
done

# iptables: the chains that were not there before up.sh, and the rules that jump to them.
if [ -e "$K8S_DIR/iptables-before.txt" ]; then
  k8s_chains | sort >"$K8S_DIR/iptables-after.txt"
  sort "$K8S_DIR/iptables-before.txt" | comm -13 - "$K8S_DIR/iptables-after.txt" |
    grep -E ' (KUBE-|CNI-)' >"$K8S_DIR/iptables-new.txt"
  while read -r cmd t; do
    chains=$(awk -v c="$cmd" -v t="$t" '$1==c && $2==t {print $3}' "$K8S_DIR/iptables-new.txt")
    [ -n "$chains" ] || continue
    re=$(echo "$chains" | paste -sd'|')
    "$cmd-save" -t "$t" 2>/dev/null | grep -E "^-A " | grep -E -- "-[jg] ($re)( |$)" | while read -r rule; do
      own=$(echo "$rule" | awk '{print $2}')
      echo "$chains" | grep -qx -- "$own" && continue
      eval "$cmd -t $t -D ${rule#-A }" 2>/dev/null
    done
    for c in $chains; do "$cmd" -t "$t" -F "$c" 2>/dev/null; done
    for c in $chains; do "$cmd" -t "$t" -X "$c" 2>/dev/null; done
  done < <(awk '{print $1, $2}' "$K8S_DIR/iptables-new.txt" | sort -u)
fi

for l in $(sed -n 's/^link //p' "$rec"); do ip link del "$l" 2>/dev/null; done
# libcni's cache of the pods' results (/var/lib/cni/results/NET-ID-IF).
for id in "${ids[@]}"; do rm -f /var/lib/cni/results/*-"$id"-*; done
rm -f /var/lib/kubelet/device-plugins/kubelet.sock /var/lib/kubelet/device-plugins/kubelet_internal_checkpoint
for d in $(sed -n 's/^made //p' "$rec" | sort -r); do
  find "$d" -depth -type d -empty -delete 2>/dev/null
  [ -e "$d" ] && k8s_say "warning: $d (made by this cluster) is not empty; left in place"
done
for cg in $(sed -n 's/^cgroup //p' "$rec"); do
  [ -d "$cg" ] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
done

left=$(awk -v d="$K8S_DIR/" 'index($5, d) == 1' /proc/self/mountinfo | wc -l)
[ "$left" -eq 0 ] || k8s_say "warning: $left mounts under $K8S_DIR could not be removed"
find "$K8S_DIR" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf {} + 2>/dev/null
k8s_say "cluster in $K8S_DIR stopped and removed (logs kept in $K8S_DIR/logs)"
