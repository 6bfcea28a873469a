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
//! Behind a pooler (see [`PoolerMode`]): every statement of the crate is
//! made by `Tx::query` and its siblings, which leave it unnamed in
//! [`PoolerMode::Transaction`]; there `read_once` inlines its arguments
//! into the statement text instead of `EXECUTE` (re-planned on each call,
//! the price of a pooler that does not track prepared statements). In
//! [`PoolerMode::Session`] a server connection that lacks the statement
//! gets it in the same message as the retried read (`ROLLBACK; … PREPARE
//! …; BEGIN …; EXECUTE …; COMMIT`), so a transaction-mode pooler cannot
//! split the two across server connections; and the statement's name
//! carries a hash of its text, so two versions of the SDK sharing server
//! connections (a rolling deploy) never run each other's text.
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
use crate::{PgBackend, PoolerMode};
use insightpulse_core::{Context, Principal, Result};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::{Query, QueryAs, QueryScalar};
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
    mode: PoolerMode,
}

impl Tx {
    async fn open(backend: &PgBackend, begin: String) -> Result<Self> {
        let mut tx = Self {
            conn: Some(backend.pool.acquire().await.map_err(db)?),
            queued: Vec::new(),
            mode: backend.pooler,
        };
        // Without arguments, sqlx sends the text as one simple-query message.
        tx.execute(begin.as_str()).await.map_err(db)?;
        Ok(tx)
    }

    /// A statement to run on this unit of work (`sqlx::query`, named or
    /// not as the backend's [`PoolerMode`] requires).
    pub(crate) fn query<'q>(&self, sql: &'q str) -> Query<'q, Postgres, PgArguments> {
        self.mode.query(sql)
    }

    /// A statement whose rows decode as `O` (`sqlx::query_as`, see [`Tx::query`]).
    pub(crate) fn query_as<'q, O>(&self, sql: &'q str) -> QueryAs<'q, Postgres, O, PgArguments>
    where
        O: for<'r> FromRow<'r, PgRow>,
    {
        self.mode.query_as(sql)
    }

    /// A statement of one column (`sqlx::query_scalar`, see [`Tx::query`]).
    pub(crate) fn query_scalar<'q, O>(
        &self,
        sql: &'q str,
    ) -> QueryScalar<'q, Postgres, O, PgArguments>
    where
        (O,): for<'r> FromRow<'r, PgRow>,
    {
        self.mode.query_scalar(sql)
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

/// The kind of database a backend talks to, which decides how a unit of
/// work opens (detected once per backend, see [`PgBackend::cluster`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cluster {
    /// One PostgreSQL server: the settings by `set_config`, and the
    /// caller's tenants and grants derived by the first policy that needs
    /// them (migration 0008).
    Postgres,
    /// A Citus coordinator: the settings by `SET LOCAL` (which Citus passes
    /// on to the workers, where the policies run), the caller's tenants and
    /// grants derived as the unit of work opens (`insightpulse_auth.derive`,
    /// migration 0012), then the role taken on the coordinator alone, so
    /// that Citus reaches the workers as the caller (migration 0015).
    Citus,
}

/// The statement that opens a unit of work for `ctx` on PostgreSQL.
pub fn begin_statement(ctx: &Context) -> String {
    begin_statement_on(Cluster::Postgres, ctx)
}

/// The statement that opens a unit of work for `ctx` on `cluster`.
pub fn begin_statement_on(cluster: Cluster, ctx: &Context) -> String {
    open_statement(cluster, "BEGIN", ctx, &[])
}

