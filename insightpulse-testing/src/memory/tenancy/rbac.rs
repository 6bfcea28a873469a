//! Roles, grants and permission checks.

use super::super::{MemoryBackend, TenantRows};
use super::{normalized, TenancyState};
use async_trait::async_trait;
use insightpulse_core::audit::{AuditEvent, Diff};
use insightpulse_core::idempotency::{self, Call, Operation};
use insightpulse_core::tenancy::catalog::PERMISSIONS;
use insightpulse_core::tenancy::{
    GrantFacts, NewRole, Permission, RbacRepo, Role, RoleGrant, UserFacts,
};
use insightpulse_core::{
    Context, Entity, Error, Name, PermissionCode, ProjectId, Result, RoleGrantId, RoleId,
    StateRule, TenantId, UserId,
};

/// The diff of `role.granted` and `role.revoked`.
fn grant_diff(g: &RoleGrant) -> Diff {
    Diff::new()
        .set("user_id", g.user_id)
        .set("role_id", g.role_id)
        .set("project_id", g.project_id)
}

fn sort_roles(roles: &mut [Role]) {
    roles.sort_by(|a, b| {
        (a.name.as_str(), a.scope.as_str()).cmp(&(b.name.as_str(), b.scope.as_str()))
    });
}

impl TenancyState {
    /// A role visible in tenant `t` (built-in or `t`'s own), or `NotFound{role}`.
    pub fn role(&self, t: TenantId, id: RoleId) -> Result<&Role> {
        self.builtin_roles
            .get(&id)
            .or_else(|| self.roles.get(&(t, id)))
            .ok_or_else(|| Error::not_found(Entity::Role))
    }

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
}

#[async_trait]
impl RbacRepo for MemoryBackend {
    async fn list_permissions(&self, ctx: &Context) -> Result<Vec<Permission>> {
        self.run(ctx, "RbacRepo.list_permissions", || {
            let mut out: Vec<Permission> = PERMISSIONS
                .iter()
                .map(|(code, description)| Permission {
                    code: *code,
                    description: (*description).to_owned(),
                })
                .collect();
            out.sort_by(|a, b| a.code.as_str().cmp(b.code.as_str()));
            Ok(out)
        })
    }

    async fn list_roles(&self, ctx: &Context) -> Result<Vec<Role>> {
        self.run(ctx, "RbacRepo.list_roles", || {
            let st = self.lock();
            let t = st.list_tenant(ctx)?;
            let mut out: Vec<Role> = st.tenancy.builtin_roles.values().cloned().collect();
            if let Some(t) = t {
                out.extend(st.tenancy.roles.of_tenant(t).cloned());
            }
            sort_roles(&mut out);
            Ok(out)
        })
    }

    async fn get_role(&self, ctx: &Context, id: RoleId) -> Result<Role> {
        self.run(ctx, "RbacRepo.get_role", || {
            let st = self.lock();
            let t = ctx.require_tenant()?;
            if let Some(role) = st.tenancy.builtin_roles.get(&id) {
                return Ok(role.clone());
            }
            st.tenancy
                .roles
                .get(&(t, id))
                .filter(|_| st.tenant_visible(ctx, t))
                .cloned()
                .ok_or_else(|| Error::not_found(Entity::Role))
        })
    }

    async fn get_role_by_name(&self, ctx: &Context, name: &Name) -> Result<Role> {
        self.run(ctx, "RbacRepo.get_role_by_name", || {
            let st = self.lock();
            let t = st.list_tenant(ctx)?;
            let builtins = st.tenancy.builtin_roles.values();
            let own = t.into_iter().flat_map(|t| st.tenancy.roles.of_tenant(t));
            builtins
                .chain(own)
                .filter(|r| r.name == *name)
                // list_roles' order; a built-in before a tenant's role of
                // the same scope.
                .min_by_key(|r| (r.scope.as_str(), r.tenant_id.is_some()))
                .cloned()
                .ok_or_else(|| Error::not_found(Entity::Role))
        })
    }

