//! The Rust permission evaluator and SQL's `insightpulse_auth.user_has_permission`
//! agree on every case: every catalog permission × every kind of member ×
//! tenant-wide and two projects, and for API keys of every scope.

use crate::{tenant, user};
use chrono::Duration;
use insightpulse_core::projects::{EnvironmentKind, NewProject};
use insightpulse_core::tenancy::catalog::PERMISSIONS;
use insightpulse_core::tenancy::*;
use insightpulse_core::*;
use sqlx::PgPool;

/// The facts the pure evaluator needs, read directly from the tables.
async fn facts(pool: &PgPool, tenant: TenantId, user: UserId) -> UserFacts {
    let membership: Option<(bool, String)> = sqlx::query_as(
        "SELECT is_owner, status::text FROM insightpulse.org_memberships WHERE tenant_id = $1 AND user_id = $2",
    )
    .bind(tenant.0)
    .bind(user.0)
    .fetch_optional(pool)
    .await
    .unwrap();
    let grants: Vec<(Option<uuid::Uuid>, Vec<String>)> = sqlx::query_as(
        "SELECT ur.project_id, array(SELECT p.code FROM insightpulse.role_permissions rp JOIN insightpulse.permissions p ON p.id = rp.permission_id
                                      WHERE rp.role_id = ur.role_id)
           FROM insightpulse.user_roles ur WHERE ur.tenant_id = $1 AND ur.user_id = $2",
    )
    .bind(tenant.0)
    .bind(user.0)
    .fetch_all(pool)
    .await
    .unwrap();
    UserFacts {
        membership: membership.map(|(owner, status)| {
            (
                owner,
                if status == "active" {
                    MembershipStatus::Active
                } else {
                    MembershipStatus::Suspended
                },
            )
        }),
        grants: grants
            .into_iter()
            .map(|(p, codes)| GrantFacts {
                project: p.map(ProjectId),
                permissions: codes.iter().map(|c| c.parse().unwrap()).collect(),
            })
            .collect(),
    }
}

async fn join(repos: &Repos, owner_ctx: &Context, who: &User) {
    let issued = repos
        .members
        .invite(
            owner_ctx,
            NewInvitation {
                email: who.email.clone(),
                role_id: None,
                valid_for: Duration::hours(1),
            },
        )
        .await
        .unwrap();
    repos
        .members
        .accept_invitation(&Context::user(who.id), &issued.token)
        .await
        .unwrap();
}

fn role_named(roles: &[Role], name: &str) -> RoleId {
    roles.iter().find(|r| r.name.as_str() == name).unwrap().id
}

#[sqlx::test(migrations = false)]
async fn rust_and_sql_agree_on_every_case(pool: PgPool) {
    let repos = crate::harness(pool.clone()).await.repos;
    let owner = user(&repos, "owner@t.io").await;
    let (t, octx) = tenant(&repos, owner.id, "acme").await;
    let mut projects = vec![];
    for slug in ["web", "api"] {
        let p = NewProject {
            slug: Slug::parse(slug).unwrap(),
            name: Name::parse(slug).unwrap(),
            description: None,
        };
        projects.push(repos.projects.create_project(&octx, p).await.unwrap().id);
    }
    let (p1, p2) = (projects[0], projects[1]);
    let roles = repos.rbac.list_roles(&octx).await.unwrap();
    let deployer = repos
        .rbac
        .create_role(
            &octx,
            NewRole {
                name: Name::parse("Deployer").unwrap(),
                scope: RoleScope::Project,
                description: None,
                permissions: vec![
                    "project.update".parse().unwrap(),
                    "environment.manage".parse().unwrap(),
                ],
            },
        )
        .await
        .unwrap();

    let mut people = vec![owner.clone()];
    for (email, grant) in [
        ("admin@t.io", Some(("Admin", None))),
        ("dev@t.io", Some(("Developer", None))),
        ("viewer@t.io", Some(("Viewer", Some(p1)))),
        ("billing@t.io", Some(("Billing Admin", None))),
        ("deployer@t.io", Some(("Deployer", Some(p2)))),
        ("suspended@t.io", Some(("Admin", None))),
        ("plain@t.io", None),
    ] {
        let u = user(&repos, email).await;
        join(&repos, &octx, &u).await;
        if let Some((role, project)) = grant {
            let id = if role == "Deployer" {
                deployer.id
            } else {
                role_named(&roles, role)
            };
            repos
                .rbac
                .grant_role(&octx, u.id, id, project)
                .await
                .unwrap();
        }
        people.push(u);
    }
    let suspended = people
        .iter()
        .find(|u| u.email.as_str() == "suspended@t.io")
        .unwrap()
        .id;
    repos
        .members
        .suspend_member(&octx, suspended)
        .await
        .unwrap();
    let outsider = user(&repos, "outsider@o.io").await;
    tenant(&repos, outsider.id, "other").await;
    people.push(outsider);

    let (mut cases, mut granted) = (0, 0);
    for person in &people {
        let ctx = Context::user(person.id).in_tenant(t.id);
        let facts = facts(&pool, t.id, person.id).await;
        for (code, _) in PERMISSIONS {
            let code = *code;
            for project in [None, Some(p1), Some(p2)] {
                let sql = repos
                    .rbac
                    .has_permission(&ctx, code, project)
                    .await
                    .unwrap();
                let rust = facts.allows(&code, project);
                assert_eq!(
                    sql, rust,
                    "{} {code} {project:?}: sql={sql} rust={rust}",
                    person.email
                );
                cases += 1;
                granted += sql as usize;
            }
        }
    }
    // Both answers occur often, so agreement is not trivially "all false".
    assert!(
        granted > 300 && cases - granted > 300,
        "granted {granted} of {cases}"
    );

    // API keys of every scope.
    let env = repos
        .projects
        .create_environment(&octx, p2, EnvironmentKind::Staging)
        .await
        .unwrap();
    let perms: Vec<PermissionCode> = vec![
        "dashboard.read".parse().unwrap(),
        "project.update".parse().unwrap(),
    ];
    for scope in [
        ApiKeyScope::Tenant,
        ApiKeyScope::Project(p1),
        ApiKeyScope::Environment(env.id),
    ] {
        let issued = repos
            .api_keys
            .create_api_key(
                &octx,
                NewApiKey {
                    name: Name::parse("k").unwrap(),
                    scope,
                    permissions: perms.clone(),
                    expires_at: None,
                },
            )
            .await
            .unwrap();
        let kctx = repos
            .auth
            .authenticate(&issued.secret, RequestMeta::default())
            .await
            .unwrap();
        let key = kctx.api_key_principal().unwrap().clone();
        // SQL answers a key's checks (the SDK's and the policies') from its
        // claims and its tenant's existence; core's evaluator, which the
        // fake uses, must agree while the tenant lives.
        let mut tx = crate::acting_as(&pool, &kctx).await;
        for (code, _) in PERMISSIONS {
            for project in [None, Some(p1), Some(p2)] {
                let sql: bool =
                    sqlx::query_scalar("SELECT insightpulse_auth.user_has_permission($1, $2, $3)")
                        .bind(code.as_str())
                        .bind(t.id.0)
                        .bind(project.map(|p| p.0))
                        .fetch_one(&mut *tx)
                        .await
                        .unwrap();
                let sdk = repos
                    .rbac
                    .has_permission(&kctx, *code, project)
                    .await
                    .unwrap();
                let rust = api_key_allows(&key, code, project);
                assert_eq!((sql, sdk), (rust, rust), "{scope:?} {code} {project:?}");
            }
        }
        tx.rollback().await.unwrap();
    }
}
