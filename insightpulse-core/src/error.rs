//! The one error type of the SDK.
//!
//! Rule: every failure a caller can act on is a typed variant; database
//! errors are mapped to these variants in one place per backend and never
//! leak as a bare driver error. A caller without access to another tenant's
//! row gets [`Error::NotFound`] (no existence oracle); a caller inside its own
//! tenant who lacks a permission gets [`Error::PermissionDenied`].

use std::borrow::Cow;

/// Result alias used throughout the SDK.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a presented token (API key, invitation token) was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRejection {
    /// The token does not have the expected shape.
    Malformed,
    /// No token with this lookup prefix exists, or its secret does not match.
    Unknown,
    /// The token was valid but its expiry has passed.
    Expired,
    /// The token was revoked.
    Revoked,
    /// The single-use token was already used.
    AlreadyUsed,
}

impl std::fmt::Display for TokenRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Malformed => "malformed",
            Self::Unknown => "unknown",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::AlreadyUsed => "already used",
        })
    }
}

/// Everything that can go wrong in an SDK call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input failed validation before any I/O; nothing was written.
    #[error("invalid {field}: {reason}")]
    Validation {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        reason: Cow<'static, str>,
    },
    /// The row does not exist, or the caller may not know that it exists.
    #[error("{entity} not found")]
    NotFound {
        /// The kind of row.
        entity: &'static str,
    },
    /// A uniqueness rule was violated.
    #[error("{entity} with {key} already exists")]
    Conflict {
        /// The kind of row.
        entity: &'static str,
        /// The key that collided, e.g. `slug=acme`.
        key: String,
    },
    /// The caller is known in this tenant but lacks the permission.
    #[error("permission denied: {permission} required")]
    PermissionDenied {
        /// The permission (or rule) that was missing.
        permission: Cow<'static, str>,
    },
    /// The operation is not allowed in the row's current state (e.g. removing
    /// the last owner, changing an archived project).
    #[error("{entity}: {reason}")]
    InvalidState {
        /// The kind of row.
        entity: &'static str,
        /// Why the transition is refused.
        reason: Cow<'static, str>,
    },
    /// A presented credential or token was rejected.
    #[error("{credential} rejected: {reason}")]
    Unauthenticated {
        /// What was presented (`api key`, `invitation token`, `password`).
        credential: &'static str,
        /// Why it was rejected.
        reason: TokenRejection,
    },
    /// The backend failed in a way the caller cannot fix (connection lost,
    /// unexpected database error). The source is kept for logging.
    #[error("backend error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// A validation error.
    pub fn validation(field: &'static str, reason: impl Into<Cow<'static, str>>) -> Self {
        Self::Validation {
            field,
            reason: reason.into(),
        }
    }
    /// A not-found error.
    pub fn not_found(entity: &'static str) -> Self {
        Self::NotFound { entity }
    }
    /// A conflict on `key`.
    pub fn conflict(entity: &'static str, key: impl Into<String>) -> Self {
        Self::Conflict {
            entity,
            key: key.into(),
        }
    }
    /// A missing permission.
    pub fn denied(permission: impl Into<Cow<'static, str>>) -> Self {
        Self::PermissionDenied {
            permission: permission.into(),
        }
    }
    /// An invalid state transition.
    pub fn invalid_state(entity: &'static str, reason: impl Into<Cow<'static, str>>) -> Self {
        Self::InvalidState {
            entity,
            reason: reason.into(),
        }
    }
    /// A rejected credential.
    pub fn unauthenticated(credential: &'static str, reason: TokenRejection) -> Self {
        Self::Unauthenticated { credential, reason }
    }
    /// Wraps an unexpected backend failure.
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend(Box::new(e))
    }
}
