//! The audit entries of the tenancy module's mutations: each writes its
//! entry once, in the change's transaction, with its diff.

use super::super::audit::{
    actions, assert_event, assert_no_request, assert_request, event, instant, keys, page, seqs,
    system_actor, target, Trail,
};
use super::super::{assert_err, Harness};
use super::{oidc_config, saml_config, tampered};
use crate::fixtures::*;
use chrono::Duration;
use insightpulse_core::audit::{Actor, AuditQuery, ChainVerdict};
use insightpulse_core::projects::EnvironmentKind;
use insightpulse_core::tenancy::{
    ApiKeyScope, NewApiKey, NewInvitation, NewRole, NewSsoProvider, NewTenant, RoleScope,
    TenantUpdate,
};
use insightpulse_core::{Clock, Context, Entity, Error, RequestMeta, TimeZone};
use serde_json::{json, Value};

/// Creating, updating and deleting a tenant write `tenant.created`,
/// `tenant.updated` (the changed fields only, even when none changed) and
/// `tenant.deleted`; the deleted tenant's chain stays, readable and
/// verifiable by the system only.
pub async fn tenant_changes_are_audited(h: Harness) {
    let r = &h.repos;
    let alice = signup(r, "alice@acme.io").await;
    let me = Actor::User(alice.id);
    let acme = r
        .tenants
        .create_tenant(
            &Context::user(alice.id).with_request(request("req-create")),
            NewTenant {
                slug: slug("acme"),
                name: name("Acme Corp"),
                timezone: TimeZone::utc(),
            },
        )
        .await
        .unwrap();
    let actx = Context::user(alice.id).in_tenant(acme.id);
    let at = |id: &str| actx.clone().with_request(request(id));

    // The creation is the chain's first and only entry: the owner's
    // membership and Admin grant are part of it, not events of their own.
    let trail = audit_trail(r, acme.id).await;
    assert_eq!(trail.len(), 1, "{trail:#?}");
    let e = &trail[0];
    assert_eq!(
        (e.seq, e.tenant_id, e.created_at),
        (1, acme.id, h.clock.now())
    );
    assert_event(
        e,
        "tenant.created",
        "tenant",
        target(acme.id),
        &me,
        json!({"slug": "acme", "name": "Acme Corp"}),
    );
    assert_request(e, "req-create");
    let mut t = Trail::new(r, acme.id).await;

    h.clock.advance(Duration::minutes(1));
    r.tenants
        .update_tenant(
            &at("req-update"),
            TenantUpdate {
                name: Some(name("Acme Inc")),
                timezone: Some(TimeZone::utc()),
                settings: Some(json!({"theme": "dark"})),
            },
        )
        .await
        .unwrap();
    let e = t.one("update").await;
    assert_event(
        &e,
        "tenant.updated",
        "tenant",
        target(acme.id),
        &me,
        json!({
            "name": {"from": "Acme Corp", "to": "Acme Inc"},
            "settings": {"from": {}, "to": {"theme": "dark"}}
        }),
    );
    assert_request(&e, "req-update");
    assert_eq!(e.created_at, h.clock.now());

    r.tenants
        .update_tenant(
            &actx,
            TenantUpdate {
                timezone: Some(TimeZone::parse("Europe/Paris").unwrap()),
                ..TenantUpdate::default()
            },
        )
        .await
        .unwrap();
    let e = t.one("timezone update").await;
    assert_event(
        &e,
        "tenant.updated",
        "tenant",
        target(acme.id),
        &me,
        json!({"timezone": {"from": "UTC", "to": "Europe/Paris"}}),
    );
    assert_no_request(&e);

    // An update that changes nothing is still recorded, with an empty diff.
    r.tenants
        .update_tenant(
            &actx,
            TenantUpdate {
                name: Some(name("Acme Inc")),
                ..TenantUpdate::default()
            },
        )
        .await
        .unwrap();
    let e = t.one("empty update").await;
    assert_event(
        &e,
        "tenant.updated",
        "tenant",
        target(acme.id),
        &me,
        json!({}),
    );

    h.clock.advance(Duration::minutes(1));
    r.tenants.delete_tenant(&at("req-delete")).await.unwrap();
    let e = t.one("delete").await;
    assert_event(
        &e,
        "tenant.deleted",
        "tenant",
        target(acme.id),
        &me,
        json!({"slug": "acme"}),
    );
    assert_request(&e, "req-delete");
    assert_eq!(e.created_at, h.clock.now());

    // The trail outlives the tenant, intact — for the system only.
    let trail = audit_trail(r, acme.id).await;
    assert_eq!(
        actions(&trail),
        [
            "tenant.created",
            "tenant.updated",
            "tenant.updated",
            "tenant.updated",
            "tenant.deleted"
        ]
    );
    assert_eq!(
        chain_verdict(r, acme.id).await,
        ChainVerdict::Intact {
            entries: 5,
            head_seq: 5
        }
    );
    assert_err!(
        r.audit.verify_chain(&actx).await,
        Error::NotFound {
            entity: Entity::Tenant
        }
    );
    let p = page(r, &actx, AuditQuery::last_days(30)).await;
    assert!(p.entries.is_empty() && p.next.is_none(), "{p:#?}");
    assert_err!(
        r.audit.record_event(&actx, event("app.noted")).await,
        Error::NotFound {
            entity: Entity::Tenant
        }
    );

    // A new tenant with the same slug starts a chain of its own.
    let (again, _) = create_tenant(r, &alice, "acme").await;
    let fresh = audit_trail(r, again.id).await;
    assert_eq!(seqs(&fresh), [1]);
    assert_eq!(fresh[0].target_id, target(again.id));
    assert_eq!(audit_trail(r, acme.id).await, trail);
}

