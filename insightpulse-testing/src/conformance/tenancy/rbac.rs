//! Roles, grants and the permission check.

use super::project_create;
use crate::conformance::{assert_err, Harness};
use crate::fixtures::*;
use chrono::Duration;
use insightpulse_core::projects::EnvironmentKind;
use insightpulse_core::tenancy::catalog::{self, BUILTIN_ROLES};
use insightpulse_core::tenancy::{ApiKeyScope, NewInvitation, NewRole, RoleScope};
use insightpulse_core::{
    Clock, Context, Entity, Error, PermissionCode, ProjectId, Requirement, RoleGrantId, RoleId,
    UserId,
};

/// The permission catalog and the built-in roles are the same for every
/// tenant, sorted, and read-only.
pub async fn builtin_roles_and_catalog_are_shared_and_read_only(h: Harness) {
    let r = &h.repos;
    let (_, alice, actx) = tenant_with_owner(r, "acme").await;
    let (_, _, uctx) = tenant_with_owner(r, "umbrella").await;

    let mut expected: Vec<(&str, &str)> = catalog::PERMISSIONS
        .iter()
        .map(|(p, d)| (p.as_str(), *d))
        .collect();
    expected.sort();
    let listed = r
        .rbac
        .list_permissions(&Context::user(alice.id))
        .await
        .unwrap();
    let listed: Vec<(&str, &str)> = listed
        .iter()
        .map(|p| (p.code.as_str(), p.description.as_str()))
        .collect();
    assert_eq!(listed, expected);

    let roles = r.rbac.list_roles(&actx).await.unwrap();
    let builtins: Vec<_> = roles.iter().filter(|x| x.tenant_id.is_none()).collect();
    assert_eq!(builtins.len(), BUILTIN_ROLES.len());
    for b in BUILTIN_ROLES {
        let role = builtins
            .iter()
            .find(|x| x.name.as_str() == b.name)
            .unwrap_or_else(|| panic!("{} missing", b.name));
        assert_eq!(role.scope, b.scope);
        let mut want: Vec<&str> = b.permissions.iter().map(|p| p.as_str()).collect();
        want.sort();
        let got: Vec<&str> = role.permissions.iter().map(|p| p.as_str()).collect();
        assert_eq!(got, want, "permissions of {}", b.name);
        // The same role, with the same id, is visible from another tenant.
        assert_eq!(r.rbac.get_role(&uctx, role.id).await.unwrap(), **role);
    }

    let viewer = role_named(r, &actx, "Viewer").await;
    assert_err!(
        r.rbac
            .set_role_permissions(&actx, viewer.id, codes(&["billing.manage"]))
            .await,
        Error::InvalidState {
            entity: Entity::Role,
            ..
        }
    );
    assert_err!(
        r.rbac.delete_role(&actx, viewer.id).await,
        Error::InvalidState {
            entity: Entity::Role,
            ..
        }
    );
    assert_eq!(r.rbac.get_role(&actx, viewer.id).await.unwrap(), viewer);
}

