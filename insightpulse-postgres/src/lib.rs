//! # insightpulse-postgres
//!
//! The PostgreSQL backend of InsightPulse Core: the SQL migrations
//! (`migrations/`, one file per module, applied by [`PgBackend::migrate`]
//! or `psql -f`) and one source module per core module implementing its
//! repository traits with sqlx.
//!
//! Everything lives in the SDK's own schemas — `insightpulse` (tables,
//! types, functions, and the migration bookkeeping `_migrations`) and
//! `insightpulse_auth` (the caller's claims and the helpers the policies
//! call) — so the SDK shares a database with its host: the host's own
//! tables (a `public.users` too) and its own sqlx migrations are untouched,
//! in either order. Every unit of work sets `search_path` to `insightpulse`
//! transaction-locally; the host's connections keep theirs.
//!
//! The rule this crate guards is DESIGN.md's contract 2: **RLS is the
//! authority**. Every call runs in a transaction that first switches to the
//! `authenticated` role with transaction-local JWT-style claims naming the
//! principal (system calls switch to `service_role`), so the database itself
//! refuses rows of other tenants, whatever the Rust code above it does, and
//! nothing leaks to the next borrower of a pooled connection. See [`uow`].
//! Behind PgBouncer in transaction mode without prepared-statement
//! tracking, set [`PoolerMode::Transaction`] (see [`PgBackend::with_pooler_mode`]).
//!
//! ```no_run
//! # async fn demo() -> insightpulse_core::Result<()> {
//! use insightpulse_core::tenancy::tokens::TokenHasher;
//! use insightpulse_postgres::PgBackend;
//! // The pepper API keys and invitation tokens are hashed under: a secret
//! // of the host's configuration, the same for every process.
//! let pepper = std::env::var("INSIGHTPULSE_TOKEN_PEPPER").expect("configured");
//! let backend = PgBackend::connect("postgres://app@localhost/app", TokenHasher::new(pepper)?).await?;
//! backend.migrate().await?;
//! let repos = backend.repos();
//! # let _ = repos; Ok(()) }
//! ```

mod audit;
mod error;
mod guard;
mod idempotency;
mod jobs;
pub mod migrate;
mod outbox;
mod privacy;
mod projects;
mod rows;
mod tenancy;
pub mod uow;

use insightpulse_core::tenancy::passwords::PasswordCost;
use insightpulse_core::tenancy::tokens::TokenHasher;
use insightpulse_core::{Clock, Error, Repos, Result, SystemClock};
pub use jobs::PgJobWaker;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::sync::Arc;

/// How the backend's statements may use the server connections they run
/// on: whether a statement prepared once can be found again by name.
///
/// Behind PgBouncer in **transaction** mode, consecutive transactions of one
/// client run on different server connections, shared with other clients.
/// A named prepared statement (sqlx's `sqlx_s_N`, or SQL `PREPARE`) then
/// collides with another client's (`42P05 … already exists`) or, worse,
/// executes another client's statement text under its name. Choose
/// [`PoolerMode::Transaction`] there unless the pooler tracks prepared
/// statements itself (PgBouncer ≥ 1.21 with `max_prepared_statements` > 0).
///
/// ```no_run
/// # async fn demo(hasher: insightpulse_core::tenancy::tokens::TokenHasher) -> insightpulse_core::Result<()> {
/// use insightpulse_postgres::{PgBackend, PoolerMode};
/// let backend = PgBackend::connect("postgres://app@pgbouncer:6432/app", hasher)
///     .await?
///     .with_pooler_mode(PoolerMode::Transaction);
/// # let _ = backend; Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PoolerMode {
    /// A server connection per client connection, or a pooler that tracks
    /// protocol-level prepared statements (PgBouncer ≥ 1.21 with
    /// `max_prepared_statements`): statements are prepared once per
    /// connection and found again by name. The hot reads' SQL-level
    /// statements are named after a hash of their text, and prepared in
    /// the same message that first needs them, so they stay right through
    /// such a pooler too.
    #[default]
    Session,
    /// A pooler in transaction mode that does **not** track prepared
    /// statements (PgBouncer before 1.21, or `max_prepared_statements = 0`):
    /// every statement is unnamed (parsed and planned on each call, and
    /// gone when the call ends) and nothing is `PREPARE`d; the hot reads
    /// send their statement text with its arguments inlined as literals.
    Transaction,
}

