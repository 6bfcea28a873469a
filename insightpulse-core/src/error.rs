//! The one error type of the SDK.
//!
//! Rule: every failure a caller can act on is a typed variant whose parts
//! are enums or field names, never free text a host would have to match on;
//! database errors are mapped to these variants in one place per backend and
//! never leak as a bare driver error. Both backends produce the same variant
//! with the same parts for the same failure, so the same `Display` — and
//! that text is safe to log: it names entities, fields, permissions and
//! rules, never a value the caller sent (no email, no slug, no token).
//!
//! A caller without access to another tenant's row gets
//! [`Error::NotFound`] (no existence oracle); a caller inside its own tenant
//! who lacks a permission gets [`Error::PermissionDenied`].
//!
//! Hosts that answer HTTP map [`Error::code`] (stable, one per variant) to a
//! status; see `examples/host_axum.rs`.
//!
//! ```
//! use insightpulse_core::{Entity, Error};
//! let e = Error::conflict(Entity::Tenant, "slug");
//! assert_eq!(e.to_string(), "a tenant with this slug already exists");
//! assert_eq!(e.code(), "conflict");
//! assert!(e.is_conflict());
//! assert_eq!(e.entity(), Some(Entity::Tenant));
//! ```

use crate::values::PermissionCode;
use std::borrow::Cow;
use std::fmt;

/// Result alias used throughout the SDK.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Declares a field-less enum with a stable snake_case label per variant
/// (`as_str`) and a human text (`Display`).
macro_rules! labelled_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident => $label:literal, $text:literal; )+ }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// The stable machine label (snake_case).
            pub fn as_str(self) -> &'static str {
                match self { $( Self::$variant => $label, )+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self { $( Self::$variant => $text, )+ })
            }
        }
    };
}

labelled_enum! {
    /// The kind of row an error is about.
    Entity {
        /// A tenant (organization).
        Tenant => "tenant", "tenant";
        /// A user account.
        User => "user", "user";
        /// A membership of a user in a tenant.
        Member => "member", "member";
        /// An invitation.
        Invitation => "invitation", "invitation";
        /// A team.
        Team => "team", "team";
        /// A user's membership in a team.
        TeamMember => "team_member", "team member";
        /// A role.
        Role => "role", "role";
        /// A role granted to a user.
        RoleGrant => "role_grant", "role grant";
        /// A permission of the catalog.
        Permission => "permission", "permission";
        /// An SSO provider.
        SsoProvider => "sso_provider", "SSO provider";
        /// A federated identity.
        Identity => "identity", "identity";
        /// An API key.
        ApiKey => "api_key", "API key";
        /// A project.
        Project => "project", "project";
        /// An environment of a project.
        Environment => "environment", "environment";
        /// An entry of the audit trail.
        AuditEntry => "audit_entry", "audit entry";
        /// A data-retention policy.
        DataPolicy => "data_policy", "data policy";
        /// A recorded consent.
        Consent => "consent", "consent";
        /// An idempotency key already used for another request.
        IdempotencyKey => "idempotency_key", "idempotency key";
        /// A job of the queue.
        Job => "job", "job";
    }
}

impl Entity {
    /// The indefinite article of the entity's text, for messages.
    fn article(self) -> &'static str {
        match self {
            Self::ApiKey
            | Self::Invitation
            | Self::Identity
            | Self::Environment
            | Self::SsoProvider
            | Self::AuditEntry
            | Self::IdempotencyKey => "an",
            _ => "a",
        }
    }
}

labelled_enum! {
    /// A credential presented to the SDK.
    Credential {
        /// An API key (`ipk_…`).
        ApiKey => "api_key", "API key";
        /// An invitation token (`ipinv_…`).
        InvitationToken => "invitation_token", "invitation token";
        /// An email and password at sign-in.
        Password => "password", "email or password";
    }
}

labelled_enum! {
    /// Why a presented credential was not accepted.
    Rejection {
        /// It does not have the expected shape.
        Malformed => "malformed", "is malformed";
        /// Nothing matches it (no such token or account, or a wrong secret
        /// or password — indistinguishably).
        Unknown => "unknown", "is not recognised";
        /// It was valid, but its expiry has passed.
        Expired => "expired", "has expired";
        /// It was revoked.
        Revoked => "revoked", "was revoked";
        /// The single-use token was already used.
        AlreadyUsed => "already_used", "was already used";
    }
}

