//! Claims: readiness and order, leases, retries, the dead state, fairness
//! and per-tenant limits.

use super::*;
use crate::conformance::{assert_err, Harness};
use crate::fixtures::*;
use chrono::Duration;
use insightpulse_core::jobs::{Failure, JobState, Lease, NewJob};
use insightpulse_core::{Clock, JobId};
use std::collections::HashSet;

/// A claim takes due jobs of its kind only, lowest priority first, then
/// oldest `run_at`; a delayed job waits for its `run_at`; a claimed job is
/// running under the lease with its attempt counted.
pub async fn claims_take_due_jobs_by_priority_then_run_at(h: Harness) {
    let r = &h.repos;
    // Leases outlast the minute this case moves the clock.
    let long = |req: ClaimRequest| ClaimRequest {
        lease: Duration::minutes(10),
        ..req
    };
    let (acme, _, _) = tenant_with_owner(r, "acme").await;
    let now = h.clock.now();
    let low = enqueue_new(r, acme.id, NewJob::new(kind("k"), n(1)).with_priority(5))
        .await
        .id();
    h.clock.advance(Duration::seconds(1));
    let high_late = enqueue_new(r, acme.id, NewJob::new(kind("k"), n(2)).with_priority(-1))
        .await
        .id();
    let high_early = enqueue_new(
        r,
        acme.id,
        NewJob::new(kind("k"), n(3)).with_priority(-1).run_at(now),
    )
    .await
    .id();
    let delayed = enqueue_new(
        r,
        acme.id,
        NewJob::new(kind("k"), n(4))
            .with_priority(-9)
            .run_at(now + Duration::minutes(1)),
    )
    .await
    .id();
    enqueue(r, acme.id, "other", n(5)).await;

    let first = claim(r, &long(claim_of("k", 2))).await;
    let ids: Vec<JobId> = first.iter().map(|j| j.id).collect();
    assert_eq!(
        ids.iter().copied().collect::<HashSet<_>>(),
        HashSet::from([high_early, high_late])
    );
    for j in &first {
        assert_eq!((j.state, j.attempts), (JobState::Running, 1));
        assert_eq!(j.lease_until, Some(h.clock.now() + Duration::minutes(10)));
        assert_eq!(j.locked_by.as_deref(), Some("test-worker"));
    }
    let second = claim(r, &long(claim_of("k", 10))).await;
    assert_eq!(second.iter().map(|j| j.id).collect::<Vec<_>>(), [low]);
    assert!(claim(r, &long(claim_of("k", 10))).await.is_empty());
    h.clock.advance(Duration::minutes(1));
    let third = claim(r, &long(claim_of("k", 10))).await;
    assert_eq!(third.iter().map(|j| j.id).collect::<Vec<_>>(), [delayed]);
}

/// Concurrent claims never hand out the same job, and every job is
/// handed out.
pub async fn concurrent_claims_never_share_a_job(h: Harness) {
    let r = &h.repos;
    let (acme, _, _) = tenant_with_owner(r, "acme").await;
    let (globex, _, _) = tenant_with_owner(r, "globex").await;
    let mut all = HashSet::new();
    for i in 0..30 {
        all.insert(enqueue(r, if i % 3 == 0 { globex.id } else { acme.id }, "k", n(i)).await);
    }
    let claims = (0..6).map(|_| {
        let r = r.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = claim(&r, &claim_of("k", 4)).await;
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|j| j.id));
            }
        })
    });
    let mut seen = Vec::new();
    for c in claims.collect::<Vec<_>>() {
        seen.extend(c.await.unwrap());
    }
    let unique: HashSet<JobId> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "a job was claimed twice");
    assert_eq!(unique, all);
}

