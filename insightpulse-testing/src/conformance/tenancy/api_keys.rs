//! API keys: creation rules, scopes, listing and revocation.

use super::project_create;
use crate::conformance::{assert_err, Harness};
use crate::fixtures::*;
use chrono::Duration;
use insightpulse_core::audit::AuditQuery;
use insightpulse_core::projects::EnvironmentKind;
use insightpulse_core::tenancy::{ApiKeyScope, NewApiKey, NewInvitation, NewTeam};
use insightpulse_core::{
    Clock, Context, Entity, EnvironmentId, Error, ExposeSecret, PermissionCode, ProjectId,
    RequestMeta, Requirement,
};

/// The plaintext key is returned once and verifies into a context with
/// exactly the key's tenant, scope and permissions; use is recorded.
pub async fn api_key_is_shown_once_and_verifies_to_its_scope(h: Harness) {
    let r = &h.repos;
    let (acme, alice, actx) = tenant_with_owner(r, "acme").await;
    let expires = h.clock.now() + Duration::days(30);
    let issued = r
        .api_keys
        .create_api_key(
            &actx,
            NewApiKey {
                name: name("ci"),
                scope: ApiKeyScope::Tenant,
                permissions: codes(&["project.create", "member.read", "project.create"]),
                expires_at: Some(expires),
            },
        )
        .await
        .unwrap();
    let key = issued.key.clone();
    assert_eq!(key.tenant_id, acme.id);
    assert_eq!(key.name.as_str(), "ci");
    assert_eq!((key.scope, key.project_id), (ApiKeyScope::Tenant, None));
    assert_eq!(key.permissions, codes(&["member.read", "project.create"]));
    assert_eq!(key.created_by, Some(alice.id));
    assert_eq!(
        (key.expires_at, key.last_used_at, key.revoked_at),
        (Some(expires), None, None)
    );
    assert_eq!(key.created_at, h.clock.now());
    assert!(key.prefix.starts_with("ipk_"));
    assert!(issued
        .secret
        .expose_secret()
        .starts_with(&format!("{}_", key.prefix)));
    assert_eq!(
        r.api_keys.list_api_keys(&actx).await.unwrap(),
        vec![key.clone()]
    );
    assert_eq!(r.api_keys.get_api_key(&actx, key.id).await.unwrap(), key);

    h.clock.advance(Duration::minutes(1));
    let caller = Context::system("api gateway").with_request(
        RequestMeta::default()
            .with_request_id("req-1")
            .with_ip("203.0.113.9".parse().unwrap())
            .with_user_agent("curl/8"),
    );
    let kctx = r
        .auth
        .authenticate(&issued.secret, caller.request().clone())
        .await
        .unwrap();
    let principal = kctx.api_key_principal().expect("an API key principal");
    assert_eq!(principal.key_id, key.id);
    assert_eq!(principal.tenant_id, acme.id);
    assert_eq!(
        (principal.project_id, principal.environment_id),
        (None, None)
    );
    assert_eq!(
        principal.permissions,
        codes(&["member.read", "project.create"])
    );
    assert_eq!(kctx.tenant_id(), Some(acme.id));
    assert_eq!(kctx.request(), caller.request());
    assert_eq!(
        r.api_keys
            .get_api_key(&actx, key.id)
            .await
            .unwrap()
            .last_used_at,
        Some(h.clock.now())
    );

    // It acts with exactly its permissions.
    assert_eq!(project(r, &kctx, "from-ci").await.tenant_id, acme.id);
    assert_err!(
        r.teams
            .create_team(
                &kctx,
                NewTeam {
                    slug: slug("ops"),
                    name: name("Ops")
                }
            )
            .await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.tenants.list_my_tenants(&kctx).await,
        Error::PermissionDenied { .. }
    );
    assert_eq!(r.members.list_members(&kctx).await.unwrap().len(), 1);
}

