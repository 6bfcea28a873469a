//! `TenantRepo` on PostgreSQL.

use crate::error::{db, not_found};
use crate::guard::{is_owner, require};
use crate::idempotency::claim;
use crate::rows::{parse, row, sql};
use crate::uow::traced;
use crate::uow::Tx;
use crate::PgBackend;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insightpulse_core::audit::{AuditEvent, Diff};
use insightpulse_core::idempotency::{Call, Operation};
use insightpulse_core::tenancy::{catalog, NewTenant, Tenant, TenantRepo, TenantUpdate};
use insightpulse_core::{
    Context, Entity, Error, Name, PermissionCode, Requirement, Result, Slug, TenantId, TimeZone,
    UserId,
};
use uuid::Uuid;

row! {
    pub(crate) struct Row {
        id: Uuid,
        slug: String,
        name: String,
        timezone: String,
        settings: serde_json::Value,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    }
}

impl TryFrom<Row> for Tenant {
    type Error = Error;
    fn try_from(r: Row) -> Result<Self> {
        Ok(Tenant {
            id: TenantId(r.id),
            slug: parse(&r.slug, Slug::parse)?,
            name: parse(&r.name, Name::parse)?,
            timezone: parse(&r.timezone, TimeZone::parse)?,
            settings: r.settings,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// The seed's "Create First Tenant" in one statement, in `tx` (which runs
/// as the system: nobody is a member yet, so no tenant policy could allow
/// it): the tenant `id`, `owner`'s active owner membership and tenant-wide
/// `Admin` grant. `Conflict` on a taken slug.
pub(crate) async fn insert_with_owner(
    tx: &mut Tx,
    id: TenantId,
    new: &NewTenant,
    owner: UserId,
    now: DateTime<Utc>,
) -> Result<Tenant> {
    let row: Row = tx.query_as(sql!(
        "WITH t AS (
            INSERT INTO tenants (id, slug, name, timezone, created_at, updated_at)
            VALUES ($1, $2, $3, $4, $6, $6) RETURNING ",
        Row::COLUMNS,
        "),
         m AS (
            INSERT INTO org_memberships (tenant_id, user_id, is_owner, status, created_at, updated_at)
            SELECT t.id, $5, true, 'active', $6, $6 FROM t RETURNING tenant_id),
         g AS (
            INSERT INTO user_roles (tenant_id, user_id, role_id, granted_by, created_at)
            SELECT m.tenant_id, $5, r.id, $5, $6 FROM m, roles r
             WHERE r.tenant_id IS NULL AND r.name = $7 AND r.scope = 'org' RETURNING 1)
         SELECT t.* FROM t"
    ))
    .bind(id.0)
    .bind(new.slug.as_str())
    .bind(new.name.as_str())
    .bind(new.timezone.as_str())
    .bind(owner.0)
    .bind(now)
    .bind(catalog::ADMIN_ROLE)
    .fetch_one(&mut **tx)
    .await
    .map_err(db)?;
    row.try_into()
}

/// The audit entry of a new tenant.
pub(crate) fn created_event(tenant: &Tenant) -> Result<AuditEvent> {
    let diff = Diff::new()
        .set("slug", &tenant.slug)
        .set("name", &tenant.name);
    AuditEvent::new("tenant.created", "tenant", Some(tenant.id), diff)
}

#[async_trait]
impl TenantRepo for PgBackend {
    async fn create_tenant(&self, ctx: &Context, new: NewTenant) -> Result<Tenant> {
        traced!(ctx, "TenantRepo.create_tenant", {
            let owner = ctx.require_user()?;
            let call = Call::new(Operation::CreateTenant, None, &new)?;
            let now = self.clock.now();
            let id = TenantId::new();
            let mut tx = self
                .begin(&Context::system("create tenant with its first owner"))
                .await?;
            if let Some(done) = claim(&mut tx, ctx, &call, id.0, now).await? {
                tx.commit().await.map_err(db)?;
                return self.get_tenant(ctx, TenantId(done)).await;
            }
            let tenant = insert_with_owner(&mut tx, id, &new, owner, now).await?;
            self.audit(&mut tx, ctx, tenant.id, created_event(&tenant)?);
            tx.commit().await.map_err(db)?;
            Ok(tenant)
        })
    }

    async fn get_tenant(&self, ctx: &Context, id: TenantId) -> Result<Tenant> {
        traced!(ctx, "TenantRepo.get_tenant", {
            let mut tx = self.begin(ctx).await?;
            let row: Row = tx
                .query_as(sql!("SELECT ", Row::COLUMNS, " FROM tenants WHERE id = $1"))
                .bind(id.0)
                .fetch_one(&mut *tx)
                .await
                .map_err(not_found(Entity::Tenant))?;
            tx.commit().await.map_err(db)?;
            row.try_into()
        })
    }

    async fn get_tenant_by_slug(&self, ctx: &Context, slug: &Slug) -> Result<Tenant> {
        traced!(ctx, "TenantRepo.get_tenant_by_slug", {
            let mut tx = self.begin(ctx).await?;
            let row: Row = tx
                .query_as(sql!(
                    "SELECT ",
                    Row::COLUMNS,
                    " FROM tenants WHERE slug = $1"
                ))
                .bind(slug.as_str())
                .fetch_one(&mut *tx)
                .await
                .map_err(not_found(Entity::Tenant))?;
            tx.commit().await.map_err(db)?;
            row.try_into()
        })
    }

    async fn list_my_tenants(&self, ctx: &Context) -> Result<Vec<Tenant>> {
        traced!(ctx, "TenantRepo.list_my_tenants", {
            let user = ctx.require_user()?;
            let mut tx = self.begin(ctx).await?;
            // The seed's "Get User's Tenants", as a join: Citus runs it on
            // each shard of the memberships beside its copy of `tenants`,
            // where `IN (SELECT …)` would need the sub-select's result sent
            // back to the coordinator under the caller's role.
            let rows: Vec<Row> = tx
                .query_as(sql!(
                    "SELECT ",
                    Row::COLUMNS,
                    " FROM (SELECT t.* FROM tenants t
                              JOIN org_memberships m ON m.tenant_id = t.id
                             WHERE m.user_id = $1 AND m.status = 'active') tenants
                      ORDER BY slug COLLATE \"C\""
                ))
                .bind(user.0)
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            rows.into_iter().map(Tenant::try_from).collect()
        })
    }

    async fn update_tenant(&self, ctx: &Context, update: TenantUpdate) -> Result<Tenant> {
        traced!(ctx, "TenantRepo.update_tenant", {
            update.validate()?;
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            require(
                &mut tx,
                ctx,
                tenant,
                Some(PermissionCode::TENANT_MANAGE),
                None,
            )
            .await?;
            // One statement changes the row and returns what it was (for the
            // audit diff): the subquery locks the row and reads it first.
            #[derive(sqlx::FromRow)]
            struct Updated {
                #[sqlx(flatten)]
                row: Row,
                old_name: String,
                old_timezone: String,
                old_settings: serde_json::Value,
            }
            let updated: Updated = tx
                .query_as(sql!(
                    "UPDATE tenants t
                    SET name = coalesce($2, t.name), timezone = coalesce($3, t.timezone),
                        settings = coalesce($4, t.settings), updated_at = $5
                   FROM (SELECT name AS old_name, timezone AS old_timezone, settings AS old_settings
                           FROM tenants WHERE id = $1 FOR UPDATE) old
                  WHERE t.id = $1
                 RETURNING ",
                    Row::COLUMNS,
                    ", old_name, old_timezone, old_settings"
                ))
                .bind(tenant.0)
                .bind(update.name.as_ref().map(Name::as_str))
                .bind(update.timezone.as_ref().map(TimeZone::as_str))
                .bind(update.settings)
                .bind(self.clock.now())
                .fetch_one(&mut *tx)
                .await
                .map_err(not_found(Entity::Tenant))?;
            let new: Tenant = updated.row.try_into()?;
            let diff = Diff::new()
                .change("name", &updated.old_name, &new.name)
                .change("timezone", &updated.old_timezone, &new.timezone)
                .change("settings", &updated.old_settings, &new.settings);
            let event = AuditEvent::new("tenant.updated", "tenant", Some(tenant), diff)?;
            self.audit(&mut tx, ctx, tenant, event);
            tx.commit().await.map_err(db)?;
            Ok(new)
        })
    }

    async fn delete_tenant(&self, ctx: &Context) -> Result<()> {
        traced!(ctx, "TenantRepo.delete_tenant", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            require(&mut tx, ctx, tenant, None, None).await?;
            if !is_owner(&mut tx, ctx, tenant).await? {
                return Err(Error::denied(Requirement::TenantOwner));
            }
            // Recorded first: once the tenant is gone the owner is no
            // longer a member who may write to its trail (which stays).
            let slug: String = tx
                .query_scalar("SELECT slug FROM tenants WHERE id = $1")
                .bind(tenant.0)
                .fetch_one(&mut *tx)
                .await
                .map_err(not_found(Entity::Tenant))?;
            let diff = Diff::new().set("slug", slug);
            let event = AuditEvent::new("tenant.deleted", "tenant", Some(tenant), diff)?;
            self.audit_now(&mut tx, ctx, tenant, event).await?;
            tx.query("DELETE FROM tenants WHERE id = $1")
                .bind(tenant.0)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)
        })
    }
}
