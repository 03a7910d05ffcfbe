#!/usr/bin/env bash
# Installs what the test suite needs from Debian's packages: the C compiler
# and C library headers (go test -race needs cgo), and the real programs the
# tests run against: opentracker, aria2 (aria2c), transmission-cli,
# transmission-daemon (the scale benchmark's comparison), python3-libtorrent
# (libtorrent 2.0: makes hybrid and v2 torrents and seeds them), qbittorrent-nox,
# mktorrent, iproute2 (ip netns, tc), chromium (the dashboard's browser test,
# driven by chromedp), and what the real-cluster test (scripts/k8s/up.sh)
# runs Kubernetes on: etcd-server, containerd, runc, the CNI plugins,
# iptables, conntrack, socat. Installs only what is missing; needs
# root (or sudo) only when something is missing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
apt_install_missing install-test-deps \
  gcc:gcc /usr/include/stdio.h:libc6-dev \
  opentracker:opentracker aria2c:aria2 transmission-cli:transmission-cli \
  transmission-daemon:transmission-daemon qbittorrent-nox:qbittorrent-nox \
  /usr/lib/python3/dist-packages/libtorrent.cpython-311-x86_64-linux-gnu.so:python3-libtorrent \
  mktorrent:mktorrent ip:iproute2 tc:iproute2 chromium:chromium \
  etcd:etcd-server containerd:containerd ctr:containerd runc:runc \
  /usr/lib/cni/bridge:containernetworking-plugins iptables:iptables \
  conntrack:conntrack socat:socat