/// A key is checked before it is written: known, non-empty permissions the
/// creator holds at the key's scope; a future expiry; a user creator; an
/// existing scope target.
pub async fn api_key_creation_is_checked(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let (_, _, uctx) = tenant_with_owner(r, "umbrella").await;
    let (_, dctx) = member_with_role(r, &actx, "dev@acme.io", Some("Developer")).await;
    let (_, vctx) = member_with_role(r, &actx, "viewer@acme.io", Some("Viewer")).await;
    let theirs = project(r, &uctx, "theirs").await;
    let new = |scope: ApiKeyScope, perms: &[&str], expires_at| NewApiKey {
        name: name("k"),
        scope,
        permissions: codes(perms),
        expires_at,
    };
    let now = h.clock.now();

    assert_err!(
        r.api_keys
            .create_api_key(&actx, new(ApiKeyScope::Tenant, &[], None))
            .await,
        Error::Validation {
            field: "permissions",
            ..
        }
    );
    // Unknown codes are refused when parsed, before a key could carry one.
    for typo in ["member.fly", "Member.Read", "member.read ", ""] {
        assert_err!(
            PermissionCode::parse(typo),
            Error::Validation {
                field: "permission",
                ..
            }
        );
    }
    for past in [now, now - Duration::seconds(1)] {
        assert_err!(
            r.api_keys
                .create_api_key(
                    &actx,
                    new(ApiKeyScope::Tenant, &["member.read"], Some(past))
                )
                .await,
            Error::Validation {
                field: "expires_at",
                ..
            }
        );
    }
    assert_err!(
        r.api_keys
            .create_api_key(&dctx, new(ApiKeyScope::Tenant, &["billing.read"], None))
            .await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.api_keys
            .create_api_key(&vctx, new(ApiKeyScope::Tenant, &["dashboard.read"], None))
            .await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.api_keys
            .create_api_key(
                &system().in_tenant(acme.id),
                new(ApiKeyScope::Tenant, &["member.read"], None)
            )
            .await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.api_keys
            .create_api_key(
                &actx,
                new(
                    ApiKeyScope::Project(ProjectId::new()),
                    &["member.read"],
                    None
                )
            )
            .await,
        Error::NotFound {
            entity: Entity::Project
        }
    );
    assert_err!(
        r.api_keys
            .create_api_key(
                &actx,
                new(ApiKeyScope::Project(theirs.id), &["member.read"], None)
            )
            .await,
        Error::NotFound {
            entity: Entity::Project
        }
    );
    assert_err!(
        r.api_keys
            .create_api_key(
                &actx,
                new(
                    ApiKeyScope::Environment(EnvironmentId::new()),
                    &["member.read"],
                    None
                )
            )
            .await,
        Error::NotFound {
            entity: Entity::Environment
        }
    );
    assert!(r.api_keys.list_api_keys(&actx).await.unwrap().is_empty());

    // A key cannot mint keys, even with api_key.manage.
    let (manager, _, kctx) = api_key(
        r,
        &actx,
        ApiKeyScope::Tenant,
        &["api_key.manage", "member.read"],
    )
    .await;
    assert_err!(
        r.api_keys
            .create_api_key(&kctx, new(ApiKeyScope::Tenant, &["member.read"], None))
            .await,
        Error::PermissionDenied { .. }
    );
    // A developer may create keys within its own permissions.
    let ok = r
        .api_keys
        .create_api_key(
            &dctx,
            new(
                ApiKeyScope::Tenant,
                &["project.create"],
                Some(now + Duration::hours(1)),
            ),
        )
        .await
        .unwrap();
    let ids: Vec<_> = r
        .api_keys
        .list_api_keys(&actx)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&manager.id) && ids.contains(&ok.key.id));
}

