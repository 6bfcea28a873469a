#!/usr/bin/env bash
# Makes PgBouncers in transaction mode available, idempotently: two in
# front of the PostgreSQL of scripts/setup-db.sh (127.0.0.1:5432) and one in
# front of the Citus coordinator of scripts/setup-citus.sh (127.0.0.1:5433):
#
# - 127.0.0.1:6432  PgBouncer 1.18, Debian 12's own `pgbouncer` package: it
#   does not track prepared statements, so the SDK reaches it with
#   `PoolerMode::Transaction` (every statement unnamed);
# - 127.0.0.1:6433  PgBouncer 1.24, built from Debian trixie's *source*
#   package (like pgvector in setup-db.sh: the trixie deb-src line lives in a
#   throw-away apt configuration used for that one call, so no trixie binary
#   package can reach the system), with `max_prepared_statements = 200`: the
#   SDK's default mode works through it;
# - 127.0.0.1:6434  the same PgBouncer 1.24 in front of the Citus
#   coordinator (it connects when a client comes, so it may start before
#   the coordinator does).
#
# Both pool at most 2 server connections per database and user (so clients
# really share them), reach every database (`* = …`, as `#[sqlx::test]`
# creates one per test) and let `postgres` in without a password, like the
# server they front. Neither sets `ignore_startup_parameters`: the SDK must
# not send a startup parameter PgBouncer refuses.
#
# Each runs from its own directory under the cache (config, pid file, log),
# started with `-d`; a running one is left alone unless its config changed,
# then restarted. The 1.24 binary is built once and kept in the cache.
#
# The tests find them through INSIGHTPULSE_PGBOUNCER_118_URL,
# INSIGHTPULSE_PGBOUNCER_124_URL and INSIGHTPULSE_PGBOUNCER_CITUS_URL, which
# scripts/test.sh exports.
set -euo pipefail

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ "$(id -u)" -eq 0 ]; then
  CACHE=/var/cache/insightpulse
  # PgBouncer refuses to run as root.
  RUN_AS=postgres
else
  CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/insightpulse"
  RUN_AS=""
fi
PGB124_VERSION_WANTED="1.24"
PGB124_BIN="$CACHE/pgbouncer-1.24/pgbouncer"

apt_updated=0
apt_update() {
  if [ "$apt_updated" -eq 0 ]; then
    $SUDO apt-get update -qq
    apt_updated=1
  fi
}

# --- PgBouncer 1.18 from Debian 12 -------------------------------------------
if ! [ -x /usr/sbin/pgbouncer ]; then
  echo "setup-pgbouncer: installing Debian's pgbouncer package" >&2
  apt_update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq pgbouncer >/dev/null
  # The package starts its own service on 6432 where an init system lets it;
  # this script runs its own instances instead.
  if [ -f /var/run/postgresql/pgbouncer.pid ]; then
    $SUDO kill "$(cat /var/run/postgresql/pgbouncer.pid)" 2>/dev/null || true
  fi
fi

# Where an init system runs the package's own service (it listens on 6432),
# it is stopped and disabled: this script runs its own instances.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet pgbouncer 2>/dev/null; then
  $SUDO systemctl disable --now pgbouncer >/dev/null 2>&1 || true
fi