/// Tenant roles: created with known permissions (sorted, deduplicated),
/// unique per (name, scope), changed and deleted with `role.manage`;
/// deleting a role deletes its grants.
pub async fn custom_roles_lifecycle(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let (bob, bctx) = member_with_role(r, &actx, "bob@acme.io", Some("Viewer")).await;
    let new = |n: &str, scope: RoleScope, perms: &[&str]| NewRole {
        name: name(n),
        scope,
        description: Some("support staff".to_owned()),
        permissions: codes(perms),
    };
    let count = |roles: Vec<insightpulse_core::tenancy::Role>| roles.len();
    let before = count(r.rbac.list_roles(&actx).await.unwrap());

    let support = r
        .rbac
        .create_role(
            &actx,
            new(
                "Support",
                RoleScope::Org,
                &["ticket.update", "ticket.read", "ticket.update"],
            ),
        )
        .await
        .unwrap();
    assert_eq!(support.tenant_id, Some(acme.id));
    assert_eq!(support.scope, RoleScope::Org);
    assert_eq!(support.description.as_deref(), Some("support staff"));
    assert_eq!(
        support.permissions,
        codes(&["ticket.read", "ticket.update"])
    );
    assert_eq!(r.rbac.get_role(&actx, support.id).await.unwrap(), support);
    assert!(r.rbac.list_roles(&actx).await.unwrap().contains(&support));

    // A code outside the catalog cannot even be named: the typo is refused
    // where the host parses it, before any role could carry it.
    assert_err!(
        PermissionCode::parse("ticket.fly"),
        Error::Validation {
            field: "permission",
            ..
        }
    );
    assert_err!(
        r.rbac
            .create_role(&actx, new("Support", RoleScope::Org, &["ticket.read"]))
            .await,
        Error::Conflict {
            entity: Entity::Role,
            ..
        }
    );
    assert_err!(
        r.rbac
            .create_role(&bctx, new("Mine", RoleScope::Org, &["ticket.read"]))
            .await,
        Error::PermissionDenied { .. }
    );
    assert_eq!(count(r.rbac.list_roles(&actx).await.unwrap()), before + 1);
    // Same name, other scope: a different role.
    r.rbac
        .create_role(&actx, new("Support", RoleScope::Project, &["ticket.read"]))
        .await
        .unwrap();
    assert_eq!(count(r.rbac.list_roles(&actx).await.unwrap()), before + 2);

    let changed = r
        .rbac
        .set_role_permissions(&actx, support.id, codes(&["ticket.assign", "ticket.read"]))
        .await
        .unwrap();
    assert_eq!(
        changed.permissions,
        codes(&["ticket.assign", "ticket.read"])
    );
    assert_eq!(
        r.rbac
            .get_role(&actx, support.id)
            .await
            .unwrap()
            .permissions,
        changed.permissions
    );
    assert_err!(
        r.rbac
            .set_role_permissions(&bctx, support.id, codes(&["ticket.read"]))
            .await,
        Error::PermissionDenied { .. }
    );
    assert_eq!(
        r.rbac
            .get_role(&actx, support.id)
            .await
            .unwrap()
            .permissions,
        changed.permissions
    );

    // Grants follow the role's current permissions, and go with it.
    r.rbac
        .grant_role(&actx, bob.id, support.id, None)
        .await
        .unwrap();
    assert!(r
        .rbac
        .has_permission(&bctx, code("ticket.assign"), None)
        .await
        .unwrap());
    assert_err!(
        r.rbac.delete_role(&bctx, support.id).await,
        Error::PermissionDenied { .. }
    );
    let invited = r
        .members
        .invite(
            &actx,
            NewInvitation {
                email: email("carol@acme.io"),
                role_id: Some(support.id),
                valid_for: Duration::days(1),
            },
        )
        .await
        .unwrap();
    r.rbac.delete_role(&actx, support.id).await.unwrap();
    // A pending invitation keeps no deleted role: it now grants none.
    let pending = r.members.list_invitations(&actx).await.unwrap();
    let kept = pending
        .iter()
        .find(|i| i.id == invited.invitation.id)
        .unwrap();
    assert_eq!(kept.role_id, None);
    let carol = signup(r, "carol@acme.io").await;
    r.members
        .accept_invitation(&Context::user(carol.id), &invited.token)
        .await
        .unwrap();
    assert!(r
        .rbac
        .list_grants(&actx, Some(carol.id))
        .await
        .unwrap()
        .is_empty());
    assert!(!r
        .rbac
        .has_permission(&bctx, code("ticket.assign"), None)
        .await
        .unwrap());
    assert!(r
        .rbac
        .list_grants(&actx, Some(bob.id))
        .await
        .unwrap()
        .iter()
        .all(|g| g.role_id != support.id));
    assert_eq!(
        r.rbac.list_grants(&actx, Some(bob.id)).await.unwrap().len(),
        1
    );
    assert_err!(
        r.rbac.get_role(&actx, support.id).await,
        Error::NotFound {
            entity: Entity::Role
        }
    );
    assert_err!(
        r.rbac.delete_role(&actx, support.id).await,
        Error::NotFound {
            entity: Entity::Role
        }
    );
    assert_err!(
        r.rbac
            .set_role_permissions(&actx, support.id, codes(&["ticket.read"]))
            .await,
        Error::NotFound {
            entity: Entity::Role
        }
    );
}

