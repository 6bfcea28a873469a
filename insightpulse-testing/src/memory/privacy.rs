//! In-memory data governance: data policies, consent records, and the two
//! paths that reach every module's data, which this module only dispatches:
//! retention, one hook per category beside the module storing it
//! (`retire_audit` in `audit.rs`, `retire_invitations` in
//! `tenancy/members.rs`, `retire_events` in `outbox.rs`, `retire_jobs` in
//! `jobs.rs`), and the erasure of a user, one call per module holding
//! personal data (`TenancyState::erase_user`,
//! `AuditState::erase_personal_data`).
//!
//! Rules guarded here:
//! - **Every change is audited in the change.** Setting or deleting a
//!   policy, each retention batch, each consent entry and an erasure append
//!   their events inside the same locked mutation (see `audit.rs`).
//! - **Retention is idempotent and batched.** Each batch of at most
//!   `batch_size` rows is one unit (one transaction in PostgreSQL) with its
//!   own event; the rows a run touches are chosen before it starts, so a
//!   second run at the same `now` finds nothing left to do.
//! - **Consents are append-only**; the current state is the latest entry.
//! - **Erasure is all or nothing**: refused (nothing changed) when it would
//!   leave a tenant without an active owner — the tenancy's part, the only
//!   one that can refuse, runs first.

use super::{MemoryBackend, MinId, State, TenantRows, TenantTable};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insightpulse_core::audit::{Actor, AuditEvent, Diff, PLATFORM_TENANT};
use insightpulse_core::clock::truncate_to_micros;
use insightpulse_core::privacy::{
    Consent, ConsentChange, DataCategory, DataPolicy, ErasureReport, NewDataPolicy, PrivacyRepo,
    RetentionAction, RetentionOutcome, RetentionReport,
};
use insightpulse_core::{
    ConsentId, ConsentPurpose, Context, Entity, Error, PermissionCode, RequestMeta, Requirement,
    Result, StateRule, TenantId, UserId,
};
use std::collections::HashMap;

/// The privacy module's tables.
#[derive(Default)]
pub(crate) struct PrivacyState {
    /// Data policies, keyed `(tenant, category)` so a tenant's come out in
    /// [`DataCategory::ALL`] order.
    pub data_policies: TenantTable<DataCategory, DataPolicy>,
    /// Each tenant's consent entries, in the order recorded (append-only).
    pub consents: HashMap<TenantId, Vec<Consent>>,
}

impl MinId for DataCategory {
    fn min_id() -> Self {
        // Derived `Ord` follows declaration order, which `ALL` lists.
        DataCategory::ALL[0]
    }
}

impl PrivacyState {
    /// A deleted tenant takes its data policies and consents.
    pub fn on_tenant_deleted(&mut self, t: TenantId) {
        self.data_policies.remove_of_tenant(t, |_| true);
        self.consents.remove(&t);
    }

    /// `user`'s consent history in `t`, oldest first: by `recorded_at`, then
    /// in the order recorded (the sort is stable over insertion order).
    pub fn history_of(&self, t: TenantId, user: UserId) -> Vec<&Consent> {
        let mut out: Vec<&Consent> = self
            .consents
            .get(&t)
            .into_iter()
            .flatten()
            .filter(|c| c.user_id == user)
            .collect();
        out.sort_by_key(|c| c.recorded_at);
        out
    }

    /// Whether the latest entry of `user` for `purpose` in `t` is a grant.
    pub fn consented(&self, t: TenantId, user: UserId, purpose: &ConsentPurpose) -> bool {
        self.history_of(t, user)
            .into_iter()
            .rev()
            .find(|c| &c.purpose == purpose)
            .is_some_and(|c| c.granted)
    }
}

/// What a retention step did: rows deleted and rows anonymized.
pub(super) type Counts = (u64, u64);

/// The diff of a `retention.applied` event.
pub(super) fn retention_event(
    category: DataCategory,
    cutoff: DateTime<Utc>,
    (deleted, anonymized): Counts,
) -> Result<AuditEvent> {
    AuditEvent::new(
        "retention.applied",
        "data_policy",
        Some(category.as_str()),
        Diff::new()
            .set("cutoff", cutoff)
            .set("deleted", deleted)
            .set("anonymized", anonymized),
    )
}

/// One run of `enforce_retention` in one tenant: who runs it, the policy's
/// action and cutoff, the batch size and the instant its events are stamped
/// with (the backend's clock, not the run's `now`). A module's retention
/// hook takes it and returns its [`Counts`].
pub(super) struct RetentionRun<'a> {
    pub(super) ctx: &'a Context,
    pub(super) tenant: TenantId,
    pub(super) action: &'a RetentionAction,
    pub(super) now: DateTime<Utc>,
    pub(super) cutoff: DateTime<Utc>,
    pub(super) batch_size: usize,
    pub(super) at: DateTime<Utc>,
}

