//! The job queue's types: what is enqueued, what a worker holds, and the
//! states a job moves through.

use crate::error::{Error, Result};
use crate::ids::{JobId, TenantId};
use chrono::{DateTime, Duration, Utc};
use std::fmt;

/// Checks a label: 1–64 characters of `a-z`, `0-9`, `_`, `.`, `-` and `:`,
/// starting with a letter (a stored, logged name, never a secret).
fn check_label(field: &'static str, s: &str) -> Result<()> {
    let ok = (1..=64).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-' | ':')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::validation(
            field,
            "must be 1 to 64 characters of a-z, 0-9, '_', '.', '-', ':' starting with a letter",
        ))
    }
}

/// What a job does, e.g. `webhook.deliver`, `ocr.run`; workers claim by kind.
///
/// ```
/// use insightpulse_core::jobs::JobKind;
/// assert!(JobKind::parse("webhook.deliver").is_ok());
/// assert!(JobKind::parse("Webhook").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobKind(String);

impl JobKind {
    /// A validated kind (see the type's rule).
    pub fn parse(s: &str) -> Result<Self> {
        check_label("kind", s)?;
        Ok(Self(s.to_owned()))
    }
    /// The label.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for JobKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A caller-chosen key naming "the same job" within a tenant and kind
/// (e.g. `sync:integration-42`), used to replace or deduplicate it.
/// Up to 255 printable characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobKey(String);

impl JobKey {
    /// A validated key: 1–255 characters, none of them a control character.
    pub fn parse(s: &str) -> Result<Self> {
        if s.is_empty() || s.len() > 255 || s.chars().any(char::is_control) {
            return Err(Error::validation(
                "job_key",
                "must be 1 to 255 characters without control characters",
            ));
        }
        Ok(Self(s.to_owned()))
    }
    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What enqueueing a job with a [`JobKey`] does when a job of the same
/// tenant, kind and key is still waiting (`pending`).
///
/// Of graphile-worker's `job_key_mode`s, `replace` and `preserve_run_at`
/// are kept as they are; `unsafe_dedupe` becomes [`KeyMode::Dedupe`],
/// which is safe here because it only ever looks at unfinished jobs.
/// A job that is already running is never changed: for `Replace` and
/// `PreserveRunAt` it keeps running (without the key) and the new job
/// waits behind it, so the newest input is always processed after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyMode {
    /// Overwrite the waiting job's payload, priority, attempts and `run_at`
    /// (a debounce: the job runs once, at the latest `run_at`).
    Replace,
    /// Like `Replace`, but keep the waiting job's `run_at` (a throttle: the
    /// job runs at the first `run_at` with the latest payload).
    PreserveRunAt,
    /// Do nothing when a job with the key is waiting or running; the
    /// existing job's id is returned.
    Dedupe,
}

impl KeyMode {
    /// The stored label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Replace => "replace",
            Self::PreserveRunAt => "preserve_run_at",
            Self::Dedupe => "dedupe",
        }
    }
}

parse_by_label!(
    KeyMode,
    "key_mode",
    [KeyMode::Replace, KeyMode::PreserveRunAt, KeyMode::Dedupe]
);

/// Where a job is in its life.
///
/// `pending` → `running` (claimed, under a lease) → `completed`; a failure
/// goes back to `pending` with a later `run_at`, or to `dead` after the
/// last attempt; a lease that expires counts as a failed attempt.
/// `pending` → `cancelled` by [`super::JobRepo::cancel_jobs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobState {
    /// Waiting for its `run_at` and a worker.
    Pending,
    /// Claimed by a worker until its lease ends.
    Running,
    /// Done.
    Completed,
    /// Failed on its last attempt.
    Dead,
    /// Cancelled before it ran.
    Cancelled,
}

impl JobState {
    /// The stored label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Dead => "dead",
            Self::Cancelled => "cancelled",
        }
    }
    /// Whether the job has finished for good (and may be purged).
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Completed | Self::Dead | Self::Cancelled)
    }
}

parse_by_label!(
    JobState,
    "state",
    [
        JobState::Pending,
        JobState::Running,
        JobState::Completed,
        JobState::Dead,
        JobState::Cancelled
    ]
);

