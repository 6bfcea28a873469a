//! Cases: subscriptions (replay, then follow) and retention.

use super::super::audit::{instant, system_actor};
use super::*;
use chrono::Duration;
use futures_util::StreamExt as _;
use insightpulse_core::outbox::EventStream;
use insightpulse_core::{Clock, Error, Requirement};

/// The next event of `stream`, failing the case after 10 s.
async fn next(stream: &mut EventStream) -> Event {
    tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
        .await
        .expect("the subscription yields the event in time")
        .expect("the subscription is open")
        .expect("the subscription reads")
}

/// A subscription replays the events after its cursor, then yields each
/// new one of its tenant as it is published (not other tenants').
pub async fn subscriptions_replay_then_follow_new_events(h: Harness) {
    let r = &h.repos;
    let (_, _, actx) = tenant_with_owner(r, "acme").await;
    let (_, _, uctx) = tenant_with_owner(r, "umbrella").await;
    let old = [
        publish(r, &actx, "a.one", 1).await,
        publish(r, &actx, "a.two", 2).await,
    ];
    let mut from_start = r
        .outbox
        .subscribe_events(&actx, EventCursor::START)
        .await
        .unwrap();
    let first = next(&mut from_start).await;
    assert_eq!(first.id, old[0]);
    assert_eq!(next(&mut from_start).await.id, old[1]);

    // From a cursor: only what follows it.
    let mut from_first = r
        .outbox
        .subscribe_events(&actx, first.position)
        .await
        .unwrap();
    assert_eq!(next(&mut from_first).await.id, old[1]);

    // New events arrive on both; the other tenant's never do.
    publish(r, &uctx, "b.noise", 9).await;
    let new = publish(r, &actx, "a.three", 3).await;
    assert_eq!(next(&mut from_start).await.id, new);
    assert_eq!(next(&mut from_first).await.id, new);
    let later = publish(r, &actx, "a.four", 4).await;
    assert_eq!(next(&mut from_start).await.id, later);

    // The system without a tenant follows every tenant.
    let mut everything = r
        .outbox
        .subscribe_events(&system(), EventCursor::START)
        .await
        .unwrap();
    let mut seen = vec![];
    for _ in 0..5 {
        seen.push(next(&mut everything).await.event_type.to_string());
    }
    assert_eq!(seen, ["a.one", "a.two", "b.noise", "a.three", "a.four"]);
}

/// The `outbox.purged` entries appended to `tenant`'s trail after its
/// first `skip` entries: `(deleted, before)` each, by the system.
async fn purges(
    r: &Repos,
    tenant: insightpulse_core::TenantId,
    skip: usize,
) -> Vec<(u64, chrono::DateTime<chrono::Utc>)> {
    audit_trail(r, tenant)
        .await
        .into_iter()
        .skip(skip)
        .map(|e| {
            assert_eq!(e.action.as_str(), "outbox.purged", "{e:#?}");
            assert_eq!(e.target_type.as_str(), "outbox");
            assert_eq!(e.actor, system_actor());
            (
                e.diff["deleted"].as_u64().expect("deleted"),
                instant(&e.diff["before"]),
            )
        })
        .collect()
}

/// Only the system purges; events published before the cutoff go (of the
/// context's tenant, or of all without one) and the others stay; each
/// purge is audited in the trail of each tenant it deleted events of.
pub async fn purge_removes_old_events_and_is_system_only(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let (umbrella, _, uctx) = tenant_with_owner(r, "umbrella").await;
    publish(r, &actx, "old.a", 1).await;
    publish(r, &uctx, "old.b", 2).await;
    h.clock.advance(Duration::days(10));
    let recent_a = publish(r, &actx, "new.a", 3).await;
    let recent_b = publish(r, &uctx, "new.b", 4).await;
    let cutoff = h.clock.now() - Duration::days(5);
    let (a_trail, b_trail) = (
        audit_trail(r, acme.id).await.len(),
        audit_trail(r, umbrella.id).await.len(),
    );

    assert_err!(
        r.outbox.purge_events(&actx, cutoff).await,
        Error::PermissionDenied {
            required: Requirement::System
        }
    );
    assert_eq!(read(r, &system(), "audit", None, 100).await.len(), 4);

    let purged = r
        .outbox
        .purge_events(&system().in_tenant(umbrella.id), cutoff)
        .await
        .unwrap();
    assert_eq!(purged, 1);
    assert_eq!(ids(&read(r, &uctx, "x", None, 100).await), [recent_b]);
    assert_eq!(read(r, &actx, "x", None, 100).await.len(), 2);
    assert_eq!(purges(r, umbrella.id, b_trail).await, [(1, cutoff)]);
    assert!(purges(r, acme.id, a_trail).await.is_empty());

    assert_eq!(r.outbox.purge_events(&system(), cutoff).await.unwrap(), 1);
    assert_eq!(ids(&read(r, &actx, "x", None, 100).await), [recent_a]);
    assert_eq!(purges(r, acme.id, a_trail).await, [(1, cutoff)]);
    assert_eq!(r.outbox.purge_events(&system(), cutoff).await.unwrap(), 0);
    assert_eq!(purges(r, acme.id, a_trail).await.len(), 1);
    assert_eq!(purges(r, umbrella.id, b_trail).await.len(), 1);
    assert_eq!(
        ids(&read(r, &system(), "x", None, 100).await),
        [recent_a, recent_b]
    );
    // Published at the cutoff itself, not before it: kept.
    let published = h.clock.now();
    assert_eq!(
        r.outbox.purge_events(&system(), published).await.unwrap(),
        0
    );
    assert_eq!(read(r, &system(), "x", None, 100).await.len(), 2);
}
