#!/usr/bin/env bash
# Installs what the client matrix (tests/clients/) needs: the npm packages of
# tests/clients/npm (both SDK versions, Node 22, esbuild, playwright-core, React) and
# Debian's chromium. Idempotent and quick when everything is already there. Called by
# .ci/run and, under a lock, by the tests themselves. A missing chromium is not an error
# here: the browser tests then skip with a loud message.
set -euo pipefail
cd "$(dirname "$0")/../clients/npm"

stamp=node_modules/.lightcone-installed
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi

if ! command -v chromium > /dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo > /dev/null 2>&1 && sudo -n true 2> /dev/null; then sudo="sudo -n"; fi
  fi
  if [ "$(id -u)" -eq 0 ] || [ -n "$sudo" ]; then
    if command -v apt-get > /dev/null 2>&1; then
      echo "install_clients: installing Debian's chromium (apt-get)"
      export DEBIAN_FRONTEND=noninteractive
      $sudo apt-get update -qq > /dev/null || true
      $sudo apt-get install -y -qq --no-install-recommends chromium > /dev/null ||
        echo "install_clients: WARNING: apt-get could not install chromium" >&2
    fi
  fi
  if ! command -v chromium > /dev/null 2>&1; then
    echo "install_clients: WARNING: no chromium; the browser and React client tests will SKIP" >&2
  fi
fi
