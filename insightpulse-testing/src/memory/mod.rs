//! The in-memory backend: every repository trait of core, implemented over
//! plain collections behind one `std::sync::Mutex`.
//!
//! Rule guarded here: the fake behaves exactly like the PostgreSQL backend
//! (visibility as RLS gives it, permission checks through core's pure
//! evaluator, uniqueness, referential checks and `ON DELETE CASCADE`, state
//! transitions, ordering with bytewise text comparison). The conformance
//! suite runs against both; any divergence is a bug in whichever is wrong.
//!
//! Every call validates everything first and mutates only at the end, while
//! holding the lock once, so a failed call changes nothing. The lock is never
//! held across an `.await` (the bodies are synchronous).

mod projects;
mod tenancy;

use crate::conformance::Harness;
use insightpulse_core::projects::{Environment, Project};
use insightpulse_core::tenancy::catalog::{self, BUILTIN_ROLES};
use insightpulse_core::tenancy::tokens::TokenHasher;
use insightpulse_core::tenancy::{
    api_key_allows, ApiKey, GrantFacts, Identity, Invitation, Membership, MembershipStatus, Role,
    RoleGrant, SsoProvider, Team, Tenant, User, UserFacts,
};
use insightpulse_core::{
    ApiKeyId, Clock, Context, EnvironmentId, Error, IdentityId, InvitationId, ManualClock, Name,
    PermissionCode, Principal, ProjectId, Repos, Result, RoleGrantId, RoleId, SsoProviderId,
    SystemClock, TeamId, TenantId, UserId,
};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// The pepper [`MemoryBackend::new`] keys its [`TokenHasher`] with. Fixed, so
/// tokens are reproducible within a test run; never use it in production.
pub const TEST_PEPPER: &[u8] = b"insightpulse-testing-fixed-pepper-not-for-production";

/// The in-memory backend. Cheap to clone; clones share one state.
///
/// ```
/// use insightpulse_testing::memory::MemoryBackend;
/// use insightpulse_core::ManualClock;
/// use std::sync::Arc;
///
/// let clock = Arc::new(ManualClock::starting_now());
/// let repos = MemoryBackend::new().with_clock(clock.clone()).repos();
/// # let _ = repos;
/// ```
#[derive(Clone)]
pub struct MemoryBackend {
    state: Arc<Mutex<State>>,
    clock: Arc<dyn Clock>,
    hasher: TokenHasher,
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBackend {
    /// An empty backend (built-in roles and the permission catalog only) on
    /// the system clock, hashing tokens under [`TEST_PEPPER`].
    pub fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(State::seeded())),
            clock: Arc::new(SystemClock),
            hasher: TokenHasher::new(TEST_PEPPER.to_vec()),
        }
    }

    /// The same backend (same state) reading time from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The same backend (same state) hashing tokens with `hasher`.
    pub fn with_token_hasher(mut self, hasher: TokenHasher) -> Self {
        self.hasher = hasher;
        self
    }

    /// Every repository of this backend, over its one shared state.
    pub fn repos(&self) -> Repos {
        let me = Arc::new(self.clone());
        Repos {
            tenants: me.clone(),
            users: me.clone(),
            members: me.clone(),
            teams: me.clone(),
            rbac: me.clone(),
            sso: me.clone(),
            api_keys: me.clone(),
            projects: me,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in another test thread must not poison every later call.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// Runs one repository call inside its tracing span. Only the operation,
    /// the tenant and the principal's kind are recorded — never a secret.
    fn run<T>(&self, ctx: &Context, op: &'static str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let span = tracing::debug_span!(
            "insightpulse",
            op,
            tenant = ?ctx.tenant_id(),
            principal = ctx.principal_kind().as_str()
        );
        span.in_scope(f)
    }
}

/// A conformance [`Harness`] over a fresh memory backend on a fresh
/// [`ManualClock`] set to the current time.
pub fn harness() -> Harness {
    let clock = Arc::new(ManualClock::starting_now());
    let repos = MemoryBackend::new().with_clock(clock.clone()).repos();
    Harness { repos, clock }
}

/// A permission code from the catalog (or a literal known to be valid).
pub(crate) fn perm(code: &str) -> PermissionCode {
    PermissionCode::parse(code).expect("valid permission code")
}

// ---------------------------------------------------------------------------
// State: one struct per table, as Postgres holds them.
// ---------------------------------------------------------------------------

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
            insightpulse_core::tenancy::ApiKeyScope::Environment(e) => Some(e),
            _ => None,
        }
    }
}

/// Every table of the tenancy and projects modules.
#[derive(Default)]
pub(crate) struct State {
    pub tenants: HashMap<TenantId, Tenant>,
    pub users: HashMap<UserId, UserRow>,
    pub memberships: HashMap<(TenantId, UserId), MemberRow>,
    pub invitations: HashMap<InvitationId, InvitationRow>,
    pub teams: HashMap<TeamId, Team>,
    /// `(tenant, team, user)`.
    pub team_members: BTreeSet<(TenantId, TeamId, UserId)>,
    /// Built-in roles (tenant `None`) and tenant roles.
    pub roles: HashMap<RoleId, Role>,
    pub grants: HashMap<RoleGrantId, RoleGrant>,
    pub providers: HashMap<SsoProviderId, SsoProvider>,
    pub identities: HashMap<IdentityId, Identity>,
    pub api_keys: HashMap<ApiKeyId, KeyRow>,
    pub projects: HashMap<ProjectId, Project>,
    pub environments: HashMap<EnvironmentId, Environment>,
}

