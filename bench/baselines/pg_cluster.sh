#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for the keynote baseline, from Debian's packages.
#
#   pg_cluster.sh install               apt-get install postgresql when initdb is missing (root only)
#   pg_cluster.sh start DIR PORT        initdb in DIR/data, start on 127.0.0.1:PORT (trust auth,
#                                       serializable by default, sockets in DIR), wait until ready
#   pg_cluster.sh stop DIR              pg_ctl stop -m fast, then remove DIR
#   pg_cluster.sh version               prints the server version (postgres --version)
#
# As root, the cluster runs as the `postgres` user (initdb refuses root). Debian's own cluster
# (/etc/postgresql/*/main) is never touched.
set -euo pipefail

pg_bindir() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
      echo "$dir"
      return 0
    fi
  done
  local initdb
  initdb=$(command -v initdb 2>/dev/null || true)
  if [[ -n "$initdb" ]]; then
    dirname "$(readlink -f "$initdb")"
    return 0
  fi
  return 1
}

as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

command=${1:-}
case "$command" in
  install)
    if pg_bindir >/dev/null; then
      exit 0
    fi
    if [[ $(id -u) -ne 0 ]]; then
      echo "PostgreSQL is not installed; run 'sudo apt-get install -y postgresql' first" >&2
      exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q postgresql >&2
    # The package starts Debian's default cluster; the benchmark uses its own, so stop that one.
    if command -v pg_ctlcluster >/dev/null; then
      for conf in /etc/postgresql/*/main; do
        [[ -d "$conf" ]] || continue
        version=$(basename "$(dirname "$conf")")
        pg_ctlcluster "$version" main stop >/dev/null 2>&1 || true
      done
    fi
    pg_bindir >/dev/null
    ;;
  start)
    dir=${2:?usage: pg_cluster.sh start DIR PORT}
    port=${3:?usage: pg_cluster.sh start DIR PORT}
    bindir=$(pg_bindir)
    mkdir -p "$dir"
    if [[ $(id -u) -eq 0 ]]; then
      chown postgres: "$dir"
      chmod 700 "$dir"
    fi
    as_owner "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-instructions >"$dir/initdb.log" 2>&1 || {
      cat "$dir/initdb.log" >&2
      exit 1
    }
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir -c default_transaction_isolation=serializable -c max_connections=100" \
      start >&2
    ;;
  stop)
    dir=${2:?usage: pg_cluster.sh stop DIR}
    if [[ -f "$dir/data/postmaster.pid" ]]; then
      bindir=$(pg_bindir)
      as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >&2 || true
    fi
    rm -rf "$dir"
    ;;
  version)
    "$(pg_bindir)/postgres" --version
    ;;
  *)
    echo "usage: pg_cluster.sh install | start DIR PORT | stop DIR | version" >&2
    exit 2
    ;;
esac
