//! What RLS and the unit of work cost, measured against raw sqlx in the same
//! run on the same pool, plus the in-memory backend's throughput.
//!
//! ```text
//! cargo bench --bench foundation            # DATABASE_URL defaults to the local cluster
//! ```
//!
//! Data: 10,000 tenants × 50 projects (seeded once into the database
//! `insightpulse_bench`, reused on later runs). Every measurement runs on
//! one connection, sequentially, alternating SDK and baseline in rounds so
//! drift hits both alike.

use insightpulse::postgres::PgBackend;
use insightpulse::projects::NewProject;
use insightpulse::tenancy::tokens::TokenHasher;
use insightpulse::tenancy::{ApiKeyScope, NewApiKey, NewTenant, NewUser};
use insightpulse::{
    chrono, Context, Email, ExposeSecret, Name, PermissionCode, ProjectId, Repos, RequestMeta,
    Slug, TenantId, TimeZone, UserId,
};
use insightpulse_testing::memory::MemoryBackend;
use sqlx::PgPool;
use sqlx::Row;
use std::time::Instant;
use uuid::Uuid;

mod common;
use common::{bench_database, compare, report, us, Stats, PER_ROUND, ROUNDS};

const TENANTS: i64 = 10_000;
const PROJECTS_PER_TENANT: i64 = 50;

/// A point read sent on a held connection: a simple-query message as is,
/// or sqlx's extended protocol with binds.
enum Msg<'a> {
    Simple(&'a str),
    Extended(Uuid, Uuid),
}

