//! The job queue in memory, obeying the rules of
//! `insightpulse-postgres/migrations/0009_jobs.sql`: the same claim
//! (expired leases put back first, tenants walked from a random point, an
//! equal share per tenant, round-robin batch, per-tenant limit), the same
//! key modes, the same stale-lease rule. Wake-ups go through a
//! `tokio::sync::Notify` ([`MemoryJobWaker`]).

use super::{MemoryBackend, State, TenantRows, TenantTable};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insightpulse_core::jobs::{
    retried, stored_error, validate_lease, CancelFilter, ClaimRequest, Enqueued, Failure, Job,
    JobKind, JobPage, JobQuery, JobRepo, JobState, JobWaker, KeyMode, Lease, NewJob,
};
use insightpulse_core::values::canonical_json;
use insightpulse_core::{
    Context, Entity, Error, JobId, PermissionCode, Principal, Result, TenantId,
};
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio::sync::Notify;

const LEASE_EXPIRED: &str = "the lease expired before the job finished";

/// The queue's table and its wake-up.
#[derive(Default)]
pub(crate) struct JobsState {
    /// Jobs keyed like their primary key, `(tenant, id)`.
    pub jobs: TenantTable<JobId, Job>,
    /// Woken on every enqueue that commits.
    pub notify: Arc<Notify>,
}

impl super::MinId for JobId {
    fn min_id() -> Self {
        Self(Default::default())
    }
}

impl JobsState {
    /// A deleted tenant takes its jobs (`ON DELETE CASCADE`).
    pub fn on_tenant_deleted(&mut self, t: TenantId) {
        self.jobs.remove_of_tenant(t, |_| true);
    }
}

fn same_key(j: &Job, kind: &JobKind, key: &insightpulse_core::jobs::JobKey) -> bool {
    j.kind == *kind
        && j.key.as_ref() == Some(key)
        && matches!(j.state, JobState::Pending | JobState::Running)
}

/// Enqueues `job` for `tenant` as `insightpulse.enqueue_job` does: the
/// system, or a member of `tenant` (`PermissionDenied` otherwise). Other
/// memory modules call it inside their own locked mutation.
pub(crate) fn enqueue_in(
    st: &mut State,
    ctx: &Context,
    tenant: TenantId,
    job: &NewJob,
    now: DateTime<Utc>,
) -> Result<Enqueued> {
    job.validate()?;
    let member = match ctx.principal() {
        Principal::System { .. } => true,
        _ => st.tenant_visible(ctx, tenant),
    };
    if !member {
        return Err(Error::denied(insightpulse_core::Requirement::RowSecurity));
    }
    if !st.tenancy.tenants.contains_key(&tenant) {
        return Err(Error::not_found(Entity::Tenant));
    }
    let run_at = job.run_at.unwrap_or(now);
    // As `jsonb` stores it (integral floats of 1e16 and over as integers, -0 as 0).
    let payload = canonical_json(job.payload.clone());
    if let Some((key, mode)) = &job.key {
        let mut rows = st.jobs.jobs.of_tenant_mut(tenant);
        let existing = rows.find(|j| same_key(j, &job.kind, key));
        match (mode, existing) {
            (KeyMode::Dedupe, Some(j)) => return Ok(Enqueued::Deduplicated(j.id)),
            (_, Some(j)) if j.state == JobState::Pending => {
                j.payload = payload;
                j.priority = job.priority;
                j.max_attempts = job.max_attempts;
                if *mode == KeyMode::Replace {
                    j.run_at = run_at;
                }
                j.attempts = 0;
                j.last_error = None;
                let id = j.id;
                st.jobs.notify.notify_waiters();
                return Ok(Enqueued::Replaced(id));
            }
            // A running job keeps running; the key moves to the new job.
            (_, Some(j)) => j.key = None,
            (_, None) => {}
        }
    }
    let id = JobId::new();
    st.jobs.jobs.insert(
        (tenant, id),
        Job {
            id,
            tenant_id: tenant,
            kind: job.kind.clone(),
            payload,
            key: job.key.as_ref().map(|(k, _)| k.clone()),
            priority: job.priority,
            state: JobState::Pending,
            attempts: 0,
            max_attempts: job.max_attempts,
            run_at,
            lease_until: None,
            locked_by: None,
            last_error: None,
            created_at: now,
            finished_at: None,
        },
    );
    st.jobs.notify.notify_waiters();
    Ok(Enqueued::Created(id))
}

