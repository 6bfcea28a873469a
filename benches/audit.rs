//! What the audit trail costs, measured against a baseline in the same run.
//!
//! ```text
//! cargo bench --bench audit                 # DATABASE_URL defaults to the local cluster
//! AUDIT_BENCH=report cargo bench --bench audit   # only some parts: writes, appends, report
//! ```
//!
//! 1. **Write overhead** (goal ≤ 1.25×): a foundation mutation through the
//!    SDK, which appends its audit entry in the mutation's transaction,
//!    against the very same call on a backend built with
//!    `without_audit_for_benchmarks()` (feature `bench-unaudited`), both on
//!    one shared single-connection pool, alternated in rounds. Mutations:
//!    suspending / reactivating a member, and updating a tenant's settings.
//! 2. **Append throughput** through `AuditRepo::record_event`: 16 concurrent
//!    writers on a 16-connection pool, first all on one tenant (they queue
//!    on its chain head's row lock), then spread over 100 tenants; the two
//!    alternate in rounds. The single tenant's chain must verify `Intact`
//!    afterwards, with exactly the appended entries (no fork, no loss).
//! 3. **The seed's audit report** (goal p50 < 20 ms) over 10,000,000 entries
//!    of 1,000 tenants: one tenant's last 30 days, first page of 50, as the
//!    tenant's owner (RLS on), against the same page query sent by raw sqlx
//!    as the superuser with an explicit `tenant_id` (no RLS, no
//!    transaction; the emails joined from `users` directly instead of the
//!    SDK's `audit_actor_emails`, which only RLS makes necessary); then
//!    walks of 6 pages following `next`, and page 6 alone; then the SDK
//!    query's plans, run as the `authenticated` role.
//!
//! Parts 1 and 2 use the database `insightpulse_bench_audit` (created when
//! missing, reused otherwise; each run makes its own tenants). Part 3 seeds
//! `insightpulse_bench_report` once (reused when it already holds the 10M
//! entries) in bulk SQL as the superuser with triggers off
//! (`session_replication_role = replica`): 10,000 entries per tenant, one
//! every 52.6 minutes (with a per-tenant phase) over the last 365 days, in
//! monthly partitions; `seq` numbers each tenant's entries in time order;
//! the actor is the tenant's owner. The seed batches 50 tenants at a time
//! and inserts each batch in time order, so a tenant's entries are
//! scattered over the heap as they would be on a live system. **The hash
//! chain of the seeded data is not valid**: `prev_hash` and `hash` are
//! arbitrary 32-byte values (hashes of counters), which the report never
//! reads; the chain's integrity under concurrency is part 2's business.
//! Seeding takes a few minutes on 2 cores.

use chrono::{DateTime, Utc};
use insightpulse::audit::{AuditCursor, AuditEvent, AuditQuery, ChainVerdict, Diff};
use insightpulse::postgres::PgBackend;
use insightpulse::tenancy::tokens::TokenHasher;
use insightpulse::tenancy::{NewTenant, NewUser, TenantUpdate};
use insightpulse::{Context, Email, Name, Repos, RequestMeta, Slug, TenantId, TimeZone, UserId};
use sqlx::postgres::PgRow;
use sqlx::types::JsonValue;
use sqlx::{PgPool, Row};
use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

mod common;
use common::{bench_database, compare, compare_n, ms, report, us, Rng, Stats};

const WRITE_DB: &str = "insightpulse_bench_audit";
const REPORT_DB: &str = "insightpulse_bench_report";

/// Part 2: concurrent writers, tenants they spread over, rounds of each
/// scenario and appends per writer and round.
const WRITERS: usize = 16;
const SPREAD_TENANTS: usize = 100;
const APPEND_ROUNDS: usize = 3;
const APPENDS_PER_WRITER: usize = 100;

/// Part 3: the data set.
const REPORT_TENANTS: i64 = 1_000;
const ENTRIES_PER_TENANT: i64 = 10_000;
const SEED_BATCH_TENANTS: i64 = 50;

