//! Conformance cases of idempotent creates (`insightpulse_core::idempotency`):
//! `create_project`, `create_environment`, `create_team`, `create_role` and
//! `AuditRepo::record_event` under a request's idempotency key. (Sign-up and
//! `create_tenant` take keys too; their cases live with them in `tenancy`.)
//!
//! Rule guarded here: within 24 hours, the same principal repeating a call
//! with the same key and input gets the first call's row as it is now and
//! nothing new is written (no row, no audit entry) — even when the repeats
//! race; the key with anything else is a `Conflict` on the key; a call that
//! failed leaves its key unused; a replay is checked like the call itself
//! (tenant, permission) and finds nothing once the row is gone.

use super::audit::{event, join_all, BoxFuture, Trail};
use super::{assert_err, Harness};
use crate::fixtures::*;
use chrono::Duration;
use insightpulse_core::projects::{EnvironmentKind, NewProject, Project};
use insightpulse_core::tenancy::{ApiKeyScope, NewRole, NewTeam, RoleScope};
use insightpulse_core::{Clock, Context, Entity, Error, IdempotencyKey, Result};

/// `ctx` with the idempotency key `key`.
fn keyed(ctx: &Context, key: &str) -> Context {
    ctx.clone()
        .with_idempotency_key(IdempotencyKey::parse(key).expect("valid key"))
}

fn new_project(s: &str) -> NewProject {
    NewProject {
        slug: slug(s),
        name: name(s),
        description: None,
    }
}

fn new_team(s: &str) -> NewTeam {
    NewTeam {
        slug: slug(s),
        name: name(s),
    }
}

fn new_role(n: &str, permissions: &[&str]) -> NewRole {
    NewRole {
        name: name(n),
        scope: RoleScope::Org,
        description: None,
        permissions: codes(permissions),
    }
}

/// Asserts a `Conflict` on the idempotency key.
macro_rules! assert_key_conflict {
    ($result:expr) => {
        assert_err!(
            $result,
            Error::Conflict {
                entity: Entity::IdempotencyKey,
                field: "key"
            }
        )
    };
}

/// Each create repeated under its key returns the first call's row; no
/// second row and no second audit entry is written.
pub async fn repeated_creates_with_one_key_make_one_row(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let mut t = Trail::new(r, acme.id).await;

    let k = keyed(&actx, "project-1");
    let web = r
        .projects
        .create_project(&k, new_project("web"))
        .await
        .unwrap();
    t.one("create_project").await;
    h.clock.advance(Duration::minutes(5));
    let again = r
        .projects
        .create_project(&k, new_project("web"))
        .await
        .unwrap();
    assert_eq!(again, web);
    assert_eq!(
        r.projects.list_projects(&actx, true).await.unwrap(),
        vec![web.clone()]
    );
    t.none("replayed create_project").await;

    let k = keyed(&actx, "environment-1");
    let prod = r
        .projects
        .create_environment(&k, web.id, EnvironmentKind::Production)
        .await
        .unwrap();
    t.one("create_environment").await;
    let again = r
        .projects
        .create_environment(&k, web.id, EnvironmentKind::Production)
        .await
        .unwrap();
    assert_eq!(again, prod);
    assert_eq!(
        r.projects.list_environments(&actx, web.id).await.unwrap(),
        vec![prod]
    );
    t.none("replayed create_environment").await;

    let k = keyed(&actx, "team-1");
    let ops = r.teams.create_team(&k, new_team("ops")).await.unwrap();
    let again = r.teams.create_team(&k, new_team("ops")).await.unwrap();
    assert_eq!(again, ops);
    assert_eq!(r.teams.list_teams(&actx).await.unwrap(), vec![ops]);

    let k = keyed(&actx, "role-1");
    let support = r
        .rbac
        .create_role(&k, new_role("Support", &["ticket.read"]))
        .await
        .unwrap();
    t.one("create_role").await;
    let again = r
        .rbac
        .create_role(&k, new_role("Support", &["ticket.read"]))
        .await
        .unwrap();
    assert_eq!(again, support);
    let own: Vec<_> = r
        .rbac
        .list_roles(&actx)
        .await
        .unwrap()
        .into_iter()
        .filter(|role| role.tenant_id.is_some())
        .collect();
    assert_eq!(own, vec![support]);
    t.none("replayed create_role").await;

    let k = keyed(&actx, "event-1");
    let first = r.audit.record_event(&k, event("app.step")).await.unwrap();
    let entry = t.one("record").await;
    assert_eq!(entry.id, first);
    let again = r.audit.record_event(&k, event("app.step")).await.unwrap();
    assert_eq!(again, first);
    t.none("replayed record").await;
}

