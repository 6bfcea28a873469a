//! What only the database can show about the audit trail: the immutability
//! trigger (even for the owner, behind the SDK's back), tampering found by
//! the verifier, partition pruning and partition maintenance.

use crate::{acting_as, acting_as_on, backend, tenant, user};
use chrono::{DateTime, TimeZone as _, Utc};
use insightpulse_core::audit::{AuditEvent, ChainBreak, ChainVerdict, Diff};
use insightpulse_core::{Context, RequestMeta, TenantId};
use insightpulse_postgres::uow::Cluster;
use insightpulse_postgres::PgBackend;
use sqlx::PgPool;

/// A tenant with `n` host-app entries (plus its `tenant.created`), written
/// from a client address so entries carry personal fields.
async fn trail(pool: &PgPool, n: usize) -> (PgBackend, TenantId, Context) {
    let (backend, _clock) = backend(pool.clone()).await;
    let repos = backend.repos();
    let owner = user(&repos, "owner@acme.io").await;
    let (t, ctx) = tenant(&repos, owner.id, "acme").await;
    let ctx = ctx.with_request(
        RequestMeta::default()
            .with_request_id("req-1")
            .with_ip("203.0.113.7".parse().unwrap())
            .with_user_agent("curl/8"),
    );
    for i in 0..n {
        let event = AuditEvent::new(
            "report.exported",
            "report",
            Some(i),
            Diff::new().set("rows", i),
        )
        .unwrap();
        repos.audit.record_event(&ctx, event).await.unwrap();
    }
    (backend, t.id, ctx)
}

async fn verdict(backend: &PgBackend, ctx: &Context) -> ChainVerdict {
    backend.repos().audit.verify_chain(ctx).await.unwrap()
}

/// Runs `sql` as the pool's login role (a superuser here, the schema owner
/// in production) and returns the SQLSTATE that refused it, if any.
async fn as_owner(pool: &PgPool, sql: &str) -> Option<String> {
    match sqlx::query(sql).execute(pool).await {
        Ok(_) => None,
        Err(sqlx::Error::Database(e)) => e.code().map(|c| c.into_owned()),
        Err(e) => panic!("{sql}: {e}"),
    }
}

#[sqlx::test(migrations = false)]
async fn no_role_can_rewrite_or_delete_the_trail(pool: PgPool) {
    attack_the_trail(&pool, Cluster::Postgres).await;
}

/// The same on Citus, where the system changes the trail with privileges
/// of its own (migration 0016) and the trigger runs on the worker.
#[tokio::test]
async fn no_role_can_rewrite_or_delete_the_trail_on_citus() {
    if let Some(pool) = crate::citus::database().await {
        attack_the_trail(&pool, Cluster::Citus).await;
    }
}

