#!/usr/bin/env bash
# Checks the README's first screen as a new user meets it: on a fresh
# Debian 12 machine with Go and nothing else, from a copy of this
# repository, the README's commands (the first ```sh block: scripts/demo.sh
# and scripts/test.sh) must succeed.
#
# The machine is a Docker container made without any registry: debootstrap
# builds a minimal Debian 12 (bookworm) root file system, `docker import`
# turns it into an image (cached as flotilla-fresh-debian12; FRESH=1 builds
# it again). Go is the host's /usr/local/go, or the go.dev/dl tarball given
# as GO_TARBALL, copied to /usr/local/go as https://go.dev/dl says to
# install it. The repository is `git archive HEAD`: what is committed.
#
# Usage (root: debootstrap and docker):
#   sudo scripts/fresh-machine-check.sh
# Environment: MIRROR (default http://deb.debian.org/debian), SIZE (the
# demo's payload, default 64MiB), GO_TARBALL, FRESH=1, KEEP=1 (keep the
# container). The container runs --privileged (or, where Docker refuses
# that, with NET_ADMIN, SYS_ADMIN and SYS_PTRACE), as root on a real machine can create
# the network namespaces and tmpfs mounts some tests use, and see which
# process listens on a port (internal/lab reads /proc/PID/fd). Takes a while: the
# image once, then a cold build and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
who=fresh-machine-check
[ "$(id -u)" -eq 0 ] || { echo "$who: needs root (debootstrap, docker); run: sudo $0" >&2; exit 1; }
command -v docker >/dev/null || { echo "$who: needs docker (apt-get install docker.io)" >&2; exit 1; }
apt_install_missing "$who" debootstrap:debootstrap git:git
image=flotilla-fresh-debian12
mirror=${MIRROR:-http://deb.debian.org/debian}

if [ "${FRESH:-0}" = 1 ] || ! docker image inspect "$image" >/dev/null 2>&1; then
  root=$(mktemp -d "${TMPDIR:-/tmp}/$who-rootfs.XXXXXX")
  echo "$who: debootstrap bookworm (minbase) from $mirror into $root" >&2
  with_progress "$who" "running debootstrap" debootstrap --variant=minbase bookworm "$root" "$mirror"
  echo "$who: docker import as $image" >&2
  tar -C "$root" -c . | docker import -c 'CMD ["/bin/bash"]' - "$image" >/dev/null
  rm -rf "$root"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/$who.XXXXXX")
name="$who-$$"
cleanup() {
  if [ "${KEEP:-0}" = 1 ]; then echo "$who: kept container $name (docker rm -f $name)" >&2
  else docker rm -f "$name" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
if [ -n "${GO_TARBALL:-}" ]; then
  tar -C "$work" -xzf "$GO_TARBALL"
elif [ -x /usr/local/go/bin/go ]; then
  cp -a /usr/local/go "$work/go"
else
  echo "$who: no Go to install: give GO_TARBALL=go1.x.linux-amd64.tar.gz from https://go.dev/dl" >&2; exit 1
fi
mkdir "$work/flotilla"
git archive HEAD | tar -C "$work/flotilla" -x

# The README's commands: its first ```sh block, without comments.
mapfile -t cmds < <(awk '/^```sh/{n++; next} /^```/{if (n==1) exit} n==1' README.md | sed 's/#.*//; s/[[:space:]]*$//' | grep -v '^$')
[ ${#cmds[@]} -gt 0 ] || { echo "$who: found no commands in README.md's first sh block" >&2; exit 1; }
echo "$who: the README's commands: ${cmds[*]}" >&2

start_container() {
  docker run -d --name "$name" "$@" -e PATH=/usr/local/go/bin:/root/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    -e SIZE="${SIZE:-64MiB}" -w /root/flotilla "$image" sleep infinity >/dev/null
}
# --privileged where Docker allows it; inside another container it often
# does not, and the capabilities the tests use (network namespaces, tmpfs
# mounts) are enough.
if ! start_container --privileged 2>"$work/run.err"; then
  docker rm -f "$name" >/dev/null 2>&1 || true
  echo "$who: docker run --privileged failed ($(head -c 200 "$work/run.err")); using --cap-add NET_ADMIN,SYS_ADMIN,SYS_PTRACE instead" >&2
  start_container --cap-add NET_ADMIN --cap-add SYS_ADMIN --cap-add SYS_PTRACE --security-opt apparmor=unconfined
fi
docker cp "$work/go" "$name:/usr/local/go"
docker cp "$work/flotilla/." "$name:/root/flotilla"
status=0
for c in "${cmds[@]}"; do
  echo "$who: == $c" >&2
  start=$SECONDS
  if docker exec "$name" bash -c "$c"; then
    echo "$who: == $c: OK in $((SECONDS - start)) s" >&2
  else
    echo "$who: == $c: FAILED after $((SECONDS - start)) s" >&2
    status=1
  fi
done
[ $status -eq 0 ] && echo "$who: OK: the README's commands work on a fresh Debian 12 with Go" >&2
exit $status
