//! `RbacRepo` on PostgreSQL. `has_permission` is one call of
//! `insightpulse_auth.user_has_permission`, the same function the write policies use.

use super::members::role_permissions;
use crate::error::{db, not_found};
use crate::guard::{first_missing, require};
use crate::idempotency::claim;
use crate::rows::{parse, row, sql};
use crate::uow::traced;
use crate::uow::{quote_literal, uuid_literal, Prepared, Tx};
use crate::PgBackend;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insightpulse_core::audit::{AuditEvent, Diff};
use insightpulse_core::idempotency::{Call, Operation};
use insightpulse_core::tenancy::{NewRole, Permission, RbacRepo, Role, RoleGrant};
use insightpulse_core::{
    Context, Entity, Error, Name, PermissionCode, ProjectId, Result, RoleGrantId, RoleId,
    StateRule, TenantId, UserId,
};
use uuid::Uuid;

const HAS_PERMISSION: Prepared = Prepared {
    name: "insightpulse_has_permission",
    params: "(text, uuid, uuid)",
    sql: "SELECT insightpulse_auth.user_has_permission($1, $2, $3)",
};
/// [`require`]'s question for a user or a key in one prepared statement:
/// can the caller see the tenant, and does it hold the permission there.
const REQUIRE_PERMISSION: Prepared = Prepared {
    name: "insightpulse_require_permission",
    params: "(text, uuid, uuid)",
    sql: "SELECT $2 = ANY (insightpulse_auth.user_tenant_ids()), \
          insightpulse_auth.user_has_permission($1, $2, $3)",
};

row! {
    /// A role read `FROM roles r`, with its permissions' codes.
    struct RoleRow {
        id: Uuid,
        tenant_id: Option<Uuid>,
        name: String,
        #[sql = "r.scope::text"]
        scope: String,
        description: Option<String>,
        #[sql = "array(SELECT p.code FROM role_permissions rp JOIN permissions p ON p.id = rp.permission_id
                        WHERE rp.role_id = r.id ORDER BY p.code COLLATE \"C\")"]
        permissions: Vec<String>,
    }
}

impl TryFrom<RoleRow> for Role {
    type Error = Error;
    fn try_from(r: RoleRow) -> Result<Self> {
        Ok(Role {
            id: RoleId(r.id),
            tenant_id: r.tenant_id.map(TenantId),
            name: parse(&r.name, Name::parse)?,
            scope: parse(&r.scope, str::parse)?,
            description: r.description,
            permissions: r
                .permissions
                .iter()
                .map(|p| parse(p, PermissionCode::parse))
                .collect::<Result<_>>()?,
        })
    }
}

row! {
    struct PermissionRow {
        code: String,
        description: String,
    }
}

impl TryFrom<PermissionRow> for Permission {
    type Error = Error;
    fn try_from(r: PermissionRow) -> Result<Self> {
        Ok(Permission {
            code: parse(&r.code, PermissionCode::parse)?,
            description: r.description,
        })
    }
}

row! {
    struct GrantRow {
        tenant_id: Uuid,
        id: Uuid,
        user_id: Uuid,
        role_id: Uuid,
        project_id: Option<Uuid>,
        granted_by: Option<Uuid>,
        created_at: DateTime<Utc>,
    }
}

impl From<GrantRow> for RoleGrant {
    fn from(r: GrantRow) -> Self {
        RoleGrant {
            id: RoleGrantId(r.id),
            tenant_id: TenantId(r.tenant_id),
            user_id: UserId(r.user_id),
            role_id: RoleId(r.role_id),
            project_id: r.project_id.map(ProjectId),
            granted_by: r.granted_by.map(UserId),
            created_at: r.created_at,
        }
    }
}

/// What a grant's audit entries record.
fn grant_diff(g: &RoleGrant) -> Diff {
    Diff::new()
        .set("user_id", g.user_id)
        .set("role_id", g.role_id)
        .set("project_id", g.project_id)
}

/// The codes as stored: sorted and deduplicated.
pub(crate) fn stored_codes(codes: &[PermissionCode]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = codes.iter().map(PermissionCode::as_str).collect();
    out.sort_unstable();
    out.dedup();
    out
}

async fn role(tx: &mut Tx, tenant: TenantId, id: RoleId) -> Result<RoleRow> {
    tx.query_as(sql!(
        "SELECT ",
        RoleRow::COLUMNS,
        " FROM roles r WHERE r.id = $1 AND (r.tenant_id IS NULL OR r.tenant_id = $2)"
    ))
    .bind(id.0)
    .bind(tenant.0)
    .fetch_one(&mut **tx)
    .await
    .map_err(not_found(Entity::Role))
}