/// The page of the report's SELECT, as `insightpulse-postgres/src/audit.rs`
/// sends it (kept in sync by hand).
macro_rules! report_page {
    () => {
        "WITH page AS (
            SELECT al.id, al.tenant_id, al.seq, al.created_at,
                   al.actor_kind::text AS actor_kind, al.user_id, al.api_key_id,
                   al.actor_reason, al.action, al.target_type, al.target_id, al.diff,
                   host(al.ip) AS ip, al.user_agent, al.request_id, al.hash
              FROM audit_logs al
             WHERE al.tenant_id = $1
               AND al.created_at >= $2
               AND ($3::text IS NULL OR al.action = $3)
               AND ($4::audit_actor_kind IS NULL OR al.actor_kind = $4::audit_actor_kind)
               AND ($5::uuid IS NULL OR al.user_id = $5)
               AND ($6::uuid IS NULL OR al.api_key_id = $6)
               AND ($7::text IS NULL OR al.target_type = $7)
               AND ($8::text IS NULL OR al.target_id = $8)
               AND ($9::timestamptz IS NULL OR (al.created_at, al.seq) < ($9, $10))
             ORDER BY al.created_at DESC, al.seq DESC
             LIMIT $11)"
    };
}

/// The SDK's report query, verbatim (the EXPLAIN runs it): the emails come
/// from `audit_actor_emails`, a SECURITY DEFINER function, because the
/// users policies hide members who have left.
const SDK_REPORT_SQL: &str = concat!(
    report_page!(),
    "
         SELECT page.*, e.email AS actor_email
           FROM page
           LEFT JOIN audit_actor_emails($1, ARRAY(SELECT DISTINCT user_id FROM page)) e
                  ON e.id = page.user_id
          ORDER BY page.created_at DESC, page.seq DESC"
);

/// The baseline: the same page as the superuser would write it without RLS,
/// the emails joined straight from `users`.
const RAW_REPORT_SQL: &str = concat!(
    report_page!(),
    "
         SELECT page.*, u.email AS actor_email
           FROM page
           LEFT JOIN users u ON u.id = page.user_id
          ORDER BY page.created_at DESC, page.seq DESC"
);

fn request() -> RequestMeta {
    RequestMeta {
        request_id: Some("req-bench".into()),
        ip: Some("203.0.113.7".parse().unwrap()),
        user_agent: Some("Mozilla/5.0 (bench)".into()),
        idempotency_key: None,
    }
}

async fn new_user(repos: &Repos, tag: &str) -> UserId {
    repos
        .users
        .create_user(
            &Context::system("bench"),
            NewUser {
                email: Email::parse(&format!("{tag}@bench.io")).unwrap(),
                full_name: None,
            },
        )
        .await
        .unwrap()
        .id
}

/// A new user and the tenant it creates (and owns), through the API.
async fn owner_and_tenant(repos: &Repos, tag: &str) -> (UserId, TenantId) {
    let owner = new_user(repos, tag).await;
    let tenant = repos
        .tenants
        .create_tenant(
            &Context::user(owner),
            NewTenant {
                slug: Slug::parse(tag).unwrap(),
                name: Name::parse("Bench").unwrap(),
                timezone: TimeZone::utc(),
            },
        )
        .await
        .unwrap()
        .id;
    (owner, tenant)
}

async fn entries_of(pool: &PgPool, tenant: TenantId) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_logs WHERE tenant_id = $1")
        .bind(tenant.0)
        .fetch_one(pool)
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------
// 1. Write overhead.
// ---------------------------------------------------------------------------

async fn toggle_member(repos: &Repos, ctx: &Context, member: UserId, suspended: &Cell<bool>) {
    let m = if suspended.get() {
        repos.members.reactivate_member(ctx, member).await
    } else {
        repos.members.suspend_member(ctx, member).await
    };
    m.unwrap();
    suspended.set(!suspended.get());
}

