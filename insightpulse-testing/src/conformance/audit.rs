//! Conformance cases of the audit trail: the events the SDK's own mutations
//! write, host apps' events, the report and the hash chain.
//!
//! Rule guarded here: every audited call writes exactly its event (action,
//! target, actor, diff, request metadata) in the change's transaction — a
//! refused or no-op call writes nothing, and no diff holds a secret; the
//! report shows `audit.read` holders their tenant's entries newest first,
//! filtered and paginated without gaps; each tenant's chain verifies as
//! intact, even under concurrent writers (audit.md).

use super::{assert_err, Harness};
use crate::fixtures::*;
use chrono::{DateTime, Duration, Utc};
use insightpulse_core::audit::{
    Actor, ActorFilter, AuditCursor, AuditEntry, AuditEvent, AuditPage, AuditQuery, ChainVerdict,
    Diff, KeyLabel, PLATFORM_TENANT,
};
use insightpulse_core::projects::EnvironmentKind;
use insightpulse_core::tenancy::{
    ApiKeyScope, NewApiKey, NewInvitation, NewRole, NewSsoProvider, NewTeam, NewTenant, RoleScope,
    SsoConfig, TenantUpdate,
};
use insightpulse_core::{
    AuditAction, AuditEntryId, Clock, Context, Entity, Error, ExposeSecret, Repos, RequestMeta,
    Result, SecretString, TargetType, TenantId, TimeZone, UserId,
};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

// ---------------------------------------------------------------------------
// Helpers (shared with the privacy cases)
// ---------------------------------------------------------------------------

/// Reads what a tenant's trail gained since the last look.
pub(crate) struct Trail<'a> {
    repos: &'a Repos,
    tenant: TenantId,
    seen: i64,
}

impl<'a> Trail<'a> {
    /// Starts watching `tenant`'s trail from its current head.
    pub(crate) async fn new(repos: &'a Repos, tenant: TenantId) -> Self {
        let seen = audit_trail(repos, tenant).await.last().map_or(0, |e| e.seq);
        Self {
            repos,
            tenant,
            seen,
        }
    }

    /// The entries written since the last look, in `seq` order (which must
    /// continue the chain without gaps).
    pub(crate) async fn take(&mut self) -> Vec<AuditEntry> {
        let new: Vec<AuditEntry> = audit_trail(self.repos, self.tenant)
            .await
            .into_iter()
            .filter(|e| e.seq > self.seen)
            .collect();
        for (i, e) in new.iter().enumerate() {
            assert_eq!(
                e.seq,
                self.seen + 1 + i as i64,
                "gap in the chain: {new:#?}"
            );
            assert_eq!(e.tenant_id, self.tenant, "entry of another tenant: {e:#?}");
        }
        if let Some(last) = new.last() {
            self.seen = last.seq;
        }
        new
    }

    /// The one entry `what` wrote.
    pub(crate) async fn one(&mut self, what: &str) -> AuditEntry {
        let mut new = self.take().await;
        assert_eq!(
            new.len(),
            1,
            "{what}: expected exactly one new audit entry, got {new:#?}"
        );
        new.pop().expect("one entry")
    }

    /// Asserts that `what` wrote nothing.
    pub(crate) async fn none(&mut self, what: &str) {
        let new = self.take().await;
        assert!(
            new.is_empty(),
            "{what}: expected no new audit entry, got {new:#?}"
        );
    }
}

/// A target id as entries hold it.
pub(crate) fn target(id: impl ToString) -> Option<String> {
    Some(id.to_string())
}

/// Asserts an entry's action, target, actor and exact diff.
pub(crate) fn assert_event(
    e: &AuditEntry,
    action: &str,
    target_type: &str,
    target_id: Option<String>,
    actor: &Actor,
    diff: Value,
) {
    let what = format!("entry #{} ({})", e.seq, e.action);
    assert_eq!(e.action.as_str(), action, "{what}: action");
    assert_eq!(e.target_type.as_str(), target_type, "{what}: target type");
    assert_eq!(e.target_id, target_id, "{what}: target id");
    assert_eq!(&e.actor, actor, "{what}: actor");
    assert_eq!(e.diff, diff, "{what}: diff");
}

/// Asserts that an entry carries the metadata of [`request`]`(id)`.
pub(crate) fn assert_request(e: &AuditEntry, id: &str) {
    let meta = request(id);
    assert_eq!(
        (e.request_id.as_deref(), e.ip, e.user_agent.as_deref()),
        (Some(id), meta.ip, meta.user_agent.as_deref()),
        "request metadata of entry #{} ({})",
        e.seq,
        e.action
    );
}

/// Asserts that an entry carries no request metadata.
pub(crate) fn assert_no_request(e: &AuditEntry) {
    assert_eq!(
        (e.request_id.as_deref(), e.ip, e.user_agent.as_deref()),
        (None, None, None),
        "request metadata of entry #{} ({})",
        e.seq,
        e.action
    );
}

/// The keys of a JSON object, sorted.
pub(crate) fn keys(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

/// An instant recorded in a diff.
pub(crate) fn instant(v: &Value) -> DateTime<Utc> {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("not an instant: {v} ({e})"))
}

/// The system actor of [`system`].
pub(crate) fn system_actor() -> Actor {
    Actor::of(&system())
}

/// A host app's event.
pub(crate) fn event(action: &str) -> AuditEvent {
    AuditEvent::new(action, "widget", Some("w-1"), Diff::new().set("size", 3))
        .unwrap_or_else(|e| panic!("event {action}: {e}"))
}

/// Records a host app's event, which must succeed.
pub(crate) async fn record(r: &Repos, ctx: &Context, ev: AuditEvent) -> AuditEntryId {
    r.audit
        .record(ctx, ev)
        .await
        .unwrap_or_else(|e| panic!("record: {e}"))
}

fn action(s: &str) -> AuditAction {
    AuditAction::parse(s).unwrap()
}