impl PoolerMode {
    /// Whether statements may be kept prepared under a name.
    pub(crate) fn named_statements(self) -> bool {
        matches!(self, Self::Session)
    }

    /// `sqlx::query(sql)` for this mode: every statement of the crate is
    /// made here (or by the two siblings below), so the mode is decided in
    /// one place. An unnamed statement must run inside a transaction when
    /// going through a transaction-mode pooler (its parse and its execution
    /// are two messages); every statement of the crate does.
    pub(crate) fn query(
        self,
        sql: &str,
    ) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
        sqlx::query(sql).persistent(self.named_statements())
    }

    /// `sqlx::query_as(sql)` for this mode (see [`PoolerMode::query`]).
    pub(crate) fn query_as<O>(
        self,
        sql: &str,
    ) -> sqlx::query::QueryAs<'_, sqlx::Postgres, O, sqlx::postgres::PgArguments>
    where
        O: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
    {
        sqlx::query_as(sql).persistent(self.named_statements())
    }

    /// `sqlx::query_scalar(sql)` for this mode (see [`PoolerMode::query`]).
    pub(crate) fn query_scalar<O>(
        self,
        sql: &str,
    ) -> sqlx::query::QueryScalar<'_, sqlx::Postgres, O, sqlx::postgres::PgArguments>
    where
        (O,): for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
    {
        sqlx::query_scalar(sql).persistent(self.named_statements())
    }
}

/// The PostgreSQL backend: a pool plus the clock, token hasher and
/// password cost every repository shares. Cheap to clone.
#[derive(Clone, Debug)]
pub struct PgBackend {
    pub(crate) pool: PgPool,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) hasher: TokenHasher,
    pub(crate) password_cost: PasswordCost,
    /// The outbox's shared `LISTEN` connection (started on demand).
    pub(crate) wakeups: outbox::Wakeups,
    pub(crate) pooler: PoolerMode,
    /// Where `LISTEN` connects, when not through `pool` (see
    /// [`PgBackend::with_listener`]).
    pub(crate) listener: Option<PgPool>,
    /// PostgreSQL or Citus (see [`PgBackend::cluster`]).
    pub(crate) cluster: Arc<tokio::sync::OnceCell<uow::Cluster>>,
    #[cfg(feature = "bench-unaudited")]
    pub(crate) unaudited: bool,
}

impl PgBackend {
    /// Wraps an existing pool (the host's own may be shared). Its login
    /// role must be able to `SET ROLE` to `authenticated` and
    /// `service_role` (the migrations grant both to the role that runs
    /// them, which must be a superuser or have BYPASSRLS): every unit of
    /// work switches to one of them before touching data.
    /// API keys and invitation tokens are hashed with `hasher` (see
    /// [`TokenHasher::new`]: the pepper is the host's configuration);
    /// time comes from the system clock.
    pub fn from_pool(pool: PgPool, hasher: TokenHasher) -> Self {
        Self {
            pool,
            clock: Arc::new(SystemClock),
            hasher,
            password_cost: PasswordCost::Standard,
            wakeups: outbox::Wakeups::default(),
            pooler: PoolerMode::Session,
            listener: None,
            cluster: Arc::default(),
            #[cfg(feature = "bench-unaudited")]
            unaudited: false,
        }
    }

    /// A backend whose mutations write no audit entries: the baseline that
    /// measures what the automatic audit costs. Benchmarks only.
    #[cfg(feature = "bench-unaudited")]
    #[doc(hidden)]
    pub fn without_audit_for_benchmarks(mut self) -> Self {
        self.unaudited = true;
        self
    }

    /// Connects a pool of up to 10 connections to `url` (options from
    /// [`PgBackend::connect_options`]). In [`PoolerMode::Session`]; behind a
    /// pooler that needs it, add [`PgBackend::with_pooler_mode`].
    pub async fn connect(url: &str, hasher: TokenHasher) -> Result<Self> {
        Self::connect_with(Self::connect_options(url)?, hasher).await
    }