/// Every runtime role, through the SDK's opening on `cluster`, and the
/// owner are refused every change of a trail's rows; the trail is whole.
async fn attack_the_trail(pool: &PgPool, cluster: Cluster) {
    let (_backend, t, ctx) = trail(pool, 3).await;
    let statements = [
        format!("UPDATE insightpulse.audit_logs SET action = 'nothing.happened' WHERE tenant_id = '{t}'"),
        format!("UPDATE insightpulse.audit_logs SET diff = '{{}}', ip = NULL, user_agent = NULL, pii_salt = NULL WHERE tenant_id = '{t}'"),
        format!("DELETE FROM insightpulse.audit_logs WHERE tenant_id = '{t}'"),
        format!("UPDATE insightpulse.audit_chain_heads SET seq = 0 WHERE tenant_id = '{t}'"),
        "TRUNCATE insightpulse.audit_logs".to_owned(),
    ];
    // The tenant's owner, who holds audit.read, through the SDK's role
    // switch; and the system role.
    for acting in [ctx.clone(), Context::system("test")] {
        for sql in &statements {
            let mut tx = acting_as_on(pool, cluster, &acting).await;
            let refused = sqlx::query(sql).execute(&mut *tx).await;
            tx.rollback().await.unwrap();
            match refused {
                Err(sqlx::Error::Database(e)) => {
                    assert_eq!(e.code().as_deref(), Some("42501"), "{sql}: {e}")
                }
                other => panic!(
                    "{sql} as {:?} was not refused: {other:?}",
                    acting.principal()
                ),
            }
        }
    }
    // The table owner itself, on the pool's own connection: the trigger
    // refuses every change to the trail's rows.
    for sql in &statements[..3] {
        assert_eq!(as_owner(pool, sql).await.as_deref(), Some("42501"), "{sql}");
    }
    let count = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM insightpulse.audit_logs WHERE tenant_id = $1",
        )
        .bind(t.0)
        .fetch_one(pool)
        .await
        .unwrap()
    };
    assert_eq!(count().await, 4);
    if cluster == Cluster::Citus {
        // Citus truncates shards, which keep no statement trigger.
        return;
    }
    assert_eq!(
        as_owner(pool, "TRUNCATE insightpulse.audit_logs")
            .await
            .as_deref(),
        Some("42501")
    );
    for partition in ["audit_logs_default", &current_partition()] {
        assert_eq!(
            as_owner(pool, &format!("TRUNCATE insightpulse.{partition}"))
                .await
                .as_deref(),
            Some("42501"),
            "{partition}"
        );
    }
    assert_eq!(count().await, 4);
}

fn current_partition() -> String {
    format!("audit_logs_{}", Utc::now().format("%Y_%m"))
}