async fn toggle_settings(
    repos: &Repos,
    ctx: &Context,
    settings: &[JsonValue; 2],
    at: &Cell<usize>,
) {
    let next = 1 - at.get();
    repos
        .tenants
        .update_tenant(
            ctx,
            TenantUpdate {
                settings: Some(settings[next].clone()),
                ..TenantUpdate::default()
            },
        )
        .await
        .unwrap();
    at.set(next);
}

async fn writes(url: &str, run: &str) {
    let pool = common::pool(url, 1).await;
    let backend = PgBackend::from_pool(pool.clone(), TokenHasher::insecure_development());
    backend.migrate().await.unwrap();
    let audited = backend.repos();
    let unaudited = backend.clone().without_audit_for_benchmarks().repos();

    // A small tenant: its owner and one member.
    let (owner, tenant) = owner_and_tenant(&audited, &format!("{run}-small")).await;
    let member = new_user(&audited, &format!("{run}-member")).await;
    sqlx::query("INSERT INTO org_memberships (tenant_id, user_id) VALUES ($1, $2)")
        .bind(tenant.0)
        .bind(member.0)
        .execute(&pool)
        .await
        .unwrap();
    let ctx = Context::user(owner)
        .in_tenant(tenant)
        .with_request(request());
    let calls = common::WARMUP + common::ROUNDS * common::PER_ROUND;

    println!(
        "\n1. audit write overhead (1 connection, {} calls each, audited vs without_audit_for_benchmarks())",
        common::ROUNDS * common::PER_ROUND
    );
    let before = entries_of(&pool, tenant).await;
    let suspended = Cell::new(false);
    let (s, b) = compare(
        || async { toggle_member(&audited, &ctx, member, &suspended).await },
        || async { toggle_member(&unaudited, &ctx, member, &suspended).await },
    )
    .await;
    report("suspend/reactivate a member", &s, &b, Some(1.25));
    let written = entries_of(&pool, tenant).await - before;
    assert_eq!(
        written, calls as i64,
        "one entry per audited call, none else"
    );

    let settings: [JsonValue; 2] = [
        r#"{"theme": "dark", "beta": true, "retention_days": 90}"#
            .parse()
            .unwrap(),
        r#"{"theme": "light", "beta": false, "retention_days": 30}"#
            .parse()
            .unwrap(),
    ];
    let at = Cell::new(0);
    let before = entries_of(&pool, tenant).await;
    let (s, b) = compare(
        || async { toggle_settings(&audited, &ctx, &settings, &at).await },
        || async { toggle_settings(&unaudited, &ctx, &settings, &at).await },
    )
    .await;
    report("update_tenant (settings)", &s, &b, Some(1.25));
    let written = entries_of(&pool, tenant).await - before;
    assert_eq!(
        written, calls as i64,
        "one entry per audited call, none else"
    );
    println!(
        "  (each audited call wrote exactly one entry: {written} for {calls} calls; the baseline wrote none)"
    );
    pool.close().await;
}

// ---------------------------------------------------------------------------
// 2. Append throughput.
// ---------------------------------------------------------------------------

/// `WRITERS` tasks appending `per_writer` events each; writer `w`'s `i`-th
/// append goes to `ctxs[(w + i × WRITERS) % len]`. Returns the per-append
/// latencies and the wall time.
async fn append_round(
    repos: &Repos,
    ctxs: &Arc<Vec<Context>>,
    per_writer: usize,
) -> (Vec<Duration>, Duration) {
    let t = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let (repos, ctxs) = (repos.clone(), ctxs.clone());
        set.spawn(async move {
            let mut lat = Vec::with_capacity(per_writer);
            for i in 0..per_writer {
                let ctx = &ctxs[(w + i * WRITERS) % ctxs.len()];
                let event = AuditEvent::new(
                    "invoice.finalized",
                    "invoice",
                    Some(format!("inv_{w}_{i}")),
                    Diff::new().set("total", 4200 + i).set("currency", "EUR"),
                )
                .unwrap();
                let t = Instant::now();
                repos.audit.record_event(ctx, event).await.unwrap();
                lat.push(t.elapsed());
            }
            lat
        });
    }
    let mut all = Vec::with_capacity(WRITERS * per_writer);
    while let Some(lat) = set.join_next().await {
        all.extend(lat.unwrap());
    }
    (all, t.elapsed())
}