impl State {
    /// The built-in roles of the catalog, as the Postgres seed inserts them.
    fn seeded() -> Self {
        let mut st = Self::default();
        for b in BUILTIN_ROLES {
            let mut permissions: Vec<PermissionCode> =
                b.permission_codes().into_iter().map(perm).collect();
            permissions.sort();
            permissions.dedup();
            let role = Role {
                id: RoleId::new(),
                tenant_id: None,
                name: Name::parse(b.name).expect("built-in role name"),
                scope: b.scope,
                description: Some(b.description.to_owned()),
                permissions,
            };
            st.roles.insert(role.id, role);
        }
        st
    }

    // --- visibility -------------------------------------------------------

    /// Whether the principal can see tenant `t` (it must exist).
    pub fn tenant_visible(&self, ctx: &Context, t: TenantId) -> bool {
        if !self.tenants.contains_key(&t) {
            return false;
        }
        match ctx.principal() {
            Principal::System { .. } => true,
            Principal::User(u) => self.is_active_member(t, *u),
            Principal::ApiKey(k) => k.tenant_id == t,
        }
    }

    /// The context's tenant if visible; `Validation{context}` without one,
    /// `NotFound{tenant}` when it cannot be seen.
    pub fn visible_tenant(&self, ctx: &Context) -> Result<TenantId> {
        let t = ctx.require_tenant()?;
        if self.tenant_visible(ctx, t) {
            Ok(t)
        } else {
            Err(Error::not_found("tenant"))
        }
    }

