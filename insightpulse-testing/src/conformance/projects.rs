//! Conformance cases of the projects module: projects and environments.
//!
//! Rule guarded here: slugs are unique per tenant, one environment per kind
//! and project, archived projects refuse renames and new environments,
//! project-level permissions are checked on the target project (which is
//! looked up first), other tenants' projects are `NotFound`, deletes cascade
//! like the database's foreign keys, and bad input writes nothing. Every
//! change that changes something is audited once; no-ops and refused calls
//! write no entry.

use super::audit::{assert_event, assert_request, target, Trail};
use super::{assert_err, Harness};
use crate::fixtures::*;
use chrono::Duration;
use insightpulse_core::audit::Actor;
use insightpulse_core::projects::{EnvironmentKind, NewProject, Project};
use insightpulse_core::tenancy::{ApiKeyScope, NewTenant};
use insightpulse_core::{
    Clock, Context, Email, Entity, EnvironmentId, Error, Name, PermissionCode, ProjectId,
    Rejection, Repos, RequestMeta, Result, Slug, TimeZone,
};
use serde_json::json;

async fn create(r: &Repos, ctx: &Context, s: &str, description: Option<String>) -> Result<Project> {
    r.projects
        .create_project(
            ctx,
            NewProject {
                slug: slug(s),
                name: name(s),
                description,
            },
        )
        .await
}

fn slugs(projects: Vec<Project>) -> Vec<String> {
    projects.into_iter().map(|p| p.slug.to_string()).collect()
}

/// Create, read, list by slug, rename, archive, unarchive, delete — with
/// timestamps from the clock and idempotent archiving.
pub async fn project_lifecycle(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let web = create(r, &actx, "web", Some("The web app".to_owned()))
        .await
        .unwrap();
    assert_eq!(
        (web.tenant_id, web.slug.as_str(), web.name.as_str()),
        (acme.id, "web", "web")
    );
    assert_eq!(web.description.as_deref(), Some("The web app"));
    assert_eq!(web.archived_at, None);
    assert_eq!(
        (web.created_at, web.updated_at),
        (h.clock.now(), h.clock.now())
    );
    create(r, &actx, "api", None).await.unwrap();
    assert_eq!(
        slugs(r.projects.list_projects(&actx, false).await.unwrap()),
        ["api", "web"]
    );
    assert_eq!(r.projects.get_project(&actx, web.id).await.unwrap(), web);

    h.clock.advance(Duration::minutes(1));
    let renamed = r
        .projects
        .rename_project(&actx, web.id, name("Web App"))
        .await
        .unwrap();
    assert_eq!(renamed.name.as_str(), "Web App");
    assert_eq!(renamed.updated_at, h.clock.now());
    assert_eq!(renamed.created_at, web.created_at);
    assert_eq!(
        r.projects.get_project(&actx, web.id).await.unwrap(),
        renamed
    );

    h.clock.advance(Duration::minutes(1));
    let archived = r.projects.archive_project(&actx, web.id).await.unwrap();
    let archived_at = h.clock.now();
    assert_eq!(archived.archived_at, Some(archived_at));
    assert_eq!(
        slugs(r.projects.list_projects(&actx, false).await.unwrap()),
        ["api"]
    );
    assert_eq!(
        slugs(r.projects.list_projects(&actx, true).await.unwrap()),
        ["api", "web"]
    );
    h.clock.advance(Duration::minutes(1));
    assert_eq!(
        r.projects
            .archive_project(&actx, web.id)
            .await
            .unwrap()
            .archived_at,
        Some(archived_at)
    );
    assert_eq!(
        r.projects
            .get_project(&actx, web.id)
            .await
            .unwrap()
            .archived_at,
        Some(archived_at)
    );

    assert_eq!(
        r.projects
            .unarchive_project(&actx, web.id)
            .await
            .unwrap()
            .archived_at,
        None
    );
    assert_eq!(
        r.projects
            .unarchive_project(&actx, web.id)
            .await
            .unwrap()
            .archived_at,
        None
    );
    assert_eq!(
        slugs(r.projects.list_projects(&actx, false).await.unwrap()),
        ["api", "web"]
    );

    r.projects.delete_project(&actx, web.id).await.unwrap();
    assert_err!(
        r.projects.get_project(&actx, web.id).await,
        Error::NotFound {
            entity: Entity::Project
        }
    );
    assert_err!(
        r.projects.delete_project(&actx, web.id).await,
        Error::NotFound {
            entity: Entity::Project
        }
    );
    assert_err!(
        r.projects.rename_project(&actx, web.id, name("Gone")).await,
        Error::NotFound {
            entity: Entity::Project
        }
    );
    assert_err!(
        r.projects.unarchive_project(&actx, web.id).await,
        Error::NotFound {
            entity: Entity::Project
        }
    );
    assert_eq!(
        slugs(r.projects.list_projects(&actx, true).await.unwrap()),
        ["api"]
    );
}