/// A key already used for other input — another input to the same call,
/// another call, the same input in another tenant — is a `Conflict` on the
/// key, and nothing is written.
pub async fn other_input_under_a_key_conflicts_on_the_key(h: Harness) {
    let r = &h.repos;
    let (acme, alice, actx) = tenant_with_owner(r, "acme").await;
    let (_, gctx) = create_tenant(r, &alice, "globex").await;
    let kp = keyed(&actx, "k-project");
    let web = r
        .projects
        .create_project(&kp, new_project("web"))
        .await
        .unwrap();
    let ke = keyed(&actx, "k-environment");
    let prod = r
        .projects
        .create_environment(&ke, web.id, EnvironmentKind::Production)
        .await
        .unwrap();
    let kt = keyed(&actx, "k-team");
    let ops = r.teams.create_team(&kt, new_team("ops")).await.unwrap();
    let kr = keyed(&actx, "k-role");
    let support = r
        .rbac
        .create_role(&kr, new_role("Support", &["ticket.read"]))
        .await
        .unwrap();
    let ka = keyed(&actx, "k-event");
    r.audit.record_event(&ka, event("app.step")).await.unwrap();
    let mut t = Trail::new(r, acme.id).await;

    // Other input to the same call.
    assert_key_conflict!(r.projects.create_project(&kp, new_project("api")).await);
    assert_key_conflict!(
        r.projects
            .create_project(
                &kp,
                NewProject {
                    description: Some("the website".to_owned()),
                    ..new_project("web")
                }
            )
            .await
    );
    assert_key_conflict!(
        r.projects
            .create_environment(&ke, web.id, EnvironmentKind::Staging)
            .await
    );
    assert_key_conflict!(r.teams.create_team(&kt, new_team("dev")).await);
    assert_key_conflict!(
        r.rbac
            .create_role(&kr, new_role("Support", &["ticket.read", "ticket.update"]))
            .await
    );
    assert_key_conflict!(r.audit.record_event(&ka, event("app.other")).await);

    // Another call under a used key.
    assert_key_conflict!(r.teams.create_team(&kp, new_team("web")).await);
    assert_key_conflict!(
        r.rbac
            .create_role(&kp, new_role("Web", &["ticket.read"]))
            .await
    );
    assert_key_conflict!(
        r.projects
            .create_environment(&kp, web.id, EnvironmentKind::Staging)
            .await
    );
    assert_key_conflict!(r.audit.record_event(&kt, event("app.step")).await);
    assert_key_conflict!(r.projects.create_project(&kt, new_project("ops")).await);

    // The same input in another of the principal's tenants.
    assert_key_conflict!(
        r.projects
            .create_project(&keyed(&gctx, "k-project"), new_project("web"))
            .await
    );

    t.none("conflicting keys").await;
    assert_eq!(
        r.projects.list_projects(&actx, true).await.unwrap(),
        vec![web.clone()]
    );
    assert!(r
        .projects
        .list_projects(&gctx, true)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        r.projects.list_environments(&actx, web.id).await.unwrap(),
        vec![prod]
    );
    assert_eq!(r.teams.list_teams(&actx).await.unwrap(), vec![ops]);
    let own: Vec<_> = r
        .rbac
        .list_roles(&actx)
        .await
        .unwrap()
        .into_iter()
        .filter(|role| role.tenant_id.is_some())
        .collect();
    assert_eq!(own, vec![support]);
    // The first call still replays.
    assert_eq!(
        r.projects
            .create_project(&kp, new_project("web"))
            .await
            .unwrap(),
        web
    );
}

