//! The tenancy's tables: tenants, users, memberships, invitations, teams,
//! roles and grants, SSO providers and identities, API keys.
//!
//! Rule guarded here: the few lookups that know no tenant (a slug, an
//! email, a token prefix, a user's tenants) go through secondary indexes
//! kept in sync by the `insert_*` / `remove_*` methods below; the indexed
//! tables are written only through them.

use crate::memory::tables::{under_prefix, MinId, TenantRows, TenantTable};
use insightpulse_core::tenancy::catalog::BUILTIN_ROLES;
use insightpulse_core::tenancy::{
    ApiKey, ApiKeyScope, Identity, Invitation, Membership, MembershipStatus, Role, RoleGrant,
    SsoProvider, Team, Tenant, User,
};
use insightpulse_core::{
    ApiKeyId, Email, EnvironmentId, IdentityId, InvitationId, Name, ProjectId, RoleGrantId, RoleId,
    Slug, SsoProviderId, TeamId, TenantId, UserId,
};
use std::collections::{BTreeSet, HashMap};

pub(crate) struct UserRow {
    pub user: User,
    pub password_hash: Option<String>,
}

pub(crate) struct MemberRow {
    pub m: Membership,
}

pub(crate) struct InvitationRow {
    pub inv: Invitation,
    pub prefix: String,
    pub hash: Vec<u8>,
}

pub(crate) struct KeyRow {
    pub key: ApiKey,
    pub hash: Vec<u8>,
}

impl KeyRow {
    pub(crate) fn environment_id(&self) -> Option<EnvironmentId> {
        match self.key.scope {
            ApiKeyScope::Environment(e) => Some(e),
            _ => None,
        }
    }
}

/// Every table of the tenancy. Tenant-scoped tables are keyed by tenant
/// first; the indexes are kept in sync by the `insert_*` / `remove_*`
/// methods (write those tables only through them).
#[derive(Default)]
pub(crate) struct TenancyState {
    pub tenants: HashMap<TenantId, Tenant>,
    /// Index: tenant by slug (slugs are unique and never change).
    pub tenant_by_slug: HashMap<Slug, TenantId>,
    pub users: HashMap<UserId, UserRow>,
    /// Index: user by email (emails are unique and change only when a user
    /// is erased, through [`TenancyState::set_user_email`]; users are never
    /// deleted).
    pub user_by_email: HashMap<Email, UserId>,
    pub memberships: TenantTable<UserId, MemberRow>,
    /// Index: the memberships of a user, `(user, tenant)`.
    pub memberships_by_user: BTreeSet<(UserId, TenantId)>,
    pub invitations: TenantTable<InvitationId, InvitationRow>,
    /// Index: invitations by token prefix (unique only per tenant, as in
    /// Postgres), `(prefix, tenant, id)`.
    pub invitations_by_prefix: BTreeSet<(String, TenantId, InvitationId)>,
    pub teams: TenantTable<TeamId, Team>,
    /// `(tenant, team, user)`.
    pub team_members: BTreeSet<(TenantId, TeamId, UserId)>,
    /// Built-in roles (tenant `None`), the catalog.
    pub builtin_roles: HashMap<RoleId, Role>,
    /// Tenant-defined roles.
    pub roles: TenantTable<RoleId, Role>,
    pub grants: TenantTable<RoleGrantId, RoleGrant>,
    pub providers: TenantTable<SsoProviderId, SsoProvider>,
    pub identities: TenantTable<IdentityId, Identity>,
    pub api_keys: TenantTable<ApiKeyId, KeyRow>,
    /// Index: API keys by prefix (unique only per tenant, as in Postgres),
    /// `(prefix, tenant, id)`.
    pub api_keys_by_prefix: BTreeSet<(String, TenantId, ApiKeyId)>,
}

impl TenancyState {
    /// The built-in roles of the catalog, as the Postgres seed inserts them.
    pub fn seeded() -> Self {
        let mut st = Self::default();
        for b in BUILTIN_ROLES {
            let role = Role {
                id: RoleId::new(),
                tenant_id: None,
                name: Name::parse(b.name).expect("built-in role name"),
                scope: b.scope,
                description: Some(b.description.to_owned()),
                permissions: super::normalized(b.permissions.to_vec()),
            };
            st.builtin_roles.insert(role.id, role);
        }
        st
    }

