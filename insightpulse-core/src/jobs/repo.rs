//! The job-queue repository trait.

use super::model::*;
use crate::context::Context;
use crate::error::Result;
use crate::ids::JobId;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// The one job queue. Worker calls ([`Self::claim_jobs`] and what follows
/// a claim) are the system's (`Context::system`); see the module docs for
/// what a user may do.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait JobRepo: Send + Sync {
    /// Enqueues a job in the context's tenant, in a unit of work of its
    /// own, and wakes idle workers of its kind when it commits. System only
    /// (modules enqueue inside their own transaction instead). Errors:
    /// `Validation` for bad input, `NotFound` (tenant) for no such tenant.
    async fn enqueue_job(&self, ctx: &Context, job: NewJob) -> Result<Enqueued>;

    /// A job of the context's tenant. The system, or a holder of `job.read`
    /// in the tenant; `NotFound` for another tenant's job.
    async fn get_job(&self, ctx: &Context, id: JobId) -> Result<Job>;

    /// A page of the context's tenant's jobs matching `q`, newest first
    /// (`created_at`, then id, descending), for operators and admin
    /// screens. The system, or a holder of `job.read` in the tenant
    /// (`PermissionDenied` for a member without it); a tenant the caller
    /// cannot see lists as empty, as RLS shows it. Errors: `Validation`
    /// for a bad limit or no tenant.
    async fn list_jobs(&self, ctx: &Context, q: &JobQuery) -> Result<JobPage>;

    /// Claims up to `req.limit` ready jobs of `req.kind` (pending with
    /// `run_at` due, lowest priority first within a tenant), fairly between
    /// tenants (each tenant with ready jobs gets an equal share of the batch
    /// before any gets more), at most `per_tenant_limit` running per tenant.
    /// Jobs whose lease expired are first put back (or made `dead` after
    /// their last attempt). Concurrent claimers never get the same job.
    /// System only.
    async fn claim_jobs(&self, ctx: &Context, req: &ClaimRequest) -> Result<Vec<Job>>;

    /// Marks the claimed jobs completed; returns how many leases were still
    /// current (a stale lease changes nothing). System only.
    async fn complete_jobs(&self, ctx: &Context, leases: &[Lease]) -> Result<u64>;

    /// Records failed attempts: back to `pending` after `retry_in`, or
    /// `dead` after the last attempt. Returns how many leases were current.
    /// System only.
    async fn fail_jobs(&self, ctx: &Context, failures: &[Failure]) -> Result<u64>;

    /// Renews leases a worker still holds (a handler that runs long):
    /// each current lease's deadline becomes `now + lease`, never earlier
    /// than it was. Returns how many leases were current; a stale one —
    /// expired and claimed again by another worker, or finished — is not
    /// extended. System only. Errors: `Validation` (`lease`) unless
    /// positive and at most a day.
    async fn extend_leases(
        &self,
        ctx: &Context,
        leases: &[Lease],
        lease: chrono::Duration,
    ) -> Result<u64>;

    /// Gives claimed jobs back unrun (a worker shutting down): `pending`
    /// now, the attempt not counted. Returns how many leases were current.
    /// System only.
    async fn release_jobs(&self, ctx: &Context, leases: &[Lease]) -> Result<u64>;

    /// Cancels the waiting (`pending`) jobs that match every field of the
    /// filter; running jobs finish. Returns how many. System only. Errors:
    /// `Validation` for an empty filter.
    async fn cancel_jobs(&self, ctx: &Context, filter: &CancelFilter) -> Result<u64>;

    /// Runs a job of the context's tenant again now, as an operator's
    /// "retry" on a dead or cancelled job (and "run now" on a waiting one):
    /// see [`retried`] for exactly what changes; a running or completed job
    /// is left as it is. The job keeps its key unless another waiting or
    /// running job of its kind now holds it. Wakes the kind's workers.
    /// Returns the job as it now is. System only, like
    /// [`Self::cancel_jobs`]; `NotFound` for a job not in the tenant.
    async fn retry_job(&self, ctx: &Context, id: JobId) -> Result<Job>;

    /// Deletes up to `limit` finished jobs (completed, dead, cancelled) that
    /// finished before `cutoff`; returns how many. System only.
    async fn purge_jobs(&self, ctx: &Context, cutoff: DateTime<Utc>, limit: u32) -> Result<u64>;
}
