//! Operations of `JobRepo`.
//!
//! A claim is where the backends may legitimately differ, and the
//! operations are shaped so that they cannot:
//!
//! * Both walk the tenants with waiting jobs from a *random* point of the
//!   uuid ring and take at most `limit` of them, so with fewer slots than
//!   tenants *which* tenants get jobs is chance. A generated claim's limit
//!   is therefore at least the number of tenants that ever had a job of
//!   its kind (the model's superset of those with waiting jobs), and
//!   claims are never replayed as client retries (a later replay could
//!   meet more tenants).
//! * Ties on `(priority, run_at)` are broken by job id, which differs
//!   between backends; a lease expiry or a release puts several jobs back
//!   at the same instant, so such ties are common. Every enqueue therefore
//!   gets a priority no other step has: its band (−1, 0, 1, ×4000, so
//!   lower still runs first) plus its step's index. What a claim takes is
//!   then fixed by the rules alone. (Ordering by `run_at` among equal
//!   priorities is left to the conformance suite.)
//! * A claim's jobs come back in no promised order: compared sorted.
//! * `purge_jobs` deletes *some* `limit` finished jobs: only limits above
//!   what can be finished are generated, so it deletes all of them.
//!
//! A failure's delay is what a worker computes with
//! [`RetryPolicy::delay`] from the attempt and a jitter share drawn by the
//! generator (the worker draws it at random; the repository only stores
//! `now + retry_in`), so both backends get the same delay and the retry's
//! `run_at` is compared exactly.

use super::env::{sorted_names, Env, Outcome};
use super::generate::Gen;
use super::model::{acting_tenant, made, rows, Model, Row};
use super::ops::{Kind, ModuleOp, Ref, Who};
use async_trait::async_trait;
use insightpulse_core::jobs::{
    CancelFilter, ClaimRequest, Failure, JobKey, JobKind, JobPage, JobQuery, JobState, KeyMode,
    Lease, NewJob, RetryPolicy,
};
use insightpulse_core::{Context, Repos, Result, TenantId};
use std::fmt;

/// Which leases of a claim a worker call sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Every lease of the claim.
    All,
    /// One (by index, modulo how many).
    One(u8),
    /// Every lease with the next attempt's number (stale unless the job
    /// was released and claimed again).
    Stale,
    /// Every lease, naming a tenant that does not exist.
    Forged,
}

impl fmt::Display for Pick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("all"),
            Self::One(i) => write!(f, "lease #{i}"),
            Self::Stale => f.write_str("all, attempt+1"),
            Self::Forged => f.write_str("all, forged tenant"),
        }
    }
}

/// One call of `JobRepo`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum JobOp {
    /// Priority: `band`·4000 plus the step's index (see the module docs).
    EnqueueJob {
        job: Ref,
        kind: u8,
        payload: u8,
        band: i8,
        run_in: u8,
        attempts: u8,
        key: Option<(u8, u8)>,
    },
    GetJob {
        job: Ref,
    },
    ClaimJobs {
        claim: Ref,
        kind: u8,
        worker: u8,
        limit: u32,
        lease: u8,
        per_tenant: Option<u32>,
    },
    CompleteJobs {
        claim: Ref,
        pick: Pick,
    },
    /// Each failure waits `RetryPolicy::default().delay(attempt, jitter/256)`.
    FailJobs {
        claim: Ref,
        pick: Pick,
        error: u8,
        jitter: u8,
    },
    ReleaseJobs {
        claim: Ref,
        pick: Pick,
    },
    /// Renews the picked leases by `LEASES[lease]`.
    ExtendLeases {
        claim: Ref,
        pick: Pick,
        lease: u8,
    },
    /// Up to `pages` pages of the tenant's jobs, each following the last
    /// page's cursor.
    ListJobs {
        state: Option<u8>,
        kind: Option<u8>,
        limit: u8,
        pages: u8,
    },
    RetryJob {
        job: Ref,
    },
    CancelJobs {
        kind: Option<u8>,
        tenant: Option<Ref>,
        key: Option<u8>,
    },
    /// `cutoff` is the time of the step `back` steps before this one moved
    /// by `nudge` microseconds.
    PurgeJobs {
        back: u8,
        nudge: i8,
        limit: u32,
    },
}