/// A slug is taken once per tenant; other tenants may reuse it. Slugs sort
/// bytewise.
pub async fn project_slugs_are_unique_per_tenant(h: Harness) {
    let r = &h.repos;
    let (_, _, actx) = tenant_with_owner(r, "acme").await;
    let (_, _, uctx) = tenant_with_owner(r, "umbrella").await;
    create(r, &actx, "web", None).await.unwrap();
    assert_err!(
        create(r, &actx, "web", Some("again".to_owned())).await,
        Error::Conflict {
            entity: Entity::Project,
            ..
        }
    );
    // An archived project still holds its slug.
    let api = create(r, &actx, "api", None).await.unwrap();
    r.projects.archive_project(&actx, api.id).await.unwrap();
    assert_err!(
        create(r, &actx, "api", None).await,
        Error::Conflict {
            entity: Entity::Project,
            ..
        }
    );
    assert_eq!(
        r.projects.list_projects(&actx, true).await.unwrap().len(),
        2
    );
    create(r, &uctx, "web", None).await.unwrap();
    for s in ["ab", "a-c"] {
        create(r, &actx, s, None).await.unwrap();
    }
    assert_eq!(
        slugs(r.projects.list_projects(&actx, true).await.unwrap()),
        ["a-c", "ab", "api", "web"]
    );
}

/// An archived project can be neither renamed nor given environments; it
/// can be unarchived or deleted.
pub async fn archived_projects_refuse_renames_and_environments(h: Harness) {
    let r = &h.repos;
    let (_, _, actx) = tenant_with_owner(r, "acme").await;
    let p = create(r, &actx, "web", None).await.unwrap();
    r.projects.archive_project(&actx, p.id).await.unwrap();
    assert_err!(
        r.projects
            .rename_project(&actx, p.id, name("Renamed"))
            .await,
        Error::InvalidState {
            entity: Entity::Project,
            ..
        }
    );
    assert_err!(
        r.projects
            .create_environment(&actx, p.id, EnvironmentKind::Production)
            .await,
        Error::InvalidState {
            entity: Entity::Project,
            ..
        }
    );
    assert_eq!(
        r.projects
            .get_project(&actx, p.id)
            .await
            .unwrap()
            .name
            .as_str(),
        "web"
    );
    assert!(r
        .projects
        .list_environments(&actx, p.id)
        .await
        .unwrap()
        .is_empty());

    r.projects.unarchive_project(&actx, p.id).await.unwrap();
    assert_eq!(
        r.projects
            .rename_project(&actx, p.id, name("Renamed"))
            .await
            .unwrap()
            .name
            .as_str(),
        "Renamed"
    );
    environment(r, &actx, p.id, EnvironmentKind::Production).await;
    r.projects.archive_project(&actx, p.id).await.unwrap();
    r.projects.delete_project(&actx, p.id).await.unwrap();
    assert!(r
        .projects
        .list_projects(&actx, true)
        .await
        .unwrap()
        .is_empty());
}

