//! Pool hygiene: identities (and the SDK's search path) are
//! transaction-local, so many concurrent calls for different users over a
//! pool of two connections never see each other's identity, an abandoned
//! unit of work leaves nothing behind, and a host sharing the pool keeps
//! its own search path.

use crate::{tenant, user};
use insightpulse_core::projects::NewProject;
use insightpulse_core::{Context, Name, PermissionCode, Slug};
use insightpulse_postgres::uow;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::sync::Arc;
use uuid::Uuid;

/// What a connection carries when no unit of work is open: its role, its
/// claims and its search path (the host's, not the SDK's).
async fn idle_identity(pool: &PgPool) -> (String, Option<String>, String) {
    sqlx::query_as(
        "SELECT current_user::text, nullif(current_setting('request.jwt.claims', true), ''),
                current_setting('search_path')",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = false)]
async fn concurrent_calls_never_see_each_others_identity(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    concurrent_calls_never_see_each_others_identity_in(connect).await;
}

/// The same through a Citus coordinator.
#[tokio::test]
async fn concurrent_calls_never_see_each_others_identity_on_citus() {
    if let Some(pool) = crate::citus::database().await {
        concurrent_calls_never_see_each_others_identity_in((*pool.connect_options()).clone()).await;
    }
}

async fn concurrent_calls_never_see_each_others_identity_in(connect: PgConnectOptions) {
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(connect)
        .await
        .unwrap();
    let login = idle_identity(&pool).await;
    assert_eq!(login.1, None);
    assert!(!login.2.contains("insightpulse"), "{login:?}");
    let (backend, _) = crate::backend(pool.clone()).await;
    let repos = backend.repos();

    let mut tenants = vec![];
    for i in 0..6 {
        let owner = user(&repos, &format!("owner{i}@t.io")).await;
        let (t, ctx) = tenant(&repos, owner.id, &format!("tenant-{i}")).await;
        for p in 0..3 {
            repos
                .projects
                .create_project(
                    &ctx,
                    NewProject {
                        slug: Slug::parse(&format!("t{i}-p{p}")).unwrap(),
                        name: Name::parse("P").unwrap(),
                        description: None,
                    },
                )
                .await
                .unwrap();
        }
        tenants.push((t.id, owner.id, ctx));
    }
    let tenants = Arc::new(tenants);
    let manage = PermissionCode::PROJECT_DELETE;

    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..300usize {
        let (repos, pool, tenants, manage) = (repos.clone(), pool.clone(), tenants.clone(), manage);
        tasks.spawn(async move {
            let (tenant, owner, ctx) = &tenants[n % tenants.len()];
            match n % 4 {
                // The SDK shows exactly this user's tenant.
                0 => {
                    let projects = repos.projects.list_projects(ctx, true).await.unwrap();
                    assert_eq!(projects.len(), 3);
                    assert!(projects.iter().all(|p| p.tenant_id == *tenant));
                    assert!(projects.iter().all(|p| p
                        .slug
                        .as_str()
                        .starts_with(&format!("t{}-", n % tenants.len()))));
                }
                // The database sees exactly this user.
                1 => {
                    let mut tx = pool.begin_with(uow::begin_statement(ctx)).await.unwrap();
                    let (uid, role): (Option<Uuid>, String) =
                        sqlx::query_as("SELECT insightpulse_auth.uid(), current_user::text")
                            .fetch_one(&mut *tx)
                            .await
                            .unwrap();
                    assert_eq!(uid, Some(owner.0));
                    assert_eq!(role, "authenticated");
                    tokio::task::yield_now().await;
                    tx.commit().await.unwrap();
                }
                // Another tenant's owner holds nothing here.
                2 => {
                    let other = &tenants[(n + 1) % tenants.len()].2;
                    let foreign = Context::user(other.user_id().unwrap()).in_tenant(*tenant);
                    assert!(!repos
                        .rbac
                        .has_permission(&foreign, manage, None)
                        .await
                        .unwrap());
                    assert!(repos
                        .projects
                        .list_projects(&foreign, true)
                        .await
                        .unwrap()
                        .is_empty());
                }
                // A unit of work abandoned half-way is rolled back, not reused.
                _ => {
                    let mut tx = pool.begin_with(uow::begin_statement(ctx)).await.unwrap();
                    let _: i64 = sqlx::query_scalar("SELECT count(*) FROM insightpulse.projects")
                        .fetch_one(&mut *tx)
                        .await
                        .unwrap();
                    drop(tx);
                }
            }
            // Outside any unit of work, a connection carries no identity.
            let (role, claims, search_path) = idle_identity(&pool).await;
            assert_ne!(role, "authenticated");
            assert_eq!(claims, None, "claims leaked to the next borrower");
            assert!(!search_path.contains("insightpulse"), "search path leaked");
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    assert_eq!(idle_identity(&pool).await, login);
}

/// Hot reads run server-side prepared statements; a plan cached while the
/// connection acted as `service_role` (which bypasses RLS) must not be
/// reused for a user or an API key on the same connection, nor the reverse.
#[sqlx::test(migrations = false)]
async fn prepared_reads_apply_the_policies_of_whoever_runs_them(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    prepared_reads_apply_the_policies_of_whoever_runs_them_in(connect).await;
}

/// The same through a Citus coordinator.
#[tokio::test]
async fn prepared_reads_apply_the_policies_of_whoever_runs_them_on_citus() {
    if let Some(pool) = crate::citus::database().await {
        prepared_reads_apply_the_policies_of_whoever_runs_them_in(
            (*pool.connect_options()).clone(),
        )
        .await;
    }
}

async fn prepared_reads_apply_the_policies_of_whoever_runs_them_in(connect: PgConnectOptions) {
    use insightpulse_core::tenancy::{ApiKeyScope, NewApiKey};
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(connect)
        .await
        .unwrap();
    let (backend, _) = crate::backend(pool).await;
    let repos = backend.repos();
    let owner = user(&repos, "owner@t.io").await;
    let (t, ctx) = tenant(&repos, owner.id, "acme").await;
    let mut ids = vec![];
    for slug in ["a-web", "b-api", "c-ops"] {
        let new = NewProject {
            slug: Slug::parse(slug).unwrap(),
            name: Name::parse(slug).unwrap(),
            description: None,
        };
        ids.push(repos.projects.create_project(&ctx, new).await.unwrap().id);
    }
    let key = repos
        .api_keys
        .create_api_key(
            &ctx,
            NewApiKey {
                name: Name::parse("k").unwrap(),
                scope: ApiKeyScope::Project(ids[1]),
                permissions: vec!["project.update".parse().unwrap()],
                expires_at: None,
            },
        )
        .await
        .unwrap();
    let key_ctx = repos
        .auth
        .authenticate(&key.secret, Context::system("auth").request().clone())
        .await
        .unwrap();
    let system = Context::system("report").in_tenant(t.id);
    let stranger = user(&repos, "stranger@x.io").await;
    let stranger_ctx = Context::user(stranger.id).in_tenant(t.id);
    for _ in 0..8 {
        assert_eq!(
            repos
                .projects
                .list_projects(&system, true)
                .await
                .unwrap()
                .len(),
            3
        );
        let seen = repos.projects.list_projects(&key_ctx, true).await.unwrap();
        assert_eq!(seen.iter().map(|p| p.id).collect::<Vec<_>>(), vec![ids[1]]);
        assert!(repos
            .projects
            .list_projects(&stranger_ctx, true)
            .await
            .unwrap()
            .is_empty());
        assert!(repos.projects.get_project(&key_ctx, ids[0]).await.is_err());
        assert!(repos.projects.get_project(&system, ids[0]).await.is_ok());
        assert_eq!(
            repos
                .projects
                .list_projects(&ctx, true)
                .await
                .unwrap()
                .len(),
            3
        );
    }
}