/// Replaces the permissions of `tenant`'s role `role` with `codes`.
async fn replace_permissions(
    tx: &mut Tx,
    tenant: TenantId,
    role: Uuid,
    codes: &[&str],
) -> Result<()> {
    tx.query("DELETE FROM role_permissions WHERE role_id = $1")
        .bind(role)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    tx.query(
        "INSERT INTO role_permissions (role_id, tenant_id, permission_id)
         SELECT $1, $3, p.id FROM permissions p WHERE p.code = ANY ($2)",
    )
    .bind(role)
    .bind(codes)
    .bind(tenant.0)
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(())
}

/// A tenant role of `tenant` that may be changed: `NotFound` for another
/// tenant's, `InvalidState` for a built-in one.
async fn own_role(tx: &mut Tx, tenant: TenantId, id: RoleId) -> Result<RoleRow> {
    let row = role(tx, tenant, id).await?;
    if row.tenant_id.is_none() {
        return Err(Error::invalid_state(Entity::Role, StateRule::BuiltinRole));
    }
    Ok(row)
}

impl PgBackend {
    /// Runs one of the permission statements (`(code, tenant, project)`)
    /// as `ctx`, in one round trip, and returns its one row.
    async fn ask_permission<T>(
        &self,
        ctx: &Context,
        stmt: &Prepared,
        permission: PermissionCode,
        tenant: TenantId,
        project: Option<ProjectId>,
    ) -> Result<T>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
    {
        let args = [
            quote_literal(permission.as_str()),
            uuid_literal(tenant.0),
            project.map_or("NULL".to_owned(), |p| uuid_literal(p.0)),
        ];
        self.read_once(ctx, stmt, &args)
            .await?
            .pop()
            .ok_or_else(|| Error::backend(std::io::Error::other("no answer")))
    }
}

#[async_trait]
impl RbacRepo for PgBackend {
    async fn list_permissions(&self, ctx: &Context) -> Result<Vec<Permission>> {
        traced!(ctx, "RbacRepo.list_permissions", {
            let mut tx = self.begin(ctx).await?;
            let rows: Vec<PermissionRow> = tx
                .query_as(sql!(
                    "SELECT ",
                    PermissionRow::COLUMNS,
                    " FROM permissions ORDER BY code COLLATE \"C\""
                ))
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            rows.into_iter().map(Permission::try_from).collect()
        })
    }

