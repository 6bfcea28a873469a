//! `TeamRepo` on PostgreSQL.

use crate::error::{db, not_found};
use crate::guard::require;
use crate::idempotency::claim;
use crate::rows::{delete_one, parse, row, sql, tenant_rows};
use crate::uow::traced;
use crate::uow::Tx;
use crate::PgBackend;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insightpulse_core::idempotency::{Call, Operation};
use insightpulse_core::tenancy::{NewTeam, Team, TeamRepo};
use insightpulse_core::{
    Context, Entity, Error, Name, PermissionCode, Result, Slug, TeamId, TenantId, UserId,
};
use uuid::Uuid;

row! {
    struct Row {
        tenant_id: Uuid,
        id: Uuid,
        slug: String,
        name: String,
        created_at: DateTime<Utc>,
    }
}

impl TryFrom<Row> for Team {
    type Error = Error;
    fn try_from(r: Row) -> Result<Self> {
        Ok(Team {
            id: TeamId(r.id),
            tenant_id: TenantId(r.tenant_id),
            slug: parse(&r.slug, Slug::parse)?,
            name: parse(&r.name, Name::parse)?,
            created_at: r.created_at,
        })
    }
}

async fn team(tx: &mut Tx, tenant: TenantId, id: TeamId) -> Result<Row> {
    tx.query_as(sql!(
        "SELECT ",
        Row::COLUMNS,
        " FROM teams WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant.0)
    .bind(id.0)
    .fetch_one(&mut **tx)
    .await
    .map_err(not_found(Entity::Team))
}

#[async_trait]
impl TeamRepo for PgBackend {
    async fn create_team(&self, ctx: &Context, new: NewTeam) -> Result<Team> {
        traced!(ctx, "TeamRepo.create_team", {
            let tenant = ctx.require_tenant()?;
            let call = Call::new(Operation::CreateTeam, Some(tenant), &new)?;
            let (id, now) = (TeamId::new(), self.clock.now());
            let mut tx = self.begin(ctx).await?;
            require(
                &mut tx,
                ctx,
                tenant,
                Some(PermissionCode::TEAM_MANAGE),
                None,
            )
            .await?;
            if let Some(done) = claim(&mut tx, ctx, &call, id.0, now).await? {
                tx.commit().await.map_err(db)?;
                return self.get_team(ctx, TeamId(done)).await;
            }
            let row: Row = tx
                .query_as(sql!(
                    "INSERT INTO teams (tenant_id, id, slug, name, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $5) RETURNING ",
                    Row::COLUMNS
                ))
                .bind(tenant.0)
                .bind(id.0)
                .bind(new.slug.as_str())
                .bind(new.name.as_str())
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            row.try_into()
        })
    }

    async fn get_team(&self, ctx: &Context, id: TeamId) -> Result<Team> {
        traced!(ctx, "TeamRepo.get_team", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            let row = team(&mut tx, tenant, id).await?;
            tx.commit().await.map_err(db)?;
            row.try_into()
        })
    }

    async fn list_teams(&self, ctx: &Context) -> Result<Vec<Team>> {
        traced!(ctx, "TeamRepo.list_teams", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            let rows: Vec<Row> = tenant_rows(
                &mut tx,
                sql!(
                    "SELECT ",
                    Row::COLUMNS,
                    " FROM teams WHERE tenant_id = $1 ORDER BY slug COLLATE \"C\""
                ),
                tenant,
            )
            .await?;
            tx.commit().await.map_err(db)?;
            rows.into_iter().map(Team::try_from).collect()
        })
    }

    async fn rename_team(&self, ctx: &Context, id: TeamId, name: Name) -> Result<Team> {
        traced!(ctx, "TeamRepo.rename_team", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            require(
                &mut tx,
                ctx,
                tenant,
                Some(PermissionCode::TEAM_MANAGE),
                None,
            )
            .await?;
            let row: Row = tx.query_as(sql!(
                "UPDATE teams SET name = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2 RETURNING ",
                Row::COLUMNS
            ))
            .bind(tenant.0)
            .bind(id.0)
            .bind(name.as_str())
            .bind(self.clock.now())
            .fetch_one(&mut *tx)
            .await
            .map_err(not_found(Entity::Team))?;
            tx.commit().await.map_err(db)?;
            row.try_into()
        })
    }

    async fn delete_team(&self, ctx: &Context, id: TeamId) -> Result<()> {
        traced!(ctx, "TeamRepo.delete_team", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            require(
                &mut tx,
                ctx,
                tenant,
                Some(PermissionCode::TEAM_MANAGE),
                None,
            )
            .await?;
            delete_one(&mut tx, "teams", tenant, id.0, Entity::Team).await?;
            tx.commit().await.map_err(db)
        })
    }

    async fn add_team_member(&self, ctx: &Context, id: TeamId, user: UserId) -> Result<()> {
        traced!(ctx, "TeamRepo.add_team_member", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            require(
                &mut tx,
                ctx,
                tenant,
                Some(PermissionCode::TEAM_MANAGE),
                None,
            )
            .await?;
            team(&mut tx, tenant, id).await?;
            // The foreign key to org_memberships refuses a user who is not a
            // member of this tenant (NotFound "member").
            tx.query("INSERT INTO team_members (tenant_id, team_id, user_id, created_at) VALUES ($1, $2, $3, $4)")
                .bind(tenant.0)
                .bind(id.0)
                .bind(user.0)
                .bind(self.clock.now())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)
        })
    }

    async fn remove_team_member(&self, ctx: &Context, id: TeamId, user: UserId) -> Result<()> {
        traced!(ctx, "TeamRepo.remove_team_member", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            require(
                &mut tx,
                ctx,
                tenant,
                Some(PermissionCode::TEAM_MANAGE),
                None,
            )
            .await?;
            team(&mut tx, tenant, id).await?;
            let deleted = tx.query(
                "DELETE FROM team_members WHERE tenant_id = $1 AND team_id = $2 AND user_id = $3",
            )
            .bind(tenant.0)
            .bind(id.0)
            .bind(user.0)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            if deleted.rows_affected() == 0 {
                return Err(Error::not_found(Entity::TeamMember));
            }
            tx.commit().await.map_err(db)
        })
    }

    async fn list_team_members(&self, ctx: &Context, id: TeamId) -> Result<Vec<UserId>> {
        traced!(ctx, "TeamRepo.list_team_members", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            team(&mut tx, tenant, id).await?;
            let ids: Vec<Uuid> = tx.query_scalar(
                "SELECT user_id FROM team_members WHERE tenant_id = $1 AND team_id = $2 ORDER BY user_id",
            )
            .bind(tenant.0)
            .bind(id.0)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
            tx.commit().await.map_err(db)?;
            Ok(ids.into_iter().map(UserId).collect())
        })
    }
}