#[sqlx::test(migrations = false)]
async fn a_user_cannot_write_entries_in_someone_elses_name(pool: PgPool) {
    let (backend, t, ctx) = trail(&pool, 0).await;
    let other = user(&backend.repos(), "other@acme.io").await;
    let mut tx = acting_as(&pool, &ctx).await;
    let forged = sqlx::query(
        "INSERT INTO insightpulse.audit_logs (tenant_id, actor_kind, user_id, action, target_type, seq, prev_hash, hash)
         VALUES ($1, 'user', $2, 'member.removed', 'user', 0, '', '')",
    )
    .bind(t.0)
    .bind(other.id.0)
    .execute(&mut *tx)
    .await;
    tx.rollback().await.unwrap();
    assert!(
        matches!(&forged, Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42501")),
        "{forged:?}"
    );
}

/// Edits made behind the SDK's back, with the immutability trigger
/// switched off by a superuser, and what the verifier reports.
#[sqlx::test(migrations = false)]
async fn tampering_is_found_at_the_first_broken_entry(pool: PgPool) {
    let (backend, t, ctx) = trail(&pool, 6).await;
    assert_eq!(
        verdict(&backend, &ctx).await,
        ChainVerdict::Intact {
            entries: 7,
            head_seq: 7
        }
    );
    let broken = |seq, reason| ChainVerdict::Broken { seq, reason };

    // 1. An edited diff.
    tamper(
        &pool,
        t,
        &["UPDATE insightpulse.audit_logs SET diff = '{\"rows\": 999}' WHERE tenant_id = $1 AND seq = 4"],
    )
    .await;
    assert_eq!(
        verdict(&backend, &ctx).await,
        broken(4, ChainBreak::ContentChanged)
    );
    // 2. The edit re-hashed by someone who knows the algorithm: the next
    //    entry no longer links to it.
    tamper(
        &pool,
        t,
        &["UPDATE insightpulse.audit_logs a SET hash = insightpulse.audit_entry_hash(a) WHERE tenant_id = $1 AND seq = 4"],
    )
    .await;
    assert_eq!(
        verdict(&backend, &ctx).await,
        broken(5, ChainBreak::LinkBroken)
    );
}

#[sqlx::test(migrations = false)]
async fn deletions_and_personal_field_edits_are_found(pool: PgPool) {
    let broken = |seq, reason| ChainVerdict::Broken { seq, reason };
    let cases: [(&[&str], ChainVerdict); 4] = [
        (
            &["DELETE FROM insightpulse.audit_logs WHERE tenant_id = $1 AND seq = 3"],
            broken(3, ChainBreak::Missing),
        ),
        (
            &["DELETE FROM insightpulse.audit_logs WHERE tenant_id = $1 AND seq = 5"],
            broken(5, ChainBreak::HeadMismatch),
        ),
        (
            &["UPDATE insightpulse.audit_logs SET ip = '198.51.100.1' WHERE tenant_id = $1 AND seq = 2"],
            broken(2, ChainBreak::PersonalDataChanged),
        ),
        (
            // A purge done by hand: the oldest entries deleted and the anchor
            // moved, but no audit.purged entry attests it.
            &[
                "UPDATE insightpulse.audit_chain_heads SET anchor_seq = 2,
                        anchor_hash = (SELECT hash FROM insightpulse.audit_logs WHERE tenant_id = $1 AND seq = 2)
                  WHERE tenant_id = $1",
                "DELETE FROM insightpulse.audit_logs WHERE tenant_id = $1 AND seq <= 2",
            ],
            broken(2, ChainBreak::UnattestedPurge),
        ),
    ];
    for (statements, expected) in cases {
        let (backend, t, ctx) = trail_in(&pool).await;
        assert!(matches!(
            verdict(&backend, &ctx).await,
            ChainVerdict::Intact { .. }
        ));
        tamper(&pool, t, statements).await;
        assert_eq!(verdict(&backend, &ctx).await, expected, "{statements:?}");
    }
}

/// Runs `statements` (with the tenant as `$1`) as a superuser with every
/// trigger switched off.
async fn tamper(pool: &PgPool, t: TenantId, statements: &[&str]) {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .unwrap();
    for sql in statements {
        sqlx::query(sql).bind(t.0).execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
}

/// A fresh tenant (its own slug) with 5 entries.
async fn trail_in(pool: &PgPool) -> (PgBackend, TenantId, Context) {
    let (backend, _clock) = backend(pool.clone()).await;
    let repos = backend.repos();
    let slug = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let owner = user(&repos, &format!("owner@{slug}.io")).await;
    let (t, ctx) = tenant(&repos, owner.id, &slug).await;
    let ctx = ctx.with_request(
        RequestMeta::default()
            .with_ip("203.0.113.7".parse().unwrap())
            .with_user_agent("curl/8"),
    );
    for i in 0..4 {
        let event = AuditEvent::new("report.exported", "report", Some(i), Diff::new()).unwrap();
        repos.audit.record_event(&ctx, event).await.unwrap();
    }
    (backend, t.id, ctx)
}

fn utc(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
}

#[sqlx::test(migrations = false)]
async fn queries_by_tenant_and_time_touch_only_their_partitions(pool: PgPool) {
    let (backend, clock) = backend(pool.clone()).await;
    let system = Context::system("test maintenance");
    let created = backend
        .ensure_audit_partitions(&system, utc(2031, 1, 15), 11)
        .await
        .unwrap();
    assert_eq!(created.len(), 12);
    assert_eq!(created[0], "audit_logs_2031_01");
    // Idempotent.
    assert!(backend
        .ensure_audit_partitions(&system, utc(2031, 1, 15), 11)
        .await
        .unwrap()
        .is_empty());
    let user_ctx = Context::user(insightpulse_core::UserId::new());
    assert!(backend
        .ensure_audit_partitions(&user_ctx, utc(2031, 1, 1), 1)
        .await
        .is_err());

    let repos = backend.repos();
    clock.set(utc(2031, 6, 20));
    let owner = user(&repos, "owner@acme.io").await;
    let (t, ctx) = tenant(&repos, owner.id, "acme").await;
    let mut tx = acting_as(&pool, &ctx).await;
    let plan: Vec<String> = sqlx::query_scalar(&format!(
        "EXPLAIN SELECT * FROM insightpulse.audit_logs
          WHERE tenant_id = '{}' AND created_at >= '2031-06-15' AND created_at < '2031-07-10'
          ORDER BY created_at DESC LIMIT 50",
        t.id
    ))
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    let plan = plan.join("\n");
    let touched: Vec<&str> = plan
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("audit_logs_"))
        .filter(|w| !w.contains("pkey") && !w.contains("idx"))
        .collect();
    assert!(
        plan.contains("audit_logs_2031_06") && plan.contains("audit_logs_2031_07"),
        "{plan}"
    );
    for other in [
        "audit_logs_2031_05",
        "audit_logs_2031_08",
        "audit_logs_default",
    ] {
        assert!(!plan.contains(other), "{other} scanned:\n{plan}");
    }
    assert!(!touched.is_empty());
}

#[sqlx::test(migrations = false)]
async fn maintenance_moves_default_rows_into_their_new_partition(pool: PgPool) {
    let (backend, clock) = backend(pool.clone()).await;
    let repos = backend.repos();
    // Far beyond the partitions the migration created: the default partition.
    clock.set(utc(2040, 3, 10));
    let owner = user(&repos, "owner@acme.io").await;
    let (t, ctx) = tenant(&repos, owner.id, "acme").await;
    let event = AuditEvent::new("report.exported", "report", None::<String>, Diff::new()).unwrap();
    repos.audit.record_event(&ctx, event).await.unwrap();
    let where_rows = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT DISTINCT c.relname::text FROM insightpulse.audit_logs a
               JOIN pg_class c ON c.oid = a.tableoid WHERE a.tenant_id = $1",
        )
        .bind(t.id.0)
        .fetch_all(&pool)
        .await
        .unwrap()
    };
    assert_eq!(where_rows().await, vec!["audit_logs_default".to_owned()]);
    let created = backend
        .ensure_audit_partitions(&Context::system("test maintenance"), utc(2040, 3, 1), 0)
        .await
        .unwrap();
    assert_eq!(created, vec!["audit_logs_2040_03".to_owned()]);
    assert_eq!(where_rows().await, vec!["audit_logs_2040_03".to_owned()]);
    // Moved verbatim: the chain still holds, and the new partition refuses
    // changes like every other.
    assert_eq!(
        verdict(&backend, &ctx).await,
        ChainVerdict::Intact {
            entries: 2,
            head_seq: 2
        }
    );
    assert_eq!(
        as_owner(
            &pool,
            &format!(
                "DELETE FROM insightpulse.audit_logs WHERE tenant_id = '{}'",
                t.id
            )
        )
        .await
        .as_deref(),
        Some("42501")
    );
    assert_eq!(
        as_owner(&pool, "TRUNCATE insightpulse.audit_logs_2040_03")
            .await
            .as_deref(),
        Some("42501")
    );
}

