#!/usr/bin/env bash
# Installs what the browser and SDK tests of package web need, and nothing
# else: Debian's chromium at /usr/bin/chromium (no browser download by
# Playwright) and the npm packages of web/e2e (playwright-core, ws) from its
# package-lock.json. Node.js 20+ and npm must be there already (they are on
# every machine of this project; Debian's nodejs package is the fallback).
# Safe to run again: each step is skipped when its result is present.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> web-deps: %s\n' "$*" >&2; }

# apt runs as root directly, else through sudo when there is one.
apt_install() {
	local sudo=()
	if [ "$(id -u)" != 0 ]; then
		command -v sudo >/dev/null 2>&1 || { echo "web-deps: need root (or sudo) to apt-get install $*" >&2; exit 1; }
		sudo=(sudo)
	fi
	export DEBIAN_FRONTEND=noninteractive
	"${sudo[@]}" apt-get update -qq
	"${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	log "installing nodejs and npm (Debian)"
	apt_install nodejs npm
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
	echo "web-deps: Node.js 20+ is required, found $(node --version)" >&2
	exit 1
fi

if [ ! -x /usr/bin/chromium ]; then
	log "installing chromium (Debian)"
	apt_install chromium
fi

# npm ci only when node_modules is missing or older than the lock file.
dir=web/e2e
stamp=$dir/node_modules/.package-lock.json
if [ ! -f "$stamp" ] || [ "$dir/package-lock.json" -nt "$stamp" ]; then
	log "npm ci in $dir"
	(cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
fi
log "ready: node $(node --version), $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
