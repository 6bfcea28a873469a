//! The transactional outbox on PostgreSQL (core module
//! [`insightpulse_core::outbox`]; schema in `migrations/0010_outbox.sql`).
//!
//! Modules publish inside their own unit of work with [`publish_in`], so an
//! event commits or rolls back with the change it describes.
//!
//! ## Why no event is ever skipped
//!
//! An event's position is `(xact, seq)`: `xact` is the publishing
//! transaction's id (`pg_current_xact_id()`, taken at insert), `seq` an
//! identity. A read delivers, in position order and from its statement's
//! snapshot S, only events with `xact < H`, where `H` is
//! `insightpulse.outbox_horizon()`: the smallest id that was in progress in
//! S (`pg_snapshot_xip`) and was not seen running in *another* database by
//! an earlier statement of the same transaction (PostgreSQL keeps one view
//! of the sessions per transaction, taken at its first look), or S's
//! `xmax` when there is none. Take any event E not visible in S. Its
//! transaction T was either in progress in S — and in this database, since
//! it writes here, so never excluded — so `xid(T) >= H`; or began after S,
//! so `xid(T) >= xmax(S) >= H`. Either way `E.xact >= H`, while every
//! delivered event has `xact < H`: events that appear later always sort
//! after everything delivered, and a consumer that commits the last
//! delivered position has seen every event before it. `H` never moves back
//! between reads (a transaction excluded by a later read was running
//! before its snapshot, hence above or excluded from the earlier `H`), so
//! an event readable once stays readable.
//!
//! A plain `seq > cursor` read is wrong: `seq` is assigned at insert, so a
//! transaction holding seq 10 can commit after one holding seq 11 was read
//! and the cursor moved past 11 — event 10 would be lost
//! (`tests/it/outbox.rs` reproduces that interleaving).
//!
//! Costs of this choice: delivery waits for the oldest running transaction
//! of this database that holds an id (a long writing transaction delays
//! delivery, never loses it; read-only ones hold no id), and the order is
//! that of id assignment — consistent with commit order for dependent
//! transactions (one that saw another's commit before it first wrote has
//! the larger id). Other databases of the cluster do not delay it when the
//! migrations ran as a superuser (the function then sees every session's
//! transaction id); otherwise `H` is the snapshot's `xmin`, as safe and
//! slower.
//!
//! ## Wake-ups
//!
//! Every insert statement notifies `insightpulse_outbox` (delivered at
//! commit). One `PgListener` per backend, started by the first
//! subscription and stopped when the last one ends (it holds one
//! connection of the pool meanwhile: a pool of one connection cannot serve
//! a subscription), turns notifications into a `tokio::sync::watch` tick
//! that wakes every subscription; each re-reads under its own RLS scope.
//! Subscriptions also poll every
//! [`POLL_FALLBACK`](insightpulse_core::outbox::POLL_FALLBACK), since an
//! event can become readable without a notification (an unrelated older
//! transaction ending).

use crate::error::db;
use crate::guard::require;
use crate::privacy::{Batch, Retention};
use crate::rows::{parse, row};
use crate::uow::traced;
use crate::uow::{quote_literal, uuid_literal, Tx};
use crate::PgBackend;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insightpulse_core::outbox::{
    follow, purged_event, validate_cursor, validate_limit, validate_payload, Event, EventCursor,
    EventStream, OutboxRepo, ReadScope, PURGE_BATCH, STREAM_BATCH,
};
use insightpulse_core::{
    ConsumerName, Context, Entity, Error, EventId, EventType, PermissionCode, Result, TenantId,
};
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// The channel every insert into `outbox_events` notifies.
const CHANNEL: &str = "insightpulse_outbox";

/// The readable horizon (once per statement, as an InitPlan): no
/// transaction of this database below it is still running.
const HORIZON: &str = "(SELECT insightpulse.outbox_horizon())";

row! {
    struct EventRow {
        id: uuid::Uuid,
        tenant_id: uuid::Uuid,
        event_type: String,
        payload: serde_json::Value,
        published_at: DateTime<Utc>,
        xact: i64,
        seq: i64,
    }
}