async fn send(conn: &mut sqlx::PgConnection, msg: &Msg<'_>) {
    let rows = match msg {
        Msg::Simple(sql) => sqlx::Executor::fetch_all(&mut *conn, *sql).await.unwrap().len(),
        Msg::Extended(tenant, id) => sqlx::query(
            "SELECT tenant_id, id, slug, name, description, archived_at, created_at, updated_at FROM projects
              WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .fetch_all(&mut *conn)
        .await
        .unwrap()
        .len(),
    };
    assert_eq!(rows, 1);
}

/// Like [`compare`], on one held connection (no pool acquire/release).
async fn compare_on(conn: &mut sqlx::PgConnection, a: Msg<'_>, b: Msg<'_>) -> (Stats, Stats) {
    let (mut sa, mut sb) = (Stats::new(), Stats::new());
    for _ in 0..50 {
        send(conn, &a).await;
        send(conn, &b).await;
    }
    for _ in 0..ROUNDS {
        for (msg, stats) in [(&a, &mut sa), (&b, &mut sb)] {
            for _ in 0..PER_ROUND {
                let t = Instant::now();
                send(conn, msg).await;
                stats.samples.push(t.elapsed());
            }
        }
    }
    (sa, sb)
}

/// Seeds the 10,000 × 50 data set once (as the pool's superuser, in bulk).
async fn seed(pool: &PgPool) {
    let have: i64 = sqlx::query_scalar("SELECT count(*) FROM projects")
        .fetch_one(pool)
        .await
        .unwrap();
    if have >= TENANTS * PROJECTS_PER_TENANT {
        return;
    }
    println!("seeding {TENANTS} tenants × {PROJECTS_PER_TENANT} projects (once)…");
    let t = Instant::now();
    for sql in [
        "INSERT INTO users (id, email) SELECT md5('u' || i)::uuid, 'owner' || i || '@bench.io' FROM generate_series(1, $1) i",
        "INSERT INTO tenants (id, slug, name) SELECT md5('t' || i)::uuid, 'tenant-' || i, 'Tenant ' || i FROM generate_series(1, $1) i",
        "INSERT INTO org_memberships (tenant_id, user_id, is_owner) SELECT md5('t' || i)::uuid, md5('u' || i)::uuid, true FROM generate_series(1, $1) i",
        "INSERT INTO user_roles (tenant_id, user_id, role_id)
           SELECT md5('t' || i)::uuid, md5('u' || i)::uuid, (SELECT id FROM roles WHERE tenant_id IS NULL AND name = 'Admin')
             FROM generate_series(1, $1) i",
    ] {
        sqlx::query(sql).bind(TENANTS).execute(pool).await.unwrap();
    }
    sqlx::query(
        "INSERT INTO projects (tenant_id, slug, name)
         SELECT md5('t' || i)::uuid, 'project-' || p, 'Project ' || p
           FROM generate_series(1, $1) i, generate_series(1, $2) p",
    )
    .bind(TENANTS)
    .bind(PROJECTS_PER_TENANT)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE").execute(pool).await.unwrap();
    println!("seeded in {:.1}s", t.elapsed().as_secs_f64());
}

async fn postgres(url: &str) {
    let pool = common::pool(url, 1).await;
    let backend = PgBackend::from_pool(pool.clone(), TokenHasher::insecure_development());
    backend.migrate().await.unwrap();
    seed(&pool).await;
    let repos = backend.repos();

    // Tenant 4242: its owner, and a Developer member for the permission check.
    let tenant = TenantId(
        sqlx::query_scalar("SELECT md5('t4242')::uuid")
            .fetch_one(&pool)
            .await
            .unwrap(),
    );
    let owner = UserId(
        sqlx::query_scalar("SELECT md5('u4242')::uuid")
            .fetch_one(&pool)
            .await
            .unwrap(),
    );
    let dev: Uuid = sqlx::query_scalar(
        "WITH u AS (INSERT INTO users (email) VALUES ('dev@bench.io') ON CONFLICT (email) DO UPDATE SET email = EXCLUDED.email RETURNING id),
              m AS (INSERT INTO org_memberships (tenant_id, user_id) SELECT $1, id FROM u ON CONFLICT DO NOTHING),
              g AS (INSERT INTO user_roles (tenant_id, user_id, role_id)
                    SELECT $1, u.id, r.id FROM u, roles r WHERE r.tenant_id IS NULL AND r.name = 'Developer' AND r.scope = 'global'
                    ON CONFLICT DO NOTHING)
         SELECT id FROM u",
    )
    .bind(tenant.0)
    .fetch_one(&pool)
    .await
    .unwrap();
    let ctx = Context::user(owner).in_tenant(tenant);
    let dev_ctx = Context::user(UserId(dev)).in_tenant(tenant);
    let project: ProjectId = repos.projects.list_projects(&ctx, false).await.unwrap()[7].id;
    let code: PermissionCode = "dashboard.delete".parse().unwrap();

    println!("\nPostgreSQL ({TENANTS} tenants × {PROJECTS_PER_TENANT} projects, 1 connection, {} calls each)", ROUNDS * PER_ROUND);
    let (s, b) = compare(
        || async { assert_eq!(repos.projects.list_projects(&ctx, false).await.unwrap().len(), 50) },
        || async {
            let rows = sqlx::query(
                "SELECT tenant_id, id, slug, name, description, archived_at, created_at, updated_at FROM projects
                  WHERE tenant_id = $1 AND archived_at IS NULL ORDER BY slug COLLATE \"C\"",
            )
            .bind(tenant.0)
            .fetch_all(&pool)
            .await
            .unwrap();
            assert_eq!(rows.len(), 50);
        },
    )
    .await;
    report("list one tenant's 50 projects", &s, &b, Some(1.3));

    let (s, b) = compare(
        || async { repos.projects.get_project(&ctx, project).await.unwrap(); },
        || async {
            sqlx::query(
                "SELECT tenant_id, id, slug, name, description, archived_at, created_at, updated_at FROM projects
                  WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant.0)
            .bind(project.0)
            .fetch_one(&pool)
            .await
            .unwrap();
        },
    )
    .await;
    report("point read of a project by id", &s, &b, Some(1.5));

    let (s, b) = compare(
        || async { assert!(repos.rbac.has_permission(&dev_ctx, code, None).await.unwrap()) },
        || async {
            let ok: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM org_memberships m
                                 JOIN user_roles ur ON ur.tenant_id = m.tenant_id AND ur.user_id = m.user_id
                                 JOIN role_permissions rp ON rp.role_id = ur.role_id
                                 JOIN permissions p ON p.id = rp.permission_id
                                WHERE m.tenant_id = $1 AND m.user_id = $2 AND m.status = 'active'
                                  AND ur.project_id IS NULL AND p.code = $3)",
            )
            .bind(tenant.0)
            .bind(dev)
            .bind(code.as_str())
            .fetch_one(&pool)
            .await
            .unwrap();
            assert!(ok);
        },
    )
    .await;
    report("permission check (Developer)", &s, &b, None);

    // A request authenticated by an API key, then guarded by a permission:
    // `authenticate` + `require_permission` against what a hand-written
    // host would do instead, the key's lookup by its public prefix (the
    // same prepared statement, as superuser) and the same HMAC and checks
    // in Rust. `last_used_at` was written by the first call; within the
    // minute no call writes it again.
    let hasher = TokenHasher::insecure_development();
    let issued = repos
        .api_keys
        .create_api_key(
            &ctx,
            NewApiKey {
                name: Name::parse("bench").unwrap(),
                scope: ApiKeyScope::Tenant,
                permissions: vec![
                    PermissionCode::PROJECT_CREATE,
                    PermissionCode::DASHBOARD_READ,
                ],
                expires_at: None,
            },
        )
        .await
        .unwrap();
    let (secret, prefix) = (issued.secret, issued.key.prefix.clone());
    let meta = RequestMeta::default().with_request_id("bench");
    let (s, b) = compare(
        || async {
            let key_ctx = repos
                .auth
                .authenticate(&secret, meta.clone())
                .await
                .unwrap();
            repos
                .rbac
                .require_permission(&key_ctx, PermissionCode::PROJECT_CREATE, None)
                .await
                .unwrap();
        },
        || async {
            let row = sqlx::query(
                "SELECT tenant_id, id, key_hash, permissions, project_id, environment_id,
                        expires_at, revoked_at, last_used_at
                   FROM api_keys WHERE prefix = $1",
            )
            .bind(&prefix)
            .fetch_one(&pool)
            .await
            .unwrap();
            let hash: Vec<u8> = row.get("key_hash");
            assert!(hasher.matches(secret.expose_secret(), &hash));
            let revoked: Option<chrono::DateTime<chrono::Utc>> = row.get("revoked_at");
            let permissions: Vec<String> = row.get("permissions");
            assert!(revoked.is_none() && permissions.iter().any(|p| p == "project.create"));
        },
    )
    .await;
    report("authenticate + require_permission", &s, &b, None);
    // The call that is due to record a use (once a minute per key): the
    // same, with the key's last use moved back a minute before each call.
    let mut due = Stats::new();
    for _ in 0..300 {
        sqlx::query(
            "UPDATE api_keys SET last_used_at = now() - interval '2 minutes' WHERE prefix = $1",
        )
        .bind(&prefix)
        .execute(&pool)
        .await
        .unwrap();
        let t = Instant::now();
        repos
            .auth
            .authenticate(&secret, meta.clone())
            .await
            .unwrap();
        due.samples.push(t.elapsed());
    }
    println!(
        "  authenticate that records the use  p50 {:>10} p99 {:>10} (once a minute per key)",
        us(due.p(0.5)),
        us(due.p(0.99))
    );

    // Breakdown of the point read: the same single message as the SDK sends
    // (BEGIN, settings, EXECUTE of the prepared statement, COMMIT), once as
    // the SDK's `authenticated` (RLS on) and once without the role switch
    // (RLS bypassed): the difference is what the policies cost.
    let mut conn = pool.acquire().await.unwrap();
    sqlx::Executor::execute(
        &mut *conn,
        "PREPARE bench_get(uuid, uuid) AS SELECT tenant_id, id, slug, name, description, archived_at, created_at, updated_at
           FROM projects WHERE tenant_id = $1 AND id = $2",
    )
    .await
    .unwrap();
    let (role, claims) = insightpulse::postgres::uow::role_and_claims(&ctx);
    let claims = insightpulse::postgres::uow::quote_literal(&claims);
    let tenant_setting = insightpulse::postgres::uow::TENANT_SETTING;
    let execute = format!("EXECUTE bench_get('{}', '{}')", tenant.0, project.0);
    let with_rls = format!(
        "BEGIN READ ONLY; SET LOCAL ROLE {role}; SET LOCAL request.jwt.claims = {claims}; SET LOCAL {tenant_setting} = '{}'; SET LOCAL TimeZone = 'UTC'; {execute}; COMMIT",
        tenant.0
    );
    let without_rls = format!("BEGIN READ ONLY; SET LOCAL TimeZone = 'UTC'; {execute}; COMMIT");
    let (s, b) = compare_on(&mut conn, Msg::Simple(&with_rls), Msg::Simple(&without_rls)).await;
    report("  one message: RLS on vs bypassed", &s, &b, None);
    let (s, b) = compare_on(&mut conn, Msg::Simple(&without_rls), Msg::Simple(&execute)).await;
    report("  one message vs bare EXECUTE", &s, &b, None);
    let (s, b) = compare_on(
        &mut conn,
        Msg::Simple(&execute),
        Msg::Extended(tenant.0, project.0),
    )
    .await;
    report("  bare EXECUTE vs extended protocol", &s, &b, None);
    drop(conn);
    // The SDK call against the very same message sent through the pool: what
    // the SDK itself adds (spans, claims, decoding into domain types).
    let message = format!(
        "BEGIN READ ONLY; SET LOCAL ROLE {role}; SET LOCAL request.jwt.claims = {claims}; SET LOCAL {tenant_setting} = '{}'; SET LOCAL search_path TO insightpulse, pg_temp; SET LOCAL TimeZone = 'UTC'; EXECUTE insightpulse_get_project('{}', '{}'); COMMIT",
        tenant.0, tenant.0, project.0
    );
    let (s, b) = compare(
        || async {
            repos.projects.get_project(&ctx, project).await.unwrap();
        },
        || async {
            assert_eq!(
                sqlx::Executor::fetch_all(&pool, message.as_str())
                    .await
                    .unwrap()
                    .len(),
                1
            )
        },
    )
    .await;
    report("  SDK call vs its message via the pool", &s, &b, None);

    // What the unit of work itself costs: BEGIN+role+claims, COMMIT.
    let (s, b) = compare(
        || async {
            let tx = pool
                .begin_with(insightpulse::postgres::uow::begin_statement(&ctx))
                .await
                .unwrap();
            tx.commit().await.unwrap();
        },
        || async {
            sqlx::query("SELECT 1").execute(&pool).await.unwrap();
        },
    )
    .await;
    report("empty unit of work vs SELECT 1", &s, &b, None);
}

