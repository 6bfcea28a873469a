//! The audit trail's repository trait.

use super::model::{AuditEvent, AuditPage, AuditQuery, ChainVerdict};
use crate::context::Context;
use crate::error::Result;
use crate::ids::AuditEntryId;
use async_trait::async_trait;

/// A tenant's audit trail. The SDK's own mutations append to it
/// automatically; this trait is for host apps' events and for reading.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait AuditRepo: Send + Sync {
    /// Appends a host app's event to the context's tenant, as the context's
    /// principal, with its request metadata. Any principal that can see the
    /// tenant may record; the actor is always the caller. Honours the
    /// request's idempotency key (a replay returns the first entry's id).
    async fn record_event(&self, ctx: &Context, event: AuditEvent) -> Result<AuditEntryId>;

    /// The seed's "Audit Report": the tenant's entries of the last
    /// `q.last_days` days, newest first, with the acting user's email,
    /// filtered and paginated by cursor. Needs `audit.read`.
    async fn query_entries(&self, ctx: &Context, q: AuditQuery) -> Result<AuditPage>;

    /// Verifies the context's tenant's hash chain (see
    /// [`chain::verify`](super::chain::verify)). Needs `audit.read`; the
    /// system may verify any tenant, including
    /// [`PLATFORM_TENANT`](super::PLATFORM_TENANT).
    async fn verify_chain(&self, ctx: &Context) -> Result<ChainVerdict>;
}
