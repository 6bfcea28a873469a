//! The job queue on PostgreSQL (core module [`insightpulse_core::jobs`];
//! schema, claim and enqueue functions in `migrations/0009_jobs.sql`).
//!
//! Rules guarded here: modules enqueue with [`enqueue_in`] inside their own
//! [`Tx`], so their row and its job commit or roll back together (and the
//! `NOTIFY` that wakes workers is sent only on commit). Worker calls are
//! the system's and each is **one round trip**: `BEGIN`, the role, the
//! statement and `COMMIT` in one simple-query message (values are typed
//! ids, numbers, instants and validated labels, each quoted with
//! [`quote_literal`]); the claim itself is one call of the
//! `insightpulse.claim_jobs` function, whose plans PL/pgSQL caches per
//! connection. Idle workers wait on `LISTEN insightpulse_jobs`
//! ([`PgJobWaker`]).
//!
//! Claims, completions, failures and releases commit without waiting for
//! the WAL flush (`SET LOCAL synchronous_commit = off`): a crash of the
//! database server may forget the last fraction of a second of them, and
//! at-least-once delivery already covers that (a forgotten claim or
//! completion makes the job run again). An enqueue commits with its
//! caller's transaction, a cancellation and a purge durably.

use crate::error::{db, not_found};
use crate::guard::{may_list, require_row};
use crate::privacy::{Batch, Retention};
use crate::rows::{parse, row};
use crate::uow::traced;
use crate::uow::{act_as, quote_literal, Cluster, Tx};
use crate::PgBackend;
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use insightpulse_core::jobs::{
    retried, validate_lease, CancelFilter, ClaimRequest, Enqueued, Failure, Job, JobKey, JobKind,
    JobPage, JobQuery, JobRepo, JobWaker, Lease, NewJob,
};
use insightpulse_core::{Context, Entity, Error, JobId, PermissionCode, Result, TenantId};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgListener, PgRow};
use sqlx::{Executor, FromRow, Postgres, Row};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// The channel `insightpulse.enqueue_job` notifies (payload: the kind).
pub const CHANNEL: &str = "insightpulse_jobs";

row! {
    struct JobRow {
        tenant_id: uuid::Uuid,
        id: uuid::Uuid,
        kind: String,
        payload: serde_json::Value,
        job_key: Option<String>,
        priority: i16,
        #[sql = "state::text"]
        state: String,
        attempts: i32,
        max_attempts: i32,
        run_at: DateTime<Utc>,
        lease_until: Option<DateTime<Utc>>,
        locked_by: Option<String>,
        last_error: Option<String>,
        created_at: DateTime<Utc>,
        finished_at: Option<DateTime<Utc>>,
    }
}

impl TryFrom<JobRow> for Job {
    type Error = Error;
    fn try_from(r: JobRow) -> Result<Self> {
        let count = |n: i32| u32::try_from(n).map_err(crate::error::corrupt);
        Ok(Job {
            id: JobId(r.id),
            tenant_id: TenantId(r.tenant_id),
            kind: parse(&r.kind, JobKind::parse)?,
            payload: r.payload,
            key: r
                .job_key
                .as_deref()
                .map(|k| parse(k, JobKey::parse))
                .transpose()?,
            priority: r.priority,
            state: parse(&r.state, str::parse)?,
            attempts: count(r.attempts)?,
            max_attempts: count(r.max_attempts)?,
            run_at: r.run_at,
            lease_until: r.lease_until,
            locked_by: r.locked_by,
            last_error: r.last_error,
            created_at: r.created_at,
            finished_at: r.finished_at,
        })
    }
}

const JOB_COLS: &str = JobRow::COLUMNS;

/// A job from a raw row (the one-trip statements return raw rows).
fn job_of(row: &PgRow) -> Result<Job> {
    JobRow::from_row(row).map_err(db)?.try_into()
}

