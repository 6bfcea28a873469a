//! The worker runtime, written once against [`JobRepo`]: each backend only
//! provides the wake-up ([`JobWaker`]: `LISTEN/NOTIFY` on PostgreSQL, a
//! `tokio::sync::Notify` in memory).
//!
//! Rules guarded here: at most `concurrency` handlers of a kind run at
//! once, and the runtime claims only as many jobs as it has free handlers
//! (a claimed job never waits in a local queue while its lease runs out);
//! a handler that outlives the lease is abandoned as failed (another
//! worker may already hold the job); an idle worker sleeps until woken or
//! `poll_interval` passes (delayed and retried jobs are found by the
//! poll); outcomes are written in batches; shutdown stops claiming, lets
//! running handlers finish within `shutdown_grace`, and gives the jobs of
//! the others back unrun.
//!
//! ```no_run
//! # async fn demo(repo: std::sync::Arc<dyn insightpulse_core::jobs::JobRepo>,
//! #               waker: std::sync::Arc<dyn insightpulse_core::jobs::JobWaker>) {
//! use insightpulse_core::jobs::{Job, JobHandler, JobKind, Worker, WorkerConfig};
//! struct Ocr;
//! #[async_trait::async_trait]
//! impl JobHandler for Ocr {
//!     async fn handle(&self, job: &Job) -> Result<(), String> {
//!         let _doc = &job.payload["doc"];
//!         Ok(())
//!     }
//! }
//! let config = WorkerConfig::new(JobKind::parse("ocr.run").unwrap(), "ocr-1");
//! let worker = Worker::spawn(repo, waker, config, std::sync::Arc::new(Ocr));
//! // … at shutdown:
//! let stats = worker.shutdown().await;
//! # let _ = stats; }
//! ```

use super::model::{stored_error, ClaimRequest, Failure, Job, JobKind, Lease};
use super::repo::JobRepo;
use super::retry::RetryPolicy;
use crate::context::Context;
use async_trait::async_trait;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

/// Runs one job. An `Err` is a failed attempt (retried per the worker's
/// [`RetryPolicy`]); its text is stored as the job's `last_error`.
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    /// Handles `job` (its `payload`, its `tenant_id`). Must be idempotent:
    /// a job may run more than once.
    async fn handle(&self, job: &Job) -> Result<(), String>;
}

/// A backend's wake-up for idle workers.
#[async_trait]
pub trait JobWaker: Send + Sync {
    /// Returns when a job of `kind` may have been enqueued, or after
    /// `timeout`, whichever comes first (spurious returns are allowed).
    async fn wait(&self, kind: &JobKind, timeout: Duration);
}

/// How a [`Worker`] runs one kind.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The kind it runs.
    pub kind: JobKind,
    /// Its name in `locked_by`.
    pub worker_id: String,
    /// Handlers at once.
    pub concurrency: usize,
    /// Most jobs per claim.
    pub batch: u32,
    /// The lease of each claim (longer than any handler should take).
    pub lease: chrono::Duration,
    /// The longest idle sleep.
    pub poll_interval: Duration,
    /// Waits between attempts.
    pub retry: RetryPolicy,
    /// At most this many running jobs of the kind per tenant.
    pub per_tenant_limit: Option<u32>,
    /// How long shutdown waits for running handlers.
    pub shutdown_grace: Duration,
}

