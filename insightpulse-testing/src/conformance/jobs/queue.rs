//! Enqueueing, keys, visibility, cancellation and retention.

use super::*;
use crate::conformance::{assert_err, Harness};
use crate::fixtures::*;
use chrono::Duration;
use insightpulse_core::jobs::{CancelFilter, Enqueued, JobState, KeyMode, NewJob};
use insightpulse_core::{Clock, Context, Entity, Error, PermissionCode, Requirement, TenantId};
use serde_json::json;

/// The system enqueues; holders of `job.read` (the owner, as Admin) read
/// their tenant's jobs; a member without it is refused; another tenant's
/// job is not found; nobody but the system enqueues through the trait.
pub async fn jobs_are_enqueued_by_the_system_and_read_with_job_read(h: Harness) {
    let r = &h.repos;
    let (acme, _, owner) = tenant_with_owner(r, "acme").await;
    let (globex, _, globex_owner) = tenant_with_owner(r, "globex").await;
    let (_, viewer) = member_with_role(r, &owner, "viewer@acme.test", Some("Viewer")).await;
    let id = enqueue(r, acme.id, "ocr.run", json!({"doc": 1})).await;

    let seen = r.jobs.get_job(&owner, id).await.unwrap();
    assert_eq!(seen.id, id);
    assert_eq!(seen.tenant_id, acme.id);
    assert_eq!(seen.kind, kind("ocr.run"));
    assert_eq!(seen.payload, json!({"doc": 1}));
    assert_eq!(seen.state, JobState::Pending);
    assert_eq!((seen.attempts, seen.max_attempts), (0, 10));
    assert_eq!(seen.run_at, h.clock.now());
    assert_eq!(seen.created_at, h.clock.now());
    assert_eq!((seen.lease_until, seen.finished_at), (None, None));

    assert!(matches!(
        r.jobs.get_job(&viewer, id).await,
        Err(Error::PermissionDenied { required: Requirement::Permission(p) }) if p == PermissionCode::JOB_READ
    ));
    // Another tenant's owner, in their own tenant or naming this one.
    assert_err!(
        r.jobs.get_job(&globex_owner, id).await,
        Error::NotFound {
            entity: Entity::Job
        }
    );
    let intruder = Context::user(globex_owner.user_id().unwrap()).in_tenant(acme.id);
    assert_err!(
        r.jobs.get_job(&intruder, id).await,
        Error::NotFound {
            entity: Entity::Job
        }
    );
    assert_err!(
        r.jobs.get_job(&sys(globex.id), id).await,
        Error::NotFound {
            entity: Entity::Job
        }
    );
    assert_err!(
        r.jobs
            .enqueue_job(&owner, NewJob::new(kind("ocr.run"), json!({})))
            .await,
        Error::PermissionDenied {
            required: Requirement::System
        }
    );
    for worker_call in [
        r.jobs
            .claim_jobs(&owner, &claim_of("ocr.run", 1))
            .await
            .err(),
        r.jobs.complete_jobs(&owner, &[seen.lease()]).await.err(),
        r.jobs
            .cancel_jobs(
                &owner,
                &CancelFilter {
                    tenant: Some(acme.id),
                    ..Default::default()
                },
            )
            .await
            .err(),
        r.jobs.purge_jobs(&owner, h.clock.now(), 10).await.err(),
    ] {
        assert!(matches!(
            worker_call,
            Some(Error::PermissionDenied {
                required: Requirement::System
            })
        ));
    }
    assert_eq!(state(r, acme.id, id).await, JobState::Pending);
}

/// Bad input is refused before anything is written.
pub async fn enqueue_input_is_validated(h: Harness) {
    let r = &h.repos;
    let (acme, _, _) = tenant_with_owner(r, "acme").await;
    let job = NewJob::new(kind("ocr.run"), json!({}));
    assert_err!(
        r.jobs
            .enqueue_job(&sys(acme.id), job.clone().with_max_attempts(0))
            .await,
        Error::Validation {
            field: "max_attempts",
            ..
        }
    );
    assert_err!(
        r.jobs
            .enqueue_job(
                &sys(acme.id),
                NewJob::new(kind("ocr.run"), json!({"t": "a\u{0}b"}))
            )
            .await,
        Error::Validation {
            field: "payload",
            ..
        }
    );
    assert_err!(
        r.jobs.enqueue_job(&system(), job.clone()).await,
        Error::Validation {
            field: "context",
            ..
        }
    );
    assert_err!(
        r.jobs.enqueue_job(&sys(TenantId::new()), job.clone()).await,
        Error::NotFound {
            entity: Entity::Tenant
        }
    );
    assert!(claim(r, &claim_of("ocr.run", 10)).await.is_empty());
}

