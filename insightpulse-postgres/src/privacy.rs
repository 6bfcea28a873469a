//! Data policies, retention, consents and erasure on PostgreSQL (core
//! module [`insightpulse_core::privacy`]; schema in
//! `migrations/0005_privacy.sql`).
//!
//! Rules guarded here: retention and erasure are system paths (they cross
//! tenants, or delete what runtime roles cannot), each named in its
//! `Context::system` reason and audited in the affected tenant's trail in
//! the transaction that makes the change. Retention works in transactions
//! of at most `batch_size` rows so it never holds long locks. The SQL of
//! each category lives in its module, as a hook beside the module's own
//! statements (`audit::retire`, `tenancy::retire_invitations`,
//! `outbox::retire_events`, `jobs::retire_jobs`; for erasure
//! `tenancy::erase_user` and `audit::erase_user`): a module plugs its
//! category in with one arm in [`PgBackend::apply_batch`].

use crate::error::{corrupt, db};
use crate::guard::{may_list, require, require_row};
use crate::rows::{parse, row, sql};
use crate::uow::traced;
use crate::uow::Tx;
use crate::{audit, jobs, outbox, tenancy, PgBackend};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insightpulse_core::audit::{Actor, AuditEvent, Diff, PLATFORM_TENANT};
use insightpulse_core::privacy::{
    AnonymizationRule, Consent, ConsentChange, DataCategory, DataPolicy, ErasureReport,
    NewDataPolicy, PrivacyRepo, RetentionAction, RetentionDays, RetentionOutcome, RetentionReport,
};
use insightpulse_core::{
    ApiKeyId, ConsentId, ConsentPurpose, ConsentSource, Context, Entity, Error, PermissionCode,
    PolicyVersion, RequestMeta, Requirement, Result, StateRule, TenantId, UserId,
};
use uuid::Uuid;

row! {
    struct PolicyRow {
        tenant_id: Uuid,
        #[sql = "category::text"]
        category: String,
        retention_days: i32,
        #[sql = "action::text"]
        action: String,
        anonymization: serde_json::Value,
        updated_at: DateTime<Utc>,
    }
}

impl TryFrom<PolicyRow> for DataPolicy {
    type Error = Error;
    fn try_from(r: PolicyRow) -> Result<Self> {
        let rules: Vec<AnonymizationRule> =
            serde_json::from_value(r.anonymization).map_err(corrupt)?;
        Ok(DataPolicy {
            tenant_id: TenantId(r.tenant_id),
            category: parse(&r.category, str::parse)?,
            retention: RetentionDays::new(r.retention_days.into()).map_err(corrupt)?,
            action: RetentionAction::from_parts(&r.action, rules).map_err(corrupt)?,
            updated_at: r.updated_at,
        })
    }
}

row! {
    struct ConsentRow {
        id: Uuid,
        tenant_id: Uuid,
        user_id: Uuid,
        purpose: String,
        policy_version: String,
        source: String,
        granted: bool,
        recorded_at: DateTime<Utc>,
        #[sql = "actor_kind::text"]
        actor_kind: String,
        actor_user_id: Option<Uuid>,
        actor_api_key_id: Option<Uuid>,
        actor_reason: Option<String>,
    }
}

impl TryFrom<ConsentRow> for Consent {
    type Error = Error;
    fn try_from(r: ConsentRow) -> Result<Self> {
        Ok(Consent {
            id: ConsentId(r.id),
            tenant_id: TenantId(r.tenant_id),
            user_id: UserId(r.user_id),
            purpose: parse(&r.purpose, ConsentPurpose::parse)?,
            policy_version: parse(&r.policy_version, PolicyVersion::parse)?,
            source: parse(&r.source, ConsentSource::parse)?,
            granted: r.granted,
            recorded_at: r.recorded_at,
            recorded_by: Actor::from_parts(
                &r.actor_kind,
                r.actor_user_id.map(UserId),
                r.actor_api_key_id.map(ApiKeyId),
                r.actor_reason,
            )
            .map_err(corrupt)?,
        })
    }
}