/// Roles are listed by name (bytewise), then scope label.
pub async fn roles_are_ordered_by_name_then_scope(h: Harness) {
    let r = &h.repos;
    let (_, _, actx) = tenant_with_owner(r, "acme").await;
    custom_role(r, &actx, "analyst", RoleScope::Org, &["dashboard.read"]).await;
    custom_role(r, &actx, "Zeta", RoleScope::Project, &["dashboard.read"]).await;
    custom_role(r, &actx, "Zeta", RoleScope::Global, &["dashboard.read"]).await;
    custom_role(r, &actx, "Zeta", RoleScope::Org, &["dashboard.read"]).await;
    let listed: Vec<(String, &str)> = r
        .rbac
        .list_roles(&actx)
        .await
        .unwrap()
        .into_iter()
        .map(|x| (x.name.to_string(), x.scope.as_str()))
        .collect();
    let expected = [
        ("Admin", "org"),
        ("Billing Admin", "org"),
        ("Developer", "global"),
        ("Viewer", "global"),
        ("Zeta", "global"),
        ("Zeta", "org"),
        ("Zeta", "project"),
        ("analyst", "org"),
    ];
    let expected: Vec<(String, &str)> = expected.iter().map(|(n, s)| (n.to_string(), *s)).collect();
    assert_eq!(listed, expected);
}

/// A grant's level must suit the role's scope; role, project and user must
/// all belong to the tenant; a grant exists once.
pub async fn grants_follow_role_scope_and_tenant_boundaries(h: Harness) {
    let r = &h.repos;
    let (acme, alice, actx) = tenant_with_owner(r, "acme").await;
    let (_, eve, uctx) = tenant_with_owner(r, "umbrella").await;
    let (bob, _) = member_with_role(r, &actx, "bob@acme.io", None).await;
    let p = project(r, &actx, "web").await;
    let q = project(r, &uctx, "theirs").await;
    let foreign = custom_role(r, &uctx, "Spy", RoleScope::Global, &["member.read"]).await;
    let per_project = custom_role(
        r,
        &actx,
        "Project Dev",
        RoleScope::Project,
        &["dashboard.read"],
    )
    .await;
    let admin = role_named(r, &actx, "Admin").await;
    let developer = role_named(r, &actx, "Developer").await;
    let viewer = role_named(r, &actx, "Viewer").await;

    assert_err!(
        r.rbac.grant_role(&actx, bob.id, admin.id, Some(p.id)).await,
        Error::Validation {
            field: "project",
            ..
        }
    );
    assert_err!(
        r.rbac.grant_role(&actx, bob.id, per_project.id, None).await,
        Error::Validation {
            field: "project",
            ..
        }
    );
    assert_err!(
        r.rbac
            .grant_role(&actx, bob.id, viewer.id, Some(ProjectId::new()))
            .await,
        Error::NotFound {
            entity: Entity::Project
        }
    );
    assert_err!(
        r.rbac
            .grant_role(&actx, bob.id, viewer.id, Some(q.id))
            .await,
        Error::NotFound {
            entity: Entity::Project
        }
    );
    assert_err!(
        r.rbac.grant_role(&actx, eve.id, viewer.id, None).await,
        Error::NotFound {
            entity: Entity::Member
        }
    );
    assert_err!(
        r.rbac
            .grant_role(&actx, UserId::new(), viewer.id, None)
            .await,
        Error::NotFound {
            entity: Entity::Member
        }
    );
    assert_err!(
        r.rbac.grant_role(&actx, bob.id, foreign.id, None).await,
        Error::NotFound {
            entity: Entity::Role
        }
    );
    assert_err!(
        r.rbac.grant_role(&actx, bob.id, RoleId::new(), None).await,
        Error::NotFound {
            entity: Entity::Role
        }
    );
    assert!(r
        .rbac
        .list_grants(&actx, Some(bob.id))
        .await
        .unwrap()
        .is_empty());

    h.clock.advance(Duration::seconds(1));
    let tenant_wide = r
        .rbac
        .grant_role(&actx, bob.id, developer.id, None)
        .await
        .unwrap();
    assert_eq!(
        (
            tenant_wide.tenant_id,
            tenant_wide.user_id,
            tenant_wide.role_id,
            tenant_wide.project_id,
            tenant_wide.granted_by
        ),
        (acme.id, bob.id, developer.id, None, Some(alice.id))
    );
    assert_eq!(tenant_wide.created_at, h.clock.now());
    h.clock.advance(Duration::seconds(1));
    let on_p = r
        .rbac
        .grant_role(&actx, bob.id, developer.id, Some(p.id))
        .await
        .unwrap();
    h.clock.advance(Duration::seconds(1));
    let scoped = r
        .rbac
        .grant_role(&actx, bob.id, per_project.id, Some(p.id))
        .await
        .unwrap();
    assert_err!(
        r.rbac.grant_role(&actx, bob.id, developer.id, None).await,
        Error::Conflict {
            entity: Entity::RoleGrant,
            ..
        }
    );
    assert_err!(
        r.rbac
            .grant_role(&actx, bob.id, developer.id, Some(p.id))
            .await,
        Error::Conflict {
            entity: Entity::RoleGrant,
            ..
        }
    );

    let ids: Vec<RoleGrantId> = r
        .rbac
        .list_grants(&actx, Some(bob.id))
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(ids, vec![tenant_wide.id, on_p.id, scoped.id]);
    assert_eq!(r.rbac.list_grants(&actx, None).await.unwrap().len(), 4);
}