/// A key replaces a waiting job (`Replace` moves its `run_at`,
/// `PreserveRunAt` keeps it) or is deduplicated; keys are per tenant and
/// kind.
pub async fn keys_replace_or_deduplicate_waiting_jobs(h: Harness) {
    let r = &h.repos;
    let (acme, _, _) = tenant_with_owner(r, "acme").await;
    let (globex, _, _) = tenant_with_owner(r, "globex").await;
    let now = h.clock.now();
    let first = enqueue_new(
        r,
        acme.id,
        keyed("sync", "int-1", KeyMode::Replace, n(1)).run_at(now + Duration::minutes(5)),
    )
    .await;
    let Enqueued::Created(id) = first else {
        panic!("{first:?}")
    };

    let replaced = enqueue_new(
        r,
        acme.id,
        keyed("sync", "int-1", KeyMode::Replace, n(2))
            .run_at(now + Duration::minutes(10))
            .with_priority(3)
            .with_max_attempts(4),
    )
    .await;
    assert_eq!(replaced, Enqueued::Replaced(id));
    let j = job(r, acme.id, id).await;
    assert_eq!(
        (j.payload, j.run_at, j.priority, j.max_attempts),
        (n(2), now + Duration::minutes(10), 3, 4)
    );
    assert_eq!(j.key, Some(key("int-1")));

    let preserved = enqueue_new(
        r,
        acme.id,
        keyed("sync", "int-1", KeyMode::PreserveRunAt, n(3)).run_at(now),
    )
    .await;
    assert_eq!(preserved, Enqueued::Replaced(id));
    let j = job(r, acme.id, id).await;
    assert_eq!((j.payload, j.run_at), (n(3), now + Duration::minutes(10)));

    let deduped = enqueue_new(r, acme.id, keyed("sync", "int-1", KeyMode::Dedupe, n(4))).await;
    assert_eq!(deduped, Enqueued::Deduplicated(id));
    assert_eq!(job(r, acme.id, id).await.payload, n(3));

    // Another kind or another tenant: another job.
    assert!(
        matches!(enqueue_new(r, acme.id, keyed("other", "int-1", KeyMode::Dedupe, n(5))).await, Enqueued::Created(o) if o != id)
    );
    assert!(
        matches!(enqueue_new(r, globex.id, keyed("sync", "int-1", KeyMode::Dedupe, n(6))).await, Enqueued::Created(o) if o != id)
    );
}

/// A running job is never changed by a key: `Dedupe` returns it,
/// `Replace` leaves it running without the key and queues a new job.
pub async fn keys_never_change_a_running_job(h: Harness) {
    let r = &h.repos;
    let (acme, _, _) = tenant_with_owner(r, "acme").await;
    let Enqueued::Created(id) =
        enqueue_new(r, acme.id, keyed("sync", "k", KeyMode::Replace, n(1))).await
    else {
        panic!("new job expected")
    };
    let claimed = claim(r, &claim_of("sync", 5)).await;
    assert_eq!(claimed.len(), 1);

    assert_eq!(
        enqueue_new(r, acme.id, keyed("sync", "k", KeyMode::Dedupe, n(2))).await,
        Enqueued::Deduplicated(id)
    );
    let Enqueued::Created(next) =
        enqueue_new(r, acme.id, keyed("sync", "k", KeyMode::Replace, n(3))).await
    else {
        panic!("a running job is not replaced")
    };
    assert_ne!(next, id);
    let running = job(r, acme.id, id).await;
    assert_eq!(
        (running.state, running.payload.clone(), running.key.clone()),
        (JobState::Running, n(1), None)
    );
    let waiting = job(r, acme.id, next).await;
    assert_eq!(
        (waiting.state, waiting.key),
        (JobState::Pending, Some(key("k")))
    );
    // The running job finishes; the new one is still the key's.
    assert_eq!(
        r.jobs
            .complete_jobs(&system(), &[running.lease()])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        enqueue_new(r, acme.id, keyed("sync", "k", KeyMode::Dedupe, n(4))).await,
        Enqueued::Deduplicated(next)
    );
}

