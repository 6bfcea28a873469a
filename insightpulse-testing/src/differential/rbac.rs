//! Operations of `RbacRepo`: roles, grants and permission checks.

use super::env::{Env, Outcome};
use super::generate::Gen;
use super::model::{acting_tenant, made, rows, set_alive, Model, RoleM, Row};
use super::ops::{Kind, ModuleOp, Ref, Who};
use async_trait::async_trait;
use insightpulse_core::tenancy::catalog::BUILTIN_ROLES;
use insightpulse_core::tenancy::{NewRole, RoleScope};
use insightpulse_core::{Context, Name, PermissionCode, Repos};
use std::fmt;

/// One call of `RbacRepo`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum RbacOp {
    ListPermissions,
    ListRoles,
    GetRole {
        role: Ref,
    },
    GetRoleByName {
        name: u8,
    },
    CreateRole {
        role: Ref,
        name: u8,
        scope: u8,
        permissions: Vec<PermissionCode>,
    },
    SetRolePermissions {
        role: Ref,
        permissions: Vec<PermissionCode>,
    },
    DeleteRole {
        role: Ref,
    },
    GrantRole {
        grant: Ref,
        user: Ref,
        role: Ref,
        project: Option<Ref>,
    },
    RevokeRole {
        grant: Ref,
    },
    ListGrants {
        user: Option<Ref>,
    },
    HasPermission {
        permission: PermissionCode,
        project: Option<Ref>,
    },
    RequirePermission {
        permission: PermissionCode,
        project: Option<Ref>,
    },
}

/// Role names: custom ones, then names of built-in roles (a tenant role
/// may share a built-in's name in another or the same scope).
fn role_name(i: u8) -> String {
    match i {
        0..=3 => format!("Custom {i}"),
        4 => "Viewer".to_owned(),
        5 => "Admin".to_owned(),
        6 => "Nobody Has This".to_owned(),
        7 => "custom 1".to_owned(),
        8 => "Ünïcode".to_owned(),
        9 => "éclair".to_owned(),
        10 => "Developer".to_owned(),
        _ => "Billing Admin".to_owned(),
    }
}

const SCOPES: [RoleScope; 3] = [RoleScope::Global, RoleScope::Org, RoleScope::Project];

fn perms_text(p: &[PermissionCode]) -> String {
    let codes: Vec<&str> = p.iter().map(|c| c.as_str()).collect();
    format!("[{}]", codes.join(","))
}

fn opt_text(r: &Option<Ref>) -> String {
    r.map_or("None".to_owned(), |r| r.to_string())
}

impl fmt::Display for RbacOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use RbacOp::*;
        match self {
            ListPermissions => f.write_str("list_permissions"),
            ListRoles => f.write_str("list_roles"),
            GetRole { role } => write!(f, "get_role {role}"),
            GetRoleByName { name } => write!(f, "get_role_by_name {:?}", role_name(*name)),
            CreateRole {
                role,
                name,
                scope,
                permissions,
            } => write!(
                f,
                "create_role {role} name={:?} scope={} permissions={}",
                role_name(*name),
                SCOPES[*scope as usize % 3].as_str(),
                perms_text(permissions)
            ),
            SetRolePermissions { role, permissions } => {
                write!(f, "set_role_permissions {role} {}", perms_text(permissions))
            }
            DeleteRole { role } => write!(f, "delete_role {role}"),
            GrantRole {
                grant,
                user,
                role,
                project,
            } => {
                write!(
                    f,
                    "grant_role {grant} user={user} role={role} project={}",
                    opt_text(project)
                )
            }
            RevokeRole { grant } => write!(f, "revoke_role {grant}"),
            ListGrants { user } => write!(f, "list_grants user={}", opt_text(user)),
            HasPermission {
                permission,
                project,
            } => {
                write!(
                    f,
                    "has_permission {permission} project={}",
                    opt_text(project)
                )
            }
            RequirePermission {
                permission,
                project,
            } => {
                write!(
                    f,
                    "require_permission {permission} project={}",
                    opt_text(project)
                )
            }
        }
    }
}

