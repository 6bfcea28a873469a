//! Tenants (organizations): the row, its inputs and [`TenantRepo`].

use crate::context::Context;
use crate::error::Result;
use crate::ids::*;
use crate::values::{Name, Slug, TimeZone};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A tenant (organization).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// Its id.
    pub id: TenantId,
    /// Unique URL slug.
    pub slug: Slug,
    /// Display name.
    pub name: Name,
    /// IANA time zone used for the tenant's local dates.
    pub timezone: TimeZone,
    /// Free-form settings owned by the host app (a JSON object).
    pub settings: serde_json::Value,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// Input of [`TenantRepo::create_tenant`](super::TenantRepo::create_tenant).
#[derive(Debug, Clone, Serialize)]
pub struct NewTenant {
    /// Unique URL slug.
    pub slug: Slug,
    /// Display name.
    pub name: Name,
    /// IANA time zone.
    pub timezone: TimeZone,
}

/// A partial update of a tenant; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct TenantUpdate {
    /// New display name.
    pub name: Option<Name>,
    /// New time zone.
    pub timezone: Option<TimeZone>,
    /// New settings; must be a JSON object.
    pub settings: Option<serde_json::Value>,
}

impl TenantUpdate {
    /// Checks the input; called by every backend before any I/O.
    pub fn validate(&self) -> Result<()> {
        if let Some(settings) = &self.settings {
            if !settings.is_object() {
                return Err(crate::Error::validation(
                    "settings",
                    "must be a JSON object",
                ));
            }
            crate::values::storable_json("settings", settings)?;
        }
        Ok(())
    }
}

/// Tenants (organizations).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait TenantRepo: Send + Sync {
    /// The seed's "Create First Tenant" flow, atomically: the tenant, the
    /// acting user's active owner membership and a tenant-wide grant of the
    /// built-in `Admin` role. The principal must be a user. Honours the
    /// request's idempotency key.
    /// Errors: `Conflict` on a taken slug.
    async fn create_tenant(&self, ctx: &Context, new: NewTenant) -> Result<Tenant>;

    /// A tenant the principal belongs to; `NotFound` otherwise.
    async fn get_tenant(&self, ctx: &Context, id: TenantId) -> Result<Tenant>;

    /// A tenant by slug, with the same visibility as [`Self::get_tenant`].
    async fn get_tenant_by_slug(&self, ctx: &Context, slug: &Slug) -> Result<Tenant>;

    /// The seed's "Get User's Tenants": every tenant where the acting user's
    /// membership is active, ordered by slug.
    async fn list_my_tenants(&self, ctx: &Context) -> Result<Vec<Tenant>>;

    /// Changes the context's tenant. Needs `tenant.manage`; settings must be
    /// a JSON object.
    async fn update_tenant(&self, ctx: &Context, update: TenantUpdate) -> Result<Tenant>;

    /// Deletes the context's tenant and everything in it. Owners only.
    async fn delete_tenant(&self, ctx: &Context) -> Result<()>;
}