/// The default number of attempts of a job.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;
/// The most attempts a job may have.
pub const MAX_ATTEMPTS_LIMIT: u32 = 1_000;

/// A job to enqueue in the context's tenant.
///
/// ```
/// use insightpulse_core::jobs::{JobKey, JobKind, KeyMode, NewJob};
/// let job = NewJob::new(JobKind::parse("ocr.run").unwrap(), serde_json::json!({"doc": 7}))
///     .with_priority(-5)
///     .with_max_attempts(3)
///     .with_key(JobKey::parse("doc-7").unwrap(), KeyMode::Replace);
/// assert_eq!(job.max_attempts, 3);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// What the job does.
    pub kind: JobKind,
    /// Its input, handed to the handler as is.
    pub payload: serde_json::Value,
    /// Not before this instant (`None`: now).
    pub run_at: Option<DateTime<Utc>>,
    /// Lower runs first within a tenant (default 0).
    pub priority: i16,
    /// Attempts before the job is dead (1..=[`MAX_ATTEMPTS_LIMIT`]).
    pub max_attempts: u32,
    /// A key that replaces or deduplicates a waiting job.
    pub key: Option<(JobKey, KeyMode)>,
}

impl NewJob {
    /// A job of `kind` with `payload`, to run now, priority 0,
    /// [`DEFAULT_MAX_ATTEMPTS`] attempts, no key.
    pub fn new(kind: JobKind, payload: serde_json::Value) -> Self {
        Self {
            kind,
            payload,
            run_at: None,
            priority: 0,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            key: None,
        }
    }
    /// Runs no earlier than `t`.
    pub fn run_at(mut self, t: DateTime<Utc>) -> Self {
        self.run_at = Some(t);
        self
    }
    /// Sets the priority (lower first).
    pub fn with_priority(mut self, priority: i16) -> Self {
        self.priority = priority;
        self
    }
    /// Sets the number of attempts.
    pub fn with_max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }
    /// Sets a key and what it does.
    pub fn with_key(mut self, key: JobKey, mode: KeyMode) -> Self {
        self.key = Some((key, mode));
        self
    }
    /// Checks what the types cannot: the attempts' bounds and a payload a
    /// database can store (no NUL in its text).
    pub fn validate(&self) -> Result<()> {
        if !(1..=MAX_ATTEMPTS_LIMIT).contains(&self.max_attempts) {
            return Err(Error::validation(
                "max_attempts",
                "must be between 1 and 1000",
            ));
        }
        if self.payload.to_string().contains("\\u0000") {
            return Err(Error::validation(
                "payload",
                "must not contain a NUL character",
            ));
        }
        Ok(())
    }
}

/// What [`super::JobRepo::enqueue_job`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// A new job was made.
    Created(JobId),
    /// A waiting job with the key was updated ([`KeyMode::Replace`] or
    /// [`KeyMode::PreserveRunAt`]).
    Replaced(JobId),
    /// A waiting or running job with the key exists ([`KeyMode::Dedupe`]);
    /// nothing changed.
    Deduplicated(JobId),
}

impl Enqueued {
    /// The job's id, whatever happened.
    pub fn id(self) -> JobId {
        match self {
            Self::Created(id) | Self::Replaced(id) | Self::Deduplicated(id) => id,
        }
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// The tenant it works for.
    pub tenant_id: TenantId,
    /// What it does.
    pub kind: JobKind,
    /// Its input.
    pub payload: serde_json::Value,
    /// Its key, while it is waiting or running.
    pub key: Option<JobKey>,
    /// Lower runs first within a tenant.
    pub priority: i16,
    /// Where it is.
    pub state: JobState,
    /// Claims so far (the current one included while running).
    pub attempts: u32,
    /// Attempts before it is dead.
    pub max_attempts: u32,
    /// Not before this instant.
    pub run_at: DateTime<Utc>,
    /// While running: the end of the worker's lease.
    pub lease_until: Option<DateTime<Utc>>,
    /// While running: the worker that holds it.
    pub locked_by: Option<String>,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When it finished (completed, dead or cancelled).
    pub finished_at: Option<DateTime<Utc>>,
}

impl Job {
    /// The lease a worker holds on this claimed job.
    pub fn lease(&self) -> Lease {
        Lease {
            tenant_id: self.tenant_id,
            id: self.id,
            attempt: self.attempts,
        }
    }
    /// Whether this attempt is the last one.
    pub fn is_last_attempt(&self) -> bool {
        self.attempts >= self.max_attempts
    }
}

/// A worker's hold on one claim of a job. Completing, failing or releasing
/// through a lease that is no longer current (the job was claimed again
/// after the lease expired) changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The job's tenant.
    pub tenant_id: TenantId,
    /// The job.
    pub id: JobId,
    /// Which claim this is (the job's `attempts` when claimed).
    pub attempt: u32,
}

