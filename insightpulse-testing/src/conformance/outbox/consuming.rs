//! Cases: publishing, reading in order, cursors and at-least-once redelivery.

use super::*;
use insightpulse_core::outbox::MAX_PAYLOAD_BYTES;
use insightpulse_core::{Clock, Entity, Error, PermissionCode, Requirement};

/// Published events come back in publish order with what was published:
/// type, payload (as `jsonb` keeps it), tenant, time and increasing
/// positions; `after` and `limit` page through them.
pub async fn published_events_are_read_in_order(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let published_at = h.clock.now();
    let first = publish(r, &actx, "project.created", 1).await;
    let payload = json!({"n": 1e16, "nested": {"list": [1, "two", null]}});
    let second = r
        .outbox
        .publish_event(&actx, &event_type("project.renamed"), &payload)
        .await
        .unwrap();
    settle(r, second).await;
    let third = publish(r, &actx, "project.deleted", 3).await;

    let all = read(r, &actx, "reader", None, 10).await;
    assert_eq!(ids(&all), [first, second, third]);
    assert_in_position_order(&all);
    assert!(all.iter().all(|e| e.tenant_id == acme.id));
    assert_eq!(all[0].event_type.as_str(), "project.created");
    assert_eq!(all[0].payload, json!({"n": 1}));
    assert_eq!(
        all[1].payload,
        json!({"n": 10_000_000_000_000_000u64, "nested": {"list": [1, "two", null]}})
    );
    let micros = |t: chrono::DateTime<chrono::Utc>| t.timestamp_micros();
    assert!(all
        .iter()
        .all(|e| micros(e.published_at) == micros(published_at)));

    let after_first = read(r, &actx, "reader", Some(all[0].position), 10).await;
    assert_eq!(ids(&after_first), [second, third]);
    let page = read(r, &actx, "reader", None, 2).await;
    assert_eq!(ids(&page), [first, second]);
    assert!(read(r, &actx, "reader", Some(all[2].position), 10)
        .await
        .is_empty());
    // Positions round-trip through their text form.
    let pos: EventCursor = all[1].position.to_string().parse().unwrap();
    assert_eq!(ids(&read(r, &actx, "reader", Some(pos), 10).await), [third]);
}

/// A committed cursor is where `read_events(.., None, ..)` resumes; it
/// never moves back; each consumer has its own.
pub async fn cursors_resume_reads_and_only_move_forward(h: Harness) {
    let r = &h.repos;
    let (_, _, actx) = tenant_with_owner(r, "acme").await;
    let (webhooks, alerts) = (consumer("webhooks"), consumer("alerts.evaluator"));
    assert_eq!(
        r.outbox.consumer_cursor(&actx, &webhooks).await.unwrap(),
        None
    );
    let e = [
        publish(r, &actx, "a.one", 1).await,
        publish(r, &actx, "a.two", 2).await,
        publish(r, &actx, "a.three", 3).await,
    ];
    let all = read(r, &actx, "webhooks", None, 10).await;
    assert_eq!(ids(&all), e);

    let stored = r
        .outbox
        .commit_cursor(&actx, &webhooks, all[1].position)
        .await
        .unwrap();
    assert_eq!(stored, all[1].position);
    assert_eq!(
        r.outbox.consumer_cursor(&actx, &webhooks).await.unwrap(),
        Some(all[1].position)
    );
    assert_eq!(ids(&read(r, &actx, "webhooks", None, 10).await), [e[2]]);
    // Another consumer is untouched.
    assert_eq!(ids(&read(r, &actx, "alerts.evaluator", None, 10).await), e);
    assert_eq!(
        r.outbox.consumer_cursor(&actx, &alerts).await.unwrap(),
        None
    );

    // Committing an older cursor keeps the newer one.
    let kept = r
        .outbox
        .commit_cursor(&actx, &webhooks, all[0].position)
        .await
        .unwrap();
    assert_eq!(kept, all[1].position);
    assert_eq!(ids(&read(r, &actx, "webhooks", None, 10).await), [e[2]]);

    let last = r
        .outbox
        .commit_cursor(&actx, &webhooks, all[2].position)
        .await
        .unwrap();
    assert_eq!(last, all[2].position);
    assert!(read(r, &actx, "webhooks", None, 10).await.is_empty());
    let later = publish(r, &actx, "a.four", 4).await;
    assert_eq!(ids(&read(r, &actx, "webhooks", None, 10).await), [later]);
}

