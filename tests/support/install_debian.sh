#!/usr/bin/env bash
# Installs the Debian packages the tests need, only when they are missing (CI starts on a fresh
# machine). Idempotent: a machine that has them already is left alone and nothing is fetched.
#   strace             tests/e2e/fsync_order_test.ts traces the real server's fdatasync and socket writes
#   postgresql-client  tests/e2e/pgwire_test.ts runs a psql session against the server
#   iproute2           `ss -K`: the server closes connections past their header/idle timeout
#                      (server/conn_reaper.ts, tests/e2e/http_timeouts_test.ts)
#   clang-14 lld-14    tests/support/wasm_fixtures.ts compiles the C WebAssembly fixture modules
#   nats-server        tests/e2e/replication_test.ts runs a NATS JetStream server (2.9.x in Debian 12)
#   openssl            tests/e2e/replication_tls_test.ts makes a test CA and server certificate
set -euo pipefail
missing=()
command -v strace >/dev/null 2>&1 || missing+=(strace)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
command -v ss >/dev/null 2>&1 || missing+=(iproute2)
command -v clang-14 >/dev/null 2>&1 || missing+=(clang-14)
command -v wasm-ld-14 >/dev/null 2>&1 || missing+=(lld-14)
command -v nats-server >/dev/null 2>&1 || missing+=(nats-server)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_debian.sh: missing ${missing[*]} and apt-get is not available; install them by hand" >&2
  exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  # Never a password prompt (`deno task test` would wait on it): sudo only when it needs none.
  if ! command -v sudo >/dev/null 2>&1 || ! sudo -n true 2>/dev/null; then
    echo "install_debian.sh: missing ${missing[*]}; installing them needs root or sudo without a" \
      "password (sudo -n); install them by hand: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  sudo=(sudo -n)
fi
echo "install_debian.sh: installing ${missing[*]}"
# Offline, apt gives up after one short try per source instead of minutes of retries (env:
# sudo drops DEBIAN_FRONTEND from the environment).
apt_options=(-o Acquire::Retries=0 -o Acquire::http::Timeout=20 -o Acquire::https::Timeout=20)
if ! "${sudo[@]}" apt-get "${apt_options[@]}" update -qq ||
  ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_options[@]}" install -y -qq \
    --no-install-recommends "${missing[@]}"; then
  echo "install_debian.sh: apt-get could not install ${missing[*]} (offline, or no such" \
    "package in the configured sources?)" >&2
  exit 1
fi
