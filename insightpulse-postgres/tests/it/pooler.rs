//! Behind PgBouncer in transaction mode: several tenants' reads and writes,
//! concurrently, through a pooler of 2 server connections, every answer
//! compared with the same call over the direct connection.
//!
//! What it guards: consecutive transactions of one client land on server
//! connections shared with other clients, so a named prepared statement
//! (sqlx's `sqlx_s_N`, SQL `PREPARE`) collides with another client's or
//! runs another client's text — wrong answers, possibly across tenants.
//! PgBouncer 1.18 tracks no prepared statement: the SDK goes through it in
//! `PoolerMode::Transaction`. PgBouncer 1.24 with `max_prepared_statements`
//! tracks protocol-level ones (not SQL `PREPARE`): the default mode goes
//! through it. `scripts/setup-pgbouncer.sh` starts both and
//! `scripts/test.sh` exports their URLs; a test whose URL is unset is
//! skipped with a printed line.

use crate::{tenant, user};
use insightpulse_core::audit::AuditQuery;
use insightpulse_core::jobs::{JobKind, JobWaker, NewJob};
use insightpulse_core::projects::NewProject;
use insightpulse_core::tenancy::passwords::PasswordCost;
use insightpulse_core::tenancy::tokens::TokenHasher;
use insightpulse_core::{Context, Error, Name, PermissionCode, ProjectId, Slug, UserId};
use insightpulse_core::{Repos, Result};
use insightpulse_postgres::{PgBackend, PoolerMode};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::fmt::Debug;
use std::sync::Arc;

const TASKS: usize = 8;
const CALLS: usize = 150;

/// The pooler's URL from `var`, or `None` after saying the test is skipped.
fn pooler_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            println!("skipped: {var} is not set (scripts/test.sh sets it, after scripts/setup-pgbouncer.sh)");
            None
        }
    }
}

/// One tenant of the load: its owner's context, its projects, and the owner
/// of another tenant acting in this one, who must see none of it.
struct Fixture {
    owner: Context,
    outsider: Context,
    owner_id: UserId,
    projects: Vec<ProjectId>,
}

/// What a call answered, comparable across backends: the value, or the
/// error's text (which names entities and rules, never values).
type Answer = std::result::Result<String, String>;

fn answer<T: Debug>(r: Result<T>) -> (Answer, bool) {
    match r {
        Ok(v) => (Ok(format!("{v:?}")), false),
        Err(e) => {
            let backend = matches!(e, Error::Backend(..));
            (Err(e.to_string()), backend)
        }
    }
}

/// Tallies of one run.
#[derive(Debug, Default)]
struct Tally {
    calls: usize,
    wrong: Vec<String>,
    errors: Vec<String>,
}

/// Runs `op` on both backends and records whether the pooler's answer is
/// the direct one's (and whether it is a backend error).
async fn compare<T, F, Fut>(tally: &mut Tally, what: &str, direct: &Repos, pooled: &Repos, op: F)
where
    T: Debug,
    F: Fn(Repos) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let (through, failed) = answer(op(pooled.clone()).await);
    let (expected, _) = answer(op(direct.clone()).await);
    tally.calls += 1;
    if failed {
        tally.errors.push(format!("{what}: {through:?}"));
    }
    if through != expected {
        tally
            .wrong
            .push(format!("{what}: pooler {through:?}, direct {expected:?}"));
    }
}

/// A writer's check: the pooler's answer to a write is what the direct
/// connection reads back afterwards.
fn check_write<T: Debug>(tally: &mut Tally, what: &str, written: Result<T>, read_back: Result<T>) {
    let (through, failed) = answer(written);
    let (expected, _) = answer(read_back);
    tally.calls += 1;
    if failed {
        tally.errors.push(format!("{what}: {through:?}"));
    }
    if through != expected {
        tally
            .wrong
            .push(format!("{what}: pooler {through:?}, direct {expected:?}"));
    }
}

