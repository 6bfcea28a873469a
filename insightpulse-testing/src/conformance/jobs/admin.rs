//! Operators' calls: listing a tenant's jobs, and running a dead,
//! cancelled or waiting job again now.

use super::*;
use crate::conformance::{assert_err, Harness};
use crate::fixtures::*;
use chrono::Duration;
use insightpulse_core::jobs::{
    CancelFilter, Failure, JobCursor, JobPage, JobQuery, JobState, KeyMode, NewJob,
};
use insightpulse_core::{Clock, Context, Entity, Error, PermissionCode, Requirement};

/// Every page of `q` as `ctx`, following `next` through its string form.
async fn all_pages(r: &Repos, ctx: &Context, q: JobQuery) -> Vec<Vec<JobId>> {
    let mut pages = Vec::new();
    let mut q = q;
    loop {
        let page: JobPage = r.jobs.list_jobs(ctx, &q).await.unwrap();
        pages.push(page.jobs.iter().map(|j| j.id).collect());
        match page.next {
            Some(next) => q = q.after(next.to_string().parse::<JobCursor>().unwrap()),
            None => return pages,
        }
    }
}

/// A holder of `job.read` pages through its tenant's jobs newest first
/// (ties on `created_at` by id, descending), filtered by state and kind;
/// a member without it is refused; another tenant's user sees an empty
/// list; bad input is refused.
pub async fn list_jobs_pages_newest_first_with_job_read(h: Harness) {
    let r = &h.repos;
    let (acme, _, owner) = tenant_with_owner(r, "acme").await;
    let (globex, _, globex_owner) = tenant_with_owner(r, "globex").await;
    let (_, viewer) = member_with_role(r, &owner, "viewer@acme.test", Some("Viewer")).await;
    let oldest = enqueue(r, acme.id, "mail", n(1)).await;
    h.clock.advance(Duration::seconds(1));
    let dead = enqueue_new(
        r,
        acme.id,
        NewJob::new(kind("ocr.run"), n(2)).with_max_attempts(1),
    )
    .await
    .id();
    let claimed = claim(r, &claim_of("ocr.run", 1)).await.remove(0);
    let failure = Failure {
        lease: claimed.lease(),
        error: "boom".into(),
        retry_in: Duration::zero(),
    };
    r.jobs.fail_jobs(&system(), &[failure]).await.unwrap();
    h.clock.advance(Duration::seconds(1));
    // Three at one instant: their order is the ids'.
    let mut tied = Vec::new();
    for i in 3..6 {
        tied.push(enqueue(r, acme.id, "mail", n(i)).await);
    }
    tied.sort();
    tied.reverse();
    h.clock.advance(Duration::seconds(1));
    let newest = enqueue(r, acme.id, "ocr.run", n(6)).await;
    enqueue(r, globex.id, "mail", n(7)).await;

    let mut expected = vec![newest];
    expected.extend(&tied);
    expected.extend([dead, oldest]);
    let pages = all_pages(r, &owner, JobQuery::new().limit(2)).await;
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert!(pages.iter().all(|p| p.len() == 2));
    assert_eq!(pages.concat(), expected);
    // A page that ends exactly at the last job says there is no next one.
    let whole = r
        .jobs
        .list_jobs(&owner, &JobQuery::new().limit(6))
        .await
        .unwrap();
    assert_eq!(
        whole.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        expected
    );
    assert_eq!(whole.next, None);

    let dead_only = r
        .jobs
        .list_jobs(&owner, &JobQuery::new().state(JobState::Dead))
        .await
        .unwrap();
    assert_eq!(
        dead_only.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        [dead]
    );
    assert_eq!(dead_only.jobs[0].last_error.as_deref(), Some("boom"));
    let mail = all_pages(r, &owner, JobQuery::new().kind(kind("mail")).limit(3)).await;
    let mut expected_mail = tied.clone();
    expected_mail.push(oldest);
    assert_eq!(mail.concat(), expected_mail);
    let pending_ocr = JobQuery::new()
        .kind(kind("ocr.run"))
        .state(JobState::Pending);
    assert_eq!(all_pages(r, &owner, pending_ocr).await.concat(), [newest]);
    assert_eq!(
        all_pages(r, &sys(acme.id), JobQuery::new()).await.concat(),
        expected
    );

    assert!(matches!(
        r.jobs.list_jobs(&viewer, &JobQuery::new()).await,
        Err(Error::PermissionDenied { required: Requirement::Permission(p) }) if p == PermissionCode::JOB_READ
    ));
    // Another tenant's owner: their own jobs only, and none of acme's.
    let theirs = r
        .jobs
        .list_jobs(&globex_owner, &JobQuery::new())
        .await
        .unwrap();
    assert_eq!(theirs.jobs.len(), 1);
    assert!(theirs.jobs.iter().all(|j| j.tenant_id == globex.id));
    let intruder = Context::user(globex_owner.user_id().unwrap()).in_tenant(acme.id);
    let seen = r.jobs.list_jobs(&intruder, &JobQuery::new()).await.unwrap();
    assert_eq!((seen.jobs.len(), seen.next), (0, None));

    assert_err!(
        r.jobs.list_jobs(&owner, &JobQuery::new().limit(0)).await,
        Error::Validation { field: "limit", .. }
    );
    assert_err!(
        r.jobs.list_jobs(&owner, &JobQuery::new().limit(1001)).await,
        Error::Validation { field: "limit", .. }
    );
    assert_err!(
        r.jobs.list_jobs(&system(), &JobQuery::new()).await,
        Error::Validation {
            field: "context",
            ..
        }
    );
}

