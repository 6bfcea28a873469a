//! Projects: lifecycle, unique slugs, archiving, permissions on the target
//! project, other tenants' projects, cascades and bad input.

use super::super::{assert_err, Harness};
use super::{create, slugs};
use crate::fixtures::*;
use chrono::Duration;
use insightpulse_core::projects::{EnvironmentKind, NewProject, Project};
use insightpulse_core::tenancy::{ApiKeyScope, NewTenant};
use insightpulse_core::{
    Clock, Context, Email, Entity, Error, Name, PermissionCode, ProjectId, Rejection, Repos,
    RequestMeta, Result, Slug, TimeZone,
};

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