/// Granting and revoking need `role.assign` at the grant's level, and a
/// granter can only hand out permissions it holds there.
pub async fn grants_need_role_assign_and_cannot_escalate(h: Harness) {
    let r = &h.repos;
    let (_, _, actx) = tenant_with_owner(r, "acme").await;
    let (bob, _) = member_with_role(r, &actx, "bob@acme.io", None).await;
    let (_, dctx) = member_with_role(r, &actx, "dev@acme.io", Some("Developer")).await;
    custom_role(
        r,
        &actx,
        "Granter",
        RoleScope::Org,
        &["role.assign", "member.read"],
    )
    .await;
    let (granter, gctx) = member_with_role(r, &actx, "granter@acme.io", Some("Granter")).await;
    let reader = custom_role(r, &actx, "Reader", RoleScope::Org, &["member.read"]).await;
    let viewer = role_named(r, &actx, "Viewer").await;

    assert_err!(
        r.rbac.grant_role(&dctx, bob.id, viewer.id, None).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.rbac.grant_role(&gctx, bob.id, viewer.id, None).await,
        Error::PermissionDenied { .. }
    );
    assert!(r
        .rbac
        .list_grants(&actx, Some(bob.id))
        .await
        .unwrap()
        .is_empty());
    let g = r
        .rbac
        .grant_role(&gctx, bob.id, reader.id, None)
        .await
        .unwrap();
    assert_eq!(g.granted_by, Some(granter.id));

    assert_err!(
        r.rbac.revoke_role(&dctx, g.id).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.rbac.revoke_role(&gctx, RoleGrantId::new()).await,
        Error::NotFound {
            entity: Entity::RoleGrant
        }
    );
    assert_eq!(
        r.rbac.list_grants(&actx, Some(bob.id)).await.unwrap().len(),
        1
    );
    r.rbac.revoke_role(&gctx, g.id).await.unwrap();
    assert!(r
        .rbac
        .list_grants(&actx, Some(bob.id))
        .await
        .unwrap()
        .is_empty());
    assert_err!(
        r.rbac.revoke_role(&gctx, g.id).await,
        Error::NotFound {
            entity: Entity::RoleGrant
        }
    );

    // role.assign held on one project only reaches that project.
    let p = project(r, &actx, "web").await;
    let q = project(r, &actx, "api").await;
    let pm_role = custom_role(
        r,
        &actx,
        "PM",
        RoleScope::Global,
        &["role.assign", "dashboard.read"],
    )
    .await;
    let dash = custom_role(r, &actx, "Dash", RoleScope::Global, &["dashboard.read"]).await;
    let (pm, pmctx) = member_with_role(r, &actx, "pm@acme.io", None).await;
    r.rbac
        .grant_role(&actx, pm.id, pm_role.id, Some(p.id))
        .await
        .unwrap();
    let on_p = r
        .rbac
        .grant_role(&pmctx, bob.id, dash.id, Some(p.id))
        .await
        .unwrap();
    assert_err!(
        r.rbac.grant_role(&pmctx, bob.id, dash.id, Some(q.id)).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.rbac.grant_role(&pmctx, bob.id, dash.id, None).await,
        Error::PermissionDenied { .. }
    );
    let on_q = r
        .rbac
        .grant_role(&actx, bob.id, dash.id, Some(q.id))
        .await
        .unwrap();
    assert_err!(
        r.rbac.revoke_role(&pmctx, on_q.id).await,
        Error::PermissionDenied { .. }
    );
    r.rbac.revoke_role(&pmctx, on_p.id).await.unwrap();
    let left: Vec<RoleGrantId> = r
        .rbac
        .list_grants(&actx, Some(bob.id))
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(left, vec![on_q.id]);
}

