//! Data policies, retention reports, consents and erasure reports.

use crate::audit::Actor;
use crate::error::{Error, Result};
use crate::ids::{ConsentId, TenantId, UserId};
use crate::values::{ConsentPurpose, ConsentSource, PolicyVersion};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// A category of data a tenant sets a retention policy for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataCategory {
    /// The audit trail (`audit_logs`).
    AuditLogs,
    /// Invitations once accepted, revoked or expired (`invitations`).
    Invitations,
    /// Metered usage events (billing module).
    MeteredEvents,
    /// LLM prompt runs (AI module).
    PromptRuns,
    /// Support tickets (support module).
    Tickets,
    /// Outbound webhook deliveries (integrations module).
    WebhookDeliveries,
    /// Inbound integration events (integrations module).
    IntegrationEvents,
    /// Domain events of the outbox (`outbox_events`), by publication time.
    DomainEvents,
    /// Finished jobs of the queue (`jobs`: completed, dead or cancelled), by
    /// the time they finished; pending and running jobs are never touched.
    Jobs,
}

impl DataCategory {
    /// Every category, in declaration order.
    pub const ALL: [Self; 9] = [
        Self::AuditLogs,
        Self::Invitations,
        Self::MeteredEvents,
        Self::PromptRuns,
        Self::Tickets,
        Self::WebhookDeliveries,
        Self::IntegrationEvents,
        Self::DomainEvents,
        Self::Jobs,
    ];

    /// The stored label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuditLogs => "audit_logs",
            Self::Invitations => "invitations",
            Self::MeteredEvents => "metered_events",
            Self::PromptRuns => "prompt_runs",
            Self::Tickets => "tickets",
            Self::WebhookDeliveries => "webhook_deliveries",
            Self::IntegrationEvents => "integration_events",
            Self::DomainEvents => "domain_events",
            Self::Jobs => "jobs",
        }
    }

    /// Whether a module stores this category yet. Policies of the others are
    /// kept and reported as not applied until their module lands.
    pub fn is_stored(self) -> bool {
        matches!(
            self,
            Self::AuditLogs | Self::Invitations | Self::DomainEvents | Self::Jobs
        )
    }

    /// The personal fields an anonymization rule may name, with the
    /// treatments each allows.
    pub fn personal_fields(self) -> &'static [(&'static str, &'static [TreatmentKind])] {
        use TreatmentKind::*;
        match self {
            // Erasing is the only change an audit entry allows (see audit::chain).
            Self::AuditLogs => &[("ip", &[Null]), ("user_agent", &[Null])],
            Self::Invitations => &[("email", &[Hash])],
            Self::MeteredEvents => &[("properties", &[Null, Replace])],
            Self::PromptRuns => &[
                ("prompt", &[Null, Hash, Replace]),
                ("response", &[Null, Hash, Replace]),
            ],
            Self::Tickets => &[
                ("requester_email", &[Hash, Replace]),
                ("body", &[Null, Replace]),
            ],
            Self::WebhookDeliveries => &[("payload", &[Null]), ("response_body", &[Null])],
            Self::IntegrationEvents => &[("payload", &[Null])],
            // Deleted whole or kept whole: an event's payload is the
            // publisher's, and a job's is its work order.
            Self::DomainEvents | Self::Jobs => &[],
        }
    }
}

parse_by_label!(
    DataCategory,
    "category",
    [
        DataCategory::AuditLogs,
        DataCategory::Invitations,
        DataCategory::MeteredEvents,
        DataCategory::PromptRuns,
        DataCategory::Tickets,
        DataCategory::WebhookDeliveries,
        DataCategory::IntegrationEvents,
        DataCategory::DomainEvents,
        DataCategory::Jobs,
    ]
);

/// How long data is kept: 1 to 36,500 days.
///
/// ```
/// use insightpulse_core::privacy::RetentionDays;
/// assert_eq!(RetentionDays::new(90).unwrap().get(), 90);
/// assert!(RetentionDays::new(-1).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RetentionDays(u32);

