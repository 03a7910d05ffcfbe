#!/usr/bin/env bash
# The whole test suite: installs what the tests need (the C compiler for
# -race, and the programs the tests run against), checks formatting and
# vet, then runs every test with the race detector.
# Under CI=true a test whose program is missing fails instead of skipping,
# and CI also runs, after the tests:
#   - the benchmarks listed in ci_benchmarks, once each (-benchtime 1x):
#     measurements that take too long for a test but must not rot; they
#     fail only on an error, never on a figure;
#   - every fuzz target for FUZZTIME (default 5s) each, at most FUZZBUDGET
#     (default 10m) in all: scripts/fuzz.sh;
#   - the real-cluster test, deploy/k8s/ on a single-node Kubernetes
#     (scripts/k8s/test.sh; its Kubernetes programs are cached in
#     ${FLOTILLA_CACHE:-/var/cache/flotilla}/k8s: ~20 min the first time).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_go test
scripts/install-test-deps.sh
if command -v git >/dev/null 2>&1 && git rev-parse --git-dir >/dev/null 2>&1; then
  gofiles=$(git ls-files '*.go' ':!:vendor/')
else # a copy without git (a tarball)
  gofiles=$(find . -name '*.go' -not -path './vendor/*' -not -path './.*')
fi
unformatted=$(gofmt -l $gofiles)
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
go vet ./...
echo "test: go test -race ./... (the first run compiles everything with the race detector; it takes minutes)" >&2
CGO_ENABLED=1 go test -race -count=1 -timeout 20m ./...

case "${CI:-}" in true|1) ;; *) exit 0 ;; esac

# package:benchmark regexp
ci_benchmarks=(
  "./cluster:^BenchmarkFailureDetection$"
)
for b in "${ci_benchmarks[@]}"; do
  go test -run '^$' -bench "${b#*:}" -benchtime 1x -count=1 -timeout 10m "${b%%:*}"
done

FUZZTIME=${FUZZTIME:-5s} FUZZBUDGET=${FUZZBUDGET:-10m} scripts/fuzz.sh

echo "test: the real-cluster test (scripts/k8s/test.sh)" >&2
scripts/k8s/test.sh