fn report_appends(name: &str, s: &Stats, wall: Duration) -> f64 {
    let rate = s.samples.len() as f64 / wall.as_secs_f64();
    println!(
        "{name:<34} {:>7.0} appends/s | per append p50 {:>10} p99 {:>10} ({} appends in {:.2}s)",
        rate,
        us(s.p(0.5)),
        us(s.p(0.99)),
        s.samples.len(),
        wall.as_secs_f64(),
    );
    rate
}

async fn appends(url: &str, run: &str) {
    let pool = common::pool(url, WRITERS as u32).await;
    let backend = PgBackend::from_pool(pool.clone(), TokenHasher::insecure_development());
    backend.migrate().await.unwrap();
    let repos = backend.repos();

    let (owner, tenant) = owner_and_tenant(&repos, &format!("{run}-one")).await;
    let one = Arc::new(vec![Context::user(owner)
        .in_tenant(tenant)
        .with_request(request())]);
    let mut spread = Vec::with_capacity(SPREAD_TENANTS);
    for i in 0..SPREAD_TENANTS {
        let (owner, tenant) = owner_and_tenant(&repos, &format!("{run}-t{i}")).await;
        spread.push(
            Context::user(owner)
                .in_tenant(tenant)
                .with_request(request()),
        );
    }
    let spread = Arc::new(spread);

    // Warm every connection up, then alternate the two scenarios.
    append_round(&repos, &one, 5).await;
    append_round(&repos, &spread, 5).await;
    let head_before: i64 =
        sqlx::query_scalar("SELECT seq FROM audit_chain_heads WHERE tenant_id = $1")
            .bind(tenant.0)
            .fetch_one(&pool)
            .await
            .unwrap();
    let (mut s1, mut s100) = (Stats::new(), Stats::new());
    let (mut w1, mut w100) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..APPEND_ROUNDS {
        let (lat, wall) = append_round(&repos, &one, APPENDS_PER_WRITER).await;
        s1.samples.extend(lat);
        w1 += wall;
        let (lat, wall) = append_round(&repos, &spread, APPENDS_PER_WRITER).await;
        s100.samples.extend(lat);
        w100 += wall;
    }
    println!(
        "\n2. audit appends through AuditRepo::record ({WRITERS} writers, {WRITERS}-connection pool, {APPEND_ROUNDS} alternating rounds)"
    );
    let r1 = report_appends("1 tenant (one chain head)", &s1, w1);
    let r100 = report_appends(&format!("{SPREAD_TENANTS} tenants"), &s100, w100);
    println!(
        "  throughput {SPREAD_TENANTS} tenants / 1 tenant: {:.2}×",
        r100 / r1
    );

    // Concurrency must neither fork nor lose the single tenant's chain.
    let verdict = repos.audit.verify_chain(&one[0]).await.unwrap();
    let appended = s1.samples.len() as i64;
    match verdict {
        ChainVerdict::Intact { entries, head_seq } => {
            assert_eq!(
                head_seq,
                head_before + appended,
                "every append took one position"
            );
            assert_eq!(entries as i64, head_seq, "one entry per position");
            println!("  verify_chain(1 tenant): Intact, {entries} entries, head seq {head_seq}");
        }
        broken => panic!("the single tenant's chain is not intact: {broken:?}"),
    }
    let t = Instant::now();
    for ctx in spread.iter() {
        let v = repos.audit.verify_chain(ctx).await.unwrap();
        assert!(matches!(v, ChainVerdict::Intact { .. }), "{v:?}");
    }
    println!(
        "  verify_chain({SPREAD_TENANTS} tenants): all Intact ({} for all)",
        ms(t.elapsed())
    );
    pool.close().await;
}

