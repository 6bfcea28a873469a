//! The audit entries of project and environment changes.

use super::super::audit::{assert_event, assert_request, target, Trail};
use super::super::{assert_err, Harness};
use super::create;
use crate::fixtures::*;
use chrono::Duration;
use insightpulse_core::audit::Actor;
use insightpulse_core::projects::{EnvironmentKind, NewProject};
use insightpulse_core::tenancy::ApiKeyScope;
use insightpulse_core::{Clock, Entity, Error};
use serde_json::json;

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
