//! `ApiKeyRepo` on PostgreSQL. Only the keyed hash and the public prefix
//! are stored; `authenticated` cannot even read the hash column.

use super::rbac::stored_codes;
use super::token_lookup;
use crate::error::{corrupt, db, not_found};
use crate::guard::{first_missing, may_list, require};
use crate::rows::{parse, row, sql, tenant_rows};
use crate::uow::traced;
use crate::uow::Tx;
use crate::PgBackend;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insightpulse_core::audit::{AuditEvent, Diff};
use insightpulse_core::tenancy::tokens::{self, TokenKind};
use insightpulse_core::tenancy::{ApiKey, ApiKeyRepo, ApiKeyScope, IssuedApiKey, NewApiKey};
use insightpulse_core::{
    ApiKeyId, ApiKeyPrincipal, Context, Entity, EnvironmentId, Error, Name, PermissionCode,
    ProjectId, Result, TenantId, UserId,
};
use uuid::Uuid;

row! {
    pub(crate) struct Row {
        tenant_id: Uuid,
        id: Uuid,
        name: String,
        prefix: String,
        #[sql = "scope::text"]
        scope: String,
        project_id: Option<Uuid>,
        environment_id: Option<Uuid>,
        permissions: Vec<String>,
        created_by: Option<Uuid>,
        pub(crate) expires_at: Option<DateTime<Utc>>,
        pub(crate) last_used_at: Option<DateTime<Utc>>,
        pub(crate) revoked_at: Option<DateTime<Utc>>,
        created_at: DateTime<Utc>,
    }
}

/// What a verified key acts as: exactly its tenant, scope and permissions.
pub(crate) fn principal(r: &Row) -> Result<ApiKeyPrincipal> {
    Ok(ApiKeyPrincipal {
        permissions: r.permissions()?,
        key_id: ApiKeyId(r.id),
        tenant_id: TenantId(r.tenant_id),
        project_id: r.project_id.map(ProjectId),
        environment_id: r.environment_id.map(EnvironmentId),
    })
}

impl Row {
    fn permissions(&self) -> Result<Vec<PermissionCode>> {
        self.permissions
            .iter()
            .map(|p| parse(p, PermissionCode::parse))
            .collect()
    }
}

impl TryFrom<Row> for ApiKey {
    type Error = Error;
    fn try_from(r: Row) -> Result<Self> {
        let scope = match (r.scope.as_str(), r.project_id, r.environment_id) {
            ("tenant", None, None) => ApiKeyScope::Tenant,
            ("project", Some(p), None) => ApiKeyScope::Project(ProjectId(p)),
            ("environment", Some(_), Some(e)) => ApiKeyScope::Environment(EnvironmentId(e)),
            _ => return Err(corrupt(Error::validation("scope", r.scope.clone()))),
        };
        Ok(ApiKey {
            permissions: r.permissions()?,
            id: ApiKeyId(r.id),
            tenant_id: TenantId(r.tenant_id),
            name: parse(&r.name, Name::parse)?,
            prefix: r.prefix,
            scope,
            project_id: r.project_id.map(ProjectId),
            created_by: r.created_by.map(UserId),
            expires_at: r.expires_at,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
            created_at: r.created_at,
        })
    }
}