fn target_type(s: &str) -> TargetType {
    TargetType::parse(s).unwrap()
}

async fn page(r: &Repos, ctx: &Context, q: AuditQuery) -> AuditPage {
    r.audit
        .query(ctx, q)
        .await
        .unwrap_or_else(|e| panic!("query: {e}"))
}

fn actions(entries: &[AuditEntry]) -> Vec<String> {
    entries.iter().map(|e| e.action.to_string()).collect()
}

fn seqs(entries: &[AuditEntry]) -> Vec<i64> {
    entries.iter().map(|e| e.seq).collect()
}

/// A boxed future, so futures of different calls can be joined.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Polls every future concurrently until all are done (no runtime needed:
/// the backend's I/O interleaves within the one task).
pub(crate) async fn join_all<'a, T>(futures: Vec<BoxFuture<'a, T>>) -> Vec<T> {
    let mut futures = futures;
    let mut outputs: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *out = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|o| o.expect("every future completed"))
        .collect()
}

fn oidc_config() -> SsoConfig {
    SsoConfig::Oidc {
        issuer: "https://login.example.com".parse().unwrap(),
        client_id: "insightpulse".to_owned(),
        client_secret_ref: "secret://okta-client-secret".to_owned(),
        scopes: vec!["openid".to_owned(), "email".to_owned()],
    }
}

fn saml_config() -> SsoConfig {
    SsoConfig::Saml {
        idp_entity_id: "https://idp.example.com/metadata".to_owned(),
        sso_url: "https://idp.example.com/sso".parse().unwrap(),
        x509_certificate_pem:
            "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----"
                .to_owned(),
    }
}

/// The same lookup prefix with another secret.
fn tampered(token: &SecretString) -> SecretString {
    let mut s = token.expose_secret().to_owned();
    let last = s.pop().expect("non-empty token");
    s.push(if last == 'a' { 'b' } else { 'a' });
    SecretString::from(s)
}

// ---------------------------------------------------------------------------
// The SDK's own mutations
// ---------------------------------------------------------------------------

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
        r.audit.record(&actx, event("app.noted")).await,
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

/// Users, teams, sign-ins and reads are deliberately not audited.
pub async fn unaudited_calls_write_nothing(h: Harness) {
    let r = &h.repos;
    let (acme, alice, actx) = tenant_with_owner(r, "acme").await;
    let (bob, _) = member_with_role(r, &actx, "bob@acme.io", None).await;
    let web = project(r, &actx, "web").await;
    let prod = environment(r, &actx, web.id, EnvironmentKind::Production).await;
    let mut t = Trail::new(r, acme.id).await;

    signup(r, "dora@acme.io").await;
    r.users
        .update_profile(&Context::user(alice.id), Some(name("Alice A.")))
        .await
        .unwrap();
    r.users
        .set_password(
            &Context::user(alice.id),
            alice.id,
            &SecretString::from("correct horse battery staple"),
        )
        .await
        .unwrap();
    let team = r
        .teams
        .create_team(
            &actx,
            NewTeam {
                slug: slug("ops"),
                name: name("Ops"),
            },
        )
        .await
        .unwrap();
    r.teams
        .add_team_member(&actx, team.id, bob.id)
        .await
        .unwrap();
    r.auth
        .sign_in(
            &alice.email,
            &SecretString::from("correct horse battery staple"),
            RequestMeta::default(),
        )
        .await
        .unwrap();
    r.projects.get_project(&actx, web.id).await.unwrap();
    r.projects.list_projects(&actx, true).await.unwrap();
    r.projects.get_environment(&actx, prod.id).await.unwrap();
    r.projects.list_environments(&actx, web.id).await.unwrap();
    r.members.list_members(&actx).await.unwrap();
    r.rbac.list_roles(&actx).await.unwrap();
    r.audit
        .query(&actx, AuditQuery::last_days(30))
        .await
        .unwrap();
    r.audit.verify_chain(&actx).await.unwrap();
    t.none("unaudited calls").await;
}

