//! How a host application tests its own code: against mocks (call
//! expectations, no rules) or against the in-memory backend (the SDK's real
//! rules, no database).

use insightpulse_core::projects::ProjectRepo;
use insightpulse_core::{Context, Error, ProjectId, Result};
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

#[cfg(feature = "mocks")]
#[tokio::test]
async fn host_code_with_a_mock_project_repo() {
    use insightpulse_core::projects::Project;
    use insightpulse_core::{Name, Slug, TenantId, UserId};
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
        .returning(|_, _| Err(Error::not_found("project")));

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
}
