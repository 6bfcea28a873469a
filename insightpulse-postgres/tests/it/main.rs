//! PostgreSQL integration tests: one binary, one fresh database per test
//! (`#[sqlx::test]`), every SDK call running as `authenticated` (or
//! `service_role` for the system) with RLS forced.

mod audit;
mod catalog;
mod citus;
mod differential;
mod embed;
mod isolation;
mod jobs;
mod outbox;
mod permissions;
mod pool;
mod pooler;
mod within_tenant;

mod conformance {
    insightpulse_testing::conformance_tests!(
        #[sqlx::test(migrations = false)] (pool: sqlx::PgPool) => crate::harness(pool).await
    );
}

/// The same cases on a Citus coordinator (see `citus`). Those in
/// `KNOWN_FAILURES` must still fail there (the README's "Running on Citus"
/// says what is left); every other case must pass.
mod conformance_on_citus {
    /// Retention and erasure change the audit trail through functions with
    /// the owner's rights in the same transaction as the system's own writes
    /// to the tenant's co-located shards: Citus picks a worker connection by
    /// the current user and refuses two users' writes to one shard group.
    const DEFINER: &str = "the owner's and the system's writes on two connections";
    const KNOWN_FAILURES: &[(&str, &str)] = &[
        (
            "audit_log_anonymization_erases_old_personal_fields",
            DEFINER,
        ),
        (
            "audit_log_deletion_purges_the_old_prefix_in_batches",
            DEFINER,
        ),
        ("audit_log_purge_never_purges_its_own_attestations", DEFINER),
        ("audit_log_purge_stops_at_the_first_recent_entry", DEFINER),
        ("enforce_retention_is_system_only", DEFINER),
        ("erase_user_is_self_or_system", DEFINER),
        ("erase_user_removes_and_pseudonymizes", DEFINER),
        ("last_active_owner_cannot_be_erased", DEFINER),
        (
            "retention_reports_every_policy_and_touches_nothing_else",
            DEFINER,
        ),
    ];
    /// A fresh Citus harness, or the end of the test when no cluster is set.
    macro_rules! citus {
        () => {
            match crate::citus::harness().await {
                Some(h) => h,
                None => return,
            }
        };
    }
    use insightpulse_testing as t;
    t::__conformance_cases_audit!([#[tokio::test] () => citus!()]);
    t::__conformance_cases_projects!([#[tokio::test] () => citus!()]);
    t::__conformance_cases_error!([#[tokio::test] () => citus!()]);
    t::__conformance_cases_idempotency!([#[tokio::test] () => citus!()]);
    t::__conformance_cases_tenancy!([#[tokio::test] () => citus!(), known_failures: KNOWN_FAILURES]);
    t::__conformance_cases_privacy!([#[tokio::test] () => citus!(), known_failures: KNOWN_FAILURES]);
    t::__conformance_cases_outbox!([#[tokio::test] () => citus!()]);
    t::__conformance_cases_jobs!([#[tokio::test] () => citus!()]);
}

use insightpulse_core::tenancy::passwords::PasswordCost;
use insightpulse_core::tenancy::tokens::TokenHasher;
use insightpulse_core::tenancy::{NewTenant, NewUser, Tenant, User};
use insightpulse_core::{Context, Email, ManualClock, Name, Repos, Slug, TimeZone, UserId};
use insightpulse_postgres::{uow, PgBackend};
use insightpulse_testing::conformance::Harness;
use sqlx::PgPool;
use std::sync::Arc;

/// A migrated backend on a fresh test database with a manual clock (and
/// the fast password hashing tests use).
pub async fn backend(pool: PgPool) -> (PgBackend, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::starting_now());
    let backend = PgBackend::from_pool(pool, TokenHasher::insecure_development())
        .with_clock(clock.clone())
        .with_password_cost(PasswordCost::InsecureFastForTests);
    backend.migrate().await.unwrap();
    (backend, clock)
}

/// Applies the SDK's migrations to a fresh test database.
pub async fn migrated(pool: &PgPool) {
    backend(pool.clone()).await;
}

/// The conformance harness on a test database.
pub async fn harness(pool: PgPool) -> Harness {
    let (backend, clock) = backend(pool).await;
    Harness {
        repos: backend.repos(),
        clock,
    }
}

/// Signs a user up.
pub async fn user(repos: &Repos, email: &str) -> User {
    repos
        .users
        .create_user(
            &Context::system("test sign-up"),
            NewUser {
                email: Email::parse(email).unwrap(),
                full_name: None,
            },
        )
        .await
        .unwrap()
}

/// Creates a tenant owned by `owner` and returns it with the owner's context in it.
pub async fn tenant(repos: &Repos, owner: UserId, slug: &str) -> (Tenant, Context) {
    let t = repos
        .tenants
        .create_tenant(
            &Context::user(owner),
            NewTenant {
                slug: Slug::parse(slug).unwrap(),
                name: Name::parse(slug).unwrap(),
                timezone: TimeZone::parse("Europe/Paris").unwrap(),
            },
        )
        .await
        .unwrap();
    let ctx = Context::user(owner).in_tenant(t.id);
    (t, ctx)
}

/// A raw transaction acting as `ctx`, exactly as the SDK opens one.
pub async fn acting_as(pool: &PgPool, ctx: &Context) -> sqlx::Transaction<'static, sqlx::Postgres> {
    acting_as_on(pool, uow::Cluster::Postgres, ctx).await
}

/// [`acting_as`] on `cluster`.
pub async fn acting_as_on(
    pool: &PgPool,
    cluster: uow::Cluster,
    ctx: &Context,
) -> sqlx::Transaction<'static, sqlx::Postgres> {
    pool.begin_with(uow::begin_statement_on(cluster, ctx))
        .await
        .unwrap()
}