/// A refused call — permission, conflict, validation, state, credentials —
/// leaves no entry.
pub async fn failed_calls_write_nothing(h: Harness) {
    let r = &h.repos;
    let (acme, alice, actx) = tenant_with_owner(r, "acme").await;
    let (bob, vctx) = member_with_role(r, &actx, "bob@acme.io", Some("Viewer")).await;
    let (_, _, uctx) = tenant_with_owner(r, "umbrella").await;
    let ops = custom_role(r, &actx, "Ops", RoleScope::Org, &["member.read"]).await;
    let invite = |e: &str| NewInvitation {
        email: email(e),
        role_id: None,
        valid_for: Duration::days(1),
    };
    let dora_inv = r
        .members
        .invite(&actx, invite("dora@acme.io"))
        .await
        .unwrap();
    let eve = signup(r, "eve@acme.io").await;
    let mut t = Trail::new(r, acme.id).await;

    assert_err!(
        r.members.invite(&vctx, invite("x@acme.io")).await,
        Error::PermissionDenied { .. }
    );
    t.none("invite without member.invite").await;
    assert_err!(
        r.members.invite(&actx, invite("bob@acme.io")).await,
        Error::Conflict { .. }
    );
    t.none("inviting a member").await;
    assert!(r
        .members
        .accept_invitation(&Context::user(eve.id), &dora_inv.token)
        .await
        .is_err());
    t.none("accepting another's invitation").await;
    assert_err!(
        r.members.remove_member(&actx, alice.id).await,
        Error::InvalidState { .. }
    );
    t.none("removing the last owner").await;
    assert_err!(
        r.members.set_owner(&vctx, bob.id, true).await,
        Error::PermissionDenied { .. }
    );
    t.none("set_owner by a non-owner").await;
    assert_err!(
        r.tenants
            .update_tenant(
                &vctx,
                TenantUpdate {
                    name: Some(name("Hacked")),
                    ..TenantUpdate::default()
                }
            )
            .await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.tenants
            .update_tenant(
                &actx,
                TenantUpdate {
                    settings: Some(json!([1, 2])),
                    ..TenantUpdate::default()
                }
            )
            .await,
        Error::Validation { .. }
    );
    assert_err!(
        r.tenants.delete_tenant(&vctx).await,
        Error::PermissionDenied { .. }
    );
    t.none("refused tenant changes").await;
    assert_err!(
        r.rbac
            .create_role(
                &actx,
                NewRole {
                    name: name("Ops"),
                    scope: RoleScope::Org,
                    description: None,
                    permissions: codes(&["member.read"]),
                }
            )
            .await,
        Error::Conflict { .. }
    );
    assert_err!(
        r.rbac.grant_role(&vctx, bob.id, ops.id, None).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.rbac.delete_role(&vctx, ops.id).await,
        Error::PermissionDenied { .. }
    );
    t.none("refused role changes").await;
    assert_err!(
        r.sso
            .create_provider(
                &actx,
                NewSsoProvider {
                    name: name("Okta"),
                    config: SsoConfig::Oidc {
                        issuer: "http://login.example.com".parse().unwrap(),
                        client_id: "x".to_owned(),
                        client_secret_ref: "secret://x".to_owned(),
                        scopes: vec!["openid".to_owned()],
                    },
                }
            )
            .await,
        Error::Validation { .. }
    );
    t.none("invalid provider").await;
    assert_err!(
        r.api_keys
            .create_api_key(
                &actx,
                NewApiKey {
                    name: name("old"),
                    scope: ApiKeyScope::Tenant,
                    permissions: codes(&["member.read"]),
                    expires_at: Some(h.clock.now() - Duration::days(1)),
                }
            )
            .await,
        Error::Validation { .. }
    );
    assert_err!(
        r.api_keys
            .create_api_key(
                &vctx,
                NewApiKey {
                    name: name("mine"),
                    scope: ApiKeyScope::Tenant,
                    permissions: codes(&["member.read"]),
                    expires_at: None,
                }
            )
            .await,
        Error::PermissionDenied { .. }
    );
    t.none("refused keys").await;
    assert_err!(
        r.audit
            .record(&uctx.clone().in_tenant(acme.id), event("app.noted"))
            .await,
        Error::NotFound {
            entity: Entity::Tenant
        }
    );
    t.none("record by an outsider").await;
}

/// No entry holds a secret: no API key or invitation token, no password,
/// no SSO secret reference; and no diff holds an invitee's address.
pub async fn diffs_never_hold_secrets(h: Harness) {
    let r = &h.repos;
    let (acme, alice, actx) = tenant_with_owner(r, "acme").await;
    let password = "correct horse battery staple";
    r.users
        .set_password(
            &Context::user(alice.id),
            alice.id,
            &SecretString::from(password),
        )
        .await
        .unwrap();
    let dora = signup(r, "dora@acme.io").await;
    let issued = r
        .members
        .invite(
            &actx,
            NewInvitation {
                email: dora.email.clone(),
                role_id: None,
                valid_for: Duration::days(1),
            },
        )
        .await
        .unwrap();
    r.members
        .accept_invitation(&Context::user(dora.id), &issued.token)
        .await
        .unwrap();
    let revoked = r
        .members
        .invite(
            &actx,
            NewInvitation {
                email: email("frank@acme.io"),
                role_id: None,
                valid_for: Duration::days(1),
            },
        )
        .await
        .unwrap();
    r.members
        .revoke_invitation(&actx, revoked.invitation.id)
        .await
        .unwrap();
    let key = r
        .api_keys
        .create_api_key(
            &actx,
            NewApiKey {
                name: name("ci"),
                scope: ApiKeyScope::Tenant,
                permissions: codes(&["member.read"]),
                expires_at: None,
            },
        )
        .await
        .unwrap();
    r.auth
        .authenticate(&key.secret, RequestMeta::default())
        .await
        .unwrap();
    r.api_keys.revoke_api_key(&actx, key.key.id).await.unwrap();
    let okta = r
        .sso
        .create_provider(
            &actx,
            NewSsoProvider {
                name: name("Okta"),
                config: oidc_config(),
            },
        )
        .await
        .unwrap();
    r.sso
        .update_provider(&actx, okta.id, Some(oidc_config()), None)
        .await
        .unwrap();

    let tokens = [
        issued.token.expose_secret().to_owned(),
        revoked.token.expose_secret().to_owned(),
        key.secret.expose_secret().to_owned(),
    ];
    // The secret half of each token (after `<tag>_<lookup>_`).
    let secret_halves: Vec<String> = tokens
        .iter()
        .map(|t| t.rsplit('_').next().unwrap().to_owned())
        .collect();
    let trail = audit_trail(r, acme.id).await;
    assert!(trail.len() >= 9, "{trail:#?}");
    for e in &trail {
        let text = format!("{e:?} {}", e.diff);
        for secret in tokens.iter().chain(&secret_halves) {
            assert!(!text.contains(secret.as_str()), "token in {text}");
        }
        for s in [password, "okta-client-secret", "$argon2"] {
            assert!(!text.contains(s), "{s} in {text}");
        }
        let diff = e.diff.to_string();
        for address in ["dora@acme.io", "frank@acme.io"] {
            assert!(!diff.contains(address), "{address} in {diff}");
        }
    }
}

// ---------------------------------------------------------------------------
// Host apps' events
// ---------------------------------------------------------------------------