impl TryFrom<EventRow> for Event {
    type Error = Error;
    fn try_from(r: EventRow) -> Result<Self> {
        Ok(Event {
            id: EventId(r.id),
            tenant_id: TenantId(r.tenant_id),
            event_type: parse(&r.event_type, EventType::parse)?,
            payload: r.payload,
            published_at: r.published_at,
            position: EventCursor::new(r.xact, r.seq),
        })
    }
}

/// The insert of one event. With `probe_tenant`, a tenant that does not
/// exist or that the principal cannot see (through the tenants policy)
/// inserts nothing; without, RLS refuses a principal not acting in the
/// tenant. Values inlined as SQL literals: typed ids, a validated label,
/// JSON the SDK serialised and an instant, each quoted (see [`crate::uow`]).
fn insert_statement(
    tenant: TenantId,
    id: EventId,
    event_type: &EventType,
    payload: &serde_json::Value,
    now: DateTime<Utc>,
    probe_tenant: bool,
) -> String {
    let t = uuid_literal(tenant.0);
    let probe = if probe_tenant {
        format!(" WHERE EXISTS (SELECT 1 FROM tenants WHERE id = {t})")
    } else {
        String::new()
    };
    format!(
        "INSERT INTO outbox_events (tenant_id, id, event_type, payload, published_at)
         SELECT {t}, {id}, {ty}, {payload}::jsonb, {now}::timestamptz{probe}",
        id = uuid_literal(id.0),
        ty = quote_literal(event_type.as_str()),
        payload = quote_literal(&payload.to_string()),
        now = quote_literal(&now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
    )
}

/// Publishes an event of `tenant` inside the caller's unit of work: it
/// commits or rolls back with `tx`. The insert is queued to travel with
/// `COMMIT`, in the same message (no round trip of its own), and runs as
/// the unit of work's principal: the caller has already checked that the
/// principal acts in `tenant`; if not, RLS refuses the insert and the
/// commit fails (`PermissionDenied`) — an event is never dropped silently.
/// The position is not returned: a publisher need not be able to read
/// events.
// Called by the modules built on the outbox (webhooks, alerts, workflows),
// none of which has landed yet, and by the bench.
#[cfg_attr(not(feature = "bench-outbox"), allow(dead_code))]
pub(crate) async fn publish_in(
    tx: &mut Tx,
    tenant: TenantId,
    event_type: &EventType,
    payload: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<EventId> {
    validate_payload(payload)?;
    let id = EventId::new();
    tx.queue(insert_statement(
        tenant, id, event_type, payload, now, false,
    ));
    Ok(id)
}

/// Retention of `run.tenant`'s events (privacy's hook): delete-only,
/// oldest first, a batch at a time.
pub(crate) async fn retire_events(tx: &mut Tx, run: &Retention<'_>) -> Result<Batch> {
    let deleted = tx
        .query(
            "DELETE FROM outbox_events e
              USING (SELECT xact, seq FROM outbox_events
                      WHERE tenant_id = $1 AND published_at < $2
                      ORDER BY published_at, xact, seq LIMIT $3) AS d
              WHERE e.tenant_id = $1 AND e.xact = d.xact AND e.seq = d.seq",
        )
        .bind(run.tenant.0)
        .bind(run.cutoff)
        .bind(run.limit)
        .execute(&mut **tx)
        .await
        .map_err(db)?
        .rows_affected();
    Ok(Batch {
        deleted,
        ..Batch::default()
    })
}

/// Refuses a read unless `ctx` may read `scope`'s events: `event.read` in
/// the tenant, or the system for every tenant.
async fn require_reader(tx: &mut Tx, ctx: &Context, scope: ReadScope) -> Result<()> {
    match scope {
        ReadScope::Tenant(t) => require(tx, ctx, t, Some(PermissionCode::EVENT_READ), None).await,
        ReadScope::AllTenants => ctx.require_system(),
    }
}

/// The readable events of `scope` after `after`, in position order.
async fn read_after(
    tx: &mut Tx,
    scope: ReadScope,
    after: EventCursor,
    limit: u32,
) -> Result<Vec<Event>> {
    let tenant_filter = match scope {
        ReadScope::Tenant(_) => "tenant_id = $4 AND",
        ReadScope::AllTenants => "",
    };
    let rows: Vec<EventRow> = tx
        .query_as(&format!(
            "SELECT {} FROM outbox_events
          WHERE {tenant_filter} (xact, seq) > ($1, $2) AND xact < {HORIZON}
          ORDER BY xact, seq LIMIT $3",
            EventRow::COLUMNS
        ))
        .bind(after.xact)
        .bind(after.seq)
        .bind(i64::from(limit))
        .bind(scope.cursor_key().0)
        .fetch_all(&mut **tx)
        .await
        .map_err(db)?;
    rows.into_iter().map(Event::try_from).collect()
}

async fn stored_cursor(
    tx: &mut Tx,
    scope: ReadScope,
    consumer: &ConsumerName,
) -> Result<Option<EventCursor>> {
    let row: Option<(i64, i64)> = tx
        .query_as("SELECT xact, seq FROM outbox_cursors WHERE tenant_id = $1 AND consumer = $2")
        .bind(scope.cursor_key().0)
        .bind(consumer.as_str())
        .fetch_optional(&mut **tx)
        .await
        .map_err(db)?;
    Ok(row.map(|(x, s)| EventCursor::new(x, s)))
}

/// The backend's one `LISTEN` connection, shared by its subscriptions
/// while there are any.
#[derive(Clone, Default)]
pub(crate) struct Wakeups {
    slot: Arc<Mutex<Option<Arc<watch::Sender<u64>>>>>,
}

impl std::fmt::Debug for Wakeups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Wakeups { .. }")
    }
}

