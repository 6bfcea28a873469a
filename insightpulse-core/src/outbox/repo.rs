//! The outbox repository trait, and the stream every backend builds its
//! subscriptions from.

use super::model::{Event, EventCursor};
use crate::context::Context;
use crate::error::Result;
use crate::ids::EventId;
use crate::values::{ConsumerName, EventType};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;

/// A subscription: the events after its starting cursor, then each new one
/// as it becomes readable, in delivery order. It ends after yielding an
/// error (resume from the last event's position).
pub type EventStream = BoxStream<'static, Result<Event>>;

/// Domain events: published with the change they describe, consumed at
/// least once in delivery order through a cursor per consumer.
///
/// **Scope.** A call acts in the context's tenant. The system may also
/// act without one: it then reads every tenant's events (one cursor per
/// consumer across all tenants). Reading needs `event.read`; a tenant the
/// caller cannot see is `NotFound` (entity `tenant`).
///
/// **Delivery order.** Events come out ordered by [`Event::position`]. An
/// event becomes readable only once no event can ever appear *before* it
/// (on PostgreSQL: once every transaction older than its own has ended),
/// so a consumer that moves its cursor past an event has seen everything
/// before it: nothing is ever skipped.
///
/// **At least once.** A consumer reads from its committed cursor, processes,
/// then commits the last processed position; crashing in between means
/// reading the same events again, so consumers deduplicate on [`Event::id`].
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait OutboxRepo: Send + Sync {
    /// Publishes an event in the context's tenant, in a unit of work of its
    /// own. Any principal acting in the tenant may publish (what an event
    /// means is the host's business). Errors: `Validation` (`payload`) for
    /// JSON no database can store or over 256 KiB; `NotFound` (tenant) for
    /// a tenant the caller cannot see; `Validation` (`context`) without a
    /// tenant.
    async fn publish_event(
        &self,
        ctx: &Context,
        event_type: &EventType,
        payload: &serde_json::Value,
    ) -> Result<EventId>;

    /// Up to `limit` (1–1000) events after `after`, or, when `after` is
    /// `None`, after `consumer`'s committed cursor (from the start when it
    /// has none). Reading moves no cursor. Needs `event.read`.
    async fn read_events(
        &self,
        ctx: &Context,
        consumer: &ConsumerName,
        after: Option<EventCursor>,
        limit: u32,
    ) -> Result<Vec<Event>>;

    /// Commits `consumer`'s cursor: everything up to `cursor` is processed.
    /// A cursor never moves back (committing an older one keeps the newer);
    /// returns the cursor as stored. Needs `event.read`.
    async fn commit_cursor(
        &self,
        ctx: &Context,
        consumer: &ConsumerName,
        cursor: EventCursor,
    ) -> Result<EventCursor>;

    /// `consumer`'s committed cursor in this scope, if any. Needs `event.read`.
    async fn consumer_cursor(
        &self,
        ctx: &Context,
        consumer: &ConsumerName,
    ) -> Result<Option<EventCursor>>;

    /// Follows the events after `from` ([`EventCursor::START`] for all):
    /// replays those already readable, then yields each new one as it
    /// becomes readable, woken by the backend's notifications (and, as a
    /// fallback, polling every second). Needs `event.read`, checked here
    /// once; the stream commits no cursor.
    async fn subscribe_events(&self, ctx: &Context, from: EventCursor) -> Result<EventStream>;

    /// Deletes the events published before `before` (of the context's tenant,
    /// or of every tenant without one), oldest first, in transactions of at
    /// most [`PURGE_BATCH`](super::PURGE_BATCH) events; returns how many.
    /// Each batch appends `outbox.purged` (`deleted`, `before`) to the trail
    /// of each tenant it deleted events of. A consumer whose cursor lags
    /// behind never sees them. System only.
    async fn purge_events(&self, ctx: &Context, before: DateTime<Utc>) -> Result<u64>;
}

/// How long a subscription waits for a wake-up before reading anyway: a
/// notification can be lost (a listener reconnecting), and an event can
/// become readable without one (on PostgreSQL, when an unrelated older
/// transaction ends).
pub const POLL_FALLBACK: Duration = Duration::from_secs(1);

/// How many events a subscription reads per batch.
pub const STREAM_BATCH: u32 = 100;

