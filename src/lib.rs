//! # InsightPulse Core
//!
//! The backbone of a multi-tenant SaaS — tenants, users, RBAC, API keys,
//! projects and environments, a tamper-evident audit trail, retention,
//! consents and erasure, … — on PostgreSQL guarded by Row Level
//! Security, with an in-memory backend that obeys the same rules for host
//! apps' tests.
//!
//! This facade re-exports the three crates:
//!
//! * everything of [`insightpulse_core`] at the top level (ids, [`Context`],
//!   [`Error`], value types, the repository traits in [`tenancy`],
//!   [`projects`], [`audit`] and [`privacy`], [`Repos`]);
//! * [`postgres`] (feature `postgres`): [`postgres::PgBackend`];
//! * [`testing`] (feature `testing`): the in-memory backend, fixtures and
//!   the conformance suite (mockall mocks with feature `mocks`).
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use insightpulse::{Context, Email, Name, Slug, TimeZone};
//! use insightpulse::tenancy::{NewTenant, NewUser};
//!
//! let repos = insightpulse::testing::memory::MemoryBackend::new().repos();
//! let ada = repos.users.create_user(&Context::system("sign-up"), NewUser {
//!     email: Email::parse("ada@acme.io")?, full_name: None,
//! }).await?;
//! let acme = repos.tenants.create_tenant(&Context::user(ada.id), NewTenant {
//!     slug: Slug::parse("acme")?, name: Name::parse("Acme")?, timezone: TimeZone::parse("Europe/Paris")?,
//! }).await?;
//! let ctx = Context::user(ada.id).in_tenant(acme.id);
//! assert!(repos.rbac.has_permission(&ctx, &"dashboard.delete".parse()?, None).await?);
//! # Ok::<(), insightpulse::Error>(()) }).unwrap();
//! ```

pub use insightpulse_core::*;

/// The PostgreSQL backend.
#[cfg(feature = "postgres")]
pub mod postgres {
    pub use insightpulse_postgres::*;
}

/// The in-memory backend, fixtures, the conformance suite and mocks.
#[cfg(feature = "testing")]
pub mod testing {
    pub use insightpulse_testing::*;
}
