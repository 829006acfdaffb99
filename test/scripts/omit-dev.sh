#!/usr/bin/env bash
# A production install (issue 10 item 5): a clone of HEAD, `npm ci --omit=dev`, then the `stele` commands an
# officer and a gateway use must run with runtime dependencies only: `stele verify --help`, `stele gateway --help`,
# and `stele verify` on our vectors with the documented exit codes (3: verified offline, anchor not checked;
# 1: failed). A runtime import of a devDependency fails here. About 1-2 minutes (npm's cache; no network when warm).
#   test/scripts/omit-dev.sh [scratch-dir]
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
dir="${1:-$(mktemp -d /tmp/stele-omit-dev.XXXXXX)}"
trap 'rm -rf "$dir"' EXIT
git clone -q "$repo" "$dir/stele"
cd "$dir/stele"
npm ci --omit=dev --no-audit --no-fund --prefer-offline >/dev/null
expect() { # expect CODE command...
  local want=$1; shift
  local got=0
  "$@" >/dev/null || got=$?
  if [ "$got" -ne "$want" ]; then echo "omit-dev: '$*' exited $got, expected $want" >&2; exit 1; fi
}
expect 0 npx --no-install stele verify --help
expect 0 npx --no-install stele gateway --help
expect 0 npx --no-install stele --version
expect 3 npx --no-install stele verify test/vectors/bundles/valid.bundle.json --offline
expect 1 npx --no-install stele verify test/vectors/bundles/tampered-value.bundle.json --offline
# the same from the TypeScript sources (tsx is a runtime dependency of @stele/cli for this path)
expect 0 env STELE_FROM_SOURCE=1 npx --no-install stele verify --help
echo "omit-dev: npm ci --omit=dev, then stele verify/gateway run"