/// A key belongs to the principal that used it: another user, an API key
/// or the system using the same key makes its own call.
pub async fn keys_belong_to_their_principal(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let (_, bctx) = member_with_role(r, &actx, "bob@acme.io", Some("Developer")).await;
    let (_, _, kctx) = api_key(r, &actx, ApiKeyScope::Tenant, &["project.create"]).await;
    let sctx = system().in_tenant(acme.id);
    let create = |ctx: &Context, s: &str| {
        let (r, ctx, new) = (r.clone(), keyed(ctx, "shared-key"), new_project(s));
        async move { r.projects.create_project(&ctx, new).await }
    };

    let web = create(&actx, "web").await.unwrap();
    // Bob's call with the same key and input is his own: a new create,
    // which finds the slug taken — never Alice's project.
    assert_err!(
        create(&bctx, "web").await,
        Error::Conflict {
            entity: Entity::Project,
            field: "slug"
        }
    );
    let bobs = create(&bctx, "bobs").await.unwrap();
    let cli = create(&kctx, "cli").await.unwrap();
    let jobs = create(&sctx, "jobs").await.unwrap();
    let mut ids = vec![web.id, bobs.id, cli.id, jobs.id];
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4);
    assert_eq!(
        r.projects.list_projects(&actx, true).await.unwrap().len(),
        4
    );

    // Each replays its own.
    assert_eq!(create(&actx, "web").await.unwrap().id, web.id);
    assert_eq!(create(&bctx, "bobs").await.unwrap().id, bobs.id);
    assert_eq!(create(&kctx, "cli").await.unwrap().id, cli.id);
    assert_eq!(create(&sctx, "jobs").await.unwrap().id, jobs.id);
    assert_eq!(
        r.projects.list_projects(&actx, true).await.unwrap().len(),
        4
    );
}

/// A call that failed — a taken slug, bad input, a missing permission, a
/// refused state — stores nothing: its key then works for the next call.
pub async fn failed_calls_leave_their_key_unused(h: Harness) {
    let r = &h.repos;
    let (_, _, actx) = tenant_with_owner(r, "acme").await;
    let (viewer, vctx) = member_with_role(r, &actx, "viewer@acme.io", Some("Viewer")).await;
    project(r, &actx, "web").await;

    let k = keyed(&actx, "retry-project");
    assert_err!(
        r.projects.create_project(&k, new_project("web")).await,
        Error::Conflict {
            entity: Entity::Project,
            field: "slug"
        }
    );
    assert_err!(
        r.projects
            .create_project(
                &k,
                NewProject {
                    description: Some("x".repeat(2001)),
                    ..new_project("api")
                }
            )
            .await,
        Error::Validation {
            field: "description",
            ..
        }
    );
    let api = r
        .projects
        .create_project(&k, new_project("api"))
        .await
        .unwrap();
    assert_eq!(
        r.projects
            .create_project(&k, new_project("api"))
            .await
            .unwrap()
            .id,
        api.id
    );

    let kv = keyed(&vctx, "retry-permission");
    assert_err!(
        r.projects.create_project(&kv, new_project("docs")).await,
        Error::PermissionDenied { .. }
    );
    let developer = role_named(r, &actx, "Developer").await;
    r.rbac
        .grant_role(&actx, viewer.id, developer.id, None)
        .await
        .unwrap();
    let docs = r
        .projects
        .create_project(&kv, new_project("docs"))
        .await
        .unwrap();
    assert_eq!(docs.slug.as_str(), "docs");

    let ke = keyed(&actx, "retry-environment");
    r.projects.archive_project(&actx, api.id).await.unwrap();
    assert_err!(
        r.projects
            .create_environment(&ke, api.id, EnvironmentKind::Production)
            .await,
        Error::InvalidState {
            entity: Entity::Project,
            ..
        }
    );
    r.projects.unarchive_project(&actx, api.id).await.unwrap();
    let prod = r
        .projects
        .create_environment(&ke, api.id, EnvironmentKind::Production)
        .await
        .unwrap();
    assert_eq!(prod.project_id, api.id);

    r.teams.create_team(&actx, new_team("ops")).await.unwrap();
    let kt = keyed(&actx, "retry-team");
    assert_err!(
        r.teams.create_team(&kt, new_team("ops")).await,
        Error::Conflict {
            entity: Entity::Team,
            field: "slug"
        }
    );
    r.teams.create_team(&kt, new_team("dev")).await.unwrap();

    custom_role(r, &actx, "Support", RoleScope::Org, &["ticket.read"]).await;
    let kr = keyed(&actx, "retry-role");
    assert_err!(
        r.rbac
            .create_role(&kr, new_role("Support", &["ticket.read"]))
            .await,
        Error::Conflict {
            entity: Entity::Role,
            field: "name"
        }
    );
    r.rbac
        .create_role(&kr, new_role("Helpdesk", &["ticket.read"]))
        .await
        .unwrap();
}