/// One task's calls on its own tenant (it is the only writer there, so
/// the direct read right after the pooled one sees the same state).
async fn load(
    task: usize,
    fx: Arc<Vec<Fixture>>,
    direct: Repos,
    pooled: Repos,
    calls: usize,
) -> Tally {
    let mut tally = Tally::default();
    let me = &fx[task];
    let mut projects = me.projects.clone();
    let codes = [
        PermissionCode::PROJECT_DELETE,
        PermissionCode::PROJECT_CREATE,
        PermissionCode::DASHBOARD_DELETE,
        PermissionCode::MEMBER_READ,
    ];
    for i in 0..calls {
        let pick = projects[(i * 7 + task) % projects.len()];
        let (owner, outsider) = (me.owner.clone(), me.outsider.clone());
        match i % 10 {
            0 => {
                compare(&mut tally, "list_projects", &direct, &pooled, |r| {
                    let ctx = owner.clone();
                    async move { r.projects.list_projects(&ctx, true).await }
                })
                .await
            }
            1 => {
                compare(&mut tally, "get_project", &direct, &pooled, |r| {
                    let ctx = owner.clone();
                    async move { r.projects.get_project(&ctx, pick).await }
                })
                .await
            }
            2 => {
                compare(&mut tally, "list_members", &direct, &pooled, |r| {
                    let ctx = owner.clone();
                    async move { r.members.list_members(&ctx).await }
                })
                .await
            }
            3 => {
                compare(&mut tally, "list_roles", &direct, &pooled, |r| {
                    let ctx = owner.clone();
                    async move { r.rbac.list_roles(&ctx).await }
                })
                .await
            }
            4 => {
                let code = codes[(i / 10) % codes.len()];
                let asker = if i % 20 == 4 {
                    owner.clone()
                } else {
                    outsider.clone()
                };
                compare(&mut tally, "has_permission", &direct, &pooled, |r| {
                    let ctx = asker.clone();
                    async move { r.rbac.has_permission(&ctx, code, Some(pick)).await }
                })
                .await
            }
            5 => {
                let new = NewProject {
                    slug: Slug::parse(&format!("t{task}-n{i}")).unwrap(),
                    name: Name::parse(&format!("New {i}")).unwrap(),
                    description: Some(format!("made by call {i}")),
                };
                let created = pooled.projects.create_project(&owner, new).await;
                let id = created.as_ref().map(|p| p.id).ok();
                let read_back = match id {
                    Some(id) => direct.projects.get_project(&owner, id).await,
                    None => Err(Error::not_found(insightpulse_core::Entity::Project)),
                };
                check_write(&mut tally, "create_project", created, read_back);
                projects.extend(id);
            }
            6 => {
                let name = Name::parse(&format!("Renamed {task}.{i}")).unwrap();
                let renamed = pooled.projects.rename_project(&owner, pick, name).await;
                let read_back = direct.projects.get_project(&owner, pick).await;
                check_write(&mut tally, "rename_project", renamed, read_back);
            }
            7 => {
                compare(&mut tally, "audit.query", &direct, &pooled, |r| {
                    let ctx = owner.clone();
                    async move {
                        let mut q = AuditQuery::last_days(1);
                        q.limit = 20;
                        r.audit.query_entries(&ctx, q).await
                    }
                })
                .await
            }
            // Another tenant's user: NotFound through both, never the row.
            8 => {
                compare(&mut tally, "outsider get_project", &direct, &pooled, |r| {
                    let ctx = outsider.clone();
                    async move { r.projects.get_project(&ctx, pick).await }
                })
                .await
            }
            // The system (service_role, RLS bypassed).
            _ => {
                let owner_id = me.owner_id;
                compare(
                    &mut tally,
                    "system get_user",
                    &direct,
                    &pooled,
                    |r| async move {
                        r.users
                            .get_user(&Context::system("pooler test"), owner_id)
                            .await
                    },
                )
                .await
            }
        }
    }
    tally
}

/// Seeds `TASKS` tenants over the direct connection.
async fn fixtures(direct: &Repos) -> Vec<Fixture> {
    let mut made = Vec::new();
    for t in 0..TASKS {
        let owner = user(direct, &format!("owner{t}@pooler.io")).await;
        let (tenant_row, ctx) = tenant(direct, owner.id, &format!("pooled-{t}")).await;
        let mut projects = Vec::new();
        for p in 0..3 {
            let project = direct
                .projects
                .create_project(
                    &ctx,
                    NewProject {
                        slug: Slug::parse(&format!("t{t}-p{p}")).unwrap(),
                        name: Name::parse("P").unwrap(),
                        description: None,
                    },
                )
                .await
                .unwrap();
            projects.push(project.id);
        }
        made.push((tenant_row.id, ctx, owner.id, projects));
    }
    let owners: Vec<UserId> = made.iter().map(|m| m.2).collect();
    made.into_iter()
        .enumerate()
        .map(|(t, (tenant, owner, owner_id, projects))| Fixture {
            owner,
            outsider: Context::user(owners[(t + 1) % TASKS]).in_tenant(tenant),
            owner_id,
            projects,
        })
        .collect()
}

