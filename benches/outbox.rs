//! What the outbox costs a writer, and how fast a consumer drains it.
//!
//! ```text
//! cargo bench --bench outbox        # DATABASE_URL defaults to the local cluster
//! ```
//!
//! 1. **Publish overhead**: one unit of work as a project's owner (RLS on)
//!    that touches the project (`UPDATE projects SET updated_at`), with
//!    an event published inside it by `publish_in` against the very same
//!    unit of work without it (hidden hook `bench_unit_of_work`, feature
//!    `bench-outbox`), alternated in rounds on one single-connection pool.
//!    Then `publish_event` alone (a unit of work of its own). Both again
//!    with `synchronous_commit = off`: on this machine the WAL flush at
//!    commit dominates a unit of work and hides what the publish costs.
//! 2. **Consumer throughput**: 20,000 events of one tenant, inserted in
//!    bulk as the superuser (100 per transaction), drained by a consumer
//!    as the tenant's owner (RLS on): `read_events` from its committed
//!    cursor, then `commit_cursor` at the batch's last position, until
//!    empty — for batches of 100, 500 and 1,000; then the same by a system
//!    consumer across tenants.
//!
//! Uses the database `insightpulse_bench_outbox` (created when missing,
//! reused otherwise; each run makes its own tenant and consumers; drop it
//! after changing migration 0010).
//!
//! Measured on this project's 2-core machine (shared with other builds),
//! 2026-11-30: with `synchronous_commit` on, a unit of work costs ~4–6 ms
//! (the WAL flush) with or without the publish (ratio 1.01× mean, 0.94×
//! p50: noise); with it off, 211 µs → 376 µs p50 (1.79×; ~165 µs per
//! event: the insert's planning, policy check, three index entries and the
//! notify trigger — the queued insert adds no round trip), ~2,280 units of
//! work/s with a publish; `publish_event` alone 426 µs p50. A consumer
//! draining one tenant as its owner: ~22,000 events/s in batches of 100,
//! ~70,000 in 500s, ~119,000 in 1,000s; the system across tenants ~118,000
//! in 1,000s.

use insightpulse::outbox::EventCursor;
use insightpulse::postgres::PgBackend;
use insightpulse::projects::NewProject;
use insightpulse::tenancy::tokens::TokenHasher;
use insightpulse::tenancy::{NewTenant, NewUser};
use insightpulse::{
    ConsumerName, Context, Email, EventType, Name, ProjectId, Slug, TenantId, TimeZone,
};
use std::time::Instant;
use uuid::Uuid;

mod common;
use common::{bench_database, compare, report, us, Stats};

const DB: &str = "insightpulse_bench_outbox";
const EVENTS: i64 = 20_000;

/// A fresh owner, tenant and project, through the API.
async fn owner_tenant_project(backend: &PgBackend, tag: &str) -> (Context, TenantId, ProjectId) {
    let repos = backend.repos();
    let owner = repos
        .users
        .create_user(
            &Context::system("bench"),
            NewUser {
                email: Email::parse(&format!("{tag}@bench.io")).unwrap(),
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
                slug: Slug::parse(tag).unwrap(),
                name: Name::parse("Bench").unwrap(),
                timezone: TimeZone::utc(),
            },
        )
        .await
        .unwrap();
    let ctx = Context::user(owner.id).in_tenant(tenant.id);
    let project = repos
        .projects
        .create_project(
            &ctx,
            NewProject {
                slug: Slug::parse("web").unwrap(),
                name: Name::parse("Web").unwrap(),
                description: None,
            },
        )
        .await
        .unwrap();
    (ctx, tenant.id, project.id)
}