/// Refuses unless the subject is a member of the tenant (`NotFound` user)
/// and the caller is the subject, the system or a holder of
/// `consent.manage` (`PermissionDenied`).
async fn require_consent_access(
    tx: &mut Tx,
    ctx: &Context,
    tenant: TenantId,
    user: UserId,
) -> Result<()> {
    if !ctx.is_system() {
        // A tenant the caller cannot see hides its members too.
        require_row(tx, ctx, tenant, None, Entity::User).await?;
    }
    let member: bool = tx
        .query_scalar(
            "SELECT EXISTS (SELECT 1 FROM org_memberships WHERE tenant_id = $1 AND user_id = $2)",
        )
        .bind(tenant.0)
        .bind(user.0)
        .fetch_one(&mut **tx)
        .await
        .map_err(db)?;
    if !member {
        return Err(Error::not_found(Entity::User));
    }
    if ctx.is_system() || ctx.user_id() == Some(user) {
        return Ok(());
    }
    require(tx, ctx, tenant, Some(PermissionCode::CONSENT_MANAGE), None).await
}

/// Whether the user's newest consent entry for `purpose` is a grant.
async fn consents_now(
    tx: &mut Tx,
    tenant: TenantId,
    user: UserId,
    purpose: &ConsentPurpose,
) -> Result<bool> {
    let latest: Option<bool> = tx
        .query_scalar(
            "SELECT granted FROM consents
          WHERE tenant_id = $1 AND user_id = $2 AND purpose = $3
          ORDER BY recorded_at DESC, seq DESC LIMIT 1",
        )
        .bind(tenant.0)
        .bind(user.0)
        .bind(purpose.as_str())
        .fetch_optional(&mut **tx)
        .await
        .map_err(db)?;
    Ok(latest == Some(true))
}

/// One batch of a retention policy, as a module's hook applies it inside
/// the batch's transaction (see [`PgBackend::apply_batch`]).
pub(crate) struct Retention<'a> {
    /// The tenant whose rows age out.
    pub tenant: TenantId,
    /// Rows older than this go.
    pub cutoff: DateTime<Utc>,
    /// The run's instant.
    pub now: DateTime<Utc>,
    /// At most this many rows.
    pub limit: i32,
    /// Delete them, or anonymize them.
    pub action: &'a RetentionAction,
}

/// What one retention batch changed.
#[derive(Default)]
pub(crate) struct Batch {
    pub deleted: u64,
    pub anonymized: u64,
    /// The entry that attests the batch, when the module writes its own
    /// (otherwise `retention.applied`).
    pub event: Option<AuditEvent>,
}

impl Batch {
    fn affected(&self) -> u64 {
        self.deleted + self.anonymized
    }
}