// ---------------------------------------------------------------------------
// 3. The audit report over 10M entries.
// ---------------------------------------------------------------------------

/// Seeds the report's data set (see the module doc), as the superuser.
async fn seed_report(url: &str) {
    let total = REPORT_TENANTS * ENTRIES_PER_TENANT;
    let seeder = common::pool(url, 1).await;
    let have: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_logs")
        .fetch_one(&seeder)
        .await
        .unwrap();
    if have == total {
        seeder.close().await;
        return;
    }
    println!(
        "\nseeding {total} audit entries over {REPORT_TENANTS} tenants into {REPORT_DB} (once)…"
    );
    let t = Instant::now();
    let mut conn = seeder.acquire().await.unwrap();
    // Triggers off (no chain linking, no checks of the writer) on this
    // connection only; it is closed at the end.
    sqlx::raw_sql(
        "SET session_replication_role = replica; SET work_mem = '256MB';
         SET maintenance_work_mem = '512MB'; SET synchronous_commit = off",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    for sql in [
        "INSERT INTO users (id, email) SELECT md5('ru' || i)::uuid, 'owner' || i || '@report.bench' FROM generate_series(1, $1) i",
        "INSERT INTO tenants (id, slug, name) SELECT md5('rt' || i)::uuid, 'tenant-' || i, 'Tenant ' || i FROM generate_series(1, $1) i",
        "INSERT INTO org_memberships (tenant_id, user_id, is_owner) SELECT md5('rt' || i)::uuid, md5('ru' || i)::uuid, true FROM generate_series(1, $1) i",
    ] {
        sqlx::query(sql).bind(REPORT_TENANTS as i32).execute(&mut *conn).await.unwrap();
    }
    sqlx::query("SELECT audit_ensure_partitions(now() - interval '13 months', 14)")
        .execute(&mut *conn)
        .await
        .unwrap();
    let start: DateTime<Utc> = sqlx::query_scalar("SELECT now() - interval '365 days'")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let step_secs = 365.0 * 86_400.0 / ENTRIES_PER_TENANT as f64;
    // Entry s of tenant i: at start + (s - 1 + phase_i) × step; a handful
    // of actions with their target types and small diffs; hash = sha256 of
    // a counter, prev_hash = the previous entry's.
    let insert = "
        INSERT INTO audit_logs (tenant_id, created_at, seq, id, actor_kind, user_id, action,
                                target_type, target_id, diff, ip, user_agent, request_id,
                                pii_salt, pii_digest, prev_hash, hash)
        SELECT t.id,
               $3::timestamptz + make_interval(secs => (s - 1 + t.phase) * $4::float8),
               s, gen_random_uuid(), 'user', t.owner,
               (ARRAY['member.invited', 'member.suspended', 'member.reactivated', 'tenant.updated',
                      'project.created', 'api_key.created', 'role.granted', 'invoice.finalized'])[x.k],
               (ARRAY['user', 'user', 'user', 'tenant', 'project', 'api_key', 'user', 'invoice'])[x.k],
               'obj_' || (s % 97),
               (ARRAY['{\"role\": \"viewer\"}', '{}', '{}',
                      '{\"settings\": {\"from\": {\"theme\": \"dark\"}, \"to\": {\"theme\": \"light\"}}}',
                      '{\"slug\": \"web\", \"name\": \"Web\"}', '{\"scope\": \"project\", \"prefix\": \"ip_4f2a\"}',
                      '{\"role\": {\"from\": \"viewer\", \"to\": \"admin\"}}', '{\"total\": 4200}']::jsonb[])[x.k],
               '10.0.0.0'::inet + (t.i * 256 + s % 256),
               'Mozilla/5.0 (X11; Linux x86_64) InsightPulse-bench',
               'req-' || s,
               substr(x.h, 1, 16), x.h,
               CASE WHEN s = 1 THEN decode(repeat('00', 32), 'hex')
                    ELSE sha256(int8send(t.i::bigint * 100000 + s - 1)) END,
               x.h
          FROM (SELECT i, md5('rt' || i)::uuid AS id, md5('ru' || i)::uuid AS owner,
                       (hashtext('rt' || i)::bigint & 1048575) / 1048576.0::float8 AS phase
                  FROM generate_series($1::int, $2::int) i) t
         CROSS JOIN generate_series(1, $5::int) s
         CROSS JOIN LATERAL (SELECT 1 + (s * 7 + t.i) % 8 AS k,
                                    sha256(int8send(t.i::bigint * 100000 + s)) AS h) x
         ORDER BY 2";
    let mut lo = 1;
    while lo <= REPORT_TENANTS {
        let hi = (lo + SEED_BATCH_TENANTS - 1).min(REPORT_TENANTS);
        sqlx::query(insert)
            .bind(lo as i32)
            .bind(hi as i32)
            .bind(start)
            .bind(step_secs)
            .bind(ENTRIES_PER_TENANT as i32)
            .execute(&mut *conn)
            .await
            .unwrap();
        let done = hi * ENTRIES_PER_TENANT;
        println!(
            "  {done:>10} / {total} entries ({:.0}s, {:.0} rows/s)",
            t.elapsed().as_secs_f64(),
            done as f64 / t.elapsed().as_secs_f64()
        );
        lo = hi + 1;
    }
    sqlx::query(
        "INSERT INTO audit_chain_heads (tenant_id, seq, hash)
         SELECT md5('rt' || i)::uuid, $2, sha256(int8send(i::bigint * 100000 + $2))
           FROM generate_series(1, $1) i",
    )
    .bind(REPORT_TENANTS as i32)
    .bind(ENTRIES_PER_TENANT)
    .execute(&mut *conn)
    .await
    .unwrap();
    let rows_done = t.elapsed();
    // Vacuumed (hint bits, visibility map) and analysed now, so autovacuum
    // does not run into the measurements.
    // (One statement per message: VACUUM refuses an implicit transaction.)
    for sql in ["VACUUM (ANALYZE) audit_logs", "ANALYZE"] {
        sqlx::raw_sql(sql).execute(&mut *conn).await.unwrap();
    }
    conn.close().await.unwrap();
    seeder.close().await;
    println!(
        "seeded in {:.1}s ({:.1}s inserting, {:.1}s VACUUM ANALYZE)",
        t.elapsed().as_secs_f64(),
        rows_done.as_secs_f64(),
        (t.elapsed() - rows_done).as_secs_f64()
    );
}

