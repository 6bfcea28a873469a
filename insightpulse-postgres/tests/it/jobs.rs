//! Database-only checks of the job queue: several workers and a crash,
//! the `LISTEN/NOTIFY` wake-up, and what RLS and grants let
//! `authenticated` do with jobs.

use crate::{acting_as, backend, tenant, user};
use async_trait::async_trait;
use chrono::Duration;
use insightpulse_core::jobs::{
    ClaimRequest, Job, JobHandler, JobKind, JobState, NewJob, RetryPolicy, Worker, WorkerConfig,
};
use insightpulse_core::{Context, JobId, TenantId};
use insightpulse_testing::conformance::jobs::PollingWaker;
use serde_json::json;
use sqlx::PgPool;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

fn kind() -> JobKind {
    JobKind::parse("sync").unwrap()
}

/// Records who ran what; refuses (and records) a job run by two workers
/// at once; fails jobs marked `fail`; `hang` (the crashing worker) never
/// returns.
#[derive(Default)]
struct Recorder {
    running: Mutex<HashSet<JobId>>,
    overlaps: Mutex<Vec<JobId>>,
    runs: Mutex<HashMap<JobId, u32>>,
    /// Handlers hanging now (a killed worker's end with it).
    hanging: std::sync::atomic::AtomicUsize,
}

/// Counts a hanging handler while it lives.
struct Hanging(Arc<Recorder>);

impl Hanging {
    fn new(rec: Arc<Recorder>) -> Self {
        rec.hanging
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self(rec)
    }
}

