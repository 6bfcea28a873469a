//! Operations of `AuditRepo`.

use super::env::{Env, Outcome};
use super::generate::Gen;
use super::model::Model;
use super::ops::{Kind, ModuleOp, Ref, Who};
use async_trait::async_trait;
use insightpulse_core::audit::{ActorFilter, AuditEvent, AuditQuery};
use insightpulse_core::{AuditAction, Context, Repos, Result, TargetType};
use std::fmt;

/// A filter of the audit report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// None.
    Nothing,
    /// An action, by index into [`ACTIONS`].
    Action(u8),
    /// Entries of this user.
    User(Ref),
    /// Entries of this key.
    Key(Ref),
    /// Entries of the system.
    System,
    /// A target type (and id), by index into [`TARGETS`].
    Target(u8),
}

/// One call of `AuditRepo`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum AuditOp {
    Record {
        entry: Ref,
        action: u8,
        target: u8,
        diff: u8,
    },
    /// Follows `next` for up to `pages` pages.
    Query {
        days: u8,
        limit: u8,
        filter: Filter,
        pages: u8,
    },
    VerifyChain,
}

/// Actions; the last is invalid.
pub const ACTIONS: &[&str] = &[
    "invoice.paid",
    "report.exported",
    "project.created",
    "member.invited",
    "Not An Action",
];

/// `(target_type, target_id)`; 3 has an empty id (invalid), 4 a NUL
/// character, 5 and 6 `LIKE` wildcards.
pub const TARGETS: &[(&str, Option<&str>)] = &[
    ("invoice", Some("inv-1")),
    ("report", None),
    ("project", None),
    ("invoice", Some("")),
    ("invoice", Some("inv\u{0}1")),
    ("invoice", Some("inv%")),
    ("invoice", Some("inv_1")),
];

const DAYS: &[u32] = &[1, 7, 30, 3_650, 0, 3_651];
const LIMITS: &[u32] = &[1, 3, 50, 1_000, 0, 1_001];

/// Diffs; 2 names a secret and 3 is not an object (both invalid), 4
/// holds a NUL character, 5 floats JSON may write as integers.
fn diff(i: u8) -> serde_json::Value {
    use serde_json::json;
    match i {
        0 => json!({}),
        1 => json!({"amount": 1200, "currency": "EUR"}),
        2 => json!({"password": "hunter2"}),
        3 => json!([1]),
        4 => json!({"note": "nul\u{0}byte"}),
        _ => json!({"ratio": 1e16, "n": 1.0}),
    }
}

impl fmt::Display for AuditOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Record {
                entry,
                action,
                target,
                diff: d,
            } => {
                let (tt, tid) = TARGETS[*target as usize % TARGETS.len()];
                write!(
                    f,
                    "record {entry} action={} target={tt}/{tid:?} diff={}",
                    ACTIONS[*action as usize % ACTIONS.len()],
                    diff(*d)
                )
            }
            Self::Query {
                days,
                limit,
                filter,
                pages,
            } => write!(
                f,
                "query last_days={} limit={} filter={} pages={pages}",
                DAYS[*days as usize % DAYS.len()],
                LIMITS[*limit as usize % LIMITS.len()],
                match filter {
                    Filter::Nothing => "none".to_owned(),
                    Filter::Action(a) => format!("action {}", ACTIONS[*a as usize % ACTIONS.len()]),
                    Filter::User(u) => format!("user {u}"),
                    Filter::Key(k) => format!("api_key {k}"),
                    Filter::System => "system".to_owned(),
                    Filter::Target(t) =>
                        format!("target {:?}", TARGETS[*t as usize % TARGETS.len()]),
                }
            ),
            Self::VerifyChain => f.write_str("verify_chain"),
        }
    }
}

const METHODS: &[&str] = &["record", "query", "verify_chain"];

