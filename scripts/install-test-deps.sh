#!/usr/bin/env bash
# Installs the real programs the test suite runs against, from Debian's
# packages: opentracker, aria2 (aria2c), transmission-cli, mktorrent,
# iproute2 (ip netns, tc). Installs only what is missing; needs root (or sudo)
# only when something is missing.
set -euo pipefail
need=()
for pair in opentracker:opentracker aria2c:aria2 transmission-cli:transmission-cli \
            mktorrent:mktorrent ip:iproute2 tc:iproute2; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
  echo "installing: ${need[*]}" >&2
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null
fi
