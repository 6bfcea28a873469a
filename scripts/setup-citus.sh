#!/usr/bin/env bash
# Makes a local Citus cluster available for the tests, idempotently: a
# coordinator on 127.0.0.1:5433 and one worker on 127.0.0.1:5434, both
# PostgreSQL 15 with Citus 13.2.2, trust auth.
#
# Citus is not packaged for Debian: the shared tool `citus-setup` (beside
# this repository, in ../shared/tools) builds it from the vendored source
# once (~2 min on 2 cores) and creates and starts both nodes; a second run
# finds everything in place and returns at once. Its build needs Kerberos'
# headers (PostgreSQL's libpq-be.h includes gssapi.h), which Debian's
# postgresql-server-dev-15 does not pull in: without them the build fails
# without a word. pgvector (scripts/setup-db.sh) is installed for the same
# PostgreSQL, so both nodes have it too.
#
# The tests find the nodes through INSIGHTPULSE_CITUS_URL and
# INSIGHTPULSE_CITUS_WORKER_URL, which scripts/test.sh exports, and make
# their own databases (tests/it/citus.rs).
#
# `scripts/setup-citus.sh db NAME` (re)creates database NAME on both nodes
# with the extension and the worker registered, and prints its URL.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
setup="${CITUS_SETUP:-$here/../../shared/tools/citus-setup}"
if [ ! -x "$setup" ]; then
  echo "setup-citus: $setup not found: the Citus tests will be skipped" >&2
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ ! -f /usr/share/postgresql/15/extension/citus.control ] && ! dpkg -s libkrb5-dev >/dev/null 2>&1; then
  echo "setup-citus: installing libkrb5-dev (Citus's build needs gssapi.h)" >&2
  $SUDO apt-get install -y -q libkrb5-dev >/dev/null 2>&1 || {
    $SUDO apt-get update -q >/dev/null 2>&1
    $SUDO apt-get install -y -q libkrb5-dev >/dev/null
  }
fi
if [ "${1:-}" = db ]; then
  exec $SUDO "$setup" db "$2"
fi
$SUDO "$setup" up
if [ ! -f /usr/share/postgresql/15/extension/citus.control ]; then
  echo "setup-citus: Citus did not build" >&2
  exit 1
fi
echo "setup-citus: Citus coordinator 127.0.0.1:5433, worker 127.0.0.1:5434" >&2