impl Drop for Hanging {
    fn drop(&mut self) {
        self.0
            .hanging
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

struct Handler {
    rec: Arc<Recorder>,
    hang: bool,
}

#[async_trait]
impl JobHandler for Handler {
    async fn handle(&self, job: &Job) -> Result<(), String> {
        if !self.rec.running.lock().unwrap().insert(job.id) {
            self.rec.overlaps.lock().unwrap().push(job.id);
        }
        *self.rec.runs.lock().unwrap().entry(job.id).or_default() += 1;
        if self.hang {
            let _hanging = Hanging::new(self.rec.clone());
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        self.rec.running.lock().unwrap().remove(&job.id);
        if job.payload["fail"] == true {
            Err("always fails".into())
        } else {
            Ok(())
        }
    }
}

fn config(id: &str) -> WorkerConfig {
    WorkerConfig {
        concurrency: 3,
        batch: 5,
        lease: Duration::seconds(60),
        poll_interval: std::time::Duration::from_millis(20),
        retry: RetryPolicy {
            base: Duration::zero(),
            ..RetryPolicy::default()
        },
        ..WorkerConfig::new(kind(), id)
    }
}

async fn unfinished(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM insightpulse.jobs WHERE state IN ('pending', 'running')",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Three workers and one that crashes mid-job: the crashed worker's jobs
/// run again once their lease has expired; nothing is lost, no job runs
/// in two workers at once, every job runs once more than it crashed, and
/// always-failing jobs are dead after their last attempt.
#[sqlx::test(migrations = false)]
async fn workers_survive_a_crash_without_losing_or_sharing_jobs(pool: PgPool) {
    let (backend, clock) = backend(pool.clone()).await;
    let repos = backend.repos();
    let mut tenants: Vec<TenantId> = Vec::new();
    for slug in ["acme", "globex", "initech"] {
        let owner = user(&repos, &format!("owner@{slug}.io")).await;
        tenants.push(tenant(&repos, owner.id, slug).await.0.id);
    }
    let mut ok = Vec::new();
    let mut failing = Vec::new();
    for i in 0..90 {
        let t = tenants[i % 3];
        let ctx = Context::system("test").in_tenant(t);
        let fail = i % 30 == 7;
        let job = NewJob::new(kind(), json!({ "i": i, "fail": fail })).with_max_attempts(3);
        let id = repos.jobs.enqueue_job(&ctx, job).await.unwrap().id();
        if fail {
            failing.push((t, id))
        } else {
            ok.push((t, id))
        }
    }

    // The crashing worker takes a batch, starts it, and dies.
    let crashed_rec = Arc::new(Recorder::default());
    let crashing = Worker::spawn(
        repos.jobs.clone(),
        Arc::new(PollingWaker),
        config("crashing"),
        Arc::new(Handler {
            rec: crashed_rec.clone(),
            hang: true,
        }),
    );
    for _ in 0..500 {
        if crashed_rec.runs.lock().unwrap().len() == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    crashing.kill();
    let crashed: Vec<JobId> = crashed_rec.runs.lock().unwrap().keys().copied().collect();
    assert_eq!(crashed.len(), 3, "the crashing worker held its jobs");
    // Killed, its handlers are gone with it (nothing of it runs on).
    for _ in 0..200 {
        if crashed_rec
            .hanging
            .load(std::sync::atomic::Ordering::SeqCst)
            == 0
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        crashed_rec
            .hanging
            .load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a killed worker's handlers end"
    );
    // Its leases run out.
    clock.advance(Duration::seconds(61));

    let rec = Arc::new(Recorder::default());
    let waker = Arc::new(backend.job_waker().await.unwrap());
    let workers: Vec<_> = (0..3)
        .map(|w| {
            Worker::spawn(
                repos.jobs.clone(),
                waker.clone(),
                config(&format!("w{w}")),
                Arc::new(Handler {
                    rec: rec.clone(),
                    hang: false,
                }),
            )
        })
        .collect();
    for _ in 0..1500 {
        if unfinished(&pool).await == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(unfinished(&pool).await, 0, "jobs were lost");
    let mut claimed = 0;
    for w in workers {
        claimed += w.shutdown().await.claimed;
    }

    assert!(
        rec.overlaps.lock().unwrap().is_empty(),
        "a job ran twice at once"
    );
    let runs = rec.runs.lock().unwrap().clone();
    let sys = |t| Context::system("test").in_tenant(t);
    for (t, id) in &ok {
        let job = repos.jobs.get_job(&sys(*t), *id).await.unwrap();
        assert_eq!(job.state, JobState::Completed, "{id:?}");
        let expected = if crashed.contains(id) { 2 } else { 1 };
        assert_eq!(job.attempts, expected, "{id:?}");
        assert_eq!(runs[id], 1, "{id:?} ran once after the crash");
    }
    for (t, id) in &failing {
        let job = repos.jobs.get_job(&sys(*t), *id).await.unwrap();
        assert_eq!((job.state, job.attempts), (JobState::Dead, 3), "{id:?}");
        assert!(job.finished_at.is_some());
    }
    assert_eq!(claimed, runs.values().map(|n| u64::from(*n)).sum::<u64>());
}

/// An idle worker wakes on the enqueue's `NOTIFY`, long before its poll.
#[sqlx::test(migrations = false)]
async fn notify_wakes_an_idle_worker(pool: PgPool) {
    let (backend, _clock) = backend(pool.clone()).await;
    let repos = backend.repos();
    let owner = user(&repos, "owner@acme.io").await;
    let (acme, _) = tenant(&repos, owner.id, "acme").await;
    let rec = Arc::new(Recorder::default());
    let worker = Worker::spawn(
        repos.jobs.clone(),
        Arc::new(backend.job_waker().await.unwrap()),
        WorkerConfig {
            poll_interval: std::time::Duration::from_secs(60),
            ..config("idle")
        },
        Arc::new(Handler {
            rec: rec.clone(),
            hang: false,
        }),
    );
    // Let it find the queue empty and go to sleep.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let ctx = Context::system("test").in_tenant(acme.id);
    let id = repos
        .jobs
        .enqueue_job(&ctx, NewJob::new(kind(), json!({})))
        .await
        .unwrap()
        .id();
    while repos.jobs.get_job(&ctx, id).await.unwrap().state != JobState::Completed {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "never woken"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    worker.shutdown().await;
}

/// `authenticated` reads its tenant's jobs only with `job.read`, and
/// writes them only through `insightpulse.enqueue_job`: no direct insert,
/// update or delete, no claim function.
#[sqlx::test(migrations = false)]
async fn authenticated_reads_with_job_read_and_never_writes_directly(pool: PgPool) {
    let (backend, _clock) = backend(pool.clone()).await;
    let repos = backend.repos();
    let owner = user(&repos, "owner@acme.io").await;
    let (acme, owner_ctx) = tenant(&repos, owner.id, "acme").await;
    let sys = Context::system("test").in_tenant(acme.id);
    repos
        .jobs
        .enqueue_job(&sys, NewJob::new(kind(), json!({})))
        .await
        .unwrap();
    let outsider = user(&repos, "outsider@else.io").await;
    tenant(&repos, outsider.id, "else").await;

    let count = |ctx: Context| {
        let pool = pool.clone();
        async move {
            let mut tx = acting_as(&pool, &ctx).await;
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM insightpulse.jobs")
                .fetch_one(&mut *tx)
                .await
                .unwrap()
        }
    };
    assert_eq!(count(owner_ctx.clone()).await, 1);
    assert_eq!(count(Context::user(outsider.id)).await, 0);

    for sql in [
        format!(
            "INSERT INTO insightpulse.jobs (tenant_id, kind, payload, max_attempts, run_at, created_at, updated_at)
             VALUES ('{}', 'sync', '{{}}', 1, now(), now(), now())",
            acme.id
        ),
        "UPDATE insightpulse.jobs SET priority = 1".to_owned(),
        "DELETE FROM insightpulse.jobs".to_owned(),
        "SELECT * FROM insightpulse.claim_jobs('sync', 'me', 10, NULL, now(), now())".to_owned(),
    ] {
        let mut tx = acting_as(&pool, &owner_ctx).await;
        let err = sqlx::query(&sql).execute(&mut *tx).await.unwrap_err();
        let code = err.as_database_error().and_then(|e| e.code()).unwrap_or_default().into_owned();
        assert_eq!(code, "42501", "{sql}");
    }
    // The policy evaluates its helper once per statement (an InitPlan).
    let mut tx = acting_as(&pool, &owner_ctx).await;
    let plan: Vec<String> = sqlx::query_scalar("EXPLAIN SELECT * FROM insightpulse.jobs")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert!(plan.iter().any(|l| l.contains("InitPlan")), "{plan:?}");
    // A claim request is validated before any I/O.
    let bad = ClaimRequest::new(kind(), "w", 0, Duration::seconds(1));
    assert!(repos
        .jobs
        .claim_jobs(&Context::system("test"), &bad)
        .await
        .unwrap_err()
        .is_validation());
}

/// A per-tenant limit holds under concurrent claimers: however they race,
/// no tenant ever has more running jobs than its limit.
#[sqlx::test(migrations = false)]
async fn per_tenant_limits_hold_under_concurrent_claimers(pool: PgPool) {
    let (backend, _clock) = backend(pool.clone()).await;
    let repos = backend.repos();
    let mut tenants = Vec::new();
    for slug in ["t-one", "t-two", "t-three", "t-four"] {
        let owner = user(&repos, &format!("owner@{slug}.io")).await;
        tenants.push(tenant(&repos, owner.id, slug).await.0.id);
    }
    for t in &tenants {
        let ctx = Context::system("test").in_tenant(*t);
        for i in 0..15 {
            let job = NewJob::new(kind(), json!({ "i": i }));
            repos.jobs.enqueue_job(&ctx, job).await.unwrap();
        }
    }
    let req = ClaimRequest::new(kind(), "racer", 3, Duration::seconds(60)).with_per_tenant_limit(2);
    let racers: Vec<_> = (0..6)
        .map(|_| {
            let (jobs, req) = (repos.jobs.clone(), req.clone());
            tokio::spawn(async move {
                let mut got = 0;
                for _ in 0..10 {
                    got += jobs
                        .claim_jobs(&Context::system("test"), &req)
                        .await
                        .unwrap()
                        .len();
                }
                got
            })
        })
        .collect();
    let mut claimed = 0;
    for r in racers {
        claimed += r.await.unwrap();
    }
    let running: Vec<(uuid::Uuid, i64)> = sqlx::query_as(
        "SELECT tenant_id, count(*) FROM insightpulse.jobs WHERE state = 'running' GROUP BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(claimed, 8, "{running:?}");
    assert_eq!(running.len(), 4);
    assert!(running.iter().all(|(_, n)| *n == 2), "{running:?}");
}

/// Retrying a job wakes an idle worker of its kind through `NOTIFY`, long
/// before its poll: the retried job runs at once.
#[sqlx::test(migrations = false)]
async fn retry_wakes_an_idle_worker(pool: PgPool) {
    let (backend, _clock) = backend(pool.clone()).await;
    let repos = backend.repos();
    let owner = user(&repos, "owner@acme.io").await;
    let (acme, _) = tenant(&repos, owner.id, "acme").await;
    let ctx = Context::system("test").in_tenant(acme.id);
    let id = repos
        .jobs
        .enqueue_job(&ctx, NewJob::new(kind(), json!({})))
        .await
        .unwrap()
        .id();
    let filter = insightpulse_core::jobs::CancelFilter {
        tenant: Some(acme.id),
        ..Default::default()
    };
    assert_eq!(repos.jobs.cancel_jobs(&ctx, &filter).await.unwrap(), 1);
    let rec = Arc::new(Recorder::default());
    let worker = Worker::spawn(
        repos.jobs.clone(),
        Arc::new(backend.job_waker().await.unwrap()),
        WorkerConfig {
            poll_interval: std::time::Duration::from_secs(60),
            ..config("idle")
        },
        Arc::new(Handler {
            rec: rec.clone(),
            hang: false,
        }),
    );
    // Let it find nothing to claim and go to sleep.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        repos.jobs.get_job(&ctx, id).await.unwrap().state,
        JobState::Cancelled
    );
    let started = std::time::Instant::now();
    assert_eq!(
        repos.jobs.retry_job(&ctx, id).await.unwrap().state,
        JobState::Pending
    );
    while repos.jobs.get_job(&ctx, id).await.unwrap().state != JobState::Completed {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "never woken"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    worker.shutdown().await;
    assert_eq!(rec.runs.lock().unwrap()[&id], 1);
}

/// A worker call cut off mid-flight (its future dropped while the database
/// still runs it) never hands its connection, inside a transaction acting
/// as the system, to the next borrower: the connection is closed, and a
/// finished call's connection goes back to the pool.
#[sqlx::test(migrations = false)]
async fn a_worker_call_cut_off_mid_flight_closes_its_connection(pool: PgPool) {
    let (backend, _clock) = backend(pool.clone()).await;
    let repos = backend.repos();
    let owner = user(&repos, "owner@acme.io").await;
    let (acme, _) = tenant(&repos, owner.id, "acme").await;
    let sys = Context::system("test").in_tenant(acme.id);
    repos
        .jobs
        .enqueue_job(&sys, NewJob::new(kind(), json!({})))
        .await
        .unwrap();
    let one = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(pool.connect_options().as_ref().clone())
        .await
        .unwrap();
    let jobs = insightpulse_postgres::PgBackend::from_pool(
        one.clone(),
        insightpulse_core::tenancy::tokens::TokenHasher::insecure_development(),
    )
    .repos()
    .jobs;
    let pid = |pool: PgPool| async move {
        sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let system = Context::system("test");
    let claimed = jobs
        .claim_jobs(
            &system,
            &ClaimRequest::new(kind(), "w", 1, Duration::seconds(60)),
        )
        .await
        .unwrap();
    let first = pid(one.clone()).await;
    assert_eq!(
        jobs.release_jobs(&system, &[claimed[0].lease()])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        pid(one.clone()).await,
        first,
        "a finished call keeps its connection"
    );

    // Another session locks the job: the completion waits on it, and is cut off.
    let held = jobs
        .claim_jobs(
            &system,
            &ClaimRequest::new(kind(), "w", 1, Duration::seconds(60)),
        )
        .await
        .unwrap();
    let mut locker = pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM insightpulse.jobs FOR UPDATE")
        .execute(&mut *locker)
        .await
        .unwrap();
    let cut = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        jobs.complete_jobs(&system, &[held[0].lease()]),
    )
    .await;
    assert!(
        cut.is_err(),
        "the completion should have waited on the lock"
    );
    locker.commit().await.unwrap();
    assert_ne!(
        pid(one.clone()).await,
        first,
        "the cut-off connection was reused"
    );
}

/// A waker holds one connection for its `LISTEN` while it lives, and gives
/// it back when dropped.
#[sqlx::test(migrations = false)]
async fn a_dropped_waker_gives_its_connection_back(pool: PgPool) {
    backend(pool.clone()).await;
    let one = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_millis(500))
        .connect_with(pool.connect_options().as_ref().clone())
        .await
        .unwrap();
    let backend = insightpulse_postgres::PgBackend::from_pool(
        one.clone(),
        insightpulse_core::tenancy::tokens::TokenHasher::insecure_development(),
    );
    let waker = backend.job_waker().await.unwrap();
    assert!(
        one.acquire().await.is_err(),
        "the listener holds the only connection"
    );
    drop(waker);
    let mut back = None;
    for _ in 0..20 {
        if let Ok(conn) = one.acquire().await {
            back = Some(conn);
            break;
        }
    }
    assert!(back.is_some(), "the dropped waker kept its connection");
}

/// An idle worker's wait lasts its timeout unless a job of its own kind is
/// enqueued: another kind's enqueue does not end it, its own kind's does.
#[sqlx::test(migrations = false)]
async fn the_waker_waits_for_its_own_kind(pool: PgPool) {
    use insightpulse_core::jobs::JobWaker;
    use std::time::{Duration as StdDuration, Instant};
    let (backend, _clock) = backend(pool.clone()).await;
    let repos = backend.repos();
    let owner = user(&repos, "owner@acme.io").await;
    let (acme, _) = tenant(&repos, owner.id, "acme").await;
    let ctx = Context::system("test").in_tenant(acme.id);
    let waker = Arc::new(backend.job_waker().await.unwrap());
    let started = Instant::now();
    waker.wait(&kind(), StdDuration::from_millis(300)).await;
    assert!(started.elapsed() >= StdDuration::from_millis(300));

    let w = waker.clone();
    let waiting = tokio::spawn(async move {
        let started = Instant::now();
        w.wait(&kind(), StdDuration::from_secs(10)).await;
        started.elapsed()
    });
    tokio::time::sleep(StdDuration::from_millis(200)).await;
    let other = NewJob::new(JobKind::parse("other").unwrap(), json!({}));
    repos.jobs.enqueue_job(&ctx, other).await.unwrap();
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "woken by another kind");
    repos
        .jobs
        .enqueue_job(&ctx, NewJob::new(kind(), json!({})))
        .await
        .unwrap();
    let waited = tokio::time::timeout(StdDuration::from_secs(5), waiting)
        .await
        .expect("woken by its kind")
        .unwrap();
    assert!(waited >= StdDuration::from_millis(500), "{waited:?}");
}