/// Kinds; the last is invalid.
const KINDS: &[&str] = &["ocr.run", "webhook.deliver", "Bad Kind"];
/// Job keys; the last is invalid.
const KEYS: &[&str] = &["doc-1", "doc-2", "sync:integration-42", "bad\nkey"];
const MODES: [KeyMode; 3] = [KeyMode::Replace, KeyMode::PreserveRunAt, KeyMode::Dedupe];
/// `run_at` from now, in seconds (`None`: not set).
const RUN_IN: &[Option<i64>] = &[None, Some(30), Some(3_600), Some(86_400), Some(-3_600)];
/// Attempts; the last two are out of bounds.
const ATTEMPTS: &[u32] = &[1, 2, 3, 10, 0, 1_001];
/// Leases in seconds; the last two are out of bounds.
const LEASES: &[i64] = &[30, 600, 3_600, 0, 2 * 86_400];
/// Workers; the last is invalid.
const WORKERS: &[&str] = &["w1", "w2", ""];
/// Failure messages: 1 is over the 2,000 stored characters, 2 holds a NUL.
const ERRORS: &[&str] = &["boom", "", "nul\u{0}byte"];
const STATES: [JobState; 5] = [
    JobState::Pending,
    JobState::Running,
    JobState::Completed,
    JobState::Dead,
    JobState::Cancelled,
];
/// Page sizes of `list_jobs`; the last two are out of bounds.
const PAGE_LIMITS: &[u32] = &[1, 2, 50, 0, 1_001];

fn error_text(i: u8) -> String {
    match i % 3 {
        1 => "é".repeat(2_500),
        n => ERRORS[n as usize].to_owned(),
    }
}

/// Payloads: 2 holds keys `jsonb` reorders, 3 floats JSON may write as
/// integers, 4 a NUL character (invalid).
fn payload(i: u8) -> serde_json::Value {
    use serde_json::json;
    match i {
        0 => json!({"doc": 7}),
        1 => json!({}),
        2 => json!({"z": 1, "a": [true, "é"], "m": {"b": 2, "a": 1}}),
        3 => json!({"ratio": 1e16, "n": 1.0, "neg": -0.0}),
        _ => json!({"note": "nul\u{0}byte"}),
    }
}

fn kind(i: u8) -> Result<JobKind> {
    JobKind::parse(KINDS[i as usize % KINDS.len()])
}

fn key(i: u8) -> Result<JobKey> {
    JobKey::parse(KEYS[i as usize % KEYS.len()])
}

/// The priority of an enqueue at step `step` (unique per step).
fn priority(band: i8, step: usize) -> i16 {
    i16::from(band) * 4_000 + (step % 4_000) as i16
}

impl fmt::Display for JobOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use JobOp::*;
        let kind = |k: &u8| KINDS[*k as usize % KINDS.len()];
        match self {
            EnqueueJob {
                job,
                kind: k,
                payload: p,
                band,
                run_in,
                attempts,
                key: jk,
            } => {
                write!(
                    f,
                    "enqueue_job {job} kind={} payload={} priority={}+step max_attempts={}",
                    kind(k),
                    payload(*p),
                    i16::from(*band) * 4_000,
                    ATTEMPTS[*attempts as usize % ATTEMPTS.len()]
                )?;
                if let Some(s) = RUN_IN[*run_in as usize % RUN_IN.len()] {
                    write!(f, " run_at=now{s:+}s")?;
                }
                if let Some((k, m)) = jk {
                    write!(
                        f,
                        " key={:?} mode={}",
                        KEYS[*k as usize % KEYS.len()],
                        MODES[*m as usize % 3].as_str()
                    )?;
                }
                Ok(())
            }
            GetJob { job } => write!(f, "get_job {job}"),
            ClaimJobs {
                claim,
                kind: k,
                worker,
                limit,
                lease,
                per_tenant,
            } => {
                write!(
                    f,
                    "claim_jobs {claim} kind={} worker={:?} limit={limit} lease={}s",
                    kind(k),
                    WORKERS[*worker as usize % WORKERS.len()],
                    LEASES[*lease as usize % LEASES.len()]
                )?;
                if let Some(n) = per_tenant {
                    write!(f, " per_tenant_limit={n}")?;
                }
                Ok(())
            }
            CompleteJobs { claim, pick } => write!(f, "complete_jobs {claim} ({pick})"),
            FailJobs {
                claim,
                pick,
                error,
                jitter,
            } => write!(
                f,
                "fail_jobs {claim} ({pick}) error=<{} chars> retry_in=policy(attempt, {jitter}/256)",
                error_text(*error).chars().count()
            ),
            ReleaseJobs { claim, pick } => write!(f, "release_jobs {claim} ({pick})"),
            ExtendLeases { claim, pick, lease } => write!(
                f,
                "extend_leases {claim} ({pick}) lease={}s",
                LEASES[*lease as usize % LEASES.len()]
            ),
            ListJobs {
                state,
                kind: k,
                limit,
                pages,
            } => write!(
                f,
                "list_jobs state={:?} kind={:?} limit={} pages={pages}",
                state.map(|s| STATES[s as usize % STATES.len()].as_str()),
                k.map(|k| kind(&k)),
                PAGE_LIMITS[*limit as usize % PAGE_LIMITS.len()]
            ),
            RetryJob { job } => write!(f, "retry_job {job}"),
            CancelJobs {
                kind: k,
                tenant,
                key: jk,
            } => write!(
                f,
                "cancel_jobs kind={:?} tenant={} key={:?}",
                k.map(|k| kind(&k)),
                tenant.map_or("-".to_owned(), |t| t.to_string()),
                jk.map(|k| KEYS[k as usize % KEYS.len()])
            ),
            PurgeJobs { back, nudge, limit } => write!(
                f,
                "purge_jobs cutoff=time-of-step-{back}{nudge:+}us limit={limit}"
            ),
        }
    }
}

