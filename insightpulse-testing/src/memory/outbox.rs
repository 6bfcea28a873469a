//! The outbox in memory (rules: `insightpulse_core::outbox`).
//!
//! Every call runs under the one state lock, so a publish "commits" the
//! instant it is made and commit order is insertion order: each publish is
//! its own transaction (`xact`, counted from 1) holding one event (`seq`,
//! counted from 1 across all events), and every stored event is readable at
//! once. What PostgreSQL needs a snapshot horizon for (an older transaction
//! still open) cannot happen here. Subscriptions are woken through a
//! `tokio::sync::watch` channel ticked by every publish.

use super::{MemoryBackend, State};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insightpulse_core::clock::truncate_to_micros;
use insightpulse_core::outbox::{
    follow, purged_event, validate_cursor, validate_limit, validate_payload, Event, EventCursor,
    EventStream, OutboxRepo, ReadScope, PURGE_BATCH, STREAM_BATCH,
};
use insightpulse_core::values::canonical_json;
use insightpulse_core::{
    ConsumerName, Context, EventId, EventType, PermissionCode, Result, TenantId,
};
use std::collections::{BTreeMap, HashMap};
use tokio::sync::watch;

/// The outbox's tables.
pub(crate) struct OutboxState {
    /// Every event by position (delivery order).
    events: BTreeMap<EventCursor, Event>,
    /// The last position handed out.
    last: EventCursor,
    /// Cursors by `(scope key, consumer)`; see [`ReadScope::cursor_key`].
    cursors: HashMap<(TenantId, ConsumerName), EventCursor>,
    /// Ticks on every publish.
    wake: watch::Sender<u64>,
}

impl Default for OutboxState {
    fn default() -> Self {
        Self {
            events: BTreeMap::new(),
            last: EventCursor::START,
            cursors: HashMap::new(),
            wake: watch::channel(0).0,
        }
    }
}

impl State {
    /// Refuses unless `ctx` may read `scope`'s events (as PostgreSQL's
    /// `require`: an unseen tenant is `NotFound`, then `event.read`).
    fn require_event_reader(&self, ctx: &Context, scope: ReadScope) -> Result<()> {
        match scope {
            ReadScope::Tenant(_) => {
                let t = self.visible_tenant(ctx)?;
                self.require(ctx, t, PermissionCode::EVENT_READ, None)
            }
            ReadScope::AllTenants => ctx.require_system(),
        }
    }
}

impl MemoryBackend {
    fn read_scoped(
        &self,
        ctx: &Context,
        consumer: Option<&ConsumerName>,
        after: Option<EventCursor>,
        limit: u32,
    ) -> Result<Vec<Event>> {
        validate_limit(limit)?;
        if let Some(c) = after {
            validate_cursor(c)?;
        }
        let scope = ReadScope::of(ctx)?;
        let st = self.lock();
        st.require_event_reader(ctx, scope)?;
        let after = match (after, consumer) {
            (Some(c), _) => c,
            (None, Some(name)) => st
                .outbox
                .cursors
                .get(&(scope.cursor_key(), name.clone()))
                .copied()
                .unwrap_or(EventCursor::START),
            (None, None) => EventCursor::START,
        };
        Ok(st
            .outbox
            .events
            .range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
            .map(|(_, e)| e)
            .filter(|e| match scope {
                ReadScope::Tenant(t) => e.tenant_id == t,
                ReadScope::AllTenants => true,
            })
            .take(limit as usize)
            .cloned()
            .collect())
    }
}

#[async_trait]
impl OutboxRepo for MemoryBackend {
    async fn publish_event(
        &self,
        ctx: &Context,
        event_type: &EventType,
        payload: &serde_json::Value,
    ) -> Result<EventId> {
        self.run(ctx, "OutboxRepo.publish_event", || {
            validate_payload(payload)?;
            ctx.require_tenant()?;
            let now = truncate_to_micros(self.now());
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            let last = st.outbox.last;
            let position = EventCursor::new(last.xact + 1, last.seq + 1);
            let event = Event {
                id: EventId::new(),
                tenant_id: t,
                event_type: event_type.clone(),
                payload: canonical_json(payload.clone()),
                published_at: now,
                position,
            };
            let id = event.id;
            st.outbox.events.insert(position, event);
            st.outbox.last = position;
            st.outbox.wake.send_modify(|n| *n = n.wrapping_add(1));
            Ok(id)
        })
    }

    async fn read_events(
        &self,
        ctx: &Context,
        consumer: &ConsumerName,
        after: Option<EventCursor>,
        limit: u32,
    ) -> Result<Vec<Event>> {
        self.run(ctx, "OutboxRepo.read_events", || {
            self.read_scoped(ctx, Some(consumer), after, limit)
        })
    }

