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
//!   [`projects`], [`audit`] and [`privacy`], [`Repos`]), and the crates
//!   whose types its signatures use ([`chrono`], [`uuid`], [`serde_json`],
//!   [`url`]);
//! * `postgres` (feature `postgres`): `postgres::PgBackend`, which lives in
//!   its own schemas (`insightpulse`, `insightpulse_auth`) of a database it
//!   can share with the host;
//! * `testing` (feature `testing`): the in-memory backend, fixtures and the
//!   conformance suite (the mockall mocks of every trait with feature
//!   `mocks`).
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use insightpulse::{Email, Name, PermissionCode, RequestMeta, SecretString, Slug, TimeZone};
//! use insightpulse::tenancy::{NewTenant, SignUp};
//!
//! let repos = insightpulse::testing::memory::MemoryBackend::new().repos();
//! // One call, all or nothing: the user, their password, their first tenant.
//! let ada = repos.auth.sign_up(RequestMeta::default(), SignUp {
//!     email: Email::parse("ada@acme.io")?,
//!     full_name: None,
//!     password: SecretString::from("correct horse battery"),
//!     tenant: NewTenant {
//!         slug: Slug::parse("acme")?, name: Name::parse("Acme")?, timezone: TimeZone::parse("Europe/Paris")?,
//!     },
//! }).await?;
//! repos.rbac.require_permission(&ada.ctx, PermissionCode::DASHBOARD_DELETE, None).await?;
//! # Ok::<(), insightpulse::Error>(()) }).unwrap();
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

pub use insightpulse_core::*;

/// The PostgreSQL backend.
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres {
    pub use insightpulse_postgres::*;
}

/// The in-memory backend, fixtures, the conformance suite and mocks.
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing {
    pub use insightpulse_testing::*;
}

/// The README's examples, compiled as doctests so they cannot rot.
#[cfg(all(doctest, feature = "postgres", feature = "testing"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
