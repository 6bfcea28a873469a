//! `ApiKeyRepo` on PostgreSQL. Only the keyed hash and the public prefix
//! are stored; `authenticated` cannot even read the hash column.

use super::rbac::known_codes;
use super::{first_missing, may_list, parse, require, tenant_rows, traced};
use crate::audit::append;
use crate::error::{corrupt, db, not_found};
use crate::uow::Tx;
use crate::PgBackend;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insightpulse_core::audit::{Actor, AuditEvent, Diff};
use insightpulse_core::tenancy::tokens::{self, TokenKind};
use insightpulse_core::tenancy::{ApiKey, ApiKeyRepo, ApiKeyScope, IssuedApiKey, NewApiKey};
use insightpulse_core::{
    ApiKeyId, ApiKeyPrincipal, Context, EnvironmentId, Error, ExposeSecret, Name, PermissionCode,
    ProjectId, Result, SecretString, TenantId, TokenRejection, UserId,
};
use uuid::Uuid;

const COLS: &str =
    "tenant_id, id, name, prefix, scope::text AS scope, project_id, environment_id, permissions,
    created_by, expires_at, last_used_at, revoked_at, created_at";

#[derive(sqlx::FromRow)]
struct Row {
    tenant_id: Uuid,
    id: Uuid,
    name: String,
    prefix: String,
    scope: String,
    project_id: Option<Uuid>,
    environment_id: Option<Uuid>,
    permissions: Vec<String>,
    created_by: Option<Uuid>,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
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
    sqlx::query_as(&format!(
        "SELECT {COLS} FROM api_keys WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant.0)
    .bind(id.0)
    .fetch_one(&mut **tx)
    .await
    .map_err(not_found("api key"))
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
            "project",
        ),
        ApiKeyScope::Environment(e) => (
            "SELECT project_id FROM environments WHERE tenant_id = $1 AND id = $2",
            e.0,
            "environment",
        ),
    };
    let project: Uuid = sqlx::query_scalar(sql)
        .bind(tenant.0)
        .bind(id)
        .fetch_one(&mut **tx)
        .await
        .map_err(not_found(entity))?;
    Ok(Some(ProjectId(project)))
}