/// A project-level grant gives its permissions on that project only.
pub async fn project_grant_reaches_only_its_project(h: Harness) {
    let r = &h.repos;
    let (_, _, actx) = tenant_with_owner(r, "acme").await;
    let (bob, bctx) = member_with_role(r, &actx, "bob@acme.io", None).await;
    let p = project(r, &actx, "web").await;
    let q = project(r, &actx, "api").await;
    let developer = role_named(r, &actx, "Developer").await;
    r.rbac
        .grant_role(&actx, bob.id, developer.id, Some(p.id))
        .await
        .unwrap();

    let has = |c: &'static str, at: Option<ProjectId>| {
        let (r, bctx) = (r.clone(), bctx.clone());
        async move { r.rbac.has_permission(&bctx, code(c), at).await.unwrap() }
    };
    assert!(has("project.update", Some(p.id)).await);
    assert!(!has("project.update", Some(q.id)).await);
    assert!(!has("project.update", None).await);
    assert!(!has("project.create", None).await);

    assert_eq!(
        r.projects
            .rename_project(&bctx, p.id, name("Web App"))
            .await
            .unwrap()
            .name
            .as_str(),
        "Web App"
    );
    assert_err!(
        r.projects.rename_project(&bctx, q.id, name("Mine")).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        project_create(r, &bctx, "bobs").await,
        Error::PermissionDenied { .. }
    );
    environment(r, &bctx, p.id, EnvironmentKind::Development).await;
    assert_err!(
        r.projects
            .create_environment(&bctx, q.id, EnvironmentKind::Development)
            .await,
        Error::PermissionDenied { .. }
    );
    // Every member sees every project of its tenant.
    assert_eq!(
        r.projects
            .get_project(&bctx, q.id)
            .await
            .unwrap()
            .name
            .as_str(),
        "api"
    );
    assert_eq!(
        r.projects.list_projects(&bctx, false).await.unwrap().len(),
        2
    );
}

/// `has_permission` for each kind of principal, tenant-wide and on a project.
pub async fn has_permission_matrix(h: Harness) {
    let r = &h.repos;
    let (acme, _, owner) = tenant_with_owner(r, "acme").await;
    let (_, _, outsider) = tenant_with_owner(r, "umbrella").await;
    let outsider = outsider.in_tenant(acme.id);
    let (_, admin) = member_with_role(r, &owner, "admin@acme.io", Some("Admin")).await;
    let (_, dev) = member_with_role(r, &owner, "dev@acme.io", Some("Developer")).await;
    let (_, viewer) = member_with_role(r, &owner, "viewer@acme.io", Some("Viewer")).await;
    let (_, billing) = member_with_role(r, &owner, "billing@acme.io", Some("Billing Admin")).await;
    let (sus, suspended) = member_with_role(r, &owner, "sus@acme.io", Some("Developer")).await;
    r.members.suspend_member(&owner, sus.id).await.unwrap();
    let (_, nobody) = member_with_role(r, &owner, "nobody@acme.io", None).await;
    let p = project(r, &owner, "web").await;
    let sys = system().in_tenant(acme.id);

    let codes = [
        "tenant.manage",
        "billing.manage",
        "project.create",
        "dashboard.read",
        "member.read",
    ];
    let table: [(&str, &Context, [bool; 5]); 9] = [
        ("owner", &owner, [true, true, true, true, true]),
        ("admin", &admin, [true, true, true, true, true]),
        ("developer", &dev, [false, false, true, true, true]),
        ("viewer", &viewer, [false, false, false, true, true]),
        ("billing admin", &billing, [false, true, false, false, true]),
        ("suspended", &suspended, [false; 5]),
        ("no role", &nobody, [false; 5]),
        ("non-member", &outsider, [false; 5]),
        ("system", &sys, [true; 5]),
    ];
    for (who, ctx, expected) in table {
        for (c, want) in codes.iter().zip(expected) {
            for level in [None, Some(p.id)] {
                let got = r.rbac.has_permission(ctx, code(c), level).await.unwrap();
                assert_eq!(got, want, "{who} / {c} at {level:?}");
            }
        }
    }
}