/// Each write needs its permission; the target project is looked up before
/// the permission check; descriptions are bounded.
pub async fn project_permissions_are_checked(h: Harness) {
    let r = &h.repos;
    let (_, _, actx) = tenant_with_owner(r, "acme").await;
    let (_, vctx) = member_with_role(r, &actx, "viewer@acme.io", Some("Viewer")).await;
    let (_, dctx) = member_with_role(r, &actx, "dev@acme.io", Some("Developer")).await;
    let p = create(r, &actx, "web", None).await.unwrap();

    assert_err!(
        create(r, &vctx, "viewers", None).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.projects.rename_project(&vctx, p.id, name("V")).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.projects.archive_project(&vctx, p.id).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.projects.unarchive_project(&vctx, p.id).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.projects.delete_project(&vctx, p.id).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.projects
            .create_environment(&vctx, p.id, EnvironmentKind::Development)
            .await,
        Error::PermissionDenied { .. }
    );
    // Project-level checks look the project up first.
    assert_err!(
        r.projects
            .rename_project(&vctx, ProjectId::new(), name("V"))
            .await,
        Error::NotFound {
            entity: Entity::Project
        }
    );
    assert_err!(
        r.projects.delete_project(&vctx, ProjectId::new()).await,
        Error::NotFound {
            entity: Entity::Project
        }
    );
    assert_err!(
        r.projects
            .create_environment(&vctx, ProjectId::new(), EnvironmentKind::Development)
            .await,
        Error::NotFound {
            entity: Entity::Project
        }
    );
    let unchanged = r.projects.get_project(&vctx, p.id).await.unwrap();
    assert_eq!(unchanged, p);

    // Developers build but do not delete projects.
    let d = create(r, &dctx, "devs", None).await.unwrap();
    r.projects
        .rename_project(&dctx, p.id, name("Web"))
        .await
        .unwrap();
    let env = environment(r, &dctx, d.id, EnvironmentKind::Staging).await;
    assert_err!(
        r.projects.delete_project(&dctx, d.id).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.projects.delete_environment(&vctx, env.id).await,
        Error::PermissionDenied { .. }
    );
    r.projects.delete_environment(&dctx, env.id).await.unwrap();

    // Description: at most 2000 characters, checked before anything else.
    let too_long = "é".repeat(2001);
    assert_err!(
        create(r, &actx, "long", Some(too_long.clone())).await,
        Error::Validation {
            field: "description",
            ..
        }
    );
    assert_err!(
        create(r, &vctx, "long", Some(too_long)).await,
        Error::Validation {
            field: "description",
            ..
        }
    );
    assert_eq!(
        slugs(r.projects.list_projects(&actx, true).await.unwrap()),
        ["devs", "web"]
    );
    let longest = create(r, &actx, "long", Some("é".repeat(2000)))
        .await
        .unwrap();
    assert_eq!(longest.description.map(|d| d.chars().count()), Some(2000));
}

/// Another tenant's projects and environments are NotFound from inside a
/// tenant, and its lists are empty from outside.
pub async fn projects_of_other_tenants_are_invisible(h: Harness) {
    let r = &h.repos;
    let (_, alice, actx) = tenant_with_owner(r, "acme").await;
    let (umb, _, bctx) = tenant_with_owner(r, "umbrella").await;
    let q = create(r, &bctx, "secret", None).await.unwrap();
    let q_env = environment(r, &bctx, q.id, EnvironmentKind::Production).await;

    assert_err!(
        r.projects.get_project(&actx, q.id).await,
        Error::NotFound {
            entity: Entity::Project
        }
    );
    assert_err!(
        r.projects.rename_project(&actx, q.id, name("Mine")).await,
        Error::NotFound {
            entity: Entity::Project
        }
    );
    assert_err!(
        r.projects.archive_project(&actx, q.id).await,
        Error::NotFound {
            entity: Entity::Project
        }
    );
    assert_err!(
        r.projects.unarchive_project(&actx, q.id).await,
        Error::NotFound {
            entity: Entity::Project
        }
    );
    assert_err!(
        r.projects.delete_project(&actx, q.id).await,
        Error::NotFound {
            entity: Entity::Project
        }
    );
    assert_err!(
        r.projects
            .create_environment(&actx, q.id, EnvironmentKind::Staging)
            .await,
        Error::NotFound {
            entity: Entity::Project
        }
    );
    assert_err!(
        r.projects.list_environments(&actx, q.id).await,
        Error::NotFound {
            entity: Entity::Project
        }
    );
    assert_err!(
        r.projects.get_environment(&actx, q_env.id).await,
        Error::NotFound {
            entity: Entity::Environment
        }
    );
    assert_err!(
        r.projects.delete_environment(&actx, q_env.id).await,
        Error::NotFound {
            entity: Entity::Environment
        }
    );
    assert!(r
        .projects
        .list_projects(&actx, true)
        .await
        .unwrap()
        .is_empty());

    let in_b = Context::user(alice.id).in_tenant(umb.id);
    assert!(r
        .projects
        .list_projects(&in_b, true)
        .await
        .unwrap()
        .is_empty());
    assert_err!(
        r.projects.get_project(&in_b, q.id).await,
        Error::NotFound { .. }
    );
    assert_err!(
        r.projects.list_environments(&in_b, q.id).await,
        Error::NotFound { .. }
    );
    assert_err!(
        r.projects.archive_project(&in_b, q.id).await,
        Error::NotFound { .. }
    );
    assert_err!(
        create(r, &in_b, "planted", None).await,
        Error::NotFound { .. }
    );

    assert_eq!(r.projects.get_project(&bctx, q.id).await.unwrap(), q);
    assert_eq!(
        r.projects.list_environments(&bctx, q.id).await.unwrap(),
        vec![q_env]
    );
    assert_eq!(
        slugs(r.projects.list_projects(&bctx, true).await.unwrap()),
        ["secret"]
    );
}

