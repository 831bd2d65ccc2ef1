#!/usr/bin/env bash
# Private, throwaway Redis server for tests.
#
#   redis.sh start DIR   start redis-server on 127.0.0.1 and a free port, its files in DIR (created
#                        if missing), wait until it answers PING and print exactly one line:
#                        redis://127.0.0.1:PORT/0
#   redis.sh stop DIR    stop the server of DIR (SIGTERM, no save) and wait for it to exit; DIR is
#                        left for the caller.
#
# No persistence (no RDB snapshots, no AOF), loopback TCP only, no Unix socket: for tests, never for
# data. The server daemonizes; its pid is in DIR/redis.pid (tests pause it with SIGSTOP/SIGCONT to
# play an unreachable Redis), its port in DIR/port, its log in DIR/server.log. Diagnostics go to
# stderr and DIR/server.log; stdout carries only the URL. Starting a server that is already running
# prints its URL again.
set -euo pipefail

REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_CLI=${REDIS_CLI:-redis-cli}

die() { echo "redis.sh: $*" >&2; exit 1; }

usage() { die "usage: $0 start|stop DIR"; }

[[ $# -eq 2 ]] || usage
cmd=$1
dir=$2
command -v "$REDIS_SERVER" >/dev/null 2>&1 || die "redis-server not found (scripts/bootstrap installs it)"
command -v "$REDIS_CLI" >/dev/null 2>&1 || die "redis-cli not found (scripts/bootstrap installs it)"

port_in_use() {
  ss -Htln "sport = :$1" 2>/dev/null | grep -q . && return 0
  return 1
}

# The pid in DIR/redis.pid when that process is alive (a paused one included), else nothing.
running_pid() {
  local pid
  [[ -f $dir/redis.pid ]] || return 1
  pid=$(cat "$dir/redis.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  echo "$pid"
}

# Alive and not a zombie (the daemon's parent is init or a subreaper, which may reap it late).
alive() {
  local state
  state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ -n $state && $state != Z* ]]
}

ping() { [[ $("$REDIS_CLI" -h 127.0.0.1 -p "$1" ping 2>/dev/null) == PONG ]]; }

start() {
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  chmod 700 "$dir"

  # Already running (a second `start`): report the same URL.
  if [[ -f $dir/port ]] && running_pid >/dev/null && ping "$(cat "$dir/port")"; then
    echo "redis://127.0.0.1:$(cat "$dir/port")/0"
    return 0
  fi

  local port attempt pid i
  for attempt in 1 2 3 4 5 6 7 8; do
    port=$((20000 + RANDOM % 40000))
    port_in_use "$port" && continue
    rm -f "$dir/redis.pid"
    # The daemonized server writes its pid file only once it listens; a failed bind exits instead.
    "$REDIS_SERVER" --bind 127.0.0.1 --port "$port" --unixsocket '' --protected-mode yes \
      --save '' --appendonly no --dir "$dir" --dbfilename dump.rdb \
      --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/server.log" --loglevel notice \
      --maxclients 1000 >/dev/null 2>&1 || true
    for ((i = 0; i < 100; i++)); do  # up to 10 s
      if pid=$(running_pid) && ping "$port"; then
        echo "$port" >"$dir/port"
        echo "redis://127.0.0.1:$port/0"
        return 0
      fi
      # No pid file after the first second: the server gave up (port taken meanwhile).
      if ((i >= 10)) && ! running_pid >/dev/null; then break; fi
      sleep 0.1
    done
    if pid=$(running_pid); then kill -KILL "$pid" 2>/dev/null || true; fi
    echo "redis.sh: start on port $port failed (attempt $attempt)" >&2
  done
  tail -n 20 "$dir/server.log" >&2 2>/dev/null || true
  die "could not start Redis"
}

stop() {
  local pid i
  pid=$(running_pid) || { rm -f "$dir/redis.pid"; return 0; }
  kill -CONT "$pid" 2>/dev/null || true  # a paused server cannot act on SIGTERM
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do  # up to 10 s, then SIGKILL
    alive "$pid" || { rm -f "$dir/redis.pid"; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$dir/redis.pid"
}

case $cmd in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
