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
mod idempotency;
mod jobs;
pub mod migrate;
mod outbox;
mod privacy;
mod projects;
mod tenancy;
pub mod uow;

use insightpulse_core::tenancy::passwords::PasswordCost;
use insightpulse_core::tenancy::tokens::TokenHasher;
use insightpulse_core::{Clock, Error, Repos, Result, SystemClock};
pub use jobs::PgJobWaker;
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::sync::Arc;

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

    /// Connects a pool of up to 10 connections to `url`.
    pub async fn connect(url: &str, hasher: TokenHasher) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .connect(url)
            .await
            .map_err(Error::backend)?;
        Ok(Self::from_pool(pool, hasher))
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
