#!/usr/bin/env bash
# Builds the real-cluster harness's Kubernetes programs from the Go module
# proxy and prints the directory that holds them:
#   kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy
#   kubectl (v1.34.2, tools/k8s/kube) and coredns (v1.12.4 with only the
#   plugins the cluster needs, tools/k8s/coredns).
# Both are separate Go modules, never part of Flotilla's own module or its
# vendor/ directory. The programs are cached outside the clone, in
#   ${FLOTILLA_CACHE:-/var/cache/flotilla}/k8s/<key>
# where <key> is the sha256 of the two modules' go.mod, go.sum and sources
# and of this script: a run after the first costs a checksum. A cold build
# takes about 1,600 CPU-seconds and 2 GB of memory.
# Usage: scripts/k8s/build-binaries.sh   (prints the directory on stdout)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/scripts/lib.sh"
need_go k8s-build
tools=$root/tools/k8s
key=$(cd "$root" && cat "$0" tools/k8s/kube/go.mod tools/k8s/kube/go.sum tools/k8s/kube/tools.go \
  tools/k8s/coredns/go.mod tools/k8s/coredns/go.sum tools/k8s/coredns/main.go | sha256sum | cut -c1-16)
cache=${FLOTILLA_CACHE:-/var/cache/flotilla}/k8s
out=$cache/$key
progs=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
if [ -f "$out/.complete" ]; then echo "$out"; exit 0; fi
mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
v=v1.34.2
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=34 -X k8s.io/component-base/version.gitTreeState=clean"
build() { # DIR OUT PKG...
  local dir=$1 o=$2; shift 2
  (cd "$dir" && CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" nice go build -trimpath -ldflags "$ldflags" -o "$o" "$@")
}
with_progress k8s-build "building ${progs[*]} $v (cold: 15-25 min)" \
  build "$tools/kube" "$tmp/" "${progs[@]/#/k8s.io/kubernetes/cmd/}"
with_progress k8s-build "building coredns v1.12.4" build "$tools/coredns" "$tmp/coredns" .
touch "$tmp/.complete"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "k8s-build: programs in $out" >&2
echo "$out"