    async fn commit_cursor(
        &self,
        ctx: &Context,
        consumer: &ConsumerName,
        cursor: EventCursor,
    ) -> Result<EventCursor> {
        self.run(ctx, "OutboxRepo.commit_cursor", || {
            validate_cursor(cursor)?;
            let scope = ReadScope::of(ctx)?;
            let mut st = self.lock();
            st.require_event_reader(ctx, scope)?;
            let stored = st
                .outbox
                .cursors
                .entry((scope.cursor_key(), consumer.clone()))
                .or_insert(cursor);
            *stored = (*stored).max(cursor);
            Ok(*stored)
        })
    }

    async fn consumer_cursor(
        &self,
        ctx: &Context,
        consumer: &ConsumerName,
    ) -> Result<Option<EventCursor>> {
        self.run(ctx, "OutboxRepo.consumer_cursor", || {
            let scope = ReadScope::of(ctx)?;
            let st = self.lock();
            st.require_event_reader(ctx, scope)?;
            Ok(st
                .outbox
                .cursors
                .get(&(scope.cursor_key(), consumer.clone()))
                .copied())
        })
    }

    async fn subscribe_events(&self, ctx: &Context, from: EventCursor) -> Result<EventStream> {
        let wake = self.run(ctx, "OutboxRepo.subscribe_events", || {
            validate_cursor(from)?;
            let scope = ReadScope::of(ctx)?;
            let st = self.lock();
            st.require_event_reader(ctx, scope)?;
            Ok(st.outbox.wake.subscribe())
        })?;
        let (this, ctx) = (self.clone(), ctx.clone());
        Ok(follow(wake, from, move |after| {
            let out = this.read_scoped(&ctx, None, Some(after), STREAM_BATCH);
            async move { out }
        }))
    }

    async fn purge_events(&self, ctx: &Context, before: DateTime<Utc>) -> Result<u64> {
        self.run(ctx, "OutboxRepo.purge_events", || {
            ctx.require_system()?;
            let scope = ReadScope::of(ctx)?;
            let now = self.now();
            let mut st = self.lock();
            // Oldest first, in batches as PostgreSQL's transactions.
            let mut doomed: Vec<(DateTime<Utc>, EventCursor, TenantId)> = st
                .outbox
                .events
                .values()
                .filter(|e| match scope {
                    ReadScope::Tenant(t) => e.tenant_id == t,
                    ReadScope::AllTenants => true,
                })
                .filter(|e| e.published_at < before)
                .map(|e| (e.published_at, e.position, e.tenant_id))
                .collect();
            doomed.sort();
            for batch in doomed.chunks(PURGE_BATCH as usize) {
                let mut per_tenant: BTreeMap<TenantId, u64> = BTreeMap::new();
                for (_, position, tenant) in batch {
                    st.outbox.events.remove(position);
                    *per_tenant.entry(*tenant).or_default() += 1;
                }
                for (tenant, deleted) in per_tenant {
                    st.audit(ctx, tenant, purged_event(deleted, before)?, now);
                }
            }
            Ok(doomed.len() as u64)
        })
    }
}

impl State {
    /// The outbox's retention hook (`domain_events`): the tenant's events
    /// published before the cutoff, oldest first.
    pub(super) fn retire_events(
        &mut self,
        run: &super::privacy::RetentionRun<'_>,
    ) -> Result<super::privacy::Counts> {
        let mut doomed: Vec<(DateTime<Utc>, EventCursor)> = self
            .outbox
            .events
            .values()
            .filter(|e| e.tenant_id == run.tenant && e.published_at < run.cutoff)
            .map(|e| (e.published_at, e.position))
            .collect();
        doomed.sort();
        self.delete_in_batches(
            run,
            insightpulse_core::privacy::DataCategory::DomainEvents,
            &doomed,
            |st, (_, position)| {
                st.outbox.events.remove(position);
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::tenant_with_owner;

    /// Each publish is its own transaction holding one event: positions
    /// count both parts from 1, as the module docs say.
    #[tokio::test]
    async fn each_publish_is_a_transaction_of_one_event() {
        let backend = MemoryBackend::new();
        let repos = backend.repos();
        let (_, _, ctx) = tenant_with_owner(&repos, "acme").await;
        let ty = EventType::parse("doc.saved").unwrap();
        for _ in 0..3 {
            repos
                .outbox
                .publish_event(&ctx, &ty, &serde_json::json!({}))
                .await
                .unwrap();
        }
        let consumer = ConsumerName::parse("c").unwrap();
        let positions: Vec<EventCursor> = repos
            .outbox
            .read_events(&ctx, &consumer, None, 10)
            .await
            .unwrap()
            .iter()
            .map(|e| e.position)
            .collect();
        assert_eq!(
            positions,
            [
                EventCursor::new(1, 1),
                EventCursor::new(2, 2),
                EventCursor::new(3, 3)
            ]
        );
    }
}
