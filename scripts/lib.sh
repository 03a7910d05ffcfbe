# Shared by Flotilla's scripts; source it: . "$(dirname "$0")/lib.sh"

# apt_install_missing WHO CMD:PACKAGE...
# Installs, with apt-get, the Debian package of every CMD that is not on the
# PATH (CMD may also be a file path, e.g. /usr/include/stdio.h:libc6-dev).
# Each package is installed once however many commands it provides. Needs
# root, or sudo when not root; says clearly when neither is there.
apt_install_missing() {
  local who=$1; shift
  local need=() pair cmd pkg
  for pair in "$@"; do
    cmd=${pair%%:*} pkg=${pair#*:}
    if [[ $cmd == /* ]]; then [ -e "$cmd" ] && continue
    else command -v "$cmd" >/dev/null 2>&1 && continue
    fi
    [[ " ${need[*]} " == *" $pkg "* ]] || need+=("$pkg")
  done
  [ ${#need[@]} -gt 0 ] || return 0
  local sudo_=""
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "$who: needs these Debian packages: ${need[*]}; run as root: apt-get install ${need[*]}" >&2
      return 1
    fi
    sudo_="sudo"
  fi
  echo "$who: installing ${need[*]} (apt-get)" >&2
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "${need[@]}" >/dev/null
}

# need_go WHO: fails with a hint when there is no go command. Debian's
# golang-go package is too old for this module (Debian 12 has Go 1.19).
need_go() {
  command -v go >/dev/null 2>&1 && return 0
  echo "$1: needs Go $(sed -n 's/^go //p' "$(dirname "${BASH_SOURCE[0]}")/../go.mod") or newer, which is not on the PATH:" \
       "install it from https://go.dev/dl (Debian's golang-go is too old) and add /usr/local/go/bin to PATH" >&2
  return 1
}

# with_progress WHO WHAT CMD...: runs CMD, saying every 15 s that it is
# still WHAT, so that a long first build does not look like a hang. CMD's
# output is shown only if it fails.
with_progress() {
  local who=$1 what=$2; shift 2
  local log; log=$(mktemp)
  "$@" >"$log" 2>&1 &
  local pid=$! start=$SECONDS
  while kill -0 "$pid" 2>/dev/null; do
    local tick=$SECONDS
    while kill -0 "$pid" 2>/dev/null && [ $((SECONDS - tick)) -lt 15 ]; do sleep 1; done
    kill -0 "$pid" 2>/dev/null &&
      echo "$who: still $what ($((SECONDS - start)) s so far)" >&2
  done
  if ! wait "$pid"; then
    cat "$log" >&2; rm -f "$log"
    echo "$who: $what failed (its output is above)" >&2
    return 1
  fi
  rm -f "$log"
}
