//! Tenancy & identity on PostgreSQL (core module [`insightpulse_core::tenancy`]).
//!
//! One file per concept, as in core and the memory backend. Who may see or
//! change what is asked through [`crate::guard`], the same for every module.

use crate::error::Constraints;
use insightpulse_core::{Entity, StateRule};

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
