//! Retention of finished jobs, through the privacy module's policies.

use super::*;
use crate::conformance::{assert_err, Harness};
use crate::fixtures::tenant_with_owner;
use chrono::Duration;
use insightpulse_core::privacy::{
    DataCategory, NewDataPolicy, RetentionAction, RetentionDays, RetentionOutcome,
};
use insightpulse_core::Clock;

/// A `jobs` policy deletes its tenant's jobs that finished before the
/// cutoff; jobs that finished at it or later, and jobs still pending, stay.
pub async fn finished_jobs_expire_by_the_tenants_policy(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let old = enqueue(r, acme.id, "mail", n(1)).await;
    let claimed = claim(r, &claim_of("mail", 1)).await;
    assert_eq!(claimed.iter().map(|j| j.id).collect::<Vec<_>>(), [old]);
    r.jobs
        .complete_jobs(&system(), &[claimed[0].lease()])
        .await
        .unwrap();
    let pending = enqueue(r, acme.id, "later", n(2)).await;
    h.clock.advance(Duration::days(1));
    // Finished exactly at the cutoff: not before it, so kept.
    let at_cutoff = enqueue(r, acme.id, "mail", n(4)).await;
    let claimed = claim(r, &claim_of("mail", 1)).await;
    r.jobs
        .complete_jobs(&system(), &[claimed[0].lease()])
        .await
        .unwrap();
    h.clock.advance(Duration::days(1));
    let recent = enqueue(r, acme.id, "mail", n(3)).await;
    let claimed = claim(r, &claim_of("mail", 1)).await;
    r.jobs
        .complete_jobs(&system(), &[claimed[0].lease()])
        .await
        .unwrap();
    r.privacy
        .set_data_policy(
            &actx,
            NewDataPolicy {
                category: DataCategory::Jobs,
                retention: RetentionDays::new(1).unwrap(),
                action: RetentionAction::Delete,
            },
        )
        .await
        .unwrap();

    let now = h.clock.now();
    let report = r
        .privacy
        .enforce_retention(&system(), now, 10)
        .await
        .unwrap();
    assert_eq!(
        report.outcomes,
        [RetentionOutcome {
            tenant_id: acme.id,
            category: DataCategory::Jobs,
            cutoff: now - Duration::days(1),
            deleted: 1,
            anonymized: 0,
            applied: true,
        }]
    );
    assert_err!(
        r.jobs.get_job(&sys(acme.id), old).await,
        insightpulse_core::Error::NotFound { .. }
    );
    assert_eq!(state(r, acme.id, pending).await, JobState::Pending);
    assert_eq!(state(r, acme.id, recent).await, JobState::Completed);
    assert_eq!(state(r, acme.id, at_cutoff).await, JobState::Completed);
}
