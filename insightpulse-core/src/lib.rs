//! # insightpulse-core
//!
//! The I/O-free heart of InsightPulse Core: typed ids, the [`Context`] every
//! call carries, the one [`Error`] enum, validated value types, the
//! repository traits of every module and the pure rules they share
//! (permission evaluation, token hashing, password hashing).
//!
//! Nothing here knows about SQL. Backends (`insightpulse-postgres`, the
//! in-memory backend of `insightpulse-testing`) implement the traits and must
//! behave identically; the conformance suite in `insightpulse-testing` is the
//! specification they are both checked against.
//!
//! Module map (the same names are used in every crate):
//!
//! | module | what it guards |
//! |---|---|
//! | [`tenancy`] | tenants, users, memberships, invitations, teams, RBAC, SSO, API keys |
//! | [`projects`] | projects and their environments |
//! | [`audit`] | the tamper-evident audit trail every mutation writes to |
//! | [`privacy`] | data retention policies, consents and user erasure |
//! | [`outbox`] | domain events written with the change, read in commit order by consumers |
//! | [`jobs`] | the one job queue: leases, retries, fairness between tenants, the worker runtime |

/// `FromStr` for an enum with an `as_str` label, built from the labels
/// themselves so each label is written once (backends parse stored labels
/// with it).
macro_rules! parse_by_label {
    ($ty:ty, $field:literal, [$($variant:expr),+ $(,)?]) => {
        impl std::str::FromStr for $ty {
            type Err = $crate::Error;
            fn from_str(s: &str) -> $crate::Result<Self> {
                [$($variant),+]
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| $crate::Error::validation($field, format!("unknown {} {s:?}", $field)))
            }
        }
    };
}

pub mod audit;
pub mod clock;
pub mod context;
pub mod error;
pub mod idempotency;
pub mod ids;
pub mod jobs;
pub mod outbox;
pub mod privacy;
pub mod projects;
pub mod repos;
pub mod sealed;
pub mod tenancy;
pub mod values;

pub use clock::{Clock, ManualClock, SystemClock};
pub use context::{ApiKeyPrincipal, Context, Principal, PrincipalKind, RequestMeta};
pub use error::{Credential, Entity, Error, Rejection, Requirement, Result, StateRule};
pub use ids::*;
pub use repos::{Repos, ReposBuilder};
pub use values::{
    AuditAction, ConsentPurpose, ConsentSource, ConsumerName, Email, EventType, IdempotencyKey,
    Name, PermissionCode, PolicyVersion, Slug, TargetType, TimeZone,
};

/// Re-exported so host apps use the same secret types the SDK returns.
pub use secrecy::{ExposeSecret, SecretString};

/// The crates whose types appear in the SDK's public signatures, re-exported
/// so a host uses the very versions the SDK was built with: instants and
/// durations (`chrono`), the ids' `Uuid` (`uuid`), JSON settings and diffs
/// (`serde_json`), SSO URLs (`url`).
pub use {chrono, serde_json, url, uuid};