#[async_trait]
impl ApiKeyRepo for PgBackend {
    async fn create(&self, ctx: &Context, new: NewApiKey) -> Result<IssuedApiKey> {
        traced!(ctx, "ApiKeyRepo.create", {
            if new.permissions.is_empty() {
                return Err(Error::validation(
                    "permissions",
                    "an API key needs at least one permission",
                ));
            }
            let codes = known_codes(&new.permissions)?;
            let now = self.clock.now();
            if new.expires_at.is_some_and(|e| e <= now) {
                return Err(Error::validation("expires_at", "must be in the future"));
            }
            let creator = ctx.require_user()?;
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            require(&mut tx, ctx, tenant, None, None).await?;
            let project = scope_project(&mut tx, tenant, new.scope).await?;
            require(&mut tx, ctx, tenant, Some("api_key.manage"), project).await?;
            if let Some(missing) = first_missing(&mut tx, ctx, tenant, &codes, project).await? {
                return Err(Error::denied(missing));
            }
            let (scope, environment) = match new.scope {
                ApiKeyScope::Tenant => ("tenant", None),
                ApiKeyScope::Project(_) => ("project", None),
                ApiKeyScope::Environment(e) => ("environment", Some(e.0)),
            };
            let token = tokens::issue(TokenKind::ApiKey, &self.hasher);
            let row: Row = sqlx::query_as(&format!(
                "INSERT INTO api_keys (tenant_id, name, prefix, key_hash, scope, project_id, environment_id,
                                       permissions, created_by, expires_at, created_at)
                 VALUES ($1, $2, $3, $4, $5::api_key_scope, $6, $7, $8, $9, $10, $11) RETURNING {COLS}"
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

    async fn list(&self, ctx: &Context) -> Result<Vec<ApiKey>> {
        traced!(ctx, "ApiKeyRepo.list", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            if !may_list(&mut tx, ctx, tenant, "api_key.manage").await? {
                return Ok(vec![]);
            }
            let rows: Vec<Row> = tenant_rows(
                &mut tx,
                &format!(
                    "SELECT {COLS} FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id"
                ),
                tenant,
            )
            .await?;
            tx.commit().await.map_err(db)?;
            rows.into_iter().map(ApiKey::try_from).collect()
        })
    }

    async fn get(&self, ctx: &Context, id: ApiKeyId) -> Result<ApiKey> {
        traced!(ctx, "ApiKeyRepo.get", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            require(&mut tx, ctx, tenant, Some("api_key.manage"), None).await?;
            let row = key(&mut tx, tenant, id).await?;
            tx.commit().await.map_err(db)?;
            row.try_into()
        })
    }

    async fn revoke(&self, ctx: &Context, id: ApiKeyId) -> Result<ApiKey> {
        traced!(ctx, "ApiKeyRepo.revoke", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            require(&mut tx, ctx, tenant, None, None).await?;
            let found = key(&mut tx, tenant, id).await?;
            require(
                &mut tx,
                ctx,
                tenant,
                Some("api_key.manage"),
                found.project_id.map(ProjectId),
            )
            .await?;
            let row: Row = sqlx::query_as(&format!(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, $3)
                  WHERE tenant_id = $1 AND id = $2 RETURNING {COLS}"
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

    async fn verify(&self, ctx: &Context, presented: &SecretString) -> Result<Context> {
        traced!(ctx, "ApiKeyRepo.verify", {
            let presented = presented.expose_secret();
            let reject = |reason| Error::unauthenticated("api key", reason);
            let prefix = tokens::prefix_of(TokenKind::ApiKey, presented).map_err(reject)?;
            let now = self.clock.now();
            // Nobody is authenticated yet: the lookup runs as the service role.
            let mut tx = self.begin(&Context::system("verify api key")).await?;
            #[derive(sqlx::FromRow)]
            struct Candidate {
                #[sqlx(flatten)]
                key: Row,
                key_hash: Vec<u8>,
            }
            let candidates: Vec<Candidate> = sqlx::query_as(&format!(
                "SELECT {COLS}, key_hash FROM api_keys WHERE prefix = $1"
            ))
            .bind(prefix)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
            let key = candidates
                .into_iter()
                .find(|c| self.hasher.matches(presented, &c.key_hash))
                .map(|c| c.key)
                .ok_or(reject(TokenRejection::Unknown))?;
            if key.revoked_at.is_some() {
                return Err(reject(TokenRejection::Revoked));
            }
            if key.expires_at.is_some_and(|e| now >= e) {
                return Err(reject(TokenRejection::Expired));
            }
            // The row lock makes "first use" true for exactly one caller.
            let first_use: bool = sqlx::query_scalar(
                "UPDATE api_keys k SET last_used_at = $3
                   FROM (SELECT last_used_at FROM api_keys
                          WHERE tenant_id = $1 AND id = $2 FOR UPDATE) AS before
                  WHERE k.tenant_id = $1 AND k.id = $2
                 RETURNING before.last_used_at IS NULL",
            )
            .bind(key.tenant_id)
            .bind(key.id)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            if first_use {
                let event =
                    AuditEvent::new("api_key.first_used", "api_key", Some(key.id), Diff::new())?;
                let actor = Actor::ApiKey(ApiKeyId(key.id));
                append(
                    &mut tx,
                    TenantId(key.tenant_id),
                    &actor,
                    ctx.request(),
                    &event,
                    now,
                );
            }
            tx.commit().await.map_err(db)?;
            Ok(Context::api_key(ApiKeyPrincipal {
                permissions: key.permissions()?,
                key_id: ApiKeyId(key.id),
                tenant_id: TenantId(key.tenant_id),
                project_id: key.project_id.map(ProjectId),
                environment_id: key.environment_id.map(EnvironmentId),
            })
            .with_request(ctx.request().clone()))
        })
    }
}
