//! Conformance cases of the job queue (platform): enqueueing and keys,
//! visibility, claims under leases, retries and the dead state, fairness
//! and per-tenant limits, lease renewal, cancellation and retention,
//! operators' listing and retrying, and the worker runtime over each
//! backend.
//!
//! Rule guarded here: both backends run the same queue — what one claims,
//! retries, buries, cancels or purges, the other does too. Cases assert
//! what the contract promises (e.g. "the small tenant's job is in the
//! batch"), never an order the contract leaves open.

pub mod admin;
pub mod claims;
pub mod queue;
pub mod retention;
pub mod worker;

pub use admin::*;
pub use claims::*;
pub use queue::*;
pub use retention::*;
pub use worker::*;

use crate::fixtures::system;
use insightpulse_core::jobs::{
    ClaimRequest, Enqueued, Job, JobKey, JobKind, JobState, KeyMode, NewJob,
};
use insightpulse_core::{Context, JobId, Repos, TenantId};
use serde_json::{json, Value};

pub(crate) fn kind(s: &str) -> JobKind {
    JobKind::parse(s).unwrap()
}

pub(crate) fn key(s: &str) -> JobKey {
    JobKey::parse(s).unwrap()
}

/// The system acting in tenant `t`.
pub(crate) fn sys(t: TenantId) -> Context {
    system().in_tenant(t)
}

/// Enqueues `payload` as a job of `kind` in `t`.
pub(crate) async fn enqueue(repos: &Repos, t: TenantId, kind_: &str, payload: Value) -> JobId {
    match repos
        .jobs
        .enqueue_job(&sys(t), NewJob::new(kind(kind_), payload))
        .await
        .unwrap()
    {
        Enqueued::Created(id) => id,
        other => panic!("expected a new job, got {other:?}"),
    }
}

/// Enqueues `job` in `t`.
pub(crate) async fn enqueue_new(repos: &Repos, t: TenantId, job: NewJob) -> Enqueued {
    repos.jobs.enqueue_job(&sys(t), job).await.unwrap()
}

/// A claim of up to `limit` jobs of `kind` under a 30-second lease.
pub(crate) fn claim_of(kind_: &str, limit: u32) -> ClaimRequest {
    ClaimRequest::new(
        kind(kind_),
        "test-worker",
        limit,
        chrono::Duration::seconds(30),
    )
}

/// Claims as the system.
pub(crate) async fn claim(repos: &Repos, req: &ClaimRequest) -> Vec<Job> {
    repos.jobs.claim_jobs(&system(), req).await.unwrap()
}

/// The job as the system sees it.
pub(crate) async fn job(repos: &Repos, t: TenantId, id: JobId) -> Job {
    repos.jobs.get_job(&sys(t), id).await.unwrap()
}

/// The job's state.
pub(crate) async fn state(repos: &Repos, t: TenantId, id: JobId) -> JobState {
    job(repos, t, id).await.state
}

/// A payload naming a number.
pub(crate) fn n(i: u32) -> Value {
    json!({ "n": i })
}

/// Replaces or deduplicates by key.
pub(crate) fn keyed(kind_: &str, k: &str, mode: KeyMode, payload: Value) -> NewJob {
    NewJob::new(kind(kind_), payload).with_key(key(k), mode)
}

/// This module's conformance cases, for [`conformance_tests!`](crate::conformance_tests):
/// a new case is listed here, next to its module.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases_jobs {
    ($backend:tt) => {
        $crate::__conformance_module!($backend jobs [
            jobs_are_enqueued_by_the_system_and_read_with_job_read,
            enqueue_input_is_validated,
            keys_replace_or_deduplicate_waiting_jobs,
            keys_never_change_a_running_job,
            cancel_jobs_by_kind_tenant_or_key,
            purge_deletes_old_finished_jobs_only,
            claims_take_due_jobs_by_priority_then_run_at,
            concurrent_claims_never_share_a_job,
            an_expired_lease_is_claimed_again,
            failures_retry_later_then_the_job_dies,
            released_jobs_come_back_unrun,
            a_big_backlog_does_not_starve_a_small_tenant,
            per_tenant_limits_cap_running_jobs,
            shares_go_only_to_tenants_waiting_on_the_kind,
            the_worker_runs_retries_and_buries,
            shutdown_gives_unfinished_jobs_back,
            finished_jobs_expire_by_the_tenants_policy,
            extend_leases_renews_current_leases_only,
            a_long_handler_keeps_its_job_by_renewing,
            list_jobs_pages_newest_first_with_job_read,
            retry_job_runs_a_dead_or_cancelled_job_again,
            retry_job_keeps_a_free_key_only,
            retry_job_is_the_systems,
        ]);
    };
}
