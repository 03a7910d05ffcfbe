#!/usr/bin/env bash
# Runs every fuzz target of the module for a bounded time, one after the
# other, each starting from its committed corpus (testdata/fuzz/<Name>/)
# plus whatever the local cache has learnt.
#
#   FUZZTIME    time per target, as for go test -fuzztime: 5s (default), 2m, or
#               an exec count like 100000x
#   FUZZBUDGET  cap on the fuzzing time of the whole run: 300, 300s, 10m, 1h
#               (default: none). A target is cut to what is left and none
#               starts once it is spent (builds and start-up come on top)
#   FUZZ        extended regexp on "<package dir>/<FuzzName>": only those run,
#               e.g. FUZZ=tracker/ or FUZZ='FuzzParse$'
#   FUZZPARALLEL  fuzzing workers per target (default: GOMAXPROCS)
#
# Targets are found with `go test -list '^Fuzz'` in each package that has a
# func Fuzz in a _test.go file. A crash makes the run fail, after the other
# targets ran; go test writes the failing input under testdata/fuzz/<Name>/
# and prints the command that replays it. The summary gives, per target, the
# executions done and the result.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime=${FUZZTIME:-5s}
filter=${FUZZ:-}
parallel=${FUZZPARALLEL:-}

# seconds NUM[s|m|h] -> seconds
seconds() {
  local v=$1
  case $v in
    *h) echo $(( ${v%h} * 3600 )) ;;
    *m) echo $(( ${v%m} * 60 )) ;;
    *s) echo $(( ${v%s} )) ;;
    *[!0-9]*|'') echo "fuzz.sh: FUZZBUDGET=$v: want a number of seconds, or NUMs, NUMm, NUMh" >&2; exit 2 ;;
    *) echo "$v" ;;
  esac
}
budget=
if [ -n "${FUZZBUDGET:-}" ]; then budget=$(seconds "$FUZZBUDGET"); fi

# Per-target seconds when FUZZTIME is a duration in whole s/m/h (used to cut
# the last target to the budget); empty for an exec count (Nx) or other forms.
per_target=
case $fuzztime in
  *x) ;;
  *[0-9]s|*[0-9]m|*[0-9]h) if [[ $fuzztime =~ ^[0-9]+[smh]$ ]]; then per_target=$(seconds "$fuzztime"); fi ;;
esac

targets=()
for dir in $(grep -rl --include='*_test.go' '^func Fuzz' --exclude-dir=vendor --exclude-dir=.git . | xargs -n1 dirname | sort -u); do
  dir=${dir#./}
  if [ -n "$filter" ]; then # skip building packages the filter cannot match
    match=
    for name in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go | cut -c6-); do
      if [[ "$dir/$name" =~ $filter ]]; then match=1; fi
    done
    [ -n "$match" ] || continue
  fi
  for name in $(go test -list '^Fuzz' "./$dir" | grep '^Fuzz' || true); do
    if [ -z "$filter" ] || [[ "$dir/$name" =~ $filter ]]; then
      targets+=("$dir/$name")
    fi
  done
done
if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz.sh: no fuzz target matches FUZZ=$filter" >&2
  exit 1
fi
echo "fuzz.sh: ${#targets[@]} targets, $fuzztime each${budget:+, at most ${budget}s in all}"

start=$SECONDS
failed=()
summary=()
for t in "${targets[@]}"; do
  dir=${t%/*} name=${t##*/}
  this=$fuzztime
  if [ -n "$budget" ]; then
    left=$(( budget - (SECONDS - start) ))
    if [ "$left" -lt 1 ]; then
      summary+=("$(printf '%-45s %12s  %s' "$t" - "not run: FUZZBUDGET spent")")
      continue
    fi
    if [ -z "$per_target" ] || [ "$left" -lt "$per_target" ]; then
      if [ -n "$per_target" ] || [[ $fuzztime != *x ]]; then this="${left}s"; fi
    fi
  fi
  echo "== $t ($this)"
  log=$(mktemp)
  corpus="$dir/testdata/fuzz/$name"
  before=$(ls "$corpus" 2>/dev/null || true)
  set +e
  # PIPESTATUS is read right after the pipeline: with pipefail, a
  # "|| true" behind it ran true whenever go test failed, and every
  # failure was reported ok.
  go test -run '^$' -fuzz "^${name}\$" -fuzztime "$this" ${parallel:+-parallel "$parallel"} "./$dir" 2>&1 | tee "$log" | grep -v '^fuzz: elapsed'
  status=("${PIPESTATUS[@]}")
  set -e
  rc=${status[0]}
  execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true) # none when it failed at once
  tail -1 < <(grep '^fuzz: elapsed' "$log") || true
  after=$(ls "$corpus" 2>/dev/null || true)
  if [ "$rc" -eq 0 ]; then
    result=ok
  elif [ "$before" = "$after" ] && grep -qx '    context deadline exceeded' "$log" && ! grep -q -e '^panic' -e 'Failing input written' -e '--- FAIL: .*/' "$log"; then
    # Go's fuzz coordinator (before go1.27) can report its own -fuzztime
    # deadline as a failure when a worker is mid-run as it expires
    # (https://go.dev/issue/75804): no input failed and none was written.
    result="ok (go.dev/issue/75804: the -fuzztime deadline reported as a failure; no failing input)"
  else
    result="FAILED (see above; the input is under $corpus/)"
    failed+=("$t")
  fi
  summary+=("$(printf '%-45s %12s  %s' "$t" "${execs:-0}" "$result")")
  rm -f "$log"
done

echo
printf '%-45s %12s  %s\n' target execs result
printf '%s\n' "${summary[@]}"
echo "fuzz.sh: $(( SECONDS - start ))s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: ${#failed[@]} target(s) failed: ${failed[*]}" >&2
  exit 1
fi