/// A row of the seed's report: email, action, target type, time, ip.
type ReportRow = (
    Option<String>,
    String,
    String,
    DateTime<Utc>,
    Option<String>,
);

/// The seed's "Audit Report", verbatim (the unit of work puts the SDK's
/// schema on the search path), runs on this schema as a reader of the
/// trail and shows only that tenant's entries.
#[sqlx::test(migrations = false)]
async fn the_seeds_audit_report_query_runs_as_written(pool: PgPool) {
    let (backend, t, ctx) = trail(&pool, 2).await;
    let other = user(&backend.repos(), "other@bravo.io").await;
    tenant(&backend.repos(), other.id, "bravo").await;
    let mut tx = acting_as(&pool, &ctx).await;
    let rows: Vec<ReportRow> = sqlx::query_as(&format!(
        "SELECT
               u.email,
               al.action,
               al.target_type,
               al.created_at,
               host(al.ip)
             FROM audit_logs al
             LEFT JOIN users u ON al.user_id = u.id
             WHERE al.tenant_id = '{t}'
               AND al.created_at >= now() - interval '30 days'
             ORDER BY al.created_at DESC"
    ))
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows.iter().all(|r| r.0.as_deref() == Some("owner@acme.io")));
    assert_eq!(rows.iter().filter(|r| r.1 == "report.exported").count(), 2);
    assert_eq!(rows[0].4.as_deref(), Some("203.0.113.7"));
}
