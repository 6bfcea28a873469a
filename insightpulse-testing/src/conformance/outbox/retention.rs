//! Retention of domain events, through the privacy module's policies.

use super::*;
use chrono::Duration;
use insightpulse_core::privacy::{
    DataCategory, NewDataPolicy, RetentionAction, RetentionDays, RetentionOutcome,
};
use insightpulse_core::Clock;

/// A `domain_events` policy deletes its tenant's events published before
/// the cutoff, oldest first, in audited batches; events published at the
/// cutoff or later and other tenants' events stay.
pub async fn domain_events_expire_by_the_tenants_policy(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let (_, _, bctx) = tenant_with_owner(r, "beta").await;
    for i in 0..3 {
        publish(r, &actx, "doc.saved", i).await;
    }
    let theirs = publish(r, &bctx, "doc.saved", 9).await;
    h.clock.advance(Duration::days(1));
    // Published exactly at the cutoff: not before it, so kept.
    let at_cutoff = publish(r, &actx, "doc.saved", 4).await;
    h.clock.advance(Duration::days(1));
    let fresh = publish(r, &actx, "doc.saved", 3).await;
    r.privacy
        .set_data_policy(
            &actx,
            NewDataPolicy {
                category: DataCategory::DomainEvents,
                retention: RetentionDays::new(1).unwrap(),
                action: RetentionAction::Delete,
            },
        )
        .await
        .unwrap();

    let now = h.clock.now();
    let report = r
        .privacy
        .enforce_retention(&system(), now, 2)
        .await
        .unwrap();
    assert_eq!(
        report.outcomes,
        [RetentionOutcome {
            tenant_id: acme.id,
            category: DataCategory::DomainEvents,
            cutoff: now - Duration::days(1),
            deleted: 3,
            anonymized: 0,
            applied: true,
        }]
    );
    let start = Some(EventCursor::START);
    assert_eq!(
        ids(&read(r, &actx, "after", start, 100).await),
        [at_cutoff, fresh]
    );
    assert_eq!(ids(&read(r, &bctx, "after", start, 100).await), [theirs]);
    // One audited batch per two events.
    let batches: Vec<i64> = audit_trail(r, acme.id)
        .await
        .iter()
        .filter(|e| e.action.as_str() == "retention.applied")
        .map(|e| e.diff["deleted"].as_i64().unwrap())
        .collect();
    assert_eq!(batches, [2, 1]);
}
