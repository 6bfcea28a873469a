//! Repository traits of the tenancy module.
//!
//! Each call takes the acting [`Context`]. Reads see only what the principal
//! may see (a member sees its tenants' rows; a project-scoped API key sees its
//! project); writes check the named permission in the context's tenant and
//! return `PermissionDenied` inside the tenant, `NotFound` outside it.

use super::model::*;
use crate::context::{Context, RequestMeta};
use crate::error::Result;
use crate::ids::*;
use crate::values::{Email, Name, PermissionCode, Slug};
use async_trait::async_trait;
use secrecy::SecretString;

/// Tenants (organizations).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait TenantRepo: Send + Sync {
    /// The seed's "Create First Tenant" flow, atomically: the tenant, the
    /// acting user's active owner membership and a tenant-wide grant of the
    /// built-in `Admin` role. The principal must be a user. Honours the
    /// request's idempotency key.
    /// Errors: `Conflict` on a taken slug.
    async fn create_tenant(&self, ctx: &Context, new: NewTenant) -> Result<Tenant>;

    /// A tenant the principal belongs to; `NotFound` otherwise.
    async fn get_tenant(&self, ctx: &Context, id: TenantId) -> Result<Tenant>;

    /// A tenant by slug, with the same visibility as [`Self::get_tenant`].
    async fn get_tenant_by_slug(&self, ctx: &Context, slug: &Slug) -> Result<Tenant>;

    /// The seed's "Get User's Tenants": every tenant where the acting user's
    /// membership is active, ordered by slug.
    async fn list_my_tenants(&self, ctx: &Context) -> Result<Vec<Tenant>>;

    /// Changes the context's tenant. Needs `tenant.manage`; settings must be
    /// a JSON object.
    async fn update_tenant(&self, ctx: &Context, update: TenantUpdate) -> Result<Tenant>;

    /// Deletes the context's tenant and everything in it. Owners only.
    async fn delete_tenant(&self, ctx: &Context) -> Result<()>;
}

/// Global user accounts and their passwords.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait UserRepo: Send + Sync {
    /// Registers a user without a password or tenant (provisioning, e.g.
    /// an SSO just-in-time login). System principals only; a user signing
    /// themselves up goes through [`AuthRepo::sign_up`].
    /// Errors: `Conflict` on a taken email.
    async fn create_user(&self, ctx: &Context, new: NewUser) -> Result<User>;

    /// A user the principal may see: itself, a member of a shared tenant, or
    /// anyone for the system.
    async fn get_user(&self, ctx: &Context, id: UserId) -> Result<User>;

    /// Looks a user up by email, with the visibility of [`Self::get_user`].
    async fn find_user_by_email(&self, ctx: &Context, email: &Email) -> Result<Option<User>>;

    /// Changes the acting user's own display name.
    async fn update_profile(&self, ctx: &Context, full_name: Option<Name>) -> Result<User>;

    /// Sets a password (argon2id, PHC string). The user itself or the system.
    /// Errors: `Validation` for a password shorter than 8 characters.
    async fn set_password(
        &self,
        ctx: &Context,
        user: UserId,
        password: &SecretString,
    ) -> Result<()>;
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

/// Teams of the context's tenant.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait TeamRepo: Send + Sync {
    /// Creates a team. Needs `team.manage`. `Conflict` on a taken slug.
    /// Honours the request's idempotency key.
    async fn create_team(&self, ctx: &Context, new: NewTeam) -> Result<Team>;
    /// One team.
    async fn get_team(&self, ctx: &Context, id: TeamId) -> Result<Team>;
    /// Every team, ordered by slug.
    async fn list_teams(&self, ctx: &Context) -> Result<Vec<Team>>;
    /// Renames a team. Needs `team.manage`.
    async fn rename_team(&self, ctx: &Context, id: TeamId, name: Name) -> Result<Team>;
    /// Deletes a team and its memberships. Needs `team.manage`.
    async fn delete_team(&self, ctx: &Context, id: TeamId) -> Result<()>;
    /// Adds a member of the tenant to a team. Needs `team.manage`.
    /// `NotFound` (entity `member`) for a user who is not a member.
    async fn add_team_member(&self, ctx: &Context, team: TeamId, user: UserId) -> Result<()>;
    /// Removes a user from a team. Needs `team.manage`.
    async fn remove_team_member(&self, ctx: &Context, team: TeamId, user: UserId) -> Result<()>;
    /// The team's members, ordered by id.
    async fn list_team_members(&self, ctx: &Context, team: TeamId) -> Result<Vec<UserId>>;
}

