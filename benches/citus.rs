//! What a Citus cluster costs the hot reads: each SDK call on a Citus
//! coordinator against the same call on plain PostgreSQL, alternating call
//! by call, one client connection each.
//!
//! ```text
//! scripts/setup-citus.sh && cargo bench --bench citus
//! ```
//!
//! The cluster is `scripts/setup-citus.sh`'s: a coordinator
//! (`INSIGHTPULSE_CITUS_URL`, default 127.0.0.1:5433) and one worker
//! (`INSIGHTPULSE_CITUS_WORKER_URL`, 127.0.0.1:5434), so every tenant's
//! shard is on the worker: each tenant-scoped read goes from the
//! coordinator to the worker and back. Data: 200 tenants × 50 projects in
//! the database `insightpulse_bench_citus` on both (seeded once, reused).

use insightpulse::postgres::PgBackend;
use insightpulse::tenancy::tokens::TokenHasher;
use insightpulse::{Context, ProjectId, Repos, TenantId, UserId};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use uuid::Uuid;

mod common;
use common::{url_with_db, PER_ROUND, ROUNDS};

const DB: &str = "insightpulse_bench_citus";
const TENANTS: i64 = 200;
const PROJECTS_PER_TENANT: i64 = 50;
const CALLS: usize = ROUNDS * PER_ROUND;

fn env_or(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.into())
}

/// Seeds the data set once (the same on both clusters).
async fn seed(pool: &PgPool) {
    common::seed_tenants(pool, TENANTS, PROJECTS_PER_TENANT, &[]).await;
}

/// The bench database on the cluster: created on both nodes with the
/// extension and the worker registered, unless a previous run left it.
async fn citus_database(coordinator: &str, worker: &str) -> String {
    let url = url_with_db(coordinator, DB);
    if let Ok(mut c) = PgConnection::connect(&url).await {
        let ready: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'insightpulse.projects'::regclass)",
        )
        .fetch_one(&mut c)
        .await
        .unwrap_or(false);
        if ready {
            return url;
        }
    }
    for admin in [coordinator, worker] {
        let mut c = PgConnection::connect(admin).await.expect("a Citus node");
        c.execute(format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)").as_str())
            .await
            .unwrap();
        c.execute(format!("CREATE DATABASE {DB}").as_str())
            .await
            .unwrap();
        let mut db = PgConnection::connect(&url_with_db(admin, DB))
            .await
            .unwrap();
        db.execute("CREATE EXTENSION citus").await.unwrap();
    }
    let opts: sqlx::postgres::PgConnectOptions = coordinator.parse().unwrap();
    let w: sqlx::postgres::PgConnectOptions = worker.parse().unwrap();
    let mut c = PgConnection::connect(&url).await.unwrap();
    sqlx::query("SELECT citus_set_coordinator_host($1, $2)")
        .bind(opts.get_host())
        .bind(i32::from(opts.get_port()))
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::query("SELECT citus_add_node($1, $2)")
        .bind(w.get_host())
        .bind(i32::from(w.get_port()))
        .execute(&mut c)
        .await
        .unwrap();
    url
}

/// A migrated, seeded backend on one client connection to `url`, and the
/// ids the calls use.
async fn backend(url: &str) -> (Repos, TenantId, UserId, UserId) {
    let setup = common::pool(url, 1).await;
    PgBackend::from_pool(setup.clone(), TokenHasher::insecure_development())
        .migrate()
        .await
        .unwrap();
    seed(&setup).await;
    let id = |sql: &'static str| {
        let setup = setup.clone();
        async move {
            sqlx::query_scalar::<_, Uuid>(sql)
                .fetch_one(&setup)
                .await
                .unwrap()
        }
    };
    let ids = (
        TenantId(id("SELECT md5('t42')::uuid").await),
        UserId(id("SELECT md5('u42')::uuid").await),
        UserId(id("SELECT md5('dev')::uuid").await),
    );
    setup.close().await;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(PgBackend::connect_options(url).unwrap())
        .await
        .unwrap();
    let repos = PgBackend::from_pool(pool, TokenHasher::insecure_development()).repos();
    (repos, ids.0, ids.1, ids.2)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` probes; nothing to list
    }
    let coordinator = env_or(
        "INSIGHTPULSE_CITUS_URL",
        "postgres://postgres@127.0.0.1:5433/postgres",
    );
    let worker = env_or(
        "INSIGHTPULSE_CITUS_WORKER_URL",
        "postgres://postgres@127.0.0.1:5434/postgres",
    );
    let on_citus = citus_database(&coordinator, &worker).await;
    let on_postgres = common::bench_database(
        &common::admin_url(),
        DB,
        &format!(
            "SELECT count(*) = {} FROM insightpulse.projects",
            TENANTS * PROJECTS_PER_TENANT
        ),
    )
    .await;
    let (citus, tenant, owner, dev) = backend(&on_citus).await;
    let (postgres, ..) = backend(&on_postgres).await;
    let ctx = Context::user(owner).in_tenant(tenant);
    let dev_ctx = Context::user(dev).in_tenant(tenant);
    let project: ProjectId = citus.projects.list_projects(&ctx, false).await.unwrap()[7].id;
    let pg_project: ProjectId = postgres.projects.list_projects(&ctx, false).await.unwrap()[7].id;
    println!(
        "\nCitus coordinator (tenant's shard on the worker) vs plain PostgreSQL (1 client connection each, {CALLS} calls each, alternating; \"SDK\" = on Citus, \"raw\" = the same SDK call on PostgreSQL)"
    );
    common::compare_hot_reads(
        common::Side {
            repos: &citus,
            owner: &ctx,
            developer: &dev_ctx,
            project,
        },
        common::Side {
            repos: &postgres,
            owner: &ctx,
            developer: &dev_ctx,
            project: pg_project,
        },
    )
    .await;
}
