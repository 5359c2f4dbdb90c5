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

# Services of the integration tests (Redis, PostgreSQL): started when they
# are installed but not running. Tests skip without them locally and fail
# under CI=true (internal/testenv).
redis_up() { (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; }
pg_up() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
if ! redis_up && command -v redis-server >/dev/null 2>&1; then
	log "starting redis-server on 127.0.0.1:6379"
	mkdir -p /tmp/tollgate-redis
	redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
		--dir /tmp/tollgate-redis --logfile /tmp/tollgate-redis/redis.log || true
fi
if ! pg_up && command -v pg_ctlcluster >/dev/null 2>&1; then
	log "starting PostgreSQL"
	pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
for i in $(seq 1 50); do redis_up && pg_up && break; sleep 0.2; done
if ! redis_up || ! pg_up; then
	msg="Redis (127.0.0.1:6379) or PostgreSQL (127.0.0.1:5432, trust auth, database test) is not running;
start them (see README.md, \"Running the tests\") or point TOLLGATE_TEST_REDIS_URL / TOLLGATE_TEST_POSTGRES_URL at them."
	if [ "${CI:-}" = "true" ]; then
		echo "$msg" >&2
		exit 1
	fi
	log "$msg (their tests will skip)"
fi

log "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './node_modules/*'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:" >&2
	echo "$unformatted" >&2
	exit 1
fi

log "go vet"
go vet ./...

log "browser and Node.js dependencies of the web tests"
bash scripts/web-deps.sh

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
