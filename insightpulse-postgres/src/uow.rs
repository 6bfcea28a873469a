//! The RLS-aware unit of work.
//!
//! Rule: no statement touches data before the transaction has switched to
//! the principal's database role and claims, and both are
//! transaction-local, so a pooled connection (or PgBouncer in transaction
//! mode) never carries one caller's identity into the next call.
//!
//! Cost: round trips dominate (measured in `benches/foundation.rs`), so
//! - a general unit of work (`PgBackend::begin`, a [`Tx`]) sends `BEGIN`,
//!   the role and the claims in **one** simple-query message, then its
//!   statements, then its audit entries and `COMMIT` in one more message;
//! - a hot single-statement read (`PgBackend::read_once`) sends
//!   everything — `BEGIN`, role, claims, `EXECUTE` of a server-side
//!   prepared statement, `COMMIT` — in **one** message: one round trip, like
//!   the bare query it replaces, and a cached plan (a plain multi-statement
//!   message would re-plan the RLS-rewritten query on every call, which
//!   costs more than the round trips it saves). PostgreSQL re-applies the
//!   policies itself when a cached plan was made under another role.
//!
//! Values are inlined into those messages, which is safe because they are
//! built only from typed ids, instants, booleans, validated labels and codes,
//! and JSON the SDK serialised, and every one is quoted ([`quote_literal`]).
//!
//! Each also sets `search_path` to the SDK's schema (see [`SEARCH_PATH`]),
//! transaction-locally like the role: the SDK's statements name its tables
//! unqualified, and a host sharing the pool keeps its own search path.
//!
//! Each also names the tenant the call acts in ([`TENANT_SETTING`]); the
//! database derives the caller's memberships and grants itself, once per
//! unit of work (migration 0008), and never takes them from the SDK.
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
use sqlx::{Executor, FromRow, Postgres};
use tracing::Span;

/// A unit of work: a transaction on a pooled connection, running as the
/// context's principal. It derefs to the connection for its statements.
///
/// Audit entries queued on it travel with `COMMIT`, in the
/// same message: an audited mutation costs no extra round trip for its
/// entry (measured: ~90 µs of ~330 µs the entry cost when sent on its own).
///
/// Dropped without [`Tx::commit`] (an early `?` return, a cancelled
/// future), the transaction is rolled back on a spawned task before the
/// connection goes back to the pool, or the connection is closed when no
/// runtime is there to do it: an open transaction, with its role and
/// claims, never reaches the next borrower.
pub struct Tx {
    conn: Option<PoolConnection<Postgres>>,
    queued: Vec<String>,
}

impl Tx {
    async fn open(pool: &sqlx::PgPool, begin: String) -> Result<Self> {
        let mut tx = Self {
            conn: Some(pool.acquire().await.map_err(db)?),
            queued: Vec::new(),
        };
        // Without arguments, sqlx sends the text as one simple-query message.
        tx.execute(begin.as_str()).await.map_err(db)?;
        Ok(tx)
    }

    /// Queues a statement to run just before `COMMIT`, in the same message.
    /// Its values must be inlined as SQL literals (see [`quote_literal`]).
    pub(crate) fn queue(&mut self, statement: String) {
        self.queued.push(statement);
    }

    /// Runs the queued statements and commits, in one round trip. On an
    /// error nothing is committed (the transaction is rolled back).
    pub async fn commit(mut self) -> std::result::Result<(), sqlx::Error> {
        let mut message = std::mem::take(&mut self.queued);
        message.push("COMMIT".to_owned());
        let outcome = self.execute(message.join("; ").as_str()).await;
        if outcome.is_ok() {
            // Committed: the connection goes back to the pool as it is.
            if let Some(conn) = self.conn.take() {
                drop(conn);
            }
        }
        outcome.map(|_| ())
    }
}