/// One environment per kind and project, listed in kind order.
pub async fn environments_are_one_per_kind_in_kind_order(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let p = create(r, &actx, "web", None).await.unwrap();
    let q = create(r, &actx, "api", None).await.unwrap();
    let prod = environment(r, &actx, p.id, EnvironmentKind::Production).await;
    assert_eq!(
        (prod.tenant_id, prod.project_id, prod.kind),
        (acme.id, p.id, EnvironmentKind::Production)
    );
    assert_eq!(prod.created_at, h.clock.now());
    h.clock.advance(Duration::seconds(1));
    let dev = environment(r, &actx, p.id, EnvironmentKind::Development).await;
    h.clock.advance(Duration::seconds(1));
    let staging = environment(r, &actx, p.id, EnvironmentKind::Staging).await;
    assert_eq!(
        r.projects.list_environments(&actx, p.id).await.unwrap(),
        vec![dev.clone(), staging.clone(), prod.clone()]
    );
    assert_err!(
        r.projects
            .create_environment(&actx, p.id, EnvironmentKind::Production)
            .await,
        Error::Conflict {
            entity: Entity::Environment,
            ..
        }
    );
    assert_eq!(
        r.projects
            .list_environments(&actx, p.id)
            .await
            .unwrap()
            .len(),
        3
    );
    let q_prod = environment(r, &actx, q.id, EnvironmentKind::Production).await;
    assert_eq!(
        r.projects.list_environments(&actx, q.id).await.unwrap(),
        vec![q_prod]
    );
    assert_eq!(
        r.projects.get_environment(&actx, staging.id).await.unwrap(),
        staging
    );

    r.projects
        .delete_environment(&actx, staging.id)
        .await
        .unwrap();
    assert_eq!(
        r.projects.list_environments(&actx, p.id).await.unwrap(),
        vec![dev, prod]
    );
    assert_err!(
        r.projects.get_environment(&actx, staging.id).await,
        Error::NotFound {
            entity: Entity::Environment
        }
    );
    assert_err!(
        r.projects.delete_environment(&actx, staging.id).await,
        Error::NotFound {
            entity: Entity::Environment
        }
    );
    assert_err!(
        r.projects
            .delete_environment(&actx, EnvironmentId::new())
            .await,
        Error::NotFound {
            entity: Entity::Environment
        }
    );
    assert_err!(
        r.projects.list_environments(&actx, ProjectId::new()).await,
        Error::NotFound {
            entity: Entity::Project
        }
    );
    // The kind is free again.
    environment(r, &actx, p.id, EnvironmentKind::Staging).await;
}

