//! Operations of `PrivacyRepo`.

use super::env::{sorted_names, Env, Outcome};
use super::generate::Gen;
use super::model::{indices, Model};
use super::ops::{Kind, ModuleOp, Ref, Who};
use async_trait::async_trait;
use insightpulse_core::privacy::{
    AnonymizationRule, ConsentChange, DataCategory, FieldTreatment, NewDataPolicy, RetentionAction,
    RetentionDays, TreatmentKind,
};
use insightpulse_core::{ConsentPurpose, ConsentSource, Context, PolicyVersion, Repos, Result};
use std::fmt;

/// One call of `PrivacyRepo`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum PrivacyOp {
    SetDataPolicy {
        category: u8,
        days: u8,
        action: u8,
    },
    ListDataPolicies,
    DeleteDataPolicy {
        category: u8,
    },
    /// `now` is the clock's time plus `ahead_days`, or with `edge_back`
    /// the time of the step that many steps back plus `ahead_days` (a
    /// retention cutoff falling exactly on that step's rows).
    EnforceRetention {
        ahead_days: u16,
        batch: u8,
        edge_back: Option<u8>,
    },
    RecordConsent {
        user: Ref,
        purpose: u8,
        version: u8,
        source: u8,
    },
    WithdrawConsent {
        user: Ref,
        purpose: u8,
        version: u8,
        source: u8,
    },
    HasConsent {
        user: Ref,
        purpose: u8,
    },
    ConsentHistory {
        user: Ref,
    },
    EraseUser {
        user: Ref,
    },
}

const DAYS: &[i64] = &[1, 7, 30, 365, 0];
const BATCHES: &[u32] = &[1, 2, 100, 0];
const PURPOSES: &[&str] = &["marketing", "analytics", "product.research"];
const VERSIONS: &[&str] = &["v1", "2024-05"];
const SOURCES: &[&str] = &["web", "api"];
const ACTIONS: &[&str] = &["delete", "anonymize", "anonymize-nothing"];

fn category(i: u8) -> DataCategory {
    DataCategory::ALL[i as usize % DataCategory::ALL.len()]
}

/// Rules that fit `category`: every personal field, with its first
/// allowed treatment.
fn rules(category: DataCategory) -> Vec<AnonymizationRule> {
    category
        .personal_fields()
        .iter()
        .map(|(field, allowed)| {
            let treatment = match allowed[0] {
                TreatmentKind::Null => FieldTreatment::Null,
                TreatmentKind::Hash => FieldTreatment::Hash,
                TreatmentKind::Replace => FieldTreatment::Replace {
                    value: "[redacted]".to_owned(),
                },
            };
            AnonymizationRule::new(field, treatment)
        })
        .collect()
}

fn policy(category_idx: u8, days: u8, action: u8) -> Result<NewDataPolicy> {
    let category = category(category_idx);
    Ok(NewDataPolicy {
        category,
        retention: RetentionDays::new(DAYS[days as usize % DAYS.len()])?,
        action: match action {
            0 => RetentionAction::Delete,
            1 => RetentionAction::Anonymize(rules(category)),
            _ => RetentionAction::Anonymize(Vec::new()),
        },
    })
}

fn change(env: &mut Env, user: Ref, purpose: u8, version: u8, source: u8) -> Result<ConsentChange> {
    Ok(ConsentChange {
        user: env.id(user),
        purpose: ConsentPurpose::parse(PURPOSES[purpose as usize % PURPOSES.len()])?,
        policy_version: PolicyVersion::parse(VERSIONS[version as usize % VERSIONS.len()])?,
        source: ConsentSource::parse(SOURCES[source as usize % SOURCES.len()])?,
    })
}