labelled_enum! {
    /// A rule about a row's state that refused a change.
    StateRule {
        /// A tenant must keep at least one active owner.
        LastActiveOwner => "last_active_owner", "a tenant must keep at least one active owner";
        /// Built-in roles belong to every tenant and cannot be changed.
        BuiltinRole => "builtin_role", "built-in roles cannot be changed";
        /// An archived project accepts no changes but unarchiving and deletion.
        ProjectArchived => "project_archived", "the project is archived";
        /// A disabled SSO provider refuses logins.
        ProviderDisabled => "provider_disabled", "the SSO provider is disabled";
        /// An accepted invitation can no longer be revoked.
        InvitationAccepted => "invitation_accepted", "the invitation was already accepted";
        /// A consent can only be withdrawn while it is given.
        ConsentNotGiven => "consent_not_given", "the user does not currently consent to this purpose";
    }
}

labelled_enum! {
    /// Why a sealed value (`crate::sealed`) was refused. The text never
    /// holds key material, plaintext or ciphertext.
    SealRejection {
        /// The bytes are not a sealed value: truncated, garbage, a field of
        /// the wrong size, or a plaintext that is not the text asked for.
        Malformed => "malformed", "is malformed";
        /// It was written in a format version this build does not read.
        UnsupportedVersion => "unsupported_version", "has a format version this build does not read";
        /// Its data key was wrapped under a key id the key ring does not hold
        /// (a retired key, or a ring configured without it). Key ids are not
        /// secret: the id is written in the clear in every sealed value.
        UnknownKey => "unknown_key", "was wrapped under a key the key ring does not hold";
        /// Authentication failed: other key material under that id, altered
        /// bytes, or a value bound to another tenant, table, row or version —
        /// deliberately indistinguishable.
        Unopenable => "unopenable", "cannot be opened (wrong key, altered, or bound to another row)";
    }
}

labelled_enum! {
    /// What is wrong with a key ring's configuration (`crate::sealed`). The
    /// text never holds a key.
    KeyRingFault {
        /// The variable holding the keys is not set (or empty).
        Missing => "missing", "is not set";
        /// An entry is not `id:base64key`.
        MalformedEntry => "malformed_entry", "has an entry that is not id:base64key";
        /// A key id is not 1 to 64 of `A-Z a-z 0-9 . _ -`.
        InvalidKeyId => "invalid_key_id", "has a key id that is not 1 to 64 of A-Z a-z 0-9 . _ -";
        /// A key is not standard padded base64.
        InvalidBase64 => "invalid_base64", "has a key that is not standard padded base64";
        /// A key does not decode to 32 bytes (AES-256).
        WrongKeyLength => "wrong_key_length", "has a key that is not 32 bytes";
        /// Two entries share a key id.
        DuplicateKeyId => "duplicate_key_id", "names a key id twice";
        /// The key named current is not among the keys.
        UnknownCurrent => "unknown_current", "names a current key it does not hold";
    }
}

/// What a refused caller would have needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Requirement {
    /// A permission of the catalog (in the context's tenant, at the asked level).
    Permission(PermissionCode),
    /// An active owner of the tenant.
    TenantOwner,
    /// A signed-in user (not an API key or the system).
    User,
    /// The system (a named system context).
    System,
    /// The user the call is about, or the system.
    SameUserOrSystem,
    /// The user the invitation was sent to.
    InvitedUser,
    /// Nothing the SDK checks refused it, but the database's row-level
    /// security did (a change raced with the check).
    RowSecurity,
}

impl Requirement {
    /// A stable machine label: the permission code, or `tenant_owner`,
    /// `user`, `system`, `same_user_or_system`, `invited_user`, `row_security`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Permission(p) => p.as_str(),
            Self::TenantOwner => "tenant_owner",
            Self::User => "user",
            Self::System => "system",
            Self::SameUserOrSystem => "same_user_or_system",
            Self::InvitedUser => "invited_user",
            Self::RowSecurity => "row_security",
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Permission(p) => write!(f, "the permission {p}"),
            Self::TenantOwner => f.write_str("an owner of the tenant"),
            Self::User => f.write_str("a signed-in user"),
            Self::System => f.write_str("the system"),
            Self::SameUserOrSystem => f.write_str("the user themselves or the system"),
            Self::InvitedUser => f.write_str("the invited user"),
            Self::RowSecurity => f.write_str("a row the database's row-level security allows"),
        }
    }
}

impl From<PermissionCode> for Requirement {
    fn from(p: PermissionCode) -> Self {
        Self::Permission(p)
    }
}

