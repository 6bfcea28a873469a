//! What going through PgBouncer in transaction mode costs the hot reads:
//! each SDK call through a pooler against the same call over the direct
//! connection, alternating call by call, on one client connection each.
//!
//! ```text
//! scripts/setup-pgbouncer.sh && cargo bench --bench pooler
//! ```
//!
//! - PgBouncer 1.18 (`INSIGHTPULSE_PGBOUNCER_118_URL`, default port 6432),
//!   which tracks no prepared statement: `PoolerMode::Transaction` (every
//!   statement unnamed, the hot reads' text sent with inlined arguments);
//! - PgBouncer 1.24 with `max_prepared_statements`
//!   (`INSIGHTPULSE_PGBOUNCER_124_URL`, default 6433): the default mode.
//!
//! Data: 1,000 tenants × 50 projects in the database
//! `insightpulse_bench_pooler` (seeded once, reused later).

use insightpulse::postgres::{PgBackend, PoolerMode};
use insightpulse::tenancy::tokens::TokenHasher;
use insightpulse::{Context, ProjectId, Repos, TenantId, UserId};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use uuid::Uuid;

mod common;
use common::{bench_database, url_with_db, PER_ROUND, ROUNDS};

const DB: &str = "insightpulse_bench_pooler";
const TENANTS: i64 = 1_000;
const PROJECTS_PER_TENANT: i64 = 50;
/// Calls of each side, alternating call by call (the machine's other load
/// then hits both sides alike).
const CALLS: usize = ROUNDS * PER_ROUND;

/// Seeds the data set once, every owner also holding the Admin role.
async fn seed(pool: &PgPool) {
    common::seed_tenants(
        pool,
        TENANTS,
        PROJECTS_PER_TENANT,
        &[
            "INSERT INTO insightpulse.user_roles (tenant_id, user_id, role_id)
             SELECT md5('t' || i)::uuid, md5('u' || i)::uuid,
                    (SELECT id FROM insightpulse.roles WHERE tenant_id IS NULL AND name = 'Admin')
               FROM generate_series(1, $1) i",
        ],
    )
    .await;
}

/// A backend on one client connection to `url`, in `mode`.
async fn backend(url: &str, mode: PoolerMode) -> Repos {
    let options = PgBackend::connect_options(url).unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e} (run scripts/setup-pgbouncer.sh)"));
    PgBackend::from_pool(pool, TokenHasher::insecure_development())
        .with_pooler_mode(mode)
        .repos()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` probes; nothing to list
    }
    let admin = common::admin_url();
    let url = bench_database(
        &admin,
        DB,
        &format!(
            "SELECT count(*) = {} FROM insightpulse.projects",
            TENANTS * PROJECTS_PER_TENANT
        ),
    )
    .await;
    let setup = common::pool(&url, 1).await;
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
    let tenant = TenantId(id("SELECT md5('t42')::uuid").await);
    let owner = UserId(id("SELECT md5('u42')::uuid").await);
    let dev = UserId(id("SELECT md5('dev')::uuid").await);
    setup.close().await;
    let ctx = Context::user(owner).in_tenant(tenant);
    let dev_ctx = Context::user(dev).in_tenant(tenant);

    let direct = backend(&url, PoolerMode::Session).await;
    let project: ProjectId = direct.projects.list_projects(&ctx, false).await.unwrap()[7].id;
    let poolers = [
        (
            "PgBouncer 1.18, Transaction mode",
            std::env::var("INSIGHTPULSE_PGBOUNCER_118_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:6432/postgres".into()),
            PoolerMode::Transaction,
        ),
        (
            "PgBouncer 1.24, default mode",
            std::env::var("INSIGHTPULSE_PGBOUNCER_124_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:6433/postgres".into()),
            PoolerMode::Session,
        ),
    ];
    for (name, pooler_url, mode) in poolers {
        let through = backend(&url_with_db(&pooler_url, DB), mode).await;
        println!(
            "\n{name} vs direct (1 client connection each, {CALLS} calls each, alternating; \"SDK\" = through the pooler, \"raw\" = direct)"
        );
        let side = |repos| common::Side {
            repos,
            owner: &ctx,
            developer: &dev_ctx,
            project,
        };
        common::compare_hot_reads(side(&through), side(&direct)).await;
    }
}
