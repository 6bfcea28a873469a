//! API keys: the stored metadata, the input, the once-returned secret and
//! [`ApiKeyRepo`].

use crate::context::Context;
use crate::error::Result;
use crate::ids::*;
use crate::values::{Name, PermissionCode};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// What an API key may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scope", content = "id", rename_all = "snake_case")]
pub enum ApiKeyScope {
    /// The whole tenant.
    Tenant,
    /// One project.
    Project(ProjectId),
    /// One environment (and so one project).
    Environment(EnvironmentId),
}

/// An API key's stored metadata; the secret is never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Its id.
    pub id: ApiKeyId,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// Display name.
    pub name: Name,
    /// The public lookup prefix, safe to show (`ipk_xxxxxxxxxxxxxxxx`).
    pub prefix: String,
    /// What it may reach.
    pub scope: ApiKeyScope,
    /// The project it is limited to (set for project and environment keys).
    pub project_id: Option<ProjectId>,
    /// Exactly what it may do.
    pub permissions: Vec<PermissionCode>,
    /// The user who created it.
    pub created_by: Option<UserId>,
    /// After this instant the key is refused.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last successful verification.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Set when revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// Input of [`ApiKeyRepo::create_api_key`](super::ApiKeyRepo::create_api_key).
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// Display name.
    pub name: Name,
    /// What it may reach.
    pub scope: ApiKeyScope,
    /// What it may do: a non-empty subset of the creator's permissions at
    /// that scope.
    pub permissions: Vec<PermissionCode>,
    /// Optional expiry (must be in the future).
    pub expires_at: Option<DateTime<Utc>>,
}

/// A new API key with its plaintext, returned exactly once.
#[derive(Debug)]
pub struct IssuedApiKey {
    /// The stored metadata.
    pub key: ApiKey,
    /// The plaintext key to hand to the client; not stored anywhere.
    pub secret: SecretString,
}

/// API keys of the context's tenant.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait ApiKeyRepo: Send + Sync {
    /// Creates a key. The principal must be a user holding `api_key.manage`
    /// and every requested permission at the key's scope. The plaintext is
    /// returned once; only its keyed hash and public prefix are stored.
    async fn create_api_key(&self, ctx: &Context, new: NewApiKey) -> Result<IssuedApiKey>;
    /// Every key of the tenant (metadata only), ordered by creation.
    async fn list_api_keys(&self, ctx: &Context) -> Result<Vec<ApiKey>>;
    /// One key.
    async fn get_api_key(&self, ctx: &Context, id: ApiKeyId) -> Result<ApiKey>;
    /// Revokes a key; it is refused from then on. Needs `api_key.manage`.
    async fn revoke_api_key(&self, ctx: &Context, id: ApiKeyId) -> Result<ApiKey>;
}