impl RetentionRun<'_> {
    /// Whether the policy deletes its rows (else it anonymizes them).
    pub(super) fn deletes(&self) -> bool {
        *self.action == RetentionAction::Delete
    }
}

impl State {
    // --- retention --------------------------------------------------------

    /// Deletes `doomed` (already in deletion order) in batches of the run,
    /// each with its `retention.applied` entry: the retention hook of a
    /// module whose category is only ever deleted (the outbox's events, the
    /// queue's finished jobs).
    pub(super) fn delete_in_batches<K>(
        &mut self,
        run: &RetentionRun<'_>,
        category: DataCategory,
        doomed: &[K],
        mut remove: impl FnMut(&mut State, &K),
    ) -> Result<Counts> {
        for batch in doomed.chunks(run.batch_size) {
            for key in batch {
                remove(self, key);
            }
            let event = retention_event(category, run.cutoff, (batch.len() as u64, 0))?;
            self.audit(run.ctx, run.tenant, event, run.at);
        }
        Ok((doomed.len() as u64, 0))
    }

    // --- consents ---------------------------------------------------------

    /// The tenant of a consent call about `user`, after the checks every
    /// consent call makes: the tenant is visible, the user is a member (any
    /// status), and the caller is the user, the system or holds
    /// `consent.manage`.
    fn consent_tenant(&self, ctx: &Context, user: UserId) -> Result<TenantId> {
        let t = self.row_tenant(ctx, Entity::User)?;
        if !self.tenancy.memberships.contains_key(&(t, user)) {
            return Err(Error::not_found(Entity::User));
        }
        if ctx.user_id() != Some(user)
            && !self.allows(ctx, t, &PermissionCode::CONSENT_MANAGE, None)
        {
            return Err(Error::denied(PermissionCode::CONSENT_MANAGE));
        }
        Ok(t)
    }

    /// Appends a consent entry and its event.
    fn append_consent(
        &mut self,
        ctx: &Context,
        t: TenantId,
        change: ConsentChange,
        granted: bool,
        now: DateTime<Utc>,
    ) -> Result<Consent> {
        let consent = Consent {
            id: ConsentId::new(),
            tenant_id: t,
            user_id: change.user,
            purpose: change.purpose,
            policy_version: change.policy_version,
            source: change.source,
            granted,
            recorded_at: truncate_to_micros(now),
            recorded_by: Actor::of(ctx),
        };
        let event = AuditEvent::new(
            if granted {
                "consent.granted"
            } else {
                "consent.withdrawn"
            },
            "consent",
            Some(consent.id),
            Diff::new()
                .set("user_id", consent.user_id)
                .set("purpose", &consent.purpose)
                .set("policy_version", &consent.policy_version)
                .set("source", &consent.source),
        )?;
        self.privacy
            .consents
            .entry(t)
            .or_default()
            .push(consent.clone());
        self.audit(ctx, t, event, now);
        Ok(consent)
    }
}

