//! The worker runtime, written once against [`JobRepo`]: each backend only
//! provides the wake-up ([`JobWaker`]: `LISTEN/NOTIFY` on PostgreSQL, a
//! `tokio::sync::Notify` in memory).
//!
//! Rules guarded here: at most `concurrency` handlers of a kind run at
//! once, and the runtime claims only as many jobs as it has free handlers
//! (a claimed job never waits in a local queue while its lease runs out);
//! a handler still running at half its lease has the lease renewed
//! ([`JobRepo::extend_leases`]), again every half lease, until it ends — so
//! a long handler keeps its job while a crashed worker still loses its
//! jobs after one lease; a handler whose lease is lost (the renewal finds
//! it claimed again, or no renewal succeeds before the lease ends) or
//! that runs past `timeout` is abandoned as failed; an idle worker sleeps
//! until woken or `poll_interval` passes (delayed and retried jobs are
//! found by the poll); outcomes are written in batches; shutdown stops
//! claiming, lets running handlers finish within `shutdown_grace`, and
//! gives the jobs of the others back unrun.
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
use tokio::time::Instant;

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
    /// The lease of each claim, renewed every half lease while the
    /// handler runs: how long a crashed worker's jobs wait to run again.
    pub lease: chrono::Duration,
    /// The longest idle sleep.
    pub poll_interval: Duration,
    /// Waits between attempts.
    pub retry: RetryPolicy,
    /// At most this many running jobs of the kind per tenant.
    pub per_tenant_limit: Option<u32>,
    /// How long shutdown waits for running handlers.
    pub shutdown_grace: Duration,
    /// The longest a handler may run, renewals included (`None`: no
    /// limit); past it the attempt is abandoned as failed.
    pub timeout: Option<Duration>,
}

impl WorkerConfig {
    /// 4 handlers, batches of 10, 60 s leases, a 1 s poll, the default
    /// retry policy, no tenant limit, 10 s of grace, a 15-minute timeout.
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
            timeout: Some(Duration::from_secs(15 * 60)),
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
    /// Leases renewed for handlers running past half their lease.
    pub renewed: u64,
    /// Backend errors (claims or writes that failed; retried later).
    pub errors: u64,
}