/// Any principal that sees the tenant records events, always as itself and
/// with its request metadata.
pub async fn host_apps_record_their_own_events(h: Harness) {
    let r = &h.repos;
    let (acme, alice, actx) = tenant_with_owner(r, "acme").await;
    let (bob, vctx) = member_with_role(r, &actx, "bob@acme.io", Some("Viewer")).await;
    let (key, _, kctx) = api_key(r, &actx, ApiKeyScope::Tenant, &["member.read"]).await;
    let mut t = Trail::new(r, acme.id).await;

    h.clock.advance(Duration::minutes(1));
    let ev = AuditEvent::new(
        "invoice.finalized",
        "invoice",
        Some("inv_42"),
        Diff::new()
            .set("total", 4200)
            .change("status", "draft", "final"),
    )
    .unwrap();
    let id = record(r, &actx.clone().with_request(request("req-host")), ev).await;
    let e = t.one("owner's event").await;
    assert_eq!(e.id, id);
    assert_eq!((e.tenant_id, e.created_at), (acme.id, h.clock.now()));
    assert_event(
        &e,
        "invoice.finalized",
        "invoice",
        target("inv_42"),
        &Actor::User(alice.id),
        json!({"total": 4200, "status": {"from": "draft", "to": "final"}}),
    );
    assert_request(&e, "req-host");

    // A plain member needs no permission to record.
    let id = record(
        r,
        &vctx.clone().with_request_id("req-viewer"),
        event("doc.viewed"),
    )
    .await;
    let e = t.one("viewer's event").await;
    assert_eq!(e.id, id);
    assert_event(
        &e,
        "doc.viewed",
        "widget",
        target("w-1"),
        &Actor::User(bob.id),
        json!({"size": 3}),
    );
    assert_eq!(
        (e.request_id.as_deref(), e.ip, e.user_agent.as_deref()),
        (Some("req-viewer"), None, None)
    );

    let id = record(
        r,
        &kctx.clone().with_request(request("req-key")),
        event("sync.ran"),
    )
    .await;
    let e = t.one("key's event").await;
    assert_eq!(e.id, id);
    assert_eq!(e.actor, Actor::ApiKey(key.id));
    assert_request(&e, "req-key");

    let job = Context::system("nightly export").in_tenant(acme.id);
    let no_target =
        AuditEvent::new("report.exported", "report", None::<String>, json!({})).unwrap();
    let id = record(r, &job, no_target).await;
    let e = t.one("system's event").await;
    assert_eq!(e.id, id);
    assert_event(
        &e,
        "report.exported",
        "report",
        None,
        &Actor::System {
            reason: "nightly export".to_owned(),
        },
        json!({}),
    );
    assert_no_request(&e);

    // A target id of exactly 200 characters is fine.
    let long = "x".repeat(200);
    record(
        r,
        &actx,
        AuditEvent::new(
            "doc.tagged",
            "doc",
            Some(long.as_str()),
            json!({"tags": ["a"]}),
        )
        .unwrap(),
    )
    .await;
    assert_eq!(t.one("long target").await.target_id, Some(long));

    let trail = audit_trail(r, acme.id).await;
    let ids: HashSet<_> = trail.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), trail.len());
    assert_eq!(
        chain_verdict(r, acme.id).await,
        ChainVerdict::Intact {
            entries: trail.len() as u64,
            head_seq: trail.len() as i64
        }
    );
}

/// Events are validated before anything is written; a tenant the caller
/// cannot see is `NotFound`; the platform trail is the system's alone.
pub async fn record_refuses_bad_events_and_invisible_tenants(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let (bob, _) = member_with_role(r, &actx, "bob@acme.io", None).await;
    let (dave, _) = member_with_role(r, &actx, "dave@acme.io", None).await;
    r.members.suspend_member(&actx, dave.id).await.unwrap();
    let (umbrella, carol, _) = tenant_with_owner(r, "umbrella").await;
    let mut t = Trail::new(r, acme.id).await;

    let bad = [
        (
            AuditEvent::new("Invoice Finalized", "invoice", Some("1"), json!({})),
            "action",
        ),
        (
            AuditEvent::new("invoice.finalized", "Invoice", Some("1"), json!({})),
            "target_type",
        ),
        (
            AuditEvent::new("invoice.finalized", "invoice", Some("1"), json!([1, 2])),
            "diff",
        ),
        (
            AuditEvent::new("invoice.finalized", "invoice", Some("1"), json!("text")),
            "diff",
        ),
        (
            AuditEvent::new(
                "user.updated",
                "user",
                Some("1"),
                json!({"password": "hunter2"}),
            ),
            "diff",
        ),
        (
            AuditEvent::new(
                "user.updated",
                "user",
                Some("1"),
                json!({"profile": {"items": [{"api_token": "x"}]}}),
            ),
            "diff",
        ),
        (
            AuditEvent::new("doc.tagged", "doc", Some("x".repeat(201)), json!({})),
            "target_id",
        ),
        (
            AuditEvent::new("doc.tagged", "doc", Some(""), json!({})),
            "target_id",
        ),
    ];
    for (result, field) in bad {
        match result {
            Err(Error::Validation { field: f, .. }) if f == field => {}
            other => panic!("expected Validation({field}), got {other:?}"),
        }
    }

    let ev = event("app.noted");
    for ctx in [
        // a member of acme in a tenant it does not belong to
        Context::user(bob.id).in_tenant(umbrella.id),
        // an outsider in acme
        Context::user(carol.id).in_tenant(acme.id),
        // a tenant that does not exist
        system().in_tenant(TenantId::new()),
        // a suspended member
        Context::user(dave.id).in_tenant(acme.id),
    ] {
        assert_err!(
            r.audit.record(&ctx, ev.clone()).await,
            Error::NotFound {
                entity: Entity::Tenant
            }
        );
    }
    assert_err!(
        r.audit.record(&Context::user(bob.id), ev.clone()).await,
        Error::Validation {
            field: "context",
            ..
        }
    );
    t.none("refused records").await;

    // Only the system writes and reads the platform trail.
    let in_platform = Context::user(bob.id).in_tenant(PLATFORM_TENANT);
    assert_err!(
        r.audit.record(&in_platform, ev.clone()).await,
        Error::NotFound {
            entity: Entity::Tenant
        }
    );
    assert_err!(
        r.audit.verify_chain(&in_platform).await,
        Error::NotFound {
            entity: Entity::Tenant
        }
    );
    assert!(r
        .audit
        .query(&in_platform, AuditQuery::last_days(30))
        .await
        .unwrap()
        .entries
        .is_empty());
    assert_eq!(
        chain_verdict(r, PLATFORM_TENANT).await,
        ChainVerdict::Intact {
            entries: 0,
            head_seq: 0
        }
    );
    record(r, &system().in_tenant(PLATFORM_TENANT), ev).await;
    let platform = audit_trail(r, PLATFORM_TENANT).await;
    assert_eq!(seqs(&platform), [1]);
    assert_eq!(platform[0].tenant_id, PLATFORM_TENANT);
    assert_eq!(platform[0].actor, system_actor());
    assert_eq!(
        chain_verdict(r, PLATFORM_TENANT).await,
        ChainVerdict::Intact {
            entries: 1,
            head_seq: 1
        }
    );
}