    async fn list_roles(&self, ctx: &Context) -> Result<Vec<Role>> {
        traced!(ctx, "RbacRepo.list_roles", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            let rows: Vec<RoleRow> = tx.query_as(sql!(
                "SELECT ",
                RoleRow::COLUMNS,
                " FROM roles r WHERE r.tenant_id IS NULL OR r.tenant_id = $1
                  ORDER BY r.name COLLATE \"C\", r.scope::text COLLATE \"C\", r.tenant_id NULLS FIRST"
            ))
            .bind(tenant.0)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
            tx.commit().await.map_err(db)?;
            rows.into_iter().map(Role::try_from).collect()
        })
    }

    async fn get_role(&self, ctx: &Context, id: RoleId) -> Result<Role> {
        traced!(ctx, "RbacRepo.get_role", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            let row = role(&mut tx, tenant, id).await?;
            tx.commit().await.map_err(db)?;
            row.try_into()
        })
    }

    async fn get_role_by_name(&self, ctx: &Context, name: &Name) -> Result<Role> {
        traced!(ctx, "RbacRepo.get_role_by_name", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            // list_roles' order, from roles_tenant_name_scope_key.
            let row: RoleRow = tx
                .query_as(sql!(
                    "SELECT ",
                    RoleRow::COLUMNS,
                    " FROM roles r
                  WHERE r.name = $2 AND (r.tenant_id IS NULL OR r.tenant_id = $1)
                  ORDER BY r.scope::text COLLATE \"C\", r.tenant_id NULLS FIRST LIMIT 1"
                ))
                .bind(tenant.0)
                .bind(name.as_str())
                .fetch_one(&mut *tx)
                .await
                .map_err(not_found(Entity::Role))?;
            tx.commit().await.map_err(db)?;
            row.try_into()
        })
    }

    async fn create_role(&self, ctx: &Context, new: NewRole) -> Result<Role> {
        traced!(ctx, "RbacRepo.create_role", {
            let codes = stored_codes(&new.permissions);
            let tenant = ctx.require_tenant()?;
            let call = Call::new(Operation::CreateRole, Some(tenant), &new)?;
            let (id, now) = (RoleId::new(), self.clock.now());
            let mut tx = self.begin(ctx).await?;
            require(
                &mut tx,
                ctx,
                tenant,
                Some(PermissionCode::ROLE_MANAGE),
                None,
            )
            .await?;
            if let Some(done) = claim(&mut tx, ctx, &call, id.0, now).await? {
                tx.commit().await.map_err(db)?;
                return self.get_role(ctx, RoleId(done)).await;
            }
            let id: Uuid = tx.query_scalar(
                "INSERT INTO roles (id, tenant_id, name, scope, description, created_at, updated_at)
                 VALUES ($6, $1, $2, $3::role_scope, $4, $5, $5) RETURNING id",
            )
            .bind(tenant.0)
            .bind(new.name.as_str())
            .bind(new.scope.as_str())
            .bind(&new.description)
            .bind(now)
            .bind(id.0)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            replace_permissions(&mut tx, tenant, id, &codes).await?;
            let created: Role = role(&mut tx, tenant, RoleId(id)).await?.try_into()?;
            let diff = Diff::new()
                .set("name", &created.name)
                .set("scope", created.scope.as_str())
                .set("permissions", &created.permissions);
            let event = AuditEvent::new("role.created", "role", Some(created.id), diff)?;
            self.audit(&mut tx, ctx, tenant, event);
            tx.commit().await.map_err(db)?;
            Ok(created)
        })
    }

    async fn set_role_permissions(
        &self,
        ctx: &Context,
        id: RoleId,
        permissions: Vec<PermissionCode>,
    ) -> Result<Role> {
        traced!(ctx, "RbacRepo.set_role_permissions", {
            let codes = stored_codes(&permissions);
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            require(
                &mut tx,
                ctx,
                tenant,
                Some(PermissionCode::ROLE_MANAGE),
                None,
            )
            .await?;
            let old: Role = own_role(&mut tx, tenant, id).await?.try_into()?;
            replace_permissions(&mut tx, tenant, id.0, &codes).await?;
            tx.query("UPDATE roles SET updated_at = $2 WHERE id = $1")
                .bind(id.0)
                .bind(self.clock.now())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            let new: Role = role(&mut tx, tenant, id).await?.try_into()?;
            let diff = Diff::new().change("permissions", &old.permissions, &new.permissions);
            let event = AuditEvent::new("role.updated", "role", Some(id), diff)?;
            self.audit(&mut tx, ctx, tenant, event);
            tx.commit().await.map_err(db)?;
            Ok(new)
        })
    }

    async fn delete_role(&self, ctx: &Context, id: RoleId) -> Result<()> {
        traced!(ctx, "RbacRepo.delete_role", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            require(
                &mut tx,
                ctx,
                tenant,
                Some(PermissionCode::ROLE_MANAGE),
                None,
            )
            .await?;
            let old = own_role(&mut tx, tenant, id).await?;
            let event = AuditEvent::new(
                "role.deleted",
                "role",
                Some(id),
                Diff::new().set("name", old.name),
            )?;
            self.audit(&mut tx, ctx, tenant, event);
            tx.query("DELETE FROM roles WHERE id = $1 AND tenant_id = $2")
                .bind(id.0)
                .bind(tenant.0)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)
        })
    }

    async fn grant_role(
        &self,
        ctx: &Context,
        user: UserId,
        role_id: RoleId,
        project: Option<ProjectId>,
    ) -> Result<RoleGrant> {
        traced!(ctx, "RbacRepo.grant_role", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            require(
                &mut tx,
                ctx,
                tenant,
                Some(PermissionCode::ROLE_ASSIGN),
                project,
            )
            .await?;
            let (scope, perms) = role_permissions(&mut tx, tenant, role_id).await?;
            if !scope.allows_grant(project) {
                return Err(Error::validation(
                    "project",
                    format!(
                        "a role of scope {} cannot be granted at this level",
                        scope.as_str()
                    ),
                ));
            }
            if let Some(p) = project {
                let exists: bool = tx
                    .query_scalar(
                        "SELECT EXISTS (SELECT 1 FROM projects WHERE tenant_id = $1 AND id = $2)",
                    )
                    .bind(tenant.0)
                    .bind(p.0)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db)?;
                if !exists {
                    return Err(Error::not_found(Entity::Project));
                }
            }
            let member: bool = tx.query_scalar(
                "SELECT EXISTS (SELECT 1 FROM org_memberships WHERE tenant_id = $1 AND user_id = $2)",
            )
            .bind(tenant.0)
            .bind(user.0)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            if !member {
                return Err(Error::not_found(Entity::Member));
            }
            if let Some(missing) = first_missing(&mut tx, ctx, tenant, &perms, project).await? {
                return Err(Error::denied(missing));
            }
            let row: GrantRow = tx.query_as(sql!(
                "INSERT INTO user_roles (tenant_id, user_id, role_id, project_id, granted_by, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
                GrantRow::COLUMNS
            ))
            .bind(tenant.0)
            .bind(user.0)
            .bind(role_id.0)
            .bind(project.map(|p| p.0))
            .bind(ctx.user_id().map(|u| u.0))
            .bind(self.clock.now())
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            let grant: RoleGrant = row.into();
            let event = AuditEvent::new(
                "role.granted",
                "role_grant",
                Some(grant.id),
                grant_diff(&grant),
            )?;
            self.audit(&mut tx, ctx, tenant, event);
            tx.commit().await.map_err(db)?;
            Ok(grant)
        })
    }

    async fn revoke_role(&self, ctx: &Context, grant: RoleGrantId) -> Result<()> {
        traced!(ctx, "RbacRepo.revoke_role", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            let granted: RoleGrant = tx
                .query_as::<GrantRow>(sql!(
                    "SELECT ",
                    GrantRow::COLUMNS,
                    " FROM user_roles WHERE tenant_id = $1 AND id = $2"
                ))
                .bind(tenant.0)
                .bind(grant.0)
                .fetch_one(&mut *tx)
                .await
                .map_err(not_found(Entity::RoleGrant))?
                .into();
            require(
                &mut tx,
                ctx,
                tenant,
                Some(PermissionCode::ROLE_ASSIGN),
                granted.project_id,
            )
            .await?;
            let event = AuditEvent::new(
                "role.revoked",
                "role_grant",
                Some(grant),
                grant_diff(&granted),
            )?;
            self.audit(&mut tx, ctx, tenant, event);
            tx.query("DELETE FROM user_roles WHERE tenant_id = $1 AND id = $2")
                .bind(tenant.0)
                .bind(grant.0)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)
        })
    }

    async fn list_grants(&self, ctx: &Context, user: Option<UserId>) -> Result<Vec<RoleGrant>> {
        traced!(ctx, "RbacRepo.list_grants", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            let rows: Vec<GrantRow> = tx
                .query_as(sql!(
                    "SELECT ",
                    GrantRow::COLUMNS,
                    " FROM user_roles WHERE tenant_id = $1 AND ($2::uuid IS NULL OR user_id = $2)
                  ORDER BY created_at, id"
                ))
                .bind(tenant.0)
                .bind(user.map(|u| u.0))
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            Ok(rows.into_iter().map(RoleGrant::from).collect())
        })
    }

    async fn has_permission(
        &self,
        ctx: &Context,
        permission: PermissionCode,
        project: Option<ProjectId>,
    ) -> Result<bool> {
        traced!(ctx, "RbacRepo.has_permission", {
            let tenant = ctx.require_tenant()?;
            if ctx.is_system() {
                return Ok(true);
            }
            let (allowed,): (bool,) = self
                .ask_permission(ctx, &HAS_PERMISSION, permission, tenant, project)
                .await?;
            Ok(allowed)
        })
    }

    async fn require_permission(
        &self,
        ctx: &Context,
        permission: PermissionCode,
        project: Option<ProjectId>,
    ) -> Result<()> {
        traced!(ctx, "RbacRepo.require_permission", {
            let tenant = ctx.require_tenant()?;
            if ctx.is_system() {
                let mut tx = self.begin(ctx).await?;
                require(&mut tx, ctx, tenant, Some(permission), project).await?;
                return tx.commit().await.map_err(db);
            }
            let (visible, allowed): (bool, bool) = self
                .ask_permission(ctx, &REQUIRE_PERMISSION, permission, tenant, project)
                .await?;
            match (visible, allowed) {
                (false, _) => Err(Error::not_found(Entity::Tenant)),
                (true, false) => Err(Error::denied(permission)),
                (true, true) => Ok(()),
            }
        })
    }
}