/// A lease that expires gives the job to the next claim (a crashed worker
/// does not hold it); the old lease then completes nothing; the new one
/// completes it.
pub async fn an_expired_lease_is_claimed_again(h: Harness) {
    let r = &h.repos;
    let (acme, _, _) = tenant_with_owner(r, "acme").await;
    let id = enqueue(r, acme.id, "k", n(1)).await;
    let first = claim(r, &claim_of("k", 1)).await.remove(0);
    h.clock.advance(Duration::seconds(30));
    assert!(
        claim(r, &claim_of("k", 1)).await.is_empty(),
        "the lease still holds at its deadline"
    );
    h.clock.advance(Duration::microseconds(1));
    let second = claim(r, &claim_of("k", 1)).await;
    assert_eq!(second.len(), 1);
    let second = second.into_iter().next().unwrap();
    assert_eq!((second.id, second.attempts), (id, 2));
    assert!(second.last_error.is_some());

    assert_eq!(
        r.jobs
            .complete_jobs(&system(), &[first.lease()])
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        r.jobs
            .release_jobs(&system(), &[first.lease()])
            .await
            .unwrap(),
        0
    );
    assert_eq!(state(r, acme.id, id).await, JobState::Running);
    assert_eq!(
        r.jobs
            .complete_jobs(&system(), &[second.lease()])
            .await
            .unwrap(),
        1
    );
    let done = job(r, acme.id, id).await;
    assert_eq!(
        (done.state, done.finished_at, done.lease_until),
        (JobState::Completed, Some(h.clock.now()), None)
    );
    assert_eq!(
        r.jobs
            .complete_jobs(&system(), &[second.lease()])
            .await
            .unwrap(),
        0
    );
}

/// A failure waits `retry_in` and keeps its message; the last attempt's
/// failure — or its expired lease — makes the job dead.
pub async fn failures_retry_later_then_the_job_dies(h: Harness) {
    let r = &h.repos;
    let (acme, _, _) = tenant_with_owner(r, "acme").await;
    let id = enqueue_new(
        r,
        acme.id,
        NewJob::new(kind("k"), n(1)).with_max_attempts(2),
    )
    .await
    .id();
    let fail = |lease, retry_in| Failure {
        lease,
        error: "upstream 503".into(),
        retry_in,
    };

    let first = claim(r, &claim_of("k", 1)).await.remove(0);
    assert_eq!(
        r.jobs
            .fail_jobs(&system(), &[fail(first.lease(), Duration::seconds(10))])
            .await
            .unwrap(),
        1
    );
    let waiting = job(r, acme.id, id).await;
    assert_eq!(waiting.state, JobState::Pending);
    assert_eq!(waiting.run_at, h.clock.now() + Duration::seconds(10));
    assert_eq!(waiting.last_error.as_deref(), Some("upstream 503"));
    assert_eq!(waiting.attempts, 1);
    h.clock.advance(Duration::seconds(9));
    assert!(claim(r, &claim_of("k", 1)).await.is_empty());
    h.clock.advance(Duration::seconds(1));
    let last = claim(r, &claim_of("k", 1)).await.remove(0);
    assert!(last.is_last_attempt());
    assert_eq!(
        r.jobs
            .fail_jobs(&system(), &[fail(last.lease(), Duration::seconds(10))])
            .await
            .unwrap(),
        1
    );
    let dead = job(r, acme.id, id).await;
    assert_eq!(
        (dead.state, dead.attempts, dead.finished_at),
        (JobState::Dead, 2, Some(h.clock.now()))
    );
    h.clock.advance(Duration::hours(1));
    assert!(claim(r, &claim_of("k", 1)).await.is_empty());

    // A last attempt whose worker vanished dies when its lease expires.
    let id = enqueue_new(
        r,
        acme.id,
        NewJob::new(kind("k"), n(2)).with_max_attempts(1),
    )
    .await
    .id();
    claim(r, &claim_of("k", 1)).await;
    h.clock.advance(Duration::seconds(31));
    assert!(claim(r, &claim_of("k", 1)).await.is_empty());
    let dead = job(r, acme.id, id).await;
    assert_eq!((dead.state, dead.attempts), (JobState::Dead, 1));
    assert!(dead.last_error.is_some());
}