# --- PgBouncer 1.24 from Debian trixie's source package ----------------------
if ! [ -x "$PGB124_BIN" ] || ! "$PGB124_BIN" --version | grep -q "PgBouncer $PGB124_VERSION_WANTED"; then
  echo "setup-pgbouncer: building PgBouncer $PGB124_VERSION_WANTED from Debian trixie's source package" >&2
  apt_update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
    build-essential dpkg-dev pkg-config libevent-dev libssl-dev >/dev/null
  work="$(mktemp -d)"
  chmod 755 "$work"  # apt's download user must reach it
  mkdir -p "$work/lists/partial" "$work/etc"
  echo "deb-src http://deb.debian.org/debian trixie main" >"$work/etc/trixie-src.list"
  apt_opts=(-o "Dir::Etc::SourceList=$work/etc/trixie-src.list"
            -o "Dir::Etc::SourceParts=/dev/null"
            -o "Dir::State::Lists=$work/lists")
  $SUDO apt-get "${apt_opts[@]}" update -qq
  (cd "$work" && apt-get "${apt_opts[@]}" source -qq pgbouncer >/dev/null)
  src="$(find "$work" -maxdepth 1 -type d -name 'pgbouncer-*' | head -n1)"
  (cd "$src" && ./configure -q --without-cares >/dev/null && make -s -j"$(nproc)" >/dev/null)
  "$src/pgbouncer" --version | grep -q "PgBouncer $PGB124_VERSION_WANTED"
  $SUDO mkdir -p "$(dirname "$PGB124_BIN")"
  $SUDO install -m 755 "$src/pgbouncer" "$PGB124_BIN"
  rm -rf "$work"
fi

# --- Running them --------------------------------------------------------------
# start_pooler NAME BINARY PORT SERVER_PORT [EXTRA CONFIG LINE...]
start_pooler() {
  local name="$1" bin="$2" port="$3" server_port="$4"
  shift 4
  local dir="$CACHE/$name"
  local ini="$dir/pgbouncer.ini" pid="$dir/pgbouncer.pid"
  $SUDO mkdir -p "$dir"
  [ -z "$RUN_AS" ] || $SUDO chown "$RUN_AS" "$dir"
  local wanted
  wanted="$(cat <<EOF
; Written by scripts/setup-pgbouncer.sh; binary: $bin ($("$bin" --version | head -n1))
[databases]
* = host=127.0.0.1 port=$server_port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/users.txt
admin_users = postgres
pool_mode = transaction
default_pool_size = 2
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 500
max_db_connections = 0
server_lifetime = 3600
logfile = $dir/pgbouncer.log
pidfile = $pid
$(printf '%s\n' "$@")
EOF
)"
  local running=0
  if [ -f "$pid" ] && kill -0 "$(cat "$pid")" 2>/dev/null; then
    running=1
  fi
  if [ "$running" -eq 1 ] && [ -f "$ini" ] && [ "$(cat "$ini")" = "$wanted" ]; then
    echo "setup-pgbouncer: $name already running on 127.0.0.1:$port" >&2
    return
  fi
  if [ "$running" -eq 1 ]; then
    echo "setup-pgbouncer: $name's config changed, restarting" >&2
    local old
    old="$(cat "$pid")"
    $SUDO kill "$old" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
  fi
  printf '%s\n' "$wanted" | $SUDO tee "$ini" >/dev/null
  printf '"postgres" ""\n' | $SUDO tee "$dir/users.txt" >/dev/null
  if [ -n "$RUN_AS" ]; then
    $SUDO chown "$RUN_AS" "$ini" "$dir/users.txt"
    $SUDO rm -f "$pid"
    "$bin" -d -u "$RUN_AS" "$ini"
  else
    rm -f "$pid"
    "$bin" -d "$ini"
  fi
  # Listening: pg_isready says 0 (accepting) or 1 (rejecting: the server
  # behind it is not up yet), not 2 (no answer).
  listening() { local rc=0; pg_isready -q -h 127.0.0.1 -p "$port" || rc=$?; [ "$rc" -le 1 ]; }
  for _ in $(seq 1 50); do listening && break; sleep 0.1; done
  listening
  echo "setup-pgbouncer: $name started on 127.0.0.1:$port" >&2
}

start_pooler pgbouncer-1.18 /usr/sbin/pgbouncer 6432 5432
start_pooler pgbouncer-1.24 "$PGB124_BIN" 6433 5432 "max_prepared_statements = 200"
start_pooler pgbouncer-1.24-citus "$PGB124_BIN" 6434 5433 "max_prepared_statements = 200"