/// The stream behind every backend's [`OutboxRepo::subscribe_events`].
///
/// `read(after)` reads one batch after a cursor (the backend's own read,
/// permission included); `wake` changes whenever events may have been
/// published. The wake-up is marked seen *before* each read, so an event
/// published between a read that found nothing and the wait wakes the
/// wait at once: no notification is lost in between.
pub fn follow<R, F>(mut wake: watch::Receiver<u64>, from: EventCursor, read: R) -> EventStream
where
    R: FnMut(EventCursor) -> F + Send + 'static,
    F: Future<Output = Result<Vec<Event>>> + Send + 'static,
{
    struct State<R> {
        wake: watch::Receiver<u64>,
        cursor: EventCursor,
        buffered: VecDeque<Event>,
        read: R,
        failed: bool,
    }
    let state = State {
        wake: {
            wake.mark_unchanged();
            wake
        },
        cursor: from,
        buffered: VecDeque::new(),
        read,
        failed: false,
    };
    Box::pin(futures_util::stream::unfold(state, |mut st| async move {
        if st.failed {
            return None;
        }
        loop {
            if let Some(event) = st.buffered.pop_front() {
                st.cursor = event.position;
                return Some((Ok(event), st));
            }
            st.wake.mark_unchanged();
            match (st.read)(st.cursor).await {
                Err(e) => {
                    st.failed = true;
                    return Some((Err(e), st));
                }
                Ok(batch) if !batch.is_empty() => st.buffered.extend(batch),
                Ok(_) => {
                    // Woken, timed out, or the sender is gone: read again
                    // either way (a closed channel falls back to polling).
                    if tokio::time::timeout(POLL_FALLBACK, st.wake.changed())
                        .await
                        .is_ok_and(|r| r.is_err())
                    {
                        tokio::time::sleep(POLL_FALLBACK).await;
                    }
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::ids::TenantId;
    use futures_util::StreamExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    fn event(xact: i64) -> Event {
        Event {
            id: EventId::new(),
            tenant_id: TenantId::new(),
            event_type: EventType::parse("thing.happened").unwrap(),
            payload: serde_json::json!({ "xact": xact }),
            published_at: Utc::now(),
            position: EventCursor::new(xact, 1),
        }
    }

    type Events = Arc<Mutex<Vec<Event>>>;

    /// A backend's read over `events`: what lies after the cursor (yielding
    /// to the runtime first, as a real read would), each read counted.
    fn reader(
        events: Events,
        reads: Arc<AtomicUsize>,
    ) -> impl FnMut(EventCursor) -> futures_util::future::BoxFuture<'static, Result<Vec<Event>>>
           + Send
           + 'static {
        move |after: EventCursor| {
            reads.fetch_add(1, Ordering::Relaxed);
            let batch: Vec<Event> = events
                .lock()
                .unwrap()
                .iter()
                .filter(|e| e.position > after)
                .cloned()
                .collect();
            Box::pin(async move {
                tokio::task::yield_now().await;
                Ok(batch)
            })
        }
    }

    #[tokio::test]
    async fn a_subscription_yields_what_it_reads_then_sleeps_until_woken() {
        let (events, reads): (Events, Arc<AtomicUsize>) =
            (Arc::new(Mutex::new(vec![event(1)])), Arc::default());
        let read = reader(events.clone(), reads.clone());
        let (wake, woken) = watch::channel(0);
        let mut stream = follow(woken, EventCursor::START, read);
        let first = tokio::time::timeout(POLL_FALLBACK * 3, stream.next())
            .await
            .expect("the readable event")
            .unwrap()
            .unwrap();
        assert_eq!(first.position, EventCursor::new(1, 1));
        // Nothing new: it waits for a wake-up instead of reading on.
        let idle = tokio::time::timeout(Duration::from_millis(200), stream.next()).await;
        assert!(idle.is_err());
        assert!(reads.load(Ordering::Relaxed) <= 3, "{reads:?}");
        events.lock().unwrap().push(event(2));
        wake.send_modify(|n| *n += 1);
        // Woken well before the poll fallback.
        let second = tokio::time::timeout(POLL_FALLBACK / 2, stream.next())
            .await
            .expect("woken")
            .unwrap()
            .unwrap();
        assert_eq!(second.position, EventCursor::new(2, 1));
    }

    #[tokio::test]
    async fn a_subscription_ends_after_an_error() {
        let (wake, woken) = watch::channel(0);
        let mut stream = follow(woken, EventCursor::START, |_| {
            std::future::ready(Err(Error::validation("x", "down")))
        });
        assert!(matches!(
            stream.next().await,
            Some(Err(Error::Validation { .. }))
        ));
        assert!(stream.next().await.is_none());
        drop(wake);
    }
}