impl fmt::Display for PrivacyOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use PrivacyOp::*;
        let consent = |purpose: &u8, version: &u8, source: &u8| {
            format!(
                "purpose={} version={} source={}",
                PURPOSES[*purpose as usize % PURPOSES.len()],
                VERSIONS[*version as usize % VERSIONS.len()],
                SOURCES[*source as usize % SOURCES.len()]
            )
        };
        match self {
            SetDataPolicy {
                category: c,
                days,
                action,
            } => write!(
                f,
                "set_data_policy {} retention={}d action={}",
                category(*c).as_str(),
                DAYS[*days as usize % DAYS.len()],
                ACTIONS[*action as usize % ACTIONS.len()]
            ),
            ListDataPolicies => f.write_str("list_data_policies"),
            DeleteDataPolicy { category: c } => {
                write!(f, "delete_data_policy {}", category(*c).as_str())
            }
            EnforceRetention {
                ahead_days,
                batch,
                edge_back,
            } => write!(
                f,
                "enforce_retention now={}+{ahead_days}d batch_size={}",
                edge_back.map_or("clock".to_owned(), |b| format!("time-of-step-{b}")),
                BATCHES[*batch as usize % BATCHES.len()]
            ),
            RecordConsent {
                user,
                purpose,
                version,
                source,
            } => {
                write!(
                    f,
                    "record_consent {user} {}",
                    consent(purpose, version, source)
                )
            }
            WithdrawConsent {
                user,
                purpose,
                version,
                source,
            } => {
                write!(
                    f,
                    "withdraw_consent {user} {}",
                    consent(purpose, version, source)
                )
            }
            HasConsent { user, purpose } => {
                write!(
                    f,
                    "has_consent {user} {}",
                    PURPOSES[*purpose as usize % PURPOSES.len()]
                )
            }
            ConsentHistory { user } => write!(f, "consent_history {user}"),
            EraseUser { user } => write!(f, "erase_user {user}"),
        }
    }
}

const METHODS: &[&str] = &[
    "set_data_policy",
    "list_data_policies",
    "delete_data_policy",
    "enforce_retention",
    "record_consent",
    "withdraw_consent",
    "has_consent",
    "consent_history",
    "erase_user",
];

const WEIGHTS: &[u32] = &[6, 2, 3, 6, 6, 4, 3, 2, 3];