impl WorkerConfig {
    /// 4 handlers, batches of 10, 60 s leases, a 1 s poll, the default
    /// retry policy, no tenant limit, 10 s of grace.
    pub fn new(kind: JobKind, worker_id: impl Into<String>) -> Self {
        Self {
            kind,
            worker_id: worker_id.into(),
            concurrency: 4,
            batch: 10,
            lease: chrono::Duration::seconds(60),
            poll_interval: Duration::from_secs(1),
            retry: RetryPolicy::default(),
            per_tenant_limit: None,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// What a worker did, returned by [`WorkerHandle::shutdown`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Jobs claimed.
    pub claimed: u64,
    /// Handlers that succeeded.
    pub succeeded: u64,
    /// Handlers that failed (or outlived their lease).
    pub failed: u64,
    /// Jobs given back unrun at shutdown.
    pub released: u64,
    /// Backend errors (claims or writes that failed; retried later).
    pub errors: u64,
}

#[derive(Default)]
struct Counters {
    claimed: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    released: AtomicU64,
    errors: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> WorkerStats {
        WorkerStats {
            claimed: self.claimed.load(Ordering::Relaxed),
            succeeded: self.succeeded.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            released: self.released.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

enum Outcome {
    Done(Lease),
    Failed(Failure),
}

/// A running worker; [`WorkerHandle::shutdown`] stops it.
#[derive(Debug)]
pub struct WorkerHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<WorkerStats>,
}

impl WorkerHandle {
    /// Stops claiming, waits up to the grace period for running handlers,
    /// gives the rest back, writes every outcome, and returns the counts.
    pub async fn shutdown(self) -> WorkerStats {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }

    /// Stops at once without writing anything, as a crashed process would
    /// (its jobs come back when their leases expire). For tests.
    pub fn kill(self) {
        self.task.abort();
    }
}

/// The runtime of one kind.
#[derive(Debug)]
pub struct Worker;

impl Worker {
    /// Starts a worker on the current tokio runtime.
    pub fn spawn(
        repo: Arc<dyn JobRepo>,
        waker: Arc<dyn JobWaker>,
        config: WorkerConfig,
        handler: Arc<dyn JobHandler>,
    ) -> WorkerHandle {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(repo, waker, config, handler, stopped));
        WorkerHandle { stop, task }
    }
}

fn system() -> Context {
    Context::system("job worker")
}

async fn run(
    repo: Arc<dyn JobRepo>,
    waker: Arc<dyn JobWaker>,
    config: WorkerConfig,
    handler: Arc<dyn JobHandler>,
    mut stopped: watch::Receiver<bool>,
) -> WorkerStats {
    let counters = Arc::new(Counters::default());
    let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let in_flight: Arc<Mutex<HashSet<Lease>>> = Arc::default();
    let (outcomes, inbox) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_outcomes(repo.clone(), inbox, counters.clone()));
    let mut handlers = JoinSet::new();
    let lease = config.lease.to_std().unwrap_or(Duration::from_secs(60));
    let ctx = system();

    while !*stopped.borrow() {
        while handlers.try_join_next().is_some() {}
        let free = permits.available_permits();
        if free == 0 {
            tokio::select! {
                p = permits.clone().acquire_owned() => drop(p),
                _ = stopped.changed() => {}
            }
            continue;
        }
        let mut req = ClaimRequest::new(
            config.kind.clone(),
            config.worker_id.clone(),
            u32::try_from(free)
                .unwrap_or(u32::MAX)
                .min(config.batch.max(1)),
            config.lease,
        );
        req.per_tenant_limit = config.per_tenant_limit;
        let jobs = match repo.claim_jobs(&ctx, &req).await {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::warn!(error = %e, kind = %config.kind, "job claim failed");
                counters.errors.fetch_add(1, Ordering::Relaxed);
                tokio::select! {
                    _ = tokio::time::sleep(config.poll_interval) => {}
                    _ = stopped.changed() => {}
                }
                continue;
            }
        };
        if jobs.is_empty() {
            tokio::select! {
                _ = waker.wait(&config.kind, config.poll_interval) => {}
                _ = stopped.changed() => {}
            }
            continue;
        }
        counters
            .claimed
            .fetch_add(jobs.len() as u64, Ordering::Relaxed);
        for job in jobs {
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                // Cannot happen (we claimed no more than the free permits);
                // give the job back rather than run it over the limit.
                let _ = repo.release_jobs(&ctx, &[job.lease()]).await;
                continue;
            };
            let (handler, outcomes, in_flight) =
                (handler.clone(), outcomes.clone(), in_flight.clone());
            let retry = config.retry;
            lock(&in_flight).insert(job.lease());
            handlers.spawn(async move {
                let _permit = permit;
                let result = match tokio::time::timeout(lease, handler.handle(&job)).await {
                    Ok(r) => r,
                    Err(_) => Err("the handler outlived its lease".to_owned()),
                };
                let outcome = match result {
                    Ok(()) => Outcome::Done(job.lease()),
                    Err(error) => Outcome::Failed(Failure {
                        lease: job.lease(),
                        error: stored_error(&error),
                        retry_in: retry.random_delay(job.attempts),
                    }),
                };
                // No await between these two: an abort at shutdown either
                // finds the lease in flight (and releases it) or its
                // outcome sent, never neither.
                lock(&in_flight).remove(&job.lease());
                let _ = outcomes.send(outcome);
            });
        }
    }

    // Shutdown: let running handlers finish within the grace period.
    let drained = tokio::time::timeout(config.shutdown_grace, async {
        while handlers.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        handlers.abort_all();
        while handlers.join_next().await.is_some() {}
    }
    let unfinished: Vec<Lease> = lock(&in_flight).drain().collect();
    if !unfinished.is_empty() {
        match repo.release_jobs(&ctx, &unfinished).await {
            Ok(n) => {
                counters.released.fetch_add(n, Ordering::Relaxed);
            }
            Err(_) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    drop(outcomes);
    let _ = writer.await;
    counters.snapshot()
}

fn lock(m: &Mutex<HashSet<Lease>>) -> std::sync::MutexGuard<'_, HashSet<Lease>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Writes outcomes as they come, every waiting one in one call per kind of
/// outcome (batched completion).
async fn write_outcomes(
    repo: Arc<dyn JobRepo>,
    mut inbox: mpsc::UnboundedReceiver<Outcome>,
    counters: Arc<Counters>,
) {
    let ctx = system();
    while let Some(first) = inbox.recv().await {
        let mut done = Vec::new();
        let mut failed = Vec::new();
        let mut next = Some(first);
        while let Some(outcome) = next {
            match outcome {
                Outcome::Done(l) => done.push(l),
                Outcome::Failed(f) => failed.push(f),
            }
            next = if done.len() + failed.len() < 1000 {
                inbox.try_recv().ok()
            } else {
                None
            };
        }
        if !done.is_empty() {
            match repo.complete_jobs(&ctx, &done).await {
                Ok(_) => counters
                    .succeeded
                    .fetch_add(done.len() as u64, Ordering::Relaxed),
                Err(_) => counters.errors.fetch_add(1, Ordering::Relaxed),
            };
        }
        if !failed.is_empty() {
            match repo.fail_jobs(&ctx, &failed).await {
                Ok(_) => counters
                    .failed
                    .fetch_add(failed.len() as u64, Ordering::Relaxed),
                Err(_) => counters.errors.fetch_add(1, Ordering::Relaxed),
            };
        }
    }
}