/// Runs the load through the pooler at `url` in `mode`, against the
/// database of `connect` (the test's), and returns the tallies of every task.
async fn run(
    pool: PgPool,
    connect: &PgConnectOptions,
    url: &str,
    mode: PoolerMode,
    calls: usize,
) -> Tally {
    let (direct_backend, clock) = crate::backend(pool.clone()).await;
    let direct = direct_backend.repos();
    let database = connect.get_database().expect("a test database");
    let options = PgBackend::connect_options(url).unwrap().database(database);
    let pooled_backend = PgBackend::connect_with(options, TokenHasher::insecure_development())
        .await
        .unwrap()
        .with_clock(clock)
        .with_password_cost(PasswordCost::InsecureFastForTests)
        .with_pooler_mode(mode);
    assert_eq!(pooled_backend.pooler_mode(), mode);
    let pooled = pooled_backend.repos();
    let fx = Arc::new(fixtures(&direct).await);

    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let (fx, direct, pooled) = (fx.clone(), direct.clone(), pooled.clone());
        tasks.spawn(async move { load(task, fx, direct, pooled, calls).await });
    }
    let mut total = Tally::default();
    while let Some(t) = tasks.join_next().await {
        // A statement swapped under a shared name can even make sqlx panic
        // while decoding (a row shorter than the statement it expected):
        // that task's calls count as errors, never as a pass.
        let t = match t {
            Ok(t) => t,
            Err(e) => {
                total.errors.push(format!("a load task died: {e}"));
                continue;
            }
        };
        total.calls += t.calls;
        total.wrong.extend(t.wrong);
        total.errors.extend(t.errors);
    }
    pooled_backend.pool().close().await;
    release_server_connections(&pool).await;
    total
}

/// Closes the pooler's server connections to the test database, so that
/// `#[sqlx::test]` can drop it (PgBouncer keeps them open otherwise).
async fn release_server_connections(pool: &PgPool) {
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid()
            AND backend_type = 'client backend'",
    )
    .persistent(false)
    .execute(pool)
    .await
    .unwrap();
}

fn report(name: &str, t: &Tally) {
    println!(
        "{name}: {} calls, {} wrong answers, {} backend errors",
        t.calls,
        t.wrong.len(),
        t.errors.len()
    );
    for line in t.wrong.iter().chain(&t.errors).take(5) {
        println!("  {}", line.chars().take(200).collect::<String>());
    }
}

/// PgBouncer 1.18 (no prepared-statement tracking) in `PoolerMode::Transaction`.
#[sqlx::test(migrations = false)]
async fn pgbouncer_118_in_transaction_mode_answers_like_the_direct_connection(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let Some(url) = pooler_url("INSIGHTPULSE_PGBOUNCER_118_URL") else {
        return;
    };
    let pool = PgPoolOptions::new()
        .connect_with(connect.clone())
        .await
        .unwrap();
    let t = run(pool, &connect, &url, PoolerMode::Transaction, CALLS).await;
    report("PgBouncer 1.18, Transaction mode", &t);
    assert_eq!(t.calls, TASKS * CALLS);
    assert!(
        t.wrong.is_empty() && t.errors.is_empty(),
        "{} wrong answers, {} errors (the first printed above)",
        t.wrong.len(),
        t.errors.len()
    );
}

/// PgBouncer 1.24 with `max_prepared_statements`, in the default mode:
/// sqlx's named statements are tracked by the pooler, and `read_once`'s SQL
/// `PREPARE` travels with the read that needs it.
#[sqlx::test(migrations = false)]
async fn pgbouncer_124_in_the_default_mode_answers_like_the_direct_connection(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let Some(url) = pooler_url("INSIGHTPULSE_PGBOUNCER_124_URL") else {
        return;
    };
    let pool = PgPoolOptions::new()
        .connect_with(connect.clone())
        .await
        .unwrap();
    let t = run(pool, &connect, &url, PoolerMode::default(), CALLS).await;
    report("PgBouncer 1.24, Session (default) mode", &t);
    assert_eq!(t.calls, TASKS * CALLS);
    assert!(
        t.wrong.is_empty() && t.errors.is_empty(),
        "{} wrong answers, {} errors (the first printed above)",
        t.wrong.len(),
        t.errors.len()
    );
}

