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
//! held across an `.await` (the bodies are synchronous). An audited
//! mutation appends its audit entry inside that same locked mutation (see
//! `audit.rs`), as PostgreSQL writes it in the same transaction.

mod audit;
mod idempotency;
mod jobs;
mod outbox;
mod privacy;

pub use jobs::MemoryJobWaker;
mod projects;
mod tenancy;

use crate::conformance::Harness;
use insightpulse_core::idempotency::StoredKey;
use insightpulse_core::privacy::{Consent, DataCategory, DataPolicy};
use insightpulse_core::projects::{Environment, Project};
use insightpulse_core::tenancy::catalog::BUILTIN_ROLES;
use insightpulse_core::tenancy::passwords::PasswordCost;
use insightpulse_core::tenancy::tokens::TokenHasher;
use insightpulse_core::tenancy::{
    api_key_allows, ApiKey, GrantFacts, Identity, Invitation, Membership, MembershipStatus, Role,
    RoleGrant, SsoProvider, Team, Tenant, User, UserFacts,
};
use insightpulse_core::{
    ApiKeyId, Clock, Context, Email, Entity, EnvironmentId, Error, IdempotencyKey, IdentityId,
    InvitationId, ManualClock, Name, PermissionCode, Principal, ProjectId, Repos, ReposBuilder,
    Result, RoleGrantId, RoleId, Slug, SsoProviderId, SystemClock, TeamId, TenantId, UserId,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
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
    password_cost: PasswordCost,
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
    /// the system clock, hashing tokens under [`TEST_PEPPER`] and passwords
    /// with [`PasswordCost::InsecureFastForTests`] (so a host's tests do not
    /// spend seconds in argon2; see [`Self::with_password_cost`]).
    pub fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(State::seeded())),
            clock: Arc::new(SystemClock),
            hasher: TokenHasher::new(TEST_PEPPER.to_vec()).expect("the test pepper is long enough"),
            password_cost: PasswordCost::InsecureFastForTests,
        }
    }

    /// The same backend hashing new passwords at `cost` (e.g.
    /// [`PasswordCost::Standard`] to measure what production sign-ups cost).
    pub fn with_password_cost(mut self, cost: PasswordCost) -> Self {
        self.password_cost = cost;
        self
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

    /// A builder over this backend's repositories, to replace some of them
    /// (with mocks, say) in a host's test:
    ///
    /// ```
    /// # #[cfg(feature = "mocks")] {
    /// use insightpulse_testing::{memory::MemoryBackend, mocks::MockProjectRepo};
    /// let repos = MemoryBackend::new().repos_builder().projects(MockProjectRepo::new()).build();
    /// # let _ = repos; }
    /// ```
    pub fn repos_builder(&self) -> ReposBuilder {
        self.repos().into_builder()
    }

    /// Every repository of this backend, over its one shared state.
    pub fn repos(&self) -> Repos {
        let me = Arc::new(self.clone());
        Repos {
            auth: me.clone(),
            tenants: me.clone(),
            users: me.clone(),
            members: me.clone(),
            teams: me.clone(),
            rbac: me.clone(),
            sso: me.clone(),
            api_keys: me.clone(),
            projects: me.clone(),
            audit: me.clone(),
            privacy: me.clone(),
            outbox: me.clone(),
            jobs: me,
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
        span(ctx, op).in_scope(f)
    }

    /// [`Self::run`] for a call that awaits: one that hashes or verifies a
    /// password on the blocking pool.
    async fn run_async<T>(
        &self,
        ctx: &Context,
        op: &'static str,
        f: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        tracing::Instrument::instrument(f, span(ctx, op)).await
    }
}

fn span(ctx: &Context, op: &'static str) -> tracing::Span {
    tracing::debug_span!(
        "insightpulse",
        op,
        tenant = ?ctx.tenant_id(),
        principal = ctx.principal_kind().as_str()
    )
}

/// Runs argon2 — deliberately slow — on the blocking pool, as the Postgres
/// backend does, so a host's tests on the fake never stall the executor.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(Error::backend)
}

/// [`passwords::hash`](insightpulse_core::tenancy::passwords::hash) off the executor.
async fn hash_password(
    password: &insightpulse_core::SecretString,
    cost: PasswordCost,
) -> Result<String> {
    let password = password.clone();
    blocking(move || insightpulse_core::tenancy::passwords::hash(&password, cost)).await?
}

/// [`passwords::verify`](insightpulse_core::tenancy::passwords::verify) off the executor.
async fn verify_password(
    password: &insightpulse_core::SecretString,
    stored: Option<String>,
    cost: PasswordCost,
) -> Result<bool> {
    let password = password.clone();
    blocking(move || {
        insightpulse_core::tenancy::passwords::verify(&password, stored.as_deref(), cost)
    })
    .await
}