// ---------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------

/// The report and the chain check need `audit.read`: a plain member is
/// refused, an outsider (or a suspended member) sees an empty page.
pub async fn query_needs_audit_read(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let (_, vctx) = member_with_role(r, &actx, "viewer@acme.io", Some("Viewer")).await;
    let (_, dctx) = member_with_role(r, &actx, "dev@acme.io", Some("Developer")).await;
    custom_role(r, &actx, "Auditor", RoleScope::Org, &["audit.read"]).await;
    let (_, audctx) = member_with_role(r, &actx, "auditor@acme.io", Some("Auditor")).await;
    let (sus, susctx) = member_with_role(r, &actx, "sus@acme.io", Some("Admin")).await;
    r.members.suspend_member(&actx, sus.id).await.unwrap();
    let (_, _, uctx) = tenant_with_owner(r, "umbrella").await;
    let outsider = uctx.in_tenant(acme.id);
    let (_, _, reader_key) = api_key(r, &actx, ApiKeyScope::Tenant, &["audit.read"]).await;
    let (_, _, other_key) = api_key(r, &actx, ApiKeyScope::Tenant, &["member.read"]).await;

    let q = AuditQuery::last_days(30);
    let all = page(r, &system().in_tenant(acme.id), q.clone()).await;
    assert!(all.entries.len() >= 10, "{all:#?}");
    for ctx in [&actx, &audctx, &reader_key] {
        assert_eq!(page(r, ctx, q.clone()).await, all);
        assert_eq!(
            r.audit.verify_chain(ctx).await.unwrap(),
            chain_verdict(r, acme.id).await
        );
    }
    for ctx in [&vctx, &dctx, &other_key] {
        assert_err!(
            r.audit.query(ctx, q.clone()).await,
            Error::PermissionDenied { .. }
        );
        assert_err!(
            r.audit.verify_chain(ctx).await,
            Error::PermissionDenied { .. }
        );
    }
    for ctx in [&outsider, &susctx] {
        let p = page(r, ctx, q.clone()).await;
        assert!(p.entries.is_empty() && p.next.is_none(), "{p:#?}");
        assert_err!(
            r.audit.verify_chain(ctx).await,
            Error::NotFound {
                entity: Entity::Tenant
            }
        );
    }
}

/// Entries come newest first — by time, then position — within the last
/// `last_days` days of the backend's clock (inclusive bound).
pub async fn query_is_newest_first_within_the_window(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await; // #1
    let t0 = h.clock.now();
    record(r, &actx, event("a.one")).await; // #2 at t0
    record(r, &actx, event("a.two")).await; // #3 at t0
    h.clock.advance(Duration::days(3));
    record(r, &actx, event("a.three")).await; // #4 at t0+3d
    h.clock.advance(Duration::days(4));
    record(r, &actx, event("a.four")).await; // #5 at t0+7d

    // An entry dated back (the clock was moved back) sorts by its time.
    h.clock.set(t0 + Duration::days(5));
    record(r, &actx, event("a.back")).await; // #6 at t0+5d
    h.clock.set(t0 + Duration::days(7));
    record(r, &actx, event("a.five")).await; // #7 at t0+7d

    let q = |days: u32| AuditQuery::last_days(days);
    let p = page(r, &actx, q(30)).await;
    assert_eq!(seqs(&p.entries), [7, 5, 6, 4, 3, 2, 1]);
    assert_eq!(
        actions(&p.entries),
        [
            "a.five",
            "a.four",
            "a.back",
            "a.three",
            "a.two",
            "a.one",
            "tenant.created"
        ]
    );
    assert_eq!(p.next, None);
    assert_eq!(p.entries[0].created_at, t0 + Duration::days(7));
    assert_eq!(p.entries[2].created_at, t0 + Duration::days(5));
    assert_eq!(p.entries[6].created_at, t0);

    // now - 7 days == t0: entries at exactly the bound are in.
    assert_eq!(
        seqs(&page(r, &actx, q(7)).await.entries),
        [7, 5, 6, 4, 3, 2, 1]
    );
    h.clock.advance(Duration::microseconds(1));
    assert_eq!(seqs(&page(r, &actx, q(7)).await.entries), [7, 5, 6, 4]);
    assert_eq!(seqs(&page(r, &actx, q(4)).await.entries), [7, 5, 6]);
    assert_eq!(seqs(&page(r, &actx, q(1)).await.entries), [7, 5]);
    h.clock.advance(Duration::days(2));
    let p = page(r, &actx, q(1)).await;
    assert!(p.entries.is_empty() && p.next.is_none(), "{p:#?}");
    assert_eq!(page(r, &actx, q(3)).await.entries.len(), 2);
    // The window does not hide the chain.
    assert_eq!(
        chain_verdict(r, acme.id).await,
        ChainVerdict::Intact {
            entries: 7,
            head_seq: 7
        }
    );
}