impl std::ops::Deref for Tx {
    type Target = sqlx::PgConnection;
    fn deref(&self) -> &Self::Target {
        self.conn
            .as_ref()
            .expect("a unit of work holds its connection until it ends")
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.conn
            .as_mut()
            .expect("a unit of work holds its connection until it ends")
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if conn.execute("ROLLBACK").await.is_err() {
                        conn.close_on_drop();
                    }
                });
            }
            Err(_) => conn.close_on_drop(),
        }
    }
}

/// The search path of every unit of work: the SDK's schema, then the
/// session's temporary schema explicitly last (so a temporary table of a
/// host sharing the connection can never shadow an SDK table); built-ins
/// come first from `pg_catalog` as always.
pub const SEARCH_PATH: &str = "insightpulse, pg_temp";

/// The transaction-local setting that names the tenant a unit of work acts
/// in (empty for none). The tenant tables' policies show rows of that
/// tenant only, and only when the claims' principal acts in it (see
/// migration 0008): the SDK says where, the database decides whether.
pub const TENANT_SETTING: &str = "insightpulse.tenant_id";

/// The value of [`TENANT_SETTING`] for `ctx`: a uuid, or empty.
fn acting_tenant(ctx: &Context) -> String {
    ctx.tenant_id().map(|t| t.0.to_string()).unwrap_or_default()
}

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
    open_statement("BEGIN", ctx, &[])
}

/// `begin`, then the role, the claims and `settings`, all transaction-local.
fn open_statement(begin: &str, ctx: &Context, settings: &[(&str, &str)]) -> String {
    let (role, claims) = role_and_claims(ctx);
    let mut sql = format!(
        "{begin}; SELECT set_config('role', '{role}', true), set_config('request.jwt.claims', {}, true), \
         set_config('{TENANT_SETTING}', '{}', true), set_config('search_path', '{SEARCH_PATH}', true)",
        quote_literal(&claims),
        acting_tenant(ctx)
    );
    for (name, value) in settings {
        sql.push_str(&format!(
            ", set_config({}, {}, true)",
            quote_literal(name),
            quote_literal(value)
        ));
    }
    sql
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
        Tx::open(&self.pool, begin_statement(ctx)).await
    }

    /// Opens a read-only unit of work whose statements all see one snapshot
    /// (a long read, such as a chain verification, stays consistent while
    /// writers go on).
    pub(crate) async fn begin_snapshot(&self, ctx: &Context) -> Result<Tx> {
        let begin = open_statement("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", ctx, &[]);
        Tx::open(&self.pool, begin).await
    }

    /// Opens a unit of work whose statements use generic plans. For a
    /// paginated read of a partitioned table under RLS: the policy's
    /// `tenant_id = ANY (…)` on top of the query's `tenant_id = $1` makes a
    /// custom plan expect about one row per partition, so it sorts the
    /// whole time window to return one page; the generic plan keeps the
    /// ordered index scans and stops after the page (measured on the audit
    /// report: 889 buffers and 14 ms → 75 buffers and 2 ms).
    pub(crate) async fn begin_generic_plans(&self, ctx: &Context) -> Result<Tx> {
        let begin = open_statement("BEGIN", ctx, &[("plan_cache_mode", "force_generic_plan")]);
        Tx::open(&self.pool, begin).await
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
             SET LOCAL {TENANT_SETTING} = '{}'; SET LOCAL search_path TO {SEARCH_PATH};
             SET LOCAL TimeZone = 'UTC'; EXECUTE {}({}); COMMIT",
            quote_literal(&claims),
            acting_tenant(ctx),
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
                    // Prepared under the search path it runs with, so its
                    // plan is never re-analysed for another one.
                    conn.execute(
                        format!(
                            "BEGIN; SET LOCAL search_path TO {SEARCH_PATH}; PREPARE {} {} AS {}; COMMIT",
                            stmt.name, stmt.params, stmt.sql
                        )
                        .as_str(),
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