/// At least once: a consumer that reads and "crashes" before committing
/// reads the same events (same ids) again; once it commits, it does not.
pub async fn uncommitted_reads_are_delivered_again(h: Harness) {
    let r = &h.repos;
    let (_, _, actx) = tenant_with_owner(r, "acme").await;
    let name = consumer("mailer");
    for i in 0..5 {
        publish(r, &actx, "invoice.paid", i).await;
    }
    let batch = read(r, &actx, "mailer", None, 3).await;
    assert_eq!(batch.len(), 3);
    // The process dies here: nothing was committed.
    let again = read(r, &actx, "mailer", None, 3).await;
    assert_eq!(ids(&again), ids(&batch));
    assert_eq!(again, batch);

    r.outbox
        .commit_cursor(&actx, &name, batch[2].position)
        .await
        .unwrap();
    let rest = read(r, &actx, "mailer", None, 3).await;
    assert_eq!(rest.len(), 2);
    assert!(rest.iter().all(|e| !ids(&batch).contains(&e.id)));
    let payloads: Vec<_> = rest.iter().map(|e| e.payload["n"].clone()).collect();
    assert_eq!(payloads, [json!(3), json!(4)]);
}

/// Bad input is refused before anything is written: a payload no
/// database can store or over 256 KiB, a limit outside 1–1000, a negative
/// cursor, a call without a tenant.
pub async fn bad_input_is_refused_and_writes_nothing(h: Harness) {
    let r = &h.repos;
    let (_, owner, actx) = tenant_with_owner(r, "acme").await;
    let ty = event_type("doc.saved");
    let name = consumer("reader");
    assert_err!(
        r.outbox
            .publish_event(&actx, &ty, &json!({"text": "nul\u{0}"}))
            .await,
        Error::Validation {
            field: "payload",
            ..
        }
    );
    assert_err!(
        r.outbox
            .publish_event(&actx, &ty, &json!("x".repeat(MAX_PAYLOAD_BYTES)))
            .await,
        Error::Validation {
            field: "payload",
            ..
        }
    );
    assert_err!(
        r.outbox
            .publish_event(&Context::user(owner.id), &ty, &json!({}))
            .await,
        Error::Validation {
            field: "context",
            ..
        }
    );
    for limit in [0, 1001] {
        assert_err!(
            r.outbox.read_events(&actx, &name, None, limit).await,
            Error::Validation { field: "limit", .. }
        );
    }
    let negative = EventCursor::new(-1, 0);
    assert_err!(
        r.outbox.read_events(&actx, &name, Some(negative), 10).await,
        Error::Validation {
            field: "cursor",
            ..
        }
    );
    assert_err!(
        r.outbox.commit_cursor(&actx, &name, negative).await,
        Error::Validation {
            field: "cursor",
            ..
        }
    );
    assert_err!(
        r.outbox
            .read_events(&Context::user(owner.id), &name, None, 10)
            .await,
        Error::Validation {
            field: "context",
            ..
        }
    );
    assert!(read(r, &system(), "reader", None, 1000).await.is_empty());
    assert_eq!(r.outbox.consumer_cursor(&actx, &name).await.unwrap(), None);
    assert!(EventType::parse("Not A Type").is_err());
    assert!(ConsumerName::parse("").is_err());

    // Reading needs event.read; a tenant the caller cannot see is NotFound.
    let (_, mctx) = member_with_role(r, &actx, "viewer@acme.io", Some("Viewer")).await;
    publish(r, &mctx, "doc.viewed", 1).await;
    assert_err!(
        r.outbox.read_events(&mctx, &name, None, 10).await,
        Error::PermissionDenied {
            required: Requirement::Permission(PermissionCode::EVENT_READ)
        }
    );
    let (_, _, other) = tenant_with_owner(r, "umbrella").await;
    assert_err!(
        r.outbox
            .read_events(
                &other.clone().in_tenant(actx.tenant_id().unwrap()),
                &name,
                None,
                10
            )
            .await,
        Error::NotFound {
            entity: Entity::Tenant
        }
    );
}