impl JobsState {
    /// The claim of `insightpulse.claim_jobs`, step by step.
    fn claim(&mut self, req: &ClaimRequest, now: DateTime<Utc>) -> Vec<Job> {
        // 1. Expired leases of the kind.
        for j in self.jobs.values_mut() {
            if j.kind == req.kind
                && j.state == JobState::Running
                && j.lease_until.is_some_and(|l| l < now)
            {
                j.state = if j.is_last_attempt() {
                    j.finished_at = Some(now);
                    JobState::Dead
                } else {
                    JobState::Pending
                };
                j.run_at = now;
                j.lease_until = None;
                j.locked_by = None;
                j.last_error = Some(LEASE_EXPIRED.to_owned());
            }
        }
        // 2. Up to `limit` tenants with waiting jobs, from a random point.
        let waiting: BTreeSet<TenantId> = self
            .jobs
            .values()
            .filter(|j| j.kind == req.kind && j.state == JobState::Pending)
            .map(|j| j.tenant_id)
            .collect();
        let start = TenantId::new();
        let limit = req.limit as usize;
        let tenants: Vec<TenantId> = waiting
            .range(start..)
            .chain(waiting.range(..start))
            .take(limit)
            .copied()
            .collect();
        if tenants.is_empty() {
            return Vec::new();
        }
        let share = limit.div_ceil(tenants.len());
        // 3. Each tenant's share within its limit, then round-robin.
        let mut picked: Vec<(usize, i16, DateTime<Utc>, TenantId, JobId)> = Vec::new();
        for t in tenants {
            let running = self
                .jobs
                .of_tenant(t)
                .filter(|j| j.kind == req.kind && j.state == JobState::Running)
                .count();
            let take = match req.per_tenant_limit {
                None => share,
                Some(n) => share.min((n as usize).saturating_sub(running)),
            };
            let mut ready: Vec<&Job> = self
                .jobs
                .of_tenant(t)
                .filter(|j| j.kind == req.kind && j.state == JobState::Pending && j.run_at <= now)
                .collect();
            ready.sort_by_key(|j| (j.priority, j.run_at, j.id));
            picked.extend(
                ready
                    .into_iter()
                    .take(take)
                    .enumerate()
                    .map(|(rn, j)| (rn, j.priority, j.run_at, t, j.id)),
            );
        }
        picked.sort();
        picked.truncate(limit);
        picked
            .into_iter()
            .filter_map(|(_, _, _, t, id)| {
                let j = self.jobs.get_mut(&(t, id))?;
                j.state = JobState::Running;
                j.attempts += 1;
                j.lease_until = Some(now + req.lease);
                j.locked_by = Some(req.worker.clone());
                Some(j.clone())
            })
            .collect()
    }

    /// The job a lease names, if the lease is still current.
    fn leased(&mut self, l: &Lease) -> Option<&mut Job> {
        self.jobs
            .get_mut(&(l.tenant_id, l.id))
            .filter(|j| j.state == JobState::Running && j.attempts == l.attempt)
    }
}

impl MemoryBackend {
    /// A wake-up for workers of this backend (woken on every enqueue).
    pub fn job_waker(&self) -> MemoryJobWaker {
        MemoryJobWaker {
            notify: self.lock().jobs.notify.clone(),
        }
    }
}

/// Wakes idle workers of a [`MemoryBackend`] when a job is enqueued.
#[derive(Debug, Clone)]
pub struct MemoryJobWaker {
    notify: Arc<Notify>,
}

#[async_trait]
impl JobWaker for MemoryJobWaker {
    async fn wait(&self, _kind: &JobKind, timeout: std::time::Duration) {
        let _ = tokio::time::timeout(timeout, self.notify.notified()).await;
    }
}

#[async_trait]
impl JobRepo for MemoryBackend {
    async fn enqueue_job(&self, ctx: &Context, job: NewJob) -> Result<Enqueued> {
        self.run(ctx, "JobRepo.enqueue_job", || {
            ctx.require_system()?;
            let t = ctx.require_tenant()?;
            let now = self.now();
            enqueue_in(&mut self.lock(), ctx, t, &job, now)
        })
    }

