#!/usr/bin/env bash
# The whole test suite, from a fresh machine: makes PostgreSQL + pgvector
# available (idempotently), then runs every test of the workspace, the
# PostgreSQL ones against the real database as `authenticated` with RLS on,
# through two PgBouncers in transaction mode (1.18 and 1.24, see
# scripts/setup-pgbouncer.sh), and on a Citus coordinator with one worker
# (scripts/setup-citus.sh), directly and through a PgBouncer.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-db.sh
scripts/setup-pgbouncer.sh
scripts/setup-citus.sh
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export INSIGHTPULSE_PGBOUNCER_118_URL="${INSIGHTPULSE_PGBOUNCER_118_URL:-postgres://postgres@127.0.0.1:6432/postgres}"
export INSIGHTPULSE_PGBOUNCER_124_URL="${INSIGHTPULSE_PGBOUNCER_124_URL:-postgres://postgres@127.0.0.1:6433/postgres}"
if [ -f /usr/share/postgresql/15/extension/citus.control ]; then
  export INSIGHTPULSE_CITUS_URL="${INSIGHTPULSE_CITUS_URL:-postgres://postgres@127.0.0.1:5433/postgres}"
  export INSIGHTPULSE_CITUS_WORKER_URL="${INSIGHTPULSE_CITUS_WORKER_URL:-postgres://postgres@127.0.0.1:5434/postgres}"
  export INSIGHTPULSE_PGBOUNCER_CITUS_URL="${INSIGHTPULSE_PGBOUNCER_CITUS_URL:-postgres://postgres@127.0.0.1:6434/postgres}"
fi
cargo test --workspace --all-features --locked "$@"
# The quickstart on the Citus coordinator: a fresh database, which its
# migrate distributes, then the whole tour.
if [ -n "${INSIGHTPULSE_CITUS_URL:-}" ] && [ "$#" -eq 0 ]; then
  DATABASE_URL="$(scripts/setup-citus.sh db insightpulse_quickstart)" \
    cargo run --quiet --all-features --locked --example quickstart
fi