impl PgBackend {
    async fn change_consent(
        &self,
        ctx: &Context,
        change: ConsentChange,
        granted: bool,
    ) -> Result<Consent> {
        let t = ctx.require_tenant()?;
        let mut tx = self.begin(ctx).await?;
        require_consent_access(&mut tx, ctx, t, change.user).await?;
        if !granted && !consents_now(&mut tx, t, change.user, &change.purpose).await? {
            return Err(Error::invalid_state(
                Entity::Consent,
                StateRule::ConsentNotGiven,
            ));
        }
        let actor = Actor::of(ctx);
        let row: ConsentRow = tx
            .query_as(sql!(
                "WITH r AS (INSERT INTO consents (tenant_id, user_id, purpose, policy_version, source, granted,
                                   recorded_at, actor_kind, actor_user_id, actor_api_key_id,
                                   actor_reason)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8::audit_actor_kind, $9, $10, $11)
             RETURNING ",
                ConsentRow::FIELDS,
                ") SELECT ",
                ConsentRow::COLUMNS,
                " FROM r"
            ))
            .bind(t.0)
            .bind(change.user.0)
            .bind(change.purpose.as_str())
            .bind(change.policy_version.as_str())
            .bind(change.source.as_str())
            .bind(granted)
            .bind(self.clock.now())
            .bind(actor.kind())
            .bind(actor.user_id().map(|u| u.0))
            .bind(actor.api_key_id().map(|k| k.0))
            .bind(actor.reason())
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        let consent = Consent::try_from(row)?;
        let action = if granted {
            "consent.granted"
        } else {
            "consent.withdrawn"
        };
        let diff = Diff::new()
            .set("user_id", change.user)
            .set("purpose", &change.purpose)
            .set("policy_version", &change.policy_version)
            .set("source", &change.source);
        let event = AuditEvent::new(action, "consent", Some(consent.id), diff)?;
        self.audit(&mut tx, ctx, t, event);
        tx.commit().await.map_err(db)?;
        Ok(consent)
    }

    /// How many entries of `tenant`'s chain lie past its anchor (those a
    /// purge could delete).
    async fn unanchored_entries(&self, ctx: &Context, tenant: TenantId) -> Result<u64> {
        let mut tx = self.begin(ctx).await?;
        let n = audit::unanchored(&mut tx, tenant).await?;
        tx.commit().await.map_err(db)?;
        Ok(n)
    }

    /// Applies one batch of `policy` in its own transaction, with its audit
    /// entry: one hook per module, each beside its module's SQL. Only
    /// stored categories reach here.
    async fn apply_batch(
        &self,
        ctx: &Context,
        policy: &DataPolicy,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Batch> {
        let run = Retention {
            tenant: policy.tenant_id,
            cutoff: policy.retention.cutoff(now),
            now,
            limit: i32::try_from(limit).unwrap_or(i32::MAX),
            action: &policy.action,
        };
        let mut tx = self.begin(ctx).await?;
        let mut batch = match policy.category {
            DataCategory::AuditLogs => audit::retire(&mut tx, &run).await?,
            DataCategory::Invitations => tenancy::retire_invitations(&mut tx, &run).await?,
            DataCategory::DomainEvents => outbox::retire_events(&mut tx, &run).await?,
            DataCategory::Jobs => jobs::retire_jobs(&mut tx, &run).await?,
            _ => Batch::default(),
        };
        if batch.affected() > 0 {
            let event = match batch.event.take() {
                Some(e) => e,
                None => {
                    let diff = Diff::new()
                        .set("cutoff", run.cutoff)
                        .set("deleted", batch.deleted)
                        .set("anonymized", batch.anonymized);
                    AuditEvent::new(
                        "retention.applied",
                        "data_policy",
                        Some(policy.category.as_str()),
                        diff,
                    )?
                }
            };
            self.audit(&mut tx, ctx, run.tenant, event);
        }
        tx.commit().await.map_err(db)?;
        Ok(batch)
    }
}