/// Without a key nothing is deduplicated: a repeated event is a second
/// entry, a repeated create meets the uniqueness rules.
pub async fn calls_without_a_key_are_not_deduplicated(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let mut t = Trail::new(r, acme.id).await;
    let first = r
        .audit
        .record_event(&actx, event("app.step"))
        .await
        .unwrap();
    let second = r
        .audit
        .record_event(&actx, event("app.step"))
        .await
        .unwrap();
    assert_ne!(first, second);
    assert_eq!(t.take().await.len(), 2);

    r.projects
        .create_project(&actx, new_project("web"))
        .await
        .unwrap();
    assert_err!(
        r.projects.create_project(&actx, new_project("web")).await,
        Error::Conflict {
            entity: Entity::Project,
            field: "slug"
        }
    );
    r.teams.create_team(&actx, new_team("ops")).await.unwrap();
    assert_err!(
        r.teams.create_team(&actx, new_team("ops")).await,
        Error::Conflict {
            entity: Entity::Team,
            field: "slug"
        }
    );
}

/// A key is remembered for 24 hours from its first use; then the same
/// call is a new one, and the key is claimed again by whatever uses it.
pub async fn keys_are_forgotten_after_24_hours(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let k = keyed(&actx, "daily");
    let ka = keyed(&actx, "daily-event");
    let web = r
        .projects
        .create_project(&k, new_project("web"))
        .await
        .unwrap();
    let entry = r.audit.record_event(&ka, event("app.step")).await.unwrap();

    h.clock.advance(Duration::hours(24) - Duration::seconds(1));
    assert_eq!(
        r.projects
            .create_project(&k, new_project("web"))
            .await
            .unwrap(),
        web
    );
    assert_eq!(
        r.audit.record_event(&ka, event("app.step")).await.unwrap(),
        entry
    );
    let mut t = Trail::new(r, acme.id).await;

    h.clock.advance(Duration::seconds(1));
    assert_err!(
        r.projects.create_project(&k, new_project("web")).await,
        Error::Conflict {
            entity: Entity::Project,
            field: "slug"
        }
    );
    let later = r.audit.record_event(&ka, event("app.step")).await.unwrap();
    assert_ne!(later, entry);
    assert_eq!(t.take().await.len(), 1);
    // The forgotten key is free for other input, and then replays that.
    let api = r
        .projects
        .create_project(&k, new_project("api"))
        .await
        .unwrap();
    assert_eq!(
        r.projects
            .create_project(&k, new_project("api"))
            .await
            .unwrap(),
        api
    );
    assert_key_conflict!(r.projects.create_project(&k, new_project("web")).await);
}

