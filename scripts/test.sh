#!/usr/bin/env bash
# The whole test suite, from a fresh machine: makes PostgreSQL + pgvector
# available (idempotently), then runs every test of the workspace, the
# PostgreSQL ones against the real database as `authenticated` with RLS on.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-db.sh
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
cargo test --workspace --all-features --locked "$@"