    // --- writes of indexed tables ----------------------------------------

    pub fn insert_tenant(&mut self, tenant: Tenant) {
        self.tenant_by_slug.insert(tenant.slug.clone(), tenant.id);
        self.tenants.insert(tenant.id, tenant);
    }

    pub fn insert_user(&mut self, row: UserRow) {
        self.user_by_email
            .insert(row.user.email.clone(), row.user.id);
        self.users.insert(row.user.id, row);
    }

    pub fn insert_membership(&mut self, m: Membership) {
        let (t, u) = (m.tenant_id, m.user_id);
        self.memberships_by_user.insert((u, t));
        self.memberships.insert((t, u), MemberRow { m });
    }

    pub fn insert_invitation(&mut self, row: InvitationRow) {
        let (t, id) = (row.inv.tenant_id, row.inv.id);
        self.invitations_by_prefix
            .insert((row.prefix.clone(), t, id));
        self.invitations.insert((t, id), row);
    }

    pub fn insert_api_key(&mut self, row: KeyRow) {
        let (t, id) = (row.key.tenant_id, row.key.id);
        self.api_keys_by_prefix
            .insert((row.key.prefix.clone(), t, id));
        self.api_keys.insert((t, id), row);
    }

    /// Changes a user's email (erasure only), keeping the index in sync.
    pub fn set_user_email(&mut self, u: UserId, email: Email) {
        if let Some(row) = self.users.get_mut(&u) {
            self.user_by_email.remove(&row.user.email);
            self.user_by_email.insert(email.clone(), u);
            row.user.email = email;
        }
    }

    /// Removes an invitation of tenant `t`, keeping the prefix index in sync.
    pub fn remove_invitation(&mut self, t: TenantId, id: InvitationId) {
        if let Some(row) = self.invitations.remove(&(t, id)) {
            self.invitations_by_prefix.remove(&(row.prefix, t, id));
        }
    }

    fn remove_membership(&mut self, t: TenantId, u: UserId) {
        self.memberships.remove(&(t, u));
        self.memberships_by_user.remove(&(u, t));
    }

    /// Removes the API keys of tenant `t` that match `pred`.
    fn remove_api_keys(&mut self, t: TenantId, pred: impl FnMut(&KeyRow) -> bool) {
        for row in self.api_keys.remove_of_tenant(t, pred) {
            self.api_keys_by_prefix
                .remove(&(row.key.prefix, t, row.key.id));
        }
    }

    /// Removes the team memberships of tenant `t` that match `pred`.
    fn remove_team_members(&mut self, t: TenantId, mut pred: impl FnMut(TeamId, UserId) -> bool) {
        let doomed: Vec<(TenantId, TeamId, UserId)> = self
            .team_members_of_tenant(t)
            .filter(|(team, u)| pred(*team, *u))
            .map(|(team, u)| (t, team, u))
            .collect();
        for key in doomed {
            self.team_members.remove(&key);
        }
    }

    // --- reads of indexed tables -----------------------------------------