/// The baseline: the report's SELECT for `tenant` as the superuser (no
/// RLS, no transaction), after `after` when given.
async fn raw_page(
    pool: &PgPool,
    tenant: TenantId,
    since: DateTime<Utc>,
    after: Option<(DateTime<Utc>, i64)>,
) -> Vec<PgRow> {
    sqlx::query(RAW_REPORT_SQL)
        .bind(tenant.0)
        .bind(since)
        .bind(None::<&str>)
        .bind(None::<&str>)
        .bind(None::<Uuid>)
        .bind(None::<Uuid>)
        .bind(None::<&str>)
        .bind(None::<&str>)
        .bind(after.map(|a| a.0))
        .bind(after.map_or(0, |a| a.1))
        .bind(51_i64)
        .fetch_all(pool)
        .await
        .unwrap()
}

fn since_30_days() -> DateTime<Utc> {
    Utc::now() - chrono::Duration::days(30)
}

async fn report_query(url: &str) {
    let pool = common::pool(url, 1).await;
    let backend = PgBackend::from_pool(pool.clone(), TokenHasher::insecure_development());
    backend.migrate().await.unwrap();
    seed_report(url).await;
    let repos = backend.repos();
    let tenants: Vec<(TenantId, Context)> = sqlx::query(
        "SELECT md5('rt' || i)::uuid AS t, md5('ru' || i)::uuid AS u FROM generate_series(1, $1) i ORDER BY i",
    )
    .bind(REPORT_TENANTS as i32)
    .fetch_all(&pool)
    .await
    .unwrap()
    .iter()
    .map(|r| {
        let t = TenantId(r.get("t"));
        (t, Context::user(UserId(r.get("u"))).in_tenant(t))
    })
    .collect();
    let (tenant, ctx) = &tenants[421];
    let in_window: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_logs WHERE tenant_id = $1 AND created_at >= now() - interval '30 days'",
    )
    .bind(tenant.0)
    .fetch_one(&pool)
    .await
    .unwrap();
    let partitions: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_inherits WHERE inhparent = 'audit_logs'::regclass",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    println!(
        "\n3. the audit report ({} entries, {REPORT_TENANTS} tenants, {partitions} partitions; ~{in_window} entries per tenant in the last 30 days; 1 connection)",
        REPORT_TENANTS * ENTRIES_PER_TENANT
    );

    let rng = RefCell::new(Rng::new(0x5eed));
    let pick = || tenants[rng.borrow_mut().below(tenants.len())].clone();
    let (s, b) = compare_n(
        20,
        10,
        50,
        || async {
            let (_, ctx) = pick();
            let page = repos
                .audit
                .query_entries(&ctx, AuditQuery::last_days(30))
                .await
                .unwrap();
            assert_eq!(page.entries.len(), 50);
            assert!(page.next.is_some());
            assert!(page.entries[0].actor_email.is_some());
        },
        || async {
            let (tenant, _) = pick();
            assert_eq!(
                raw_page(&pool, tenant, since_30_days(), None).await.len(),
                51
            );
        },
    )
    .await;
    report("last 30 days, first page of 50", &s, &b, None);
    println!(
        "  goal p50 < 20 ms: SDK p50 {} → {}",
        ms(s.p(0.5)),
        if s.p(0.5) < Duration::from_millis(20) {
            "met"
        } else {
            "MISSED"
        }
    );

    let (s, b) = compare_n(
        5,
        10,
        10,
        || async {
            let (_, ctx) = pick();
            let mut q = AuditQuery::last_days(30);
            for _ in 0..6 {
                let page = repos.audit.query_entries(&ctx, q.clone()).await.unwrap();
                assert_eq!(page.entries.len(), 50);
                q = q.after(page.next.unwrap());
            }
        },
        || async {
            let (tenant, _) = pick();
            let since = since_30_days();
            let mut after = None;
            for _ in 0..6 {
                let rows = raw_page(&pool, tenant, since, after).await;
                assert_eq!(rows.len(), 51);
                let last = &rows[49];
                after = Some((last.get("created_at"), last.get("seq")));
            }
        },
    )
    .await;
    report("walk of 6 pages via next (300)", &s, &b, None);

    // A deep page on its own: page 6 (entries 251–300), SDK vs raw.
    let cursors: Vec<(TenantId, Context, AuditCursor)> = {
        let mut v = Vec::new();
        for (tenant, ctx) in tenants.iter().take(100) {
            let mut q = AuditQuery::last_days(30);
            for _ in 0..5 {
                let next = repos
                    .audit
                    .query_entries(ctx, q.clone())
                    .await
                    .unwrap()
                    .next;
                q = q.after(next.unwrap());
            }
            v.push((*tenant, ctx.clone(), q.after.unwrap()));
        }
        v
    };
    let i = Cell::new(0usize);
    let j = Cell::new(0usize);
    let (s, b) = compare_n(
        10,
        10,
        50,
        || async {
            let (_, ctx, cursor) = &cursors[i.get() % cursors.len()];
            i.set(i.get() + 1);
            let q = AuditQuery::last_days(30).after(*cursor);
            assert_eq!(
                repos
                    .audit
                    .query_entries(ctx, q)
                    .await
                    .unwrap()
                    .entries
                    .len(),
                50
            );
        },
        || async {
            let (tenant, _, cursor) = &cursors[j.get() % cursors.len()];
            j.set(j.get() + 1);
            let after = Some((cursor.created_at(), cursor.seq));
            assert_eq!(
                raw_page(&pool, *tenant, since_30_days(), after).await.len(),
                51
            );
        },
    )
    .await;
    report("page 6 alone (after a cursor)", &s, &b, None);

    explain(&pool, ctx, *tenant).await;
    pool.close().await;
}

