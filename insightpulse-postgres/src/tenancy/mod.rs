//! Tenancy & identity on PostgreSQL (core module [`insightpulse_core::tenancy`]).
//!
//! One file per concept, as in core and the memory backend. Who may see or
//! change what is asked through [`crate::guard`], the same for every module.

use crate::error::Constraints;
use crate::uow::Tx;
use chrono::{DateTime, Utc};
use insightpulse_core::{Entity, Result, StateRule, TenantId, UserId};

pub(crate) use members::retire_invitations;

mod api_keys;
mod auth;
mod members;
mod rbac;
mod sso;
mod teams;
mod tenants;
mod users;

/// What tenancy's constraints mean to a caller (see [`crate::error`]).
pub(crate) const CONSTRAINTS: Constraints = Constraints {
    unique: &[
        ("tenants_slug_key", Entity::Tenant, "slug"),
        ("users_email_key", Entity::User, "email"),
        ("org_memberships_pkey", Entity::Member, "user"),
        ("teams_tenant_slug_key", Entity::Team, "slug"),
        ("team_members_pkey", Entity::TeamMember, "user"),
        ("roles_tenant_name_scope_key", Entity::Role, "name"),
        ("user_roles_grant_key", Entity::RoleGrant, "role"),
        ("sso_providers_tenant_name_key", Entity::SsoProvider, "name"),
        (
            "user_identities_provider_subject_key",
            Entity::Identity,
            "subject",
        ),
    ],
    references: &[
        ("tenant_id", Entity::Tenant),
        ("user_id", Entity::User),
        ("tenant_id_user_id", Entity::Member),
        ("team_id", Entity::Team),
        ("role_id", Entity::Role),
        ("permission_id", Entity::Permission),
        ("provider_id", Entity::SsoProvider),
    ],
    states: &[(
        "tenant_has_active_owner",
        Entity::Member,
        StateRule::LastActiveOwner,
    )],
};

/// The statement that records which tenant a token's lookup `prefix`
/// belongs to (queued with the API key or invitation that issues it; see
/// migration 0012's `token_lookups`).
fn token_lookup(prefix: &str, tenant: TenantId) -> String {
    format!(
        "INSERT INTO token_lookups (prefix, tenant_id) VALUES ({}, '{}')",
        crate::uow::quote_literal(prefix),
        tenant.0
    )
}

/// What erasing a user removed from tenancy.
pub(crate) struct Erased {
    /// The tenants the user was a member of, in id order.
    pub tenants: Vec<TenantId>,
    pub memberships: u64,
    pub identities: u64,
    pub invitations: u64,
}

/// Erasure of `user` from tenancy (privacy's hook): locks the account
/// (`NotFound` without one), removes their identities, memberships and the
/// invitations to their address in every tenant, and scrubs the account's
/// personal fields. The last active owner of a tenant is refused, and
/// nothing is changed.
pub(crate) async fn erase_user(tx: &mut Tx, user: UserId, now: DateTime<Utc>) -> Result<Erased> {
    let email = users::lock_for_erasure(tx, user).await?;
    let tenants = members::tenants_of(tx, user).await?;
    // Before the memberships, whose deletion would take them along.
    let identities = sso::erase_identities(tx, user).await?;
    let memberships = members::erase_memberships(tx, user).await?;
    let invitations = members::erase_invitations(tx, &email).await?;
    users::erase(tx, user, now).await?;
    Ok(Erased {
        tenants,
        memberships,
        identities,
        invitations,
    })
}
