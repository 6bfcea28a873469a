#!/usr/bin/env bash
# Makes PostgreSQL 15 with pgvector available on 127.0.0.1:5432, idempotently.
#
# - installs PostgreSQL 15 from Debian when it is missing;
# - builds pgvector 0.8 from Debian's trixie *source* package when
#   `vector.control` is not installed. The trixie deb-src line lives in a
#   throw-away apt configuration used for that one call only, so no trixie
#   binary package can ever be installed on the Debian 12 system;
# - starts (or restarts, see below) the cluster.
#
# Safe to run any number of times; does nothing that is already done.
set -euo pipefail

PG_MAJOR=15
PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
restart_needed=0

apt_updated=0
apt_update() {
  if [ "$apt_updated" -eq 0 ]; then
    $SUDO apt-get update -qq
    apt_updated=1
  fi
}

if ! [ -x "/usr/lib/postgresql/$PG_MAJOR/bin/postgres" ]; then
  apt_update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "postgresql-$PG_MAJOR" >/dev/null
fi

vector_control="$(/usr/lib/postgresql/$PG_MAJOR/bin/pg_config --sharedir 2>/dev/null || echo /usr/share/postgresql/$PG_MAJOR)/extension/vector.control"
if ! [ -f "$vector_control" ]; then
  echo "setup-db: building pgvector from Debian's source package" >&2
  apt_update
  # Installing the server headers may upgrade postgresql-15 in place; a server
  # that is already running then fails to load the new plpgsql.so, so it is
  # restarted below.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
    "postgresql-server-dev-$PG_MAJOR" build-essential dpkg-dev >/dev/null
  restart_needed=1
  work="$(mktemp -d)"
  mkdir -p "$work/lists/partial" "$work/etc"
  echo "deb-src http://deb.debian.org/debian trixie main" >"$work/etc/trixie-src.list"
  apt_opts=(-o "Dir::Etc::SourceList=$work/etc/trixie-src.list"
            -o "Dir::Etc::SourceParts=/dev/null"
            -o "Dir::State::Lists=$work/lists")
  $SUDO apt-get "${apt_opts[@]}" update -qq
  (cd "$work" && apt-get "${apt_opts[@]}" source -qq pgvector >/dev/null)
  src="$(find "$work" -maxdepth 1 -type d -name 'pgvector-*' | head -n1)"
  make -s -C "$src" PG_CONFIG="$PG_CONFIG" >/dev/null
  $SUDO make -s -C "$src" PG_CONFIG="$PG_CONFIG" install >/dev/null
  rm -rf "$work"
fi

start_cmd=(pg_ctlcluster --skip-systemctl-redirect "$PG_MAJOR" main)
if [ "$restart_needed" -eq 1 ] && pg_lsclusters -h | awk '$1=='"$PG_MAJOR"' && $2=="main" {print $4}' | grep -q online; then
  $SUDO "${start_cmd[@]}" restart
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  $SUDO "${start_cmd[@]}" start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432 >/dev/null
echo "setup-db: PostgreSQL $PG_MAJOR with pgvector is ready on 127.0.0.1:5432" >&2