/// Prints the report's plan as the SDK runs it: as `authenticated` with
/// the owner's claims, first with the parameters' values known to the
/// planner (a custom plan, what a fresh prepared statement gets), then as a
/// generic plan (what a prepared statement may switch to after 5 runs).
async fn explain(pool: &PgPool, ctx: &Context, tenant: TenantId) {
    let begin = insightpulse::postgres::uow::begin_statement(ctx);
    let since = since_30_days();
    let mut tx = pool.begin_with(begin.clone()).await.unwrap();
    let plan: Vec<String> =
        sqlx::query_scalar(&format!("EXPLAIN (ANALYZE, BUFFERS) {SDK_REPORT_SQL}"))
            .bind(tenant.0)
            .bind(since)
            .bind(None::<&str>)
            .bind(None::<&str>)
            .bind(None::<Uuid>)
            .bind(None::<Uuid>)
            .bind(None::<&str>)
            .bind(None::<&str>)
            .bind(None::<DateTime<Utc>>)
            .bind(0_i64)
            .bind(51_i64)
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    tx.rollback().await.unwrap();
    println!("\n  EXPLAIN (ANALYZE, BUFFERS) of the report's first page, as authenticated (custom plan):");
    for line in plan {
        println!("    {line}");
    }

    let mut tx = pool.begin_with(begin).await.unwrap();
    sqlx::raw_sql(&format!(
        "SET LOCAL plan_cache_mode = force_generic_plan;
         PREPARE bench_report(uuid, timestamptz, text, text, uuid, uuid, text, text, timestamptz, bigint, bigint) AS {SDK_REPORT_SQL}"
    ))
    .execute(&mut *tx)
    .await
    .unwrap();
    let plan: Vec<String> = sqlx::raw_sql(&format!(
        "EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_report('{}', '{}', NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 51)",
        tenant.0,
        since.to_rfc3339()
    ))
    .fetch_all(&mut *tx)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect();
    sqlx::raw_sql("DEALLOCATE bench_report")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    println!("\n  the same as a generic plan (plan_cache_mode = force_generic_plan):");
    for line in plan {
        println!("    {line}");
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` probes; nothing to list
    }
    let parts = std::env::var("AUDIT_BENCH").unwrap_or_else(|_| "writes,appends,report".into());
    let admin = common::admin_url();
    // Every run makes its own tenants in the write database.
    let run = format!("r{}", &Uuid::new_v4().simple().to_string()[..8]);
    if parts.contains("writes") || parts.contains("appends") {
        let url = bench_database(&admin, WRITE_DB, "SELECT true").await;
        if parts.contains("writes") {
            writes(&url, &run).await;
        }
        if parts.contains("appends") {
            appends(&url, &run).await;
        }
    }
    if parts.contains("report") {
        let complete = format!(
            "SELECT count(*) = {} FROM insightpulse.audit_logs",
            REPORT_TENANTS * ENTRIES_PER_TENANT
        );
        let url = bench_database(&admin, REPORT_DB, &complete).await;
        report_query(&url).await;
    }
}