    async fn get_job(&self, ctx: &Context, id: JobId) -> Result<Job> {
        self.run(ctx, "JobRepo.get_job", || {
            let st = self.lock();
            let t = st.row_tenant(ctx, Entity::Job)?;
            st.require(ctx, t, PermissionCode::JOB_READ, None)?;
            st.jobs
                .jobs
                .get(&(t, id))
                .cloned()
                .ok_or_else(|| Error::not_found(Entity::Job))
        })
    }

    async fn list_jobs(&self, ctx: &Context, q: &JobQuery) -> Result<JobPage> {
        self.run(ctx, "JobRepo.list_jobs", || {
            let t = ctx.require_tenant()?;
            q.validate()?;
            let st = self.lock();
            // Like every list: a tenant the principal cannot see is empty.
            if !st.tenant_visible(ctx, t) {
                return Ok(JobPage::of(Vec::new(), q.limit));
            }
            st.require(ctx, t, PermissionCode::JOB_READ, None)?;
            let mut rows: Vec<&Job> = st.jobs.jobs.of_tenant(t).filter(|j| q.matches(j)).collect();
            rows.sort_by_key(|j| std::cmp::Reverse((j.created_at.timestamp_micros(), j.id)));
            let rows = rows.into_iter().take(q.limit as usize + 1).cloned();
            Ok(JobPage::of(rows.collect(), q.limit))
        })
    }

    async fn claim_jobs(&self, ctx: &Context, req: &ClaimRequest) -> Result<Vec<Job>> {
        self.run(ctx, "JobRepo.claim_jobs", || {
            ctx.require_system()?;
            req.validate()?;
            let now = self.now();
            Ok(self.lock().jobs.claim(req, now))
        })
    }

    async fn complete_jobs(&self, ctx: &Context, leases: &[Lease]) -> Result<u64> {
        self.run(ctx, "JobRepo.complete_jobs", || {
            ctx.require_system()?;
            let now = self.now();
            let mut st = self.lock();
            let mut n = 0;
            for l in leases {
                if let Some(j) = st.jobs.leased(l) {
                    j.state = JobState::Completed;
                    j.finished_at = Some(now);
                    j.lease_until = None;
                    n += 1;
                }
            }
            Ok(n)
        })
    }

    async fn fail_jobs(&self, ctx: &Context, failures: &[Failure]) -> Result<u64> {
        self.run(ctx, "JobRepo.fail_jobs", || {
            ctx.require_system()?;
            let now = self.now();
            let mut st = self.lock();
            let mut n = 0;
            for f in failures {
                if let Some(j) = st.jobs.leased(&f.lease) {
                    if j.is_last_attempt() {
                        j.state = JobState::Dead;
                        j.finished_at = Some(now);
                    } else {
                        j.state = JobState::Pending;
                        j.run_at = now + f.retry_in.max(chrono::Duration::zero());
                    }
                    j.last_error = Some(stored_error(&f.error));
                    j.lease_until = None;
                    j.locked_by = None;
                    n += 1;
                }
            }
            Ok(n)
        })
    }

    async fn extend_leases(
        &self,
        ctx: &Context,
        leases: &[Lease],
        lease: chrono::Duration,
    ) -> Result<u64> {
        self.run(ctx, "JobRepo.extend_leases", || {
            ctx.require_system()?;
            validate_lease(lease)?;
            let until = self.now() + lease;
            let mut st = self.lock();
            let mut n = 0;
            for l in leases {
                if let Some(j) = st.jobs.leased(l) {
                    j.lease_until = j.lease_until.max(Some(until));
                    n += 1;
                }
            }
            Ok(n)
        })
    }

    async fn release_jobs(&self, ctx: &Context, leases: &[Lease]) -> Result<u64> {
        self.run(ctx, "JobRepo.release_jobs", || {
            ctx.require_system()?;
            let now = self.now();
            let mut st = self.lock();
            let mut n = 0;
            for l in leases {
                if let Some(j) = st.jobs.leased(l) {
                    j.state = JobState::Pending;
                    j.attempts -= 1;
                    j.run_at = now;
                    j.lease_until = None;
                    j.locked_by = None;
                    n += 1;
                }
            }
            Ok(n)
        })
    }