/// `begin`, then the role, the claims and `settings`, all transaction-local.
fn open_statement(
    cluster: Cluster,
    begin: &str,
    ctx: &Context,
    settings: &[(&str, &str)],
) -> String {
    match cluster {
        Cluster::Postgres => {
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
        Cluster::Citus => format!("{begin}; {}", citus_act_as(ctx, settings)),
    }
}

/// The statements that make an open transaction act as `ctx` (its role,
/// claims and acting tenant, the search path, UTC) with `settings`, all
/// transaction-local and returning no row: for the messages that open,
/// run and commit a unit of work in one trip.
pub(crate) fn act_as(cluster: Cluster, ctx: &Context, settings: &[(&str, &str)]) -> String {
    match cluster {
        Cluster::Postgres => {
            let (role, claims) = role_and_claims(ctx);
            let mut sql = format!(
                "SET LOCAL ROLE {role}; SET LOCAL request.jwt.claims = {}; SET LOCAL {TENANT_SETTING} = '{}'; \
                 SET LOCAL search_path TO {SEARCH_PATH}; SET LOCAL TimeZone = 'UTC'",
                quote_literal(&claims),
                acting_tenant(ctx)
            );
            for (name, value) in settings {
                sql.push_str(&format!("; SET LOCAL {name} = {}", quote_literal(value)));
            }
            sql
        }
        Cluster::Citus => citus_act_as(ctx, settings),
    }
}

/// On Citus, one call does it all (`insightpulse_auth.act_as`, migration
/// 0012): the settings the workers need as `SET LOCAL`s (which Citus 13.2
/// cannot take from a message of several statements), the caller's tenants
/// and grants derived, the role taken.
fn citus_act_as(ctx: &Context, settings: &[(&str, &str)]) -> String {
    let (role, claims) = role_and_claims(ctx);
    let settings: serde_json::Map<String, serde_json::Value> = settings
        .iter()
        .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
        .collect();
    format!(
        "CALL insightpulse_auth.act_as({}, '{}', '{role}', {})",
        quote_literal(&claims),
        acting_tenant(ctx),
        quote_literal(&serde_json::Value::Object(settings).to_string())
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

/// Opens an instrumented block: the future runs inside the operation's span.
macro_rules! traced {
    ($ctx:expr, $op:literal, $body:block) => {{
        use tracing::Instrument as _;
        let span = $crate::uow::span($ctx, $op);
        async move $body.instrument(span).await
    }};
}
pub(crate) use traced;

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
        Tx::open(self, begin_statement_on(self.cluster().await?, ctx)).await
    }

    /// Whether the database is PostgreSQL or a Citus coordinator (asked
    /// once, at the first unit of work).
    pub async fn cluster(&self) -> Result<Cluster> {
        self.cluster
            .get_or_try_init(|| async {
                let citus: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus')",
                )
                .persistent(false)
                .fetch_one(&self.pool)
                .await
                .map_err(db)?;
                Ok(if citus {
                    Cluster::Citus
                } else {
                    Cluster::Postgres
                })
            })
            .await
            .copied()
    }

    /// Opens a read-only unit of work whose statements all see one snapshot
    /// (a long read, such as a chain verification, stays consistent while
    /// writers go on).
    pub(crate) async fn begin_snapshot(&self, ctx: &Context) -> Result<Tx> {
        let begin = open_statement(
            self.cluster().await?,
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            ctx,
            &[],
        );
        Tx::open(self, begin).await
    }

    /// Opens a unit of work whose statements use generic plans. For a
    /// paginated read of a partitioned table under RLS: the policy's
    /// `tenant_id = ANY (…)` on top of the query's `tenant_id = $1` makes a
    /// custom plan expect about one row per partition, so it sorts the
    /// whole time window to return one page; the generic plan keeps the
    /// ordered index scans and stops after the page (measured on the audit
    /// report: 889 buffers and 14 ms → 75 buffers and 2 ms).
    pub(crate) async fn begin_generic_plans(&self, ctx: &Context) -> Result<Tx> {
        // Citus plans a generic plan of a query this complex only by
        // asking every shard ("could not create distributed plan"): there
        // the custom plan routes it to the tenant's shard.
        let cluster = self.cluster().await?;
        let settings: &[(&str, &str)] = match cluster {
            Cluster::Postgres => &[("plan_cache_mode", "force_generic_plan")],
            Cluster::Citus => &[],
        };
        let begin = open_statement(cluster, "BEGIN", ctx, settings);
        Tx::open(self, begin).await
    }

    /// Runs the read-only statement `stmt` with `args` (SQL literals) as
    /// `ctx`, in a single round trip. In [`PoolerMode::Session`] the
    /// statement is prepared on a server connection the first time that
    /// connection needs it; in [`PoolerMode::Transaction`] its text travels
    /// with the arguments inlined. Rows arrive in text format, which sqlx
    /// decodes like binary ones.
    pub(crate) async fn read_once<T>(
        &self,
        ctx: &Context,
        stmt: &Prepared,
        args: &[String],
    ) -> Result<Vec<T>>
    where
        T: for<'r> FromRow<'r, PgRow>,
    {
        let named = self.pooler.named_statements();
        let statement = if named {
            format!("EXECUTE {}({})", stmt.server_name(), args.join(", "))
        } else {
            stmt.inlined(args)
        };
        let sql = format!(
            "BEGIN READ ONLY; {}; {statement}; COMMIT",
            act_as(self.cluster().await?, ctx, &[])
        );
        let mut guard = CloseUnlessFinished {
            conn: self.pool.acquire().await.map_err(db)?,
            finished: false,
        };
        // A query without arguments goes through the simple-query protocol,
        // which runs several statements in one message.
        let conn: &mut sqlx::PgConnection = &mut guard.conn;
        // Set once a server connection lacked the statement: the retry.
        let mut retry: Option<String> = None;
        loop {
            let message = retry.as_deref().unwrap_or(&sql);
            match conn.fetch_all(message).await {
                Ok(rows) => {
                    guard.finished = true;
                    return rows.iter().map(|r| T::from_row(r).map_err(db)).collect();
                }
                Err(e) => {
                    let unprepared = matches!(&e, sqlx::Error::Database(d) if d.code().as_deref() == Some("26000"));
                    if named && unprepared && retry.is_none() {
                        // The batch stopped at EXECUTE inside the open (now
                        // failed) transaction, so a transaction-mode pooler
                        // still links this client to the server connection
                        // that lacks the statement: end that transaction,
                        // prepare and read again in ONE message, which
                        // stays on it. (Sent apart, the PREPARE could land
                        // on another server connection.) Prepared under the
                        // search path it runs with, so its plan is never
                        // re-analysed for another one.
                        retry = Some(format!(
                            "ROLLBACK; BEGIN; SET LOCAL search_path TO {SEARCH_PATH}; PREPARE {} {} AS {}; COMMIT; {sql}",
                            stmt.server_name(),
                            stmt.params,
                            stmt.sql
                        ));
                        continue;
                    }
                    // The batch may have stopped inside an open transaction.
                    if conn.execute("ROLLBACK").await.is_err() {
                        return Err(db(e));
                    }
                    guard.finished = true;
                    return Err(db(e));
                }
            }
        }
    }
}