impl RetentionDays {
    /// Validates a retention.
    pub fn new(days: i64) -> Result<Self> {
        match u32::try_from(days) {
            Ok(d) if (1..=36_500).contains(&d) => Ok(Self(d)),
            _ => Err(Error::validation(
                "retention_days",
                "must be 1 to 36500 days",
            )),
        }
    }
    /// The number of days.
    pub fn get(self) -> u32 {
        self.0
    }
    /// The instant before which data is out of retention at `now`.
    pub fn cutoff(self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - chrono::Duration::days(i64::from(self.0))
    }
}

/// What an anonymization does to a field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "treatment", rename_all = "snake_case")]
pub enum FieldTreatment {
    /// Set it to null.
    Null,
    /// Replace it by a one-way pseudonym of its value (equal values stay
    /// equal, so counts still work).
    Hash,
    /// Replace it by a fixed value.
    Replace {
        /// The replacement (at most 200 characters).
        value: String,
    },
}

/// The kind of a [`FieldTreatment`], for declaring what a field allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreatmentKind {
    /// [`FieldTreatment::Null`].
    Null,
    /// [`FieldTreatment::Hash`].
    Hash,
    /// [`FieldTreatment::Replace`].
    Replace,
}

impl FieldTreatment {
    /// Its kind.
    pub fn kind(&self) -> TreatmentKind {
        match self {
            Self::Null => TreatmentKind::Null,
            Self::Hash => TreatmentKind::Hash,
            Self::Replace { .. } => TreatmentKind::Replace,
        }
    }
}

/// One field's anonymization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnonymizationRule {
    /// The personal field.
    pub field: String,
    /// What happens to it.
    #[serde(flatten)]
    pub treatment: FieldTreatment,
}

impl AnonymizationRule {
    /// A rule.
    pub fn new(field: &str, treatment: FieldTreatment) -> Self {
        Self {
            field: field.to_owned(),
            treatment,
        }
    }
}

/// The pseudonym [`FieldTreatment::Hash`] gives an email address: stable
/// for equal inputs, not reversible, still a syntactically valid address.
pub fn hashed_email(email: &str) -> String {
    let digest = Sha256::digest(email.as_bytes());
    format!(
        "anon-{}@anonymized.invalid",
        &crate::audit::chain::hex(&digest)[..24]
    )
}

/// What happens to data past its retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetentionAction {
    /// Delete it.
    Delete,
    /// Keep it, anonymized by these rules.
    Anonymize(Vec<AnonymizationRule>),
}

impl RetentionAction {
    /// `delete` or `anonymize`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Delete => "delete",
            Self::Anonymize(_) => "anonymize",
        }
    }

    /// The rules (empty for `Delete`).
    pub fn rules(&self) -> &[AnonymizationRule] {
        match self {
            Self::Delete => &[],
            Self::Anonymize(rules) => rules,
        }
    }

    /// Rebuilds an action from its stored label and rules.
    pub fn from_parts(label: &str, rules: Vec<AnonymizationRule>) -> Result<Self> {
        match label {
            "delete" => Ok(Self::Delete),
            "anonymize" => Ok(Self::Anonymize(rules)),
            other => Err(Error::validation(
                "action",
                format!("unknown action {other:?}"),
            )),
        }
    }
}

/// Input of [`PrivacyRepo::set_data_policy`](super::PrivacyRepo::set_data_policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDataPolicy {
    /// The category it governs.
    pub category: DataCategory,
    /// How long the data is kept.
    pub retention: RetentionDays,
    /// What happens after.
    pub action: RetentionAction,
}

