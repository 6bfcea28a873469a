//! The PostgreSQL tests again, on a Citus coordinator with one worker
//! (`scripts/test.sh` starts both with `citus-setup` and sets
//! `INSIGHTPULSE_CITUS_URL` and `INSIGHTPULSE_CITUS_WORKER_URL`; without
//! them these tests print why and pass).
//!
//! Every test gets a database of its own, as `#[sqlx::test]` gives one on
//! PostgreSQL: a copy, on both nodes, of a template the SDK's migrator
//! migrated and distributed once (4 shards per table), so a test costs two
//! `CREATE DATABASE … TEMPLATE` and not a distribution.

use insightpulse_postgres::migrate::migrations;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor, PgConnection, PgPool};
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::OnceCell;

/// The two nodes' administrative connections.
struct Nodes {
    coordinator: PgConnectOptions,
    worker: PgConnectOptions,
}

fn nodes() -> Option<Nodes> {
    let url = |var: &str| match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            println!("skipped: {var} is not set (scripts/test.sh sets it, after citus-setup)");
            None
        }
    };
    let coordinator = url("INSIGHTPULSE_CITUS_URL")?;
    let worker = url("INSIGHTPULSE_CITUS_WORKER_URL")?;
    Some(Nodes {
        coordinator: coordinator.parse().expect("INSIGHTPULSE_CITUS_URL"),
        worker: worker.parse().expect("INSIGHTPULSE_CITUS_WORKER_URL"),
    })
}

/// The template's name: one per set of migrations, so a run reuses the
/// template of an earlier run with the same SDK.
fn template_name() -> String {
    use std::hash::{DefaultHasher, Hash, Hasher};
    // DefaultHasher::new() has fixed keys: the same name in every run.
    let mut hash = DefaultHasher::new();
    for m in migrations() {
        m.checksum.hash(&mut hash);
    }
    format!("ipcitus_template_{:016x}", hash.finish())
}

async fn admin(options: &PgConnectOptions) -> PgConnection {
    options
        .clone()
        .database("postgres")
        .connect()
        .await
        .expect("a Citus node")
}

/// Builds the template unless it is there (another test process may be
/// building it: the builders queue on an advisory lock), and drops the
/// test databases of processes that are gone.
async fn template(nodes: &Nodes) -> &'static str {
    static TEMPLATE: OnceCell<String> = OnceCell::const_new();
    TEMPLATE
        .get_or_init(|| async {
            let name = template_name();
            let mut coordinator = admin(&nodes.coordinator).await;
            let mut worker = admin(&nodes.worker).await;
            coordinator
                .execute("SELECT pg_advisory_lock(7361626)")
                .await
                .unwrap();
            drop_orphans(&mut coordinator, &mut worker).await;
            let ready: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1 AND NOT datallowconn)",
            )
            .bind(&name)
            .fetch_one(&mut coordinator)
            .await
            .unwrap();
            if !ready {
                drop_like(&mut coordinator, &mut worker, "ipcitus\\_template\\_%").await;
                build(nodes, &name, &mut coordinator, &mut worker).await;
            }
            coordinator
                .execute("SELECT pg_advisory_unlock(7361626)")
                .await
                .unwrap();
            name
        })
        .await
}

