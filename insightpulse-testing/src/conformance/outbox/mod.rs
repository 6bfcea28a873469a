//! Conformance cases of the outbox: publishing, reading in order through
//! a consumer's cursor, at-least-once redelivery, tenant isolation,
//! subscriptions and retention.
//!
//! Rule guarded here: an event is read by holders of `event.read` in its
//! tenant (or the system, across tenants) in position order, never
//! skipped; a consumer's cursor moves only forward and only when committed,
//! so a consumer that crashes before committing reads the same events
//! again; bad input is refused before anything is written.

use super::{assert_err, Harness};
use crate::fixtures::*;
use insightpulse_core::outbox::{Event, EventCursor};
use insightpulse_core::{ConsumerName, Context, EventId, EventType, Repos};
use serde_json::json;

fn event_type(s: &str) -> EventType {
    EventType::parse(s).unwrap()
}

fn consumer(s: &str) -> ConsumerName {
    ConsumerName::parse(s).unwrap()
}

/// Publishes `ty` with payload `{"n": n}` as `ctx`, and waits until it is
/// readable ([`settle`]).
async fn publish(r: &Repos, ctx: &Context, ty: &str, n: i64) -> EventId {
    let id = r
        .outbox
        .publish_event(ctx, &event_type(ty), &json!({ "n": n }))
        .await
        .unwrap_or_else(|e| panic!("publish {ty}: {e}"));
    settle(r, id).await;
    id
}

/// Waits (up to 10 s) until the system can read event `id`. An event
/// becomes readable once no older transaction can still add one before it
/// — at once in memory; on PostgreSQL once every older transaction of the
/// database has ended, which another test's running at the same time can
/// delay. Readable for the system means readable for every reader from
/// then on (the horizon never moves back), so cases assert on reads
/// without racing it.
async fn settle(r: &Repos, id: EventId) {
    let probe = consumer("conformance.settle");
    for _ in 0..1000 {
        let readable = r
            .outbox
            .read_events(&system(), &probe, Some(EventCursor::START), 1000)
            .await
            .unwrap_or_else(|e| panic!("settle: {e}"));
        if readable.iter().any(|e| e.id == id) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("event {id:?} never became readable");
}

/// Reads up to `limit` events as `ctx` for `name` after `after`.
async fn read(
    r: &Repos,
    ctx: &Context,
    name: &str,
    after: Option<EventCursor>,
    limit: u32,
) -> Vec<Event> {
    r.outbox
        .read_events(ctx, &consumer(name), after, limit)
        .await
        .unwrap_or_else(|e| panic!("read events for {name}: {e}"))
}

fn ids(events: &[Event]) -> Vec<EventId> {
    events.iter().map(|e| e.id).collect()
}

fn assert_in_position_order(events: &[Event]) {
    assert!(
        events.windows(2).all(|w| w[0].position < w[1].position),
        "positions not increasing: {events:#?}"
    );
}

mod consuming;
mod following;
mod isolation;
mod retention;

pub use consuming::*;
pub use following::*;
pub use isolation::*;
pub use retention::*;

/// This module's conformance cases, for [`conformance_tests!`](crate::conformance_tests):
/// a new case is listed here, next to its module.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases_outbox {
    ($backend:tt) => {
        $crate::__conformance_module!($backend outbox [
            published_events_are_read_in_order,
            cursors_resume_reads_and_only_move_forward,
            uncommitted_reads_are_delivered_again,
            bad_input_is_refused_and_writes_nothing,
            tenants_never_see_each_others_events,
            reading_needs_event_read_and_publishing_needs_the_tenant,
            system_consumers_read_across_tenants,
            subscriptions_replay_then_follow_new_events,
            purge_removes_old_events_and_is_system_only,
            domain_events_expire_by_the_tenants_policy,
        ]);
    };
}