/// The report filters by action, actor (user, key, system) and target.
pub async fn query_filters_by_action_actor_and_target(h: Harness) {
    let r = &h.repos;
    let (acme, alice, actx) = tenant_with_owner(r, "acme").await;
    let (bob, vctx) = member_with_role(r, &actx, "bob@acme.io", Some("Viewer")).await;
    let (key, _, kctx) = api_key(r, &actx, ApiKeyScope::Tenant, &["member.read"]).await;
    let doc = |action: &str, id: &str| AuditEvent::new(action, "doc", Some(id), json!({})).unwrap();
    record(r, &actx, doc("doc.viewed", "d1")).await;
    record(r, &vctx, doc("doc.viewed", "d2")).await;
    record(r, &kctx, doc("doc.exported", "d1")).await;
    record(
        r,
        &system().in_tenant(acme.id),
        AuditEvent::new("doc.viewed", "report", Some("d1"), json!({})).unwrap(),
    )
    .await;

    let mut all = audit_trail(r, acme.id).await;
    all.reverse(); // newest first: every entry was written at the same instant
    let expect = |pred: &dyn Fn(&AuditEntry) -> bool| -> Vec<i64> {
        all.iter().filter(|e| pred(e)).map(|e| e.seq).collect()
    };
    let reader = &actx;
    let query = |q: AuditQuery| async move { seqs(&page(r, reader, q).await.entries) };
    let base = AuditQuery::last_days(30);

    let viewed = query(base.clone().action(action("doc.viewed"))).await;
    assert_eq!(viewed.len(), 3);
    assert_eq!(viewed, expect(&|e| e.action.as_str() == "doc.viewed"));

    let by_alice = query(base.clone().actor(ActorFilter::User(alice.id))).await;
    assert_eq!(by_alice, expect(&|e| e.actor == Actor::User(alice.id)));
    // tenant.created, bob's invitation, the key's creation, alice's doc.viewed
    assert_eq!(by_alice.len(), 4);
    assert_eq!(
        query(base.clone().actor(ActorFilter::User(bob.id))).await,
        expect(&|e| e.actor == Actor::User(bob.id))
    );
    let by_key = query(base.clone().actor(ActorFilter::ApiKey(key.id))).await;
    assert_eq!(by_key.len(), 2); // api_key.first_used, doc.exported
    assert_eq!(by_key, expect(&|e| e.actor == Actor::ApiKey(key.id)));
    let by_system = query(base.clone().actor(ActorFilter::System)).await;
    assert_eq!(by_system.len(), 1);
    assert_eq!(by_system, expect(&|e| e.actor.kind() == "system"));
    assert!(query(base.clone().actor(ActorFilter::User(UserId::new())))
        .await
        .is_empty());

    let d1 = query(base.clone().target(target_type("doc"), target("d1"))).await;
    assert_eq!(d1.len(), 2);
    assert_eq!(
        d1,
        expect(&|e| e.target_type.as_str() == "doc" && e.target_id.as_deref() == Some("d1"))
    );
    let docs = query(base.clone().target(target_type("doc"), None)).await;
    assert_eq!(docs, expect(&|e| e.target_type.as_str() == "doc"));
    assert_eq!(docs.len(), 3);
    let key_entries = query(base.clone().target(target_type("api_key"), target(key.id))).await;
    assert_eq!(key_entries.len(), 2);

    let bobs_views = query(
        base.clone()
            .action(action("doc.viewed"))
            .actor(ActorFilter::User(bob.id)),
    )
    .await;
    assert_eq!(bobs_views.len(), 1);
    assert!(query(base.clone().action(action("doc.deleted")))
        .await
        .is_empty());
}

/// Pages follow each other by cursor — across equal timestamps — with no
/// entry missing or repeated; `next` is set iff there are more.
pub async fn query_pages_by_cursor_without_gaps_or_duplicates(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let paged = |i: i64| AuditEvent::new("page.entry", "doc", Some(i), json!({"i": i})).unwrap();
    for i in 0..7 {
        if i == 3 || i == 5 {
            h.clock.advance(Duration::minutes(1));
        }
        record(r, &actx, paged(i)).await;
    }
    let q = AuditQuery::last_days(30).action(action("page.entry"));
    let all = page(r, &actx, q.clone().limit(1000)).await;
    assert_eq!(all.entries.len(), 7);
    assert_eq!(all.next, None);
    let is: Vec<i64> = all
        .entries
        .iter()
        .map(|e| e.diff["i"].as_i64().unwrap())
        .collect();
    assert_eq!(is, [6, 5, 4, 3, 2, 1, 0]);

    let p1 = page(r, &actx, q.clone().limit(3)).await;
    assert_eq!(p1.entries, all.entries[..3]);
    let c1 = p1.next.expect("a second page");
    assert_eq!(c1, AuditCursor::after(&p1.entries[2]));
    assert_eq!(c1.to_string().parse::<AuditCursor>().unwrap(), c1);

    // Entries written meanwhile are newer: they do not shift later pages.
    record(r, &actx, paged(7)).await;

    let p2 = page(r, &actx, q.clone().limit(3).after(c1)).await;
    assert_eq!(p2.entries, all.entries[3..6]);
    let c2 = p2.next.expect("a third page");
    let p3 = page(r, &actx, q.clone().limit(3).after(c2)).await;
    assert_eq!(p3.entries, all.entries[6..]);
    assert_eq!(p3.next, None);

    // A page that ends exactly at the last entry has no next.
    let fresh = page(r, &actx, q.clone().limit(8)).await;
    assert_eq!(fresh.entries.len(), 8);
    assert_eq!(fresh.next, None);
    let p = page(r, &actx, q.clone().limit(4).after(c1)).await;
    assert_eq!(p.entries, all.entries[3..]);
    assert_eq!(p.next, None);

    // Unfiltered, two by two, the pages cover the whole trail exactly once.
    let trail = audit_trail(r, acme.id).await;
    let mut seen = Vec::new();
    let mut q = AuditQuery::last_days(30).limit(2);
    loop {
        let p = page(r, &actx, q.clone()).await;
        assert!(p.entries.len() <= 2);
        seen.extend(p.entries.iter().map(|e| e.id));
        match p.next {
            Some(c) => q = q.after(c),
            None => break,
        }
    }
    let mut newest_first: Vec<_> = trail.iter().map(|e| e.id).collect();
    newest_first.reverse();
    assert_eq!(seen, newest_first);

    // A cursor older than everything yields an empty page.
    let before_all = AuditCursor {
        created_at_micros: trail[0].created_at.timestamp_micros(),
        seq: 1,
    };
    let p = page(r, &actx, AuditQuery::last_days(30).after(before_all)).await;
    assert!(p.entries.is_empty() && p.next.is_none(), "{p:#?}");
}