/// Invitations and membership changes write their events with the exact
/// diff; the joining user is the actor of `member.joined`; calls that
/// change nothing write nothing.
pub async fn membership_changes_are_audited(h: Harness) {
    let r = &h.repos;
    let (acme, alice, actx) = tenant_with_owner(r, "acme").await;
    let me = Actor::User(alice.id);
    let at = |id: &str| actx.clone().with_request(request(id));
    let viewer = role_named(r, &actx, "Viewer").await;
    let bob = signup(r, "bob@acme.io").await;
    let mut t = Trail::new(r, acme.id).await;

    h.clock.advance(Duration::minutes(1));
    let issued = r
        .members
        .invite(
            &at("req-invite"),
            NewInvitation {
                email: bob.email.clone(),
                role_id: Some(viewer.id),
                valid_for: Duration::days(7),
            },
        )
        .await
        .unwrap();
    let inv = issued.invitation.clone();
    let e = t.one("invite").await;
    assert_eq!(
        (e.action.as_str(), e.target_type.as_str()),
        ("member.invited", "invitation")
    );
    assert_eq!((&e.target_id, &e.actor), (&target(inv.id), &me));
    assert_eq!(keys(&e.diff), ["expires_at", "role_id"]);
    assert_eq!(e.diff["role_id"], json!(viewer.id));
    assert_eq!(instant(&e.diff["expires_at"]), inv.expires_at);
    assert_request(&e, "req-invite");
    assert_eq!(e.created_at, h.clock.now());
    // The invitee's address stays in the invitation, out of the trail.
    assert!(!e.diff.to_string().contains("bob@acme.io"), "{e:#?}");

    let carol = r
        .members
        .invite(
            &actx,
            NewInvitation {
                email: email("carol@acme.io"),
                role_id: None,
                valid_for: Duration::days(1),
            },
        )
        .await
        .unwrap()
        .invitation;
    let e = t.one("invite without role").await;
    assert_eq!(keys(&e.diff), ["expires_at", "role_id"]);
    assert_eq!(e.diff["role_id"], Value::Null);
    assert_eq!(instant(&e.diff["expires_at"]), carol.expires_at);
    assert_no_request(&e);

    r.members
        .revoke_invitation(&at("req-revoke"), carol.id)
        .await
        .unwrap();
    let e = t.one("revoke").await;
    assert_event(
        &e,
        "invitation.revoked",
        "invitation",
        target(carol.id),
        &me,
        json!({}),
    );
    assert_request(&e, "req-revoke");
    let _ = r.members.revoke_invitation(&actx, carol.id).await;
    t.none("revoking a revoked invitation").await;

    h.clock.advance(Duration::minutes(1));
    r.members
        .accept_invitation(
            &Context::user(bob.id).with_request(request("req-accept")),
            &issued.token,
        )
        .await
        .unwrap();
    let e = t.one("accept").await;
    assert_event(
        &e,
        "member.joined",
        "user",
        target(bob.id),
        &Actor::User(bob.id),
        json!({"invitation_id": inv.id, "role_id": viewer.id}),
    );
    assert_request(&e, "req-accept");
    assert_eq!(e.created_at, h.clock.now());

    r.members
        .suspend_member(&at("req-suspend"), bob.id)
        .await
        .unwrap();
    let e = t.one("suspend").await;
    assert_event(
        &e,
        "member.suspended",
        "user",
        target(bob.id),
        &me,
        json!({}),
    );
    assert_request(&e, "req-suspend");
    r.members.suspend_member(&actx, bob.id).await.unwrap();
    t.none("suspending a suspended member").await;

    r.members
        .reactivate_member(&at("req-reactivate"), bob.id)
        .await
        .unwrap();
    let e = t.one("reactivate").await;
    assert_event(
        &e,
        "member.reactivated",
        "user",
        target(bob.id),
        &me,
        json!({}),
    );
    assert_request(&e, "req-reactivate");
    r.members.reactivate_member(&actx, bob.id).await.unwrap();
    t.none("reactivating an active member").await;

    r.members
        .set_owner(&at("req-owner"), bob.id, true)
        .await
        .unwrap();
    let e = t.one("promote").await;
    assert_event(
        &e,
        "member.ownership_changed",
        "user",
        target(bob.id),
        &me,
        json!({"is_owner": {"from": false, "to": true}}),
    );
    assert_request(&e, "req-owner");
    r.members.set_owner(&actx, bob.id, true).await.unwrap();
    t.none("set_owner to the current value").await;
    r.members.set_owner(&actx, bob.id, false).await.unwrap();
    let e = t.one("demote").await;
    assert_event(
        &e,
        "member.ownership_changed",
        "user",
        target(bob.id),
        &me,
        json!({"is_owner": {"from": true, "to": false}}),
    );

    // Removing takes the member's grant along: still one event.
    r.members
        .remove_member(&at("req-remove"), bob.id)
        .await
        .unwrap();
    let e = t.one("remove").await;
    assert_event(&e, "member.removed", "user", target(bob.id), &me, json!({}));
    assert_request(&e, "req-remove");

    assert_eq!(
        chain_verdict(r, acme.id).await,
        ChainVerdict::Intact {
            entries: t.seen as u64,
            head_seq: t.seen
        }
    );
}