/// A batch claim of jobs of one kind.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimRequest {
    /// The kind to claim.
    pub kind: JobKind,
    /// Who claims (stored in `locked_by`, for operators).
    pub worker: String,
    /// At most this many jobs (1..=1000).
    pub limit: u32,
    /// How long the worker holds them; after that they are claimed again.
    pub lease: Duration,
    /// At most this many running jobs of the kind per tenant.
    pub per_tenant_limit: Option<u32>,
}

impl ClaimRequest {
    /// A claim of up to `limit` jobs of `kind` for `lease`, no tenant limit.
    pub fn new(kind: JobKind, worker: impl Into<String>, limit: u32, lease: Duration) -> Self {
        Self {
            kind,
            worker: worker.into(),
            limit,
            lease,
            per_tenant_limit: None,
        }
    }
    /// Caps each tenant's running jobs of the kind.
    pub fn with_per_tenant_limit(mut self, n: u32) -> Self {
        self.per_tenant_limit = Some(n);
        self
    }
    /// Checks the bounds.
    pub fn validate(&self) -> Result<()> {
        if !(1..=1000).contains(&self.limit) {
            return Err(Error::validation("limit", "must be between 1 and 1000"));
        }
        validate_lease(self.lease)?;
        if self.per_tenant_limit == Some(0) {
            return Err(Error::validation("per_tenant_limit", "must be positive"));
        }
        if self.worker.is_empty() || self.worker.len() > 200 || self.worker.contains('\0') {
            return Err(Error::validation("worker", "must be 1 to 200 characters"));
        }
        Ok(())
    }
}

/// Checks a lease's length: positive and at most a day (a claim's, or a
/// renewal's through [`super::JobRepo::extend_leases`]).
pub fn validate_lease(lease: Duration) -> Result<()> {
    if lease <= Duration::zero() || lease > Duration::days(1) {
        return Err(Error::validation(
            "lease",
            "must be positive and at most a day",
        ));
    }
    Ok(())
}

/// A failed attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The attempt that failed.
    pub lease: Lease,
    /// Why (kept as the job's `last_error`; never put a secret here).
    pub error: String,
    /// How long to wait before the next attempt (see
    /// [`super::RetryPolicy::delay`]); ignored after the last attempt.
    pub retry_in: Duration,
}

/// Which waiting jobs [`super::JobRepo::cancel_jobs`] cancels; at least one
/// field must be set, and every set field must match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CancelFilter {
    /// Only this kind.
    pub kind: Option<JobKind>,
    /// Only this tenant.
    pub tenant: Option<TenantId>,
    /// Only jobs with this key.
    pub key: Option<JobKey>,
}

impl CancelFilter {
    /// Refuses an empty filter (it would cancel every job of every tenant).
    pub fn validate(&self) -> Result<()> {
        if self.kind.is_none() && self.tenant.is_none() && self.key.is_none() {
            return Err(Error::validation(
                "filter",
                "name a kind, a tenant or a key",
            ));
        }
        Ok(())
    }
}

/// Where a page of [`super::JobRepo::list_jobs`] ends: the `(created_at,
/// id)` of its last job. Round-trips through its string form
/// (`micros.uuid`), so a host can hand it to its own clients.
///
/// ```
/// use insightpulse_core::jobs::JobCursor;
/// let c: JobCursor = "1700000000000000.67e55044-10b1-426f-9247-bb680e5fe0c8".parse().unwrap();
/// assert_eq!(c.to_string().parse::<JobCursor>().unwrap(), c);
/// assert!("yesterday".parse::<JobCursor>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobCursor {
    /// Microseconds since the epoch of the last job's `created_at`.
    pub created_at_micros: i64,
    /// The last job's id (ties on `created_at` are common: a batch is
    /// enqueued at one instant).
    pub id: JobId,
}