    /// For lists: the context's tenant if visible, `None` (an empty list)
    /// when it cannot be seen — what RLS gives.
    pub fn list_tenant(&self, ctx: &Context) -> Result<Option<TenantId>> {
        let t = ctx.require_tenant()?;
        Ok(self.tenant_visible(ctx, t).then_some(t))
    }

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
            .values()
            .filter(|m| {
                m.m.tenant_id == t && m.m.is_owner && m.m.status == MembershipStatus::Active
            })
            .count()
    }

    /// Whether the actor counts as an owner of `t` (the system does).
    pub fn actor_is_owner(&self, ctx: &Context, t: TenantId) -> bool {
        match ctx.principal() {
            Principal::System { .. } => true,
            Principal::User(u) => self.is_active_owner(t, *u),
            Principal::ApiKey(_) => false,
        }
    }

    /// Whether a project is visible to the principal (API-key scope).
    pub fn project_visible(ctx: &Context, p: &Project) -> bool {
        match ctx.api_key_principal() {
            Some(k) => k.project_id.is_none() || k.project_id == Some(p.id),
            None => true,
        }
    }

    /// Whether an environment is visible to the principal (API-key scope).
    pub fn environment_visible(ctx: &Context, e: &Environment) -> bool {
        match ctx.api_key_principal() {
            Some(k) => {
                (k.project_id.is_none() || k.project_id == Some(e.project_id))
                    && (k.environment_id.is_none() || k.environment_id == Some(e.id))
            }
            None => true,
        }
    }

    /// A visible project of tenant `t`, or `NotFound{project}`.
    pub fn project(&self, ctx: &Context, t: TenantId, id: ProjectId) -> Result<&Project> {
        self.projects
            .get(&id)
            .filter(|p| p.tenant_id == t && Self::project_visible(ctx, p))
            .ok_or_else(|| Error::not_found("project"))
    }

    /// A visible environment of tenant `t`, or `NotFound{environment}`.
    pub fn environment(
        &self,
        ctx: &Context,
        t: TenantId,
        id: EnvironmentId,
    ) -> Result<&Environment> {
        self.environments
            .get(&id)
            .filter(|e| e.tenant_id == t && Self::environment_visible(ctx, e))
            .ok_or_else(|| Error::not_found("environment"))
    }

    /// A role visible in tenant `t` (built-in or `t`'s own), or `NotFound{role}`.
    pub fn role(&self, t: TenantId, id: RoleId) -> Result<&Role> {
        self.roles
            .get(&id)
            .filter(|r| r.tenant_id.is_none() || r.tenant_id == Some(t))
            .ok_or_else(|| Error::not_found("role"))
    }

    /// Whether the principal may see user `target` (see behaviour.md).
    pub fn user_visible(&self, ctx: &Context, target: UserId) -> bool {
        if !self.users.contains_key(&target) {
            return false;
        }
        match ctx.principal() {
            Principal::System { .. } => true,
            Principal::User(me) => {
                *me == target
                    || self
                        .memberships
                        .values()
                        .any(|m| m.m.user_id == target && self.is_active_member(m.m.tenant_id, *me))
            }
            Principal::ApiKey(k) => {
                self.tenants.contains_key(&k.tenant_id)
                    && self.memberships.contains_key(&(k.tenant_id, target))
            }
        }
    }

    // --- permissions ------------------------------------------------------

    /// The evaluator's view of one user in one tenant.
    pub fn user_facts(&self, t: TenantId, u: UserId) -> UserFacts {
        UserFacts {
            membership: self
                .memberships
                .get(&(t, u))
                .map(|m| (m.m.is_owner, m.m.status)),
            grants: self
                .grants
                .values()
                .filter(|g| g.tenant_id == t && g.user_id == u)
                .filter_map(|g| {
                    self.roles.get(&g.role_id).map(|r| GrantFacts {
                        project: g.project_id,
                        permissions: r.permissions.clone(),
                    })
                })
                .collect(),
        }
    }

    /// Whether the principal holds `code` in `t` at level `project`, through
    /// core's pure evaluator.
    pub fn allows(
        &self,
        ctx: &Context,
        t: TenantId,
        code: &PermissionCode,
        project: Option<ProjectId>,
    ) -> bool {
        match ctx.principal() {
            Principal::System { .. } => true,
            Principal::User(u) => self.user_facts(t, *u).allows(code, project),
            Principal::ApiKey(k) => k.tenant_id == t && api_key_allows(k, code, project),
        }
    }

    /// `PermissionDenied{code}` unless [`Self::allows`].
    pub fn require(
        &self,
        ctx: &Context,
        t: TenantId,
        code: &'static str,
        project: Option<ProjectId>,
    ) -> Result<()> {
        if self.allows(ctx, t, &perm(code), project) {
            Ok(())
        } else {
            Err(Error::denied(code))
        }
    }

    // --- cascades (what ON DELETE CASCADE / SET NULL do in Postgres) -----

    /// Removes a membership with the user's grants, team memberships and
    /// identities in the tenant.
    pub fn delete_membership(&mut self, t: TenantId, u: UserId) {
        self.memberships.remove(&(t, u));
        self.grants
            .retain(|_, g| !(g.tenant_id == t && g.user_id == u));
        self.team_members
            .retain(|(tt, _, uu)| !(*tt == t && *uu == u));
        self.identities
            .retain(|_, i| !(i.tenant_id == t && i.user_id == u));
    }

    /// Removes a role with its grants; invitations naming it lose the role.
    pub fn delete_role(&mut self, id: RoleId) {
        self.roles.remove(&id);
        self.grants.retain(|_, g| g.role_id != id);
        for row in self.invitations.values_mut() {
            if row.inv.role_id == Some(id) {
                row.inv.role_id = None;
            }
        }
    }

    /// Removes an environment with the API keys scoped to it.
    pub fn delete_environment(&mut self, id: EnvironmentId) {
        self.environments.remove(&id);
        self.api_keys.retain(|_, k| k.environment_id() != Some(id));
    }

    /// Removes a project with its environments, project grants and scoped keys.
    pub fn delete_project(&mut self, id: ProjectId) {
        self.projects.remove(&id);
        self.environments.retain(|_, e| e.project_id != id);
        self.grants.retain(|_, g| g.project_id != Some(id));
        self.api_keys.retain(|_, k| k.key.project_id != Some(id));
    }

    /// Removes a tenant and every row that belongs to it.
    pub fn delete_tenant(&mut self, t: TenantId) {
        self.tenants.remove(&t);
        self.memberships.retain(|(tt, _), _| *tt != t);
        self.invitations.retain(|_, i| i.inv.tenant_id != t);
        self.teams.retain(|_, x| x.tenant_id != t);
        self.team_members.retain(|(tt, _, _)| *tt != t);
        let tenant_roles: Vec<RoleId> = self
            .roles
            .values()
            .filter(|r| r.tenant_id == Some(t))
            .map(|r| r.id)
            .collect();
        for id in tenant_roles {
            self.delete_role(id);
        }
        self.grants.retain(|_, g| g.tenant_id != t);
        self.providers.retain(|_, p| p.tenant_id != t);
        self.identities.retain(|_, i| i.tenant_id != t);
        self.api_keys.retain(|_, k| k.key.tenant_id != t);
        self.projects.retain(|_, p| p.tenant_id != t);
        self.environments.retain(|_, e| e.tenant_id != t);
    }
}

/// Every permission of the catalog is known (used by role and key checks).
pub(crate) fn check_known_permissions(codes: &[PermissionCode], field: &'static str) -> Result<()> {
    match codes
        .iter()
        .find(|c| !catalog::is_known_permission(c.as_str()))
    {
        Some(c) => Err(Error::validation(field, format!("unknown permission {c}"))),
        None => Ok(()),
    }
}

/// Sorted and deduplicated permission codes.
pub(crate) fn normalized(mut codes: Vec<PermissionCode>) -> Vec<PermissionCode> {
    codes.sort();
    codes.dedup();
    codes
}