#[async_trait]
impl ModuleOp for AuditOp {
    fn method(&self) -> &'static str {
        match self {
            Self::Record { .. } => METHODS[0],
            Self::Query { .. } => METHODS[1],
            Self::VerifyChain => METHODS[2],
        }
    }

    fn is_read(&self) -> bool {
        !matches!(self, Self::Record { .. })
    }

    fn methods() -> &'static [&'static str] {
        METHODS
    }

    fn generate(g: &mut Gen) -> Option<(Who, Self)> {
        let t = g.tenant();
        let op = match METHODS
            .iter()
            .position(|m| *m == g.method(METHODS, &[5, 6, 3]))
        {
            Some(0) => {
                let entry = g.fresh(Kind::Entry, g.model.entries as usize);
                g.model.entries += 1;
                Self::Record {
                    entry,
                    action: if g.chance(0.05) { 4 } else { g.small(4) },
                    target: if g.chance(0.15) {
                        3 + g.small(4)
                    } else {
                        g.small(3)
                    },
                    diff: if g.chance(0.1) {
                        2 + g.small(4)
                    } else {
                        g.small(2)
                    },
                }
            }
            Some(1) => {
                let filter = match g.below(10) {
                    0..=4 => Filter::Nothing,
                    5 => Filter::Action(g.small(ACTIONS.len() as u8)),
                    6 => Filter::User(g.member(t)),
                    7 => {
                        let k = g.below(g.model.keys.len().max(1)) as u32;
                        Filter::Key(Ref::new(Kind::Key, k))
                    }
                    8 => Filter::System,
                    _ => Filter::Target(g.small(TARGETS.len() as u8)),
                };
                Self::Query {
                    days: if g.chance(0.05) {
                        4 + g.small(2)
                    } else {
                        g.small(4)
                    },
                    limit: if g.chance(0.05) {
                        4 + g.small(2)
                    } else {
                        g.small(4)
                    },
                    filter,
                    pages: 1 + g.small(3),
                }
            }
            _ => Self::VerifyChain,
        };
        Some((g.actor(t), op))
    }

    fn observe(&self, _by: &Who, _m: &mut Model, _ok: bool) {}

    async fn apply(&self, ctx: &Context, env: &mut Env, repos: &Repos) -> Outcome {
        match self {
            Self::Record {
                entry,
                action,
                target,
                diff: d,
            } => {
                let (tt, tid) = TARGETS[*target as usize % TARGETS.len()];
                let event =
                    AuditEvent::new(ACTIONS[*action as usize % ACTIONS.len()], tt, tid, diff(*d));
                let r = match event {
                    Ok(event) => repos.audit.record_event(ctx, event).await,
                    Err(e) => Err(e),
                };
                if let Ok(id) = &r {
                    env.bind(*entry, *id);
                }
                env.outcome(r)
            }
            Self::Query {
                days,
                limit,
                filter,
                pages,
            } => {
                let q = query(env, *days, *limit, *filter);
                let mut q = match q {
                    Ok(q) => q,
                    Err(e) => return env.outcome::<()>(Err(e)),
                };
                let mut out = Vec::new();
                for _ in 0..*pages {
                    match repos.audit.query_entries(ctx, q.clone()).await {
                        Ok(page) => {
                            let next = page.next;
                            out.push(env.norm(&page));
                            match next {
                                Some(cursor) => q = q.after(cursor),
                                None => break,
                            }
                        }
                        Err(e) if out.is_empty() => return env.outcome::<()>(Err(e)),
                        Err(e) => {
                            let err = env.outcome::<()>(Err(e));
                            out.push(format!("then {err}"));
                            break;
                        }
                    }
                }
                Outcome::Ok(out.join(" / "))
            }
            Self::VerifyChain => {
                let r = repos.audit.verify_chain(ctx).await;
                env.outcome(r)
            }
        }
    }
}

fn query(env: &mut Env, days: u8, limit: u8, filter: Filter) -> Result<AuditQuery> {
    let mut q = AuditQuery::last_days(DAYS[days as usize % DAYS.len()])
        .limit(LIMITS[limit as usize % LIMITS.len()]);
    match filter {
        Filter::Nothing => {}
        Filter::Action(a) => q = q.action(AuditAction::parse(ACTIONS[a as usize % ACTIONS.len()])?),
        Filter::User(u) => q = q.actor(ActorFilter::User(env.id(u))),
        Filter::Key(k) => q = q.actor(ActorFilter::ApiKey(env.id(k))),
        Filter::System => q = q.actor(ActorFilter::System),
        Filter::Target(t) => {
            let (tt, tid) = TARGETS[t as usize % TARGETS.len()];
            q = q.target(TargetType::parse(tt)?, tid.map(str::to_owned));
        }
    }
    Ok(q)
}
