#!/usr/bin/env bash
# Runs before every `deno task test`: installs what the tests need and the repository does not
# hold, so that the README's test command works on a fresh machine with only Node and npm.
#   install_debian.sh   Debian packages (strace, psql, ss, clang-14/lld-14, nats-server)
#   install_clients.sh  the client matrix's npm packages (both SDK versions, Node 22, playwright) and
#                       Debian's chromium
#   bench/baselines     the SQLite baseline's npm packages (better-sqlite3, built from source)
# Each step returns at once when its things are present (a stamp or `command -v`), so a warm run
# costs well under a second. A step that fails is reported and the tests still run: the tests that
# need what is missing then fail (or, for the baseline and the browser, skip) with a message naming
# the script to run by hand. Exit status 1 when a step failed (.ci/run retries once).
set -uo pipefail
cd "$(dirname "$0")/../.."
failed=0
step() {
  if ! "$@"; then
    echo "setup: WARNING: '$*' failed; the tests that need it will say so" >&2
    failed=1
  fi
}
step tests/support/install_debian.sh
step tests/support/install_clients.sh
baselines() {
  local stamp=bench/baselines/node_modules/.lightcone-installed
  local want
  want=$(sha256sum bench/baselines/package-lock.json | cut -d' ' -f1)
  [ "$(cat "$stamp" 2>/dev/null || true)" = "$want" ] && return 0
  (cd bench/baselines && npm ci --no-audit --no-fund --loglevel=error) || return 1
  echo "$want" >"$stamp"
}
step baselines
exit "$failed"
