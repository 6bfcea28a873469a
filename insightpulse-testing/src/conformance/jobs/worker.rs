//! The worker runtime over each backend (polling; the backends' own
//! wake-ups are tested with each backend).

use super::*;
use crate::conformance::Harness;
use crate::fixtures::*;
use async_trait::async_trait;
use insightpulse_core::jobs::{
    Job, JobHandler, JobKind, JobState, JobWaker, NewJob, RetryPolicy, Worker, WorkerConfig,
};
use insightpulse_core::{Clock, JobId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A wake-up that only sleeps: workers find jobs by polling.
#[derive(Debug, Clone, Copy)]
pub struct PollingWaker;

#[async_trait]
impl JobWaker for PollingWaker {
    async fn wait(&self, _kind: &JobKind, timeout: Duration) {
        tokio::time::sleep(timeout).await;
    }
}

/// Runs jobs whose payload says `"fail": true` into failure, the others to
/// success, and counts runs per job; `"hang": true` waits forever.
#[derive(Debug, Default)]
pub struct ScriptedHandler {
    /// Runs per job.
    pub runs: Mutex<HashMap<JobId, u32>>,
}

#[async_trait]
impl JobHandler for ScriptedHandler {
    async fn handle(&self, job: &Job) -> Result<(), String> {
        *self
            .runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(job.id)
            .or_default() += 1;
        if job.payload["hang"] == true {
            std::future::pending::<()>().await;
        }
        if job.payload["fail"] == true {
            return Err(format!("scripted failure {}", job.attempts));
        }
        Ok(())
    }
}

/// A quick configuration for tests: retries at once, polls every 10 ms.
pub fn quick_config(kind_: &str, worker_id: &str) -> WorkerConfig {
    WorkerConfig {
        concurrency: 3,
        batch: 4,
        poll_interval: Duration::from_millis(10),
        retry: RetryPolicy {
            base: chrono::Duration::zero(),
            ..RetryPolicy::default()
        },
        shutdown_grace: Duration::from_millis(100),
        ..WorkerConfig::new(kind(kind_), worker_id)
    }
}

/// Waits (up to 10 s) until every job of `ids` is finished.
async fn until_finished(r: &Repos, t: TenantId, ids: &[JobId]) {
    for _ in 0..1000 {
        let mut all = true;
        for id in ids {
            all &= job(r, t, *id).await.state.is_finished();
        }
        if all {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("jobs did not finish");
}

/// The runtime runs every job once, retries failures until the last
/// attempt, leaves the failing job dead, and reports what it did.
pub async fn the_worker_runs_retries_and_buries(h: Harness) {
    let r = &h.repos;
    let (acme, _, _) = tenant_with_owner(r, "acme").await;
    let mut ok = Vec::new();
    for i in 0..7 {
        ok.push(enqueue(r, acme.id, "k", n(i)).await);
    }
    let failing = enqueue_new(
        r,
        acme.id,
        NewJob::new(kind("k"), serde_json::json!({"fail": true})).with_max_attempts(3),
    )
    .await
    .id();
    let handler = Arc::new(ScriptedHandler::default());
    let worker = Worker::spawn(
        r.jobs.clone(),
        Arc::new(PollingWaker),
        quick_config("k", "w1"),
        handler.clone(),
    );
    let mut all = ok.clone();
    all.push(failing);
    until_finished(r, acme.id, &all).await;
    let stats = worker.shutdown().await;

    for id in &ok {
        assert_eq!(state(r, acme.id, *id).await, JobState::Completed);
    }
    let dead = job(r, acme.id, failing).await;
    assert_eq!((dead.state, dead.attempts), (JobState::Dead, 3));
    assert_eq!(dead.last_error.as_deref(), Some("scripted failure 3"));
    let runs = handler.runs.lock().unwrap().clone();
    assert!(ok.iter().all(|id| runs[id] == 1));
    assert_eq!(runs[&failing], 3);
    assert_eq!(
        (stats.claimed, stats.succeeded, stats.failed, stats.released),
        (10, 7, 3, 0)
    );
}

/// Shutdown gives back the jobs whose handlers do not finish in the grace
/// period, unrun, and writes the outcomes of the others.
pub async fn shutdown_gives_unfinished_jobs_back(h: Harness) {
    let r = &h.repos;
    let (acme, _, _) = tenant_with_owner(r, "acme").await;
    let hung = enqueue(r, acme.id, "k", serde_json::json!({"hang": true})).await;
    let quick = enqueue(r, acme.id, "k", n(1)).await;
    let handler = Arc::new(ScriptedHandler::default());
    let worker = Worker::spawn(
        r.jobs.clone(),
        Arc::new(PollingWaker),
        quick_config("k", "w1"),
        handler.clone(),
    );
    until_finished(r, acme.id, &[quick]).await;
    for _ in 0..500 {
        if handler.runs.lock().unwrap().contains_key(&hung) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = worker.shutdown().await;
    assert_eq!(stats.released, 1);
    let back = job(r, acme.id, hung).await;
    assert_eq!((back.state, back.attempts), (JobState::Pending, 0));
    assert_eq!(state(r, acme.id, quick).await, JobState::Completed);
}

/// Holds every job until released, counting runs per job.
#[derive(Debug)]
struct HoldingHandler {
    runs: Mutex<HashMap<JobId, u32>>,
    released: tokio::sync::watch::Receiver<bool>,
}

#[async_trait]
impl JobHandler for HoldingHandler {
    async fn handle(&self, job: &Job) -> Result<(), String> {
        *self
            .runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(job.id)
            .or_default() += 1;
        let mut released = self.released.clone();
        released.wait_for(|r| *r).await.map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// Waits (up to 10 s) until `f` holds of the job.
async fn until_job(r: &Repos, t: TenantId, id: JobId, f: impl Fn(&Job) -> bool) -> Job {
    for _ in 0..1000 {
        let j = job(r, t, id).await;
        if f(&j) {
            return j;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the job never got there: {:?}", job(r, t, id).await);
}

/// A handler that outlives its lease keeps its job: its worker renews the
/// lease from half-way on, so neither a second worker nor a claim takes
/// the job once the first deadline has passed, and the job runs once.
pub async fn a_long_handler_keeps_its_job_by_renewing(h: Harness) {
    let r = &h.repos;
    let (acme, _, _) = tenant_with_owner(r, "acme").await;
    let id = enqueue(r, acme.id, "k", n(1)).await;
    let (release, released) = tokio::sync::watch::channel(false);
    let handler = Arc::new(HoldingHandler {
        runs: Mutex::default(),
        released,
    });
    // Renewals every second (of real time, the worker's) leave a second
    // for each round trip on a loaded machine.
    let config = WorkerConfig {
        lease: chrono::Duration::seconds(2),
        ..quick_config("k", "w1")
    };
    let first = Worker::spawn(
        r.jobs.clone(),
        Arc::new(PollingWaker),
        config.clone(),
        handler.clone(),
    );
    let claimed = until_job(r, acme.id, id, |j| j.state == JobState::Running).await;
    let deadline = claimed.lease_until.unwrap();

    // Past half the lease on the backend's clock: the next renewal moves
    // the deadline.
    h.clock.advance(chrono::Duration::milliseconds(1500));
    let renewed = until_job(r, acme.id, id, |j| j.lease_until > Some(deadline)).await;
    // Past the first deadline: a second worker and a claim find nothing.
    h.clock.advance(chrono::Duration::seconds(1));
    assert!(h.clock.now() > deadline);
    let second = Worker::spawn(
        r.jobs.clone(),
        Arc::new(PollingWaker),
        WorkerConfig {
            worker_id: "w2".into(),
            ..config
        },
        handler.clone(),
    );
    until_job(r, acme.id, id, |j| j.lease_until > renewed.lease_until).await;
    assert!(claim(r, &claim_of("k", 1)).await.is_empty());

    release.send(true).unwrap();
    until_finished(r, acme.id, &[id]).await;
    let (first, second) = (first.shutdown().await, second.shutdown().await);
    let done = job(r, acme.id, id).await;
    assert_eq!((done.state, done.attempts), (JobState::Completed, 1));
    assert_eq!(handler.runs.lock().unwrap()[&id], 1);
    assert!(first.renewed >= 2, "{first:?}");
    assert_eq!((first.succeeded, first.failed), (1, 0));
    assert_eq!(second.claimed, 0);
}
