#!/usr/bin/env bash
# The whole test suite: installs the programs the tests need, checks
# formatting and vet, then runs every test with the race detector.
# Under CI=true a test whose program is missing fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
unformatted=$(gofmt -l $(git ls-files '*.go' ':!:vendor/'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
go vet ./...
go test -race -count=1 -timeout 20m ./...