async fn publish_overhead(backend: &PgBackend, run: &str, label: &str) {
    let (ctx, _, project) = owner_tenant_project(backend, &format!("{run}-{label}")).await;
    let (with, without) = compare(
        || async {
            backend
                .bench_unit_of_work(&ctx, project, true)
                .await
                .unwrap()
        },
        || async {
            backend
                .bench_unit_of_work(&ctx, project, false)
                .await
                .unwrap()
        },
    )
    .await;
    let mode = if label == "w" {
        "synchronous_commit on"
    } else {
        "synchronous_commit off"
    };
    println!("1. publish inside a unit of work (update + publish_in vs update alone, 1 connection, {mode})");
    report("unit of work + publish_in", &with, &without, None);
    let repos = backend.repos();
    let ty = EventType::parse("bench.alone").unwrap();
    let payload = serde_json::json!({ "project_id": project });
    let mut alone = Stats::new();
    for _ in 0..1000 {
        let t = Instant::now();
        repos
            .outbox
            .publish_event(&ctx, &ty, &payload)
            .await
            .unwrap();
        alone.samples.push(t.elapsed());
    }
    println!(
        "{:<34} p50 {:>10} p99 {:>10} ({:>7.0} ops/s)",
        "publish_event (own unit of work)",
        us(alone.p(0.5)),
        us(alone.p(0.99)),
        alone.ops()
    );
}

async fn drain(backend: &PgBackend, ctx: &Context, name: &str, batch: u32) -> (u64, f64) {
    let repos = backend.repos();
    let name = ConsumerName::parse(name).unwrap();
    let (mut n, started) = (0u64, Instant::now());
    loop {
        let events = repos
            .outbox
            .read_events(ctx, &name, None, batch)
            .await
            .unwrap();
        let Some(last) = events.last() else { break };
        repos
            .outbox
            .commit_cursor(ctx, &name, last.position)
            .await
            .unwrap();
        n += events.len() as u64;
    }
    (n, n as f64 / started.elapsed().as_secs_f64())
}

async fn consumer_throughput(backend: &PgBackend, run: &str) {
    let (ctx, tenant, _) = owner_tenant_project(backend, &format!("{run}-r")).await;
    let pool = backend.pool();
    for _ in 0..EVENTS / 100 {
        sqlx::query(
            "INSERT INTO insightpulse.outbox_events (tenant_id, id, event_type, payload, published_at)
             SELECT $1, gen_random_uuid(), 'bench.event',
                    jsonb_build_object('n', g, 'project_id', gen_random_uuid()), now()
               FROM generate_series(1, 100) g",
        )
        .bind(tenant.0)
        .execute(pool)
        .await
        .unwrap();
    }
    println!("2. consumer throughput: read_events + commit_cursor over {EVENTS} events");
    for batch in [100u32, 500, 1000] {
        let (n, rate) = drain(backend, &ctx, &format!("c{batch}"), batch).await;
        assert_eq!(n, EVENTS as u64, "the tenant's consumer drains every event");
        println!("  tenant owner (RLS), batch {batch:>4}: {rate:>9.0} events/s");
    }
    // A system consumer starts at this run's tenant's first event (the
    // database is shared with earlier runs).
    let system = Context::system("bench consumer");
    let first: (i64, i64) = sqlx::query_as(
        "SELECT xact, seq FROM insightpulse.outbox_events WHERE tenant_id = $1
          ORDER BY xact, seq LIMIT 1",
    )
    .bind(tenant.0)
    .fetch_one(pool)
    .await
    .unwrap();
    let name = ConsumerName::parse(&format!("sys-{run}")).unwrap();
    let start = EventCursor::new(first.0, first.1 - 1);
    backend
        .repos()
        .outbox
        .commit_cursor(&system, &name, start)
        .await
        .unwrap();
    let (n, rate) = drain(backend, &system, name.as_str(), 1000).await;
    println!("  system, all tenants, batch 1000: {rate:>9.0} events/s ({n} events)");
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` probes; nothing to list
    }
    let url = bench_database(&common::admin_url(), DB, "SELECT true").await;
    let pool = common::pool(&url, 1).await;
    let backend = PgBackend::from_pool(pool, TokenHasher::insecure_development());
    backend.migrate().await.unwrap();
    let run = format!("r{}", &Uuid::new_v4().simple().to_string()[..8]);
    publish_overhead(&backend, &run, "w").await;
    // Without waiting for the WAL flush at commit, which dominates above
    // on this machine's disk: what the publish itself costs.
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let unsynced = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.options([("synchronous_commit", "off")]))
        .await
        .unwrap();
    let fast = PgBackend::from_pool(unsynced, TokenHasher::insecure_development());
    println!();
    publish_overhead(&fast, &run, "a").await;
    println!();
    consumer_throughput(&backend, &run).await;
}