#[derive(Default)]
struct Counters {
    claimed: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    released: AtomicU64,
    renewed: AtomicU64,
    errors: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> WorkerStats {
        WorkerStats {
            claimed: self.claimed.load(Ordering::Relaxed),
            succeeded: self.succeeded.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            released: self.released.load(Ordering::Relaxed),
            renewed: self.renewed.load(Ordering::Relaxed),
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
        // The lease runs from no later than this instant.
        let claimed_at = Instant::now();
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
            let held = Held {
                repo: repo.clone(),
                counters: counters.clone(),
                lease,
                renew_for: config.lease,
                claimed_at,
                timeout: config.timeout,
            };
            let retry = config.retry;
            lock(&in_flight).insert(job.lease());
            handlers.spawn(async move {
                let _permit = permit;
                let result = held.run(handler.as_ref(), &job).await;
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

// Why the runtime abandoned an attempt (the failure's `last_error`; after a
// lost lease the failure changes nothing, the job being someone else's).
const OUTLIVED: &str = "the handler outlived its lease";
const LOST: &str = "the lease was lost: it expired and the job was taken back";
const TIMED_OUT: &str = "the handler ran past its timeout";

/// What one handler needs to keep its lease while it runs.
struct Held {
    repo: Arc<dyn JobRepo>,
    counters: Arc<Counters>,
    /// The lease's length.
    lease: Duration,
    /// The same, as the repository takes it.
    renew_for: chrono::Duration,
    /// When the claim was asked for: the lease ends no earlier than
    /// `claimed_at + lease`.
    claimed_at: Instant,
    timeout: Option<Duration>,
}

impl Held {
    /// Runs the handler while renewing its lease every half lease; the
    /// handler's own result, or why it was abandoned.
    async fn run(&self, handler: &dyn JobHandler, job: &Job) -> Result<(), String> {
        let limit = async {
            match self.timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = handler.handle(job) => result,
            abandoned = self.renew(job.lease()) => Err(abandoned.to_owned()),
            () = limit => Err(TIMED_OUT.to_owned()),
        }
    }

    /// Renews `lease` from half-way on, every half lease; returns only when
    /// the lease is lost (a renewal found it stale, or none succeeded
    /// before it ended). A failed renewal is retried every eighth of a
    /// lease until the lease ends.
    async fn renew(&self, lease: Lease) -> &'static str {
        let (ctx, leases) = (system(), [lease]);
        let mut deadline = self.claimed_at + self.lease;
        let mut next = self.claimed_at + self.lease / 2;
        loop {
            tokio::time::sleep_until(next).await;
            let asked = Instant::now();
            if asked >= deadline {
                return OUTLIVED;
            }
            let renewal = self.repo.extend_leases(&ctx, &leases, self.renew_for);
            match tokio::time::timeout_at(deadline, renewal).await {
                Err(_) => return OUTLIVED,
                Ok(Ok(0)) => return LOST,
                Ok(Ok(_)) => {
                    self.counters.renewed.fetch_add(1, Ordering::Relaxed);
                    deadline = asked + self.lease;
                    next = asked + self.lease / 2;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, job = %lease.id, "lease renewal failed");
                    self.counters.errors.fetch_add(1, Ordering::Relaxed);
                    next = (asked + self.lease / 8).min(deadline);
                }
            }
        }
    }
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

#[cfg(all(test, feature = "mocks"))]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::ids::{JobId, TenantId};
    use crate::jobs::{JobState, MockJobRepo};

    const LEASE: Duration = Duration::from_millis(200);

    fn job() -> Job {
        let now = chrono::Utc::now();
        Job {
            id: JobId::new(),
            tenant_id: TenantId::new(),
            kind: JobKind::parse("k").unwrap(),
            payload: serde_json::json!({}),
            key: None,
            priority: 0,
            state: JobState::Running,
            attempts: 3,
            max_attempts: 5,
            run_at: now,
            lease_until: Some(now),
            locked_by: Some("w".into()),
            last_error: None,
            created_at: now,
            finished_at: None,
        }
    }

    /// Sleeps `ms` then answers `result`; `None` never returns.
    struct Sleeper(Option<u64>, Result<(), &'static str>);

    #[async_trait]
    impl JobHandler for Sleeper {
        async fn handle(&self, _job: &Job) -> Result<(), String> {
            match self.0 {
                Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                None => std::future::pending().await,
            }
            self.1.map_err(str::to_owned)
        }
    }

    /// What a mock was called with, call by call.
    type Calls<T> = Arc<Mutex<Vec<T>>>;

    /// Renewals answer `answer`; each call's instant and arguments are
    /// recorded.
    fn repo(
        answer: fn() -> crate::error::Result<u64>,
    ) -> (MockJobRepo, Calls<(Instant, Vec<Lease>, chrono::Duration)>) {
        let calls: Calls<_> = Arc::default();
        let mut repo = MockJobRepo::new();
        let seen = calls.clone();
        repo.expect_extend_leases()
            .returning(move |ctx, leases, by| {
                assert!(ctx.is_system());
                seen.lock()
                    .unwrap()
                    .push((Instant::now(), leases.to_vec(), by));
                answer()
            });
        (repo, calls)
    }

    fn held(repo: MockJobRepo, timeout: Option<Duration>) -> Held {
        Held {
            repo: Arc::new(repo),
            counters: Arc::default(),
            lease: LEASE,
            renew_for: chrono::Duration::milliseconds(200),
            claimed_at: Instant::now(),
            timeout,
        }
    }

    #[tokio::test]
    async fn outcomes_are_written_in_batches_of_at_most_a_thousand() {
        // 1,500 outcomes waiting, alternately a failure and a success.
        let (outcomes, inbox) = mpsc::unbounded_channel();
        let job = job();
        for i in 0..1500 {
            let lease = Lease {
                attempt: i,
                ..job.lease()
            };
            let _ = outcomes.send(if i % 2 == 0 {
                Outcome::Failed(Failure {
                    lease,
                    error: "boom".into(),
                    retry_in: chrono::Duration::zero(),
                })
            } else {
                Outcome::Done(lease)
            });
        }
        drop(outcomes);
        let batches: Calls<(&str, Vec<u32>)> = Arc::default();
        let mut repo = MockJobRepo::new();
        let seen = batches.clone();
        repo.expect_complete_jobs().returning(move |_, leases| {
            let attempts = leases.iter().map(|l| l.attempt).collect();
            seen.lock().unwrap().push(("done", attempts));
            Ok(leases.len() as u64)
        });
        let seen = batches.clone();
        repo.expect_fail_jobs().returning(move |_, failures| {
            let attempts = failures.iter().map(|f| f.lease.attempt).collect();
            seen.lock().unwrap().push(("failed", attempts));
            Err(Error::validation("x", "down"))
        });
        let counters = Arc::new(Counters::default());
        write_outcomes(Arc::new(repo), inbox, counters.clone()).await;

        let batches = batches.lock().unwrap().clone();
        let sizes: Vec<(&str, usize)> = batches.iter().map(|(k, b)| (*k, b.len())).collect();
        assert_eq!(
            sizes,
            [
                ("done", 500),
                ("failed", 500),
                ("done", 250),
                ("failed", 250)
            ]
        );
        let mut all: Vec<u32> = batches.into_iter().flat_map(|(_, b)| b).collect();
        all.sort_unstable();
        assert_eq!(all, (0..1500).collect::<Vec<_>>());
        let stats = counters.snapshot();
        // Written successes count; a failed write is an error, not a failure.
        assert_eq!((stats.succeeded, stats.failed, stats.errors), (750, 0, 2));
    }

    #[tokio::test]
    async fn a_long_handler_has_its_lease_renewed_every_half_lease() {
        let (repo, calls) = repo(|| Ok(1));
        let held = held(repo, None);
        let job = job();
        let result = held.run(&Sleeper(Some(470), Ok(())), &job).await;
        assert_eq!(result, Ok(()));
        let calls = calls.lock().unwrap().clone();
        // At 100, 200, 300 and 400 ms; never before half a lease.
        assert!((2..=5).contains(&calls.len()), "{}", calls.len());
        assert!(calls[0].0 >= held.claimed_at + LEASE / 2);
        for pair in calls.windows(2) {
            // (Recorded a moment after each renewal was asked for.)
            assert!(pair[1].0 + Duration::from_millis(5) >= pair[0].0 + LEASE / 2);
        }
        for (_, leases, by) in &calls {
            assert_eq!(leases.as_slice(), [job.lease()]);
            assert_eq!(*by, held.renew_for);
        }
        let stats = held.counters.snapshot();
        assert_eq!(stats.renewed, calls.len() as u64);
        assert_eq!(stats.errors, 0);
    }

    #[tokio::test]
    async fn a_quick_handler_renews_nothing_and_its_result_stands() {
        let (repo, calls) = repo(|| Ok(1));
        let held = held(repo, None);
        assert_eq!(held.run(&Sleeper(Some(20), Ok(())), &job()).await, Ok(()));
        assert_eq!(
            held.run(&Sleeper(Some(20), Err("nope")), &job()).await,
            Err("nope".to_owned())
        );
        assert!(calls.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_lost_lease_abandons_the_handler() {
        let (repo, calls) = repo(|| Ok(0));
        let held = held(repo, None);
        let result = held.run(&Sleeper(None, Ok(())), &job()).await;
        assert_eq!(result, Err(LOST.to_owned()));
        assert_eq!(calls.lock().unwrap().len(), 1);
        assert_eq!(held.counters.snapshot().renewed, 0);
    }

    #[tokio::test]
    async fn failed_renewals_are_retried_until_the_lease_ends() {
        let (repo, calls) = repo(|| Err(Error::validation("x", "down")));
        let held = held(repo, None);
        let result = held.run(&Sleeper(None, Ok(())), &job()).await;
        assert_eq!(result, Err(OUTLIVED.to_owned()));
        assert!(Instant::now() >= held.claimed_at + LEASE);
        let calls = calls.lock().unwrap().len() as u64;
        // At 100, 125, 150 and 175 ms: every eighth of a lease.
        assert!((3..=5).contains(&calls), "{calls}");
        assert_eq!(held.counters.snapshot().errors, calls);
    }

    #[tokio::test]
    async fn a_handler_past_its_timeout_is_abandoned_though_renewed() {
        let (repo, calls) = repo(|| Ok(1));
        let held = held(repo, Some(Duration::from_millis(350)));
        let result = held.run(&Sleeper(None, Ok(())), &job()).await;
        assert_eq!(result, Err(TIMED_OUT.to_owned()));
        assert!(Instant::now() >= held.claimed_at + Duration::from_millis(350));
        assert!(!calls.lock().unwrap().is_empty());
    }
}
