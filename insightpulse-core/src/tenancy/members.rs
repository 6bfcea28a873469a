//! Memberships and invitations: the rows, their inputs and [`MemberRepo`].

use crate::context::Context;
use crate::error::Result;
use crate::ids::*;
use crate::values::Email;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// State of a user's membership in a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MembershipStatus {
    /// Can act in the tenant.
    Active,
    /// Kept, but sees nothing and can do nothing in the tenant.
    Suspended,
}

impl MembershipStatus {
    /// The SQL enum label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }
}

parse_by_label!(
    MembershipStatus,
    "status",
    [MembershipStatus::Active, MembershipStatus::Suspended]
);

/// A user's membership in a tenant (`org_memberships`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The member.
    pub user_id: UserId,
    /// Owners hold every permission in the tenant.
    pub is_owner: bool,
    /// Active or suspended.
    pub status: MembershipStatus,
    /// When the user joined.
    pub created_at: DateTime<Utc>,
}

/// An invitation to join a tenant. The token is stored only as a hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    /// Its id.
    pub id: InvitationId,
    /// The inviting tenant.
    pub tenant_id: TenantId,
    /// Only a user with this email can accept it.
    pub email: Email,
    /// Role granted tenant-wide on acceptance, if any.
    pub role_id: Option<RoleId>,
    /// Who invited.
    pub invited_by: Option<UserId>,
    /// After this instant the token is refused.
    pub expires_at: DateTime<Utc>,
    /// Set once, when accepted.
    pub accepted_at: Option<DateTime<Utc>>,
    /// Set when withdrawn before acceptance.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// Input of [`MemberRepo::invite`](super::MemberRepo::invite).
#[derive(Debug, Clone)]
pub struct NewInvitation {
    /// Who is invited.
    pub email: Email,
    /// Role to grant on acceptance (must be grantable tenant-wide).
    pub role_id: Option<RoleId>,
    /// How long the token stays valid (1 minute to 30 days).
    pub valid_for: chrono::Duration,
}

/// An invitation together with its one-time token, returned once at creation.
#[derive(Debug)]
pub struct IssuedInvitation {
    /// The stored invitation.
    pub invitation: Invitation,
    /// The plaintext token to send to the invitee; not stored anywhere.
    pub token: SecretString,
}

/// Memberships and invitations of the context's tenant.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait MemberRepo: Send + Sync {
    /// Every membership of the tenant, ordered by join time.
    async fn list_members(&self, ctx: &Context) -> Result<Vec<Membership>>;

    /// One membership.
    async fn get_member(&self, ctx: &Context, user: UserId) -> Result<Membership>;

    /// Invites an email address. Needs `member.invite`; the token is
    /// returned once and stored only as a hash.
    async fn invite(&self, ctx: &Context, new: NewInvitation) -> Result<IssuedInvitation>;

    /// Invitations of the tenant, newest last. Needs `member.invite`.
    async fn list_invitations(&self, ctx: &Context) -> Result<Vec<Invitation>>;

    /// Withdraws a pending invitation. Needs `member.invite`.
    async fn revoke_invitation(&self, ctx: &Context, id: InvitationId) -> Result<()>;

    /// Accepts an invitation as the acting user, whose email must match.
    /// Single use. Errors: `Unauthenticated` (malformed, unknown, expired,
    /// revoked or already used token), `Conflict` if already a member.
    async fn accept_invitation(&self, ctx: &Context, token: &SecretString) -> Result<Membership>;

    /// Suspends a member. Needs `member.manage`; only owners act on owners;
    /// the last active owner cannot be suspended.
    async fn suspend_member(&self, ctx: &Context, user: UserId) -> Result<Membership>;

    /// Reactivates a suspended member. Needs `member.manage`.
    async fn reactivate_member(&self, ctx: &Context, user: UserId) -> Result<Membership>;

    /// Removes a member with their role grants, team memberships and
    /// identities in the tenant. Same rules as [`Self::suspend_member`].
    async fn remove_member(&self, ctx: &Context, user: UserId) -> Result<()>;

    /// Makes a member an owner or not. Owners only; the last active owner
    /// cannot step down.
    async fn set_owner(&self, ctx: &Context, user: UserId, is_owner: bool) -> Result<Membership>;
}