async fn build(
    nodes: &Nodes,
    name: &str,
    coordinator: &mut PgConnection,
    worker: &mut PgConnection,
) {
    for node in [&mut *coordinator, &mut *worker] {
        node.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
    }
    let mut on_worker = nodes.worker.clone().database(name).connect().await.unwrap();
    on_worker.execute("CREATE EXTENSION citus").await.unwrap();
    on_worker.close().await.unwrap();
    let mut on_coordinator = nodes
        .coordinator
        .clone()
        .database(name)
        .connect()
        .await
        .unwrap();
    on_coordinator
        .execute("CREATE EXTENSION citus")
        .await
        .unwrap();
    sqlx::query("SELECT citus_set_coordinator_host($1, $2)")
        .bind(nodes.coordinator.get_host())
        .bind(i32::from(nodes.coordinator.get_port()))
        .execute(&mut on_coordinator)
        .await
        .unwrap();
    sqlx::query("SELECT citus_add_node($1, $2)")
        .bind(nodes.worker.get_host())
        .bind(i32::from(nodes.worker.get_port()))
        .execute(&mut on_coordinator)
        .await
        .unwrap();
    on_coordinator
        .execute(format!("ALTER DATABASE {name} SET citus.shard_count = 4").as_str())
        .await
        .unwrap();
    on_coordinator.close().await.unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(nodes.coordinator.clone().database(name))
        .await
        .unwrap();
    insightpulse_postgres::migrate::run(&pool).await.unwrap();
    pool.close().await;
    // A template takes no connections (Citus's maintenance daemon and its
    // cached connections to the worker included), so it can be copied.
    for node in [&mut *coordinator, &mut *worker] {
        node.execute(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false").as_str())
            .await
            .unwrap();
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(name)
            .execute(&mut *node)
            .await
            .unwrap();
    }
}

/// Drops the test databases of test processes that have ended.
async fn drop_orphans(coordinator: &mut PgConnection, worker: &mut PgConnection) {
    for node in [coordinator, worker] {
        for name in names_like(node, "ipcitus\\_t\\_%").await {
            let pid = name.split('_').nth(2).unwrap_or_default();
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                drop_database(node, &name).await;
            }
        }
    }
}

/// Drops every database whose name is `LIKE pattern` (older templates).
async fn drop_like(coordinator: &mut PgConnection, worker: &mut PgConnection, pattern: &str) {
    for node in [coordinator, worker] {
        for name in names_like(node, pattern).await {
            drop_database(node, &name).await;
        }
    }
}

async fn names_like(node: &mut PgConnection, pattern: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE $1")
        .bind(pattern)
        .fetch_all(node)
        .await
        .unwrap()
}

async fn drop_database(node: &mut PgConnection, name: &str) {
    node.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await
        .unwrap();
}

/// A fresh, migrated and distributed database on the cluster, and a pool
/// of its coordinator (as the superuser, like `#[sqlx::test]`'s: the SDK
/// takes its runtime roles itself). `None` when no cluster is configured.
pub async fn database() -> Option<PgPool> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nodes = nodes()?;
    let template = template(&nodes).await;
    let name = format!(
        "ipcitus_t_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    for options in [&nodes.coordinator, &nodes.worker] {
        let mut node = admin(options).await;
        node.execute(format!("CREATE DATABASE {name} TEMPLATE {template}").as_str())
            .await
            .unwrap();
        node.close().await.unwrap();
    }
    Some(
        PgPoolOptions::new()
            .max_connections(5)
            .connect_with(nodes.coordinator.clone().database(&name))
            .await
            .unwrap(),
    )
}

/// The conformance harness on a fresh Citus database.
pub async fn harness() -> Option<insightpulse_testing::conformance::Harness> {
    Some(crate::harness(database().await?).await)
}