#[async_trait]
impl PrivacyRepo for PgBackend {
    async fn set_data_policy(&self, ctx: &Context, policy: NewDataPolicy) -> Result<DataPolicy> {
        traced!(ctx, "PrivacyRepo.set_data_policy", {
            policy.validate()?;
            let t = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            require(
                &mut tx,
                ctx,
                t,
                Some(PermissionCode::DATA_POLICY_MANAGE),
                None,
            )
            .await?;
            let rules = serde_json::to_value(policy.action.rules()).map_err(Error::backend)?;
            let row: PolicyRow = tx
                .query_as(sql!(
                    "WITH r AS (INSERT INTO data_policies (tenant_id, category, retention_days, action,
                                            anonymization, created_at, updated_at)
                 VALUES ($1, $2::data_category, $3, $4::retention_action, $5, $6, $6)
                 ON CONFLICT (tenant_id, category) DO UPDATE
                    SET retention_days = EXCLUDED.retention_days, action = EXCLUDED.action,
                        anonymization = EXCLUDED.anonymization, updated_at = EXCLUDED.updated_at
                 RETURNING ",
                    PolicyRow::FIELDS,
                    ") SELECT ",
                    PolicyRow::COLUMNS,
                    " FROM r"
                ))
                .bind(t.0)
                .bind(policy.category.as_str())
                .bind(policy.retention.get() as i32)
                .bind(policy.action.as_str())
                .bind(rules)
                .bind(self.clock.now())
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
            let diff = Diff::new()
                .set("retention_days", policy.retention.get())
                .set("action", policy.action.as_str());
            let event = AuditEvent::new(
                "data_policy.set",
                "data_policy",
                Some(policy.category.as_str()),
                diff,
            )?;
            self.audit(&mut tx, ctx, t, event);
            tx.commit().await.map_err(db)?;
            row.try_into()
        })
    }

    async fn list_data_policies(&self, ctx: &Context) -> Result<Vec<DataPolicy>> {
        traced!(ctx, "PrivacyRepo.list_data_policies", {
            let t = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            if !may_list(&mut tx, ctx, t, PermissionCode::DATA_POLICY_MANAGE).await? {
                return Ok(vec![]);
            }
            let rows: Vec<PolicyRow> = tx
                .query_as(sql!(
                    "SELECT ",
                    PolicyRow::COLUMNS,
                    " FROM data_policies WHERE tenant_id = $1 ORDER BY data_policies.category"
                ))
                .bind(t.0)
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            rows.into_iter().map(DataPolicy::try_from).collect()
        })
    }

    async fn delete_data_policy(&self, ctx: &Context, category: DataCategory) -> Result<()> {
        traced!(ctx, "PrivacyRepo.delete_data_policy", {
            let t = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            require(
                &mut tx,
                ctx,
                t,
                Some(PermissionCode::DATA_POLICY_MANAGE),
                None,
            )
            .await?;
            let deleted = tx.query(
                "DELETE FROM data_policies WHERE tenant_id = $1 AND category = $2::data_category",
            )
            .bind(t.0)
            .bind(category.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            if deleted.rows_affected() == 0 {
                return Err(Error::not_found(Entity::DataPolicy));
            }
            let event = AuditEvent::new(
                "data_policy.deleted",
                "data_policy",
                Some(category.as_str()),
                Diff::new(),
            )?;
            self.audit(&mut tx, ctx, t, event);
            tx.commit().await.map_err(db)
        })
    }

    async fn enforce_retention(
        &self,
        ctx: &Context,
        now: DateTime<Utc>,
        batch_size: u32,
    ) -> Result<RetentionReport> {
        traced!(ctx, "PrivacyRepo.enforce_retention", {
            ctx.require_system()?;
            if batch_size == 0 {
                return Err(Error::validation("batch_size", "must be at least 1"));
            }
            let mut tx = self.begin(ctx).await?;
            let rows: Vec<PolicyRow> = tx
                .query_as(sql!(
                    "SELECT ",
                    PolicyRow::COLUMNS,
                    " FROM data_policies ORDER BY tenant_id, data_policies.category"
                ))
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            let mut report = RetentionReport::default();
            for row in rows {
                let policy = DataPolicy::try_from(row)?;
                let mut outcome = RetentionOutcome {
                    tenant_id: policy.tenant_id,
                    category: policy.category,
                    cutoff: policy.retention.cutoff(now),
                    deleted: 0,
                    anonymized: 0,
                    applied: policy.category.is_stored(),
                };
                // A purge never reaches the entries this run appends (each
                // batch attests itself with one): the chain is purged at
                // most up to its head as the run found it, as in memory.
                let mut purgeable = match (policy.category, &policy.action) {
                    (DataCategory::AuditLogs, RetentionAction::Delete) => {
                        self.unanchored_entries(ctx, policy.tenant_id).await?
                    }
                    _ => u64::MAX,
                };
                while outcome.applied && purgeable > 0 {
                    let limit = u32::try_from(purgeable).map_or(batch_size, |p| p.min(batch_size));
                    let batch = self.apply_batch(ctx, &policy, now, limit).await?;
                    purgeable = purgeable.saturating_sub(batch.deleted);
                    outcome.deleted += batch.deleted;
                    outcome.anonymized += batch.anonymized;
                    if batch.affected() < u64::from(limit) {
                        break;
                    }
                }
                report.outcomes.push(outcome);
            }
            Ok(report)
        })
    }

    async fn record_consent(&self, ctx: &Context, change: ConsentChange) -> Result<Consent> {
        traced!(ctx, "PrivacyRepo.record_consent", {
            self.change_consent(ctx, change, true).await
        })
    }

    async fn withdraw_consent(&self, ctx: &Context, change: ConsentChange) -> Result<Consent> {
        traced!(ctx, "PrivacyRepo.withdraw_consent", {
            self.change_consent(ctx, change, false).await
        })
    }

    async fn has_consent(
        &self,
        ctx: &Context,
        user: UserId,
        purpose: &ConsentPurpose,
    ) -> Result<bool> {
        traced!(ctx, "PrivacyRepo.has_consent", {
            let t = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            require_consent_access(&mut tx, ctx, t, user).await?;
            let granted = consents_now(&mut tx, t, user, purpose).await?;
            tx.commit().await.map_err(db)?;
            Ok(granted)
        })
    }

    async fn consent_history(&self, ctx: &Context, user: UserId) -> Result<Vec<Consent>> {
        traced!(ctx, "PrivacyRepo.consent_history", {
            let t = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            require_consent_access(&mut tx, ctx, t, user).await?;
            let rows: Vec<ConsentRow> = tx
                .query_as(sql!(
                    "SELECT ",
                    ConsentRow::COLUMNS,
                    " FROM consents
                  WHERE tenant_id = $1 AND user_id = $2 ORDER BY recorded_at, seq"
                ))
                .bind(t.0)
                .bind(user.0)
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            rows.into_iter().map(Consent::try_from).collect()
        })
    }

    async fn erase_user(&self, ctx: &Context, user: UserId) -> Result<ErasureReport> {
        traced!(ctx, "PrivacyRepo.erase_user", {
            if !(ctx.is_system() || ctx.user_id() == Some(user)) {
                return Err(Error::denied(Requirement::SameUserOrSystem));
            }
            // Erasure crosses tenants: a named system path, whoever asked.
            let system = Context::system("erasure of a user (GDPR art. 17)");
            let mut tx = self.begin(&system).await?;
            let erased = tenancy::erase_user(&mut tx, user, self.clock.now()).await?;
            let pseudonymized = audit::erase_user(&mut tx, user).await?;
            // No new personal data about the erased user: when they asked
            // themselves, their address and agent are not recorded.
            let actor = Actor::of(ctx);
            let request = if actor.user_id() == Some(user) {
                RequestMeta {
                    request_id: ctx.request().request_id.clone(),
                    ..RequestMeta::default()
                }
            } else {
                ctx.request().clone()
            };
            let event = AuditEvent::new("user.erased", "user", Some(user), Diff::new())?;
            let now = self.clock.now();
            for &t in erased.tenants.iter().chain([&PLATFORM_TENANT]) {
                audit::append(&mut tx, t, &actor, &request, &event, now);
            }
            tx.commit().await.map_err(db)?;
            Ok(ErasureReport {
                user_id: user,
                tenants: erased.tenants,
                memberships_removed: erased.memberships,
                identities_removed: erased.identities,
                invitations_removed: erased.invitations,
                audit_entries_pseudonymized: pseudonymized,
            })
        })
    }
}
