#!/usr/bin/env bash
# A throw-away PostgreSQL server for the ledger tests (loopback only, a free port, trust auth, no fsync).
#
#   .ci/postgres.sh start DIR   initdb + start a cluster in DIR; the last stdout line is
#                               ALLIANCE_TEST_PG_URL=postgresql+psycopg://alliance@127.0.0.1:PORT/alliance_test
#   .ci/postgres.sh stop DIR    stop it and delete DIR
#
# Uses Debian's server binaries (/usr/lib/postgresql/<v>/bin); when they are missing and we are root with
# apt-get, installs the `postgresql` package first. PostgreSQL refuses to run as root, so as root the cluster
# belongs to the `postgres` user (created by the package). Exits non-zero, saying why, when it cannot start;
# `make test` then runs without the URL and the PostgreSQL variants skip with that reason.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
if [[ -z "$cmd" || -z "$dir" ]]; then
  echo "usage: $0 start|stop DIR" >&2
  exit 2
fi

find_bin() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [[ -x "$d/initdb" && -x "$d/pg_ctl" ]]; then echo "$d"; return 0; fi
  done
  if command -v pg_config >/dev/null 2>&1 && [[ -x "$(pg_config --bindir)/initdb" ]]; then
    pg_config --bindir; return 0
  fi
  return 1
}

as_owner() {
  if [[ "$(id -u)" = 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
  start)
    bin=$(find_bin) || {
      if [[ "$(id -u)" = 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "installing Debian's postgresql package" >&2
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) >&2 \
          || { echo "postgresql could not be installed" >&2; exit 1; }
        bin=$(find_bin) || { echo "no PostgreSQL server binaries after install" >&2; exit 1; }
      else
        echo "no PostgreSQL server binaries (need Debian's postgresql package, or root to install it)" >&2
        exit 1
      fi
    }
    if [[ "$(id -u)" = 0 ]] && ! id postgres >/dev/null 2>&1; then
      useradd --system --home-dir "$dir" --shell /usr/sbin/nologin postgres
    fi
    mkdir -p "$dir"
    chmod 0700 "$dir"
    [[ "$(id -u)" = 0 ]] && chown postgres "$dir"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_owner "$bin/initdb" -D "$dir/data" -U alliance -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; echo "initdb failed" >&2; exit 1; }
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=100" start >&2 \
      || { cat "$dir/server.log" >&2; echo "the server did not start" >&2; exit 1; }
    "$bin/createdb" -h 127.0.0.1 -p "$port" -U alliance alliance_test >&2
    echo "$bin" >"$dir/bindir"
    echo "ALLIANCE_TEST_PG_URL=postgresql+psycopg://alliance@127.0.0.1:$port/alliance_test"
    ;;
  stop)
    if [[ -f "$dir/bindir" && -d "$dir/data" ]]; then
      as_owner "$(cat "$dir/bindir")/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
