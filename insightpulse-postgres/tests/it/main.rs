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

/// The same cases on a Citus coordinator (see `citus`): every one must pass
/// there as on PostgreSQL.
mod conformance_on_citus {
    /// A fresh Citus harness, or the end of the test when no cluster is set.
    macro_rules! citus {
        () => {
            match crate::citus::harness().await {
                Some(h) => h,
                None => return,
            }
        };
    }
    insightpulse_testing::conformance_tests!(#[tokio::test] () => citus!());
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