/// Roles and grants write `role.created` / `role.updated` / `role.deleted`
/// / `role.granted` / `role.revoked` with the exact diff.
pub async fn rbac_changes_are_audited(h: Harness) {
    let r = &h.repos;
    let (acme, alice, actx) = tenant_with_owner(r, "acme").await;
    let me = Actor::User(alice.id);
    let at = |id: &str| actx.clone().with_request(request(id));
    let (bob, _) = member_with_role(r, &actx, "bob@acme.io", None).await;
    let web = project(r, &actx, "web").await;
    let developer = role_named(r, &actx, "Developer").await;
    let mut t = Trail::new(r, acme.id).await;

    h.clock.advance(Duration::minutes(1));
    let role = r
        .rbac
        .create_role(
            &at("req-role"),
            NewRole {
                name: name("Auditor"),
                scope: RoleScope::Org,
                description: Some("Reads the trail".to_owned()),
                permissions: codes(&["member.read", "audit.read", "member.read"]),
            },
        )
        .await
        .unwrap();
    assert_eq!(role.permissions, codes(&["audit.read", "member.read"]));
    let e = t.one("create role").await;
    assert_event(
        &e,
        "role.created",
        "role",
        target(role.id),
        &me,
        json!({"name": "Auditor", "scope": "org", "permissions": ["audit.read", "member.read"]}),
    );
    assert_request(&e, "req-role");
    assert_eq!(e.created_at, h.clock.now());

    r.rbac
        .set_role_permissions(
            &at("req-perms"),
            role.id,
            codes(&["member.read", "dashboard.read"]),
        )
        .await
        .unwrap();
    let e = t.one("set permissions").await;
    assert_event(
        &e,
        "role.updated",
        "role",
        target(role.id),
        &me,
        json!({"permissions": {
            "from": ["audit.read", "member.read"],
            "to": ["dashboard.read", "member.read"]
        }}),
    );
    assert_request(&e, "req-perms");

    let grant = r
        .rbac
        .grant_role(&at("req-grant"), bob.id, role.id, None)
        .await
        .unwrap();
    let e = t.one("grant").await;
    assert_event(
        &e,
        "role.granted",
        "role_grant",
        target(grant.id),
        &me,
        json!({"user_id": bob.id, "role_id": role.id, "project_id": null}),
    );
    assert_request(&e, "req-grant");

    let on_web = r
        .rbac
        .grant_role(&actx, bob.id, developer.id, Some(web.id))
        .await
        .unwrap();
    let e = t.one("project grant").await;
    let on_web_diff = json!({"user_id": bob.id, "role_id": developer.id, "project_id": web.id});
    assert_event(
        &e,
        "role.granted",
        "role_grant",
        target(on_web.id),
        &me,
        on_web_diff.clone(),
    );

    r.rbac
        .revoke_role(&at("req-revoke"), on_web.id)
        .await
        .unwrap();
    let e = t.one("revoke").await;
    assert_event(
        &e,
        "role.revoked",
        "role_grant",
        target(on_web.id),
        &me,
        on_web_diff,
    );
    assert_request(&e, "req-revoke");

    // Deleting a role takes its grants along: one event.
    r.rbac
        .delete_role(&at("req-delete"), role.id)
        .await
        .unwrap();
    let e = t.one("delete role").await;
    assert_event(
        &e,
        "role.deleted",
        "role",
        target(role.id),
        &me,
        json!({"name": "Auditor"}),
    );
    assert_request(&e, "req-delete");
    assert!(r
        .rbac
        .list_grants(&actx, Some(bob.id))
        .await
        .unwrap()
        .iter()
        .all(|g| g.id != grant.id));
}