/// Releasing gives a claimed job back at once, its attempt not counted.
pub async fn released_jobs_come_back_unrun(h: Harness) {
    let r = &h.repos;
    let (acme, _, _) = tenant_with_owner(r, "acme").await;
    let id = enqueue(r, acme.id, "k", n(1)).await;
    let held = claim(r, &claim_of("k", 1)).await.remove(0);
    assert_eq!(
        r.jobs
            .release_jobs(&system(), &[held.lease()])
            .await
            .unwrap(),
        1
    );
    let back = job(r, acme.id, id).await;
    assert_eq!(
        (back.state, back.attempts, back.lease_until),
        (JobState::Pending, 0, None)
    );
    let again = claim(r, &claim_of("k", 1)).await.remove(0);
    assert_eq!((again.id, again.attempts), (id, 1));
}

/// One tenant's backlog does not starve another's single job: a batch
/// shares itself between the tenants with waiting jobs.
pub async fn a_big_backlog_does_not_starve_a_small_tenant(h: Harness) {
    let r = &h.repos;
    let (big, _, _) = tenant_with_owner(r, "big").await;
    let (small, _, _) = tenant_with_owner(r, "small").await;
    for i in 0..60 {
        enqueue(r, big.id, "k", n(i)).await;
    }
    h.clock.advance(Duration::seconds(1));
    let lone = enqueue(r, small.id, "k", n(999)).await;
    for _ in 0..3 {
        let batch = claim(r, &claim_of("k", 10)).await;
        assert!(
            batch.iter().any(|j| j.id == lone),
            "the small tenant's job waited behind the big one's"
        );
        assert!(batch.len() > 1 && batch.len() <= 10, "{}", batch.len());
        // Put everything back and claim again: fairness holds from any start.
        let leases: Vec<_> = batch.iter().map(|j| j.lease()).collect();
        r.jobs.release_jobs(&system(), &leases).await.unwrap();
    }
}

/// A batch is shared only among tenants with waiting jobs of its kind:
/// another tenant's running or finished jobs of the kind, or its waiting
/// jobs of another kind, take no share of it.
pub async fn shares_go_only_to_tenants_waiting_on_the_kind(h: Harness) {
    let r = &h.repos;
    let (a, _, _) = tenant_with_owner(r, "alpha").await;
    let (b, _, _) = tenant_with_owner(r, "beta").await;
    let (c, _, _) = tenant_with_owner(r, "gamma").await;
    enqueue(r, b.id, "k", n(0)).await;
    enqueue(r, c.id, "k", n(0)).await;
    let held = claim(r, &claim_of("k", 10)).await;
    assert_eq!(held.len(), 2);
    r.jobs
        .complete_jobs(&system(), &[held[0].lease()])
        .await
        .unwrap();
    for t in [b.id, c.id] {
        enqueue(r, t, "other", n(0)).await;
    }
    let mut waiting = HashSet::new();
    for i in 0..10 {
        waiting.insert(enqueue(r, a.id, "k", n(i)).await);
    }
    let batch = claim(r, &claim_of("k", 10)).await;
    assert_eq!(batch.iter().map(|j| j.id).collect::<HashSet<_>>(), waiting);
}

/// A per-tenant limit caps each tenant's running jobs of the kind; a
/// finished job frees its slot.
pub async fn per_tenant_limits_cap_running_jobs(h: Harness) {
    let r = &h.repos;
    let (a, _, _) = tenant_with_owner(r, "alpha").await;
    let (b, _, _) = tenant_with_owner(r, "beta").await;
    for i in 0..5 {
        enqueue(r, a.id, "k", n(i)).await;
        enqueue(r, b.id, "k", n(i)).await;
    }
    enqueue(r, a.id, "other", n(9)).await;
    let limited = claim_of("k", 10).with_per_tenant_limit(2);
    let mut running = Vec::new();
    for _ in 0..3 {
        running.extend(claim(r, &limited).await);
    }
    let of = |t, jobs: &[Job]| jobs.iter().filter(|j| j.tenant_id == t).count();
    assert_eq!((of(a.id, &running), of(b.id, &running)), (2, 2));
    // Another kind has its own count.
    assert_eq!(
        claim(r, &claim_of("other", 10).with_per_tenant_limit(2))
            .await
            .len(),
        1
    );

    let one_of_a = running
        .iter()
        .find(|j| j.tenant_id == a.id)
        .unwrap()
        .lease();
    r.jobs.complete_jobs(&system(), &[one_of_a]).await.unwrap();
    let more = claim(r, &limited).await;
    assert_eq!(more.len(), 1);
    assert_eq!(more[0].tenant_id, a.id);
    // Without the limit the rest is claimable.
    assert_eq!(claim(r, &claim_of("k", 10)).await.len(), 5);
}

