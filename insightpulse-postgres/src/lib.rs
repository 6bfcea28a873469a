//! # insightpulse-postgres
//!
//! The PostgreSQL backend of InsightPulse Core: the SQL migrations
//! (`migrations/`, one file per module, applied by [`MIGRATOR`] or `psql -f`)
//! and one source module per core module implementing its repository traits
//! with sqlx.
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
//! use insightpulse_postgres::PgBackend;
//! let backend = PgBackend::connect("postgres://app@localhost/app").await?;
//! backend.migrate().await?;
//! let repos = backend.repos();
//! # let _ = repos; Ok(()) }
//! ```

mod audit;
mod error;
mod privacy;
mod projects;
mod tenancy;
pub mod uow;

use insightpulse_core::tenancy::tokens::TokenHasher;
use insightpulse_core::{Clock, Error, Repos, Result, SystemClock};
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::sync::Arc;

/// The environment variable holding the pepper API keys and invitation
/// tokens are hashed under. Every process sharing a database must use the
/// same value; changing it invalidates every issued key and invitation.
pub const PEPPER_ENV: &str = "INSIGHTPULSE_TOKEN_PEPPER";

const DEVELOPMENT_PEPPER: &[u8] = b"insightpulse-development-pepper-not-for-production";

/// The embedded migrations of every module, in order.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The PostgreSQL backend: a pool plus the clock and token hasher every
/// repository shares. Cheap to clone.
#[derive(Clone, Debug)]
pub struct PgBackend {
    pub(crate) pool: PgPool,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) hasher: TokenHasher,
    #[cfg(feature = "bench-unaudited")]
    pub(crate) unaudited: bool,
}

impl PgBackend {
    /// Wraps an existing pool. Its login role may be a superuser or the
    /// schema owner: every unit of work switches to `authenticated` or
    /// `service_role` before touching data. Tokens are hashed under the
    /// pepper in [`PEPPER_ENV`] (a development pepper, with a warning, when
    /// it is unset); time comes from the system clock.
    pub fn from_pool(pool: PgPool) -> Self {
        let hasher = match std::env::var(PEPPER_ENV) {
            Ok(pepper) if !pepper.is_empty() => TokenHasher::new(pepper.into_bytes()),
            _ => {
                tracing::warn!("{PEPPER_ENV} is not set: hashing tokens under the development pepper (not for production)");
                TokenHasher::new(DEVELOPMENT_PEPPER.to_vec())
            }
        };
        Self {
            pool,
            clock: Arc::new(SystemClock),
            hasher,
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
    pub async fn connect(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .connect(url)
            .await
            .map_err(Error::backend)?;
        Ok(Self::from_pool(pool))
    }

    /// Uses `clock` for every timestamp and expiry (tests pass a
    /// [`insightpulse_core::ManualClock`]).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses `hasher` for API keys and invitation tokens.
    pub fn with_token_hasher(mut self, hasher: TokenHasher) -> Self {
        self.hasher = hasher;
        self
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await.map_err(Error::backend)
    }

    /// The pool, for host code that needs its own queries.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Every repository of this backend.
    pub fn repos(&self) -> Repos {
        let this = Arc::new(self.clone());
        Repos {
            tenants: this.clone(),
            users: this.clone(),
            members: this.clone(),
            teams: this.clone(),
            rbac: this.clone(),
            sso: this.clone(),
            api_keys: this.clone(),
            projects: this.clone(),
            audit: this.clone(),
            privacy: this,
        }
    }
}