/// SSO providers and identities write their events; the provider's
/// configuration never enters a diff.
pub async fn sso_changes_are_audited(h: Harness) {
    let r = &h.repos;
    let (acme, alice, actx) = tenant_with_owner(r, "acme").await;
    let me = Actor::User(alice.id);
    let at = |id: &str| actx.clone().with_request(request(id));
    let (bob, _) = member_with_role(r, &actx, "bob@acme.io", None).await;
    let (carol, _) = member_with_role(r, &actx, "carol@acme.io", None).await;
    let mut t = Trail::new(r, acme.id).await;

    h.clock.advance(Duration::minutes(1));
    let okta = r
        .sso
        .create_provider(
            &at("req-sso"),
            NewSsoProvider {
                name: name("Okta"),
                config: oidc_config(),
            },
        )
        .await
        .unwrap();
    assert!(okta.enabled);
    let e = t.one("create provider").await;
    assert_event(
        &e,
        "sso_provider.created",
        "sso_provider",
        target(okta.id),
        &me,
        json!({"name": "Okta", "kind": "oidc", "enabled": true}),
    );
    assert_request(&e, "req-sso");
    assert_eq!(e.created_at, h.clock.now());

    r.sso
        .update_provider(&at("req-disable"), okta.id, None, Some(false))
        .await
        .unwrap();
    let e = t.one("disable").await;
    assert_event(
        &e,
        "sso_provider.updated",
        "sso_provider",
        target(okta.id),
        &me,
        json!({"enabled": {"from": true, "to": false}, "config_changed": false}),
    );
    assert_request(&e, "req-disable");

    r.sso
        .update_provider(&actx, okta.id, Some(saml_config()), None)
        .await
        .unwrap();
    let e = t.one("new config").await;
    assert_event(
        &e,
        "sso_provider.updated",
        "sso_provider",
        target(okta.id),
        &me,
        json!({"config_changed": true}),
    );

    r.sso
        .update_provider(&actx, okta.id, Some(oidc_config()), Some(true))
        .await
        .unwrap();
    let e = t.one("enable with new config").await;
    assert_event(
        &e,
        "sso_provider.updated",
        "sso_provider",
        target(okta.id),
        &me,
        json!({"enabled": {"from": false, "to": true}, "config_changed": true}),
    );

    let identity = r
        .sso
        .link_identity(&at("req-link"), okta.id, "okta|bob", bob.id)
        .await
        .unwrap();
    let e = t.one("link").await;
    assert_event(
        &e,
        "identity.linked",
        "identity",
        target(identity.id),
        &me,
        json!({"provider_id": okta.id, "user_id": bob.id}),
    );
    assert_request(&e, "req-link");

    // Just-in-time linking at login is done by the system.
    let jit = r
        .sso
        .link_identity(
            &system().in_tenant(acme.id),
            okta.id,
            "okta|carol",
            carol.id,
        )
        .await
        .unwrap();
    let e = t.one("system link").await;
    assert_event(
        &e,
        "identity.linked",
        "identity",
        target(jit.id),
        &system_actor(),
        json!({"provider_id": okta.id, "user_id": carol.id}),
    );

    r.sso
        .unlink_identity(&at("req-unlink"), identity.id)
        .await
        .unwrap();
    let e = t.one("unlink").await;
    assert_event(
        &e,
        "identity.unlinked",
        "identity",
        target(identity.id),
        &me,
        json!({}),
    );
    assert_request(&e, "req-unlink");

    // Deleting the provider takes carol's identity along: one event.
    r.sso
        .delete_provider(&at("req-delete"), okta.id)
        .await
        .unwrap();
    let e = t.one("delete provider").await;
    assert_event(
        &e,
        "sso_provider.deleted",
        "sso_provider",
        target(okta.id),
        &me,
        json!({"name": "Okta"}),
    );
    assert_request(&e, "req-delete");

    for e in audit_trail(r, acme.id).await {
        let text = e.diff.to_string();
        assert!(
            !text.contains("okta-client-secret") && !text.contains("okta|"),
            "{e:#?}"
        );
    }
}