    async fn cancel_jobs(&self, ctx: &Context, filter: &CancelFilter) -> Result<u64> {
        self.run(ctx, "JobRepo.cancel_jobs", || {
            ctx.require_system()?;
            filter.validate()?;
            let now = self.now();
            let mut st = self.lock();
            let mut n = 0;
            for j in st.jobs.jobs.values_mut() {
                let matches = j.state == JobState::Pending
                    && filter.kind.as_ref().is_none_or(|k| *k == j.kind)
                    && filter.tenant.is_none_or(|t| t == j.tenant_id)
                    && filter
                        .key
                        .as_ref()
                        .is_none_or(|k| j.key.as_ref() == Some(k));
                if matches {
                    j.state = JobState::Cancelled;
                    j.finished_at = Some(now);
                    n += 1;
                }
            }
            Ok(n)
        })
    }

    async fn retry_job(&self, ctx: &Context, id: JobId) -> Result<Job> {
        self.run(ctx, "JobRepo.retry_job", || {
            ctx.require_system()?;
            let now = self.now();
            let mut st = self.lock();
            let t = st.row_tenant(ctx, Entity::Job)?;
            let current = st
                .jobs
                .jobs
                .get(&(t, id))
                .cloned()
                .ok_or_else(|| Error::not_found(Entity::Job))?;
            let Some(mut job) = retried(&current, now) else {
                return Ok(current);
            };
            if let Some(k) = &job.key {
                let taken = st
                    .jobs
                    .jobs
                    .of_tenant(t)
                    .any(|o| o.id != id && same_key(o, &job.kind, k));
                if taken {
                    job.key = None;
                }
            }
            st.jobs.jobs.insert((t, id), job.clone());
            st.jobs.notify.notify_waiters();
            Ok(job)
        })
    }

    async fn purge_jobs(&self, ctx: &Context, cutoff: DateTime<Utc>, limit: u32) -> Result<u64> {
        self.run(ctx, "JobRepo.purge_jobs", || {
            ctx.require_system()?;
            if limit == 0 {
                return Err(Error::validation("limit", "must be positive"));
            }
            let mut st = self.lock();
            let old: Vec<(TenantId, JobId)> = st
                .jobs
                .jobs
                .iter()
                .filter(|(_, j)| j.state.is_finished() && j.finished_at.is_some_and(|f| f < cutoff))
                .map(|(k, _)| *k)
                .take(limit as usize)
                .collect();
            for k in &old {
                st.jobs.jobs.remove(k);
            }
            Ok(old.len() as u64)
        })
    }
}

impl State {
    /// The queue's retention hook (`jobs`): the tenant's jobs that finished
    /// before the cutoff, oldest first; pending and running jobs stay.
    pub(super) fn retire_jobs(
        &mut self,
        run: &super::privacy::RetentionRun<'_>,
    ) -> Result<super::privacy::Counts> {
        let tenant = run.tenant;
        let mut doomed: Vec<(DateTime<Utc>, JobId)> = self
            .jobs
            .jobs
            .of_tenant(tenant)
            .filter_map(|j| j.finished_at.filter(|f| *f < run.cutoff).map(|f| (f, j.id)))
            .collect();
        doomed.sort();
        self.delete_in_batches(
            run,
            insightpulse_core::privacy::DataCategory::Jobs,
            &doomed,
            |st, (_, id)| {
                st.jobs.jobs.remove(&(tenant, *id));
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// An idle worker sleeps until a job is enqueued, or until its timeout:
    /// the waker neither returns early nor misses the enqueue.
    #[tokio::test]
    async fn the_waker_sleeps_until_an_enqueue_or_its_timeout() {
        let waker = MemoryBackend::new().job_waker();
        let kind = JobKind::parse("k").unwrap();
        let started = Instant::now();
        waker.wait(&kind, Duration::from_millis(100)).await;
        assert!(started.elapsed() >= Duration::from_millis(100));

        let notify = waker.notify.clone();
        let started = Instant::now();
        let woken = tokio::spawn(async move { waker.wait(&kind, Duration::from_secs(10)).await });
        // (Until it has begun to wait: a wake-up before that is not kept.)
        while !woken.is_finished() && started.elapsed() < Duration::from_secs(5) {
            notify.notify_waiters();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