impl Wakeups {
    fn current(&self) -> Option<watch::Receiver<u64>> {
        let slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        slot.as_ref().map(|tx| tx.subscribe())
    }

    /// A receiver that ticks on every notification, starting the listener
    /// when none runs.
    async fn subscribe(&self, pool: &PgPool) -> Result<watch::Receiver<u64>> {
        if let Some(rx) = self.current() {
            return Ok(rx);
        }
        let mut listener = PgListener::connect_with(pool).await.map_err(db)?;
        listener.listen(CHANNEL).await.map_err(db)?;
        let (tx, rx) = {
            let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(tx) = slot.as_ref() {
                // Another subscription started one meanwhile: use it.
                return Ok(tx.subscribe());
            }
            let (tx, rx) = watch::channel(0u64);
            let tx = Arc::new(tx);
            *slot = Some(tx.clone());
            (tx, rx)
        };
        tokio::spawn(listen(listener, tx, self.slot.clone()));
        Ok(rx)
    }
}

/// Ticks `tx` on every notification until no subscription is left (or the
/// pool closes).
async fn listen(
    mut listener: PgListener,
    tx: Arc<watch::Sender<u64>>,
    slot: Arc<Mutex<Option<Arc<watch::Sender<u64>>>>>,
) {
    let tick = |tx: &watch::Sender<u64>| tx.send_modify(|n| *n = n.wrapping_add(1));
    loop {
        tokio::select! {
            () = tx.closed() => {
                // Decided under the lock, so a subscription joining now
                // either finds this listener alive or none at all.
                let mut s = slot.lock().unwrap_or_else(|e| e.into_inner());
                if tx.receiver_count() == 0 {
                    if s.as_ref().is_some_and(|x| Arc::ptr_eq(x, &tx)) {
                        *s = None;
                    }
                    return;
                }
            }
            received = listener.recv() => match received {
                Ok(_) => tick(&tx),
                Err(sqlx::Error::PoolClosed) => {
                    let mut s = slot.lock().unwrap_or_else(|e| e.into_inner());
                    if s.as_ref().is_some_and(|x| Arc::ptr_eq(x, &tx)) {
                        *s = None;
                    }
                    // Dropping `tx` ends the subscriptions' waits: they poll.
                    return;
                }
                Err(_) => {
                    // Notifications may have been lost: everyone re-reads.
                    tick(&tx);
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            },
        }
    }
}

impl PgBackend {
    async fn read_scoped(
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
        let mut tx = self.begin(ctx).await?;
        // Takes this transaction's view of the sessions now, before the
        // read's snapshot (see `insightpulse.outbox_horizon`).
        sqlx::query("SELECT count(*) FROM pg_stat_activity")
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        require_reader(&mut tx, ctx, scope).await?;
        let after = match (after, consumer) {
            (Some(c), _) => c,
            (None, Some(name)) => stored_cursor(&mut tx, scope, name)
                .await?
                .unwrap_or(EventCursor::START),
            (None, None) => EventCursor::START,
        };
        let events = read_after(&mut tx, scope, after, limit).await?;
        tx.commit().await.map_err(db)?;
        Ok(events)
    }
}

impl PgBackend {
    /// One unit of work as `ctx`, the owner of a project: touches the
    /// project (`UPDATE projects SET updated_at`), and publishes an event
    /// with [`publish_in`] when `publish` — what `benches/outbox.rs`
    /// measures. Benchmarks only.
    #[cfg(feature = "bench-outbox")]
    #[doc(hidden)]
    pub async fn bench_unit_of_work(
        &self,
        ctx: &Context,
        project: insightpulse_core::ProjectId,
        publish: bool,
    ) -> Result<()> {
        let t = ctx.require_tenant()?;
        let now = self.clock.now();
        let mut tx = self.begin(ctx).await?;
        sqlx::query("UPDATE projects SET updated_at = $3 WHERE tenant_id = $1 AND id = $2")
            .bind(t.0)
            .bind(project.0)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if publish {
            let ty = EventType::parse("project.touched")?;
            publish_in(
                &mut tx,
                t,
                &ty,
                &serde_json::json!({ "project_id": project }),
                now,
            )
            .await?;
        }
        tx.commit().await.map_err(db)
    }
}

#[async_trait]
impl OutboxRepo for PgBackend {
    async fn publish_event(
        &self,
        ctx: &Context,
        event_type: &EventType,
        payload: &serde_json::Value,
    ) -> Result<EventId> {
        traced!(ctx, "OutboxRepo.publish_event", {
            validate_payload(payload)?;
            let t = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            let id = EventId::new();
            // Sent now, not queued: a tenant the caller cannot see inserts
            // nothing, which is `NotFound`.
            let inserted = tx
                .query(&insert_statement(
                    t,
                    id,
                    event_type,
                    payload,
                    self.clock.now(),
                    true,
                ))
                .execute(&mut *tx)
                .await
                .map_err(db)?
                .rows_affected();
            if inserted == 0 {
                return Err(Error::not_found(Entity::Tenant));
            }
            tx.commit().await.map_err(db)?;
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
        traced!(ctx, "OutboxRepo.read_events", {
            self.read_scoped(ctx, Some(consumer), after, limit).await
        })
    }

    async fn commit_cursor(
        &self,
        ctx: &Context,
        consumer: &ConsumerName,
        cursor: EventCursor,
    ) -> Result<EventCursor> {
        traced!(ctx, "OutboxRepo.commit_cursor", {
            validate_cursor(cursor)?;
            let scope = ReadScope::of(ctx)?;
            let mut tx = self.begin(ctx).await?;
            require_reader(&mut tx, ctx, scope).await?;
            // Moves forward only; an older cursor leaves the row as it is.
            let moved: Option<(i64, i64)> = tx
                .query_as(
                    "INSERT INTO outbox_cursors AS c (tenant_id, consumer, xact, seq, updated_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (tenant_id, consumer) DO UPDATE
                    SET xact = EXCLUDED.xact, seq = EXCLUDED.seq, updated_at = EXCLUDED.updated_at
                  WHERE (c.xact, c.seq) < (EXCLUDED.xact, EXCLUDED.seq)
                 RETURNING xact, seq",
                )
                .bind(scope.cursor_key().0)
                .bind(consumer.as_str())
                .bind(cursor.xact)
                .bind(cursor.seq)
                .bind(self.clock.now())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            let stored = match moved {
                Some((x, s)) => EventCursor::new(x, s),
                None => stored_cursor(&mut tx, scope, consumer)
                    .await?
                    .unwrap_or(cursor),
            };
            tx.commit().await.map_err(db)?;
            Ok(stored)
        })
    }

    async fn consumer_cursor(
        &self,
        ctx: &Context,
        consumer: &ConsumerName,
    ) -> Result<Option<EventCursor>> {
        traced!(ctx, "OutboxRepo.consumer_cursor", {
            let scope = ReadScope::of(ctx)?;
            let mut tx = self.begin(ctx).await?;
            require_reader(&mut tx, ctx, scope).await?;
            let cursor = stored_cursor(&mut tx, scope, consumer).await?;
            tx.commit().await.map_err(db)?;
            Ok(cursor)
        })
    }

    async fn subscribe_events(&self, ctx: &Context, from: EventCursor) -> Result<EventStream> {
        traced!(ctx, "OutboxRepo.subscribe_events", {
            validate_cursor(from)?;
            let scope = ReadScope::of(ctx)?;
            let mut tx = self.begin(ctx).await?;
            require_reader(&mut tx, ctx, scope).await?;
            tx.commit().await.map_err(db)?;
            let wake = self.wakeups.subscribe(self.listener_pool()).await?;
            let (this, ctx) = (self.clone(), ctx.clone());
            Ok(follow(wake, from, move |after| {
                let (this, ctx) = (this.clone(), ctx.clone());
                async move {
                    this.read_scoped(&ctx, None, Some(after), STREAM_BATCH)
                        .await
                }
            }))
        })
    }

    async fn purge_events(&self, ctx: &Context, before: DateTime<Utc>) -> Result<u64> {
        traced!(ctx, "OutboxRepo.purge_events", {
            ctx.require_system()?;
            let scope = ReadScope::of(ctx)?;
            let mut purged = 0u64;
            loop {
                let mut tx = self.begin(ctx).await?;
                let per_tenant: Vec<(uuid::Uuid, i64)> = tx
                    .query_as(
                        "WITH doomed AS (
                         SELECT tenant_id, xact, seq FROM outbox_events
                          WHERE published_at < $1 AND ($2::uuid IS NULL OR tenant_id = $2)
                          ORDER BY published_at, xact, seq LIMIT $3),
                     gone AS (
                         DELETE FROM outbox_events e USING doomed d
                          WHERE (e.tenant_id, e.xact, e.seq) = (d.tenant_id, d.xact, d.seq)
                         RETURNING e.tenant_id)
                     SELECT tenant_id, count(*) FROM gone GROUP BY tenant_id ORDER BY tenant_id",
                    )
                    .bind(before)
                    .bind(match scope {
                        ReadScope::Tenant(t) => Some(t.0),
                        ReadScope::AllTenants => None,
                    })
                    .bind(i64::from(PURGE_BATCH))
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db)?;
                let mut n = 0u64;
                for (tenant, deleted) in per_tenant {
                    let deleted = u64::try_from(deleted).unwrap_or(0);
                    n += deleted;
                    self.audit(
                        &mut tx,
                        ctx,
                        TenantId(tenant),
                        purged_event(deleted, before)?,
                    );
                }
                tx.commit().await.map_err(db)?;
                purged += n;
                if n < u64::from(PURGE_BATCH) {
                    return Ok(purged);
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use insightpulse_core::tenancy::passwords::PasswordCost;
    use insightpulse_core::tenancy::tokens::TokenHasher;
    use insightpulse_core::tenancy::{NewTenant, NewUser};
    use insightpulse_core::{Email, Name, Slug, TimeZone};
    use serde_json::json;
    use std::time::Duration;

    /// A migrated backend and an owner's context in a fresh tenant.
    async fn owner_in_tenant(pool: PgPool) -> (PgBackend, Context, TenantId) {
        let backend = PgBackend::from_pool(pool, TokenHasher::insecure_development())
            .with_password_cost(PasswordCost::InsecureFastForTests);
        backend.migrate().await.unwrap();
        let repos = backend.repos();
        let owner = repos
            .users
            .create_user(
                &Context::system("test"),
                NewUser {
                    email: Email::parse("owner@acme.io").unwrap(),
                    full_name: None,
                },
            )
            .await
            .unwrap();
        let tenant = repos
            .tenants
            .create_tenant(
                &Context::user(owner.id),
                NewTenant {
                    slug: Slug::parse("acme").unwrap(),
                    name: Name::parse("Acme").unwrap(),
                    timezone: TimeZone::parse("UTC").unwrap(),
                },
            )
            .await
            .unwrap();
        (
            backend,
            Context::user(owner.id).in_tenant(tenant.id),
            tenant.id,
        )
    }

    /// Every event a system consumer can read, waiting (up to 10 s) until
    /// at least `n` are readable.
    async fn readable(backend: &PgBackend, n: usize) -> Vec<Event> {
        let system = Context::system("test");
        for _ in 0..1000 {
            let events = backend
                .read_scoped(&system, None, None, 1000)
                .await
                .unwrap();
            if events.len() >= n {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("fewer than {n} events became readable");
    }

    /// A module's unit of work that rolls back takes its events with it;
    /// one that commits publishes them together, in one transaction.
    #[sqlx::test(migrations = false)]
    async fn events_commit_and_roll_back_with_their_unit_of_work(pool: PgPool) {
        let (backend, ctx, t) = owner_in_tenant(pool).await;
        let ty = EventType::parse("project.created").unwrap();
        let now = backend.clock.now();

        let mut doomed = backend.begin(&ctx).await.unwrap();
        publish_in(&mut doomed, t, &ty, &json!({"n": 0}), now)
            .await
            .unwrap();
        drop(doomed); // an early `?` return: rolled back

        let mut tx = backend.begin(&ctx).await.unwrap();
        let first = publish_in(&mut tx, t, &ty, &json!({"n": 1}), now)
            .await
            .unwrap();
        let second = publish_in(&mut tx, t, &ty, &json!({"n": 2}), now)
            .await
            .unwrap();
        tx.commit().await.unwrap();

        let events = readable(&backend, 2).await;
        let ids: Vec<EventId> = events.iter().map(|e| e.id).collect();
        assert_eq!(ids, [first, second], "the rolled-back event is not there");
        assert_eq!(events[0].position.xact, events[1].position.xact);
        assert!(events[0].position.seq < events[1].position.seq);
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM insightpulse.outbox_events")
            .fetch_one(&backend.pool)
            .await
            .unwrap();
        assert_eq!(total, 2);

        // A principal that does not act in the tenant cannot commit an
        // event there (the policy refuses the queued insert).
        let stranger = Context::user(insightpulse_core::UserId::new()).in_tenant(t);
        let mut tx = backend.begin(&stranger).await.unwrap();
        publish_in(&mut tx, t, &ty, &json!({}), now).await.unwrap();
        assert!(matches!(
            tx.commit().await.map_err(db),
            Err(Error::PermissionDenied { .. })
        ));
        // Payloads that carry quotes and backslashes arrive intact.
        let tricky = json!({"s": "it's a \\ path'); DROP TABLE x; --", "n": [1.5, null]});
        let mut tx = backend.begin(&ctx).await.unwrap();
        let id = publish_in(&mut tx, t, &ty, &tricky, now).await.unwrap();
        tx.commit().await.unwrap();
        let events = readable(&backend, 3).await;
        assert_eq!(events[2].id, id);
        assert_eq!(events[2].payload, tricky);
        assert_eq!(
            events[2].published_at.timestamp_micros(),
            now.timestamp_micros()
        );
    }
}