/// A project-scoped key sees only its project and cannot create projects.
pub async fn project_scoped_key_sees_only_its_project(h: Harness) {
    let r = &h.repos;
    let (_, _, actx) = tenant_with_owner(r, "acme").await;
    let p = project(r, &actx, "web").await;
    let q = project(r, &actx, "api").await;
    let p_dev = environment(r, &actx, p.id, EnvironmentKind::Development).await;
    let q_dev = environment(r, &actx, q.id, EnvironmentKind::Development).await;
    let (key, _, kctx) = api_key(
        r,
        &actx,
        ApiKeyScope::Project(p.id),
        &["project.create", "project.update", "environment.manage"],
    )
    .await;
    assert_eq!(
        (key.scope, key.project_id),
        (ApiKeyScope::Project(p.id), Some(p.id))
    );
    assert_eq!(kctx.api_key_principal().unwrap().project_id, Some(p.id));

    let ids = |v: Vec<insightpulse_core::projects::Project>| {
        v.into_iter().map(|x| x.id).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(r.projects.list_projects(&kctx, true).await.unwrap()),
        vec![p.id]
    );
    assert_eq!(r.projects.get_project(&kctx, p.id).await.unwrap().id, p.id);
    assert_err!(
        r.projects.get_project(&kctx, q.id).await,
        Error::NotFound {
            entity: Entity::Project
        }
    );
    assert_err!(
        r.projects.rename_project(&kctx, q.id, name("Mine")).await,
        Error::NotFound {
            entity: Entity::Project
        }
    );
    assert_err!(
        r.projects.archive_project(&kctx, q.id).await,
        Error::NotFound {
            entity: Entity::Project
        }
    );
    assert_err!(
        r.projects.list_environments(&kctx, q.id).await,
        Error::NotFound {
            entity: Entity::Project
        }
    );
    assert_err!(
        r.projects.get_environment(&kctx, q_dev.id).await,
        Error::NotFound {
            entity: Entity::Environment
        }
    );
    assert_err!(
        r.projects.delete_environment(&kctx, q_dev.id).await,
        Error::NotFound {
            entity: Entity::Environment
        }
    );
    assert_eq!(
        r.projects.list_environments(&kctx, p.id).await.unwrap(),
        vec![p_dev.clone()]
    );
    assert_eq!(
        r.projects
            .rename_project(&kctx, p.id, name("Web App"))
            .await
            .unwrap()
            .name
            .as_str(),
        "Web App"
    );
    environment(r, &kctx, p.id, EnvironmentKind::Staging).await;
    assert_err!(
        project_create(r, &kctx, "keys-own").await,
        Error::PermissionDenied { .. }
    );
    assert_eq!(
        r.projects.list_projects(&actx, true).await.unwrap().len(),
        2
    );
    assert_eq!(
        r.projects
            .get_project(&actx, q.id)
            .await
            .unwrap()
            .name
            .as_str(),
        "api"
    );
}

/// An environment-scoped key sees only its environment (and its project).
pub async fn environment_scoped_key_sees_only_its_environment(h: Harness) {
    let r = &h.repos;
    let (_, _, actx) = tenant_with_owner(r, "acme").await;
    let p = project(r, &actx, "web").await;
    let q = project(r, &actx, "api").await;
    let dev = environment(r, &actx, p.id, EnvironmentKind::Development).await;
    let staging = environment(r, &actx, p.id, EnvironmentKind::Staging).await;
    let (key, _, kctx) = api_key(
        r,
        &actx,
        ApiKeyScope::Environment(dev.id),
        &["environment.manage"],
    )
    .await;
    assert_eq!(
        (key.scope, key.project_id),
        (ApiKeyScope::Environment(dev.id), Some(p.id))
    );
    let principal = kctx.api_key_principal().unwrap();
    assert_eq!(
        (principal.project_id, principal.environment_id),
        (Some(p.id), Some(dev.id))
    );

    assert_eq!(
        r.projects.list_environments(&kctx, p.id).await.unwrap(),
        vec![dev.clone()]
    );
    assert_eq!(
        r.projects.get_environment(&kctx, dev.id).await.unwrap(),
        dev
    );
    assert_err!(
        r.projects.get_environment(&kctx, staging.id).await,
        Error::NotFound {
            entity: Entity::Environment
        }
    );
    assert_err!(
        r.projects.delete_environment(&kctx, staging.id).await,
        Error::NotFound {
            entity: Entity::Environment
        }
    );
    // A new environment is outside the key's one environment.
    assert_err!(
        r.projects
            .create_environment(&kctx, p.id, EnvironmentKind::Production)
            .await,
        Error::PermissionDenied {
            required: Requirement::Permission(PermissionCode::ENVIRONMENT_MANAGE)
        }
    );
    let listed: Vec<_> = r
        .projects
        .list_projects(&kctx, true)
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(listed, vec![p.id]);
    assert_err!(
        r.projects.get_project(&kctx, q.id).await,
        Error::NotFound {
            entity: Entity::Project
        }
    );
    assert_eq!(
        r.projects
            .list_environments(&actx, p.id)
            .await
            .unwrap()
            .len(),
        2
    );
}

