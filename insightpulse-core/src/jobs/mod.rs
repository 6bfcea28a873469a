//! The job queue (platform): one queue for inbound integration events,
//! webhook deliveries, OCR and embedding jobs, alert evaluations and
//! workflow steps, with a worker runtime written once against
//! [`JobRepo`].
//!
//! Rules guarded here:
//! - **At least once.** A claimed job is held under a lease with a
//!   deadline; a worker that dies loses it when the deadline passes and the
//!   next claim takes the job again (graphile-worker keeps such jobs locked
//!   for four hours; here it is the lease, seconds to minutes). A worker
//!   alive renews the lease of a long handler ([`JobRepo::extend_leases`]),
//!   so a lease only has to outlast a crash's detection, not the longest
//!   handler. Handlers must be idempotent. A lease is one claim:
//!   completing or renewing through an expired lease whose job was claimed
//!   again changes nothing.
//! - **Attempts end.** Each claim counts an attempt; a failure waits
//!   per [`RetryPolicy`] (exponential, jittered); after `max_attempts` the
//!   job is `dead` and stays for inspection ([`JobRepo::list_jobs`]) until
//!   purged, or until an operator runs it again ([`JobRepo::retry_job`],
//!   its attempts kept: see [`retried`]).
//! - **Tenants are isolated and treated fairly.** A job is a row of its
//!   tenant (RLS forced); a claim gives every tenant with ready jobs an
//!   equal share of the batch, so one tenant's 10,000 jobs do not starve
//!   another's one, and an optional per-tenant limit caps each tenant's
//!   running jobs of a kind.
//! - **Enqueued with the change that needs it.** The PostgreSQL backend
//!   offers modules an enqueue inside their own transaction, so a module's
//!   row and its job commit or roll back together; workers are woken by
//!   `NOTIFY` on commit.
//! - **Who may do what.** Workers act as the system. A user or API key of
//!   a tenant may read and list its tenant's jobs with `job.read`; it
//!   enqueues only through a module's own (permission-checked) call,
//!   inside that call's transaction; claiming, renewing, completing,
//!   cancelling, retrying and purging are the system's.
//!
//! Job keys ([`KeyMode`]) replace or deduplicate a waiting job of the same
//! tenant, kind and key.

mod model;
mod repo;
mod retry;
pub mod worker;

pub use model::*;
pub use repo::JobRepo;
#[cfg(feature = "mocks")]
pub use repo::MockJobRepo;
pub use retry::RetryPolicy;
pub use worker::{JobHandler, JobWaker, Worker, WorkerConfig, WorkerHandle};