/// Bounds and cursors are checked before anything else.
pub async fn query_rejects_bad_bounds_and_cursors(h: Harness) {
    let r = &h.repos;
    let (acme, owner, actx) = tenant_with_owner(r, "acme").await;
    let (_, _, uctx) = tenant_with_owner(r, "umbrella").await;
    let outsider = uctx.in_tenant(acme.id);
    for (q, field) in [
        (AuditQuery::last_days(0), "last_days"),
        (AuditQuery::last_days(3651), "last_days"),
        (AuditQuery::last_days(30).limit(0), "limit"),
        (AuditQuery::last_days(30).limit(1001), "limit"),
    ] {
        for ctx in [&actx, &outsider] {
            match r.audit.query(ctx, q.clone()).await {
                Err(Error::Validation { field: f, .. }) if f == field => {}
                other => panic!("{q:?}: expected Validation({field}), got {other:?}"),
            }
        }
        // Where before what: without a tenant, the context is the error.
        assert_err!(
            r.audit.query(&Context::user(owner.id), q.clone()).await,
            Error::Validation {
                field: "context",
                ..
            }
        );
    }
    assert_eq!(
        page(r, &actx, AuditQuery::last_days(3650).limit(1000))
            .await
            .entries
            .len(),
        1
    );
    assert_eq!(
        page(r, &actx, AuditQuery::last_days(1).limit(1))
            .await
            .entries
            .len(),
        1
    );
    for bad in [
        "",
        "abc",
        "12",
        "x.1",
        "1.y",
        "1.0",
        "1.-3",
        "1.2.3",
        "99999999999999999999.1",
    ] {
        assert_err!(
            bad.parse::<AuditCursor>(),
            Error::Validation {
                field: "cursor",
                ..
            }
        );
    }
}

/// Each entry names the acting user's current email; keys and the system
/// have none.
pub async fn query_shows_the_acting_users_email(h: Harness) {
    let r = &h.repos;
    let (acme, alice, actx) = tenant_with_owner(r, "acme").await;
    let (bob, _) = member_with_role(r, &actx, "bob@acme.io", None).await;
    let (key, _, kctx) = api_key(r, &actx, ApiKeyScope::Tenant, &["member.read"]).await;
    record(r, &kctx, event("sync.ran")).await;
    record(r, &system().in_tenant(acme.id), event("job.ran")).await;
    // Bob leaves: his entries still name him.
    r.members.remove_member(&actx, bob.id).await.unwrap();

    let entries = page(r, &actx, AuditQuery::last_days(30)).await.entries;
    assert_eq!(entries.len(), 8, "{entries:#?}");
    for e in &entries {
        let expected = match &e.actor {
            Actor::User(u) if *u == alice.id => Some(alice.email.to_string()),
            Actor::User(u) if *u == bob.id => Some(bob.email.to_string()),
            Actor::User(u) => panic!("unexpected actor {u}"),
            Actor::ApiKey(k) => {
                assert_eq!(*k, key.id);
                None
            }
            Actor::System { .. } => None,
        };
        assert_eq!(e.actor_email, expected, "{e:#?}");
    }
    assert!(entries
        .iter()
        .any(|e| e.actor == Actor::User(bob.id) && e.action.as_str() == "member.joined"));
    assert_eq!(
        entries.iter().filter(|e| e.actor_email.is_none()).count(),
        3
    );
}

/// Each entry an API key acted in names the key (its name and public
/// prefix) and no email, while the key exists — revoked keys included; a
/// key deleted with its project leaves its entries unnamed. Users' and the
/// system's entries name no key.
pub async fn query_names_the_acting_key(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let web = project(r, &actx, "web").await;
    let issue = |key_name: &str, scope: ApiKeyScope| {
        let (r, actx, key_name) = (r.clone(), actx.clone(), name(key_name));
        async move {
            let issued = r
                .api_keys
                .create_api_key(
                    &actx,
                    NewApiKey {
                        name: key_name,
                        scope,
                        permissions: codes(&["member.read"]),
                        expires_at: None,
                    },
                )
                .await
                .unwrap();
            let ctx = r
                .auth
                .authenticate(&issued.secret, RequestMeta::default())
                .await
                .unwrap();
            (issued.key, ctx)
        }
    };
    let (nightly, nctx) = issue("Nightly sync", ApiKeyScope::Tenant).await;
    let (deploy, dctx) = issue("Deploy bot", ApiKeyScope::Project(web.id)).await;
    record(r, &nctx, event("sync.ran")).await;
    record(r, &dctx, event("deploy.ran")).await;
    record(r, &system().in_tenant(acme.id), event("job.ran")).await;
    r.api_keys.revoke_api_key(&actx, nightly.id).await.unwrap();

    let label = |k: &insightpulse_core::tenancy::ApiKey| KeyLabel {
        name: k.name.clone(),
        prefix: k.prefix.clone(),
    };
    let entries = page(r, &actx, AuditQuery::last_days(30)).await.entries;
    let mut by_key = 0;
    for e in &entries {
        let expected = match e.actor {
            Actor::ApiKey(k) if k == nightly.id => Some(label(&nightly)),
            Actor::ApiKey(k) if k == deploy.id => Some(label(&deploy)),
            Actor::ApiKey(k) => panic!("unexpected key {k}"),
            Actor::User(_) | Actor::System { .. } => None,
        };
        if expected.is_some() {
            by_key += 1;
            assert_eq!(e.actor_email, None, "{e:#?}");
        }
        assert_eq!(e.actor_key, expected, "{e:#?}");
    }
    // Each key's first use and its event.
    assert_eq!(by_key, 4, "{entries:#?}");
    assert_eq!(
        label(&nightly).to_string(),
        format!("Nightly sync ({})", nightly.prefix)
    );

    // The project-scoped key goes with its project; its entries stay.
    r.projects.delete_project(&actx, web.id).await.unwrap();
    let entries = page(r, &actx, AuditQuery::last_days(30)).await.entries;
    let deploys: Vec<&AuditEntry> = entries
        .iter()
        .filter(|e| e.actor == Actor::ApiKey(deploy.id))
        .collect();
    assert_eq!(deploys.len(), 2);
    assert!(deploys
        .iter()
        .all(|e| e.actor_key.is_none() && e.actor_email.is_none()));
    assert!(entries
        .iter()
        .filter(|e| e.actor == Actor::ApiKey(nightly.id))
        .all(|e| e.actor_key == Some(label(&nightly))));
}