/// A conformance [`Harness`] over a fresh memory backend on a fresh
/// [`ManualClock`] set to the current time.
pub fn harness() -> Harness {
    let clock = Arc::new(ManualClock::starting_now());
    let repos = MemoryBackend::new().with_clock(clock.clone()).repos();
    Harness { repos, clock }
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

/// A table of tenant-scoped rows keyed like its Postgres primary key,
/// `(tenant_id, id)`: one tenant's rows are one contiguous range, reached
/// through [`TenantRows`] without looking at any other tenant's.
pub(crate) type TenantTable<K, V> = BTreeMap<(TenantId, K), V>;

/// An id type whose smallest value starts a range of keys.
pub(crate) trait MinId: Copy + Ord {
    /// The nil uuid, the smallest id of its type.
    fn min_id() -> Self;
}

macro_rules! min_id {
    ($($id:ident),* $(,)?) => {$(
        impl MinId for $id {
            fn min_id() -> Self {
                // `Uuid::default()` is the nil uuid (this crate has no direct
                // `uuid` dependency to name it).
                Self(Default::default())
            }
        }
    )*};
}

min_id!(
    TenantId,
    UserId,
    TeamId,
    RoleId,
    RoleGrantId,
    InvitationId,
    SsoProviderId,
    IdentityId,
    ApiKeyId,
    ProjectId,
    EnvironmentId,
);

impl MinId for DataCategory {
    fn min_id() -> Self {
        // Derived `Ord` follows declaration order, which `ALL` lists.
        DataCategory::ALL[0]
    }
}

/// The rows of one tenant in a [`TenantTable`].
pub(crate) trait TenantRows<K, V> {
    /// The rows of tenant `t`, in id order.
    fn of_tenant<'a>(&'a self, t: TenantId) -> impl Iterator<Item = &'a V>
    where
        V: 'a;
    /// The rows of tenant `t`, mutably, in id order.
    fn of_tenant_mut<'a>(&'a mut self, t: TenantId) -> impl Iterator<Item = &'a mut V>
    where
        V: 'a;
    /// Removes the rows of tenant `t` that match `pred`; returns them.
    fn remove_of_tenant(&mut self, t: TenantId, pred: impl FnMut(&V) -> bool) -> Vec<V>;
}

impl<K: MinId, V> TenantRows<K, V> for TenantTable<K, V> {
    fn of_tenant<'a>(&'a self, t: TenantId) -> impl Iterator<Item = &'a V>
    where
        V: 'a,
    {
        self.range((t, K::min_id())..)
            .take_while(move |((tt, _), _)| *tt == t)
            .map(|(_, v)| v)
    }

    fn of_tenant_mut<'a>(&'a mut self, t: TenantId) -> impl Iterator<Item = &'a mut V>
    where
        V: 'a,
    {
        self.range_mut((t, K::min_id())..)
            .take_while(move |((tt, _), _)| *tt == t)
            .map(|(_, v)| v)
    }

    fn remove_of_tenant(&mut self, t: TenantId, mut pred: impl FnMut(&V) -> bool) -> Vec<V> {
        let keys: Vec<K> = self
            .range((t, K::min_id())..)
            .take_while(|((tt, _), _)| *tt == t)
            .filter(|(_, v)| pred(v))
            .map(|((_, id), _)| *id)
            .collect();
        keys.into_iter()
            .filter_map(|id| self.remove(&(t, id)))
            .collect()
    }
}

/// The `(tenant, id)` keys filed under a token prefix, in a prefix index.
fn under_prefix<'a, K: MinId>(
    index: &'a BTreeSet<(String, TenantId, K)>,
    prefix: &'a str,
) -> impl Iterator<Item = (TenantId, K)> + 'a {
    index
        .range((prefix.to_owned(), TenantId::min_id(), K::min_id())..)
        .take_while(move |(p, _, _)| p == prefix)
        .map(|(_, t, id)| (*t, *id))
}

/// Every table of the tenancy, projects, audit and privacy modules. Tenant-scoped tables are
/// keyed by tenant first; the few lookups that know no tenant go through a
/// secondary index kept in sync by the `insert_*` / `remove_*` methods below
/// (write those tables only through them).
#[derive(Default)]
pub(crate) struct State {
    pub tenants: HashMap<TenantId, Tenant>,
    /// Index: tenant by slug (slugs are unique and never change).
    pub tenant_by_slug: HashMap<Slug, TenantId>,
    pub users: HashMap<UserId, UserRow>,
    /// Index: user by email (emails are unique and change only when a user
    /// is erased, through [`State::set_user_email`]; users are never
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
    pub projects: TenantTable<ProjectId, Project>,
    pub environments: TenantTable<EnvironmentId, Environment>,
    /// Each tenant's audit chain (head and entries), the platform's
    /// included. Not removed with the tenant: the trail outlives it.
    pub audit_chains: HashMap<TenantId, audit::AuditChain>,
    /// Data policies, keyed `(tenant, category)` so a tenant's come out in
    /// [`DataCategory::ALL`] order.
    pub data_policies: TenantTable<DataCategory, DataPolicy>,
    /// Each tenant's consent entries, in the order recorded (append-only).
    pub consents: HashMap<TenantId, Vec<Consent>>,
    /// Idempotency keys by `(scope, key)` (see `insightpulse_core::idempotency`).
    pub idempotency: HashMap<(String, IdempotencyKey), StoredKey>,
    /// The outbox's events and consumer cursors (outlive their tenant).
    pub outbox: outbox::OutboxState,
    /// The job queue.
    pub jobs: jobs::JobsState,
}