/// A read-only statement that [`PgBackend::read_once`] prepares once per
/// connection, under a name of its own.
pub(crate) struct Prepared {
    /// Server-side name (`insightpulse_…`), before its hash suffix (see
    /// [`Prepared::server_name`]).
    pub name: &'static str,
    /// Parameter types, e.g. `(uuid, boolean)`.
    pub params: &'static str,
    /// The statement, with `$1`… placeholders (never inside a string
    /// literal or a quoted identifier: [`Prepared::inlined`] replaces them
    /// textually).
    pub sql: &'static str,
}

impl Prepared {
    /// The name it is prepared under: `name` and a hash of its parameter
    /// types and text, so a server connection shared by two versions of the
    /// SDK (a rolling deploy behind a pooler) holds each version's text
    /// under its own name and never runs the other's.
    pub(crate) fn server_name(&self) -> String {
        // FNV-1a: stable across builds and platforms (std's hasher is not).
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in self.params.bytes().chain([0]).chain(self.sql.bytes()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{}_{hash:016x}", self.name)
    }

    /// The statement with each `$n` replaced by `(args[n - 1])::type`, its
    /// declared parameter type, so it means what `EXECUTE` of the prepared
    /// statement means, with nothing prepared.
    pub(crate) fn inlined(&self, args: &[String]) -> String {
        let types = param_types(self.params);
        let mut out = String::with_capacity(
            self.sql.len() + args.iter().map(|a| a.len() + 16).sum::<usize>(),
        );
        let mut rest = self.sql;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let digits = rest[at + 1..]
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len() - at - 1);
            match rest[at + 1..at + 1 + digits].parse::<usize>() {
                Ok(n) if (1..=args.len()).contains(&n) => {
                    let ty = types.get(n - 1).copied().unwrap_or("unknown");
                    out.push_str(&format!("({})::{ty}", args[n - 1]));
                }
                _ => out.push_str(&rest[at..at + 1 + digits]),
            }
            rest = &rest[at + 1 + digits..];
        }
        out.push_str(rest);
        out
    }
}