/// Enqueues `job` for `tenant` inside the caller's unit of work: it commits
/// or rolls back with the caller's own rows, and wakes workers only if it
/// commits. The caller has checked its own permission; the database admits
/// the system and members of `tenant` (others: `PermissionDenied`).
pub(crate) async fn enqueue_in(
    tx: &mut Tx,
    tenant: TenantId,
    job: &NewJob,
    now: DateTime<Utc>,
) -> Result<Enqueued> {
    job.validate()?;
    let (key, mode) = match &job.key {
        Some((k, m)) => (Some(k.as_str()), Some(m.as_str())),
        None => (None, None),
    };
    let (id, outcome): (uuid::Uuid, String) = tx.query_as(
        "SELECT job_id, outcome FROM insightpulse.enqueue_job($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(tenant.0)
    .bind(job.kind.as_str())
    .bind(&job.payload)
    .bind(key)
    .bind(mode)
    .bind(job.priority)
    .bind(job.run_at.unwrap_or(now))
    .bind(i32::try_from(job.max_attempts).unwrap_or(i32::MAX))
    .bind(now)
    .fetch_one(&mut **tx)
    .await
    .map_err(db)?;
    let id = JobId(id);
    match outcome.as_str() {
        "created" => Ok(Enqueued::Created(id)),
        "replaced" => Ok(Enqueued::Replaced(id)),
        "deduplicated" => Ok(Enqueued::Deduplicated(id)),
        other => Err(crate::error::corrupt(other)),
    }
}

/// Retention of `run.tenant`'s finished jobs (privacy's hook): delete-only,
/// oldest first, a batch at a time.
pub(crate) async fn retire_jobs(tx: &mut Tx, run: &Retention<'_>) -> Result<Batch> {
    let deleted = tx
        .query(
            "DELETE FROM jobs j
              USING (SELECT id FROM jobs
                      WHERE tenant_id = $1 AND finished_at < $2
                      ORDER BY finished_at, id LIMIT $3) AS d
              WHERE j.tenant_id = $1 AND j.id = d.id",
        )
        .bind(run.tenant.0)
        .bind(run.cutoff)
        .bind(run.limit)
        .execute(&mut **tx)
        .await
        .map_err(db)?
        .rows_affected();
    Ok(Batch {
        deleted,
        ..Batch::default()
    })
}

/// `'…'::timestamptz` for an instant.
fn ts(t: DateTime<Utc>) -> String {
    format!(
        "'{}'::timestamptz",
        t.to_rfc3339_opts(SecondsFormat::Micros, true)
    )
}

/// `'{…}'::uuid[]` for ids.
fn uuids(ids: impl Iterator<Item = uuid::Uuid>) -> String {
    let ids: Vec<String> = ids.map(|u| u.to_string()).collect();
    format!("'{{{}}}'::uuid[]", ids.join(","))
}

/// The three arrays of a set of leases, for `unnest(tenants, ids, attempts)`.
fn lease_arrays(leases: impl Iterator<Item = Lease> + Clone) -> String {
    let attempts: Vec<String> = leases.clone().map(|l| l.attempt.to_string()).collect();
    format!(
        "{}, {}, '{{{}}}'::int[]",
        uuids(leases.clone().map(|l| l.tenant_id.0)),
        uuids(leases.map(|l| l.id.0)),
        attempts.join(",")
    )
}

/// Closes the connection unless the one-trip transaction finished (a
/// future dropped half-way must not hand an open transaction on).
struct Guard {
    conn: PoolConnection<Postgres>,
    finished: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.finished {
            self.conn.close_on_drop();
        }
    }
}

impl PgBackend {
    /// Runs `statement` (values inlined as literals) as `ctx` in one
    /// message: `BEGIN`, role and claims, the statement, `COMMIT`.
    /// A worker call (`durable` false) commits asynchronously (see the
    /// module docs).
    async fn one_trip(&self, ctx: &Context, durable: bool, statement: &str) -> Result<Vec<PgRow>> {
        let settings: &[(&str, &str)] = if durable {
            &[]
        } else {
            &[("synchronous_commit", "off")]
        };
        let sql = format!(
            "BEGIN; {}; {statement}; COMMIT",
            act_as(self.cluster().await?, ctx, settings)
        );
        let mut guard = Guard {
            conn: self.pool.acquire().await.map_err(db)?,
            finished: false,
        };
        let conn: &mut sqlx::PgConnection = &mut guard.conn;
        match conn.fetch_all(sql.as_str()).await {
            Ok(rows) => {
                guard.finished = true;
                Ok(rows)
            }
            Err(e) => {
                // The message stopped at the error inside an open transaction.
                if conn.execute("ROLLBACK").await.is_ok() {
                    guard.finished = true;
                }
                Err(db(e))
            }
        }
    }