impl State {
    /// The built-in roles of the catalog, as the Postgres seed inserts them.
    fn seeded() -> Self {
        let mut st = Self::default();
        for b in BUILTIN_ROLES {
            let mut permissions: Vec<PermissionCode> = b.permissions.to_vec();
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
            Err(Error::not_found(Entity::Tenant))
        }
    }

    /// For a call that names one row by id: the context's tenant if
    /// visible, `NotFound{entity}` (the row's) when it cannot be seen — as
    /// RLS answers, the caller learns that the row is not there and nothing
    /// about the tenant.
    pub fn row_tenant(&self, ctx: &Context, entity: Entity) -> Result<TenantId> {
        let t = ctx.require_tenant()?;
        if self.tenant_visible(ctx, t) {
            Ok(t)
        } else {
            Err(Error::not_found(entity))
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
            .of_tenant(t)
            .filter(|m| m.m.is_owner && m.m.status == MembershipStatus::Active)
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
            .get(&(t, id))
            .filter(|p| Self::project_visible(ctx, p))
            .ok_or_else(|| Error::not_found(Entity::Project))
    }

    /// A visible environment of tenant `t`, or `NotFound{environment}`.
    pub fn environment(
        &self,
        ctx: &Context,
        t: TenantId,
        id: EnvironmentId,
    ) -> Result<&Environment> {
        self.environments
            .get(&(t, id))
            .filter(|e| Self::environment_visible(ctx, e))
            .ok_or_else(|| Error::not_found(Entity::Environment))
    }

    /// A role visible in tenant `t` (built-in or `t`'s own), or `NotFound{role}`.
    pub fn role(&self, t: TenantId, id: RoleId) -> Result<&Role> {
        self.builtin_roles
            .get(&id)
            .or_else(|| self.roles.get(&(t, id)))
            .ok_or_else(|| Error::not_found(Entity::Role))
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
                        .tenants_of_user(target)
                        .any(|t| self.is_active_member(t, *me))
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
                .of_tenant(t)
                .filter(|g| g.user_id == u)
                .filter_map(|g| {
                    // A grant names a built-in role or one of its tenant's.
                    self.role(t, g.role_id).ok().map(|r| GrantFacts {
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
            // The key's claims are not trusted to keep its tenant alive.
            Principal::ApiKey(k) => {
                k.tenant_id == t
                    && self.tenants.contains_key(&t)
                    && api_key_allows(k, code, project)
            }
        }
    }

    /// `PermissionDenied{code}` unless [`Self::allows`].
    pub fn require(
        &self,
        ctx: &Context,
        t: TenantId,
        code: PermissionCode,
        project: Option<ProjectId>,
    ) -> Result<()> {
        if self.allows(ctx, t, &code, project) {
            Ok(())
        } else {
            Err(Error::denied(code))
        }
    }

    // --- cascades (what ON DELETE CASCADE / SET NULL do in Postgres) -----
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

    /// Removes an environment with the API keys scoped to it.
    pub fn delete_environment(&mut self, t: TenantId, id: EnvironmentId) {
        self.environments.remove(&(t, id));
        self.remove_api_keys(t, |k| k.environment_id() == Some(id));
    }

    /// Removes a project with its environments, project grants and scoped keys.
    pub fn delete_project(&mut self, t: TenantId, id: ProjectId) {
        self.projects.remove(&(t, id));
        self.environments
            .remove_of_tenant(t, |e| e.project_id == id);
        self.grants
            .remove_of_tenant(t, |g| g.project_id == Some(id));
        self.remove_api_keys(t, |k| k.key.project_id == Some(id));
    }

    /// Removes a tenant and every row that belongs to it — except its audit
    /// chain, which outlives the tenant (only the system can read it then).
    pub fn delete_tenant(&mut self, t: TenantId) {
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
        self.projects.remove_of_tenant(t, |_| true);
        self.environments.remove_of_tenant(t, |_| true);
        self.data_policies.remove_of_tenant(t, |_| true);
        self.consents.remove(&t);
        self.jobs.jobs.remove_of_tenant(t, |_| true);
    }
}

/// Sorted and deduplicated permission codes.
pub(crate) fn normalized(mut codes: Vec<PermissionCode>) -> Vec<PermissionCode> {
    codes.sort();
    codes.dedup();
    codes
}