/// Deleting a project deletes its environments, its project-level grants and
/// the keys scoped to it — and nothing of other projects.
pub async fn deleting_a_project_cascades(h: Harness) {
    let r = &h.repos;
    let (_, _, actx) = tenant_with_owner(r, "acme").await;
    let (bob, _) = member_with_role(r, &actx, "bob@acme.io", Some("Developer")).await;
    let p = create(r, &actx, "web", None).await.unwrap();
    let q = create(r, &actx, "api", None).await.unwrap();
    let p_dev = environment(r, &actx, p.id, EnvironmentKind::Development).await;
    let q_dev = environment(r, &actx, q.id, EnvironmentKind::Development).await;
    let viewer = role_named(r, &actx, "Viewer").await;
    let on_p = r
        .rbac
        .grant_role(&actx, bob.id, viewer.id, Some(p.id))
        .await
        .unwrap();
    let on_q = r
        .rbac
        .grant_role(&actx, bob.id, viewer.id, Some(q.id))
        .await
        .unwrap();
    let (_, p_secret, _) = api_key(r, &actx, ApiKeyScope::Project(p.id), &["project.update"]).await;
    let (_, env_secret, _) = api_key(
        r,
        &actx,
        ApiKeyScope::Environment(p_dev.id),
        &["environment.manage"],
    )
    .await;
    let (q_key, q_secret, _) =
        api_key(r, &actx, ApiKeyScope::Project(q.id), &["project.update"]).await;
    let (t_key, t_secret, _) = api_key(r, &actx, ApiKeyScope::Tenant, &["project.update"]).await;

    r.projects.delete_project(&actx, p.id).await.unwrap();
    assert_err!(
        r.projects.get_environment(&actx, p_dev.id).await,
        Error::NotFound { .. }
    );
    assert_eq!(
        r.projects.get_environment(&actx, q_dev.id).await.unwrap(),
        q_dev
    );
    let grants: Vec<_> = r
        .rbac
        .list_grants(&actx, Some(bob.id))
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.id)
        .collect();
    assert!(!grants.contains(&on_p.id));
    assert!(grants.contains(&on_q.id));
    assert_eq!(
        grants.len(),
        2,
        "the tenant-wide Developer grant and the grant on api remain"
    );
    for gone in [p_secret, env_secret] {
        assert_err!(
            r.auth.authenticate(&gone, RequestMeta::default()).await,
            Error::Unauthenticated {
                reason: Rejection::Unknown,
                ..
            }
        );
    }
    r.auth
        .authenticate(&q_secret, RequestMeta::default())
        .await
        .unwrap();
    r.auth
        .authenticate(&t_secret, RequestMeta::default())
        .await
        .unwrap();
    let keys: Vec<_> = r
        .api_keys
        .list_api_keys(&actx)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(keys.len(), 2);
    assert!(keys.contains(&q_key.id) && keys.contains(&t_key.id));
    // The slug is free again.
    create(r, &actx, "web", None).await.unwrap();
}

/// Deleting an environment deletes the keys scoped to it only.
pub async fn deleting_an_environment_cascades_its_keys(h: Harness) {
    let r = &h.repos;
    let (_, _, actx) = tenant_with_owner(r, "acme").await;
    let p = create(r, &actx, "web", None).await.unwrap();
    let dev = environment(r, &actx, p.id, EnvironmentKind::Development).await;
    let prod = environment(r, &actx, p.id, EnvironmentKind::Production).await;
    let (_, dev_secret, _) = api_key(
        r,
        &actx,
        ApiKeyScope::Environment(dev.id),
        &["environment.manage"],
    )
    .await;
    let (_, prod_secret, _) = api_key(
        r,
        &actx,
        ApiKeyScope::Environment(prod.id),
        &["environment.manage"],
    )
    .await;
    let (_, project_secret, _) = api_key(
        r,
        &actx,
        ApiKeyScope::Project(p.id),
        &["environment.manage"],
    )
    .await;

    r.projects.delete_environment(&actx, dev.id).await.unwrap();
    assert_err!(
        r.auth
            .authenticate(&dev_secret, RequestMeta::default())
            .await,
        Error::Unauthenticated {
            reason: Rejection::Unknown,
            ..
        }
    );
    let prod_ctx = r
        .auth
        .authenticate(&prod_secret, RequestMeta::default())
        .await
        .unwrap();
    assert_eq!(
        prod_ctx.api_key_principal().unwrap().environment_id,
        Some(prod.id)
    );
    r.auth
        .authenticate(&project_secret, RequestMeta::default())
        .await
        .unwrap();
    assert_eq!(r.api_keys.list_api_keys(&actx).await.unwrap().len(), 2);
    assert_eq!(
        r.projects.list_environments(&actx, p.id).await.unwrap(),
        vec![prod]
    );
}