/// An API key holds exactly its permissions, within its project if scoped.
pub async fn has_permission_for_api_keys(h: Harness) {
    let r = &h.repos;
    let (_, _, actx) = tenant_with_owner(r, "acme").await;
    let p = project(r, &actx, "web").await;
    let q = project(r, &actx, "api").await;
    let (_, _, tenant_key) = api_key(
        r,
        &actx,
        ApiKeyScope::Tenant,
        &["project.create", "dashboard.read"],
    )
    .await;
    let (_, _, project_key) =
        api_key(r, &actx, ApiKeyScope::Project(p.id), &["dashboard.read"]).await;
    let has = |ctx: &Context, c: &str, at: Option<ProjectId>| {
        let (r, ctx, c) = (r.clone(), ctx.clone(), code(c));
        async move { r.rbac.has_permission(&ctx, c, at).await.unwrap() }
    };
    assert!(has(&tenant_key, "project.create", None).await);
    assert!(has(&tenant_key, "dashboard.read", Some(q.id)).await);
    assert!(!has(&tenant_key, "project.update", None).await);
    assert!(!has(&tenant_key, "tenant.manage", None).await);
    assert!(has(&project_key, "dashboard.read", Some(p.id)).await);
    assert!(!has(&project_key, "dashboard.read", Some(q.id)).await);
    assert!(!has(&project_key, "dashboard.read", None).await);
    assert!(!has(&project_key, "project.create", Some(p.id)).await);
}

/// Asserts that `result` is `PermissionDenied` requiring exactly `code`.
fn assert_denied(result: insightpulse_core::Result<()>, code: PermissionCode) {
    match result {
        Err(Error::PermissionDenied {
            required: Requirement::Permission(p),
        }) if p == code => {}
        other => panic!("expected PermissionDenied requiring {code}, got {other:?}"),
    }
}

/// `require_permission` is `has_permission` as a guard: `Ok` when held,
/// `PermissionDenied` naming the permission inside the tenant, `NotFound`
/// (tenant) where the principal cannot see the tenant.
pub async fn require_permission_guards_like_has_permission(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let (_, stranger, _) = tenant_with_owner(r, "umbrella").await;
    let (bob, bctx) = member_with_role(r, &actx, "bob@acme.io", Some("Viewer")).await;
    let web = project(r, &actx, "web").await;
    let api = project(r, &actx, "api").await;
    let developer = role_named(r, &actx, "Developer").await;
    r.rbac
        .grant_role(&actx, bob.id, developer.id, Some(web.id))
        .await
        .unwrap();
    let (_, _, key) = api_key(r, &actx, ApiKeyScope::Project(web.id), &["dashboard.read"]).await;
    let require = |ctx: &Context, p: PermissionCode, at: Option<ProjectId>| {
        let (r, ctx) = (r.clone(), ctx.clone());
        async move { r.rbac.require_permission(&ctx, p, at).await }
    };

    // Held: by ownership, a tenant-wide grant, a project grant, a key, the system.
    require(&actx, PermissionCode::BILLING_MANAGE, None)
        .await
        .unwrap();
    require(&bctx, PermissionCode::MEMBER_READ, None)
        .await
        .unwrap();
    require(&bctx, PermissionCode::PROJECT_UPDATE, Some(web.id))
        .await
        .unwrap();
    require(&key, PermissionCode::DASHBOARD_READ, Some(web.id))
        .await
        .unwrap();
    require(
        &system().in_tenant(acme.id),
        PermissionCode::TENANT_MANAGE,
        None,
    )
    .await
    .unwrap();

    // Not held, inside the tenant: the permission that is missing.
    for (ctx, p, at) in [
        (&bctx, PermissionCode::PROJECT_UPDATE, None),
        (&bctx, PermissionCode::PROJECT_UPDATE, Some(api.id)),
        (&bctx, PermissionCode::PROJECT_DELETE, Some(web.id)),
        (&bctx, PermissionCode::TENANT_MANAGE, None),
        (&key, PermissionCode::DASHBOARD_READ, None),
        (&key, PermissionCode::DASHBOARD_READ, Some(api.id)),
        (&key, PermissionCode::DASHBOARD_DELETE, Some(web.id)),
    ] {
        assert!(!r.rbac.has_permission(ctx, p, at).await.unwrap());
        assert_denied(require(ctx, p, at).await, p);
    }

    // A tenant the principal cannot see: no oracle, whatever the permission.
    let outsider = Context::user(stranger.id).in_tenant(acme.id);
    let nowhere = actx.clone().in_tenant(insightpulse_core::TenantId::new());
    for ctx in [&outsider, &nowhere] {
        for p in [PermissionCode::MEMBER_READ, PermissionCode::TENANT_MANAGE] {
            assert!(!r.rbac.has_permission(ctx, p, None).await.unwrap());
            assert_err!(
                require(ctx, p, None).await,
                Error::NotFound {
                    entity: Entity::Tenant
                }
            );
        }
    }
    r.members.suspend_member(&actx, bob.id).await.unwrap();
    assert_err!(
        require(&bctx, PermissionCode::MEMBER_READ, None).await,
        Error::NotFound {
            entity: Entity::Tenant
        }
    );
    assert_err!(
        require(&Context::user(bob.id), PermissionCode::MEMBER_READ, None).await,
        Error::Validation {
            field: "context",
            ..
        }
    );
}

