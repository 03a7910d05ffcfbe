#!/usr/bin/env bash
# The real-cluster test alone: deploy/k8s/ on a single-node Kubernetes
# v1.34.2 started by scripts/k8s/up.sh (internal/k8stest, TestCluster).
# Needs root. The first run builds the Kubernetes programs (about 15-25
# minutes on 2 cores; cached in ${FLOTILLA_CACHE:-/var/cache/flotilla}/k8s);
# later runs take a few minutes. The figures go to the test's log and to
# its artifacts, under ${FLOTILLA_ARTIFACTS:-$TMPDIR/flotilla-k8s-artifacts}
# (figures.txt; after a failure also the daemons' logs, objects and events).
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
need_go k8s-test
[ "$(id -u)" -eq 0 ] || { echo "k8s-test: needs root (it runs containerd, kubelet and kube-proxy)" >&2; exit 1; }
scripts/install-test-deps.sh
t0=$SECONDS
K8S_BIN=$(scripts/k8s/build-binaries.sh)
echo "k8s-test: Kubernetes programs ready in $((SECONDS - t0)) s ($K8S_BIN)" >&2
export K8S_BIN FLOTILLA_K8S_TEST=1
out=${FLOTILLA_ARTIFACTS:-${TMPDIR:-/tmp}/flotilla-k8s-artifacts}
mkdir -p "$out"
go test -count=1 -v -timeout 45m -artifacts -outputdir "$out" -run '^TestCluster$' ./internal/k8stest
echo "k8s-test: artifacts in $out" >&2
echo "k8s-test: done in $((SECONDS - t0)) s" >&2