/// Roles, permissions, grants and the permission check.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait RbacRepo: Send + Sync {
    /// The global permission catalog, ordered by code.
    async fn list_permissions(&self, ctx: &Context) -> Result<Vec<Permission>>;
    /// Built-in roles and the tenant's own, ordered by name then scope.
    async fn list_roles(&self, ctx: &Context) -> Result<Vec<Role>>;
    /// One role (built-in or the tenant's).
    async fn get_role(&self, ctx: &Context, id: RoleId) -> Result<Role>;
    /// The role named `name` (built-in or the tenant's). A name may exist
    /// in several scopes: the first in [`Self::list_roles`] order wins
    /// (global, then org, then project; a built-in before the tenant's own
    /// role of the same scope). `NotFound` when none has it.
    async fn get_role_by_name(&self, ctx: &Context, name: &Name) -> Result<Role>;
    /// Creates a tenant role. Needs `role.manage`. Honours the request's
    /// idempotency key.
    async fn create_role(&self, ctx: &Context, new: NewRole) -> Result<Role>;
    /// Replaces a tenant role's permissions. Needs `role.manage`; built-in
    /// roles are read-only (`InvalidState`).
    async fn set_role_permissions(
        &self,
        ctx: &Context,
        id: RoleId,
        permissions: Vec<PermissionCode>,
    ) -> Result<Role>;
    /// Deletes a tenant role and its grants. Needs `role.manage`.
    async fn delete_role(&self, ctx: &Context, id: RoleId) -> Result<()>;
    /// Grants a role to a member, tenant-wide (`project = None`) or on one
    /// project. Needs `role.assign` at that level and every permission of
    /// the role (no escalation). The role's scope must allow the level.
    async fn grant_role(
        &self,
        ctx: &Context,
        user: UserId,
        role: RoleId,
        project: Option<ProjectId>,
    ) -> Result<RoleGrant>;
    /// Revokes a grant. Needs `role.assign`.
    async fn revoke_role(&self, ctx: &Context, grant: RoleGrantId) -> Result<()>;
    /// Grants in the tenant, optionally of one user, ordered by creation.
    async fn list_grants(&self, ctx: &Context, user: Option<UserId>) -> Result<Vec<RoleGrant>>;
    /// Whether the principal holds `permission` in the context's tenant
    /// (tenant-wide, or on `project` when given). Agrees with SQL's
    /// `insightpulse_auth.user_has_permission(code, tenant, project)`.
    /// `false` in a tenant the principal cannot see.
    async fn has_permission(
        &self,
        ctx: &Context,
        permission: PermissionCode,
        project: Option<ProjectId>,
    ) -> Result<bool>;
    /// [`Self::has_permission`] as a guard: `Ok(())` when held,
    /// `PermissionDenied` (requiring `permission`) inside the tenant,
    /// `NotFound` (entity `tenant`) for a tenant the principal cannot see.
    ///
    /// ```no_run
    /// # async fn demo(repos: insightpulse_core::Repos, ctx: insightpulse_core::Context) -> insightpulse_core::Result<()> {
    /// use insightpulse_core::PermissionCode;
    /// repos.rbac.require_permission(&ctx, PermissionCode::DASHBOARD_DELETE, None).await?;
    /// # Ok(()) }
    /// ```
    async fn require_permission(
        &self,
        ctx: &Context,
        permission: PermissionCode,
        project: Option<ProjectId>,
    ) -> Result<()>;
}

