#!/usr/bin/env bash
# Private, throwaway PostgreSQL 15 cluster for tests.
#
#   postgres.sh start DIR   initialise a cluster in DIR (created if missing), start it on a free
#                           loopback port, create database parley_test and print exactly one line:
#                           postgresql://postgres@127.0.0.1:PORT/parley_test
#   postgres.sh stop DIR    stop the cluster in DIR (fast shutdown); DIR is left for the caller.
#
# Trust authentication on 127.0.0.1 only, no Unix socket, fsync off: for tests, never for data.
# initdb refuses to run as root, so when run as root the server runs as the `postgres` user and
# DIR is handed to it (so DIR's parents must be searchable by that user; a mktemp -d under /tmp is).
# Diagnostics go to stderr and DIR/server.log; stdout carries only the URL. Starting a cluster that
# is already running prints its URL again.
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
DB_NAME=parley_test

die() { echo "postgres.sh: $*" >&2; exit 1; }

usage() { die "usage: $0 start|stop DIR"; }

[[ $# -eq 2 ]] || usage
cmd=$1
dir=$2
[[ -x $PG_BIN/pg_ctl ]] || die "PostgreSQL binaries not found in $PG_BIN"

# Run a PostgreSQL binary as the cluster owner: `postgres` when we are root, ourselves otherwise.
as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

port_in_use() {
  ss -Htln "sport = :$1" 2>/dev/null | grep -q . && return 0
  return 1
}

start() {
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  local data=$dir/data
  if [[ $(id -u) -eq 0 ]]; then
    chown postgres: "$dir"
  fi
  chmod 700 "$dir"
  cd "$dir"  # the server user may not be able to enter the caller's working directory

  if [[ ! -f $data/PG_VERSION ]]; then
    as_owner "$PG_BIN/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
      --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    # Only loopback TCP connections are accepted; everything else is rejected outright.
    cat >"$data/pg_hba.conf" <<'HBA'
host all all 127.0.0.1/32 trust
HBA
  fi

  # Already running (a second `start`): report the same URL.
  if [[ -f $dir/port ]] && as_owner "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    echo "postgresql://postgres@127.0.0.1:$(cat "$dir/port")/$DB_NAME"
    return 0
  fi

  local port attempt
  for attempt in 1 2 3 4 5 6 7 8; do
    port=$((20000 + RANDOM % 40000))
    port_in_use "$port" && continue
    if as_owner "$PG_BIN/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 30 -s \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        start >/dev/null 2>&1; then
      echo "$port" >"$dir/port"
      as_owner "$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qAt -v ON_ERROR_STOP=1 \
        -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'" | grep -q 1 ||
        as_owner "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres "$DB_NAME" >&2 ||
        die "createdb failed"
      echo "postgresql://postgres@127.0.0.1:$port/$DB_NAME"
      return 0
    fi
    echo "postgres.sh: start on port $port failed (attempt $attempt)" >&2
  done
  tail -n 20 "$dir/server.log" >&2 || true
  die "could not start PostgreSQL"
}

stop() {
  local data=$dir/data
  [[ -f $data/postmaster.pid ]] || return 0
  cd "$dir"
  as_owner "$PG_BIN/pg_ctl" -D "$data" -m fast -w -t 30 -s stop >/dev/null 2>&1 || die "pg_ctl stop failed"
}

case $cmd in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