/// A replay returns the row as it is now, is checked like the call itself
/// (tenant visible, permission held), and finds nothing once the row is gone.
pub async fn replays_return_the_row_as_it_is_now(h: Harness) {
    let r = &h.repos;
    let (_, _, actx) = tenant_with_owner(r, "acme").await;
    let (bob, bctx) = member_with_role(r, &actx, "bob@acme.io", Some("Developer")).await;
    let k = keyed(&bctx, "now");
    let web = r
        .projects
        .create_project(&k, new_project("web"))
        .await
        .unwrap();

    h.clock.advance(Duration::minutes(1));
    r.projects
        .rename_project(&actx, web.id, name("Web App"))
        .await
        .unwrap();
    r.projects.archive_project(&actx, web.id).await.unwrap();
    let replay = r
        .projects
        .create_project(&k, new_project("web"))
        .await
        .unwrap();
    assert_eq!(replay.id, web.id);
    assert_eq!(replay.name.as_str(), "Web App");
    assert_eq!(replay.archived_at, Some(h.clock.now()));
    assert_eq!(replay, r.projects.get_project(&actx, web.id).await.unwrap());

    r.members.suspend_member(&actx, bob.id).await.unwrap();
    assert_err!(
        r.projects.create_project(&k, new_project("web")).await,
        Error::NotFound {
            entity: Entity::Tenant
        }
    );
    r.members.reactivate_member(&actx, bob.id).await.unwrap();
    for grant in r.rbac.list_grants(&actx, Some(bob.id)).await.unwrap() {
        r.rbac.revoke_role(&actx, grant.id).await.unwrap();
    }
    assert_err!(
        r.projects.create_project(&k, new_project("web")).await,
        Error::PermissionDenied { .. }
    );

    // Gone rows are not replayed, and not made again.
    let k = keyed(&actx, "gone-project");
    let api = r
        .projects
        .create_project(&k, new_project("api"))
        .await
        .unwrap();
    let ke = keyed(&actx, "gone-environment");
    let prod = r
        .projects
        .create_environment(&ke, api.id, EnvironmentKind::Production)
        .await
        .unwrap();
    r.projects.delete_environment(&actx, prod.id).await.unwrap();
    assert_err!(
        r.projects
            .create_environment(&ke, api.id, EnvironmentKind::Production)
            .await,
        Error::NotFound {
            entity: Entity::Environment
        }
    );
    r.projects.delete_project(&actx, api.id).await.unwrap();
    assert_err!(
        r.projects.create_project(&k, new_project("api")).await,
        Error::NotFound {
            entity: Entity::Project
        }
    );
    let kt = keyed(&actx, "gone-team");
    let ops = r.teams.create_team(&kt, new_team("ops")).await.unwrap();
    r.teams.delete_team(&actx, ops.id).await.unwrap();
    assert_err!(
        r.teams.create_team(&kt, new_team("ops")).await,
        Error::NotFound {
            entity: Entity::Team
        }
    );
    let kr = keyed(&actx, "gone-role");
    let support = r
        .rbac
        .create_role(&kr, new_role("Support", &["ticket.read"]))
        .await
        .unwrap();
    r.rbac.delete_role(&actx, support.id).await.unwrap();
    assert_err!(
        r.rbac
            .create_role(&kr, new_role("Support", &["ticket.read"]))
            .await,
        Error::NotFound {
            entity: Entity::Role
        }
    );
    assert!(r
        .projects
        .list_projects(&actx, true)
        .await
        .unwrap()
        .iter()
        .all(|p| p.slug.as_str() != "api"));
    assert!(r.teams.list_teams(&actx).await.unwrap().is_empty());
}

/// Eight racing calls with one key make one project; every call returns it.
pub async fn concurrent_creates_with_one_key_make_one_row(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let mut t = Trail::new(r, acme.id).await;
    let k = keyed(&actx, "burst");
    let calls: Vec<BoxFuture<'static, Result<Project>>> = (0..8)
        .map(|_| {
            let (r, k) = (r.clone(), k.clone());
            Box::pin(async move { r.projects.create_project(&k, new_project("web")).await })
                as BoxFuture<'static, Result<Project>>
        })
        .collect();
    let results = join_all(calls).await;
    let projects = r.projects.list_projects(&actx, true).await.unwrap();
    assert_eq!(projects.len(), 1, "{projects:#?}");
    for result in results {
        assert_eq!(result.unwrap().id, projects[0].id);
    }
    let entries = t.take().await;
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(entries[0].action.as_str(), "project.created");
}

/// This module's conformance cases, for [`conformance_tests!`](crate::conformance_tests):
/// a new case is listed here, next to its module.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases_idempotency {
    ($backend:tt) => {
        $crate::__conformance_module!($backend idempotency [
            repeated_creates_with_one_key_make_one_row,
            other_input_under_a_key_conflicts_on_the_key,
            keys_belong_to_their_principal,
            failed_calls_leave_their_key_unused,
            calls_without_a_key_are_not_deduplicated,
            keys_are_forgotten_after_24_hours,
            replays_return_the_row_as_it_is_now,
            concurrent_creates_with_one_key_make_one_row,
        ]);
    };
}