#[async_trait]
impl PrivacyRepo for MemoryBackend {
    async fn set_data_policy(&self, ctx: &Context, policy: NewDataPolicy) -> Result<DataPolicy> {
        self.run(ctx, "PrivacyRepo.set_data_policy", || {
            policy.validate()?;
            let now = self.now();
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, PermissionCode::DATA_POLICY_MANAGE, None)?;
            let event = AuditEvent::new(
                "data_policy.set",
                "data_policy",
                Some(policy.category.as_str()),
                Diff::new()
                    .set("retention_days", policy.retention.get())
                    .set("action", policy.action.as_str()),
            )?;
            let stored = DataPolicy {
                tenant_id: t,
                category: policy.category,
                retention: policy.retention,
                action: policy.action,
                updated_at: now,
            };
            st.privacy
                .data_policies
                .insert((t, stored.category), stored.clone());
            st.audit(ctx, t, event, now);
            Ok(stored)
        })
    }

    async fn list_data_policies(&self, ctx: &Context) -> Result<Vec<DataPolicy>> {
        self.run(ctx, "PrivacyRepo.list_data_policies", || {
            let st = self.lock();
            let Some(t) = st.list_tenant(ctx)? else {
                return Ok(Vec::new());
            };
            st.require(ctx, t, PermissionCode::DATA_POLICY_MANAGE, None)?;
            // Keyed by (tenant, category), and DataCategory orders as
            // DataCategory::ALL: the range is already in category order.
            Ok(st.privacy.data_policies.of_tenant(t).cloned().collect())
        })
    }

    async fn delete_data_policy(&self, ctx: &Context, category: DataCategory) -> Result<()> {
        self.run(ctx, "PrivacyRepo.delete_data_policy", || {
            let now = self.now();
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, PermissionCode::DATA_POLICY_MANAGE, None)?;
            if !st.privacy.data_policies.contains_key(&(t, category)) {
                return Err(Error::not_found(Entity::DataPolicy));
            }
            let event = AuditEvent::new(
                "data_policy.deleted",
                "data_policy",
                Some(category.as_str()),
                Diff::new(),
            )?;
            st.privacy.data_policies.remove(&(t, category));
            st.audit(ctx, t, event, now);
            Ok(())
        })
    }

    async fn enforce_retention(
        &self,
        ctx: &Context,
        now: DateTime<Utc>,
        batch_size: u32,
    ) -> Result<RetentionReport> {
        self.run(ctx, "PrivacyRepo.enforce_retention", || {
            // Who may run it is decided before what was asked (as in
            // PostgreSQL): a non-system caller learns nothing from its input.
            ctx.require_system()?;
            if batch_size == 0 {
                return Err(Error::validation("batch_size", "must be at least 1"));
            }
            let batch_size = usize::try_from(batch_size).unwrap_or(usize::MAX);
            let at = self.now();
            let mut st = self.lock();
            // Keyed by (tenant, category): already in the report's order.
            let policies: Vec<DataPolicy> = st.privacy.data_policies.values().cloned().collect();
            let mut report = RetentionReport::default();
            for policy in policies {
                let run = RetentionRun {
                    ctx,
                    tenant: policy.tenant_id,
                    action: &policy.action,
                    now,
                    cutoff: policy.retention.cutoff(now),
                    batch_size,
                    at,
                };
                // One arm per category: the hook of the module storing it.
                let counts = match policy.category {
                    DataCategory::AuditLogs => Some(st.retire_audit(&run)?),
                    DataCategory::Invitations => Some(st.retire_invitations(&run)?),
                    DataCategory::DomainEvents => Some(st.retire_events(&run)?),
                    DataCategory::Jobs => Some(st.retire_jobs(&run)?),
                    // No module stores these yet: the policy waits for it.
                    _ => None,
                };
                debug_assert_eq!(counts.is_some(), policy.category.is_stored());
                let (deleted, anonymized) = counts.unwrap_or((0, 0));
                report.outcomes.push(RetentionOutcome {
                    tenant_id: policy.tenant_id,
                    category: policy.category,
                    cutoff: run.cutoff,
                    deleted,
                    anonymized,
                    applied: counts.is_some(),
                });
            }
            Ok(report)
        })
    }

    async fn record_consent(&self, ctx: &Context, change: ConsentChange) -> Result<Consent> {
        self.run(ctx, "PrivacyRepo.record_consent", || {
            let now = self.now();
            let mut st = self.lock();
            let t = st.consent_tenant(ctx, change.user)?;
            st.append_consent(ctx, t, change, true, now)
        })
    }

    async fn withdraw_consent(&self, ctx: &Context, change: ConsentChange) -> Result<Consent> {
        self.run(ctx, "PrivacyRepo.withdraw_consent", || {
            let now = self.now();
            let mut st = self.lock();
            let t = st.consent_tenant(ctx, change.user)?;
            if !st.privacy.consented(t, change.user, &change.purpose) {
                return Err(Error::invalid_state(
                    Entity::Consent,
                    StateRule::ConsentNotGiven,
                ));
            }
            st.append_consent(ctx, t, change, false, now)
        })
    }

    async fn has_consent(
        &self,
        ctx: &Context,
        user: UserId,
        purpose: &ConsentPurpose,
    ) -> Result<bool> {
        self.run(ctx, "PrivacyRepo.has_consent", || {
            let st = self.lock();
            let t = st.consent_tenant(ctx, user)?;
            Ok(st.privacy.consented(t, user, purpose))
        })
    }

    async fn consent_history(&self, ctx: &Context, user: UserId) -> Result<Vec<Consent>> {
        self.run(ctx, "PrivacyRepo.consent_history", || {
            let st = self.lock();
            let t = st.consent_tenant(ctx, user)?;
            Ok(st
                .privacy
                .history_of(t, user)
                .into_iter()
                .cloned()
                .collect())
        })
    }

    async fn erase_user(&self, ctx: &Context, user: UserId) -> Result<ErasureReport> {
        self.run(ctx, "PrivacyRepo.erase_user", || {
            let by_self = ctx.user_id() == Some(user);
            if !ctx.is_system() && !by_self {
                return Err(Error::denied(Requirement::SameUserOrSystem));
            }
            let event = AuditEvent::new("user.erased", "user", Some(user), Diff::new())?;
            let now = self.now();
            let mut st = self.lock();
            // One call per module holding the user's personal data. The
            // tenancy's may refuse, so it goes first: before anything changed.
            let mut report = st.tenancy.erase_user(user, now)?;
            report.audit_entries_pseudonymized = st.audit.erase_personal_data(user);

            // The erased user's own request would put their address and
            // user agent straight back into the trail.
            let request = if by_self {
                RequestMeta {
                    request_id: ctx.request().request_id.clone(),
                    ..RequestMeta::default()
                }
            } else {
                ctx.request().clone()
            };
            for t in report.tenants.iter().copied().chain([PLATFORM_TENANT]) {
                st.audit
                    .append(t, Actor::of(ctx), &request, event.clone(), now);
            }
            Ok(report)
        })
    }
}