impl JobCursor {
    /// The cursor just after `job` (newest-first order).
    pub fn after(job: &Job) -> Self {
        Self {
            created_at_micros: job.created_at.timestamp_micros(),
            id: job.id,
        }
    }

    /// Whether a job created at `created_at` with `id` comes after this
    /// cursor in newest-first order (`(created_at, id)` descending).
    pub fn precedes(&self, created_at: DateTime<Utc>, id: JobId) -> bool {
        (created_at.timestamp_micros(), id) < (self.created_at_micros, self.id)
    }

    /// The instant of the cursor.
    pub fn created_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.created_at_micros).unwrap_or_default()
    }
}

impl fmt::Display for JobCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.created_at_micros, self.id)
    }
}

impl std::str::FromStr for JobCursor {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::validation("cursor", "not a cursor returned by list_jobs");
        let (at, id) = s.split_once('.').ok_or_else(bad)?;
        let created_at_micros: i64 = at.parse().map_err(|_| bad())?;
        DateTime::from_timestamp_micros(created_at_micros).ok_or_else(bad)?;
        Ok(Self {
            created_at_micros,
            id: id.parse().map_err(|_| bad())?,
        })
    }
}

/// Which of the context's tenant's jobs [`super::JobRepo::list_jobs`]
/// returns, newest first (`created_at`, then id, descending), one page at
/// a time.
///
/// ```
/// use insightpulse_core::jobs::{JobKind, JobQuery, JobState};
/// let q = JobQuery::new().state(JobState::Dead).kind(JobKind::parse("ocr.run").unwrap()).limit(20);
/// assert!(q.validate().is_ok());
/// assert!(JobQuery::new().limit(0).validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct JobQuery {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs of this kind.
    pub kind: Option<JobKind>,
    /// Page size (1–1000, default 50).
    pub limit: u32,
    /// Continue after this cursor (the previous page's `next`).
    pub after: Option<JobCursor>,
}

impl Default for JobQuery {
    fn default() -> Self {
        Self::new()
    }
}

impl JobQuery {
    /// Every job, 50 per page.
    pub fn new() -> Self {
        Self {
            state: None,
            kind: None,
            limit: 50,
            after: None,
        }
    }
    /// Only jobs in `state`.
    pub fn state(mut self, state: JobState) -> Self {
        self.state = Some(state);
        self
    }
    /// Only jobs of `kind`.
    pub fn kind(mut self, kind: JobKind) -> Self {
        self.kind = Some(kind);
        self
    }
    /// Page size.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }
    /// The page after `cursor`.
    pub fn after(mut self, cursor: JobCursor) -> Self {
        self.after = Some(cursor);
        self
    }
    /// Checks the bounds. Backends call it before any I/O.
    pub fn validate(&self) -> Result<()> {
        if !(1..=1000).contains(&self.limit) {
            return Err(Error::validation("limit", "must be between 1 and 1000"));
        }
        Ok(())
    }
    /// Whether `job` passes the filters and comes after the cursor.
    pub fn matches(&self, job: &Job) -> bool {
        self.state.is_none_or(|s| s == job.state)
            && self.kind.as_ref().is_none_or(|k| *k == job.kind)
            && self
                .after
                .is_none_or(|c| c.precedes(job.created_at, job.id))
    }
}

/// One page of [`super::JobRepo::list_jobs`].
#[derive(Debug, Clone, PartialEq)]
pub struct JobPage {
    /// Jobs, newest first.
    pub jobs: Vec<Job>,
    /// The cursor of the next page, when there is one.
    pub next: Option<JobCursor>,
}

impl JobPage {
    /// The page of `limit` from `rows` (the matching jobs in order, up to
    /// `limit + 1` of them: one more says there is a next page).
    pub fn of(mut rows: Vec<Job>, limit: u32) -> Self {
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next = if more {
            rows.last().map(JobCursor::after)
        } else {
            None
        };
        Self { jobs: rows, next }
    }
}

