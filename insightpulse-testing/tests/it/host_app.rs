//! How a host application tests its own code: against mocks (call
//! expectations, no rules), against the in-memory backend (the SDK's real
//! rules, no database), or both at once — the memory backend with single
//! repositories replaced by mocks.

use insightpulse_core::projects::ProjectRepo;
use insightpulse_core::{Context, Error, PermissionCode, ProjectId, Repos, Result};
use std::sync::Arc;

/// Host code under test: a page title for a project, or "Not found".
async fn project_title(repo: Arc<dyn ProjectRepo>, ctx: &Context, id: ProjectId) -> Result<String> {
    match repo.get_project(ctx, id).await {
        Ok(p) if p.archived_at.is_some() => Ok(format!("{} (archived)", p.name)),
        Ok(p) => Ok(p.name.to_string()),
        Err(Error::NotFound { .. }) => Ok("Not found".to_owned()),
        Err(e) => Err(e),
    }
}

/// Host code under test: archives a project for a caller allowed to, and
/// says so.
async fn archive_for(repos: &Repos, ctx: &Context, id: ProjectId) -> Result<String> {
    repos
        .rbac
        .require_permission(ctx, PermissionCode::PROJECT_UPDATE, Some(id))
        .await?;
    let project = repos.projects.archive_project(ctx, id).await?;
    Ok(format!("{} archived", project.name))
}

#[cfg(feature = "mocks")]
#[tokio::test]
async fn host_code_with_a_mock_project_repo() {
    use insightpulse_core::projects::Project;
    use insightpulse_core::{Entity, Name, Slug, TenantId, UserId};
    use insightpulse_testing::mocks::{predicate, MockProjectRepo};

    let (found, missing, tenant) = (ProjectId::new(), ProjectId::new(), TenantId::new());
    let ctx = Context::user(UserId::new()).in_tenant(tenant);
    let now = chrono::Utc::now();
    let mut repo = MockProjectRepo::new();
    repo.expect_get_project()
        .with(predicate::always(), predicate::eq(found))
        .times(1)
        .returning(move |_, id| {
            Ok(Project {
                id,
                tenant_id: tenant,
                slug: Slug::parse("web").unwrap(),
                name: Name::parse("Web").unwrap(),
                description: None,
                archived_at: Some(now),
                created_at: now,
                updated_at: now,
            })
        });
    repo.expect_get_project()
        .with(predicate::always(), predicate::eq(missing))
        .times(1)
        .returning(|_, _| Err(Error::not_found(Entity::Project)));

    let repo: Arc<dyn ProjectRepo> = Arc::new(repo);
    assert_eq!(
        project_title(repo.clone(), &ctx, found).await.unwrap(),
        "Web (archived)"
    );
    assert_eq!(
        project_title(repo, &ctx, missing).await.unwrap(),
        "Not found"
    );
}

/// The memory backend decides who may (its real RBAC); a mock stands in
/// for the projects and checks that only the allowed caller reached them.
#[cfg(feature = "mocks")]
#[tokio::test]
async fn host_code_with_the_memory_backend_and_a_mock() {
    use insightpulse_core::projects::Project;
    use insightpulse_core::{Name, Slug};
    use insightpulse_testing::mocks::{predicate, MockProjectRepo};
    use insightpulse_testing::{fixtures, memory::MemoryBackend};

    let backend = MemoryBackend::new();
    let real = backend.repos();
    let (tenant, _, owner) = fixtures::tenant_with_owner(&real, "acme").await;
    let (_, viewer) =
        fixtures::member_with_role(&real, &owner, "viewer@acme.io", Some("Viewer")).await;

    let id = ProjectId::new();
    let now = chrono::Utc::now();
    let mut projects = MockProjectRepo::new();
    projects
        .expect_archive_project()
        .with(predicate::eq(owner.clone()), predicate::eq(id))
        .times(1)
        .returning(move |_, id| {
            Ok(Project {
                id,
                tenant_id: tenant.id,
                slug: Slug::parse("web").unwrap(),
                name: Name::parse("Web").unwrap(),
                description: None,
                archived_at: Some(now),
                created_at: now,
                updated_at: now,
            })
        });
    let repos = backend.repos_builder().projects(projects).build();

    assert_eq!(
        archive_for(&repos, &owner, id).await.unwrap(),
        "Web archived"
    );
    assert!(matches!(
        archive_for(&repos, &viewer, id).await,
        Err(Error::PermissionDenied { .. })
    ));
    // The mock checks `times(1)` when `repos` drops: the viewer never reached it.
}

#[tokio::test]
async fn host_code_with_the_memory_backend() {
    use insightpulse_testing::{fixtures, memory::MemoryBackend};

    let repos = MemoryBackend::new().repos();
    let (_, _, acme) = fixtures::tenant_with_owner(&repos, "acme").await;
    let (_, _, umbrella) = fixtures::tenant_with_owner(&repos, "umbrella").await;
    let web = fixtures::project(&repos, &acme, "web").await;

    assert_eq!(
        project_title(repos.projects.clone(), &acme, web.id)
            .await
            .unwrap(),
        "web"
    );
    // Another tenant's project is simply not there — the backend enforces it.
    assert_eq!(
        project_title(repos.projects.clone(), &umbrella, web.id)
            .await
            .unwrap(),
        "Not found"
    );
    assert_eq!(
        archive_for(&repos, &acme, web.id).await.unwrap(),
        "web archived"
    );
    assert!(matches!(
        archive_for(&repos, &umbrella, web.id).await,
        Err(Error::NotFound { .. })
    ));
}

/// A host's sign-up form, then a client calling with an API key: no system
/// context and no fixture, only `repos.auth`.
#[tokio::test]
async fn host_signs_up_then_authenticates_an_api_key() {
    use insightpulse_core::projects::NewProject;
    use insightpulse_core::tenancy::{ApiKeyScope, NewApiKey, NewTenant, SignUp};
    use insightpulse_core::{Email, Name, RequestMeta, SecretString, Slug, TimeZone};
    use insightpulse_testing::memory::MemoryBackend;

    let repos = MemoryBackend::new().repos();
    let up = repos
        .auth
        .sign_up(
            RequestMeta::default().with_request_id("req-sign-up"),
            SignUp {
                email: Email::parse("ada@acme.io").unwrap(),
                full_name: Some(Name::parse("Ada").unwrap()),
                password: SecretString::from("correct horse battery"),
                tenant: NewTenant {
                    slug: Slug::parse("acme").unwrap(),
                    name: Name::parse("Acme").unwrap(),
                    timezone: TimeZone::utc(),
                },
            },
        )
        .await
        .unwrap();
    let issued = repos
        .api_keys
        .create_api_key(
            &up.ctx,
            NewApiKey {
                name: Name::parse("ci").unwrap(),
                scope: ApiKeyScope::Tenant,
                permissions: vec![PermissionCode::PROJECT_CREATE],
                expires_at: None,
            },
        )
        .await
        .unwrap();

    let ctx = repos
        .auth
        .authenticate(
            &issued.secret,
            RequestMeta::default().with_request_id("req-ci"),
        )
        .await
        .unwrap();
    assert_eq!(ctx.tenant_id(), Some(up.tenant.id));
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
    assert_eq!(project.tenant_id, up.tenant.id);
    // The key holds exactly what it was given.
    assert!(matches!(
        repos
            .rbac
            .require_permission(&ctx, PermissionCode::PROJECT_DELETE, None)
            .await,
        Err(Error::PermissionDenied { .. })
    ));
}