impl NewDataPolicy {
    /// Checks the anonymization rules against the category: at least one
    /// rule, each naming a personal field of the category once, with a
    /// treatment that field allows.
    pub fn validate(&self) -> Result<()> {
        let RetentionAction::Anonymize(rules) = &self.action else {
            return Ok(());
        };
        let bad = |why: String| Err(Error::validation("anonymization", why));
        if rules.is_empty() {
            return bad("needs at least one rule".into());
        }
        let fields = self.category.personal_fields();
        for (i, rule) in rules.iter().enumerate() {
            let Some((_, allowed)) = fields.iter().find(|(f, _)| *f == rule.field) else {
                return bad(format!(
                    "{:?} is not a personal field of {}",
                    rule.field,
                    self.category.as_str()
                ));
            };
            if !allowed.contains(&rule.treatment.kind()) {
                return bad(format!(
                    "{:?} does not allow {:?}",
                    rule.field,
                    rule.treatment.kind()
                ));
            }
            if let FieldTreatment::Replace { value } = &rule.treatment {
                if value.chars().count() > 200 {
                    return bad("a replacement is at most 200 characters".into());
                }
            }
            if rules[..i].iter().any(|r| r.field == rule.field) {
                return bad(format!("{:?} has two rules", rule.field));
            }
        }
        // An audit entry commits to its personal fields together (see
        // audit::chain), so they can only be erased together.
        if self.category == DataCategory::AuditLogs && rules.len() != fields.len() {
            return bad("audit_logs erases ip and user_agent together".into());
        }
        Ok(())
    }
}

/// A tenant's retention policy for one category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataPolicy {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The category.
    pub category: DataCategory,
    /// How long the data is kept.
    pub retention: RetentionDays,
    /// What happens after.
    pub action: RetentionAction,
    /// When it was last set.
    pub updated_at: DateTime<Utc>,
}

/// What [`PrivacyRepo::enforce_retention`](super::PrivacyRepo::enforce_retention)
/// did for one tenant and category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The category.
    pub category: DataCategory,
    /// Data recorded before this instant was out of retention.
    pub cutoff: DateTime<Utc>,
    /// Rows deleted.
    pub deleted: u64,
    /// Rows anonymized.
    pub anonymized: u64,
    /// `false` when no module stores the category yet (nothing was done).
    pub applied: bool,
}

/// Everything one retention run did, ordered by tenant then category.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// One outcome per policy.
    pub outcomes: Vec<RetentionOutcome>,
}

impl RetentionReport {
    /// The outcome for `tenant` and `category`, if it had a policy.
    pub fn outcome(&self, tenant: TenantId, category: DataCategory) -> Option<&RetentionOutcome> {
        self.outcomes
            .iter()
            .find(|o| o.tenant_id == tenant && o.category == category)
    }
}

/// Input of [`PrivacyRepo::record_consent`](super::PrivacyRepo::record_consent)
/// and [`PrivacyRepo::withdraw_consent`](super::PrivacyRepo::withdraw_consent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentChange {
    /// Whose consent.
    pub user: UserId,
    /// To what.
    pub purpose: ConsentPurpose,
    /// The version of the policy text shown.
    pub policy_version: PolicyVersion,
    /// Where it was given or withdrawn.
    pub source: ConsentSource,
}

/// One entry of a user's consent history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    /// Its id.
    pub id: ConsentId,
    /// The tenant it was given to.
    pub tenant_id: TenantId,
    /// Whose consent.
    pub user_id: UserId,
    /// To what.
    pub purpose: ConsentPurpose,
    /// The policy version.
    pub policy_version: PolicyVersion,
    /// Where.
    pub source: ConsentSource,
    /// `true` when given, `false` when withdrawn.
    pub granted: bool,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
    /// Who recorded it.
    pub recorded_by: Actor,
}

/// What [`PrivacyRepo::erase_user`](super::PrivacyRepo::erase_user) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureReport {
    /// The erased user.
    pub user_id: UserId,
    /// The tenants the user was a member of, ordered by id.
    pub tenants: Vec<TenantId>,
    /// Memberships removed (with their grants and team memberships).
    pub memberships_removed: u64,
    /// Federated identities removed.
    pub identities_removed: u64,
    /// Invitations addressed to the user's email removed.
    pub invitations_removed: u64,
    /// Audit entries whose personal fields were erased.
    pub audit_entries_pseudonymized: u64,
}

/// The email an erased account is left with: unique, and identifying no one.
pub fn erased_email(user: UserId) -> String {
    format!("erased-{user}@erased.invalid")
}