    /// The tenants user `u` has a membership in (any status).
    pub fn tenants_of_user(&self, u: UserId) -> impl Iterator<Item = TenantId> + '_ {
        self.memberships_by_user
            .range((u, TenantId::min_id())..)
            .take_while(move |(uu, _)| *uu == u)
            .map(|(_, t)| *t)
    }

    /// The `(tenant, id)` of the invitations whose token has `prefix`.
    pub fn invitations_with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (TenantId, InvitationId)> + 'a {
        under_prefix(&self.invitations_by_prefix, prefix)
    }

    /// The `(tenant, id)` of the API keys with `prefix`.
    pub fn api_keys_with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (TenantId, ApiKeyId)> + 'a {
        under_prefix(&self.api_keys_by_prefix, prefix)
    }

    /// The `(team, user)` pairs of tenant `t`, in that order.
    pub fn team_members_of_tenant(
        &self,
        t: TenantId,
    ) -> impl Iterator<Item = (TeamId, UserId)> + '_ {
        self.team_members
            .range((t, TeamId::min_id(), UserId::min_id())..)
            .take_while(move |(tt, _, _)| *tt == t)
            .map(|(_, team, u)| (*team, *u))
    }

    // --- memberships --------------------------------------------------------

    pub fn is_active_member(&self, t: TenantId, u: UserId) -> bool {
        self.memberships
            .get(&(t, u))
            .is_some_and(|m| m.m.status == MembershipStatus::Active)
    }

    pub fn is_active_owner(&self, t: TenantId, u: UserId) -> bool {
        self.memberships
            .get(&(t, u))
            .is_some_and(|m| m.m.status == MembershipStatus::Active && m.m.is_owner)
    }

    pub fn active_owner_count(&self, t: TenantId) -> usize {
        self.memberships
            .of_tenant(t)
            .filter(|m| m.m.is_owner && m.m.status == MembershipStatus::Active)
            .count()
    }

    // --- cascades inside the tenancy (ON DELETE CASCADE / SET NULL) -------
    //
    // Every row a cascade reaches lives in the same tenant as the row deleted,
    // so each cascade looks only there: the foreign keys are `(tenant_id, …)`
    // except `role_id`, and a grant or invitation only ever names a built-in
    // role (never deleted) or one of its own tenant's (checked on insert).

    /// Removes a membership with the user's grants, team memberships and
    /// identities in the tenant.
    pub fn delete_membership(&mut self, t: TenantId, u: UserId) {
        self.remove_membership(t, u);
        self.grants.remove_of_tenant(t, |g| g.user_id == u);
        self.remove_team_members(t, |_, uu| uu == u);
        self.identities.remove_of_tenant(t, |i| i.user_id == u);
    }

    /// Removes tenant `t`'s role `id` with its grants; invitations naming it
    /// lose the role.
    pub fn delete_role(&mut self, t: TenantId, id: RoleId) {
        self.roles.remove(&(t, id));
        self.grants.remove_of_tenant(t, |g| g.role_id == id);
        for row in self.invitations.of_tenant_mut(t) {
            if row.inv.role_id == Some(id) {
                row.inv.role_id = None;
            }
        }
    }

    /// Removes a team with its members.
    pub fn delete_team(&mut self, t: TenantId, id: TeamId) {
        self.teams.remove(&(t, id));
        self.remove_team_members(t, |team, _| team == id);
    }

    /// Removes an SSO provider with its identities.
    pub fn delete_provider(&mut self, t: TenantId, id: SsoProviderId) {
        self.providers.remove(&(t, id));
        self.identities.remove_of_tenant(t, |i| i.provider_id == id);
    }

    // --- the tenant, and reactions to other modules' deletions -------------

    /// Removes tenant `t` with every tenancy row of it.
    pub fn remove_tenant(&mut self, t: TenantId) {
        if let Some(tenant) = self.tenants.remove(&t) {
            self.tenant_by_slug.remove(&tenant.slug);
        }
        for row in self.memberships.remove_of_tenant(t, |_| true) {
            self.memberships_by_user.remove(&(row.m.user_id, t));
        }
        for row in self.invitations.remove_of_tenant(t, |_| true) {
            self.invitations_by_prefix
                .remove(&(row.prefix, t, row.inv.id));
        }
        self.teams.remove_of_tenant(t, |_| true);
        self.remove_team_members(t, |_, _| true);
        self.roles.remove_of_tenant(t, |_| true);
        self.grants.remove_of_tenant(t, |_| true);
        self.providers.remove_of_tenant(t, |_| true);
        self.identities.remove_of_tenant(t, |_| true);
        self.remove_api_keys(t, |_| true);
    }

    /// A deleted project takes the grants made at its level and the API
    /// keys scoped to it (or to one of its environments).
    pub fn on_project_deleted(&mut self, t: TenantId, id: ProjectId) {
        self.grants
            .remove_of_tenant(t, |g| g.project_id == Some(id));
        self.remove_api_keys(t, |k| k.key.project_id == Some(id));
    }

    /// A deleted environment takes the API keys scoped to it.
    pub fn on_environment_deleted(&mut self, t: TenantId, id: EnvironmentId) {
        self.remove_api_keys(t, |k| k.environment_id() == Some(id));
    }
}