const METHODS: &[&str] = &[
    "enqueue_job",
    "get_job",
    "claim_jobs",
    "complete_jobs",
    "fail_jobs",
    "release_jobs",
    "cancel_jobs",
    "purge_jobs",
    "extend_leases",
    "list_jobs",
    "retry_job",
];

const WEIGHTS: &[u32] = &[12, 5, 8, 4, 4, 2, 2, 2, 3, 3, 3];

/// The caller of a worker call: mostly the system without a tenant, as
/// workers run.
fn worker(g: &mut Gen, t: Ref) -> Who {
    match g.below(10) {
        0..=7 => Who::System(None),
        8 => Who::System(Some(t)),
        _ => g.actor(t),
    }
}

/// A claim whose leases a worker call sends: mostly a recent one that
/// succeeded.
fn claim(g: &mut Gen) -> Ref {
    let ok: Vec<u32> = g
        .model
        .claims
        .iter()
        .enumerate()
        .filter(|(_, took)| took.is_some())
        .map(|(i, _)| i as u32)
        .collect();
    let recent = &ok[ok.len().saturating_sub(2)..];
    let idx = if let Some(c) = g.model.unsettled.filter(|_| g.chance(0.8)) {
        c
    } else if !recent.is_empty() && g.chance(0.8) {
        g.pick(recent)
    } else if !ok.is_empty() && g.chance(0.8) {
        g.pick(&ok)
    } else {
        g.below(g.model.claims.len().max(1)) as u32
    };
    Ref::new(Kind::Claim, idx)
}

fn pick(g: &mut Gen) -> Pick {
    match g.below(20) {
        0..=12 => Pick::All,
        13..=16 => Pick::One(g.small(4)),
        17 | 18 => Pick::Stale,
        _ => Pick::Forged,
    }
}

/// The leases `pick` sends from `claim`'s.
fn leases(env: &mut Env, claim: Ref, pick: Pick) -> Vec<Lease> {
    let all = env.leases(claim);
    match pick {
        Pick::All => all,
        Pick::One(i) if !all.is_empty() => vec![all[i as usize % all.len()]],
        Pick::One(_) => Vec::new(),
        Pick::Stale => all
            .into_iter()
            .map(|l| Lease {
                attempt: l.attempt + 1,
                ..l
            })
            .collect(),
        Pick::Forged => {
            let ghost: TenantId = env.id(Ref::ghost(Kind::Tenant));
            all.into_iter()
                .map(|l| Lease {
                    tenant_id: ghost,
                    ..l
                })
                .collect()
        }
    }
}