    /// Connects a pool of up to 10 connections with `options` (start from
    /// [`PgBackend::connect_options`] to go through PgBouncer).
    pub async fn connect_with(options: PgConnectOptions, hasher: TokenHasher) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .connect_with(options)
            .await
            .map_err(Error::backend)?;
        Ok(Self::from_pool(pool, hasher))
    }

    /// The connect options of `url` as the SDK uses them, for a host that
    /// builds its own pool: sqlx's defaults without the `extra_float_digits`
    /// startup parameter, which PgBouncer refuses (`unsupported startup
    /// parameter`) unless told to ignore it; PostgreSQL ≥ 12 prints floats
    /// exactly without it.
    pub fn connect_options(url: &str) -> Result<PgConnectOptions> {
        let options: PgConnectOptions = url.parse().map_err(Error::backend)?;
        Ok(options.extra_float_digits(None))
    }

    /// Runs every statement as `mode` requires (see [`PoolerMode`]).
    pub fn with_pooler_mode(mut self, mode: PoolerMode) -> Self {
        self.pooler = mode;
        self
    }

    /// Opens the `LISTEN` connections (the job queue's wake-ups, the
    /// outbox's subscriptions) with `options` instead of through the pool:
    /// behind a transaction-mode pooler, give them a direct URL, since a
    /// listener needs a session of its own (through the pooler, its
    /// notifications may be lost and subscriptions fall back to polling).
    /// Connects lazily, at the first listener.
    ///
    /// ```no_run
    /// # async fn demo(hasher: insightpulse_core::tenancy::tokens::TokenHasher) -> insightpulse_core::Result<()> {
    /// use insightpulse_postgres::{PgBackend, PoolerMode};
    /// let pooled = PgBackend::connect_options("postgres://app@pgbouncer:6432/app")?;
    /// let direct = PgBackend::connect_options("postgres://app@db:5432/app")?;
    /// let backend = PgBackend::connect_with(pooled, hasher)
    ///     .await?
    ///     .with_pooler_mode(PoolerMode::Transaction)
    ///     .with_listener(direct);
    /// # let _ = backend; Ok(()) }
    /// ```
    pub fn with_listener(mut self, options: PgConnectOptions) -> Self {
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect_lazy_with(options);
        self.listener = Some(pool);
        self
    }

    /// The pool `LISTEN` connections come from.
    pub(crate) fn listener_pool(&self) -> &PgPool {
        self.listener.as_ref().unwrap_or(&self.pool)
    }

    /// The mode set by [`PgBackend::with_pooler_mode`].
    pub fn pooler_mode(&self) -> PoolerMode {
        self.pooler
    }

    /// Uses `clock` for every timestamp and expiry (tests pass a
    /// [`insightpulse_core::ManualClock`]).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Hashes new passwords at `cost` ([`PasswordCost::Standard`] unless
    /// told otherwise; tests may pass the fast one).
    pub fn with_password_cost(mut self, cost: PasswordCost) -> Self {
        self.password_cost = cost;
        self
    }

    /// Applies every pending migration of the SDK (see [`migrate`]):
    /// safe to run at every start, from several processes at once, before
    /// or after the host's own migrations. Errors: `Backend` wrapping a
    /// [`migrate::MigrateError`].
    pub async fn migrate(&self) -> Result<()> {
        migrate::run(&self.pool)
            .await
            .map(drop)
            .map_err(Error::backend)
    }

    /// The pool, for host code that needs its own queries.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool and the listeners' connections (see
    /// [`PgBackend::with_listener`]), waiting for calls in flight: for a
    /// host's graceful shutdown.
    pub async fn close(&self) {
        self.pool.close().await;
        if let Some(listener) = &self.listener {
            listener.close().await;
        }
    }

    /// Every repository of this backend.
    pub fn repos(&self) -> Repos {
        let this = Arc::new(self.clone());
        Repos {
            auth: this.clone(),
            tenants: this.clone(),
            users: this.clone(),
            members: this.clone(),
            teams: this.clone(),
            rbac: this.clone(),
            sso: this.clone(),
            api_keys: this.clone(),
            projects: this.clone(),
            audit: this.clone(),
            privacy: this.clone(),
            outbox: this.clone(),
            jobs: this,
        }
    }
}