async fn key(tx: &mut Tx, tenant: TenantId, id: ApiKeyId) -> Result<Row> {
    tx.query_as(sql!(
        "SELECT ",
        Row::COLUMNS,
        " FROM api_keys WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant.0)
    .bind(id.0)
    .fetch_one(&mut **tx)
    .await
    .map_err(not_found(Entity::ApiKey))
}

/// The project an API key scope is limited to (`NotFound` when its target
/// does not exist in the tenant).
async fn scope_project(
    tx: &mut Tx,
    tenant: TenantId,
    scope: ApiKeyScope,
) -> Result<Option<ProjectId>> {
    let (sql, id, entity) = match scope {
        ApiKeyScope::Tenant => return Ok(None),
        ApiKeyScope::Project(p) => (
            "SELECT id FROM projects WHERE tenant_id = $1 AND id = $2",
            p.0,
            Entity::Project,
        ),
        ApiKeyScope::Environment(e) => (
            "SELECT project_id FROM environments WHERE tenant_id = $1 AND id = $2",
            e.0,
            Entity::Environment,
        ),
    };
    let project: Uuid = tx
        .query_scalar(sql)
        .bind(tenant.0)
        .bind(id)
        .fetch_one(&mut **tx)
        .await
        .map_err(not_found(entity))?;
    Ok(Some(ProjectId(project)))
}

#[async_trait]
impl ApiKeyRepo for PgBackend {
    async fn create_api_key(&self, ctx: &Context, new: NewApiKey) -> Result<IssuedApiKey> {
        traced!(ctx, "ApiKeyRepo.create_api_key", {
            if new.permissions.is_empty() {
                return Err(Error::validation(
                    "permissions",
                    "an API key needs at least one permission",
                ));
            }
            let codes = stored_codes(&new.permissions);
            let now = self.clock.now();
            if new.expires_at.is_some_and(|e| e <= now) {
                return Err(Error::validation("expires_at", "must be in the future"));
            }
            let creator = ctx.require_user()?;
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            require(&mut tx, ctx, tenant, None, None).await?;
            let project = scope_project(&mut tx, tenant, new.scope).await?;
            require(
                &mut tx,
                ctx,
                tenant,
                Some(PermissionCode::API_KEY_MANAGE),
                project,
            )
            .await?;
            if let Some(missing) =
                first_missing(&mut tx, ctx, tenant, &new.permissions, project).await?
            {
                return Err(Error::denied(missing));
            }
            let (scope, environment) = match new.scope {
                ApiKeyScope::Tenant => ("tenant", None),
                ApiKeyScope::Project(_) => ("project", None),
                ApiKeyScope::Environment(e) => ("environment", Some(e.0)),
            };
            let token = tokens::issue(TokenKind::ApiKey, &self.hasher);
            let row: Row = tx.query_as(sql!(
                "WITH r AS (INSERT INTO api_keys (tenant_id, name, prefix, key_hash, scope, project_id, environment_id,
                                       permissions, created_by, expires_at, created_at)
                 VALUES ($1, $2, $3, $4, $5::api_key_scope, $6, $7, $8, $9, $10, $11) RETURNING ",
                Row::FIELDS,
                ") SELECT ",
                Row::COLUMNS,
                " FROM r"
            ))
            .bind(tenant.0)
            .bind(new.name.as_str())
            .bind(&token.prefix)
            .bind(&token.hash)
            .bind(scope)
            .bind(project.map(|p| p.0))
            .bind(environment)
            .bind(&codes)
            .bind(creator.0)
            .bind(new.expires_at)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            let key: ApiKey = row.try_into()?;
            tx.queue(token_lookup(&token.prefix, tenant));
            let diff = Diff::new()
                .set("name", &key.name)
                .set("prefix", &key.prefix)
                .set("permissions", &key.permissions)
                .set("project_id", project)
                .set("environment_id", environment);
            let event = AuditEvent::new("api_key.created", "api_key", Some(key.id), diff)?;
            self.audit(&mut tx, ctx, tenant, event);
            tx.commit().await.map_err(db)?;
            Ok(IssuedApiKey {
                key,
                secret: token.token,
            })
        })
    }

    async fn list_api_keys(&self, ctx: &Context) -> Result<Vec<ApiKey>> {
        traced!(ctx, "ApiKeyRepo.list_api_keys", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            if !may_list(&mut tx, ctx, tenant, PermissionCode::API_KEY_MANAGE).await? {
                return Ok(vec![]);
            }
            let rows: Vec<Row> = tenant_rows(
                &mut tx,
                sql!(
                    "SELECT ",
                    Row::COLUMNS,
                    " FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id"
                ),
                tenant,
            )
            .await?;
            tx.commit().await.map_err(db)?;
            rows.into_iter().map(ApiKey::try_from).collect()
        })
    }

    async fn get_api_key(&self, ctx: &Context, id: ApiKeyId) -> Result<ApiKey> {
        traced!(ctx, "ApiKeyRepo.get_api_key", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            require(
                &mut tx,
                ctx,
                tenant,
                Some(PermissionCode::API_KEY_MANAGE),
                None,
            )
            .await?;
            let row = key(&mut tx, tenant, id).await?;
            tx.commit().await.map_err(db)?;
            row.try_into()
        })
    }

    async fn revoke_api_key(&self, ctx: &Context, id: ApiKeyId) -> Result<ApiKey> {
        traced!(ctx, "ApiKeyRepo.revoke_api_key", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            require(&mut tx, ctx, tenant, None, None).await?;
            let found = match key(&mut tx, tenant, id).await {
                Err(Error::NotFound { .. }) => {
                    // RLS shows a key only to holders of api_key.manage at
                    // its level; a member without it is refused as such.
                    let level: Option<Option<Uuid>> = tx
                        .query_scalar("SELECT project_id FROM insightpulse.api_key_level($1)")
                        .bind(id.0)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db)?;
                    if let Some(level) = level {
                        require(
                            &mut tx,
                            ctx,
                            tenant,
                            Some(PermissionCode::API_KEY_MANAGE),
                            level.map(ProjectId),
                        )
                        .await?;
                    }
                    return Err(Error::not_found(Entity::ApiKey));
                }
                found => found?,
            };
            require(
                &mut tx,
                ctx,
                tenant,
                Some(PermissionCode::API_KEY_MANAGE),
                found.project_id.map(ProjectId),
            )
            .await?;
            let row: Row = tx
                .query_as(sql!(
                    "WITH r AS (UPDATE api_keys SET revoked_at = coalesce(revoked_at, $3)
                                 WHERE tenant_id = $1 AND id = $2 RETURNING ",
                    Row::FIELDS,
                    ") SELECT ",
                    Row::COLUMNS,
                    " FROM r"
                ))
                .bind(tenant.0)
                .bind(id.0)
                .bind(self.clock.now())
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
            if found.revoked_at.is_none() {
                let event = AuditEvent::new("api_key.revoked", "api_key", Some(id), Diff::new())?;
                self.audit(&mut tx, ctx, tenant, event);
            }
            tx.commit().await.map_err(db)?;
            row.try_into()
        })
    }
}