/// Cancelling by kind, tenant or key (every given field must match) takes
/// only waiting jobs; an empty filter is refused.
pub async fn cancel_jobs_by_kind_tenant_or_key(h: Harness) {
    let r = &h.repos;
    let (acme, _, _) = tenant_with_owner(r, "acme").await;
    let (globex, _, _) = tenant_with_owner(r, "globex").await;
    let a1 = enqueue(r, acme.id, "mail", n(1)).await;
    let a2 = enqueue(r, acme.id, "ocr.run", n(2)).await;
    let g1 = enqueue(r, globex.id, "mail", n(3)).await;
    let Enqueued::Created(g2) = enqueue_new(
        r,
        globex.id,
        keyed("ocr.run", "doc-9", KeyMode::Dedupe, n(4)),
    )
    .await
    else {
        panic!()
    };
    let running = claim(r, &claim_of("mail", 1)).await;
    assert_eq!(running.len(), 1);

    assert_err!(
        r.jobs
            .cancel_jobs(&system(), &CancelFilter::default())
            .await,
        Error::Validation {
            field: "filter",
            ..
        }
    );
    let by_key = CancelFilter {
        key: Some(key("doc-9")),
        ..Default::default()
    };
    assert_eq!(r.jobs.cancel_jobs(&system(), &by_key).await.unwrap(), 1);
    assert_eq!(state(r, globex.id, g2).await, JobState::Cancelled);
    assert!(job(r, globex.id, g2).await.finished_at.is_some());

    let acme_ocr = CancelFilter {
        kind: Some(kind("ocr.run")),
        tenant: Some(acme.id),
        key: None,
    };
    assert_eq!(r.jobs.cancel_jobs(&system(), &acme_ocr).await.unwrap(), 1);
    assert_eq!(state(r, acme.id, a2).await, JobState::Cancelled);

    // Cancelling every mail job leaves the running one running.
    let mail = CancelFilter {
        kind: Some(kind("mail")),
        ..Default::default()
    };
    assert_eq!(r.jobs.cancel_jobs(&system(), &mail).await.unwrap(), 1);
    let states = [state(r, acme.id, a1).await, state(r, globex.id, g1).await];
    assert!(
        states.contains(&JobState::Running) && states.contains(&JobState::Cancelled),
        "{states:?}"
    );
    assert_eq!(r.jobs.cancel_jobs(&system(), &mail).await.unwrap(), 0);
}

/// A purge deletes finished jobs (completed, dead, cancelled) older than the
/// cutoff, at most `limit` at a time, and nothing unfinished.
pub async fn purge_deletes_old_finished_jobs_only(h: Harness) {
    let r = &h.repos;
    let (acme, _, _) = tenant_with_owner(r, "acme").await;
    let done = enqueue(r, acme.id, "k", n(1)).await;
    let dead = enqueue_new(
        r,
        acme.id,
        NewJob::new(kind("k"), n(2)).with_max_attempts(1),
    )
    .await
    .id();
    let cancelled = enqueue(r, acme.id, "other", n(3)).await;
    let claimed = claim(r, &claim_of("k", 10)).await;
    assert_eq!(claimed.len(), 2);
    for j in &claimed {
        if j.id == done {
            r.jobs.complete_jobs(&system(), &[j.lease()]).await.unwrap();
        } else {
            let failure = insightpulse_core::jobs::Failure {
                lease: j.lease(),
                error: "boom".into(),
                retry_in: Duration::zero(),
            };
            r.jobs.fail_jobs(&system(), &[failure]).await.unwrap();
        }
    }
    let other = CancelFilter {
        kind: Some(kind("other")),
        ..Default::default()
    };
    r.jobs.cancel_jobs(&system(), &other).await.unwrap();
    assert_eq!(state(r, acme.id, dead).await, JobState::Dead);
    let finished_at = h.clock.now();
    h.clock.advance(Duration::days(1));
    let waiting = enqueue(r, acme.id, "k", n(4)).await;
    let running = enqueue(r, acme.id, "busy", n(5)).await;
    claim(r, &claim_of("busy", 1)).await;
    h.clock.advance(Duration::days(30));

    // Not older than the cutoff: kept.
    assert_eq!(
        r.jobs
            .purge_jobs(&system(), finished_at, 100)
            .await
            .unwrap(),
        0
    );
    let cutoff = finished_at + Duration::seconds(1);
    assert_err!(
        r.jobs.purge_jobs(&system(), cutoff, 0).await,
        Error::Validation { field: "limit", .. }
    );
    assert_eq!(r.jobs.purge_jobs(&system(), cutoff, 2).await.unwrap(), 2);
    assert_eq!(r.jobs.purge_jobs(&system(), cutoff, 2).await.unwrap(), 1);
    assert_eq!(
        r.jobs
            .purge_jobs(&system(), h.clock.now(), 100)
            .await
            .unwrap(),
        0
    );
    for id in [done, dead, cancelled] {
        assert_err!(
            r.jobs.get_job(&sys(acme.id), id).await,
            Error::NotFound {
                entity: Entity::Job
            }
        );
    }
    assert_eq!(state(r, acme.id, waiting).await, JobState::Pending);
    assert_eq!(state(r, acme.id, running).await, JobState::Running);
}