/// `get_role_by_name` finds built-in roles and the tenant's own, never
/// another tenant's. Of several roles with the name, the first in
/// `list_roles` order wins: by scope (global, org, project), and a built-in
/// before the tenant's own role of the same scope.
pub async fn get_role_by_name_follows_list_order(h: Harness) {
    let r = &h.repos;
    let (_, _, actx) = tenant_with_owner(r, "acme").await;
    let (_, _, uctx) = tenant_with_owner(r, "umbrella").await;
    let get = |ctx: &Context, n: &str| {
        let (r, ctx, n) = (r.clone(), ctx.clone(), name(n));
        async move { r.rbac.get_role_by_name(&ctx, &n).await }
    };

    let viewer = get(&actx, "Viewer").await.unwrap();
    assert_eq!(viewer, role_named(r, &actx, "Viewer").await);
    assert_eq!((viewer.tenant_id, viewer.scope), (None, RoleScope::Global));
    let support = custom_role(r, &actx, "Support", RoleScope::Org, &["ticket.read"]).await;
    assert_eq!(get(&actx, "Support").await.unwrap(), support);
    for (ctx, n) in [(&uctx, "Support"), (&actx, "Nobody"), (&actx, "viewer")] {
        assert_err!(
            get(ctx, n).await,
            Error::NotFound {
                entity: Entity::Role
            }
        );
    }

    // The same scope as a built-in: the built-in comes first.
    let own_viewer = custom_role(r, &actx, "Viewer", RoleScope::Global, &["member.read"]).await;
    assert_eq!(get(&actx, "Viewer").await.unwrap(), viewer);
    // Another scope: ordered by scope, even before a built-in.
    let own_billing = custom_role(
        r,
        &actx,
        "Billing Admin",
        RoleScope::Global,
        &["billing.read"],
    )
    .await;
    assert_eq!(get(&actx, "Billing Admin").await.unwrap(), own_billing);
    assert_eq!(get(&uctx, "Billing Admin").await.unwrap().tenant_id, None);
    let auditor_project =
        custom_role(r, &actx, "Auditor", RoleScope::Project, &["audit.read"]).await;
    let auditor_org = custom_role(r, &actx, "Auditor", RoleScope::Org, &["audit.read"]).await;
    assert_eq!(get(&actx, "Auditor").await.unwrap(), auditor_org);

    // Exactly list_roles' first role of each name.
    let listed = r.rbac.list_roles(&actx).await.unwrap();
    for n in ["Viewer", "Billing Admin", "Auditor", "Support", "Admin"] {
        let first = listed.iter().find(|x| x.name.as_str() == n).unwrap();
        assert_eq!(&get(&actx, n).await.unwrap(), first, "{n}");
    }
    assert!(listed.contains(&own_viewer));

    r.rbac.delete_role(&actx, auditor_org.id).await.unwrap();
    assert_eq!(get(&actx, "Auditor").await.unwrap(), auditor_project);
}