/// Everything that can go wrong in an SDK call.
///
/// Match on the variant and its typed parts; show [`Error::code`] to API
/// clients; log the `Display` text (it holds no personal data or secret).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input failed validation before any I/O; nothing was written.
    #[error("invalid {field}: {reason}")]
    Validation {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it (never the value itself).
        reason: Cow<'static, str>,
    },
    /// The row does not exist, or the caller may not know that it exists.
    #[error("{entity} not found")]
    NotFound {
        /// The kind of row.
        entity: Entity,
    },
    /// A uniqueness rule was violated.
    #[error("{} {entity} with this {field} already exists", entity.article())]
    Conflict {
        /// The kind of row.
        entity: Entity,
        /// The field (or fields, `a+b`) that must be unique; never its value.
        field: &'static str,
    },
    /// The caller is known in this tenant but lacks what the call needs.
    #[error("permission denied: requires {required}")]
    PermissionDenied {
        /// What was missing.
        required: Requirement,
    },
    /// The operation is not allowed in the row's current state.
    #[error("{entity}: {rule}")]
    InvalidState {
        /// The kind of row.
        entity: Entity,
        /// The rule that refused it.
        rule: StateRule,
    },
    /// A presented credential was rejected.
    #[error("{credential} {reason}")]
    Unauthenticated {
        /// What was presented.
        credential: Credential,
        /// Why it was rejected.
        reason: Rejection,
    },
    /// A sealed value could not be read or opened (see `crate::sealed`).
    #[error("sealed value {reason}")]
    Sealed {
        /// Why.
        reason: SealRejection,
    },
    /// The key ring of sealed values is misconfigured (see `crate::sealed`).
    #[error("key ring configuration {fault}")]
    KeyRing {
        /// What is wrong with it.
        fault: KeyRingFault,
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
    pub fn not_found(entity: Entity) -> Self {
        Self::NotFound { entity }
    }
    /// A conflict on `field` of `entity`.
    pub fn conflict(entity: Entity, field: &'static str) -> Self {
        Self::Conflict { entity, field }
    }
    /// A refusal for want of `required`.
    pub fn denied(required: impl Into<Requirement>) -> Self {
        Self::PermissionDenied {
            required: required.into(),
        }
    }
    /// An invalid state transition.
    pub fn invalid_state(entity: Entity, rule: StateRule) -> Self {
        Self::InvalidState { entity, rule }
    }
    /// A rejected credential.
    pub fn unauthenticated(credential: Credential, reason: Rejection) -> Self {
        Self::Unauthenticated { credential, reason }
    }
    /// A refused sealed value.
    pub fn sealed(reason: SealRejection) -> Self {
        Self::Sealed { reason }
    }
    /// A misconfigured key ring.
    pub fn key_ring(fault: KeyRingFault) -> Self {
        Self::KeyRing { fault }
    }
    /// Wraps an unexpected backend failure.
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend(Box::new(e))
    }

    /// A stable code per variant, for API clients and metrics:
    ///
    /// | variant | code |
    /// |---|---|
    /// | `Validation` | `invalid_input` |
    /// | `NotFound` | `not_found` |
    /// | `Conflict` | `conflict` |
    /// | `PermissionDenied` | `permission_denied` |
    /// | `InvalidState` | `invalid_state` |
    /// | `Unauthenticated` | `unauthenticated` |
    /// | `Sealed` | `sealed_value_rejected` |
    /// | `KeyRing` | `key_ring_misconfigured` |
    /// | `Backend` | `backend_error` |
    ///
    /// The variant's parts refine it, each with a stable label of its own
    /// (`Entity::as_str`, `StateRule::as_str`, `Rejection::as_str`, …).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation { .. } => "invalid_input",
            Self::NotFound { .. } => "not_found",
            Self::Conflict { .. } => "conflict",
            Self::PermissionDenied { .. } => "permission_denied",
            Self::InvalidState { .. } => "invalid_state",
            Self::Unauthenticated { .. } => "unauthenticated",
            Self::Sealed { .. } => "sealed_value_rejected",
            Self::KeyRing { .. } => "key_ring_misconfigured",
            Self::Backend(_) => "backend_error",
        }
    }

    /// The entity a `NotFound`, `Conflict` or `InvalidState` is about.
    pub fn entity(&self) -> Option<Entity> {
        match self {
            Self::NotFound { entity }
            | Self::Conflict { entity, .. }
            | Self::InvalidState { entity, .. } => Some(*entity),
            _ => None,
        }
    }

    /// The field a `Validation` or `Conflict` is about.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::Validation { field, .. } | Self::Conflict { field, .. } => Some(field),
            _ => None,
        }
    }

    /// Whether this is [`Error::Validation`].
    pub fn is_validation(&self) -> bool {
        matches!(self, Self::Validation { .. })
    }
    /// Whether this is [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
    /// Whether this is [`Error::Conflict`].
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }
    /// Whether this is [`Error::PermissionDenied`].
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, Self::PermissionDenied { .. })
    }
    /// Whether this is [`Error::InvalidState`].
    pub fn is_invalid_state(&self) -> bool {
        matches!(self, Self::InvalidState { .. })
    }
    /// Whether this is [`Error::Unauthenticated`].
    pub fn is_unauthenticated(&self) -> bool {
        matches!(self, Self::Unauthenticated { .. })
    }
    /// Whether this is [`Error::Backend`].
    pub fn is_backend(&self) -> bool {
        matches!(self, Self::Backend(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_kinds_not_values() {
        let cases: Vec<(Error, &str, &str)> = vec![
            (
                Error::conflict(Entity::User, "email"),
                "a user with this email already exists",
                "conflict",
            ),
            (
                Error::conflict(Entity::ApiKey, "name"),
                "an API key with this name already exists",
                "conflict",
            ),
            (
                Error::not_found(Entity::SsoProvider),
                "SSO provider not found",
                "not_found",
            ),
            (
                Error::denied(PermissionCode::PROJECT_UPDATE),
                "permission denied: requires the permission project.update",
                "permission_denied",
            ),
            (
                Error::denied(Requirement::User),
                "permission denied: requires a signed-in user",
                "permission_denied",
            ),
            (
                Error::invalid_state(Entity::Member, StateRule::LastActiveOwner),
                "member: a tenant must keep at least one active owner",
                "invalid_state",
            ),
            (
                Error::unauthenticated(Credential::Password, Rejection::Unknown),
                "email or password is not recognised",
                "unauthenticated",
            ),
            (
                Error::unauthenticated(Credential::ApiKey, Rejection::Expired),
                "API key has expired",
                "unauthenticated",
            ),
            (
                Error::validation("slug", "must be 2 to 63 characters"),
                "invalid slug: must be 2 to 63 characters",
                "invalid_input",
            ),
            (
                Error::backend(std::io::Error::other("down")),
                "backend error: down",
                "backend_error",
            ),
        ];
        for (e, text, code) in cases {
            assert_eq!(e.to_string(), text);
            assert_eq!(e.code(), code, "{e}");
        }
    }

    #[test]
    fn requirements_have_stable_labels() {
        let labels: Vec<&str> = [
            Requirement::Permission(PermissionCode::AUDIT_READ),
            Requirement::TenantOwner,
            Requirement::User,
            Requirement::System,
            Requirement::SameUserOrSystem,
            Requirement::InvitedUser,
            Requirement::RowSecurity,
        ]
        .iter()
        .map(Requirement::as_str)
        .collect();
        assert_eq!(
            labels,
            [
                "audit.read",
                "tenant_owner",
                "user",
                "system",
                "same_user_or_system",
                "invited_user",
                "row_security"
            ]
        );
        assert_eq!(Entity::SsoProvider.as_str(), "sso_provider");
        assert_eq!(StateRule::LastActiveOwner.as_str(), "last_active_owner");
    }

    #[test]
    fn helpers_tell_variants_apart() {
        let all = [
            Error::validation("f", "r"),
            Error::not_found(Entity::Team),
            Error::conflict(Entity::Team, "slug"),
            Error::denied(Requirement::TenantOwner),
            Error::invalid_state(Entity::Role, StateRule::BuiltinRole),
            Error::unauthenticated(Credential::ApiKey, Rejection::Revoked),
            Error::backend(std::io::Error::other("x")),
        ];
        let checks: [fn(&Error) -> bool; 7] = [
            Error::is_validation,
            Error::is_not_found,
            Error::is_conflict,
            Error::is_permission_denied,
            Error::is_invalid_state,
            Error::is_unauthenticated,
            Error::is_backend,
        ];
        for (i, e) in all.iter().enumerate() {
            for (j, check) in checks.iter().enumerate() {
                assert_eq!(check(e), i == j, "{e:?} / check {j}");
            }
        }
        assert_eq!(all[1].entity(), Some(Entity::Team));
        assert_eq!(all[2].field(), Some("slug"));
        assert_eq!(all[0].field(), Some("f"));
        assert_eq!(all[3].entity(), None);
        assert_eq!(all[4].entity(), Some(Entity::Role));
    }
}