    /// Updates, with `set`, the jobs still held by `leases` (running, and in
    /// the attempt that claimed them); returns how many were.
    async fn update_held(&self, ctx: &Context, leases: &[Lease], set: &str) -> Result<u64> {
        let sql = format!(
            "WITH u AS (
               UPDATE jobs j SET {set}
                 FROM unnest({}) AS l(tenant_id, id, attempt)
                WHERE j.tenant_id = l.tenant_id AND j.id = l.id AND j.attempts = l.attempt
                  AND j.state = 'running'
               RETURNING 1)
             SELECT count(*) FROM u",
            lease_arrays(leases.iter().copied())
        );
        self.count_trip(ctx, false, &sql).await
    }

    /// The count a `WITH u AS (… RETURNING 1) SELECT count(*) FROM u` gives.
    async fn count_trip(&self, ctx: &Context, durable: bool, statement: &str) -> Result<u64> {
        let rows = self.one_trip(ctx, durable, statement).await?;
        let n: i64 = rows
            .first()
            .ok_or_else(|| crate::error::corrupt("no count"))?
            .try_get(0)
            .map_err(db)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// A wake-up for this backend's workers: one `LISTEN` connection, held
    /// until the waker is dropped.
    pub async fn job_waker(&self) -> Result<PgJobWaker> {
        let mut listener = PgListener::connect_with(self.listener_pool())
            .await
            .map_err(db)?;
        listener.listen(CHANNEL).await.map_err(db)?;
        let kinds: Arc<Mutex<HashMap<String, Arc<Notify>>>> = Arc::default();
        let notified = kinds.clone();
        let task = tokio::spawn(async move {
            // `recv` reconnects by itself after a lost connection.
            while let Ok(n) = listener.recv().await {
                let target = lock(&notified).get(n.payload()).cloned();
                if let Some(notify) = target {
                    notify.notify_waiters();
                }
            }
        });
        Ok(PgJobWaker { kinds, task })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Wakes idle workers when a job of their kind is enqueued (`LISTEN
/// insightpulse_jobs`). A notification sent while no worker waits is not
/// kept: workers also poll (see `WorkerConfig::poll_interval`).
#[derive(Debug)]
pub struct PgJobWaker {
    kinds: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PgJobWaker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[async_trait]
impl JobWaker for PgJobWaker {
    async fn wait(&self, kind: &JobKind, timeout: std::time::Duration) {
        let notify = lock(&self.kinds)
            .entry(kind.as_str().to_owned())
            .or_default()
            .clone();
        let _ = tokio::time::timeout(timeout, notify.notified()).await;
    }
}

#[async_trait]
impl JobRepo for PgBackend {
    async fn enqueue_job(&self, ctx: &Context, job: NewJob) -> Result<Enqueued> {
        traced!(ctx, "JobRepo.enqueue_job", {
            ctx.require_system()?;
            let t = ctx.require_tenant()?;
            job.validate()?;
            let mut tx = self.begin(ctx).await?;
            let out = enqueue_in(&mut tx, t, &job, self.clock.now()).await?;
            tx.commit().await.map_err(db)?;
            Ok(out)
        })
    }

    async fn get_job(&self, ctx: &Context, id: JobId) -> Result<Job> {
        traced!(ctx, "JobRepo.get_job", {
            let t = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            require_row(&mut tx, ctx, t, Some(PermissionCode::JOB_READ), Entity::Job).await?;
            let row = tx
                .query(&format!(
                    "SELECT {JOB_COLS} FROM jobs WHERE tenant_id = $1 AND id = $2"
                ))
                .bind(t.0)
                .bind(id.0)
                .fetch_one(&mut *tx)
                .await
                .map_err(not_found(Entity::Job))?;
            let job = job_of(&row)?;
            tx.commit().await.map_err(db)?;
            Ok(job)
        })
    }

    async fn list_jobs(&self, ctx: &Context, q: &JobQuery) -> Result<JobPage> {
        traced!(ctx, "JobRepo.list_jobs", {
            let t = ctx.require_tenant()?;
            q.validate()?;
            let mut tx = self.begin(ctx).await?;
            if !may_list(&mut tx, ctx, t, PermissionCode::JOB_READ).await? {
                return Ok(JobPage::of(Vec::new(), q.limit));
            }
            // The tenant's jobs come from the primary key's tenant prefix
            // and are sorted for the page. No index orders them by creation:
            // one would add an entry to every claim, completion and failure
            // (none of them is a HOT update) for an operator's call.
            // Measured, 100,000 jobs of one tenant on a loaded machine:
            // ~120 ms a page unfiltered, ~50 ms for its dead jobs; with
            // (tenant_id, created_at DESC, id DESC) 3–30 ms.
            let rows = tx
                .query(&format!(
                    "SELECT {JOB_COLS} FROM jobs
                      WHERE tenant_id = $1
                        AND ($2::job_state IS NULL OR state = $2::job_state)
                        AND ($3::text IS NULL OR kind = $3)
                        AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5))
                      ORDER BY created_at DESC, id DESC
                      LIMIT $6"
                ))
                .bind(t.0)
                .bind(q.state.map(|s| s.as_str()))
                .bind(q.kind.as_ref().map(|k| k.as_str()))
                .bind(q.after.map(|c| c.created_at()))
                .bind(q.after.map(|c| c.id.0))
                .bind(i64::from(q.limit) + 1)
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            let jobs = rows.iter().map(job_of).collect::<Result<Vec<_>>>()?;
            Ok(JobPage::of(jobs, q.limit))
        })
    }

    async fn claim_jobs(&self, ctx: &Context, req: &ClaimRequest) -> Result<Vec<Job>> {
        traced!(ctx, "JobRepo.claim_jobs", {
            ctx.require_system()?;
            req.validate()?;
            let now = self.clock.now();
            let statement = format!(
                "SELECT {JOB_COLS} FROM insightpulse.{}({}, {}, {}, {}, {}, {})",
                match self.cluster().await? {
                    Cluster::Postgres => "claim_jobs",
                    Cluster::Citus => "claim_jobs_citus",
                },
                quote_literal(req.kind.as_str()),
                quote_literal(&req.worker),
                req.limit,
                req.per_tenant_limit
                    .map_or("NULL".to_owned(), |n| n.to_string()),
                ts(now),
                ts(now + req.lease),
            );
            let rows = self.one_trip(ctx, false, &statement).await?;
            rows.iter().map(job_of).collect()
        })
    }

    async fn complete_jobs(&self, ctx: &Context, leases: &[Lease]) -> Result<u64> {
        traced!(ctx, "JobRepo.complete_jobs", {
            ctx.require_system()?;
            if leases.is_empty() {
                return Ok(0);
            }
            let now = ts(self.clock.now());
            self.update_held(ctx, leases, &format!("state = 'completed', finished_at = {now}, updated_at = {now}, lease_until = NULL"))
                .await
        })
    }

    async fn fail_jobs(&self, ctx: &Context, failures: &[Failure]) -> Result<u64> {
        traced!(ctx, "JobRepo.fail_jobs", {
            ctx.require_system()?;
            if failures.is_empty() {
                return Ok(0);
            }
            let now = self.clock.now();
            let errors: Vec<String> = failures
                .iter()
                .map(|f| quote_literal(&insightpulse_core::jobs::stored_error(&f.error)))
                .collect();
            let retry_at: Vec<String> = failures
                .iter()
                .map(|f| ts(now + f.retry_in.max(chrono::Duration::zero())))
                .collect();
            let now = ts(now);
            self.count_trip(
                ctx,
                false,
                &format!(
                    "WITH u AS (
                       UPDATE jobs j
                          SET state = CASE WHEN j.attempts >= j.max_attempts THEN 'dead'::job_state
                                           ELSE 'pending'::job_state END,
                              finished_at = CASE WHEN j.attempts >= j.max_attempts THEN {now} END,
                              run_at = CASE WHEN j.attempts >= j.max_attempts THEN j.run_at
                                            ELSE l.retry_at END,
                              last_error = l.error, lease_until = NULL, locked_by = NULL,
                              updated_at = {now}
                         FROM unnest({}, ARRAY[{}]::text[], ARRAY[{}]::timestamptz[])
                              AS l(tenant_id, id, attempt, error, retry_at)
                        WHERE j.tenant_id = l.tenant_id AND j.id = l.id AND j.attempts = l.attempt
                          AND j.state = 'running'
                       RETURNING 1)
                     SELECT count(*) FROM u",
                    lease_arrays(failures.iter().map(|f| f.lease)),
                    errors.join(","),
                    retry_at.join(",")
                ),
            )
            .await
        })
    }

    async fn extend_leases(
        &self,
        ctx: &Context,
        leases: &[Lease],
        lease: chrono::Duration,
    ) -> Result<u64> {
        traced!(ctx, "JobRepo.extend_leases", {
            ctx.require_system()?;
            validate_lease(lease)?;
            if leases.is_empty() {
                return Ok(0);
            }
            let now = self.clock.now();
            let (until, now) = (ts(now + lease), ts(now));
            let set = format!("lease_until = greatest(j.lease_until, {until}), updated_at = {now}");
            self.update_held(ctx, leases, &set).await
        })
    }

    async fn release_jobs(&self, ctx: &Context, leases: &[Lease]) -> Result<u64> {
        traced!(ctx, "JobRepo.release_jobs", {
            ctx.require_system()?;
            if leases.is_empty() {
                return Ok(0);
            }
            let now = ts(self.clock.now());
            self.update_held(ctx, leases, &format!("state = 'pending', attempts = j.attempts - 1, run_at = {now}, lease_until = NULL, locked_by = NULL, updated_at = {now}"))
                .await
        })
    }

    async fn cancel_jobs(&self, ctx: &Context, filter: &CancelFilter) -> Result<u64> {
        traced!(ctx, "JobRepo.cancel_jobs", {
            ctx.require_system()?;
            filter.validate()?;
            let mut conditions = vec!["state = 'pending'".to_owned()];
            if let Some(kind) = &filter.kind {
                conditions.push(format!("kind = {}", quote_literal(kind.as_str())));
            }
            if let Some(t) = filter.tenant {
                conditions.push(format!("tenant_id = '{t}'::uuid"));
            }
            if let Some(key) = &filter.key {
                conditions.push(format!("job_key = {}", quote_literal(key.as_str())));
            }
            let now = ts(self.clock.now());
            self.count_trip(
                ctx,
                true,
                &format!(
                    "WITH u AS (
                       UPDATE jobs SET state = 'cancelled', finished_at = {now}, updated_at = {now}
                        WHERE {}
                       RETURNING 1)
                     SELECT count(*) FROM u",
                    conditions.join(" AND ")
                ),
            )
            .await
        })
    }

    async fn retry_job(&self, ctx: &Context, id: JobId) -> Result<Job> {
        traced!(ctx, "JobRepo.retry_job", {
            ctx.require_system()?;
            let t = ctx.require_tenant()?;
            let now = self.clock.now();
            let mut tx = self.begin(ctx).await?;
            let row = tx
                .query(&format!(
                    "SELECT {JOB_COLS} FROM jobs WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
                ))
                .bind(t.0)
                .bind(id.0)
                .fetch_one(&mut *tx)
                .await
                .map_err(not_found(Entity::Job))?;
            let current = job_of(&row)?;
            // What changes is core's rule, applied here as memory applies it.
            let Some(job) = retried(&current, now) else {
                tx.commit().await.map_err(db)?;
                return Ok(current);
            };
            let row = tx
                .query(&format!(
                    "WITH r AS (
                     UPDATE jobs j
                        SET state = 'pending', run_at = $3, max_attempts = $4,
                            finished_at = NULL, lease_until = NULL, locked_by = NULL,
                            updated_at = $5,
                            job_key = CASE WHEN EXISTS (
                                          SELECT 1 FROM jobs o
                                           WHERE o.tenant_id = j.tenant_id AND o.kind = j.kind
                                             AND o.job_key = j.job_key AND o.id <> j.id
                                             AND o.state IN ('pending', 'running'))
                                      THEN NULL ELSE j.job_key END
                      WHERE j.tenant_id = $1 AND j.id = $2
                      RETURNING {})
                     SELECT {JOB_COLS} FROM r",
                    JobRow::FIELDS
                ))
                .bind(t.0)
                .bind(id.0)
                .bind(job.run_at)
                .bind(i32::try_from(job.max_attempts).unwrap_or(i32::MAX))
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
            let job = job_of(&row)?;
            // Wakes the kind's workers on commit, sent with the COMMIT.
            tx.queue(format!(
                "SELECT pg_notify({}, {})",
                quote_literal(CHANNEL),
                quote_literal(job.kind.as_str())
            ));
            tx.commit().await.map_err(db)?;
            Ok(job)
        })
    }

    async fn purge_jobs(&self, ctx: &Context, cutoff: DateTime<Utc>, limit: u32) -> Result<u64> {
        traced!(ctx, "JobRepo.purge_jobs", {
            ctx.require_system()?;
            if limit == 0 {
                return Err(Error::validation("limit", "must be positive"));
            }
            self.count_trip(
                ctx,
                true,
                &format!(
                    "WITH u AS (
                       DELETE FROM jobs j
                        USING (SELECT tenant_id, id FROM jobs
                                WHERE state IN ('completed', 'dead', 'cancelled')
                                  AND finished_at < {}
                                LIMIT {limit}) d
                        WHERE j.tenant_id = d.tenant_id AND j.id = d.id
                       RETURNING 1)
                     SELECT count(*) FROM u",
                    ts(cutoff)
                ),
            )
            .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use insightpulse_core::tenancy::tokens::TokenHasher;
    use insightpulse_core::tenancy::{NewTenant, NewUser};
    use insightpulse_core::{Email, Name, Slug, TimeZone};
    use sqlx::PgPool;

    /// A module's row and its job commit or roll back together: a
    /// transaction rolled back after `enqueue_in` leaves no job, a
    /// committed one leaves it; a member enqueues into their own tenant
    /// only.
    #[sqlx::test(migrations = false)]
    async fn enqueue_in_follows_the_callers_transaction(pool: PgPool) {
        let backend = PgBackend::from_pool(pool.clone(), TokenHasher::insecure_development());
        backend.migrate().await.unwrap();
        let repos = backend.repos();
        let owner = repos
            .users
            .create_user(
                &Context::system("test"),
                NewUser {
                    email: Email::parse("o@acme.io").unwrap(),
                    full_name: None,
                },
            )
            .await
            .unwrap();
        let new_tenant = |slug: &str| NewTenant {
            slug: Slug::parse(slug).unwrap(),
            name: Name::parse(slug).unwrap(),
            timezone: TimeZone::parse("UTC").unwrap(),
        };
        let acme = repos
            .tenants
            .create_tenant(&Context::user(owner.id), new_tenant("acme"))
            .await
            .unwrap();
        let stranger = repos
            .users
            .create_user(
                &Context::system("test"),
                NewUser {
                    email: Email::parse("s@other.io").unwrap(),
                    full_name: None,
                },
            )
            .await
            .unwrap();
        let other = repos
            .tenants
            .create_tenant(&Context::user(stranger.id), new_tenant("other"))
            .await
            .unwrap();
        let ctx = Context::user(owner.id).in_tenant(acme.id);
        let job = NewJob::new(
            JobKind::parse("ocr.run").unwrap(),
            serde_json::json!({"doc": 1}),
        );
        let count = || async {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM insightpulse.jobs")
                .fetch_one(&pool)
                .await
                .unwrap()
        };

        let mut tx = backend.begin(&ctx).await.unwrap();
        enqueue_in(&mut tx, acme.id, &job, Utc::now())
            .await
            .unwrap();
        drop(tx); // rolled back
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(count().await, 0);

        let mut tx = backend.begin(&ctx).await.unwrap();
        let id = enqueue_in(&mut tx, acme.id, &job, Utc::now())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(count().await, 1);
        let sys = Context::system("test").in_tenant(acme.id);
        assert_eq!(
            repos.jobs.get_job(&sys, id.id()).await.unwrap().tenant_id,
            acme.id
        );

        let mut tx = backend.begin(&ctx).await.unwrap();
        let refused = enqueue_in(&mut tx, other.id, &job, Utc::now()).await;
        assert!(refused.unwrap_err().is_permission_denied());
    }
}
