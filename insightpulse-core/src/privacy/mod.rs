//! Data governance (seed module 4, `data_policies` and `consents`):
//! retention and anonymization per data category, consent records, and the
//! erasure of a user (GDPR art. 17).
//!
//! Rules guarded here:
//! - A [`DataPolicy`] is validated in core: a retention of 1–36,500 days
//!   ([`RetentionDays`]), and anonymization rules that name only personal
//!   fields of the category with a treatment that field allows.
//! - Every [`DataCategory`] of the product is declared here, including those
//!   of modules that do not exist yet: a tenant can set their policy now and
//!   the module applies it when it lands ([`DataCategory::is_stored`]; a
//!   module plugs in by handling its category in each backend's
//!   `enforce_retention`).
//! - Consents are append-only: withdrawing records a new entry, so the full
//!   history is kept, and the current state is the latest entry.
//! - Erasure keeps the audit trail (it is evidence) but pseudonymizes it:
//!   the actor's id stays, the account behind it no longer identifies
//!   anyone, and the entries' personal fields are erased.

mod model;
mod repo;

pub use model::*;
#[cfg(feature = "mocks")]
pub use repo::MockPrivacyRepo;
pub use repo::PrivacyRepo;