/// How [`super::JobRepo::retry_job`] changes a job of each state, as pure
/// logic both backends apply: a dead or cancelled job, or one waiting,
/// becomes `pending` and due now (`run_at` moves back to now, never
/// forward: a job already due keeps its place in line); a running or
/// completed job is left as it is.
///
/// Attempts are **kept**, as River's `JobRetry` keeps them: a lease names
/// its claim by the attempt count, so resetting it would let a worker that
/// held an old, long-expired claim complete the new one. A job that used
/// up its attempts gets one more (`max_attempts` raised to `attempts + 1`,
/// within [`MAX_ATTEMPTS_LIMIT`]; past that limit it still runs once, and
/// a failure makes it dead again).
pub fn retried(job: &Job, now: DateTime<Utc>) -> Option<Job> {
    if matches!(job.state, JobState::Running | JobState::Completed) {
        return None;
    }
    let mut j = job.clone();
    j.state = JobState::Pending;
    j.run_at = j.run_at.min(now);
    j.max_attempts = j
        .max_attempts
        .max(j.attempts.saturating_add(1).min(MAX_ATTEMPTS_LIMIT));
    j.finished_at = None;
    j.lease_until = None;
    j.locked_by = None;
    Some(j)
}

/// Truncates a failure message to what is stored (2,000 characters, no NUL).
pub fn stored_error(message: &str) -> String {
    message.replace('\0', "").chars().take(2000).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_validated() {
        assert!(JobKind::parse("a").is_ok());
        assert!(JobKind::parse("webhook.deliver:v2").is_ok());
        for bad in ["", "1abc", "Abc", "a b", &"a".repeat(65)] {
            assert!(JobKind::parse(bad).unwrap_err().is_validation(), "{bad:?}");
        }
        assert!(JobKey::parse(&"k".repeat(255)).is_ok());
        assert!(JobKey::parse(&"k".repeat(256)).is_err());
        assert!(JobKey::parse("a\nb").is_err());
        assert!(JobKey::parse("").is_err());
    }

    #[test]
    fn new_jobs_and_claims_are_bounded() {
        let kind = JobKind::parse("k").unwrap();
        let job = NewJob::new(kind.clone(), serde_json::json!({}));
        assert!(job.validate().is_ok());
        assert!(job.clone().with_max_attempts(0).validate().is_err());
        assert!(job.clone().with_max_attempts(1001).validate().is_err());
        assert!(
            NewJob::new(kind.clone(), serde_json::json!({"a": "x\u{0}y"}))
                .validate()
                .is_err()
        );
        let claim = ClaimRequest::new(kind, "w", 10, Duration::seconds(30));
        assert!(claim.validate().is_ok());
        assert!(ClaimRequest {
            limit: 0,
            ..claim.clone()
        }
        .validate()
        .is_err());
        assert!(ClaimRequest {
            limit: 1001,
            ..claim.clone()
        }
        .validate()
        .is_err());
        assert!(ClaimRequest {
            lease: Duration::zero(),
            ..claim.clone()
        }
        .validate()
        .is_err());
        assert!(claim.clone().with_per_tenant_limit(0).validate().is_err());
        assert!(CancelFilter::default().validate().is_err());
    }

    fn a_job(state: JobState, attempts: u32, max_attempts: u32) -> Job {
        let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        Job {
            id: JobId::new(),
            tenant_id: TenantId::new(),
            kind: JobKind::parse("k").unwrap(),
            payload: serde_json::json!({}),
            key: None,
            priority: 0,
            state,
            attempts,
            max_attempts,
            run_at: t,
            lease_until: (state == JobState::Running).then_some(t),
            locked_by: (state == JobState::Running).then(|| "w".to_owned()),
            last_error: Some("boom".into()),
            created_at: t,
            finished_at: state.is_finished().then_some(t),
        }
    }

    #[test]
    fn labels_read_back_as_given() {
        let kind = JobKind::parse("webhook.deliver").unwrap();
        assert_eq!(kind.as_str(), "webhook.deliver");
        assert_eq!(kind.to_string(), "webhook.deliver");
        assert_eq!("webhook.deliver".parse::<JobKind>().unwrap(), kind);
        assert_eq!(JobKey::parse("doc 7").unwrap().as_str(), "doc 7");
        let id = JobId::new();
        for e in [
            Enqueued::Created(id),
            Enqueued::Replaced(id),
            Enqueued::Deduplicated(id),
        ] {
            assert_eq!(e.id(), id);
        }
    }

    #[test]
    fn the_last_attempt_is_the_one_that_reaches_max_attempts() {
        let job = |attempts| a_job(JobState::Running, attempts, 3);
        assert!(!job(2).is_last_attempt());
        assert!(job(3).is_last_attempt());
        // Past it (a retried job at the attempts' limit), still the last.
        assert!(job(4).is_last_attempt());
        let j = job(2);
        assert_eq!(
            j.lease(),
            Lease {
                tenant_id: j.tenant_id,
                id: j.id,
                attempt: 2
            }
        );
    }

    #[test]
    fn claims_name_their_worker_and_cancellations_need_one_field() {
        let claim = ClaimRequest::new(JobKind::parse("k").unwrap(), "w", 10, Duration::seconds(30));
        let with_worker = |worker: String| ClaimRequest {
            worker,
            ..claim.clone()
        };
        assert!(with_worker("w".repeat(200)).validate().is_ok());
        for bad in [String::new(), "w".repeat(201), "a\0b".to_owned()] {
            assert!(
                matches!(
                    with_worker(bad.clone()).validate(),
                    Err(Error::Validation {
                        field: "worker",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
        let kind = Some(JobKind::parse("k").unwrap());
        for one in [
            CancelFilter {
                kind,
                ..Default::default()
            },
            CancelFilter {
                tenant: Some(TenantId::new()),
                ..Default::default()
            },
            CancelFilter {
                key: Some(JobKey::parse("x").unwrap()),
                ..Default::default()
            },
        ] {
            assert!(one.validate().is_ok(), "{one:?}");
        }
    }

    #[test]
    fn leases_are_positive_and_at_most_a_day() {
        assert!(validate_lease(Duration::milliseconds(1)).is_ok());
        assert!(validate_lease(Duration::days(1)).is_ok());
        for bad in [
            Duration::zero(),
            Duration::seconds(-5),
            Duration::days(1) + Duration::milliseconds(1),
        ] {
            assert!(matches!(
                validate_lease(bad),
                Err(Error::Validation { field: "lease", .. })
            ));
        }
    }

    #[test]
    fn job_cursors_order_newest_first_and_round_trip() {
        let job = a_job(JobState::Pending, 0, 1);
        let c = JobCursor::after(&job);
        assert_eq!(c.created_at(), job.created_at);
        assert_eq!(c.id, job.id);
        let (lower, higher) = {
            let mut ids = [JobId::new(), JobId::new()];
            ids.sort();
            (ids[0], ids[1])
        };
        let at = |micros: i64| DateTime::from_timestamp_micros(micros).unwrap();
        let c = JobCursor {
            created_at_micros: 1_000,
            id: higher,
        };
        assert!(c.precedes(at(999), higher));
        assert!(c.precedes(at(1_000), lower));
        assert!(!c.precedes(at(1_000), higher));
        assert!(!c.precedes(at(1_001), lower));
        assert_eq!(c.to_string(), format!("1000.{higher}"));
        for c in [c, JobCursor::after(&job)] {
            assert_eq!(c.to_string().parse::<JobCursor>().unwrap(), c);
        }
        for bad in [
            "",
            "1000",
            "x.67e55044-10b1-426f-9247-bb680e5fe0c8",
            "1000.not-a-uuid",
            "9223372036854775807.67e55044-10b1-426f-9247-bb680e5fe0c8",
        ] {
            assert!(
                matches!(
                    bad.parse::<JobCursor>(),
                    Err(Error::Validation {
                        field: "cursor",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn job_queries_filter_and_pages_say_whether_more_follow() {
        assert_eq!(JobQuery::default(), JobQuery::new());
        assert_eq!(JobQuery::new().limit, 50);
        assert!(JobQuery::new().limit(1).validate().is_ok());
        assert!(JobQuery::new().limit(1000).validate().is_ok());
        for bad in [0, 1001] {
            assert!(matches!(
                JobQuery::new().limit(bad).validate(),
                Err(Error::Validation { field: "limit", .. })
            ));
        }
        let dead = a_job(JobState::Dead, 1, 1);
        let other = Job {
            kind: JobKind::parse("other").unwrap(),
            ..a_job(JobState::Pending, 0, 1)
        };
        let q = JobQuery::new();
        assert!(q.matches(&dead) && q.matches(&other));
        let by_state = JobQuery::new().state(JobState::Dead);
        assert!(by_state.matches(&dead) && !by_state.matches(&other));
        let by_kind = JobQuery::new().kind(JobKind::parse("other").unwrap());
        assert!(!by_kind.matches(&dead) && by_kind.matches(&other));
        let both = by_kind.clone().state(JobState::Dead);
        assert!(!both.matches(&dead) && !both.matches(&other));
        let after_dead = JobQuery::new().after(JobCursor::after(&dead));
        assert!(!after_dead.matches(&dead));
        assert_eq!(
            after_dead.matches(&other),
            JobCursor::after(&dead).precedes(other.created_at, other.id)
        );

        let jobs = vec![dead.clone(), other.clone(), a_job(JobState::Pending, 0, 1)];
        let page = JobPage::of(jobs.clone(), 2);
        assert_eq!(page.jobs, jobs[..2]);
        assert_eq!(page.next, Some(JobCursor::after(&other)));
        let last = JobPage::of(jobs[..2].to_vec(), 2);
        assert_eq!((last.jobs.len(), last.next), (2, None));
        assert_eq!(JobPage::of(Vec::new(), 2).next, None);
    }

    #[test]
    fn a_retry_keeps_attempts_and_makes_the_job_due() {
        let now = DateTime::from_timestamp(1_700_000_100, 0).unwrap();
        let dead = a_job(JobState::Dead, 3, 3);
        let r = retried(&dead, now).unwrap();
        assert_eq!(r.state, JobState::Pending);
        assert_eq!((r.attempts, r.max_attempts), (3, 4));
        // Due already: keeps its place.
        assert_eq!(r.run_at, dead.run_at);
        assert_eq!(
            (r.finished_at, r.lease_until, r.locked_by.clone()),
            (None, None, None)
        );
        assert_eq!(r.last_error, dead.last_error);
        assert_eq!((r.id, r.payload.clone()), (dead.id, dead.payload.clone()));

        let later = Job {
            run_at: now + Duration::hours(1),
            ..a_job(JobState::Cancelled, 1, 5)
        };
        let r = retried(&later, now).unwrap();
        assert_eq!((r.state, r.run_at), (JobState::Pending, now));
        assert_eq!((r.attempts, r.max_attempts), (1, 5));
        let waiting = a_job(JobState::Pending, 2, 5);
        assert_eq!(retried(&waiting, now).unwrap(), waiting);
        // At the attempts' limit it still runs once more, the limit kept.
        let exhausted = a_job(JobState::Dead, MAX_ATTEMPTS_LIMIT, MAX_ATTEMPTS_LIMIT);
        let r = retried(&exhausted, now).unwrap();
        assert_eq!(r.max_attempts, MAX_ATTEMPTS_LIMIT);
        let beyond = a_job(JobState::Dead, u32::MAX, 7);
        assert_eq!(
            retried(&beyond, now).unwrap().max_attempts,
            MAX_ATTEMPTS_LIMIT
        );
        for untouched in [JobState::Running, JobState::Completed] {
            assert_eq!(retried(&a_job(untouched, 1, 5), now), None);
        }
    }

    #[test]
    fn states_and_modes_round_trip() {
        for s in [
            JobState::Pending,
            JobState::Running,
            JobState::Completed,
            JobState::Dead,
            JobState::Cancelled,
        ] {
            assert_eq!(s.as_str().parse::<JobState>().unwrap(), s);
        }
        for m in [KeyMode::Replace, KeyMode::PreserveRunAt, KeyMode::Dedupe] {
            assert_eq!(m.as_str().parse::<KeyMode>().unwrap(), m);
        }
        assert!(!JobState::Running.is_finished());
        assert!(JobState::Dead.is_finished());
        assert_eq!(stored_error(&"é".repeat(3000)).chars().count(), 2000);
    }
}
