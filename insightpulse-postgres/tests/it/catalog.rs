//! What the catalog of the migrated database must say: the seed equals
//! core's permission catalog, and the schema is Citus-ready.

use insightpulse_core::tenancy::catalog::{BUILTIN_ROLES, PERMISSIONS};
use sqlx::PgPool;
use std::collections::{BTreeMap, BTreeSet};

/// Tables that carry a nullable `tenant_id`: reference tables that also
/// hold tenant-owned rows. Everything else with a `tenant_id` is
/// distributed by it.
const REFERENCE_TABLES_WITH_TENANT_ROWS: &[&str] = &["role_permissions", "roles"];

#[sqlx::test(migrations = false)]
async fn seed_matches_the_core_catalog(pool: PgPool) {
    crate::migrated(&pool).await;
    let perms: Vec<(String, String)> =
        sqlx::query_as("SELECT code, description FROM insightpulse.permissions ORDER BY code")
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut expected: Vec<(String, String)> = PERMISSIONS
        .iter()
        .map(|(c, d)| (c.to_string(), d.to_string()))
        .collect();
    expected.sort();
    assert_eq!(perms, expected);

    let roles: Vec<(String, String, Vec<String>)> = sqlx::query_as(
        "SELECT r.name, r.scope::text,
                array(SELECT p.code FROM insightpulse.role_permissions rp JOIN insightpulse.permissions p ON p.id = rp.permission_id
                       WHERE rp.role_id = r.id ORDER BY p.code)
           FROM insightpulse.roles r WHERE r.tenant_id IS NULL ORDER BY r.name",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut expected: Vec<(String, String, Vec<String>)> = BUILTIN_ROLES
        .iter()
        .map(|r| {
            let mut codes: Vec<String> = r
                .permissions
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect();
            codes.sort();
            (r.name.to_owned(), r.scope.as_str().to_owned(), codes)
        })
        .collect();
    expected.sort();
    assert_eq!(roles, expected);
}

/// Columns of each constraint of a kind, per table.
async fn constraints(
    pool: &PgPool,
    kind: &str,
) -> Vec<(String, String, Vec<String>, Option<String>)> {
    sqlx::query_as(
        "SELECT t.relname::text, c.conname::text,
                array(SELECT a.attname::text FROM unnest(c.conkey) k JOIN pg_attribute a
                        ON a.attrelid = c.conrelid AND a.attnum = k),
                (SELECT f.relname::text FROM pg_class f WHERE f.oid = c.confrelid)
           FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
          WHERE c.contype = $1::\"char\" AND t.relnamespace = 'insightpulse'::regnamespace",
    )
    .bind(kind)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = false)]
async fn schema_is_citus_ready(pool: PgPool) {
    crate::migrated(&pool).await;
    // table -> tenant_id is NOT NULL
    let tenant_tables: BTreeMap<String, bool> = sqlx::query_as(
        "SELECT c.relname::text, a.attnotnull FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
          WHERE a.attname = 'tenant_id' AND NOT a.attisdropped AND c.relkind IN ('r', 'p')
            AND c.relnamespace = 'insightpulse'::regnamespace",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    assert!(
        tenant_tables.len() >= 11,
        "expected the tenant tables, found {tenant_tables:?}"
    );
    let nullable: BTreeSet<&str> = tenant_tables
        .iter()
        .filter(|(_, nn)| !**nn)
        .map(|(t, _)| t.as_str())
        .collect();
    assert_eq!(
        nullable,
        REFERENCE_TABLES_WITH_TENANT_ROWS.iter().copied().collect()
    );
    // Global indexes with a tenant column, kept whole on every node.
    let by_design: Vec<String> = sqlx::query_scalar(
        "SELECT t::text FROM unnest(insightpulse.reference_tables_with_tenant_ids()) t",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(by_design, ["insightpulse.token_lookups"]);
    let distributed = |t: &str| {
        tenant_tables.get(t) == Some(&true) && !by_design.contains(&format!("insightpulse.{t}"))
    };

    let mut failures = vec![];
    for table in tenant_tables.keys().filter(|t| distributed(t)) {
        let pks: Vec<_> = constraints(&pool, "p")
            .await
            .into_iter()
            .filter(|c| &c.0 == table)
            .collect();
        if pks.len() != 1 || !pks[0].2.contains(&"tenant_id".to_owned()) {
            failures.push(format!("{table}: primary key without tenant_id"));
        }
    }
    for (table, name, cols, _) in constraints(&pool, "u").await {
        if distributed(&table) && !cols.contains(&"tenant_id".to_owned()) {
            failures.push(format!("{table}.{name}: unique without tenant_id"));
        }
    }
    // Unique indexes that are not constraints count too.
    let unique_indexes: Vec<(String, String, Vec<String>)> = sqlx::query_as(
        "SELECT t.relname::text, i.relname::text,
                array(SELECT a.attname::text FROM unnest(x.indkey) k JOIN pg_attribute a
                        ON a.attrelid = x.indrelid AND a.attnum = k)
           FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid
          WHERE x.indisunique AND t.relnamespace = 'insightpulse'::regnamespace",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for (table, index, cols) in unique_indexes {
        if distributed(&table) && !cols.contains(&"tenant_id".to_owned()) {
            failures.push(format!("{table}: unique index {index} without tenant_id"));
        }
    }
    let mut checked_fks = 0;
    for (table, name, cols, target) in constraints(&pool, "f").await {
        let target = target.unwrap();
        if distributed(&table) && distributed(&target) {
            checked_fks += 1;
            if cols.first().map(String::as_str) != Some("tenant_id") {
                failures.push(format!(
                    "{table}.{name} -> {target}: foreign key not led by tenant_id"
                ));
            }
        }
    }
    assert!(
        checked_fks >= 8,
        "expected the co-located foreign keys, checked {checked_fks}"
    );
    assert!(
        failures.is_empty(),
        "not Citus-ready:\n{}",
        failures.join("\n")
    );
}

#[sqlx::test(migrations = false)]
async fn tenant_policies_run_the_helper_once_as_an_initplan(pool: PgPool) {
    let repos = crate::harness(pool.clone()).await.repos;
    let owner = crate::user(&repos, "owner@a.io").await;
    let (t, ctx) = crate::tenant(&repos, owner.id, "acme").await;
    let mut tx = crate::acting_as(&pool, &ctx).await;
    let plan: Vec<String> = sqlx::query_scalar(&format!(
        "EXPLAIN SELECT * FROM insightpulse.projects WHERE tenant_id = '{}'",
        t.id
    ))
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    let plan = plan.join("\n");
    assert!(plan.contains("InitPlan"), "no InitPlan in:\n{plan}");
}
