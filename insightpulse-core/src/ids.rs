//! Typed identifiers. Every entity has its own id type so a `ProjectId` can
//! never be passed where a `TenantId` is expected.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! typed_id {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh random (v4) id.
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }
            /// The underlying uuid.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }
        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }
        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }
        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    )*};
}

typed_id!(
    /// A tenant (organization).
    TenantId,
    /// A global user account.
    UserId,
    /// A team inside a tenant.
    TeamId,
    /// A role (built-in or tenant-defined).
    RoleId,
    /// A role granted to a user (a row of `user_roles`).
    RoleGrantId,
    /// A pending or used invitation.
    InvitationId,
    /// A tenant's SAML or OIDC provider.
    SsoProviderId,
    /// A federated identity linked to a user.
    IdentityId,
    /// An API key.
    ApiKeyId,
    /// A project.
    ProjectId,
    /// An environment of a project.
    EnvironmentId,
    /// An entry of the audit trail.
    AuditEntryId,
    /// One recorded consent or withdrawal.
    ConsentId,
    /// A domain event of the outbox.
    EventId,
    /// A job of the queue.
    JobId,
);