async fn memory() {
    let repos: Repos = MemoryBackend::new().repos();
    let mut owner_ctx = None;
    let t = Instant::now();
    for i in 0..TENANTS {
        let owner = repos
            .users
            .create_user(
                &Context::system("bench"),
                NewUser {
                    email: Email::parse(&format!("o{i}@bench.io")).unwrap(),
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
                    slug: Slug::parse(&format!("t{i}")).unwrap(),
                    name: Name::parse("T").unwrap(),
                    timezone: TimeZone::utc(),
                },
            )
            .await
            .unwrap();
        let ctx = Context::user(owner.id).in_tenant(tenant.id);
        for p in 0..PROJECTS_PER_TENANT {
            repos
                .projects
                .create_project(
                    &ctx,
                    NewProject {
                        slug: Slug::parse(&format!("p{p}")).unwrap(),
                        name: Name::parse("P").unwrap(),
                        description: None,
                    },
                )
                .await
                .unwrap();
        }
        if i == 4242 {
            owner_ctx = Some(ctx);
        }
    }
    println!("\nin-memory backend ({TENANTS} tenants × {PROJECTS_PER_TENANT} projects, seeded through the API in {:.1}s)", t.elapsed().as_secs_f64());
    let ctx = owner_ctx.unwrap();
    let project = repos.projects.list_projects(&ctx, false).await.unwrap()[7].id;
    let code: PermissionCode = "dashboard.delete".parse().unwrap();
    for (op, name, n) in [
        (0, "list one tenant's 50 projects", 20_000),
        (1, "point read of a project by id", 200_000),
        (2, "permission check", 200_000),
    ] {
        let t = Instant::now();
        for _ in 0..n {
            match op {
                0 => assert_eq!(
                    repos
                        .projects
                        .list_projects(&ctx, false)
                        .await
                        .unwrap()
                        .len(),
                    50
                ),
                1 => drop(repos.projects.get_project(&ctx, project).await.unwrap()),
                _ => assert!(repos.rbac.has_permission(&ctx, code, None).await.unwrap()),
            }
        }
        let per = t.elapsed() / n;
        println!(
            "{name:<34} {:>10} per call ({:>9.0} ops/s)",
            us(per),
            1.0 / per.as_secs_f64()
        );
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` probes; nothing to list
    }
    // Reused when a previous run seeded it completely, created afresh (and
    // migrated, then seeded) otherwise.
    let url = bench_database(
        &common::admin_url(),
        "insightpulse_bench",
        &format!(
            "SELECT count(*) = {} FROM insightpulse.projects",
            TENANTS * PROJECTS_PER_TENANT
        ),
    )
    .await;
    postgres(&url).await;
    memory().await;
}
