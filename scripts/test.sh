#!/usr/bin/env bash
# Runs every test of tollgate: vet, the Go tests with the race detector, and
# short runs of every fuzz target. It installs or starts what the tests need.
# Under CI=true nothing may be skipped: a missing service fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

# Go toolchain.
if ! command -v go >/dev/null 2>&1; then
	export PATH="$PATH:/usr/local/go/bin"
fi
command -v go >/dev/null 2>&1 || { echo "Go 1.26+ is required (https://go.dev/dl/)" >&2; exit 1; }

log "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './node_modules/*'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:" >&2
	echo "$unformatted" >&2
	exit 1
fi

log "go vet"
go vet ./...

log "go test -race"
go test -race -count=1 -timeout 20m ./...

# Every fuzz target runs briefly so a regression in a parser shows up here,
# not only when someone fuzzes by hand. FUZZTIME=0 skips this step locally.
# Count-based, not time-based: time-based runs sometimes end "context deadline
# exceeded" with no failing input (golang/go#75804).
fuzztime=${FUZZTIME:-2000x}
if [ "$fuzztime" != "0" ]; then
	log "fuzz targets (${fuzztime} each)"
	for pkg in $(go list ./...); do
		dir=$(go list -f '{{.Dir}}' "$pkg")
		for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
			log "  $pkg $target"
			go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" >/dev/null
		done
	done
fi

echo "all tests passed"
