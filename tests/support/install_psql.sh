#!/usr/bin/env bash
# Installs Debian's postgresql-client (psql) for tests/e2e/pgwire_test.ts when it is missing.
# Idempotent: does nothing when psql is on PATH. Needs root (or password-less sudo) to install;
# without psql the psql session test is skipped with a loud message.
set -euo pipefail
if command -v psql >/dev/null 2>&1; then
  exit 0
fi
sudo=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
  else
    echo "psql is not installed and this is not root: run 'apt-get install -y postgresql-client' as root" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q >&2
"${sudo[@]}" apt-get install -y -q --no-install-recommends postgresql-client >&2
command -v psql >/dev/null
