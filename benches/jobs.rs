//! What the job queue costs: claim + complete throughput, measured against
//! a baseline in the same run.
//!
//! ```text
//! cargo bench --bench jobs        # DATABASE_URL defaults to the local cluster
//! ```
//!
//! Each case drains a backlog of jobs through `claim_jobs` +
//! `complete_jobs` from 4 concurrent claimers (a 4-connection pool), and
//! reports jobs per second:
//!
//! - **batched** (batches of 100) and **unbatched** (1 per claim);
//! - **with a per-tenant limit** (10,000, which never binds: what the
//!   limit's machinery costs — one advisory lock per tenant and a count of
//!   its running jobs) and without;
//! - against the **baseline**: the same drain with the plainest correct
//!   queue on the same table, sent by raw sqlx as the superuser (no RLS, no
//!   role switch, no fairness, no lease recovery): one
//!   `UPDATE … WHERE (tenant_id, id) IN (SELECT … ORDER BY priority, run_at
//!   LIMIT n FOR UPDATE SKIP LOCKED) RETURNING …` (on an index of its own
//!   for that order, present only while it runs) and one `UPDATE … FROM
//!   unnest(…)`, prepared, committing asynchronously as the SDK's worker
//!   calls do.
//!
//! The backlog is spread over 100 tenants. The database
//! `insightpulse_bench_jobs` is made afresh on every run. Goals: ≥ 20,000
//! jobs/s batched; the per-tenant limit costing < 2×. graphile-worker
//! publishes ~15,600 jobs/s unbatched and ~184,000/s batched on a large
//! machine; this one has 2 cores shared with the client.

mod common;

use common::{bench_database, pool};
use insightpulse_core::jobs::{ClaimRequest, JobKind, JobRepo};
use insightpulse_core::tenancy::passwords::PasswordCost;
use insightpulse_core::tenancy::tokens::TokenHasher;
use insightpulse_core::tenancy::{NewTenant, NewUser};
use insightpulse_core::{Context, Email, Name, Slug, TimeZone};
use insightpulse_postgres::PgBackend;
use sqlx::PgPool;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

const DB: &str = "insightpulse_bench_jobs";
const TENANTS: usize = 100;
const CLAIMERS: usize = 4;

async fn seed(pool: &PgPool, jobs: usize) {
    sqlx::query("DELETE FROM jobs").execute(pool).await.unwrap();
    sqlx::query(
        "INSERT INTO jobs (tenant_id, kind, payload, max_attempts, run_at, created_at, updated_at)
         SELECT t.id, 'bench', jsonb_build_object('n', g), 5,
                now() - interval '1 hour' + g * interval '1 microsecond', now(), now()
           FROM generate_series(1, $1) g
           JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS i FROM tenants) t
             ON t.i = g % $2",
    )
    .bind(i64::try_from(jobs).unwrap())
    .bind(i64::try_from(TENANTS).unwrap())
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("VACUUM ANALYZE jobs")
        .execute(pool)
        .await
        .unwrap();
}

/// Drains the backlog through the SDK; jobs per second. A claimer that
/// finds nothing (the others hold the rest) tries again until the whole
/// backlog is done.
async fn drain_sdk(
    repo: Arc<dyn JobRepo>,
    batch: u32,
    tenant_limit: Option<u32>,
    total: usize,
) -> f64 {
    let started = Instant::now();
    let finished = Arc::new(AtomicUsize::new(0));
    let mut claimers = Vec::new();
    for c in 0..CLAIMERS {
        let repo = repo.clone();
        let finished = finished.clone();
        claimers.push(tokio::spawn(async move {
            let ctx = Context::system("bench");
            let mut req = ClaimRequest::new(
                JobKind::parse("bench").unwrap(),
                format!("bench-{c}"),
                batch,
                chrono::Duration::seconds(300),
            );
            req.per_tenant_limit = tenant_limit;
            let mut done = 0usize;
            while finished.load(Ordering::Relaxed) < total {
                let jobs = repo.claim_jobs(&ctx, &req).await.unwrap();
                if jobs.is_empty() {
                    tokio::task::yield_now().await;
                    continue;
                }
                let leases: Vec<_> = jobs.iter().map(|j| j.lease()).collect();
                let n = repo.complete_jobs(&ctx, &leases).await.unwrap() as usize;
                done += n;
                finished.fetch_add(n, Ordering::Relaxed);
            }
            done
        }));
    }
    let mut done = 0;
    for c in claimers {
        done += c.await.unwrap();
    }
    assert_eq!(done, total, "every job once");
    total as f64 / started.elapsed().as_secs_f64()
}

