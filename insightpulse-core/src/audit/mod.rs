//! The audit trail (seed module 4, `audit_logs`): who did what to which
//! target, when, from where.
//!
//! Rules guarded here:
//! - **Same transaction.** Every security-relevant change the SDK makes
//!   writes its [`AuditEvent`] in the transaction of the change, so an
//!   audited action never happens without its entry and a rolled-back one
//!   leaves none. Host apps add their own events with [`AuditRepo::record_event`].
//! - **Immutable.** Entries are never updated or deleted, except through two
//!   narrow system paths: a retention purge of the oldest entries (which is
//!   itself audited, see [`chain`]) and the erasure of an entry's personal
//!   fields (ip, user agent) for GDPR.
//! - **Tamper-evident.** Each tenant's entries form a hash chain; see
//!   [`chain`] for exactly what a hash covers and how [`chain::verify`]
//!   decides.
//! - **No secrets, no third-party personal data in diffs.** A diff names
//!   ids and settings; [`AuditEvent::new`] refuses keys that name a secret
//!   (`password`, `token`, `*_secret`, …). Personal data stays in its own
//!   table, where retention and erasure reach it.

pub mod chain;
mod model;
mod repo;

pub use model::*;
pub use repo::AuditRepo;
#[cfg(feature = "mocks")]
pub use repo::MockAuditRepo;