#[async_trait]
impl ModuleOp for JobOp {
    fn method(&self) -> &'static str {
        use JobOp::*;
        let i = match self {
            EnqueueJob { .. } => 0,
            GetJob { .. } => 1,
            ClaimJobs { .. } => 2,
            CompleteJobs { .. } => 3,
            FailJobs { .. } => 4,
            ReleaseJobs { .. } => 5,
            CancelJobs { .. } => 6,
            PurgeJobs { .. } => 7,
            ExtendLeases { .. } => 8,
            ListJobs { .. } => 9,
            RetryJob { .. } => 10,
        };
        METHODS[i]
    }

    fn is_read(&self) -> bool {
        matches!(self, Self::GetJob { .. } | Self::ListJobs { .. })
    }

    fn methods() -> &'static [&'static str] {
        METHODS
    }

    fn generate(g: &mut Gen) -> Option<(Who, Self)> {
        use JobOp::*;
        let t = g.tenant();
        let method = g.next_method(METHODS, WEIGHTS, |g, m| match m {
            "enqueue_job" | "cancel_jobs" | "purge_jobs" => None,
            "complete_jobs" | "fail_jobs" | "release_jobs" | "extend_leases"
                if !g.model.claims.iter().any(Option::is_some) =>
            {
                Some("claim_jobs")
            }
            "claim_jobs" if g.model.waiting.values().all(|n| *n == 0) => Some("enqueue_job"),
            "get_job" | "list_jobs" | "retry_job" if g.live_in(&rows(&g.model.jobs), t) == 0 => {
                Some("enqueue_job")
            }
            _ => None,
        })?;
        let kind = |g: &mut Gen| if g.chance(0.03) { 2 } else { g.small(2) };
        // A worker mostly settles what it just claimed.
        let method = match (method, g.model.unsettled) {
            ("enqueue_job" | "get_job" | "claim_jobs", Some(_)) if g.chance(0.6) => g.pick(&[
                "complete_jobs",
                "complete_jobs",
                "fail_jobs",
                "fail_jobs",
                "release_jobs",
            ]),
            _ => method,
        };
        let op = match method {
            "enqueue_job" => {
                let job = g.fresh(Kind::Job, g.model.jobs.len());
                g.model.jobs.push(Row {
                    tenant: t.idx,
                    alive: false,
                });
                let op = EnqueueJob {
                    job,
                    kind: kind(g),
                    payload: if g.chance(0.03) { 4 } else { g.small(4) },
                    band: g.pick(&[-1, 0, 0, 1]),
                    run_in: match g.below(10) {
                        0..=6 => 0,
                        _ => 1 + g.small(4),
                    },
                    attempts: match g.below(30) {
                        0 => 4 + g.small(2),
                        _ => g.small(4),
                    },
                    // Mostly the same key, so that modes meet a waiting job.
                    key: g.maybe(0.5, |g| {
                        let k = match g.below(30) {
                            0 => 3,
                            1..=17 => 0,
                            18..=25 => 1,
                            _ => 2,
                        };
                        (k, g.small(3))
                    }),
                };
                // Only the system enqueues: the others are refused.
                let who = if g.chance(0.85) {
                    Who::System(Some(t))
                } else {
                    g.actor(t)
                };
                return Some((who, op));
            }
            "get_job" => {
                let job = g.row_in(Kind::Job, &rows(&g.model.jobs), t);
                let who = if g.chance(0.3) {
                    Who::System(Some(t))
                } else {
                    g.actor(t)
                };
                return Some((who, GetJob { job }));
            }
            "list_jobs" => {
                let op = ListJobs {
                    state: g.maybe(0.4, |g| g.small(5)),
                    kind: g.maybe(0.3, kind),
                    limit: if g.chance(0.05) {
                        3 + g.small(2)
                    } else {
                        g.small(3)
                    },
                    pages: 1 + g.small(3),
                };
                let who = if g.chance(0.3) {
                    Who::System(Some(t))
                } else {
                    g.actor(t)
                };
                return Some((who, op));
            }
            "retry_job" => {
                let job = g.row_in(Kind::Job, &rows(&g.model.jobs), t);
                // An operator's action through the system; members are refused.
                let who = if g.chance(0.8) {
                    Who::System(Some(t))
                } else {
                    g.actor(t)
                };
                return Some((who, RetryJob { job }));
            }
            "claim_jobs" => {
                let claim = g.fresh(Kind::Claim, g.model.claims.len());
                g.model.claims.push(None);
                // Mostly a kind with jobs waiting.
                let waiting: Vec<u8> = g
                    .model
                    .waiting
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|(k, _)| *k)
                    .collect();
                let kind = if !waiting.is_empty() && g.chance(0.85) {
                    g.pick(&waiting)
                } else {
                    kind(g)
                };
                // At least as many slots as tenants that may have waiting
                // jobs of the kind (see the module docs).
                let tenants = g
                    .model
                    .job_tenants
                    .iter()
                    .filter(|(k, _)| *k == kind)
                    .count();
                let limit = match g.below(30) {
                    0 => 0,
                    1 => 1_001,
                    _ => g.pick(&[1u32, 2, 3, 1_000, 1_000]).max(tenants as u32),
                };
                ClaimJobs {
                    claim,
                    kind,
                    worker: if g.chance(0.03) { 2 } else { g.small(2) },
                    limit,
                    lease: if g.chance(0.05) {
                        3 + g.small(2)
                    } else {
                        g.small(3)
                    },
                    per_tenant: g.maybe(0.3, |g| g.pick(&[1, 1, 2, 0])),
                }
            }
            "complete_jobs" => CompleteJobs {
                claim: claim(g),
                pick: pick(g),
            },
            "fail_jobs" => FailJobs {
                claim: claim(g),
                pick: pick(g),
                error: g.small(3),
                jitter: g.small(255),
            },
            "release_jobs" => ReleaseJobs {
                claim: claim(g),
                pick: pick(g),
            },
            "extend_leases" => ExtendLeases {
                claim: claim(g),
                pick: pick(g),
                lease: if g.chance(0.05) {
                    3 + g.small(2)
                } else {
                    g.small(3)
                },
            },
            "cancel_jobs" => {
                let tenant = g.maybe(0.5, |g| if g.chance(0.9) { t } else { g.tenant() });
                let mut kind = g.maybe(0.6, kind);
                let key = g.maybe(0.4, |g| g.small(3));
                if kind.is_none() && tenant.is_none() && key.is_none() && g.chance(0.7) {
                    kind = Some(0);
                }
                CancelJobs { kind, tenant, key }
            }
            _ => {
                let back = match g.below(2) {
                    0 => 0,
                    _ => g.small(g.index().min(12) as u8 + 1),
                };
                PurgeJobs {
                    back,
                    nudge: g.pick(&[-1, 0, 0, 1]),
                    limit: if g.chance(0.05) { 0 } else { 1_000 },
                }
            }
        };
        Some((worker(g, t), op))
    }

    fn observe(&self, by: &Who, m: &mut Model, ok: bool) {
        use JobOp::*;
        match self {
            EnqueueJob {
                job, kind, run_in, ..
            } if ok => {
                let t = acting_tenant(by, m);
                made(&mut m.jobs, *job, t);
                if let Some(t) = t {
                    m.job_tenants.insert((*kind, t));
                }
                let due = RUN_IN[*run_in as usize % RUN_IN.len()].is_none_or(|s| s <= 0);
                if due {
                    *m.waiting.entry(*kind).or_default() += 1;
                }
            }
            ClaimJobs {
                claim, kind, limit, ..
            } => {
                let waiting = m.waiting.entry(*kind).or_default();
                let took = (ok && *waiting > 0).then_some(*kind);
                if ok {
                    *waiting = waiting.saturating_sub(*limit);
                }
                if let Some(c) = m.claims.get_mut(claim.idx as usize) {
                    *c = took;
                }
                if took.is_some() {
                    m.unsettled = Some(claim.idx);
                }
            }
            CompleteJobs { claim, .. } | ReleaseJobs { claim, .. } | FailJobs { claim, .. }
                if ok =>
            {
                if m.unsettled == Some(claim.idx) {
                    m.unsettled = None;
                }
                // Released jobs are due again at once.
                let back = matches!(self, ReleaseJobs { .. });
                if let (true, Some(Some(k))) = (back, m.claims.get(claim.idx as usize)) {
                    *m.waiting.entry(*k).or_default() += 1;
                }
            }
            _ => {}
        }
    }

    async fn apply(&self, ctx: &Context, env: &mut Env, repos: &Repos) -> Outcome {
        use JobOp::*;
        let jobs = &repos.jobs;
        match self {
            EnqueueJob {
                job,
                kind: k,
                payload: p,
                band,
                run_in,
                attempts,
                key: jk,
            } => {
                let new = (|| {
                    let mut new = NewJob::new(kind(*k)?, payload(*p))
                        .with_priority(priority(*band, env.step))
                        .with_max_attempts(ATTEMPTS[*attempts as usize % ATTEMPTS.len()]);
                    if let Some(s) = RUN_IN[*run_in as usize % RUN_IN.len()] {
                        new = new.run_at(env.now + chrono::Duration::seconds(s));
                    }
                    if let Some((kk, m)) = jk {
                        new = new.with_key(key(*kk)?, MODES[*m as usize % 3]);
                    }
                    Ok(new)
                })();
                let r = match new {
                    Ok(new) => jobs.enqueue_job(ctx, new).await,
                    Err(e) => Err(e),
                };
                // A replaced or deduplicated job keeps its first name.
                if let Ok(insightpulse_core::jobs::Enqueued::Created(id)) = &r {
                    env.bind(*job, *id);
                }
                env.outcome(r)
            }
            GetJob { job } => {
                let id = env.id(*job);
                let r = jobs.get_job(ctx, id).await;
                env.outcome(r)
            }
            ClaimJobs {
                claim,
                kind: k,
                worker,
                limit,
                lease,
                per_tenant,
            } => {
                let req = kind(*k).map(|kind| {
                    let mut req = ClaimRequest::new(
                        kind,
                        WORKERS[*worker as usize % WORKERS.len()],
                        *limit,
                        chrono::Duration::seconds(LEASES[*lease as usize % LEASES.len()]),
                    );
                    req.per_tenant_limit = *per_tenant;
                    req
                });
                let r = match req {
                    Ok(req) => jobs.claim_jobs(ctx, &req).await,
                    Err(e) => Err(e),
                };
                let r = r.map(|claimed| {
                    let mut named: Vec<(String, Lease)> =
                        claimed.iter().map(|j| (env.norm(j), j.lease())).collect();
                    named.sort_by(|a, b| a.0.cmp(&b.0));
                    env.keep_leases(*claim, named.into_iter().map(|(_, l)| l).collect());
                    sorted_names(env, &claimed)
                });
                env.outcome_text(r)
            }
            CompleteJobs { claim, pick } => {
                let leases = leases(env, *claim, *pick);
                let r = jobs.complete_jobs(ctx, &leases).await;
                env.outcome(r)
            }
            FailJobs {
                claim,
                pick,
                error,
                jitter,
            } => {
                let policy = RetryPolicy::default();
                let failures: Vec<Failure> = leases(env, *claim, *pick)
                    .into_iter()
                    .map(|lease| Failure {
                        lease,
                        error: error_text(*error),
                        retry_in: policy.delay(lease.attempt, f64::from(*jitter) / 256.0),
                    })
                    .collect();
                let r = jobs.fail_jobs(ctx, &failures).await;
                env.outcome(r)
            }
            ReleaseJobs { claim, pick } => {
                let leases = leases(env, *claim, *pick);
                let r = jobs.release_jobs(ctx, &leases).await;
                env.outcome(r)
            }
            ExtendLeases { claim, pick, lease } => {
                let leases = leases(env, *claim, *pick);
                let lease = chrono::Duration::seconds(LEASES[*lease as usize % LEASES.len()]);
                let r = jobs.extend_leases(ctx, &leases, lease).await;
                env.outcome(r)
            }
            ListJobs {
                state,
                kind: k,
                limit,
                pages,
            } => {
                let r = list_pages(ctx, repos, *state, *k, *limit, *pages).await;
                env.outcome(r)
            }
            RetryJob { job } => {
                let id = env.id(*job);
                let r = jobs.retry_job(ctx, id).await;
                env.outcome(r)
            }
            CancelJobs {
                kind: k,
                tenant,
                key: jk,
            } => {
                let filter = (|| {
                    Ok(CancelFilter {
                        kind: k.map(kind).transpose()?,
                        tenant: tenant.map(|t| env.id(t)),
                        key: jk.map(key).transpose()?,
                    })
                })();
                let r = match filter {
                    Ok(f) => jobs.cancel_jobs(ctx, &f).await,
                    Err(e) => Err(e),
                };
                env.outcome(r)
            }
            PurgeJobs { back, nudge, limit } => {
                let cutoff = env.step_time(*back, *nudge);
                let r = jobs.purge_jobs(ctx, cutoff, *limit).await;
                env.outcome(r)
            }
        }
    }
}

/// Up to `pages` pages of `list_jobs`, each after the last one's cursor
/// (fewer when one has no next page).
async fn list_pages(
    ctx: &Context,
    repos: &Repos,
    state: Option<u8>,
    k: Option<u8>,
    limit: u8,
    pages: u8,
) -> Result<Vec<JobPage>> {
    let mut q = JobQuery::new().limit(PAGE_LIMITS[limit as usize % PAGE_LIMITS.len()]);
    q.state = state.map(|s| STATES[s as usize % STATES.len()]);
    q.kind = k.map(kind).transpose()?;
    let mut out = Vec::new();
    for _ in 0..pages {
        let page = repos.jobs.list_jobs(ctx, &q).await?;
        q.after = page.next;
        out.push(page);
        if q.after.is_none() {
            break;
        }
    }
    Ok(out)
}