const METHODS: &[&str] = &[
    "list_permissions",
    "list_roles",
    "get_role",
    "get_role_by_name",
    "create_role",
    "set_role_permissions",
    "delete_role",
    "grant_role",
    "revoke_role",
    "list_grants",
    "has_permission",
    "require_permission",
];

const WEIGHTS: &[u32] = &[1, 2, 1, 2, 5, 4, 2, 7, 4, 2, 5, 4];

fn role_rows(m: &Model) -> Vec<(u32, bool)> {
    m.roles
        .iter()
        .map(|r| (r.tenant.unwrap_or(u32::MAX), r.alive))
        .collect()
}

/// A role to name in `t`: a built-in one or one of the tenant's.
fn role(g: &mut Gen, t: Ref) -> Ref {
    if g.chance(0.55) {
        Ref::new(Kind::Role, g.below(BUILTIN_ROLES.len()) as u32)
    } else {
        let rows = role_rows(&g.model);
        g.row_in(Kind::Role, &rows, t)
    }
}

/// What `method` needs first in `t`, if it is missing.
fn needs(g: &Gen, method: &'static str, t: Ref) -> Option<&'static str> {
    let m = &g.model;
    let custom_roles = m
        .roles
        .iter()
        .filter(|r| r.tenant == Some(t.idx) && r.alive)
        .count();
    match method {
        "set_role_permissions" | "delete_role" if custom_roles == 0 => Some("create_role"),
        "revoke_role" if g.live_in(&rows(&m.grants), t) == 0 => Some("grant_role"),
        _ => None,
    }
}

/// Mostly a role whose scope allows a grant at that level.
fn role_for(g: &mut Gen, t: Ref, on_project: bool) -> Ref {
    let fits: Vec<u32> = g
        .model
        .roles
        .iter()
        .enumerate()
        .filter(|(_, r)| r.alive && r.tenant.is_none_or(|rt| rt == t.idx))
        .filter(|(_, r)| match r.scope {
            RoleScope::Global => true,
            RoleScope::Org => !on_project,
            RoleScope::Project => on_project,
        })
        .map(|(i, _)| i as u32)
        .collect();
    if !fits.is_empty() && g.chance(0.85) {
        Ref::new(Kind::Role, g.pick(&fits))
    } else {
        role(g, t)
    }
}

/// Mostly one of the tenant's own roles.
fn custom_role(g: &mut Gen, t: Ref) -> Ref {
    if g.chance(0.85) {
        let rows = role_rows(&g.model);
        g.row_in(Kind::Role, &rows, t)
    } else {
        role(g, t)
    }
}

pub(crate) fn project(g: &mut Gen, t: Ref) -> Ref {
    g.row_in(Kind::Project, &rows(&g.model.projects), t)
}

fn maybe_project(g: &mut Gen, t: Ref) -> Option<Ref> {
    let some = g.live_in(&rows(&g.model.projects), t) > 0;
    if g.chance(if some { 0.4 } else { 0.05 }) {
        Some(project(g, t))
    } else {
        None
    }
}

/// Permissions a caller probably holds: a Developer's mostly.
pub(crate) fn some_permissions(g: &mut Gen) -> Vec<PermissionCode> {
    let developer = BUILTIN_ROLES[1].permissions;
    let viewer = BUILTIN_ROLES[2].permissions;
    match g.below(10) {
        0..=3 => g.permissions(CHECKED_BY_SDK, 5),
        4..=6 => g.permissions(developer, 4),
        7 => g.permissions(viewer, 3),
        _ => g.permissions(&[], 4),
    }
}

/// The permissions the SDK's own calls check (so keys and roles holding
/// them get somewhere).
pub(crate) const CHECKED_BY_SDK: &[PermissionCode] = &[
    PermissionCode::TENANT_MANAGE,
    PermissionCode::MEMBER_READ,
    PermissionCode::MEMBER_INVITE,
    PermissionCode::MEMBER_MANAGE,
    PermissionCode::TEAM_MANAGE,
    PermissionCode::ROLE_MANAGE,
    PermissionCode::ROLE_ASSIGN,
    PermissionCode::SSO_MANAGE,
    PermissionCode::API_KEY_MANAGE,
    PermissionCode::PROJECT_CREATE,
    PermissionCode::PROJECT_UPDATE,
    PermissionCode::PROJECT_DELETE,
    PermissionCode::ENVIRONMENT_MANAGE,
    PermissionCode::AUDIT_READ,
    PermissionCode::DATA_POLICY_MANAGE,
    PermissionCode::CONSENT_MANAGE,
];

/// A permission to check: one the SDK's own calls need, or any.
fn permission(g: &mut Gen) -> PermissionCode {
    const COMMON: &[PermissionCode] = &[
        PermissionCode::PROJECT_CREATE,
        PermissionCode::PROJECT_UPDATE,
        PermissionCode::ENVIRONMENT_MANAGE,
        PermissionCode::API_KEY_MANAGE,
        PermissionCode::MEMBER_READ,
        PermissionCode::AUDIT_READ,
        PermissionCode::DASHBOARD_DELETE,
    ];
    if g.chance(0.7) {
        g.pick(COMMON)
    } else {
        g.pick(PermissionCode::ALL)
    }
}

#[async_trait]
impl ModuleOp for RbacOp {
    fn method(&self) -> &'static str {
        use RbacOp::*;
        match self {
            ListPermissions => "list_permissions",
            ListRoles => "list_roles",
            GetRole { .. } => "get_role",
            GetRoleByName { .. } => "get_role_by_name",
            CreateRole { .. } => "create_role",
            SetRolePermissions { .. } => "set_role_permissions",
            DeleteRole { .. } => "delete_role",
            GrantRole { .. } => "grant_role",
            RevokeRole { .. } => "revoke_role",
            ListGrants { .. } => "list_grants",
            HasPermission { .. } => "has_permission",
            RequirePermission { .. } => "require_permission",
        }
    }

    fn is_read(&self) -> bool {
        use RbacOp::*;
        matches!(
            self,
            ListPermissions
                | ListRoles
                | GetRole { .. }
                | GetRoleByName { .. }
                | ListGrants { .. }
                | HasPermission { .. }
                | RequirePermission { .. }
        )
    }

    fn methods() -> &'static [&'static str] {
        METHODS
    }

    fn generate(g: &mut Gen) -> Option<(Who, Self)> {
        use RbacOp::*;
        let t = g.tenant();
        let method = g.next_method(METHODS, WEIGHTS, |g, m| needs(g, m, t))?;
        let op = match method {
            "list_permissions" => ListPermissions,
            "list_roles" => ListRoles,
            "get_role" => GetRole { role: role(g, t) },
            "get_role_by_name" => GetRoleByName {
                name: if g.chance(0.4) {
                    g.pick(&[4, 5, 10, 11])
                } else {
                    g.small(10)
                },
            },
            "create_role" => {
                let r = g.fresh(Kind::Role, g.model.roles.len());
                let scope = g.small(3);
                g.model.roles.push(RoleM {
                    tenant: Some(t.idx),
                    scope: SCOPES[scope as usize],
                    alive: false,
                });
                let permissions = if g.chance(0.05) {
                    Vec::new()
                } else {
                    some_permissions(g)
                };
                CreateRole {
                    role: r,
                    name: g.small(10),
                    scope,
                    permissions,
                }
            }
            "set_role_permissions" => SetRolePermissions {
                role: custom_role(g, t),
                permissions: some_permissions(g),
            },
            "delete_role" => DeleteRole {
                role: custom_role(g, t),
            },
            "grant_role" => {
                let grant = g.fresh(Kind::Grant, g.model.grants.len());
                g.model.grants.push(Row {
                    tenant: t.idx,
                    alive: false,
                });
                let user = g.plain_member(t);
                let project = maybe_project(g, t);
                GrantRole {
                    grant,
                    user,
                    role: role_for(g, t, project.is_some()),
                    project,
                }
            }
            "revoke_role" => RevokeRole {
                grant: g.row_in(Kind::Grant, &rows(&g.model.grants), t),
            },
            "list_grants" => ListGrants {
                user: g.maybe(0.5, |g| g.member(t)),
            },
            "has_permission" => HasPermission {
                permission: permission(g),
                project: maybe_project(g, t),
            },
            _ => RequirePermission {
                permission: permission(g),
                project: maybe_project(g, t),
            },
        };
        Some((g.actor(t), op))
    }

    fn observe(&self, by: &Who, m: &mut Model, ok: bool) {
        use RbacOp::*;
        if !ok {
            return;
        }
        let t = acting_tenant(by, m);
        match self {
            CreateRole { role, .. } => {
                if let Some(r) = m.roles.get_mut(role.idx as usize) {
                    r.alive = true;
                    r.tenant = t.or(r.tenant);
                }
            }
            DeleteRole { role } => {
                if let Some(r) = m
                    .roles
                    .get_mut(role.idx as usize)
                    .filter(|r| r.tenant.is_some())
                {
                    r.alive = false;
                }
            }
            GrantRole { grant, .. } => made(&mut m.grants, *grant, t),
            RevokeRole { grant } => set_alive(&mut m.grants, *grant, false),
            _ => {}
        }
    }

    async fn apply(&self, ctx: &Context, env: &mut Env, repos: &Repos) -> Outcome {
        use RbacOp::*;
        let rbac = &repos.rbac;
        match self {
            ListPermissions => {
                let r = rbac.list_permissions(ctx).await;
                env.outcome(r)
            }
            ListRoles => {
                let r = rbac.list_roles(ctx).await;
                env.outcome(r)
            }
            GetRole { role } => {
                let id = env.id(*role);
                let r = rbac.get_role(ctx, id).await;
                env.outcome(r)
            }
            GetRoleByName { name } => {
                let r = match Name::parse(&role_name(*name)) {
                    Ok(n) => rbac.get_role_by_name(ctx, &n).await,
                    Err(e) => Err(e),
                };
                env.outcome(r)
            }
            CreateRole {
                role,
                name,
                scope,
                permissions,
            } => {
                let r = match Name::parse(&role_name(*name)) {
                    Ok(n) => {
                        let new = NewRole {
                            name: n,
                            scope: SCOPES[*scope as usize % 3],
                            description: Some(format!("role {role}")),
                            permissions: permissions.clone(),
                        };
                        rbac.create_role(ctx, new).await
                    }
                    Err(e) => Err(e),
                };
                if let Ok(created) = &r {
                    env.bind(*role, created.id);
                }
                env.outcome(r)
            }
            SetRolePermissions { role, permissions } => {
                let id = env.id(*role);
                let r = rbac
                    .set_role_permissions(ctx, id, permissions.clone())
                    .await;
                env.outcome(r)
            }
            DeleteRole { role } => {
                let id = env.id(*role);
                let r = rbac.delete_role(ctx, id).await;
                env.outcome(r)
            }
            GrantRole {
                grant,
                user,
                role,
                project,
            } => {
                let (u, ro) = (env.id(*user), env.id(*role));
                let p = project.map(|p| env.id(p));
                let r = rbac.grant_role(ctx, u, ro, p).await;
                if let Ok(g) = &r {
                    env.bind(*grant, g.id);
                }
                env.outcome(r)
            }
            RevokeRole { grant } => {
                let id = env.id(*grant);
                let r = rbac.revoke_role(ctx, id).await;
                env.outcome(r)
            }
            ListGrants { user } => {
                let u = user.map(|u| env.id(u));
                let r = rbac.list_grants(ctx, u).await;
                env.outcome(r)
            }
            HasPermission {
                permission,
                project,
            } => {
                let p = project.map(|p| env.id(p));
                let r = rbac.has_permission(ctx, *permission, p).await;
                env.outcome(r)
            }
            RequirePermission {
                permission,
                project,
            } => {
                let p = project.map(|p| env.id(p));
                let r = rbac.require_permission(ctx, *permission, p).await;
                env.outcome(r)
            }
        }
    }
}
