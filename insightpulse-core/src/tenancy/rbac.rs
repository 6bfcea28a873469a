//! Roles, permissions and grants: the rows, their inputs and [`RbacRepo`].

use crate::context::Context;
use crate::error::Result;
use crate::ids::*;
use crate::values::{Name, PermissionCode};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a role may be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleScope {
    /// Grantable tenant-wide or on a single project.
    Global,
    /// Grantable tenant-wide only.
    Org,
    /// Grantable on a single project only.
    Project,
}

impl RoleScope {
    /// The SQL enum label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Global => "global",
            Self::Org => "org",
            Self::Project => "project",
        }
    }
    /// Whether a grant at this level (`project` = `None` for tenant-wide)
    /// is allowed for a role of this scope.
    pub fn allows_grant(self, project: Option<ProjectId>) -> bool {
        match self {
            Self::Global => true,
            Self::Org => project.is_none(),
            Self::Project => project.is_some(),
        }
    }
}

parse_by_label!(
    RoleScope,
    "scope",
    [RoleScope::Global, RoleScope::Org, RoleScope::Project]
);

/// A role: a named set of permissions. Built-in roles (`tenant_id = None`)
/// are shared by every tenant and cannot be changed by tenants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// Its id.
    pub id: RoleId,
    /// `None` for a built-in role.
    pub tenant_id: Option<TenantId>,
    /// Unique per tenant (and among built-ins) and scope.
    pub name: Name,
    /// Where it may be granted.
    pub scope: RoleScope,
    /// Free text.
    pub description: Option<String>,
    /// Its permissions, sorted.
    pub permissions: Vec<PermissionCode>,
}

/// Input of [`RbacRepo::create_role`](super::RbacRepo::create_role).
#[derive(Debug, Clone, Serialize)]
pub struct NewRole {
    /// Unique within the tenant and scope.
    pub name: Name,
    /// Where it may be granted.
    pub scope: RoleScope,
    /// Free text.
    pub description: Option<String>,
    /// Its permissions; each must exist in the catalog.
    pub permissions: Vec<PermissionCode>,
}

/// A permission of the global catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permission {
    /// e.g. `dashboard.delete`.
    pub code: PermissionCode,
    /// What it allows.
    pub description: String,
}

/// A role granted to a user, tenant-wide or on one project (`user_roles`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleGrant {
    /// Its id.
    pub id: RoleGrantId,
    /// The tenant.
    pub tenant_id: TenantId,
    /// The grantee.
    pub user_id: UserId,
    /// The role.
    pub role_id: RoleId,
    /// `None` for a tenant-wide grant.
    pub project_id: Option<ProjectId>,
    /// Who granted it (`None` for system grants).
    pub granted_by: Option<UserId>,
    /// When.
    pub created_at: DateTime<Utc>,
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