/// API keys write `api_key.created`, `api_key.revoked` (once) and
/// `api_key.first_used` on the first successful verification only, acted
/// by the key itself.
pub async fn api_key_changes_are_audited(h: Harness) {
    let r = &h.repos;
    let (acme, alice, actx) = tenant_with_owner(r, "acme").await;
    let me = Actor::User(alice.id);
    let at = |id: &str| actx.clone().with_request(request(id));
    let web = project(r, &actx, "web").await;
    let dev = environment(r, &actx, web.id, EnvironmentKind::Development).await;
    let mut t = Trail::new(r, acme.id).await;

    h.clock.advance(Duration::minutes(1));
    let issued = r
        .api_keys
        .create_api_key(
            &at("req-key"),
            NewApiKey {
                name: name("ci"),
                scope: ApiKeyScope::Environment(dev.id),
                permissions: codes(&["environment.manage"]),
                expires_at: None,
            },
        )
        .await
        .unwrap();
    let key = issued.key.clone();
    let e = t.one("create key").await;
    assert_event(
        &e,
        "api_key.created",
        "api_key",
        target(key.id),
        &me,
        json!({
            "name": "ci",
            "prefix": key.prefix,
            "permissions": ["environment.manage"],
            "project_id": web.id,
            "environment_id": dev.id
        }),
    );
    assert_request(&e, "req-key");
    assert_eq!(e.created_at, h.clock.now());

    let tenant_key = r
        .api_keys
        .create_api_key(
            &actx,
            NewApiKey {
                name: name("reporting"),
                scope: ApiKeyScope::Tenant,
                permissions: codes(&["project.create", "member.read"]),
                expires_at: None,
            },
        )
        .await
        .unwrap()
        .key;
    let e = t.one("create tenant key").await;
    assert_event(
        &e,
        "api_key.created",
        "api_key",
        target(tenant_key.id),
        &me,
        json!({
            "name": "reporting",
            "prefix": tenant_key.prefix,
            "permissions": ["member.read", "project.create"],
            "project_id": null,
            "environment_id": null
        }),
    );

    // A rejected presentation writes nothing.
    assert_err!(
        r.auth
            .authenticate(&tampered(&issued.secret), RequestMeta::default())
            .await,
        Error::Unauthenticated { .. }
    );
    t.none("rejected key").await;

    h.clock.advance(Duration::minutes(1));
    let gateway = Context::system("api gateway").with_request(request("req-verify"));
    r.auth
        .authenticate(&issued.secret, gateway.request().clone())
        .await
        .unwrap();
    let e = t.one("first use").await;
    assert_event(
        &e,
        "api_key.first_used",
        "api_key",
        target(key.id),
        &Actor::ApiKey(key.id),
        json!({}),
    );
    assert_request(&e, "req-verify");
    assert_eq!(e.created_at, h.clock.now());

    h.clock.advance(Duration::minutes(1));
    r.auth
        .authenticate(&issued.secret, gateway.request().clone())
        .await
        .unwrap();
    assert_eq!(
        r.api_keys
            .get_api_key(&actx, key.id)
            .await
            .unwrap()
            .last_used_at,
        Some(h.clock.now())
    );
    t.none("second use").await;

    r.api_keys
        .revoke_api_key(&at("req-revoke"), key.id)
        .await
        .unwrap();
    let e = t.one("revoke").await;
    assert_event(
        &e,
        "api_key.revoked",
        "api_key",
        target(key.id),
        &me,
        json!({}),
    );
    assert_request(&e, "req-revoke");
    let _ = r.api_keys.revoke_api_key(&actx, key.id).await;
    t.none("revoking a revoked key").await;
    assert_err!(
        r.auth
            .authenticate(&issued.secret, gateway.request().clone())
            .await,
        Error::Unauthenticated { .. }
    );
    t.none("revoked key presented").await;
}