// ---------------------------------------------------------------------------
// The chain
// ---------------------------------------------------------------------------

/// After many mixed writes each tenant's chain is intact, numbered 1..n,
/// independently of the other tenants'.
pub async fn verify_chain_is_intact_per_tenant(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let (umbrella, _, uctx) = tenant_with_owner(r, "umbrella").await;
    let (bob, _) = member_with_role(r, &actx, "bob@acme.io", Some("Developer")).await;
    let ops = custom_role(r, &actx, "Ops", RoleScope::Global, &["member.read"]).await;
    let web = project(r, &actx, "web").await;
    for round in 0..3 {
        h.clock.advance(Duration::minutes(5));
        let grant = r
            .rbac
            .grant_role(&actx, bob.id, ops.id, Some(web.id))
            .await
            .unwrap();
        record(
            r,
            &actx.clone().with_request(request(&format!("req-{round}"))),
            event("app.step"),
        )
        .await;
        r.rbac.revoke_role(&actx, grant.id).await.unwrap();
        record(r, &uctx, event("other.step")).await;
        r.members.suspend_member(&actx, bob.id).await.unwrap();
        r.members.reactivate_member(&actx, bob.id).await.unwrap();
    }
    api_key(r, &actx, ApiKeyScope::Project(web.id), &["project.update"]).await;
    r.tenants
        .update_tenant(
            &uctx,
            TenantUpdate {
                name: Some(name("Umbrella Corp")),
                ..TenantUpdate::default()
            },
        )
        .await
        .unwrap();

    for (tenant, expected) in [(acme.id, 3 + 1 + 1 + 3 * 5 + 2), (umbrella.id, 1 + 3 + 1)] {
        let trail = audit_trail(r, tenant).await;
        assert_eq!(seqs(&trail), (1..=expected).collect::<Vec<i64>>());
        assert!(trail.iter().all(|e| e.tenant_id == tenant));
        assert_eq!(
            chain_verdict(r, tenant).await,
            ChainVerdict::Intact {
                entries: expected as u64,
                head_seq: expected
            }
        );
    }
    assert_eq!(
        r.audit.verify_chain(&actx).await.unwrap(),
        chain_verdict(r, acme.id).await
    );
}

/// Concurrent writers of one tenant — host events and SDK mutations — are
/// serialised on the chain's head: one intact chain, positions 1..n.
pub async fn concurrent_writers_keep_one_chain(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let (_, bctx) = member_with_role(r, &actx, "bob@acme.io", Some("Viewer")).await;
    let (umbrella, _, uctx) = tenant_with_owner(r, "umbrella").await;
    let base = audit_trail(r, acme.id).await.len();

    let mut futures: Vec<BoxFuture<'static, Result<()>>> = Vec::new();
    for i in 0..20 {
        let repos = r.clone();
        let ctx = if i % 2 == 0 {
            actx.clone()
        } else {
            bctx.clone()
        };
        futures.push(Box::pin(async move {
            let ev = AuditEvent::new("load.event", "doc", Some(i), json!({"i": i}))?;
            repos.audit.record(&ctx, ev).await.map(|_| ())
        }));
    }
    for i in 0..5 {
        let repos = r.clone();
        let ctx = actx.clone();
        futures.push(Box::pin(async move {
            repos
                .members
                .invite(
                    &ctx,
                    NewInvitation {
                        email: email(&format!("guest{i}@acme.io")),
                        role_id: None,
                        valid_for: Duration::days(1),
                    },
                )
                .await
                .map(|_| ())
        }));
    }
    for _ in 0..10 {
        let repos = r.clone();
        let ctx = uctx.clone();
        futures.push(Box::pin(async move {
            repos
                .audit
                .record(&ctx, event("other.event"))
                .await
                .map(|_| ())
        }));
    }
    for result in join_all(futures).await {
        result.unwrap();
    }

    let n = (base + 25) as i64;
    let trail = audit_trail(r, acme.id).await;
    assert_eq!(seqs(&trail), (1..=n).collect::<Vec<i64>>());
    let mut is: Vec<i64> = trail
        .iter()
        .filter(|e| e.action.as_str() == "load.event")
        .map(|e| e.diff["i"].as_i64().unwrap())
        .collect();
    is.sort_unstable();
    assert_eq!(is, (0..20).collect::<Vec<i64>>());
    assert_eq!(
        trail
            .iter()
            .filter(|e| e.action.as_str() == "member.invited")
            .count(),
        6
    );
    assert_eq!(
        chain_verdict(r, acme.id).await,
        ChainVerdict::Intact {
            entries: n as u64,
            head_seq: n
        }
    );
    assert_eq!(
        chain_verdict(r, umbrella.id).await,
        ChainVerdict::Intact {
            entries: 11,
            head_seq: 11
        }
    );
}