/// PgBouncer 1.24 in front of the Citus coordinator, in both modes: the
/// unit of work opens with `CALL insightpulse_auth.act_as(…)` there, and
/// every answer through the pooler must match the direct connection's.
#[tokio::test]
async fn pgbouncer_in_front_of_the_citus_coordinator_answers_like_the_direct_connection() {
    let Some(url) = pooler_url("INSIGHTPULSE_PGBOUNCER_CITUS_URL") else {
        return;
    };
    for (mode, name) in [
        (PoolerMode::Transaction, "Transaction mode"),
        (PoolerMode::default(), "Session (default) mode"),
    ] {
        let Some(pool) = crate::citus::database().await else {
            return;
        };
        let connect = (*pool.connect_options()).clone();
        let t = run(pool, &connect, &url, mode, CALLS / 3).await;
        report(&format!("PgBouncer 1.24 before Citus, {name}"), &t);
        assert_eq!(t.calls, TASKS * (CALLS / 3));
        assert!(
            t.wrong.is_empty() && t.errors.is_empty(),
            "{} wrong answers, {} errors (the first printed above)",
            t.wrong.len(),
            t.errors.len()
        );
    }
}

/// The control: the same comparison catches the failure the mode exists
/// for — PgBouncer 1.18 in the default mode (named statements) goes wrong.
#[sqlx::test(migrations = false)]
async fn pgbouncer_118_in_the_default_mode_goes_wrong(_: PgPoolOptions, connect: PgConnectOptions) {
    let Some(url) = pooler_url("INSIGHTPULSE_PGBOUNCER_118_URL") else {
        return;
    };
    let pool = PgPoolOptions::new()
        .connect_with(connect.clone())
        .await
        .unwrap();
    let t = run(pool, &connect, &url, PoolerMode::Session, 30).await;
    report("PgBouncer 1.18, Session mode (control)", &t);
    assert!(
        !t.wrong.is_empty() || !t.errors.is_empty(),
        "{} calls all right",
        t.calls
    );
}

/// Behind a transaction-mode pooler, `LISTEN` runs on the direct connection
/// given to [`PgBackend::with_listener`]: a job enqueued through the pooler
/// wakes a waiting worker at once, not after its poll timeout.
#[sqlx::test(migrations = false)]
async fn behind_the_pooler_listeners_take_their_direct_connection(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let Some(url) = pooler_url("INSIGHTPULSE_PGBOUNCER_118_URL") else {
        return;
    };
    let pool = PgPoolOptions::new()
        .connect_with(connect.clone())
        .await
        .unwrap();
    let (direct, _) = crate::backend(pool.clone()).await;
    let database = connect.get_database().unwrap();
    let pooled_options = PgBackend::connect_options(&url).unwrap().database(database);
    let pooled = PgBackend::connect_with(pooled_options, TokenHasher::insecure_development())
        .await
        .unwrap()
        .with_pooler_mode(PoolerMode::Transaction)
        .with_listener(connect.clone());
    let alice = user(&direct.repos(), "alice@acme.io").await;
    let (acme, _) = tenant(&direct.repos(), alice.id, "acme").await;

    let kind = JobKind::parse("report.render").unwrap();
    let waker = pooled.job_waker().await.unwrap();
    let started = std::time::Instant::now();
    let waiting = waker.wait(&kind, std::time::Duration::from_secs(10));
    let enqueue = async {
        // Let the wait register before the notification is sent.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let sys = Context::system("test").in_tenant(acme.id);
        let job = NewJob::new(kind.clone(), serde_json::json!({}));
        pooled.repos().jobs.enqueue_job(&sys, job).await.unwrap();
    };
    tokio::join!(waiting, enqueue);
    let waited = started.elapsed();
    assert!(
        waited < std::time::Duration::from_secs(5),
        "woken after {waited:?}: the notification never came"
    );
    drop(waker);
    pooled.close().await;
    release_server_connections(&pool).await;
}
