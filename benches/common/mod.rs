//! What the benches share: timing statistics, the alternating comparison of
//! an SDK call with its baseline, the report line, and the bench databases.
//!
//! Each bench includes it with `mod common;`; not every bench uses every
//! helper.
#![allow(dead_code)]

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::future::Future;
use std::time::{Duration, Instant};

/// Seeds the hot-read data set once (as the superuser, statement by
/// statement, which Citus takes too): `tenants` tenants, each with an owner
/// and `projects` projects, the `extra` statements (bound to `tenants`), and
/// a Developer member in tenant 42 for the permission check.
pub async fn seed_tenants(pool: &PgPool, tenants: i64, projects: i64, extra: &[&str]) {
    let have: i64 = sqlx::query_scalar("SELECT count(*) FROM insightpulse.projects")
        .fetch_one(pool)
        .await
        .unwrap();
    if have >= tenants * projects {
        return;
    }
    let t = Instant::now();
    let base = [
        "INSERT INTO insightpulse.users (id, email) SELECT md5('u' || i)::uuid, 'owner' || i || '@bench.io' FROM generate_series(1, $1) i",
        "INSERT INTO insightpulse.tenants (id, slug, name) SELECT md5('t' || i)::uuid, 'tenant-' || i, 'Tenant ' || i FROM generate_series(1, $1) i",
        "INSERT INTO insightpulse.org_memberships (tenant_id, user_id, is_owner) SELECT md5('t' || i)::uuid, md5('u' || i)::uuid, true FROM generate_series(1, $1) i",
    ];
    for sql in base.iter().chain(extra) {
        sqlx::query(sql).bind(tenants).execute(pool).await.unwrap();
    }
    sqlx::query(
        "INSERT INTO insightpulse.projects (tenant_id, slug, name)
         SELECT md5('t' || i)::uuid, 'project-' || p, 'Project ' || p
           FROM generate_series(1, $1) i, generate_series(1, $2) p",
    )
    .bind(tenants)
    .bind(projects)
    .execute(pool)
    .await
    .unwrap();
    for sql in [
        "INSERT INTO insightpulse.users (id, email) VALUES (md5('dev')::uuid, 'dev@bench.io')",
        "INSERT INTO insightpulse.org_memberships (tenant_id, user_id) VALUES (md5('t42')::uuid, md5('dev')::uuid)",
        "INSERT INTO insightpulse.user_roles (tenant_id, user_id, role_id)
           SELECT md5('t42')::uuid, md5('dev')::uuid, r.id FROM insightpulse.roles r
            WHERE r.tenant_id IS NULL AND r.name = 'Developer' AND r.scope = 'global'",
        "ANALYZE",
    ] {
        sqlx::query(sql).execute(pool).await.unwrap();
    }
    println!("seeded in {:.1}s", t.elapsed().as_secs_f64());
}

/// Rounds of [`compare`]: SDK and baseline alternate this many times.
pub const ROUNDS: usize = 10;
/// Calls of each side per round in [`compare`].
pub const PER_ROUND: usize = 300;
/// Untimed calls of each side before [`compare`] starts timing.
pub const WARMUP: usize = 50;

/// Latency samples of one measured operation.
pub struct Stats {
    pub samples: Vec<Duration>,
}

impl Stats {
    pub fn new() -> Self {
        Self {
            samples: Vec::new(),
        }
    }
    /// The `q` quantile (0.5 = median).
    pub fn p(&self, q: f64) -> Duration {
        let mut s = self.samples.clone();
        s.sort();
        s[((s.len() as f64 - 1.0) * q) as usize]
    }
    pub fn mean(&self) -> Duration {
        self.samples.iter().sum::<Duration>() / self.samples.len() as u32
    }
    /// Sequential operations per second (1 / mean latency).
    pub fn ops(&self) -> f64 {
        1.0 / self.mean().as_secs_f64()
    }
}

/// `12.3 µs`.
pub fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

/// `12.34 ms`.
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// One line: the SDK's and the baseline's p50, p99 and ops/s, and their
/// ratios (mean and p50), with the goal when there is one.
pub fn report(name: &str, sdk: &Stats, base: &Stats, goal: Option<f64>) {
    let ratio = sdk.mean().as_secs_f64() / base.mean().as_secs_f64();
    let p50_ratio = sdk.p(0.5).as_secs_f64() / base.p(0.5).as_secs_f64();
    let goal = goal.map(|g| format!(" (goal ≤ {g}×)")).unwrap_or_default();
    println!(
        "{name:<34} SDK p50 {:>10} p99 {:>10} ({:>7.0} ops/s) | raw p50 {:>10} p99 {:>10} ({:>7.0} ops/s) | ratio mean {ratio:.2}× p50 {p50_ratio:.2}×{goal}",
        us(sdk.p(0.5)),
        us(sdk.p(0.99)),
        sdk.ops(),
        us(base.p(0.5)),
        us(base.p(0.99)),
        base.ops(),
    );
}

/// Times `sdk` and `base` alternately, [`ROUNDS`] × [`PER_ROUND`] calls each.
pub async fn compare<A, B, FA, FB>(sdk: A, base: B) -> (Stats, Stats)
where
    A: FnMut() -> FA,
    B: FnMut() -> FB,
    FA: Future<Output = ()>,
    FB: Future<Output = ()>,
{
    compare_n(WARMUP, ROUNDS, PER_ROUND, sdk, base).await
}

