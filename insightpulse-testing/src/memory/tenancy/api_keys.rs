//! API keys.

use super::super::{MemoryBackend, TenantRows};
use super::{normalized, KeyRow, TenancyState};
use async_trait::async_trait;
use insightpulse_core::audit::{AuditEvent, Diff};
use insightpulse_core::tenancy::tokens::{issue, TokenKind};
use insightpulse_core::tenancy::{ApiKey, ApiKeyRepo, ApiKeyScope, IssuedApiKey, NewApiKey};
use insightpulse_core::{ApiKeyId, Context, Entity, Error, PermissionCode, Result, TenantId};

impl TenancyState {
    fn api_key(&self, t: TenantId, id: ApiKeyId) -> Result<&KeyRow> {
        self.api_keys
            .get(&(t, id))
            .ok_or_else(|| Error::not_found(Entity::ApiKey))
    }
}

#[async_trait]
impl ApiKeyRepo for MemoryBackend {
    async fn create_api_key(&self, ctx: &Context, new: NewApiKey) -> Result<IssuedApiKey> {
        self.run(ctx, "ApiKeyRepo.create_api_key", || {
            if new.permissions.is_empty() {
                return Err(Error::validation(
                    "permissions",
                    "an API key needs at least one permission",
                ));
            }
            let now = self.now();
            if new.expires_at.is_some_and(|e| e <= now) {
                return Err(Error::validation("expires_at", "must be in the future"));
            }
            let creator = ctx.require_user()?;
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            let project_id = match new.scope {
                ApiKeyScope::Tenant => None,
                ApiKeyScope::Project(p) => Some(st.projects.project(ctx, t, p)?.id),
                ApiKeyScope::Environment(e) => Some(st.projects.environment(ctx, t, e)?.project_id),
            };
            st.require(ctx, t, PermissionCode::API_KEY_MANAGE, project_id)?;
            if let Some(missing) = new
                .permissions
                .iter()
                .find(|p| !st.allows(ctx, t, p, project_id))
            {
                return Err(Error::denied(*missing));
            }
            let issued = issue(TokenKind::ApiKey, &self.hasher);
            let key = ApiKey {
                id: ApiKeyId::new(),
                tenant_id: t,
                name: new.name,
                prefix: issued.prefix,
                scope: new.scope,
                project_id,
                permissions: normalized(new.permissions),
                created_by: Some(creator),
                expires_at: new.expires_at,
                last_used_at: None,
                revoked_at: None,
                created_at: now,
            };
            let environment_id = match key.scope {
                ApiKeyScope::Environment(e) => Some(e),
                _ => None,
            };
            let event = AuditEvent::new(
                "api_key.created",
                "api_key",
                Some(key.id),
                Diff::new()
                    .set("name", &key.name)
                    .set("prefix", &key.prefix)
                    .set("permissions", &key.permissions)
                    .set("project_id", key.project_id)
                    .set("environment_id", environment_id),
            )?;
            st.audit(ctx, t, event, now);
            st.tenancy.insert_api_key(KeyRow {
                key: key.clone(),
                hash: issued.hash,
            });
            Ok(IssuedApiKey {
                key,
                secret: issued.token,
            })
        })
    }

    async fn list_api_keys(&self, ctx: &Context) -> Result<Vec<ApiKey>> {
        self.run(ctx, "ApiKeyRepo.list_api_keys", || {
            let st = self.lock();
            let Some(t) = st.list_tenant(ctx)? else {
                return Ok(Vec::new());
            };
            st.require(ctx, t, PermissionCode::API_KEY_MANAGE, None)?;
            let mut out: Vec<ApiKey> = st
                .tenancy
                .api_keys
                .of_tenant(t)
                .map(|k| k.key.clone())
                .collect();
            out.sort_by_key(|k| (k.created_at, k.id));
            Ok(out)
        })
    }

    async fn get_api_key(&self, ctx: &Context, id: ApiKeyId) -> Result<ApiKey> {
        self.run(ctx, "ApiKeyRepo.get_api_key", || {
            let st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, PermissionCode::API_KEY_MANAGE, None)?;
            Ok(st.tenancy.api_key(t, id)?.key.clone())
        })
    }

    async fn revoke_api_key(&self, ctx: &Context, id: ApiKeyId) -> Result<ApiKey> {
        self.run(ctx, "ApiKeyRepo.revoke_api_key", || {
            let now = self.now();
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            let level = st.tenancy.api_key(t, id)?.key.project_id;
            st.require(ctx, t, PermissionCode::API_KEY_MANAGE, level)?;
            let row = st
                .tenancy
                .api_keys
                .get_mut(&(t, id))
                .ok_or_else(|| Error::not_found(Entity::ApiKey))?;
            if row.key.revoked_at.is_some() {
                return Ok(row.key.clone());
            }
            let event = AuditEvent::new("api_key.revoked", "api_key", Some(id), Diff::new())?;
            row.key.revoked_at = Some(now);
            let revoked = row.key.clone();
            st.audit(ctx, t, event, now);
            Ok(revoked)
        })
    }
}