#[async_trait]
impl ModuleOp for PrivacyOp {
    fn method(&self) -> &'static str {
        use PrivacyOp::*;
        let i = match self {
            SetDataPolicy { .. } => 0,
            ListDataPolicies => 1,
            DeleteDataPolicy { .. } => 2,
            EnforceRetention { .. } => 3,
            RecordConsent { .. } => 4,
            WithdrawConsent { .. } => 5,
            HasConsent { .. } => 6,
            ConsentHistory { .. } => 7,
            EraseUser { .. } => 8,
        };
        METHODS[i]
    }

    fn is_read(&self) -> bool {
        use PrivacyOp::*;
        matches!(
            self,
            ListDataPolicies | HasConsent { .. } | ConsentHistory { .. }
        )
    }

    fn methods() -> &'static [&'static str] {
        METHODS
    }

    fn generate(g: &mut Gen) -> Option<(Who, Self)> {
        use PrivacyOp::*;
        let t = g.tenant();
        let method = g.next_method(METHODS, WEIGHTS, |g, m| match m {
            "withdraw_consent" if !g.model.consented.iter().any(|c| c.0 == t.idx) => {
                Some("record_consent")
            }
            "delete_data_policy" if !g.model.policies.iter().any(|p| p.0 == t.idx) => {
                Some("set_data_policy")
            }
            _ => None,
        })?;
        let op = match method {
            "set_data_policy" => SetDataPolicy {
                // Mostly the categories that are stored.
                category: match g.below(20) {
                    0..=10 => 0,
                    11..=16 => 1,
                    _ => g.small(7),
                },
                days: match g.below(20) {
                    0..=7 => 0,
                    8 => 4,
                    _ => g.small(4),
                },
                action: if g.chance(0.05) { 2 } else { g.small(2) },
            },
            "list_data_policies" => ListDataPolicies,
            "delete_data_policy" => {
                let set: Vec<u8> = g
                    .model
                    .policies
                    .iter()
                    .filter(|p| p.0 == t.idx)
                    .map(|p| p.1)
                    .collect();
                let category = if !set.is_empty() && g.chance(0.85) {
                    g.pick(&set)
                } else {
                    g.small(7)
                };
                DeleteDataPolicy { category }
            }
            "enforce_retention" => {
                let who = if g.chance(0.85) {
                    Who::System(None)
                } else {
                    g.actor(t)
                };
                let edge_back = g.maybe(0.3, |g| 1 + g.small(8));
                let ahead_days = if edge_back.is_some() {
                    g.pick(&[1u16, 7, 30, 365])
                } else {
                    g.pick(&[0u16, 0, 1, 8, 31, 400])
                };
                let batch = if g.chance(0.05) { 3 } else { g.small(3) };
                let op = EnforceRetention {
                    ahead_days,
                    batch,
                    edge_back,
                };
                return Some((who, op));
            }
            "record_consent" => RecordConsent {
                user: g.member(t),
                purpose: g.small(3),
                version: g.small(2),
                source: g.small(2),
            },
            "withdraw_consent" => {
                let given: Vec<(u32, u8)> = g
                    .model
                    .consented
                    .iter()
                    .filter(|c| c.0 == t.idx)
                    .map(|c| (c.1, c.2))
                    .collect();
                let (user, purpose) = if !given.is_empty() && g.chance(0.85) {
                    let (u, p) = g.pick(&given);
                    (Ref::new(Kind::User, u), p)
                } else {
                    (g.member(t), g.small(3))
                };
                WithdrawConsent {
                    user,
                    purpose,
                    version: g.small(2),
                    source: g.small(2),
                }
            }
            "has_consent" => HasConsent {
                user: g.member(t),
                purpose: g.small(3),
            },
            "consent_history" => ConsentHistory { user: g.member(t) },
            _ => {
                // Mostly someone who is nobody's last active owner.
                let erasable: Vec<u32> = indices(&g.model.users, |u| u.alive && u.email.is_some())
                    .into_iter()
                    .filter(|u| {
                        g.model.members.iter().all(|((tt, uu), m)| {
                            *uu != *u
                                || !m.owner
                                || m.suspended
                                || g.model.members.iter().any(|((t2, u2), m2)| {
                                    t2 == tt && u2 != uu && m2.owner && !m2.suspended
                                })
                        })
                    })
                    .collect();
                let user = if !erasable.is_empty() && g.chance(0.8) {
                    Ref::new(Kind::User, g.pick(&erasable))
                } else {
                    g.plain_member(t)
                };
                let who = match g.below(10) {
                    0..=4 => Who::System(None),
                    5..=7 => Who::User(user, None),
                    _ => g.actor(t),
                };
                return Some((who, EraseUser { user }));
            }
        };
        // Consents: the user themselves half of the time.
        let who = match &op {
            RecordConsent { user, .. } | WithdrawConsent { user, .. } | HasConsent { user, .. }
                if user.kind == Kind::User && g.chance(0.4) =>
            {
                Who::User(*user, Some(t))
            }
            _ => g.actor(t),
        };
        Some((who, op))
    }

    fn observe(&self, by: &Who, m: &mut Model, ok: bool) {
        use PrivacyOp::*;
        if !ok {
            return;
        }
        let tenant = match by {
            Who::User(_, Some(t)) | Who::System(Some(t)) => Some(t.idx),
            Who::Key(k) => m.keys.get(k.idx as usize).map(|k| k.tenant),
            _ => None,
        };
        match (self, tenant) {
            (EraseUser { user }, _) => {
                m.forget_user(user.idx);
                m.consented.retain(|c| c.1 != user.idx);
                if let Some(u) = m.users.get_mut(user.idx as usize) {
                    u.email = None;
                    u.password = None;
                }
            }
            (RecordConsent { user, purpose, .. }, Some(t)) => {
                m.consented.insert((t, user.idx, *purpose));
            }
            (WithdrawConsent { user, purpose, .. }, Some(t)) => {
                m.consented.remove(&(t, user.idx, *purpose));
            }
            (SetDataPolicy { category, .. }, Some(t)) => {
                m.policies.insert((t, *category));
            }
            (DeleteDataPolicy { category }, Some(t)) => {
                m.policies.remove(&(t, *category));
            }
            _ => {}
        }
    }

    async fn apply(&self, ctx: &Context, env: &mut Env, repos: &Repos) -> Outcome {
        use PrivacyOp::*;
        let privacy = &repos.privacy;
        match self {
            SetDataPolicy {
                category: c,
                days,
                action,
            } => {
                let r = match policy(*c, *days, *action) {
                    Ok(p) => privacy.set_data_policy(ctx, p).await,
                    Err(e) => Err(e),
                };
                env.outcome(r)
            }
            ListDataPolicies => {
                let r = privacy.list_data_policies(ctx).await;
                env.outcome(r)
            }
            DeleteDataPolicy { category: c } => {
                let r = privacy.delete_data_policy(ctx, category(*c)).await;
                env.outcome(r)
            }
            EnforceRetention {
                ahead_days,
                batch,
                edge_back,
            } => {
                let base = edge_back
                    .and_then(|b| env.times.len().checked_sub(1 + usize::from(b)))
                    .and_then(|i| env.times.get(i).copied())
                    .unwrap_or(env.now);
                let now = base + chrono::Duration::days(i64::from(*ahead_days));
                let r = privacy
                    .enforce_retention(ctx, now, BATCHES[*batch as usize % BATCHES.len()])
                    .await;
                // The report's order (by tenant id) differs between backends.
                let r = r.map(|report| sorted_names(env, &report.outcomes));
                env.outcome_text(r)
            }
            RecordConsent {
                user,
                purpose,
                version,
                source,
            } => {
                let r = match change(env, *user, *purpose, *version, *source) {
                    Ok(c) => privacy.record_consent(ctx, c).await,
                    Err(e) => Err(e),
                };
                if let Ok(c) = &r {
                    let n = env.step as u32;
                    env.bind(Ref::new(Kind::Consent, n), c.id);
                }
                env.outcome(r)
            }
            WithdrawConsent {
                user,
                purpose,
                version,
                source,
            } => {
                let r = match change(env, *user, *purpose, *version, *source) {
                    Ok(c) => privacy.withdraw_consent(ctx, c).await,
                    Err(e) => Err(e),
                };
                if let Ok(c) = &r {
                    let n = env.step as u32;
                    env.bind(Ref::new(Kind::Consent, n), c.id);
                }
                env.outcome(r)
            }
            HasConsent { user, purpose } => {
                let u = env.id(*user);
                let r = match ConsentPurpose::parse(PURPOSES[*purpose as usize % PURPOSES.len()]) {
                    Ok(p) => privacy.has_consent(ctx, u, &p).await,
                    Err(e) => Err(e),
                };
                env.outcome(r)
            }
            ConsentHistory { user } => {
                let u = env.id(*user);
                let r = privacy.consent_history(ctx, u).await;
                env.outcome(r)
            }
            EraseUser { user } => {
                let u = env.id(*user);
                let r = privacy.erase_user(ctx, u).await;
                // Its tenants come in id order: compare them as a set.
                let r = r.map(|mut report| {
                    let tenants = sorted_names(env, &report.tenants);
                    report.tenants.clear();
                    format!("{} tenants={tenants}", env.norm(&report))
                });
                env.outcome_text(r)
            }
        }
    }
}