/// Drains the backlog with the plainest correct queue; jobs per second.
async fn drain_raw(pool: PgPool, batch: u32, total: usize) -> f64 {
    // The baseline's own index (its order is not the SDK's), made before
    // the clock starts and dropped after, so the SDK never maintains it.
    sqlx::query(
        "CREATE INDEX IF NOT EXISTS bench_raw_ready ON jobs (kind, priority, run_at)
          WHERE state = 'pending'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let started = Instant::now();
    let finished = Arc::new(AtomicUsize::new(0));
    let mut claimers = Vec::new();
    for c in 0..CLAIMERS {
        let pool = pool.clone();
        let finished = finished.clone();
        claimers.push(tokio::spawn(async move {
            let mut done = 0usize;
            while finished.load(Ordering::Relaxed) < total {
                let rows: Vec<(Uuid, Uuid, i32)> = sqlx::query_as(
                    "UPDATE jobs j SET state = 'running', attempts = j.attempts + 1,
                            lease_until = now() + interval '5 minutes', locked_by = $2, updated_at = now()
                      WHERE (j.tenant_id, j.id) IN (
                            SELECT tenant_id, id FROM jobs
                             WHERE kind = 'bench' AND state = 'pending' AND run_at <= now()
                             ORDER BY priority, run_at
                             LIMIT $1 FOR UPDATE SKIP LOCKED)
                     RETURNING j.tenant_id, j.id, j.attempts",
                )
                .bind(i64::from(batch))
                .bind(format!("raw-{c}"))
                .fetch_all(&pool)
                .await
                .unwrap();
                if rows.is_empty() {
                    tokio::task::yield_now().await;
                    continue;
                }
                let tenants: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
                let ids: Vec<Uuid> = rows.iter().map(|r| r.1).collect();
                let attempts: Vec<i32> = rows.iter().map(|r| r.2).collect();
                let n = sqlx::query(
                    "UPDATE jobs j SET state = 'completed', finished_at = now(), updated_at = now(),
                            lease_until = NULL
                       FROM unnest($1::uuid[], $2::uuid[], $3::int[]) AS l(tenant_id, id, attempt)
                      WHERE j.tenant_id = l.tenant_id AND j.id = l.id AND j.attempts = l.attempt
                        AND j.state = 'running'",
                )
                .bind(&tenants)
                .bind(&ids)
                .bind(&attempts)
                .execute(&pool)
                .await
                .unwrap()
                .rows_affected() as usize;
                done += n;
                finished.fetch_add(n, Ordering::Relaxed);
            }
            done
        }));
    }
    let mut done = 0;
    for c in claimers {
        done += c.await.unwrap();
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    assert_eq!(done, total, "every job once");
    sqlx::query("DROP INDEX bench_raw_ready")
        .execute(&pool)
        .await
        .unwrap();
    rate
}

#[tokio::main]
async fn main() {
    let url = bench_database(&common::admin_url(), DB, "SELECT false").await;
    let pool = pool(&url, CLAIMERS as u32).await;
    // The baseline commits asynchronously too, as the SDK's worker calls do.
    let raw_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(CLAIMERS as u32)
        .connect_with(
            url.parse::<sqlx::postgres::PgConnectOptions>()
                .unwrap()
                .options([
                    ("search_path", "insightpulse"),
                    ("synchronous_commit", "off"),
                ]),
        )
        .await
        .unwrap();
    let backend = PgBackend::from_pool(pool.clone(), TokenHasher::insecure_development())
        .with_password_cost(PasswordCost::InsecureFastForTests);
    backend.migrate().await.unwrap();
    let repos = backend.repos();
    for i in 0..TENANTS {
        let owner = repos
            .users
            .create_user(
                &Context::system("bench"),
                NewUser {
                    email: Email::parse(&format!("owner@t{i}.io")).unwrap(),
                    full_name: None,
                },
            )
            .await
            .unwrap();
        repos
            .tenants
            .create_tenant(
                &Context::user(owner.id),
                NewTenant {
                    slug: Slug::parse(&format!("t{i}")).unwrap(),
                    name: Name::parse("t").unwrap(),
                    timezone: TimeZone::parse("UTC").unwrap(),
                },
            )
            .await
            .unwrap();
    }

    println!(
        "jobs: claim + complete, {CLAIMERS} concurrent claimers, backlog over {TENANTS} tenants"
    );
    for (label, batch, total) in [
        ("batched (100/claim)", 100u32, 60_000usize),
        ("unbatched (1/claim)", 1, 6_000),
    ] {
        // Two rounds, alternating, so warm-up and drift hit every side alike.
        let mut best = [0f64; 3];
        for _ in 0..2 {
            seed(&pool, total).await;
            best[0] = best[0].max(drain_raw(raw_pool.clone(), batch, total).await);
            seed(&pool, total).await;
            best[1] = best[1].max(drain_sdk(repos.jobs.clone(), batch, None, total).await);
            seed(&pool, total).await;
            best[2] = best[2].max(drain_sdk(repos.jobs.clone(), batch, Some(10_000), total).await);
        }
        let [raw, sdk, limited] = best;
        println!(
            "{label:<22} baseline {raw:>9.0} jobs/s | SDK {sdk:>9.0} jobs/s ({:.2}× baseline) | SDK + per-tenant limit {limited:>9.0} jobs/s ({:.2}× the SDK's cost)",
            sdk / raw,
            sdk / limited,
        );
    }
    println!("goals: ≥ 20,000 jobs/s batched; the per-tenant limit < 2× (River's ~2×)");
}