/// Invalid slugs, emails, names, time zones and permission codes are
/// refused by the value types, so a host handler never reaches the
/// repository with them — and nothing is written.
pub async fn bad_input_is_rejected_before_anything_is_written(h: Harness) {
    let r = &h.repos;
    let (_, alice, actx) = tenant_with_owner(r, "acme").await;
    let tenants_before = r
        .tenants
        .list_my_tenants(&Context::user(alice.id))
        .await
        .unwrap();
    let projects_before = r.projects.list_projects(&actx, true).await.unwrap();

    // What a host handler does: parse the raw input, then call the repository.
    async fn handle_create_project(
        r: &Repos,
        ctx: &Context,
        raw_slug: &str,
        raw_name: &str,
    ) -> Result<Project> {
        let new = NewProject {
            slug: Slug::parse(raw_slug)?,
            name: Name::parse(raw_name)?,
            description: None,
        };
        r.projects.create_project(ctx, new).await
    }
    async fn handle_create_tenant(
        r: &Repos,
        ctx: &Context,
        raw_slug: &str,
        raw_tz: &str,
    ) -> Result<()> {
        let new = NewTenant {
            slug: Slug::parse(raw_slug)?,
            name: Name::parse(raw_slug)?,
            timezone: TimeZone::parse(raw_tz)?,
        };
        r.tenants.create_tenant(ctx, new).await.map(|_| ())
    }

    for raw in [
        "Bad Slug",
        "-web",
        "w",
        "web-",
        "we--b",
        "ünï",
        &"a".repeat(64),
    ] {
        assert_err!(
            handle_create_project(r, &actx, raw, "Web").await,
            Error::Validation { field: "slug", .. }
        );
    }
    for raw in ["", "   ", "tab\there", &"n".repeat(201)] {
        assert_err!(
            handle_create_project(r, &actx, "web", raw).await,
            Error::Validation { field: "name", .. }
        );
    }
    for tz in ["Mars/Olympus", "", "UTC+25"] {
        assert_err!(
            handle_create_tenant(r, &Context::user(alice.id), "newco", tz).await,
            Error::Validation {
                field: "timezone",
                ..
            }
        );
    }
    assert_err!(
        handle_create_tenant(r, &Context::user(alice.id), "New Co", "UTC").await,
        Error::Validation { field: "slug", .. }
    );
    for raw in ["not an email", "a@b", "@acme.io", "bob@"] {
        assert!(
            matches!(
                Email::parse(raw),
                Err(Error::Validation { field: "email", .. })
            ),
            "{raw}"
        );
    }
    for raw in ["billing", "Billing.Read", "billing..read", "billing.read!"] {
        assert!(
            matches!(
                PermissionCode::parse(raw),
                Err(Error::Validation {
                    field: "permission",
                    ..
                })
            ),
            "{raw}"
        );
    }

    assert_eq!(
        r.tenants
            .list_my_tenants(&Context::user(alice.id))
            .await
            .unwrap(),
        tenants_before
    );
    assert_eq!(
        r.projects.list_projects(&actx, true).await.unwrap(),
        projects_before
    );
    assert_err!(
        r.tenants
            .get_tenant_by_slug(&system(), &slug("newco"))
            .await,
        Error::NotFound { .. }
    );
    // The same handlers succeed with valid input, so the refusals above are
    // the value types' doing.
    handle_create_project(r, &actx, "web", "Web").await.unwrap();
    handle_create_tenant(r, &Context::user(alice.id), "newco", "Asia/Tokyo")
        .await
        .unwrap();
    assert_eq!(
        r.projects.list_projects(&actx, true).await.unwrap().len(),
        projects_before.len() + 1
    );
}