/// Retrying a dead job makes it pending and due, its attempts kept and one
/// more allowed, so the lease of an earlier claim still completes nothing;
/// a cancelled or delayed job runs now; a running or completed job is left
/// as it is.
pub async fn retry_job_runs_a_dead_or_cancelled_job_again(h: Harness) {
    let r = &h.repos;
    let (acme, _, _) = tenant_with_owner(r, "acme").await;
    let dead = enqueue_new(
        r,
        acme.id,
        NewJob::new(kind("k"), n(1)).with_max_attempts(2),
    )
    .await
    .id();
    let mut first = None;
    for _ in 0..2 {
        let held = claim(r, &claim_of("k", 1)).await.remove(0);
        let failure = Failure {
            lease: held.lease(),
            error: "upstream 503".into(),
            retry_in: Duration::zero(),
        };
        r.jobs.fail_jobs(&system(), &[failure]).await.unwrap();
        first.get_or_insert(held);
    }
    let before = job(r, acme.id, dead).await;
    assert_eq!((before.state, before.attempts), (JobState::Dead, 2));
    h.clock.advance(Duration::minutes(5));

    let retried = r.jobs.retry_job(&sys(acme.id), dead).await.unwrap();
    assert_eq!(retried, job(r, acme.id, dead).await);
    assert_eq!(retried.state, JobState::Pending);
    assert_eq!((retried.attempts, retried.max_attempts), (2, 3));
    // Already due: it keeps its place in line.
    assert_eq!(retried.run_at, before.run_at);
    assert_eq!(retried.finished_at, None);
    assert_eq!(retried.last_error.as_deref(), Some("upstream 503"));
    let again = claim(r, &claim_of("k", 1)).await.remove(0);
    assert_eq!((again.id, again.attempts), (dead, 3));
    // The first claim's lease names attempt 1: were attempts reset, it
    // would name this claim.
    let stale = first.unwrap().lease();
    assert_eq!(r.jobs.complete_jobs(&system(), &[stale]).await.unwrap(), 0);
    // Running: left as it is.
    let running = r.jobs.retry_job(&sys(acme.id), dead).await.unwrap();
    assert_eq!(running, job(r, acme.id, dead).await);
    assert_eq!(running.state, JobState::Running);
    assert_eq!(
        r.jobs
            .complete_jobs(&system(), &[again.lease()])
            .await
            .unwrap(),
        1
    );
    // Completed: left as it is.
    let done = r.jobs.retry_job(&sys(acme.id), dead).await.unwrap();
    assert_eq!(
        (done.state, done.finished_at),
        (JobState::Completed, Some(h.clock.now()))
    );

    // A cancelled job that was due later, and a delayed one: both due now.
    let later = h.clock.now() + Duration::hours(1);
    let cancelled = enqueue_new(r, acme.id, NewJob::new(kind("c"), n(2)).run_at(later))
        .await
        .id();
    let filter = CancelFilter {
        kind: Some(kind("c")),
        ..Default::default()
    };
    assert_eq!(r.jobs.cancel_jobs(&system(), &filter).await.unwrap(), 1);
    let delayed = enqueue_new(r, acme.id, NewJob::new(kind("d"), n(3)).run_at(later))
        .await
        .id();
    for (id, k) in [(cancelled, "c"), (delayed, "d")] {
        let now_due = r.jobs.retry_job(&sys(acme.id), id).await.unwrap();
        assert_eq!(
            (now_due.state, now_due.run_at, now_due.finished_at),
            (JobState::Pending, h.clock.now(), None)
        );
        assert_eq!((now_due.attempts, now_due.max_attempts), (0, 10));
        assert_eq!(
            claim(r, &claim_of(k, 5))
                .await
                .iter()
                .map(|j| j.id)
                .collect::<Vec<_>>(),
            [id]
        );
    }
}

