//! Database-only checks of the outbox: commit order (no event skipped when
//! transactions commit out of order), the NOTIFY wake-up, and raw-SQL
//! attacks as `authenticated` on events and cursors.

use crate::{acting_as, harness, tenant, user};
use futures_util::StreamExt as _;
use insightpulse_core::outbox::{Event, EventCursor, POLL_FALLBACK};
use insightpulse_core::{ConsumerName, Context, EventId, EventType, Repos, TenantId};
use serde_json::json;
use sqlx::{PgPool, Postgres, Transaction};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Inserts an event as the SDK's `publish_in` does, inside `tx` (acting as
/// a principal of `tenant`), and returns its id.
async fn insert_event(tx: &mut Transaction<'static, Postgres>, tenant: TenantId, n: i64) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO outbox_events (tenant_id, id, event_type, payload, published_at)
         VALUES ($1, $2, 'test.event', $3, now())",
    )
    .bind(tenant.0)
    .bind(id)
    .bind(json!({ "n": n }))
    .execute(&mut **tx)
    .await
    .unwrap();
    id
}

fn consumer(s: &str) -> ConsumerName {
    ConsumerName::parse(s).unwrap()
}

fn ids(events: &[Event]) -> Vec<Uuid> {
    events.iter().map(|e| e.id.0).collect()
}

/// Reads `consumer`'s next batch as `ctx` and commits its last position.
async fn consume(repos: &Repos, ctx: &Context, name: &str) -> Vec<Event> {
    let name = consumer(name);
    let batch = repos
        .outbox
        .read_events(ctx, &name, None, 1000)
        .await
        .unwrap();
    if let Some(last) = batch.last() {
        repos
            .outbox
            .commit_cursor(ctx, &name, last.position)
            .await
            .unwrap();
    }
    batch
}

