//! `SsoRepo` on PostgreSQL: providers (configuration as JSONB, validated
//! by core before every write) and federated identities.

use super::users::Row as UserRow;
use crate::error::{corrupt, db, not_found};
use crate::guard::{may_list, require, require_row};
use crate::rows::{delete_one, parse, row, sql, tenant_rows};
use crate::uow::traced;
use crate::uow::Tx;
use crate::PgBackend;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insightpulse_core::audit::{AuditEvent, Diff};
use insightpulse_core::tenancy::{
    identity_subject, Identity, NewSsoProvider, SsoConfig, SsoProvider, SsoRepo, User,
};
use insightpulse_core::{
    Context, Entity, Error, IdentityId, Name, PermissionCode, Result, SsoProviderId, StateRule,
    TenantId, UserId,
};
use uuid::Uuid;

row! {
    struct ProviderRow {
        tenant_id: Uuid,
        id: Uuid,
        name: String,
        config: serde_json::Value,
        enabled: bool,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    }
}

impl TryFrom<ProviderRow> for SsoProvider {
    type Error = Error;
    fn try_from(r: ProviderRow) -> Result<Self> {
        Ok(SsoProvider {
            id: SsoProviderId(r.id),
            tenant_id: TenantId(r.tenant_id),
            name: parse(&r.name, Name::parse)?,
            config: serde_json::from_value(r.config)
                .map_err(|e| corrupt(Error::validation("config", e.to_string())))?,
            enabled: r.enabled,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

row! {
    struct IdentityRow {
        tenant_id: Uuid,
        id: Uuid,
        provider_id: Uuid,
        subject: String,
        user_id: Uuid,
        created_at: DateTime<Utc>,
    }
}

impl From<IdentityRow> for Identity {
    fn from(r: IdentityRow) -> Self {
        Identity {
            id: IdentityId(r.id),
            tenant_id: TenantId(r.tenant_id),
            provider_id: SsoProviderId(r.provider_id),
            subject: r.subject,
            user_id: UserId(r.user_id),
            created_at: r.created_at,
        }
    }
}

/// Removes every identity of `user`, in every tenant (privacy's erasure
/// hook). Returns how many.
pub(crate) async fn erase_identities(tx: &mut Tx, user: UserId) -> Result<u64> {
    Ok(tx
        .query("DELETE FROM user_identities WHERE user_id = $1")
        .bind(user.0)
        .execute(&mut **tx)
        .await
        .map_err(db)?
        .rows_affected())
}

fn config_json(config: &SsoConfig) -> Result<serde_json::Value> {
    config.validate()?;
    serde_json::to_value(config).map_err(Error::backend)
}

async fn provider(tx: &mut Tx, tenant: TenantId, id: SsoProviderId) -> Result<ProviderRow> {
    tx.query_as(sql!(
        "SELECT ",
        ProviderRow::COLUMNS,
        " FROM sso_providers WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant.0)
    .bind(id.0)
    .fetch_one(&mut **tx)
    .await
    .map_err(not_found(Entity::SsoProvider))
}

#[async_trait]
impl SsoRepo for PgBackend {
    async fn create_provider(&self, ctx: &Context, new: NewSsoProvider) -> Result<SsoProvider> {
        traced!(ctx, "SsoRepo.create_provider", {
            let config = config_json(&new.config)?;
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            require(&mut tx, ctx, tenant, Some(PermissionCode::SSO_MANAGE), None).await?;
            let row: ProviderRow = tx
                .query_as(sql!(
                    "INSERT INTO sso_providers (tenant_id, name, kind, config, created_at, updated_at)
                 VALUES ($1, $2, $3::sso_kind, $4, $5, $5) RETURNING ",
                    ProviderRow::COLUMNS
                ))
                .bind(tenant.0)
                .bind(new.name.as_str())
                .bind(new.config.kind())
                .bind(config)
                .bind(self.clock.now())
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
            let created: SsoProvider = row.try_into()?;
            let diff = Diff::new()
                .set("name", &created.name)
                .set("kind", created.config.kind())
                .set("enabled", created.enabled);
            let event = AuditEvent::new(
                "sso_provider.created",
                "sso_provider",
                Some(created.id),
                diff,
            )?;
            self.audit(&mut tx, ctx, tenant, event);
            tx.commit().await.map_err(db)?;
            Ok(created)
        })
    }

    async fn list_providers(&self, ctx: &Context) -> Result<Vec<SsoProvider>> {
        traced!(ctx, "SsoRepo.list_providers", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            if !may_list(&mut tx, ctx, tenant, PermissionCode::SSO_MANAGE).await? {
                return Ok(vec![]);
            }
            let rows: Vec<ProviderRow> = tenant_rows(
                &mut tx,
                sql!(
                    "SELECT ",
                    ProviderRow::COLUMNS,
                    " FROM sso_providers WHERE tenant_id = $1 ORDER BY name COLLATE \"C\""
                ),
                tenant,
            )
            .await?;
            tx.commit().await.map_err(db)?;
            rows.into_iter().map(SsoProvider::try_from).collect()
        })
    }

    async fn update_provider(
        &self,
        ctx: &Context,
        id: SsoProviderId,
        config: Option<SsoConfig>,
        enabled: Option<bool>,
    ) -> Result<SsoProvider> {
        traced!(ctx, "SsoRepo.update_provider", {
            let json = config.as_ref().map(config_json).transpose()?;
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            let code = Some(PermissionCode::SSO_MANAGE);
            require_row(&mut tx, ctx, tenant, code, Entity::SsoProvider).await?;
            let old: SsoProvider = provider(&mut tx, tenant, id).await?.try_into()?;
            // The new values whole, the old ones where the caller changes
            // nothing (Citus takes no cast to an enum inside a coalesce).
            let json = match json {
                Some(json) => json,
                None => config_json(&old.config)?,
            };
            let kind = config.as_ref().unwrap_or(&old.config).kind();
            let row: ProviderRow = tx
                .query_as(sql!(
                    "UPDATE sso_providers
                    SET config = $3, kind = $4::sso_kind, enabled = $5, updated_at = $6
                  WHERE tenant_id = $1 AND id = $2 RETURNING ",
                    ProviderRow::COLUMNS
                ))
                .bind(tenant.0)
                .bind(id.0)
                .bind(json)
                .bind(kind)
                .bind(enabled.unwrap_or(old.enabled))
                .bind(self.clock.now())
                .fetch_one(&mut *tx)
                .await
                .map_err(not_found(Entity::SsoProvider))?;
            let diff = Diff::new()
                .change("enabled", old.enabled, row.enabled)
                .set("config_changed", config.is_some());
            let event = AuditEvent::new("sso_provider.updated", "sso_provider", Some(id), diff)?;
            self.audit(&mut tx, ctx, tenant, event);
            tx.commit().await.map_err(db)?;
            row.try_into()
        })
    }

    async fn delete_provider(&self, ctx: &Context, id: SsoProviderId) -> Result<()> {
        traced!(ctx, "SsoRepo.delete_provider", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            require(&mut tx, ctx, tenant, Some(PermissionCode::SSO_MANAGE), None).await?;
            let old = provider(&mut tx, tenant, id).await?;
            delete_one(&mut tx, "sso_providers", tenant, id.0, Entity::SsoProvider).await?;
            let diff = Diff::new().set("name", old.name);
            let event = AuditEvent::new("sso_provider.deleted", "sso_provider", Some(id), diff)?;
            self.audit(&mut tx, ctx, tenant, event);
            tx.commit().await.map_err(db)
        })
    }

    async fn link_identity(
        &self,
        ctx: &Context,
        provider_id: SsoProviderId,
        subject: &str,
        user: UserId,
    ) -> Result<Identity> {
        traced!(ctx, "SsoRepo.link_identity", {
            let subject = identity_subject(subject)?;
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            require(&mut tx, ctx, tenant, Some(PermissionCode::SSO_MANAGE), None).await?;
            provider(&mut tx, tenant, provider_id).await?;
            // The foreign key to org_memberships refuses non-members.
            let row: IdentityRow = tx
                .query_as(sql!(
                    "INSERT INTO user_identities (tenant_id, provider_id, subject, user_id, created_at)
                 VALUES ($1, $2, $3, $4, $5) RETURNING ",
                    IdentityRow::COLUMNS
                ))
                .bind(tenant.0)
                .bind(provider_id.0)
                .bind(subject)
                .bind(user.0)
                .bind(self.clock.now())
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
            let identity: Identity = row.into();
            let diff = Diff::new()
                .set("provider_id", provider_id)
                .set("user_id", user);
            let event = AuditEvent::new("identity.linked", "identity", Some(identity.id), diff)?;
            self.audit(&mut tx, ctx, tenant, event);
            tx.commit().await.map_err(db)?;
            Ok(identity)
        })
    }

    async fn find_user_by_identity(
        &self,
        ctx: &Context,
        provider_id: SsoProviderId,
        subject: &str,
    ) -> Result<Option<User>> {
        traced!(ctx, "SsoRepo.find_user_by_identity", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            let code = Some(PermissionCode::SSO_MANAGE);
            require_row(&mut tx, ctx, tenant, code, Entity::SsoProvider).await?;
            if !provider(&mut tx, tenant, provider_id).await?.enabled {
                return Err(Error::invalid_state(
                    Entity::SsoProvider,
                    StateRule::ProviderDisabled,
                ));
            }
            // Nothing but a valid subject is ever stored.
            let Ok(subject) = identity_subject(subject) else {
                tx.commit().await.map_err(db)?;
                return Ok(None);
            };
            let row: Option<UserRow> = tx
                .query_as(sql!(
                    "SELECT ",
                    UserRow::COLUMNS,
                    " FROM users
                  WHERE id IN (SELECT user_id FROM user_identities
                                WHERE tenant_id = $1 AND provider_id = $2 AND subject = $3)"
                ))
                .bind(tenant.0)
                .bind(provider_id.0)
                .bind(subject)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            row.map(User::try_from).transpose()
        })
    }

    async fn list_identities(&self, ctx: &Context, user: UserId) -> Result<Vec<Identity>> {
        traced!(ctx, "SsoRepo.list_identities", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            if ctx.user_id() != Some(user)
                && !may_list(&mut tx, ctx, tenant, PermissionCode::SSO_MANAGE).await?
            {
                return Ok(vec![]);
            }
            let rows: Vec<IdentityRow> = tx
                .query_as(sql!(
                    "SELECT ",
                    IdentityRow::COLUMNS,
                    " FROM user_identities WHERE tenant_id = $1 AND user_id = $2
                  ORDER BY created_at, id"
                ))
                .bind(tenant.0)
                .bind(user.0)
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            Ok(rows.into_iter().map(Identity::from).collect())
        })
    }

    async fn unlink_identity(&self, ctx: &Context, id: IdentityId) -> Result<()> {
        traced!(ctx, "SsoRepo.unlink_identity", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            require(&mut tx, ctx, tenant, Some(PermissionCode::SSO_MANAGE), None).await?;
            delete_one(&mut tx, "user_identities", tenant, id.0, Entity::Identity).await?;
            let event = AuditEvent::new("identity.unlinked", "identity", Some(id), Diff::new())?;
            self.audit(&mut tx, ctx, tenant, event);
            tx.commit().await.map_err(db)
        })
    }
}