/// Every change to a project or environment writes its entry once, in the
/// change's transaction, with the acting principal and the request:
/// `project.created`, `project.renamed` (the name's change only),
/// `project.archived`, `project.unarchived`, `project.deleted`,
/// `environment.created`, `environment.deleted`. A no-op (the same name,
/// archiving an archived project) and a refused call write nothing.
pub async fn project_changes_are_audited(h: Harness) {
    let r = &h.repos;
    let (acme, alice, actx) = tenant_with_owner(r, "acme").await;
    let (_, vctx) = member_with_role(r, &actx, "viewer@acme.io", Some("Viewer")).await;
    let me = Actor::User(alice.id);
    let at = |id: &str| actx.clone().with_request(request(id));
    let mut t = Trail::new(r, acme.id).await;

    let web = r
        .projects
        .create_project(
            &at("req-create"),
            NewProject {
                slug: slug("web"),
                name: name("Web"),
                description: Some("the website".to_owned()),
            },
        )
        .await
        .unwrap();
    let e = t.one("create_project").await;
    assert_event(
        &e,
        "project.created",
        "project",
        target(web.id),
        &me,
        json!({"slug": "web", "name": "Web"}),
    );
    assert_request(&e, "req-create");
    assert_eq!(e.created_at, h.clock.now());
    assert_err!(
        create(r, &actx, "web", None).await,
        Error::Conflict {
            entity: Entity::Project,
            ..
        }
    );
    assert_err!(
        create(r, &vctx, "docs", None).await,
        Error::PermissionDenied { .. }
    );
    t.none("refused creates").await;

    h.clock.advance(Duration::minutes(1));
    r.projects
        .rename_project(&at("req-rename"), web.id, name("Web App"))
        .await
        .unwrap();
    let e = t.one("rename_project").await;
    assert_event(
        &e,
        "project.renamed",
        "project",
        target(web.id),
        &me,
        json!({"name": {"from": "Web", "to": "Web App"}}),
    );
    assert_request(&e, "req-rename");
    r.projects
        .rename_project(&actx, web.id, name("Web App"))
        .await
        .unwrap();
    t.none("renaming to the same name").await;

    r.projects
        .archive_project(&at("req-archive"), web.id)
        .await
        .unwrap();
    let e = t.one("archive_project").await;
    assert_event(
        &e,
        "project.archived",
        "project",
        target(web.id),
        &me,
        json!({}),
    );
    assert_request(&e, "req-archive");
    r.projects.archive_project(&actx, web.id).await.unwrap();
    t.none("archiving an archived project").await;
    assert_err!(
        r.projects.rename_project(&actx, web.id, name("Nope")).await,
        Error::InvalidState { .. }
    );
    assert_err!(
        r.projects
            .create_environment(&actx, web.id, EnvironmentKind::Production)
            .await,
        Error::InvalidState { .. }
    );
    t.none("changes of an archived project").await;

    r.projects
        .unarchive_project(&at("req-unarchive"), web.id)
        .await
        .unwrap();
    let e = t.one("unarchive_project").await;
    assert_event(
        &e,
        "project.unarchived",
        "project",
        target(web.id),
        &me,
        json!({}),
    );
    assert_request(&e, "req-unarchive");
    r.projects.unarchive_project(&actx, web.id).await.unwrap();
    t.none("unarchiving an active project").await;

    let prod = r
        .projects
        .create_environment(&at("req-env"), web.id, EnvironmentKind::Production)
        .await
        .unwrap();
    let env_diff = json!({"project_id": web.id, "kind": "production"});
    let e = t.one("create_environment").await;
    assert_event(
        &e,
        "environment.created",
        "environment",
        target(prod.id),
        &me,
        env_diff.clone(),
    );
    assert_request(&e, "req-env");
    assert_err!(
        r.projects
            .create_environment(&actx, web.id, EnvironmentKind::Production)
            .await,
        Error::Conflict { .. }
    );
    assert_err!(
        r.projects.delete_environment(&vctx, prod.id).await,
        Error::PermissionDenied { .. }
    );
    t.none("refused environment changes").await;
    r.projects
        .delete_environment(&at("req-env-delete"), prod.id)
        .await
        .unwrap();
    let e = t.one("delete_environment").await;
    assert_event(
        &e,
        "environment.deleted",
        "environment",
        target(prod.id),
        &me,
        env_diff,
    );
    assert_request(&e, "req-env-delete");

    // An API key acts as itself.
    let (key, _, kctx) = api_key(r, &actx, ApiKeyScope::Tenant, &["project.update"]).await;
    t.take().await;
    r.projects
        .rename_project(&kctx, web.id, name("Website"))
        .await
        .unwrap();
    let e = t.one("rename by a key").await;
    assert_event(
        &e,
        "project.renamed",
        "project",
        target(web.id),
        &Actor::ApiKey(key.id),
        json!({"name": {"from": "Web App", "to": "Website"}}),
    );

    // Deleting writes one entry, not one per cascaded row.
    environment(r, &actx, web.id, EnvironmentKind::Staging).await;
    t.take().await;
    assert_err!(
        r.projects.delete_project(&vctx, web.id).await,
        Error::PermissionDenied { .. }
    );
    t.none("refused delete").await;
    r.projects
        .delete_project(&at("req-delete"), web.id)
        .await
        .unwrap();
    let e = t.one("delete_project").await;
    assert_event(
        &e,
        "project.deleted",
        "project",
        target(web.id),
        &me,
        json!({"slug": "web"}),
    );
    assert_request(&e, "req-delete");
    assert_err!(
        r.projects.delete_project(&actx, web.id).await,
        Error::NotFound { .. }
    );
    t.none("deleting a deleted project").await;
}
