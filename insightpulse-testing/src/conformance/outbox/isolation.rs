//! Cases: tenant isolation of events and cursors, API keys, and the
//! system's cross-tenant consumers.

use super::*;
use insightpulse_core::tenancy::ApiKeyScope;
use insightpulse_core::{Entity, Error, PermissionCode, Requirement};

/// A user of tenant A never sees B's events, cannot publish into B, and
/// A's cursors are A's: the same consumer name in B is another cursor.
pub async fn tenants_never_see_each_others_events(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let (umbrella, _, uctx) = tenant_with_owner(r, "umbrella").await;
    let a1 = publish(r, &actx, "order.placed", 1).await;
    let b1 = publish(r, &uctx, "order.placed", 2).await;
    let a2 = publish(r, &actx, "order.shipped", 3).await;

    assert_eq!(ids(&read(r, &actx, "sync", None, 100).await), [a1, a2]);
    assert_eq!(ids(&read(r, &uctx, "sync", None, 100).await), [b1]);

    // A's owner aiming at B: B does not exist for them.
    let into_b = actx.clone().in_tenant(umbrella.id);
    assert_err!(
        r.outbox
            .publish_event(&into_b, &event_type("order.forged"), &json!({}))
            .await,
        Error::NotFound {
            entity: Entity::Tenant
        }
    );
    let name = consumer("sync");
    assert_err!(
        r.outbox.read_events(&into_b, &name, None, 100).await,
        Error::NotFound {
            entity: Entity::Tenant
        }
    );
    assert_err!(
        r.outbox
            .commit_cursor(&into_b, &name, EventCursor::START)
            .await,
        Error::NotFound {
            entity: Entity::Tenant
        }
    );
    assert_err!(
        r.outbox.consumer_cursor(&into_b, &name).await,
        Error::NotFound {
            entity: Entity::Tenant
        }
    );
    assert_err!(
        r.outbox
            .subscribe_events(&into_b, EventCursor::START)
            .await
            .map(drop),
        Error::NotFound {
            entity: Entity::Tenant
        }
    );
    assert_eq!(ids(&read(r, &uctx, "sync", None, 100).await), [b1]);

    // Cursors are per tenant.
    let a_events = read(r, &actx, "sync", None, 100).await;
    r.outbox
        .commit_cursor(&actx, &name, a_events[1].position)
        .await
        .unwrap();
    assert_eq!(r.outbox.consumer_cursor(&uctx, &name).await.unwrap(), None);
    assert_eq!(ids(&read(r, &uctx, "sync", None, 100).await), [b1]);
    assert!(read(r, &actx, "sync", None, 100).await.is_empty());
    let _ = acme;
}

/// Members read only with `event.read`, but any member publishes; an API
/// key publishes in its tenant and reads only when it holds `event.read`.
pub async fn reading_needs_event_read_and_publishing_needs_the_tenant(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let (_, dev) = member_with_role(r, &actx, "dev@acme.io", Some("Developer")).await;
    let published = publish(r, &dev, "build.finished", 1).await;
    let name = consumer("ci");
    for result in [
        r.outbox.read_events(&dev, &name, None, 10).await.map(drop),
        r.outbox
            .commit_cursor(&dev, &name, EventCursor::START)
            .await
            .map(drop),
        r.outbox.consumer_cursor(&dev, &name).await.map(drop),
        r.outbox
            .subscribe_events(&dev, EventCursor::START)
            .await
            .map(drop),
    ] {
        assert_err!(
            result,
            Error::PermissionDenied {
                required: Requirement::Permission(PermissionCode::EVENT_READ)
            }
        );
    }

    let (_, _, reader) = api_key(r, &actx, ApiKeyScope::Tenant, &["event.read"]).await;
    let (_, _, writer) = api_key(r, &actx, ApiKeyScope::Tenant, &["project.create"]).await;
    let by_key = publish(r, &writer, "build.started", 2).await;
    assert_eq!(
        ids(&read(r, &reader, "ci", None, 10).await),
        [published, by_key]
    );
    assert!(read(r, &reader, "ci", None, 10)
        .await
        .iter()
        .all(|e| e.tenant_id == acme.id));
    assert_err!(
        r.outbox.read_events(&writer, &name, None, 10).await,
        Error::PermissionDenied { .. }
    );
}

/// The system without a tenant reads every tenant's events in one order
/// through one cursor, filed apart from every tenant's; the system in a
/// tenant reads that tenant's only.
pub async fn system_consumers_read_across_tenants(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let (umbrella, _, uctx) = tenant_with_owner(r, "umbrella").await;
    let e = [
        publish(r, &actx, "x.one", 1).await,
        publish(r, &uctx, "x.two", 2).await,
        publish(r, &actx, "x.three", 3).await,
    ];
    let sys = system();
    let all = read(r, &sys, "router", None, 100).await;
    assert_eq!(ids(&all), e);
    assert_in_position_order(&all);
    let name = consumer("router");
    r.outbox
        .commit_cursor(&sys, &name, all[0].position)
        .await
        .unwrap();
    assert_eq!(ids(&read(r, &sys, "router", None, 100).await), e[1..]);
    // The same name in a tenant is another cursor.
    assert_eq!(r.outbox.consumer_cursor(&actx, &name).await.unwrap(), None);
    assert_eq!(
        ids(&read(r, &system().in_tenant(umbrella.id), "router", None, 100).await),
        [e[1]]
    );
    assert_eq!(
        ids(&read(r, &system().in_tenant(acme.id), "router", None, 100).await),
        [e[0], e[2]]
    );
    // Events outlive their tenant: a consumer still gets `tenant.deleted`.
    let gone = publish(r, &uctx, "tenant.deleted", 4).await;
    r.tenants.delete_tenant(&uctx).await.unwrap();
    assert_eq!(
        ids(&read(r, &sys, "router", None, 100).await),
        [e[1], e[2], gone]
    );
}
