//! The data-governance repository trait.

use super::model::*;
use crate::context::Context;
use crate::error::Result;
use crate::ids::UserId;
use crate::values::ConsentPurpose;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// Data policies, consents and erasure.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait PrivacyRepo: Send + Sync {
    /// Sets (creates or replaces) the context tenant's policy for a
    /// category. Needs `data_policy.manage`; audited as `data_policy.set`.
    /// Errors: `Validation` for rules that do not fit the category.
    async fn set_data_policy(&self, ctx: &Context, policy: NewDataPolicy) -> Result<DataPolicy>;

    /// The tenant's policies, ordered by category. Needs `data_policy.manage`.
    async fn list_data_policies(&self, ctx: &Context) -> Result<Vec<DataPolicy>>;

    /// Removes the tenant's policy for a category (its data is then kept
    /// indefinitely). Needs `data_policy.manage`; audited.
    async fn delete_data_policy(&self, ctx: &Context, category: DataCategory) -> Result<()>;

    /// Applies every tenant's policies as of `now`, in transactions of at
    /// most `batch_size` rows, and reports what it did. System only.
    /// Idempotent: a second run at the same `now` changes nothing. Each
    /// tenant's changes are audited in its own trail (`retention.applied`,
    /// and `audit.purged` when audit entries are deleted).
    async fn enforce_retention(
        &self,
        ctx: &Context,
        now: DateTime<Utc>,
        batch_size: u32,
    ) -> Result<RetentionReport>;

    /// Records that a member of the context's tenant consents to a purpose.
    /// The user themselves, or a holder of `consent.manage`. Audited.
    /// Errors: `NotFound` (entity `user`) for a user who is not a member.
    async fn record_consent(&self, ctx: &Context, change: ConsentChange) -> Result<Consent>;

    /// Records the withdrawal of a consent (the history keeps both). Same
    /// rights as [`Self::record_consent`]. Errors: `InvalidState` when the
    /// user does not currently consent.
    async fn withdraw_consent(&self, ctx: &Context, change: ConsentChange) -> Result<Consent>;

    /// Whether the user currently consents to `purpose` (the latest entry is
    /// a grant). The user themselves, or a holder of `consent.manage`.
    async fn has_consent(
        &self,
        ctx: &Context,
        user: UserId,
        purpose: &ConsentPurpose,
    ) -> Result<bool>;

    /// The user's consent history in the tenant, oldest first. Same rights.
    async fn consent_history(&self, ctx: &Context, user: UserId) -> Result<Vec<Consent>>;

    /// Erases a user (GDPR art. 17): their memberships (with grants and
    /// team memberships), identities and the invitations addressed to them
    /// are removed, the account keeps only a pseudonymous email, and the
    /// personal fields of every audit entry they acted in are erased; the
    /// entries themselves stay. Audited as `user.erased` in each of their
    /// tenants and in the platform trail. The user themselves or the
    /// system. Errors: `InvalidState` when the user is the last active
    /// owner of a tenant (nothing is changed).
    async fn erase_user(&self, ctx: &Context, user: UserId) -> Result<ErasureReport>;
}