/// Listing and reading keys needs `api_key.manage` tenant-wide; keys are
/// listed by creation.
pub async fn api_keys_list_and_get_need_manage(h: Harness) {
    let r = &h.repos;
    let (_, _, actx) = tenant_with_owner(r, "acme").await;
    let (_, _, uctx) = tenant_with_owner(r, "umbrella").await;
    let (_, vctx) = member_with_role(r, &actx, "viewer@acme.io", Some("Viewer")).await;
    let mut created = Vec::new();
    for _ in 0..3 {
        created.push(
            api_key(r, &actx, ApiKeyScope::Tenant, &["member.read"])
                .await
                .0
                .id,
        );
        h.clock.advance(Duration::seconds(1));
    }
    let (theirs, _, _) = api_key(r, &uctx, ApiKeyScope::Tenant, &["member.read"]).await;
    let listed: Vec<_> = r
        .api_keys
        .list_api_keys(&actx)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(listed, created);
    assert_err!(
        r.api_keys.list_api_keys(&vctx).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.api_keys.get_api_key(&vctx, created[0]).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.api_keys.get_api_key(&actx, theirs.id).await,
        Error::NotFound {
            entity: Entity::ApiKey
        }
    );
    assert_err!(
        r.api_keys
            .get_api_key(&actx, insightpulse_core::ApiKeyId::new())
            .await,
        Error::NotFound {
            entity: Entity::ApiKey
        }
    );
    // A project-scoped key with api_key.manage holds it on its project only.
    let p = project(r, &actx, "web").await;
    let (_, _, pkctx) = api_key(r, &actx, ApiKeyScope::Project(p.id), &["api_key.manage"]).await;
    assert_err!(
        r.api_keys.list_api_keys(&pkctx).await,
        Error::PermissionDenied { .. }
    );
}

/// A key verified before its tenant was deleted can do nothing more there:
/// the tenant is gone, whatever the key's claims say. Its trail, which
/// outlives the tenant, ends with the deletion.
pub async fn a_keys_context_dies_with_its_tenant(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let (_, _, kctx) = api_key(
        r,
        &actx,
        ApiKeyScope::Tenant,
        &["audit.read", "member.invite", "project.create"],
    )
    .await;
    r.tenants.delete_tenant(&actx).await.unwrap();

    let gone = |e| {
        matches!(
            e,
            Error::NotFound {
                entity: Entity::Tenant
            }
        )
    };
    let record = r
        .audit
        .record_event(&kctx, crate::conformance::audit::event("late.event"));
    assert!(record.await.is_err_and(gone));
    assert!(project_create(r, &kctx, "late").await.is_err_and(gone));
    let invite = r.members.invite(
        &kctx,
        NewInvitation {
            email: email("late@example.com"),
            role_id: None,
            valid_for: Duration::days(1),
        },
    );
    assert!(invite.await.is_err_and(gone));
    for code in [PermissionCode::AUDIT_READ, PermissionCode::PROJECT_CREATE] {
        assert!(!r.rbac.has_permission(&kctx, code, None).await.unwrap());
        let required = r.rbac.require_permission(&kctx, code, None).await;
        assert!(required.is_err_and(gone));
    }
    assert!(r.audit.verify_chain(&kctx).await.is_err_and(gone));
    let page = r
        .audit
        .query_entries(&kctx, AuditQuery::last_days(1))
        .await
        .unwrap();
    assert!(page.entries.is_empty());

    let trail = audit_trail(r, acme.id).await;
    assert_eq!(trail.last().unwrap().action.as_str(), "tenant.deleted");
}