/// Renewing a lease pushes its deadline to `now + lease` (never back), so
/// the job is not claimed again while it holds; once the lease expired and
/// the job was claimed again, the old lease renews nothing; a finished
/// job's lease neither. Renewing is the system's; the length is checked.
pub async fn extend_leases_renews_current_leases_only(h: Harness) {
    let r = &h.repos;
    let (acme, _, owner) = tenant_with_owner(r, "acme").await;
    let id = enqueue(r, acme.id, "k", n(1)).await;
    let first = claim(r, &claim_of("k", 1)).await.remove(0);
    let extend = |lease, by| {
        let r = r.clone();
        async move { r.jobs.extend_leases(&system(), &[lease], by).await.unwrap() }
    };
    h.clock.advance(Duration::seconds(20));
    assert_eq!(extend(first.lease(), Duration::seconds(30)).await, 1);
    let renewed = job(r, acme.id, id).await;
    assert_eq!(
        renewed.lease_until,
        Some(h.clock.now() + Duration::seconds(30))
    );
    assert_eq!((renewed.state, renewed.attempts), (JobState::Running, 1));
    // Past the first deadline: still held.
    h.clock.advance(Duration::seconds(20));
    assert!(claim(r, &claim_of("k", 1)).await.is_empty());
    // A shorter renewal does not shorten it.
    assert_eq!(extend(first.lease(), Duration::seconds(1)).await, 1);
    assert_eq!(job(r, acme.id, id).await.lease_until, renewed.lease_until);
    assert_eq!(
        r.jobs
            .extend_leases(&system(), &[], Duration::seconds(30))
            .await
            .unwrap(),
        0
    );

    h.clock.advance(Duration::seconds(11));
    let second = claim(r, &claim_of("k", 1)).await.remove(0);
    assert_eq!((second.id, second.attempts), (id, 2));
    assert_eq!(extend(first.lease(), Duration::minutes(10)).await, 0);
    assert_eq!(job(r, acme.id, id).await.lease_until, second.lease_until);
    let wrong_tenant = Lease {
        tenant_id: TenantId::new(),
        ..second.lease()
    };
    assert_eq!(
        r.jobs
            .extend_leases(
                &system(),
                &[first.lease(), second.lease(), wrong_tenant],
                Duration::minutes(10)
            )
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        job(r, acme.id, id).await.lease_until,
        Some(h.clock.now() + Duration::minutes(10))
    );

    for bad in [
        Duration::zero(),
        Duration::seconds(-1),
        Duration::days(1) + Duration::seconds(1),
    ] {
        assert_err!(
            r.jobs
                .extend_leases(&system(), &[second.lease()], bad)
                .await,
            insightpulse_core::Error::Validation { field: "lease", .. }
        );
    }
    assert_err!(
        r.jobs
            .extend_leases(&owner, &[second.lease()], Duration::seconds(30))
            .await,
        insightpulse_core::Error::PermissionDenied {
            required: insightpulse_core::Requirement::System
        }
    );
    assert_eq!(
        r.jobs
            .complete_jobs(&system(), &[second.lease()])
            .await
            .unwrap(),
        1
    );
    assert_eq!(extend(second.lease(), Duration::seconds(30)).await, 0);
    let done = job(r, acme.id, id).await;
    assert_eq!((done.state, done.lease_until), (JobState::Completed, None));
}