/// SSO providers and federated identities of the context's tenant.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait SsoRepo: Send + Sync {
    /// Registers a provider (validated). Needs `sso.manage`.
    async fn create_provider(&self, ctx: &Context, new: NewSsoProvider) -> Result<SsoProvider>;
    /// Every provider, ordered by name. Needs `sso.manage`.
    async fn list_providers(&self, ctx: &Context) -> Result<Vec<SsoProvider>>;
    /// Changes the configuration and/or enabled flag. Needs `sso.manage`.
    async fn update_provider(
        &self,
        ctx: &Context,
        id: SsoProviderId,
        config: Option<SsoConfig>,
        enabled: Option<bool>,
    ) -> Result<SsoProvider>;
    /// Deletes a provider and its identities. Needs `sso.manage`.
    async fn delete_provider(&self, ctx: &Context, id: SsoProviderId) -> Result<()>;
    /// Links a provider subject to a member. Needs `sso.manage` (or the
    /// system, at just-in-time login). `Conflict` when the subject is
    /// already linked.
    async fn link_identity(
        &self,
        ctx: &Context,
        provider: SsoProviderId,
        subject: &str,
        user: UserId,
    ) -> Result<Identity>;
    /// The user linked to a subject. `InvalidState` when the provider is
    /// disabled.
    async fn find_user_by_identity(
        &self,
        ctx: &Context,
        provider: SsoProviderId,
        subject: &str,
    ) -> Result<Option<User>>;
    /// Identities of a user in the tenant. Needs `sso.manage`, except for
    /// a user's own.
    async fn list_identities(&self, ctx: &Context, user: UserId) -> Result<Vec<Identity>>;
    /// Removes a link. Needs `sso.manage`.
    async fn unlink_identity(&self, ctx: &Context, id: IdentityId) -> Result<()>;
}

/// API keys of the context's tenant.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait ApiKeyRepo: Send + Sync {
    /// Creates a key. The principal must be a user holding `api_key.manage`
    /// and every requested permission at the key's scope. The plaintext is
    /// returned once; only its keyed hash and public prefix are stored.
    async fn create_api_key(&self, ctx: &Context, new: NewApiKey) -> Result<IssuedApiKey>;
    /// Every key of the tenant (metadata only), ordered by creation.
    async fn list_api_keys(&self, ctx: &Context) -> Result<Vec<ApiKey>>;
    /// One key.
    async fn get_api_key(&self, ctx: &Context, id: ApiKeyId) -> Result<ApiKey>;
    /// Revokes a key; it is refused from then on. Needs `api_key.manage`.
    async fn revoke_api_key(&self, ctx: &Context, id: ApiKeyId) -> Result<ApiKey>;
}

/// The calls a host makes before it has a [`Context`]: sign-up, sign-in,
/// and turning a presented API key into a context. None needs a system
/// context from the host; each runs the SDK's own, named system path.
///
/// ```no_run
/// # async fn demo(repos: insightpulse_core::Repos, bearer: insightpulse_core::SecretString) -> insightpulse_core::Result<()> {
/// use insightpulse_core::{PermissionCode, RequestMeta};
/// let ctx = repos.auth.authenticate(&bearer, RequestMeta::default().with_request_id("req-1")).await?;
/// repos.rbac.require_permission(&ctx, PermissionCode::PROJECT_CREATE, None).await?;
/// # Ok(()) }
/// ```
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait AuthRepo: Send + Sync {
    /// Signs a new user up, all or nothing: the user, their password
    /// (argon2id), their first tenant, their active owner membership and
    /// the tenant-wide `Admin` grant, audited as `tenant.created`. Returns
    /// them with the new user's context in the new tenant.
    ///
    /// Honours the request's idempotency key (scoped to the email): a
    /// repeated sign-up with the same key, input and password returns the
    /// first one's result.
    /// Errors: `Validation` (password length), `Conflict` on a taken email
    /// or slug — and then nothing is written.
    async fn sign_up(&self, request: RequestMeta, new: SignUp) -> Result<SignedUp>;

    /// Checks an email and password. Returns the user and their context
    /// (in no tenant yet; see [`Context::in_tenant`]). Errors:
    /// `Unauthenticated` (credential `password`, reason `unknown`) for an
    /// unknown email, an account without password or a wrong password —
    /// indistinguishably, also in time.
    async fn sign_in(
        &self,
        email: &Email,
        password: &SecretString,
        request: RequestMeta,
    ) -> Result<SignedIn>;

    /// Checks a presented API key and returns a context that acts with
    /// exactly the key's tenant, scope and permissions, carrying
    /// `request`. Records the time of use at most once a minute per key
    /// (and audits the first use). Errors: `Unauthenticated` (credential
    /// `api_key`) with the reason: malformed, unknown, expired or revoked.
    async fn authenticate(&self, presented: &SecretString, request: RequestMeta)
        -> Result<Context>;
}