/// The types of a parameter list such as `(text, uuid, numeric(10, 2))`.
fn param_types(params: &str) -> Vec<&str> {
    let params = params.trim();
    let inner = params
        .strip_prefix('(')
        .and_then(|p| p.strip_suffix(')'))
        .unwrap_or(params);
    let (mut types, mut depth, mut start) = (Vec::new(), 0usize, 0usize);
    for (i, c) in inner.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                types.push(inner[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if !inner[start..].trim().is_empty() {
        types.push(inner[start..].trim());
    }
    types
}

/// `'…'::uuid` for an id.
pub(crate) fn uuid_literal(id: uuid::Uuid) -> String {
    format!("'{id}'::uuid")
}

#[cfg(test)]
mod tests {
    use super::*;

    const STMT: Prepared = Prepared {
        name: "insightpulse_t",
        params: "(uuid, boolean, numeric(10, 2))",
        sql: "SELECT $1 = x AND ($2 OR y) AND z = $3 AND w = $1",
    };

    #[test]
    fn inlined_arguments_keep_their_declared_types() {
        let args = [
            uuid_literal(uuid::Uuid::nil()),
            "true".to_owned(),
            "NULL".to_owned(),
        ];
        assert_eq!(
            STMT.inlined(&args),
            "SELECT ('00000000-0000-0000-0000-000000000000'::uuid)::uuid = x AND ((true)::boolean OR y) \
             AND z = (NULL)::numeric(10, 2) AND w = ('00000000-0000-0000-0000-000000000000'::uuid)::uuid"
        );
    }

    #[test]
    fn two_digit_placeholders_are_not_split() {
        let stmt = Prepared {
            name: "n",
            params: "(int, int, int, int, int, int, int, int, int, int, int)",
            sql: "SELECT $1, $11",
        };
        let args: Vec<String> = (1..=11).map(|n| n.to_string()).collect();
        assert_eq!(stmt.inlined(&args), "SELECT (1)::int, (11)::int");
    }

    #[test]
    fn server_names_differ_with_the_text() {
        let name = STMT.server_name();
        assert!(name.starts_with("insightpulse_t_") && name.len() == "insightpulse_t_".len() + 16);
        let changed = Prepared {
            sql: "SELECT $1 = x AND ($2 OR y) AND z = $3 AND w = $1 ",
            ..STMT
        };
        assert_ne!(changed.server_name(), name);
        assert_eq!(STMT.server_name(), name, "stable");
    }

    #[test]
    fn literals_are_quoted() {
        assert_eq!(quote_literal("a'b"), "'a''b'");
        assert_eq!(quote_literal(r"a\b"), r"E'a\\b'");
    }
}