/// A retried job keeps its key unless another waiting or running job of
/// its kind holds it now; then it runs without it, and the key stays with
/// the other job.
pub async fn retry_job_keeps_a_free_key_only(h: Harness) {
    let r = &h.repos;
    let (acme, _, _) = tenant_with_owner(r, "acme").await;
    let keyed_dead = |k: &str| keyed("sync", k, KeyMode::Dedupe, n(1)).with_max_attempts(1);
    let free = enqueue_new(r, acme.id, keyed_dead("free")).await.id();
    let taken = enqueue_new(r, acme.id, keyed_dead("taken")).await.id();
    for held in claim(r, &claim_of("sync", 5)).await {
        let failure = Failure {
            lease: held.lease(),
            error: "boom".into(),
            retry_in: Duration::zero(),
        };
        r.jobs.fail_jobs(&system(), &[failure]).await.unwrap();
    }
    assert_eq!(state(r, acme.id, free).await, JobState::Dead);
    let holder = enqueue_new(r, acme.id, keyed("sync", "taken", KeyMode::Dedupe, n(2)))
        .await
        .id();
    assert_ne!(holder, taken);

    let kept = r.jobs.retry_job(&sys(acme.id), free).await.unwrap();
    assert_eq!(kept.key, Some(key("free")));
    assert_eq!(
        enqueue_new(r, acme.id, keyed("sync", "free", KeyMode::Dedupe, n(3))).await,
        Enqueued::Deduplicated(free)
    );
    let dropped = r.jobs.retry_job(&sys(acme.id), taken).await.unwrap();
    assert_eq!((dropped.state, dropped.key), (JobState::Pending, None));
    assert_eq!(job(r, acme.id, holder).await.key, Some(key("taken")));
    assert_eq!(
        enqueue_new(r, acme.id, keyed("sync", "taken", KeyMode::Dedupe, n(4))).await,
        Enqueued::Deduplicated(holder)
    );
}

/// Retrying is the system's, like cancelling: the owner (who reads jobs), a
/// member without `job.read` and another tenant's user are refused and
/// nothing changes; the system finds only its tenant's jobs.
pub async fn retry_job_is_the_systems(h: Harness) {
    let r = &h.repos;
    let (acme, _, owner) = tenant_with_owner(r, "acme").await;
    let (globex, _, globex_owner) = tenant_with_owner(r, "globex").await;
    let (_, viewer) = member_with_role(r, &owner, "viewer@acme.test", Some("Viewer")).await;
    let id = enqueue(r, acme.id, "k", n(1)).await;
    let filter = CancelFilter {
        tenant: Some(acme.id),
        ..Default::default()
    };
    r.jobs.cancel_jobs(&system(), &filter).await.unwrap();
    let intruder = Context::user(globex_owner.user_id().unwrap()).in_tenant(acme.id);
    for ctx in [&owner, &viewer, &globex_owner, &intruder] {
        assert_err!(
            r.jobs.retry_job(ctx, id).await,
            Error::PermissionDenied {
                required: Requirement::System
            }
        );
    }
    assert_err!(
        r.jobs.retry_job(&sys(globex.id), id).await,
        Error::NotFound {
            entity: Entity::Job
        }
    );
    assert_err!(
        r.jobs.retry_job(&sys(acme.id), JobId::new()).await,
        Error::NotFound {
            entity: Entity::Job
        }
    );
    assert_err!(
        r.jobs.retry_job(&sys(TenantId::new()), id).await,
        Error::NotFound {
            entity: Entity::Job
        }
    );
    assert_err!(
        r.jobs.retry_job(&system(), id).await,
        Error::Validation {
            field: "context",
            ..
        }
    );
    assert_eq!(state(r, acme.id, id).await, JobState::Cancelled);
    assert_eq!(
        r.jobs.retry_job(&sys(acme.id), id).await.unwrap().state,
        JobState::Pending
    );
}