/// Like [`compare`], with `warmup` untimed calls of each side first, then
/// `rounds` × `per_round` timed calls of each side, alternating by round
/// so that drift hits both alike.
pub async fn compare_n<A, B, FA, FB>(
    warmup: usize,
    rounds: usize,
    per_round: usize,
    mut sdk: A,
    mut base: B,
) -> (Stats, Stats)
where
    A: FnMut() -> FA,
    B: FnMut() -> FB,
    FA: Future<Output = ()>,
    FB: Future<Output = ()>,
{
    let (mut s, mut b) = (Stats::new(), Stats::new());
    for _ in 0..warmup {
        sdk().await;
        base().await;
    }
    for _ in 0..rounds {
        for _ in 0..per_round {
            let t = Instant::now();
            sdk().await;
            s.samples.push(t.elapsed());
        }
        for _ in 0..per_round {
            let t = Instant::now();
            base().await;
            b.samples.push(t.elapsed());
        }
    }
    (s, b)
}

/// A pool of `max` connections to `url` whose sessions have the SDK's
/// schema on their search path, as a host's DBA would set it: the
/// baselines' raw SQL names tables like the SDK does (the SDK sets its own
/// search path in every unit of work regardless).
pub async fn pool(url: &str, max: u32) -> PgPool {
    let options: PgConnectOptions = url.parse().expect("a PostgreSQL URL");
    PgPoolOptions::new()
        .max_connections(max)
        .connect_with(options.options([("search_path", "insightpulse,public")]))
        .await
        .expect("connect")
}

/// `DATABASE_URL`, or the local cluster.
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The bench database `db` on the cluster of `admin_url`: reused when it
/// exists and `complete` (a query returning one boolean) says a previous
/// run left it complete, dropped and created afresh (empty) otherwise.
/// Returns its URL.
pub async fn bench_database(admin_url: &str, db: &str, complete: &str) -> String {
    let url = url_with_db(admin_url, db);
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(admin_url)
        .await
        .expect("connect DATABASE_URL");
    let complete = match PgPoolOptions::new().max_connections(1).connect(&url).await {
        Ok(pool) => {
            let ok = sqlx::query_scalar::<_, bool>(complete)
                .fetch_one(&pool)
                .await
                .unwrap_or(false);
            pool.close().await;
            ok
        }
        Err(_) => false,
    };
    if !complete {
        sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .execute(&admin)
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE {db}"))
            .execute(&admin)
            .await
            .unwrap();
    }
    admin.close().await;
    url
}

/// `url` pointing at database `db` instead (query string kept).
pub fn url_with_db(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let base = match base.rfind('/') {
        Some(i) if base[..i].contains("//") && i > base.find("//").unwrap() + 1 => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

/// A small deterministic pseudo-random generator (xorshift64*), so the
/// benches need no `rand` and pick the same sequence on every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// One side of [`compare_hot_reads`]: a backend, its tenant's owner and
/// Developer (a member holding the Developer role), and a project of the
/// tenant.
pub struct Side<'a> {
    pub repos: &'a insightpulse::Repos,
    pub owner: &'a insightpulse::Context,
    pub developer: &'a insightpulse::Context,
    pub project: insightpulse::ProjectId,
}

/// The hot reads on `sdk` against the same on `base`, each alternating call
/// by call, `ROUNDS × PER_ROUND` calls of each side: the owner lists the
/// tenant's 50 projects and reads one, the Developer checks a permission it
/// holds, the owner lists the members (a unit of work of two statements).
pub async fn compare_hot_reads(sdk: Side<'_>, base: Side<'_>) {
    let calls = ROUNDS * PER_ROUND;
    let (s, b) = compare_n(WARMUP, calls, 1, || list(&sdk), || list(&base)).await;
    report("list one tenant's 50 projects", &s, &b, None);
    let (s, b) = compare_n(WARMUP, calls, 1, || point(&sdk), || point(&base)).await;
    report("point read of a project by id", &s, &b, None);
    let (s, b) = compare_n(WARMUP, calls, 1, || check(&sdk), || check(&base)).await;
    report("permission check (Developer)", &s, &b, None);
    let (s, b) = compare_n(WARMUP, calls, 1, || members(&sdk), || members(&base)).await;
    report("list members (unit of work)", &s, &b, None);
}

async fn list(s: &Side<'_>) {
    let projects = s
        .repos
        .projects
        .list_projects(s.owner, false)
        .await
        .unwrap();
    assert_eq!(projects.len(), 50);
}

async fn point(s: &Side<'_>) {
    s.repos
        .projects
        .get_project(s.owner, s.project)
        .await
        .unwrap();
}

async fn check(s: &Side<'_>) {
    let code = insightpulse::PermissionCode::DASHBOARD_DELETE;
    assert!(s
        .repos
        .rbac
        .has_permission(s.developer, code, None)
        .await
        .unwrap());
}

async fn members(s: &Side<'_>) {
    assert_eq!(
        s.repos.members.list_members(s.owner).await.unwrap().len(),
        2
    );
}