    async fn create_role(&self, ctx: &Context, new: NewRole) -> Result<Role> {
        self.run(ctx, "RbacRepo.create_role", || {
            let call = Call::new(Operation::CreateRole, ctx.tenant_id(), &new)?;
            let scope = idempotency::scope(ctx);
            let now = self.now();
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, PermissionCode::ROLE_MANAGE, None)?;
            if let Some(id) = st.idempotency.replayed(&scope, ctx.request(), &call, now)? {
                return st
                    .tenancy
                    .roles
                    .get(&(t, RoleId(id)))
                    .cloned()
                    .ok_or_else(|| Error::not_found(Entity::Role));
            }
            if st
                .tenancy
                .roles
                .of_tenant(t)
                .any(|r| r.name == new.name && r.scope == new.scope)
            {
                return Err(Error::conflict(Entity::Role, "name"));
            }
            let role = Role {
                id: RoleId::new(),
                tenant_id: Some(t),
                name: new.name,
                scope: new.scope,
                description: new.description,
                permissions: normalized(new.permissions),
            };
            let event = AuditEvent::new(
                "role.created",
                "role",
                Some(role.id),
                Diff::new()
                    .set("name", &role.name)
                    .set("scope", role.scope.as_str())
                    .set("permissions", &role.permissions),
            )?;
            st.tenancy.roles.insert((t, role.id), role.clone());
            st.audit(ctx, t, event, now);
            st.idempotency
                .remember(scope, ctx.request(), call, role.id.0, now);
            Ok(role)
        })
    }

    async fn set_role_permissions(
        &self,
        ctx: &Context,
        id: RoleId,
        permissions: Vec<PermissionCode>,
    ) -> Result<Role> {
        self.run(ctx, "RbacRepo.set_role_permissions", || {
            let now = self.now();
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, PermissionCode::ROLE_MANAGE, None)?;
            if st.tenancy.role(t, id)?.tenant_id.is_none() {
                return Err(Error::invalid_state(Entity::Role, StateRule::BuiltinRole));
            }
            let role = st
                .tenancy
                .roles
                .get_mut(&(t, id))
                .ok_or_else(|| Error::not_found(Entity::Role))?;
            let permissions = normalized(permissions);
            // Written even when the set is unchanged (empty diff), like
            // tenant.updated: the call is an update, not a no-op return.
            let event = AuditEvent::new(
                "role.updated",
                "role",
                Some(id),
                Diff::new().change("permissions", &role.permissions, &permissions),
            )?;
            role.permissions = permissions;
            let updated = role.clone();
            st.audit(ctx, t, event, now);
            Ok(updated)
        })
    }

    async fn delete_role(&self, ctx: &Context, id: RoleId) -> Result<()> {
        self.run(ctx, "RbacRepo.delete_role", || {
            let now = self.now();
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, PermissionCode::ROLE_MANAGE, None)?;
            let role = st.tenancy.role(t, id)?;
            if role.tenant_id.is_none() {
                return Err(Error::invalid_state(Entity::Role, StateRule::BuiltinRole));
            }
            let event = AuditEvent::new(
                "role.deleted",
                "role",
                Some(id),
                Diff::new().set("name", &role.name),
            )?;
            st.tenancy.delete_role(t, id);
            st.audit(ctx, t, event, now);
            Ok(())
        })
    }

    async fn grant_role(
        &self,
        ctx: &Context,
        user: UserId,
        role: RoleId,
        project: Option<ProjectId>,
    ) -> Result<RoleGrant> {
        self.run(ctx, "RbacRepo.grant_role", || {
            let now = self.now();
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, PermissionCode::ROLE_ASSIGN, project)?;
            let role = st.tenancy.role(t, role)?;
            if !role.scope.allows_grant(project) {
                return Err(Error::validation(
                    "project",
                    format!(
                        "a role of scope {} cannot be granted at this level",
                        role.scope.as_str()
                    ),
                ));
            }
            if let Some(p) = project {
                st.projects.project(ctx, t, p)?;
            }
            if !st.tenancy.memberships.contains_key(&(t, user)) {
                return Err(Error::not_found(Entity::Member));
            }
            if let Some(missing) = role
                .permissions
                .iter()
                .find(|p| !st.allows(ctx, t, p, project))
            {
                return Err(Error::denied(*missing));
            }
            let role_id = role.id;
            if st
                .tenancy
                .grants
                .of_tenant(t)
                .any(|g| g.user_id == user && g.role_id == role_id && g.project_id == project)
            {
                return Err(Error::conflict(Entity::RoleGrant, "role"));
            }
            let grant = RoleGrant {
                id: RoleGrantId::new(),
                tenant_id: t,
                user_id: user,
                role_id,
                project_id: project,
                granted_by: ctx.user_id(),
                created_at: now,
            };
            let event = AuditEvent::new(
                "role.granted",
                "role_grant",
                Some(grant.id),
                grant_diff(&grant),
            )?;
            st.tenancy.grants.insert((t, grant.id), grant.clone());
            st.audit(ctx, t, event, now);
            Ok(grant)
        })
    }

    async fn revoke_role(&self, ctx: &Context, grant: RoleGrantId) -> Result<()> {
        self.run(ctx, "RbacRepo.revoke_role", || {
            let now = self.now();
            let mut st = self.lock();
            let t = st.row_tenant(ctx, Entity::RoleGrant)?;
            let found = st
                .tenancy
                .grants
                .get(&(t, grant))
                .ok_or_else(|| Error::not_found(Entity::RoleGrant))?;
            st.require(ctx, t, PermissionCode::ROLE_ASSIGN, found.project_id)?;
            let event =
                AuditEvent::new("role.revoked", "role_grant", Some(grant), grant_diff(found))?;
            st.tenancy.grants.remove(&(t, grant));
            st.audit(ctx, t, event, now);
            Ok(())
        })
    }

    async fn list_grants(&self, ctx: &Context, user: Option<UserId>) -> Result<Vec<RoleGrant>> {
        self.run(ctx, "RbacRepo.list_grants", || {
            let st = self.lock();
            let Some(t) = st.list_tenant(ctx)? else {
                return Ok(Vec::new());
            };
            let mut out: Vec<RoleGrant> = st
                .tenancy
                .grants
                .of_tenant(t)
                .filter(|g| user.is_none() || user == Some(g.user_id))
                .cloned()
                .collect();
            out.sort_by_key(|g| (g.created_at, g.id));
            Ok(out)
        })
    }

    async fn has_permission(
        &self,
        ctx: &Context,
        permission: PermissionCode,
        project: Option<ProjectId>,
    ) -> Result<bool> {
        self.run(ctx, "RbacRepo.has_permission", || {
            let t = ctx.require_tenant()?;
            let st = self.lock();
            Ok(st.allows(ctx, t, &permission, project))
        })
    }

    async fn require_permission(
        &self,
        ctx: &Context,
        permission: PermissionCode,
        project: Option<ProjectId>,
    ) -> Result<()> {
        self.run(ctx, "RbacRepo.require_permission", || {
            let st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, permission, project)
        })
    }
}
