//! The worker runtime over each backend (polling; the backends' own
//! wake-ups are tested with each backend).

use super::*;
use crate::conformance::Harness;
use crate::fixtures::*;
use async_trait::async_trait;
use insightpulse_core::jobs::{
    Job, JobHandler, JobKind, JobState, JobWaker, NewJob, RetryPolicy, Worker, WorkerConfig,
};
use insightpulse_core::JobId;
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