/// The migrator distributed every table as designed: the catalogs and the
/// tables read across tenants whole on every node, every tenant table by
/// tenant and co-located, the idempotency keys by scope, the outbox left on
/// the coordinator (migration 0014 says why); every policy of a distributed
/// table is free of sub-queries; nothing was left to restore.
#[tokio::test]
async fn tables_distribute_as_designed() {
    let Some(pool) = database().await else {
        return;
    };
    let rows: Vec<(String, String, Option<String>, i32)> = sqlx::query_as(
        "SELECT c.relname::text, coalesce(d.partmethod::text, 'local'),
                CASE WHEN d.partmethod = 'h' THEN column_to_column_name(c.oid, d.partkey)::text END,
                coalesce(d.colocationid, -1)
           FROM pg_class c
           LEFT JOIN pg_dist_partition d ON d.logicalrelid = c.oid
          WHERE c.relnamespace = 'insightpulse'::regnamespace AND c.relkind IN ('r', 'p')
            AND c.relname NOT LIKE '\\_%'
          ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let reference = [
        "permissions",
        "role_permissions",
        "roles",
        "tenants",
        "token_lookups",
        "users",
    ];
    let on_coordinator = ["outbox_cursors", "outbox_events"];
    let mut by_tenant = std::collections::BTreeSet::new();
    for (table, method, column, colocation) in &rows {
        if on_coordinator.contains(&table.as_str()) {
            assert_eq!(method, "local", "{table} stays on the coordinator");
        } else if reference.contains(&table.as_str()) {
            assert_eq!(method, "n", "{table} is a reference table");
        } else if table == "idempotency_keys" {
            assert_eq!(
                (method.as_str(), column.as_deref()),
                ("h", Some("scope")),
                "{table}"
            );
        } else {
            assert_eq!(
                (method.as_str(), column.as_deref()),
                ("h", Some("tenant_id")),
                "{table} is distributed by tenant"
            );
            by_tenant.insert(*colocation);
        }
    }
    assert!(rows.len() >= 28, "{rows:?}");
    assert_eq!(by_tenant.len(), 1, "tenant tables are co-located");
    let partitions = rows
        .iter()
        .filter(|r| r.0.starts_with("audit_logs_"))
        .count();
    assert!(partitions >= 4, "the audit partitions are distributed");

    let with_subqueries: Vec<String> = sqlx::query_scalar(
        "SELECT tablename || '.' || policyname FROM pg_policies
          WHERE schemaname = 'insightpulse' AND tablename NOT LIKE 'outbox\\_%'
            AND (coalesce(qual, '') ~* 'select' OR coalesce(with_check, '') ~* 'select')",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(with_subqueries.is_empty(), "{with_subqueries:?}");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM insightpulse._citus_restore")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

/// A tenant's hot reads go to one shard (`Task Count: 1` in the plan Citus
/// makes as the member runs them, policies included).
#[tokio::test]
async fn hot_reads_route_to_one_shard() {
    use insightpulse_core::projects::NewProject;
    use insightpulse_core::{Name, Slug};
    use insightpulse_postgres::uow::Cluster;
    let Some(pool) = database().await else {
        return;
    };
    let repos = crate::harness(pool.clone()).await.repos;
    let owner = crate::user(&repos, "owner@acme.io").await;
    let (tenant, ctx) = crate::tenant(&repos, owner.id, "acme").await;
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
    let (t, p) = (tenant.id.0, project.id.0);
    for read in [
        format!("SELECT id, name FROM projects WHERE tenant_id = '{t}' AND id = '{p}'"),
        format!("SELECT id, name FROM projects WHERE tenant_id = '{t}' ORDER BY slug"),
        format!("SELECT user_id FROM org_memberships WHERE tenant_id = '{t}'"),
        format!("SELECT id FROM teams WHERE tenant_id = '{t}' ORDER BY slug"),
        format!("SELECT id, name FROM api_keys WHERE tenant_id = '{t}'"),
        format!("SELECT role_id FROM user_roles WHERE tenant_id = '{t}'"),
        format!("SELECT action FROM audit_logs WHERE tenant_id = '{t}' ORDER BY created_at DESC LIMIT 50"),
    ] {
        let mut tx = crate::acting_as_on(&pool, Cluster::Citus, &ctx).await;
        let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {read}"))
            .fetch_all(&mut *tx)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        let plan = plan.join("\n");
        assert!(plan.contains("Task Count: 1"), "{read}:\n{plan}");
    }
}

/// The isolation attack through the coordinator, on every tenant table the
/// catalog lists (as on PostgreSQL): the owner of A (every permission in A)
/// reads, changes, deletes and forges rows of B, and touches none.
#[tokio::test]
async fn no_tenant_reaches_another_tenants_rows_on_citus() {
    use crate::isolation::{attack_table, populate, tenant_tables};
    use insightpulse_core::Context;
    use insightpulse_postgres::uow::Cluster;
    let Some(pool) = database().await else {
        return;
    };
    let repos = crate::harness(pool.clone()).await.repos;
    let (a, attacker_id) = populate(&repos, "alpha").await;
    let (b, _) = populate(&repos, "bravo").await;
    let attacker = Context::user(attacker_id).in_tenant(a);
    let tables = tenant_tables(&pool).await;
    assert!(tables.len() >= 20, "{tables:?}");
    let mut leaks = vec![];
    for (table, ..) in &tables {
        leaks.extend(
            attack_table(&pool, Cluster::Citus, &attacker, attacker_id, (a, b), table).await,
        );
    }
    assert!(leaks.is_empty(), "{leaks:#?}");
}

/// A migrator stopped between the steps of the distribution (what it took
/// off the tables saved, not yet put back) is finished by the next one.
#[tokio::test]
async fn an_interrupted_distribution_is_finished_by_the_next_migrator() {
    let Some(pool) = database().await else {
        return;
    };
    let policy: String = sqlx::query_scalar(
        "SELECT format('CREATE POLICY teams_select ON insightpulse.teams AS PERMISSIVE FOR SELECT TO authenticated USING (%s)', qual)
           FROM pg_policies WHERE tablename = 'teams' AND policyname = 'teams_select'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    sqlx::raw_sql("DROP POLICY teams_select ON insightpulse.teams")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO insightpulse._citus_restore (kind, def) VALUES ('policy', $1)")
        .bind(&policy)
        .execute(&pool)
        .await
        .unwrap();
    insightpulse_postgres::migrate::run(&pool).await.unwrap();
    let (policies, left): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM pg_policies WHERE tablename = 'teams' AND policyname = 'teams_select'),
                (SELECT count(*) FROM insightpulse._citus_restore)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((policies, left), (1, 0));
}

/// A database whose outbox an earlier migrator distributed (0012 did, and
/// no event could be published there) gets it back on the coordinator:
/// local on the coordinator, gone from the worker, its position identity
/// drawing again.
#[tokio::test]
async fn a_distributed_outbox_comes_back_to_the_coordinator() {
    let Some(pool) = database().await else {
        return;
    };
    // The state before migration 0014, as 0012's distribution left it.
    sqlx::raw_sql(
        "SET citus.enable_unsafe_triggers = on;
         DROP FUNCTION insightpulse.coordinator_tables();
         DELETE FROM insightpulse._migrations WHERE version = 14;
         DROP POLICY outbox_events_select ON insightpulse.outbox_events;
         DROP POLICY outbox_events_insert ON insightpulse.outbox_events;
         DROP POLICY outbox_cursors_all ON insightpulse.outbox_cursors;
         SELECT create_distributed_table('insightpulse.outbox_events', 'tenant_id');
         SELECT create_distributed_table('insightpulse.outbox_cursors', 'tenant_id');",
    )
    .execute(&pool)
    .await
    .unwrap();
    let distributed = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE '%outbox%'",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    assert_eq!(distributed().await, 2);

    let applied = insightpulse_postgres::migrate::run(&pool).await.unwrap();
    assert_eq!(applied, [14]);
    assert_eq!(distributed().await, 0);
    let mut worker = nodes()
        .unwrap()
        .worker
        .database(pool.connect_options().get_database().unwrap())
        .connect()
        .await
        .unwrap();
    let on_worker: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_class WHERE relname LIKE 'outbox\\_%' AND relkind = 'r'",
    )
    .fetch_one(&mut worker)
    .await
    .unwrap();
    assert_eq!(on_worker, 0);
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO insightpulse.outbox_events (tenant_id, id, event_type, payload, published_at)
         VALUES (gen_random_uuid(), gen_random_uuid(), 'x.y', '{}', now()) RETURNING seq",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(seq >= 1);
}