/// Consumes (as [`consume`]) until `n` events came, for up to 10 s: an
/// event is held back while any older transaction of the database runs,
/// and other tests run at the same time.
async fn consume_until(repos: &Repos, ctx: &Context, name: &str, n: usize) -> Vec<Event> {
    let mut got = Vec::new();
    for _ in 0..1000 {
        got.extend(consume(repos, ctx, name).await);
        if got.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    got
}

/// The interleaving a `seq > cursor` reader loses: A inserts first (lower
/// seq), B inserts and commits, the consumer reads and commits its cursor,
/// then A commits. The outbox holds B back until A has ended, then
/// delivers A before B.
#[sqlx::test(migrations = false)]
async fn an_event_committed_late_is_never_skipped(pool: PgPool) {
    let repos = harness(pool.clone()).await.repos;
    let owner = user(&repos, "owner@acme.io").await;
    let (t, ctx) = tenant(&repos, owner.id, "acme").await;
    let mut a = acting_as(&pool, &ctx).await;
    let event_a = insert_event(&mut a, t.id, 1).await;
    let mut b = acting_as(&pool, &ctx).await;
    let event_b = insert_event(&mut b, t.id, 2).await;
    b.commit().await.unwrap();

    // What a naive reader sees now: B's higher seq, committed, and A's not.
    let naive: Vec<(Uuid, i64)> =
        sqlx::query_as("SELECT id, seq FROM insightpulse.outbox_events ORDER BY seq")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(naive.len(), 1);
    assert_eq!(naive[0].0, event_b);
    let seq_b = naive[0].1;

    // The outbox delivers nothing while A, older, is still open.
    assert!(consume(&repos, &ctx, "webhooks").await.is_empty());
    assert!(consume(&repos, &Context::system("test"), "all")
        .await
        .is_empty());

    a.commit().await.unwrap();
    let seq_a: i64 = sqlx::query_scalar("SELECT seq FROM insightpulse.outbox_events WHERE id = $1")
        .bind(event_a)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(seq_a < seq_b, "A took the lower seq: the hard interleaving");
    let system = Context::system("test");
    let delivered = consume_until(&repos, &ctx, "webhooks", 2).await;
    assert_eq!(ids(&delivered), [event_a, event_b]);
    assert_eq!(
        ids(&consume_until(&repos, &system, "all", 2).await),
        [event_a, event_b]
    );
    assert!(consume(&repos, &ctx, "webhooks").await.is_empty());
}

/// Publishers commit and roll back at random while a consumer polls and
/// commits its cursor: it receives every committed event exactly once, in
/// position order, and nothing rolled back.
#[sqlx::test(migrations = false)]
async fn concurrent_publishers_and_a_polling_consumer_lose_nothing(pool: PgPool) {
    let repos = harness(pool.clone()).await.repos;
    let owner = user(&repos, "owner@acme.io").await;
    let (t, ctx) = tenant(&repos, owner.id, "acme").await;
    let mut publishers = Vec::new();
    for p in 0..3i64 {
        let (pool, ctx, tenant) = (pool.clone(), ctx.clone(), t.id);
        publishers.push(tokio::spawn(async move {
            let mut committed = Vec::new();
            for i in 0..25 {
                let mut tx = acting_as(&pool, &ctx).await;
                let id = insert_event(&mut tx, tenant, p * 1000 + i).await;
                // Varied pauses and a rollback in five, deterministically.
                let (pause, keep) = (((p * 31 + i * 17) % 15) as u64, (p * 7 + i) % 5 != 0);
                tokio::time::sleep(Duration::from_millis(pause)).await;
                if keep {
                    tx.commit().await.unwrap();
                    committed.push(id);
                } else {
                    tx.rollback().await.unwrap();
                }
            }
            committed
        }));
    }
    let mut received: Vec<Event> = Vec::new();
    while publishers.iter().any(|p| !p.is_finished()) {
        received.extend(consume(&repos, &ctx, "poller").await);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let mut committed = BTreeSet::new();
    for p in publishers {
        committed.extend(p.await.unwrap());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.len() < committed.len() && Instant::now() < deadline {
        received.extend(consume(&repos, &ctx, "poller").await);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got: Vec<Uuid> = ids(&received);
    let unique: BTreeSet<Uuid> = got.iter().copied().collect();
    assert_eq!(unique.len(), got.len(), "an event was delivered twice");
    assert_eq!(
        unique, committed,
        "delivered events differ from committed ones"
    );
    assert!(
        received.windows(2).all(|w| w[0].position < w[1].position),
        "not in position order"
    );
}

/// Every insert notifies `insightpulse_outbox` at commit; a rolled-back
/// one does not.
#[sqlx::test(migrations = false)]
async fn publishing_notifies_listeners_at_commit(pool: PgPool) {
    let repos = harness(pool.clone()).await.repos;
    let owner = user(&repos, "owner@acme.io").await;
    let (t, ctx) = tenant(&repos, owner.id, "acme").await;
    let mut listener = sqlx::postgres::PgListener::connect_with(&pool)
        .await
        .unwrap();
    listener.listen("insightpulse_outbox").await.unwrap();

    let mut rolled_back = acting_as(&pool, &ctx).await;
    insert_event(&mut rolled_back, t.id, 0).await;
    rolled_back.rollback().await.unwrap();
    let quiet = tokio::time::timeout(Duration::from_millis(300), listener.recv()).await;
    assert!(quiet.is_err(), "a rolled-back publish notified: {quiet:?}");

    repos
        .outbox
        .publish_event(&ctx, &EventType::parse("a.b").unwrap(), &json!({}))
        .await
        .unwrap();
    let note = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .expect("notified")
        .unwrap();
    assert_eq!(note.channel(), "insightpulse_outbox");
    assert_eq!(note.payload(), "");
}

/// A subscription waiting for events is woken by the NOTIFY, well before
/// its polling fallback would read again.
#[sqlx::test(migrations = false)]
async fn a_waiting_subscription_is_woken_by_notify(pool: PgPool) {
    let repos = harness(pool.clone()).await.repos;
    let owner = user(&repos, "owner@acme.io").await;
    let (_, ctx) = tenant(&repos, owner.id, "acme").await;
    let mut stream = repos
        .outbox
        .subscribe_events(&ctx, EventCursor::START)
        .await
        .unwrap();
    let ty = EventType::parse("a.b").unwrap();
    for round in 0..3 {
        // Let the subscription find nothing and start waiting.
        let idle = tokio::time::timeout(Duration::from_millis(200), stream.next()).await;
        assert!(idle.is_err(), "round {round}: nothing was published yet");
        let started = Instant::now();
        let id: EventId = repos
            .outbox
            .publish_event(&ctx, &ty, &json!({ "round": round }))
            .await
            .unwrap();
        let event = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("the event arrives")
            .unwrap()
            .unwrap();
        assert_eq!(event.id, id);
        // The wait began ~200 ms ago: polling alone would take the rest of
        // POLL_FALLBACK.
        let took = started.elapsed();
        assert!(
            took < POLL_FALLBACK - Duration::from_millis(400),
            "round {round}: woken after {took:?}, as by polling"
        );
    }
}

/// Raw SQL as `authenticated`: A's owner reads, forges, moves and deletes
/// nothing of B's; nobody sets an event's position or rewrites an event;
/// a member without `event.read` reads no event even of their own tenant.
#[sqlx::test(migrations = false)]
async fn raw_sql_cannot_cross_tenants_or_forge_positions(pool: PgPool) {
    let repos = harness(pool.clone()).await.repos;
    let a_owner = user(&repos, "owner@a.io").await;
    let b_owner = user(&repos, "owner@b.io").await;
    let (a, actx) = tenant(&repos, a_owner.id, "alpha").await;
    let (b, bctx) = tenant(&repos, b_owner.id, "bravo").await;
    let ty = EventType::parse("x.y").unwrap();
    for ctx in [&actx, &bctx] {
        repos
            .outbox
            .publish_event(ctx, &ty, &json!({}))
            .await
            .unwrap();
        repos
            .outbox
            .commit_cursor(ctx, &consumer("sync"), EventCursor::new(1, 1))
            .await
            .unwrap();
    }
    let run = |ctx: Context, sql: String| {
        let pool = pool.clone();
        async move {
            let mut tx = acting_as(&pool, &ctx).await;
            let out = sqlx::query(&sql)
                .execute(&mut *tx)
                .await
                .map(|d| d.rows_affected())
                .map_err(|e| match e {
                    sqlx::Error::Database(d) => d.code().unwrap_or_default().into_owned(),
                    other => panic!("{sql}: {other}"),
                });
            tx.rollback().await.unwrap();
            out
        }
    };
    let (a_lit, b_lit) = (format!("'{}'::uuid", a.id), format!("'{}'::uuid", b.id));
    for table in ["outbox_events", "outbox_cursors"] {
        assert_eq!(
            run(
                actx.clone(),
                format!("SELECT 1 FROM {table} WHERE tenant_id = {a_lit}")
            )
            .await,
            Ok(1),
            "{table}: A's owner sees A's row"
        );
        assert_eq!(
            run(
                actx.clone(),
                format!("SELECT 1 FROM {table} WHERE tenant_id = {b_lit}")
            )
            .await,
            Ok(0),
            "{table}: B's rows are invisible"
        );
    }
    let refused = |r: Result<u64, String>| matches!(r, Err(c) if c == "42501");
    for sql in [
        format!(
            "INSERT INTO outbox_events (tenant_id, id, event_type, payload, published_at)
             VALUES ({b_lit}, gen_random_uuid(), 'forged.event', '{{}}', now())"
        ),
        // A position in the past, where cursors have already passed.
        format!(
            "INSERT INTO outbox_events (tenant_id, id, event_type, payload, published_at, xact, seq)
             VALUES ({a_lit}, gen_random_uuid(), 'forged.event', '{{}}', now(), 1, 1)"
        ),
        format!("UPDATE outbox_events SET payload = '{{}}' WHERE tenant_id = {a_lit}"),
        format!("DELETE FROM outbox_events WHERE tenant_id = {a_lit}"),
        format!("INSERT INTO outbox_cursors VALUES ({b_lit}, 'forged', 0, 0, now())"),
        format!("DELETE FROM outbox_cursors WHERE tenant_id = {a_lit}"),
    ] {
        let out = run(actx.clone(), sql.clone()).await;
        assert!(refused(out.clone()), "{sql}: {out:?}");
    }
    assert_eq!(
        run(
            actx.clone(),
            format!("UPDATE outbox_cursors SET xact = 0 WHERE tenant_id = {b_lit}")
        )
        .await,
        Ok(0)
    );

    // A plain member publishes but reads nothing, even of their own tenant.
    let member = user(&repos, "member@a.io").await;
    let mctx = insightpulse_testing::fixtures::join(&repos, &actx, &member, None).await;
    assert_eq!(
        run(
            mctx.clone(),
            format!("SELECT 1 FROM outbox_events WHERE tenant_id = {a_lit}")
        )
        .await,
        Ok(0)
    );
    assert_eq!(
        run(
            mctx,
            format!(
                "INSERT INTO outbox_events (tenant_id, id, event_type, payload, published_at)
                 VALUES ({a_lit}, gen_random_uuid(), 'member.did', '{{}}', now())"
            )
        )
        .await,
        Ok(1)
    );

    // The read policy's helper runs once per statement (an InitPlan).
    let mut tx = acting_as(&pool, &actx).await;
    let plan: Vec<String> = sqlx::query_scalar(&format!(
        "EXPLAIN SELECT * FROM outbox_events WHERE tenant_id = {a_lit}"
    ))
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    let plan = plan.join("\n");
    assert!(plan.contains("InitPlan"), "no InitPlan in:\n{plan}");
}
