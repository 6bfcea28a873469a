//! The RLS-aware unit of work.
//!
//! Rule: no statement touches data before the transaction has switched to
//! the principal's database role and claims, and both are
//! transaction-local, so a pooled connection (or PgBouncer in transaction
//! mode) never carries one caller's identity into the next call.
//!
//! Cost: round trips dominate (measured in `benches/foundation.rs`), so
//! - a general unit of work ([`PgBackend::begin`]) sends `BEGIN`, the role
//!   and the claims in **one** simple-query message, then its statements,
//!   then `COMMIT`;
//! - a hot single-statement read ([`PgBackend::read_once`]) sends
//!   everything — `BEGIN`, role, claims, `EXECUTE` of a server-side
//!   prepared statement, `COMMIT` — in **one** message: one round trip, like
//!   the bare query it replaces, and a cached plan (a plain multi-statement
//!   message would re-plan the RLS-rewritten query on every call, which
//!   costs more than the round trips it saves). PostgreSQL re-applies the
//!   policies itself when a cached plan was made under another role.
//!
//! Values are inlined into those messages, which is safe because they are
//! built here only from typed ids, booleans and validated permission codes
//! (and quoted regardless).
//!
//! | principal | role | claims |
//! |---|---|---|
//! | user | `authenticated` | `{"sub": user}` |
//! | API key | `authenticated` | `{"api_key_id", "tenant_id", "project_id", "environment_id", "permissions"}` |
//! | system | `service_role` (BYPASSRLS) | `{}` |

use crate::error::db;
use crate::PgBackend;
use insightpulse_core::{Context, Principal, Result};
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgRow;
use sqlx::{Executor, FromRow, Postgres, Transaction};
use tracing::Span;

/// A transaction running as the context's principal.
pub type Tx = Transaction<'static, Postgres>;

/// The database role and the claims JSON for a context.
pub fn role_and_claims(ctx: &Context) -> (&'static str, String) {
    match ctx.principal() {
        Principal::User(user) => (
            "authenticated",
            serde_json::json!({ "sub": user }).to_string(),
        ),
        Principal::ApiKey(key) => (
            "authenticated",
            serde_json::json!({
                "api_key_id": key.key_id,
                "tenant_id": key.tenant_id,
                "project_id": key.project_id,
                "environment_id": key.environment_id,
                "permissions": key.permissions,
            })
            .to_string(),
        ),
        Principal::System { .. } => ("service_role", "{}".to_owned()),
    }
}

/// The statement that opens a unit of work for `ctx`.
pub fn begin_statement(ctx: &Context) -> String {
    open_statement("BEGIN", ctx)
}

fn open_statement(begin: &str, ctx: &Context) -> String {
    let (role, claims) = role_and_claims(ctx);
    format!(
        "{begin}; SELECT set_config('role', '{role}', true), set_config('request.jwt.claims', {}, true)",
        quote_literal(&claims)
    )
}

/// A SQL string literal for `s` (doubling quotes; `E''` form when `s` holds
/// backslashes, so it is right whatever `standard_conforming_strings` says).
pub fn quote_literal(s: &str) -> String {
    let body = s.replace('\'', "''");
    if body.contains('\\') {
        format!("E'{}'", body.replace('\\', "\\\\"))
    } else {
        format!("'{body}'")
    }
}

/// The tracing span of one operation: its name, tenant and principal kind,
/// never a secret.
pub(crate) fn span(ctx: &Context, op: &'static str) -> Span {
    tracing::info_span!(
        "insightpulse",
        op,
        tenant = ctx.tenant_id().map(tracing::field::display),
        principal = ctx.principal_kind().as_str(),
        backend = "postgres",
    )
}

/// Closes the connection instead of returning it to the pool unless the
/// one-trip transaction is known to be finished: a future dropped half-way
/// (or a failed `ROLLBACK`) must never hand an open transaction, with its
/// role and claims, to the next borrower.
struct CloseUnlessFinished {
    conn: PoolConnection<Postgres>,
    finished: bool,
}

impl Drop for CloseUnlessFinished {
    fn drop(&mut self) {
        if !self.finished {
            self.conn.close_on_drop();
        }
    }
}

impl PgBackend {
    /// Opens a unit of work for `ctx`: one round trip.
    pub(crate) async fn begin(&self, ctx: &Context) -> Result<Tx> {
        self.pool.begin_with(begin_statement(ctx)).await.map_err(db)
    }

    /// Opens a read-only unit of work whose statements all see one snapshot
    /// (a long read, such as a chain verification, stays consistent while
    /// writers go on).
    pub(crate) async fn begin_snapshot(&self, ctx: &Context) -> Result<Tx> {
        let begin = open_statement("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", ctx);
        self.pool.begin_with(begin).await.map_err(db)
    }

    /// Runs the read-only prepared statement `stmt` with `args` (SQL
    /// literals) as `ctx`, in a single round trip. The statement is prepared
    /// on a connection the first time that connection needs it. Rows arrive
    /// in text format, which sqlx decodes like binary ones.
    pub(crate) async fn read_once<T>(
        &self,
        ctx: &Context,
        stmt: &Prepared,
        args: &[String],
    ) -> Result<Vec<T>>
    where
        T: for<'r> FromRow<'r, PgRow>,
    {
        let (role, claims) = role_and_claims(ctx);
        let sql = format!(
            "BEGIN READ ONLY; SET LOCAL ROLE {role}; SET LOCAL request.jwt.claims = {};
             SET LOCAL TimeZone = 'UTC'; EXECUTE {}({}); COMMIT",
            quote_literal(&claims),
            stmt.name,
            args.join(", ")
        );
        let mut guard = CloseUnlessFinished {
            conn: self.pool.acquire().await.map_err(db)?,
            finished: false,
        };
        // A query without arguments goes through the simple-query protocol,
        // which runs several statements in one message.
        let conn: &mut sqlx::PgConnection = &mut guard.conn;
        let mut prepared_now = false;
        loop {
            match conn.fetch_all(sql.as_str()).await {
                Ok(rows) => {
                    guard.finished = true;
                    return rows.iter().map(|r| T::from_row(r).map_err(db)).collect();
                }
                Err(e) => {
                    // The batch stopped at the error inside an open transaction.
                    if conn.execute("ROLLBACK").await.is_err() {
                        return Err(db(e));
                    }
                    let unprepared = matches!(&e, sqlx::Error::Database(d) if d.code().as_deref() == Some("26000"));
                    if !unprepared || prepared_now {
                        guard.finished = true;
                        return Err(db(e));
                    }
                    conn.execute(
                        format!("PREPARE {} {} AS {}", stmt.name, stmt.params, stmt.sql).as_str(),
                    )
                    .await
                    .map_err(db)?;
                    prepared_now = true;
                }
            }
        }
    }
}

/// A read-only statement that [`PgBackend::read_once`] prepares once per
/// connection, under a name of its own.
pub(crate) struct Prepared {
    /// Server-side name (`insightpulse_…`).
    pub name: &'static str,
    /// Parameter types, e.g. `(uuid, boolean)`.
    pub params: &'static str,
    /// The statement, with `$1`… placeholders.
    pub sql: &'static str,
}

/// `'…'::uuid` for an id.
pub(crate) fn uuid_literal(id: uuid::Uuid) -> String {
    format!("'{id}'::uuid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_quoted() {
        assert_eq!(quote_literal("a'b"), "'a''b'");
        assert_eq!(quote_literal(r"a\b"), r"E'a\\b'");
    }
}
