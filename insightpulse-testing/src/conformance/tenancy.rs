//! Conformance cases of the tenancy module: tenants, users and passwords,
//! memberships and invitations, teams, roles and grants, the permission
//! check, SSO, API keys.
//!
//! Rule guarded here: every backend gives a principal exactly the rows it may
//! see (other tenants' rows are `NotFound`, their lists empty), exactly the
//! permissions core's evaluator grants, and refuses bad input, missing rights,
//! duplicates and forbidden transitions with the typed error of
//! behaviour.md — writing nothing when it refuses.

use super::{assert_err, Harness};
use crate::fixtures::*;
use chrono::Duration;
use insightpulse_core::projects::EnvironmentKind;
use insightpulse_core::tenancy::catalog::{self, BUILTIN_ROLES};
use insightpulse_core::tenancy::tokens::{issue, TokenHasher, TokenKind};
use insightpulse_core::tenancy::{
    ApiKeyScope, MembershipStatus, NewApiKey, NewInvitation, NewRole, NewSsoProvider, NewTeam,
    NewTenant, NewUser, RoleScope, SsoConfig, TenantUpdate,
};
use insightpulse_core::{
    Clock, Context, EnvironmentId, Error, ExposeSecret, InvitationId, ProjectId, RequestMeta,
    RoleGrantId, RoleId, SecretString, SsoProviderId, TeamId, TimeZone, TokenRejection, UserId,
};
use serde_json::json;

/// Replaces the last character of a token with another valid one: the same
/// lookup prefix, a secret that does not match.
fn tampered(token: &SecretString) -> SecretString {
    let mut s = token.expose_secret().to_owned();
    let last = s.pop().expect("non-empty token");
    s.push(if last == 'a' { 'b' } else { 'a' });
    SecretString::from(s)
}

/// A well-formed token of `kind` that no backend has ever issued.
fn foreign_token(kind: TokenKind) -> SecretString {
    issue(kind, &TokenHasher::new(b"some other pepper".to_vec())).token
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

fn oidc_config() -> SsoConfig {
    SsoConfig::Oidc {
        issuer: "https://login.example.com".parse().unwrap(),
        client_id: "insightpulse".to_owned(),
        client_secret_ref: "secret://okta-client-secret".to_owned(),
        scopes: vec!["openid".to_owned(), "email".to_owned()],
    }
}

fn invitation(email_address: &str, role_id: Option<RoleId>, valid_for: Duration) -> NewInvitation {
    NewInvitation {
        email: email(email_address),
        role_id,
        valid_for,
    }
}

// ---------------------------------------------------------------------------
// Tenants
// ---------------------------------------------------------------------------

/// Creating a tenant makes the creator its active owner with a tenant-wide
/// grant of the built-in Admin role, atomically.
pub async fn create_tenant_makes_creator_owner_and_admin(h: Harness) {
    let r = &h.repos;
    let alice = signup(r, "alice@acme.io").await;
    let tenant = r
        .tenants
        .create_tenant(
            &Context::user(alice.id),
            NewTenant {
                slug: slug("acme"),
                name: name("Acme Corp"),
                timezone: TimeZone::parse("Europe/Paris").unwrap(),
            },
        )
        .await
        .unwrap();
    assert_eq!(tenant.slug.as_str(), "acme");
    assert_eq!(tenant.name.as_str(), "Acme Corp");
    assert_eq!(tenant.timezone.as_str(), "Europe/Paris");
    assert_eq!(tenant.settings, json!({}));
    assert_eq!(tenant.created_at, h.clock.now());
    assert_eq!(tenant.updated_at, h.clock.now());

    let ctx = Context::user(alice.id).in_tenant(tenant.id);
    assert_eq!(r.tenants.get_tenant(&ctx, tenant.id).await.unwrap(), tenant);
    assert_eq!(
        r.tenants
            .get_tenant_by_slug(&ctx, &slug("acme"))
            .await
            .unwrap(),
        tenant
    );

    let members = r.members.list_members(&ctx).await.unwrap();
    assert_eq!(members.len(), 1);
    let m = &members[0];
    assert_eq!((m.tenant_id, m.user_id), (tenant.id, alice.id));
    assert!(m.is_owner);
    assert_eq!(m.status, MembershipStatus::Active);
    assert_eq!(m.created_at, h.clock.now());

    let grants = r.rbac.list_grants(&ctx, None).await.unwrap();
    assert_eq!(grants.len(), 1);
    let g = &grants[0];
    assert_eq!(
        (g.tenant_id, g.user_id, g.project_id, g.granted_by),
        (tenant.id, alice.id, None, Some(alice.id))
    );
    let admin = r.rbac.get_role(&ctx, g.role_id).await.unwrap();
    assert_eq!(admin.name.as_str(), catalog::ADMIN_ROLE);
    assert_eq!(admin.tenant_id, None);
    assert_eq!(admin.scope, RoleScope::Org);

    for (c, _) in catalog::PERMISSIONS {
        assert!(
            r.rbac.has_permission(&ctx, &code(c), None).await.unwrap(),
            "owner lacks {c}"
        );
    }
}

/// Only an existing user creates tenants; a taken slug is a conflict and
/// writes nothing.
pub async fn create_tenant_needs_an_existing_user_and_a_free_slug(h: Harness) {
    let r = &h.repos;
    let (acme, _alice, actx) = tenant_with_owner(r, "acme").await;
    let new = |s: &str| NewTenant {
        slug: slug(s),
        name: name("Other"),
        timezone: TimeZone::utc(),
    };
    assert_err!(
        r.tenants.create_tenant(&system(), new("sys")).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.tenants
            .create_tenant(&Context::user(UserId::new()), new("ghost"))
            .await,
        Error::NotFound { entity: "user" }
    );
    let (_, _, kctx) = api_key(r, &actx, ApiKeyScope::Tenant, &["project.create"]).await;
    assert_err!(
        r.tenants.create_tenant(&kctx, new("keyco")).await,
        Error::PermissionDenied { .. }
    );

    let bob = signup(r, "bob@else.io").await;
    assert_err!(
        r.tenants
            .create_tenant(&Context::user(bob.id), new("acme"))
            .await,
        Error::Conflict {
            entity: "tenant",
            ..
        }
    );
    assert!(r
        .tenants
        .list_my_tenants(&Context::user(bob.id))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        r.tenants
            .get_tenant_by_slug(&system(), &slug("acme"))
            .await
            .unwrap()
            .id,
        acme.id
    );
    assert_eq!(r.members.list_members(&actx).await.unwrap().len(), 1);
    for s in ["sys", "ghost", "keyco"] {
        assert_err!(
            r.tenants.get_tenant_by_slug(&system(), &slug(s)).await,
            Error::NotFound { .. }
        );
    }
}

/// A user's tenants are those with an active membership, ordered by slug
/// compared bytewise.
pub async fn list_my_tenants_shows_active_memberships_by_slug(h: Harness) {
    let r = &h.repos;
    let alice = signup(r, "alice@x.io").await;
    let bob = signup(r, "bob@x.io").await;
    for s in ["zeta", "ab", "a-c"] {
        create_tenant(r, &alice, s).await;
    }
    let (_, beta) = create_tenant(r, &bob, "beta").await;
    let (_, mid) = create_tenant(r, &bob, "mid").await;
    join(r, &beta, &alice, None).await;
    join(r, &mid, &alice, None).await;
    r.members.suspend_member(&mid, alice.id).await.unwrap();

    let slugs: Vec<String> = r
        .tenants
        .list_my_tenants(&Context::user(alice.id))
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.slug.to_string())
        .collect();
    // Bytewise: '-' (0x2d) sorts before 'b'; "mid" is hidden (suspended).
    assert_eq!(slugs, ["a-c", "ab", "beta", "zeta"]);
    assert_err!(
        r.tenants.list_my_tenants(&system()).await,
        Error::PermissionDenied { .. }
    );
}

/// Another tenant's rows are NotFound, its lists empty, and attempts to
/// change them change nothing.
pub async fn other_tenants_are_invisible(h: Harness) {
    let r = &h.repos;
    let (acme, alice, actx) = tenant_with_owner(r, "acme").await;
    let (umb, bob, bctx) = tenant_with_owner(r, "umbrella").await;
    let b_team = r
        .teams
        .create_team(
            &bctx,
            NewTeam {
                slug: slug("ops"),
                name: name("Ops"),
            },
        )
        .await
        .unwrap();
    let b_role = custom_role(r, &bctx, "Auditor", RoleScope::Org, &["audit.read"]).await;
    let b_provider = r
        .sso
        .create_provider(
            &bctx,
            NewSsoProvider {
                name: name("Okta"),
                config: oidc_config(),
            },
        )
        .await
        .unwrap();
    r.sso
        .link_identity(&bctx, b_provider.id, "bob-1", bob.id)
        .await
        .unwrap();
    let b_inv = r
        .members
        .invite(
            &bctx,
            invitation("eve@umbrella.io", None, Duration::days(1)),
        )
        .await
        .unwrap();
    let (b_key, _, _) = api_key(r, &bctx, ApiKeyScope::Tenant, &["member.read"]).await;
    let b_project = project(r, &bctx, "web").await;

    // Gets of B's tenant from A.
    assert_err!(
        r.tenants.get_tenant(&actx, umb.id).await,
        Error::NotFound { .. }
    );
    assert_err!(
        r.tenants.get_tenant_by_slug(&actx, &slug("umbrella")).await,
        Error::NotFound { .. }
    );

    // Alice acting in B's tenant, where she is no member: lists empty, the rest NotFound.
    let in_b = Context::user(alice.id).in_tenant(umb.id);
    assert!(r.members.list_members(&in_b).await.unwrap().is_empty());
    assert!(r.members.list_invitations(&in_b).await.unwrap().is_empty());
    assert!(r.teams.list_teams(&in_b).await.unwrap().is_empty());
    assert!(r.rbac.list_grants(&in_b, None).await.unwrap().is_empty());
    assert!(r.sso.list_providers(&in_b).await.unwrap().is_empty());
    assert!(r
        .sso
        .list_identities(&in_b, bob.id)
        .await
        .unwrap()
        .is_empty());
    assert!(r.api_keys.list(&in_b).await.unwrap().is_empty());
    assert!(r
        .rbac
        .list_roles(&in_b)
        .await
        .unwrap()
        .iter()
        .all(|role| role.tenant_id.is_none()));
    assert!(!r
        .rbac
        .has_permission(&in_b, &code("member.read"), None)
        .await
        .unwrap());
    assert_err!(
        r.members.get_member(&in_b, bob.id).await,
        Error::NotFound { .. }
    );
    assert_err!(
        r.teams.get_team(&in_b, b_team.id).await,
        Error::NotFound { .. }
    );
    assert_err!(
        r.rbac.get_role(&in_b, b_role.id).await,
        Error::NotFound { .. }
    );
    assert_err!(
        r.tenants
            .update_tenant(
                &in_b,
                TenantUpdate {
                    name: Some(name("Pwned")),
                    ..Default::default()
                }
            )
            .await,
        Error::NotFound { .. }
    );
    assert_err!(r.tenants.delete_tenant(&in_b).await, Error::NotFound { .. });
    assert_err!(
        r.teams
            .create_team(
                &in_b,
                NewTeam {
                    slug: slug("evil"),
                    name: name("Evil")
                }
            )
            .await,
        Error::NotFound { .. }
    );
    assert_err!(
        r.members.suspend_member(&in_b, bob.id).await,
        Error::NotFound { .. }
    );
    assert_err!(
        r.members
            .invite(&in_b, invitation("mallory@x.io", None, Duration::days(1)))
            .await,
        Error::NotFound { .. }
    );

    // Alice acting in her own tenant with B's ids.
    assert_err!(
        r.members.get_member(&actx, bob.id).await,
        Error::NotFound { entity: "member" }
    );
    assert_err!(
        r.teams.get_team(&actx, b_team.id).await,
        Error::NotFound { entity: "team" }
    );
    assert_err!(
        r.teams.rename_team(&actx, b_team.id, name("Mine")).await,
        Error::NotFound { entity: "team" }
    );
    assert_err!(
        r.teams.delete_team(&actx, b_team.id).await,
        Error::NotFound { entity: "team" }
    );
    assert_err!(
        r.rbac.get_role(&actx, b_role.id).await,
        Error::NotFound { entity: "role" }
    );
    assert_err!(
        r.rbac
            .set_role_permissions(&actx, b_role.id, codes(&["billing.manage"]))
            .await,
        Error::NotFound { entity: "role" }
    );
    assert_err!(
        r.rbac.delete_role(&actx, b_role.id).await,
        Error::NotFound { entity: "role" }
    );
    assert_err!(
        r.members
            .revoke_invitation(&actx, b_inv.invitation.id)
            .await,
        Error::NotFound {
            entity: "invitation"
        }
    );
    assert_err!(
        r.api_keys.get(&actx, b_key.id).await,
        Error::NotFound { entity: "api key" }
    );
    assert_err!(
        r.api_keys.revoke(&actx, b_key.id).await,
        Error::NotFound { entity: "api key" }
    );
    assert_err!(
        r.sso
            .update_provider(&actx, b_provider.id, None, Some(false))
            .await,
        Error::NotFound {
            entity: "sso provider"
        }
    );
    assert_err!(
        r.sso.delete_provider(&actx, b_provider.id).await,
        Error::NotFound {
            entity: "sso provider"
        }
    );
    assert_err!(
        r.sso
            .find_user_by_identity(&actx, b_provider.id, "bob-1")
            .await,
        Error::NotFound {
            entity: "sso provider"
        }
    );
    assert_err!(
        r.projects.get_project(&actx, b_project.id).await,
        Error::NotFound { entity: "project" }
    );
    assert!(r
        .rbac
        .list_roles(&actx)
        .await
        .unwrap()
        .iter()
        .all(|role| role.id != b_role.id));
    assert_eq!(
        r.tenants.get_tenant(&actx, acme.id).await.unwrap().id,
        acme.id
    );

    // B is untouched.
    assert_eq!(
        r.tenants
            .get_tenant(&bctx, umb.id)
            .await
            .unwrap()
            .name
            .as_str(),
        "umbrella"
    );
    assert_eq!(
        r.teams
            .get_team(&bctx, b_team.id)
            .await
            .unwrap()
            .name
            .as_str(),
        "Ops"
    );
    assert_eq!(
        r.rbac.get_role(&bctx, b_role.id).await.unwrap().permissions,
        codes(&["audit.read"])
    );
    assert!(r.sso.list_providers(&bctx).await.unwrap()[0].enabled);
    assert_eq!(
        r.api_keys.get(&bctx, b_key.id).await.unwrap().revoked_at,
        None
    );
    assert_eq!(
        r.members.list_invitations(&bctx).await.unwrap()[0].revoked_at,
        None
    );
    assert_eq!(r.members.list_members(&bctx).await.unwrap().len(), 1);
    assert_eq!(r.teams.list_teams(&bctx).await.unwrap().len(), 1);
}

/// A tenant-scoped call without a tenant in its context is a validation
/// error; the global catalog needs none.
pub async fn calls_without_a_tenant_are_rejected(h: Harness) {
    let r = &h.repos;
    let (_, alice, _) = tenant_with_owner(r, "acme").await;
    let bare = Context::user(alice.id);
    assert_err!(
        r.members.list_members(&bare).await,
        Error::Validation {
            field: "context",
            ..
        }
    );
    assert_err!(
        r.teams.list_teams(&bare).await,
        Error::Validation {
            field: "context",
            ..
        }
    );
    assert_err!(
        r.projects.list_projects(&bare, true).await,
        Error::Validation {
            field: "context",
            ..
        }
    );
    assert_err!(
        r.rbac
            .has_permission(&bare, &code("member.read"), None)
            .await,
        Error::Validation {
            field: "context",
            ..
        }
    );
    assert_err!(
        r.teams
            .create_team(
                &bare,
                NewTeam {
                    slug: slug("ops"),
                    name: name("Ops")
                }
            )
            .await,
        Error::Validation {
            field: "context",
            ..
        }
    );
    assert_eq!(
        r.rbac.list_permissions(&bare).await.unwrap().len(),
        catalog::PERMISSIONS.len()
    );
}

/// Updating a tenant needs `tenant.manage`; settings must be a JSON object;
/// `updated_at` moves, `created_at` does not.
pub async fn update_tenant_needs_tenant_manage_and_object_settings(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let (_, vctx) = member_with_role(r, &actx, "viewer@acme.io", Some("Viewer")).await;

    assert_err!(
        r.tenants
            .update_tenant(
                &actx,
                TenantUpdate {
                    settings: Some(json!(["not", "an", "object"])),
                    name: Some(name("X")),
                    ..Default::default()
                }
            )
            .await,
        Error::Validation {
            field: "settings",
            ..
        }
    );
    assert_err!(
        r.tenants
            .update_tenant(
                &vctx,
                TenantUpdate {
                    name: Some(name("Viewer Co")),
                    ..Default::default()
                }
            )
            .await,
        Error::PermissionDenied { .. }
    );
    assert_eq!(r.tenants.get_tenant(&actx, acme.id).await.unwrap(), acme);

    h.clock.advance(Duration::hours(1));
    let updated = r
        .tenants
        .update_tenant(
            &actx,
            TenantUpdate {
                name: Some(name("Acme Inc")),
                timezone: Some(TimeZone::parse("America/New_York").unwrap()),
                settings: Some(json!({"theme": "dark"})),
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.name.as_str(), "Acme Inc");
    assert_eq!(updated.timezone.as_str(), "America/New_York");
    assert_eq!(updated.settings, json!({"theme": "dark"}));
    assert_eq!(updated.updated_at, h.clock.now());
    assert_eq!(updated.created_at, acme.created_at);
    assert_eq!(r.tenants.get_tenant(&actx, acme.id).await.unwrap(), updated);

    let renamed = r
        .tenants
        .update_tenant(
            &actx,
            TenantUpdate {
                name: Some(name("Acme")),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.timezone.as_str(), "America/New_York");
    assert_eq!(renamed.settings, json!({"theme": "dark"}));
}

/// Only an active owner (or the system) deletes a tenant, and everything in
/// it goes with it.
pub async fn delete_tenant_is_owner_only_and_cascades(h: Harness) {
    let r = &h.repos;
    let (acme, alice, actx) = tenant_with_owner(r, "acme").await;
    let (dev, dctx) = member_with_role(r, &actx, "dev@acme.io", Some("Developer")).await;
    let (_, adminctx) = member_with_role(r, &actx, "admin@acme.io", Some("Admin")).await;
    let p = project(r, &actx, "web").await;
    environment(r, &actx, p.id, EnvironmentKind::Production).await;
    let (_, secret, kctx) = api_key(r, &actx, ApiKeyScope::Tenant, &["tenant.manage"]).await;

    assert_err!(
        r.tenants.delete_tenant(&dctx).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.tenants.delete_tenant(&adminctx).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.tenants.delete_tenant(&kctx).await,
        Error::PermissionDenied { .. }
    );
    assert_eq!(
        r.projects.list_projects(&actx, true).await.unwrap().len(),
        1
    );

    r.tenants.delete_tenant(&actx).await.unwrap();
    assert_err!(
        r.tenants.get_tenant(&system(), acme.id).await,
        Error::NotFound { .. }
    );
    assert!(r
        .tenants
        .list_my_tenants(&Context::user(alice.id))
        .await
        .unwrap()
        .is_empty());
    assert!(r
        .tenants
        .list_my_tenants(&Context::user(dev.id))
        .await
        .unwrap()
        .is_empty());
    assert_err!(
        r.api_keys.verify(&system(), &secret).await,
        Error::Unauthenticated {
            reason: TokenRejection::Unknown,
            ..
        }
    );
    // Users survive; the slug is free again and the new tenant starts empty.
    assert_eq!(
        r.users.get_user(&system(), dev.id).await.unwrap().id,
        dev.id
    );
    let (again, actx2) = create_tenant(r, &alice, "acme").await;
    assert_ne!(again.id, acme.id);
    assert!(r
        .projects
        .list_projects(&actx2, true)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(r.members.list_members(&actx2).await.unwrap().len(), 1);
    assert_eq!(r.rbac.list_grants(&actx2, None).await.unwrap().len(), 1);

    // The system may delete any tenant.
    let (other, _, _) = tenant_with_owner(r, "other").await;
    r.tenants
        .delete_tenant(&system().in_tenant(other.id))
        .await
        .unwrap();
    assert_err!(
        r.tenants.get_tenant(&system(), other.id).await,
        Error::NotFound { .. }
    );
}

// ---------------------------------------------------------------------------
// Users and passwords
// ---------------------------------------------------------------------------

/// Users are registered by the system; emails are unique case-insensitively.
pub async fn users_are_created_by_the_system_with_unique_emails(h: Harness) {
    let r = &h.repos;
    let (_, alice, _) = tenant_with_owner(r, "acme").await;
    let new = |e: &str| NewUser {
        email: email(e),
        full_name: Some(name("Ada Lovelace")),
    };
    assert_err!(
        r.users
            .create_user(&Context::user(alice.id), new("ada@example.io"))
            .await,
        Error::PermissionDenied { .. }
    );

    let ada = r
        .users
        .create_user(&system(), new("Ada@Example.IO"))
        .await
        .unwrap();
    assert_eq!(ada.email.as_str(), "ada@example.io");
    assert_eq!(
        ada.full_name.as_ref().map(|n| n.as_str()),
        Some("Ada Lovelace")
    );
    assert!(!ada.has_password);
    assert_eq!(
        (ada.created_at, ada.updated_at),
        (h.clock.now(), h.clock.now())
    );
    assert_eq!(r.users.get_user(&system(), ada.id).await.unwrap(), ada);

    assert_err!(
        r.users.create_user(&system(), new("ADA@example.io")).await,
        Error::Conflict { entity: "user", .. }
    );
    assert_eq!(
        r.users
            .find_user_by_email(&system(), &email("ada@example.io"))
            .await
            .unwrap(),
        Some(ada)
    );
}

/// A user sees itself and users with a membership in a tenant where it is an
/// active member; an API key sees its tenant's members; the system sees all.
pub async fn users_see_themselves_and_co_members_only(h: Harness) {
    let r = &h.repos;
    let (_, alice, actx) = tenant_with_owner(r, "acme").await;
    let (bob, _) = member_with_role(r, &actx, "bob@acme.io", Some("Viewer")).await;
    let (dave, _) = member_with_role(r, &actx, "dave@acme.io", None).await;
    let carol = signup(r, "carol@else.io").await;
    r.members.suspend_member(&actx, dave.id).await.unwrap();
    let as_alice = Context::user(alice.id);

    assert_eq!(
        r.users.get_user(&as_alice, alice.id).await.unwrap().id,
        alice.id
    );
    assert_eq!(
        r.users.get_user(&as_alice, bob.id).await.unwrap().id,
        bob.id
    );
    assert_eq!(
        r.users.get_user(&as_alice, dave.id).await.unwrap().id,
        dave.id
    );
    assert_err!(
        r.users.get_user(&as_alice, carol.id).await,
        Error::NotFound { entity: "user" }
    );
    assert_err!(
        r.users.get_user(&as_alice, UserId::new()).await,
        Error::NotFound { entity: "user" }
    );
    assert_eq!(
        r.users
            .find_user_by_email(&as_alice, &bob.email)
            .await
            .unwrap()
            .map(|u| u.id),
        Some(bob.id)
    );
    assert_eq!(
        r.users
            .find_user_by_email(&as_alice, &carol.email)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        r.users
            .find_user_by_email(&as_alice, &email("nobody@nowhere.io"))
            .await
            .unwrap(),
        None
    );

    let as_carol = Context::user(carol.id);
    assert_eq!(
        r.users.get_user(&as_carol, carol.id).await.unwrap().id,
        carol.id
    );
    assert_err!(
        r.users.get_user(&as_carol, alice.id).await,
        Error::NotFound { .. }
    );

    // A suspended member sees only itself.
    let as_dave = Context::user(dave.id);
    assert_eq!(
        r.users.get_user(&as_dave, dave.id).await.unwrap().id,
        dave.id
    );
    assert_err!(
        r.users.get_user(&as_dave, alice.id).await,
        Error::NotFound { .. }
    );
    assert_eq!(
        r.users
            .find_user_by_email(&as_dave, &alice.email)
            .await
            .unwrap(),
        None
    );

    assert_eq!(
        r.users.get_user(&system(), carol.id).await.unwrap().id,
        carol.id
    );
    let (_, _, kctx) = api_key(r, &actx, ApiKeyScope::Tenant, &["member.read"]).await;
    assert_eq!(r.users.get_user(&kctx, bob.id).await.unwrap().id, bob.id);
    assert_err!(
        r.users.get_user(&kctx, carol.id).await,
        Error::NotFound { .. }
    );
}

/// `update_profile` changes the acting user's own name only.
pub async fn update_profile_changes_own_name(h: Harness) {
    let r = &h.repos;
    let alice = signup(r, "alice@acme.io").await;
    let me = Context::user(alice.id);
    h.clock.advance(Duration::minutes(5));
    let updated = r
        .users
        .update_profile(&me, Some(name("Alice Liddell")))
        .await
        .unwrap();
    assert_eq!(
        updated.full_name.as_ref().map(|n| n.as_str()),
        Some("Alice Liddell")
    );
    assert_eq!(updated.updated_at, h.clock.now());
    assert_eq!(updated.created_at, alice.created_at);
    assert_eq!(r.users.get_user(&me, alice.id).await.unwrap(), updated);
    assert_eq!(
        r.users.update_profile(&me, None).await.unwrap().full_name,
        None
    );
    assert_err!(
        r.users.update_profile(&system(), Some(name("Root"))).await,
        Error::PermissionDenied { .. }
    );
}

/// Passwords: set by the user itself or the system, validated first,
/// verified by the system only, every failure indistinguishable.
pub async fn passwords_are_set_by_self_or_system_and_verified(h: Harness) {
    let r = &h.repos;
    let (_, alice, actx) = tenant_with_owner(r, "acme").await;
    let (bob, _) = member_with_role(r, &actx, "bob@acme.io", None).await;
    let carol = signup(r, "carol@else.io").await;
    let pw = |s: &str| SecretString::from(s.to_owned());
    let me = Context::user(alice.id);

    r.users
        .set_password(&me, alice.id, &pw("correct horse battery"))
        .await
        .unwrap();
    assert!(r.users.get_user(&me, alice.id).await.unwrap().has_password);
    let verified = r
        .users
        .verify_password(&system(), &alice.email, &pw("correct horse battery"))
        .await
        .unwrap();
    assert_eq!(verified.id, alice.id);

    for (who, secret) in [
        (&alice.email, "wrong horse battery"),
        (&email("nobody@x.io"), "whatever1"),
        (&bob.email, "whatever1"),
    ] {
        assert_err!(
            r.users.verify_password(&system(), who, &pw(secret)).await,
            Error::Unauthenticated {
                reason: TokenRejection::Unknown,
                ..
            }
        );
    }
    assert_err!(
        r.users
            .verify_password(&me, &alice.email, &pw("correct horse battery"))
            .await,
        Error::PermissionDenied { .. }
    );

    // Validation comes first and writes nothing.
    assert_err!(
        r.users.set_password(&system(), bob.id, &pw("short")).await,
        Error::Validation {
            field: "password",
            ..
        }
    );
    assert_err!(
        r.users.set_password(&me, alice.id, &pw("short")).await,
        Error::Validation {
            field: "password",
            ..
        }
    );
    r.users
        .verify_password(&system(), &alice.email, &pw("correct horse battery"))
        .await
        .unwrap();
    // Only for oneself: a visible co-member is PermissionDenied, a stranger NotFound.
    assert_err!(
        r.users
            .set_password(&me, bob.id, &pw("hijacked password"))
            .await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.users
            .set_password(&me, carol.id, &pw("hijacked password"))
            .await,
        Error::NotFound { entity: "user" }
    );
    assert!(
        !r.users
            .get_user(&system(), bob.id)
            .await
            .unwrap()
            .has_password
    );
    assert!(
        !r.users
            .get_user(&system(), carol.id)
            .await
            .unwrap()
            .has_password
    );

    r.users
        .set_password(&system(), bob.id, &pw("bobs password"))
        .await
        .unwrap();
    assert_eq!(
        r.users
            .verify_password(&system(), &bob.email, &pw("bobs password"))
            .await
            .unwrap()
            .id,
        bob.id
    );
}

// ---------------------------------------------------------------------------
// Members and invitations
// ---------------------------------------------------------------------------

/// An invitation accepted by the invitee makes an active, non-owner member
/// with the invitation's role granted tenant-wide by the inviter.
pub async fn invite_and_accept_makes_a_member_with_the_role(h: Harness) {
    let r = &h.repos;
    let (acme, alice, actx) = tenant_with_owner(r, "acme").await;
    let developer = role_named(r, &actx, "Developer").await;
    let issued = r
        .members
        .invite(
            &actx,
            invitation("Bob@Acme.io", Some(developer.id), Duration::days(7)),
        )
        .await
        .unwrap();
    let inv = issued.invitation.clone();
    assert_eq!(inv.tenant_id, acme.id);
    assert_eq!(inv.email.as_str(), "bob@acme.io");
    assert_eq!(inv.role_id, Some(developer.id));
    assert_eq!(inv.invited_by, Some(alice.id));
    assert_eq!(inv.created_at, h.clock.now());
    assert_eq!(inv.expires_at, h.clock.now() + Duration::days(7));
    assert_eq!((inv.accepted_at, inv.revoked_at), (None, None));
    assert!(issued.token.expose_secret().starts_with("ipinv_"));
    assert_eq!(
        r.members.list_invitations(&actx).await.unwrap(),
        vec![inv.clone()]
    );

    let bob = signup(r, "bob@acme.io").await;
    h.clock.advance(Duration::minutes(1));
    let m = r
        .members
        .accept_invitation(&Context::user(bob.id), &issued.token)
        .await
        .unwrap();
    assert_eq!(
        (m.tenant_id, m.user_id, m.is_owner, m.status),
        (acme.id, bob.id, false, MembershipStatus::Active)
    );
    assert_eq!(m.created_at, h.clock.now());
    assert_eq!(r.members.get_member(&actx, bob.id).await.unwrap(), m);

    let grants = r.rbac.list_grants(&actx, Some(bob.id)).await.unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(
        (
            grants[0].role_id,
            grants[0].project_id,
            grants[0].granted_by
        ),
        (developer.id, None, Some(alice.id))
    );
    assert_eq!(grants[0].created_at, h.clock.now());
    assert_eq!(
        r.members.list_invitations(&actx).await.unwrap()[0].accepted_at,
        Some(h.clock.now())
    );

    let bctx = Context::user(bob.id).in_tenant(acme.id);
    assert_eq!(
        r.tenants
            .list_my_tenants(&Context::user(bob.id))
            .await
            .unwrap()[0]
            .id,
        acme.id
    );
    assert!(r
        .rbac
        .has_permission(&bctx, &code("project.create"), None)
        .await
        .unwrap());
    assert!(!r
        .rbac
        .has_permission(&bctx, &code("tenant.manage"), None)
        .await
        .unwrap());

    // Without a role: a member with no grants and no permissions.
    let (carol, cctx) = member_with_role(r, &actx, "carol@acme.io", None).await;
    assert!(r
        .rbac
        .list_grants(&actx, Some(carol.id))
        .await
        .unwrap()
        .is_empty());
    assert!(!r
        .rbac
        .has_permission(&cctx, &code("member.read"), None)
        .await
        .unwrap());
    assert_eq!(r.members.list_members(&actx).await.unwrap().len(), 3);
}

/// Members are listed by join time, then by user id.
pub async fn members_are_ordered_by_join_time_then_id(h: Harness) {
    let r = &h.repos;
    let (_, alice, actx) = tenant_with_owner(r, "acme").await;
    h.clock.advance(Duration::seconds(10));
    let (zed, _) = member_with_role(r, &actx, "zed@acme.io", None).await;
    h.clock.advance(Duration::seconds(10));
    // Two members joining at the same instant are ordered by id.
    let (x, _) = member_with_role(r, &actx, "x@acme.io", None).await;
    let (y, _) = member_with_role(r, &actx, "y@acme.io", None).await;
    let mut same_instant = [x.id, y.id];
    same_instant.sort();
    let listed: Vec<UserId> = r
        .members
        .list_members(&actx)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.user_id)
        .collect();
    assert_eq!(
        listed,
        vec![alice.id, zed.id, same_instant[0], same_instant[1]]
    );
}

/// An invitation token works once.
pub async fn invitation_tokens_are_single_use(h: Harness) {
    let r = &h.repos;
    let (_, _, actx) = tenant_with_owner(r, "acme").await;
    let issued = r
        .members
        .invite(&actx, invitation("bob@acme.io", None, Duration::days(1)))
        .await
        .unwrap();
    let bob = signup(r, "bob@acme.io").await;
    r.members
        .accept_invitation(&Context::user(bob.id), &issued.token)
        .await
        .unwrap();
    assert_err!(
        r.members
            .accept_invitation(&Context::user(bob.id), &issued.token)
            .await,
        Error::Unauthenticated {
            reason: TokenRejection::AlreadyUsed,
            ..
        }
    );
    assert_err!(
        r.members
            .revoke_invitation(&actx, issued.invitation.id)
            .await,
        Error::InvalidState {
            entity: "invitation",
            ..
        }
    );
    assert_eq!(r.members.list_members(&actx).await.unwrap().len(), 2);
}

/// A token is refused from its expiry instant on (`now >= expires_at`).
pub async fn expired_invitations_are_rejected(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let bob = signup(r, "bob@acme.io").await;
    let first = r
        .members
        .invite(&actx, invitation("bob@acme.io", None, Duration::hours(1)))
        .await
        .unwrap();
    h.clock.advance(Duration::hours(1));
    assert_err!(
        r.members
            .accept_invitation(&Context::user(bob.id), &first.token)
            .await,
        Error::Unauthenticated {
            reason: TokenRejection::Expired,
            ..
        }
    );
    assert_err!(
        r.members.get_member(&actx, bob.id).await,
        Error::NotFound { entity: "member" }
    );
    assert!(r
        .tenants
        .list_my_tenants(&Context::user(bob.id))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        r.members.list_invitations(&actx).await.unwrap()[0].accepted_at,
        None
    );

    let second = r
        .members
        .invite(&actx, invitation("bob@acme.io", None, Duration::hours(1)))
        .await
        .unwrap();
    h.clock.advance(Duration::minutes(59));
    let m = r
        .members
        .accept_invitation(&Context::user(bob.id), &second.token)
        .await
        .unwrap();
    assert_eq!(m.tenant_id, acme.id);
}

/// A revoked invitation is refused; revoking is idempotent and needs
/// `member.invite`.
pub async fn revoked_invitations_are_rejected(h: Harness) {
    let r = &h.repos;
    let (_, _, actx) = tenant_with_owner(r, "acme").await;
    let (_, vctx) = member_with_role(r, &actx, "viewer@acme.io", Some("Viewer")).await;
    let issued = r
        .members
        .invite(&actx, invitation("bob@acme.io", None, Duration::days(1)))
        .await
        .unwrap();
    let id = issued.invitation.id;

    assert_err!(
        r.members.revoke_invitation(&vctx, id).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.members.list_invitations(&vctx).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.members
            .revoke_invitation(&actx, InvitationId::new())
            .await,
        Error::NotFound {
            entity: "invitation"
        }
    );

    h.clock.advance(Duration::minutes(3));
    r.members.revoke_invitation(&actx, id).await.unwrap();
    let revoked_at = h.clock.now();
    let pending = |list: Vec<insightpulse_core::tenancy::Invitation>| {
        list.into_iter().find(|i| i.id == id).unwrap()
    };
    assert_eq!(
        pending(r.members.list_invitations(&actx).await.unwrap()).revoked_at,
        Some(revoked_at)
    );
    h.clock.advance(Duration::minutes(3));
    r.members.revoke_invitation(&actx, id).await.unwrap();
    assert_eq!(
        pending(r.members.list_invitations(&actx).await.unwrap()).revoked_at,
        Some(revoked_at)
    );

    let bob = signup(r, "bob@acme.io").await;
    assert_err!(
        r.members
            .accept_invitation(&Context::user(bob.id), &issued.token)
            .await,
        Error::Unauthenticated {
            reason: TokenRejection::Revoked,
            ..
        }
    );
    assert_err!(
        r.members.get_member(&actx, bob.id).await,
        Error::NotFound { .. }
    );
}

/// Garbage is Malformed; a well-formed token nobody issued, or a real prefix
/// with the wrong secret, is Unknown; only users accept invitations.
pub async fn malformed_and_unknown_invitation_tokens_are_rejected(h: Harness) {
    let r = &h.repos;
    let (_, _, actx) = tenant_with_owner(r, "acme").await;
    let issued = r
        .members
        .invite(&actx, invitation("bob@acme.io", None, Duration::days(1)))
        .await
        .unwrap();
    let (_, key_secret, _) = api_key(r, &actx, ApiKeyScope::Tenant, &["member.read"]).await;
    let bob = signup(r, "bob@acme.io").await;
    let as_bob = Context::user(bob.id);

    for bad in [
        SecretString::from("not-a-token"),
        SecretString::from(""),
        key_secret,
    ] {
        assert_err!(
            r.members.accept_invitation(&as_bob, &bad).await,
            Error::Unauthenticated {
                reason: TokenRejection::Malformed,
                ..
            }
        );
    }
    for unknown in [
        foreign_token(TokenKind::Invitation),
        tampered(&issued.token),
    ] {
        assert_err!(
            r.members.accept_invitation(&as_bob, &unknown).await,
            Error::Unauthenticated {
                reason: TokenRejection::Unknown,
                ..
            }
        );
    }
    assert_err!(
        r.members.accept_invitation(&system(), &issued.token).await,
        Error::PermissionDenied { .. }
    );
    assert_eq!(r.members.list_members(&actx).await.unwrap().len(), 1);
    r.members
        .accept_invitation(&as_bob, &issued.token)
        .await
        .unwrap();
}

/// Only a user whose email is the invitation's may accept it.
pub async fn invitations_are_bound_to_their_email(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let issued = r
        .members
        .invite(&actx, invitation("bob@acme.io", None, Duration::days(1)))
        .await
        .unwrap();
    let mallory = signup(r, "mallory@evil.io").await;
    assert_err!(
        r.members
            .accept_invitation(&Context::user(mallory.id), &issued.token)
            .await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.members.get_member(&actx, mallory.id).await,
        Error::NotFound { .. }
    );
    assert_eq!(
        r.members.list_invitations(&actx).await.unwrap()[0].accepted_at,
        None
    );
    let bob = signup(r, "bob@acme.io").await;
    assert_eq!(
        r.members
            .accept_invitation(&Context::user(bob.id), &issued.token)
            .await
            .unwrap()
            .tenant_id,
        acme.id
    );
}

/// Inviting a member (active or suspended) conflicts; accepting while
/// already a member conflicts and leaves the invitation unused.
pub async fn inviting_an_existing_member_conflicts(h: Harness) {
    let r = &h.repos;
    let (_, alice, actx) = tenant_with_owner(r, "acme").await;
    assert_err!(
        r.members
            .invite(
                &actx,
                invitation(alice.email.as_str(), None, Duration::days(1))
            )
            .await,
        Error::Conflict {
            entity: "member",
            ..
        }
    );
    assert!(r.members.list_invitations(&actx).await.unwrap().is_empty());

    let first = r
        .members
        .invite(&actx, invitation("bob@acme.io", None, Duration::days(1)))
        .await
        .unwrap();
    let second = r
        .members
        .invite(&actx, invitation("bob@acme.io", None, Duration::days(1)))
        .await
        .unwrap();
    let bob = signup(r, "bob@acme.io").await;
    r.members
        .accept_invitation(&Context::user(bob.id), &first.token)
        .await
        .unwrap();
    assert_err!(
        r.members
            .accept_invitation(&Context::user(bob.id), &second.token)
            .await,
        Error::Conflict {
            entity: "member",
            ..
        }
    );
    let second_row = r
        .members
        .list_invitations(&actx)
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.id == second.invitation.id)
        .unwrap();
    assert_eq!(second_row.accepted_at, None);

    r.members.suspend_member(&actx, bob.id).await.unwrap();
    assert_err!(
        r.members
            .invite(&actx, invitation("bob@acme.io", None, Duration::days(1)))
            .await,
        Error::Conflict {
            entity: "member",
            ..
        }
    );
    assert_eq!(r.members.list_invitations(&actx).await.unwrap().len(), 2);
}

/// Inviting needs `member.invite`; `valid_for` must lie in [1 minute, 30 days].
pub async fn invite_needs_member_invite_and_a_valid_window(h: Harness) {
    let r = &h.repos;
    let (_, _, actx) = tenant_with_owner(r, "acme").await;
    let (_, vctx) = member_with_role(r, &actx, "viewer@acme.io", Some("Viewer")).await;
    assert_err!(
        r.members
            .invite(&vctx, invitation("bob@acme.io", None, Duration::days(1)))
            .await,
        Error::PermissionDenied { .. }
    );
    for bad in [
        Duration::seconds(59),
        Duration::days(30) + Duration::seconds(1),
        Duration::zero(),
        Duration::days(-1),
    ] {
        assert_err!(
            r.members
                .invite(&actx, invitation("bob@acme.io", None, bad))
                .await,
            Error::Validation {
                field: "valid_for",
                ..
            }
        );
    }
    // The window is checked before the permission.
    assert_err!(
        r.members
            .invite(&vctx, invitation("bob@acme.io", None, Duration::seconds(1)))
            .await,
        Error::Validation {
            field: "valid_for",
            ..
        }
    );
    // Only the viewer's fixture invitation exists.
    assert_eq!(r.members.list_invitations(&actx).await.unwrap().len(), 1);
    r.members
        .invite(&actx, invitation("min@acme.io", None, Duration::minutes(1)))
        .await
        .unwrap();
    r.members
        .invite(&actx, invitation("max@acme.io", None, Duration::days(30)))
        .await
        .unwrap();
    assert_eq!(r.members.list_invitations(&actx).await.unwrap().len(), 3);
}

/// An invitation's role must be visible, grantable tenant-wide, and within
/// what the inviter may grant.
pub async fn invite_role_must_be_visible_grantable_and_held(h: Harness) {
    let r = &h.repos;
    let (_, _, actx) = tenant_with_owner(r, "acme").await;
    let (_, _, uctx) = tenant_with_owner(r, "umbrella").await;
    let foreign = custom_role(r, &uctx, "Spy", RoleScope::Org, &["member.read"]).await;
    let project_only = custom_role(
        r,
        &actx,
        "Project Only",
        RoleScope::Project,
        &["dashboard.read"],
    )
    .await;
    let reader = custom_role(r, &actx, "Reader", RoleScope::Org, &["member.read"]).await;
    custom_role(
        r,
        &actx,
        "Recruiter",
        RoleScope::Org,
        &["member.invite", "member.read"],
    )
    .await;
    custom_role(
        r,
        &actx,
        "Lead",
        RoleScope::Org,
        &["member.invite", "role.assign", "member.read", "usage.read"],
    )
    .await;
    let (_, recruiter) = member_with_role(r, &actx, "recruiter@acme.io", Some("Recruiter")).await;
    let (_, lead) = member_with_role(r, &actx, "lead@acme.io", Some("Lead")).await;
    let before = r.members.list_invitations(&actx).await.unwrap().len();
    let viewer = role_named(r, &actx, "Viewer").await;
    let billing = role_named(r, &actx, "Billing Admin").await;
    let inv = |e: &str, role: Option<RoleId>| invitation(e, role, Duration::days(1));

    assert_err!(
        r.members
            .invite(&actx, inv("a@x.io", Some(foreign.id)))
            .await,
        Error::NotFound { entity: "role" }
    );
    assert_err!(
        r.members
            .invite(&actx, inv("a@x.io", Some(RoleId::new())))
            .await,
        Error::NotFound { entity: "role" }
    );
    assert_err!(
        r.members
            .invite(&actx, inv("a@x.io", Some(project_only.id)))
            .await,
        Error::Validation { field: "role", .. }
    );
    // No role.assign: may invite, but not with a role.
    assert_err!(
        r.members
            .invite(&recruiter, inv("b@x.io", Some(viewer.id)))
            .await,
        Error::PermissionDenied { .. }
    );
    r.members
        .invite(&recruiter, inv("b@x.io", None))
        .await
        .unwrap();
    // role.assign, but not every permission of Billing Admin: no escalation.
    assert_err!(
        r.members
            .invite(&lead, inv("c@x.io", Some(billing.id)))
            .await,
        Error::PermissionDenied { .. }
    );
    r.members
        .invite(&lead, inv("c@x.io", Some(reader.id)))
        .await
        .unwrap();
    assert_eq!(
        r.members.list_invitations(&actx).await.unwrap().len(),
        before + 2
    );
}

/// A suspended member sees nothing of the tenant and holds no permission;
/// suspend and reactivate are idempotent and need `member.manage`.
pub async fn suspended_members_see_nothing_and_hold_nothing(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let (bob, bctx) = member_with_role(r, &actx, "bob@acme.io", Some("Developer")).await;
    let (_, vctx) = member_with_role(r, &actx, "viewer@acme.io", Some("Viewer")).await;
    let p = project(r, &actx, "web").await;

    assert_err!(
        r.members.suspend_member(&vctx, bob.id).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.members.suspend_member(&actx, UserId::new()).await,
        Error::NotFound { entity: "member" }
    );
    let m = r.members.suspend_member(&actx, bob.id).await.unwrap();
    assert_eq!(m.status, MembershipStatus::Suspended);
    assert_eq!(
        r.members
            .suspend_member(&actx, bob.id)
            .await
            .unwrap()
            .status,
        MembershipStatus::Suspended
    );
    assert_eq!(
        r.members.get_member(&actx, bob.id).await.unwrap().status,
        MembershipStatus::Suspended
    );

    assert!(r
        .tenants
        .list_my_tenants(&Context::user(bob.id))
        .await
        .unwrap()
        .is_empty());
    assert_err!(
        r.tenants.get_tenant(&bctx, acme.id).await,
        Error::NotFound { .. }
    );
    assert!(r
        .projects
        .list_projects(&bctx, true)
        .await
        .unwrap()
        .is_empty());
    assert!(r.members.list_members(&bctx).await.unwrap().is_empty());
    assert_err!(
        r.projects.get_project(&bctx, p.id).await,
        Error::NotFound { .. }
    );
    assert_err!(
        project_create(r, &bctx, "sneaky").await,
        Error::NotFound { .. }
    );
    for c in ["project.create", "member.read", "dashboard.read"] {
        assert!(!r.rbac.has_permission(&bctx, &code(c), None).await.unwrap());
        assert!(!r
            .rbac
            .has_permission(&bctx, &code(c), Some(p.id))
            .await
            .unwrap());
    }
    assert_eq!(
        r.projects.list_projects(&actx, true).await.unwrap().len(),
        1
    );

    assert_err!(
        r.members.reactivate_member(&vctx, bob.id).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.members.reactivate_member(&actx, UserId::new()).await,
        Error::NotFound { entity: "member" }
    );
    assert_eq!(
        r.members
            .reactivate_member(&actx, bob.id)
            .await
            .unwrap()
            .status,
        MembershipStatus::Active
    );
    assert_eq!(
        r.members
            .reactivate_member(&actx, bob.id)
            .await
            .unwrap()
            .status,
        MembershipStatus::Active
    );
    assert_eq!(r.projects.get_project(&bctx, p.id).await.unwrap().id, p.id);
    assert!(r
        .rbac
        .has_permission(&bctx, &code("project.create"), None)
        .await
        .unwrap());
    project(r, &bctx, "bobs").await;
}

async fn project_create(
    r: &insightpulse_core::Repos,
    ctx: &Context,
    s: &str,
) -> insightpulse_core::Result<insightpulse_core::projects::Project> {
    r.projects
        .create_project(
            ctx,
            insightpulse_core::projects::NewProject {
                slug: slug(s),
                name: name(s),
                description: None,
            },
        )
        .await
}

/// Removing a member deletes the membership with the user's grants, team
/// memberships and identities in the tenant — and nothing else.
pub async fn removing_a_member_removes_grants_teams_and_identities(h: Harness) {
    let r = &h.repos;
    let (_, alice, actx) = tenant_with_owner(r, "acme").await;
    let (bob, bctx) = member_with_role(r, &actx, "bob@acme.io", Some("Developer")).await;
    let (_, vctx) = member_with_role(r, &actx, "viewer@acme.io", Some("Viewer")).await;
    let p = project(r, &actx, "web").await;
    let viewer = role_named(r, &actx, "Viewer").await;
    r.rbac
        .grant_role(&actx, bob.id, viewer.id, Some(p.id))
        .await
        .unwrap();
    let team = r
        .teams
        .create_team(
            &actx,
            NewTeam {
                slug: slug("core"),
                name: name("Core"),
            },
        )
        .await
        .unwrap();
    r.teams
        .add_team_member(&actx, team.id, bob.id)
        .await
        .unwrap();
    r.teams
        .add_team_member(&actx, team.id, alice.id)
        .await
        .unwrap();
    let provider = r
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
        .link_identity(&actx, provider.id, "bob-subject", bob.id)
        .await
        .unwrap();

    assert_err!(
        r.members.remove_member(&vctx, bob.id).await,
        Error::PermissionDenied { .. }
    );
    assert_eq!(
        r.rbac.list_grants(&actx, Some(bob.id)).await.unwrap().len(),
        2
    );

    r.members.remove_member(&actx, bob.id).await.unwrap();
    assert_err!(
        r.members.get_member(&actx, bob.id).await,
        Error::NotFound { entity: "member" }
    );
    assert!(r
        .rbac
        .list_grants(&actx, Some(bob.id))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        r.teams.list_team_members(&actx, team.id).await.unwrap(),
        vec![alice.id]
    );
    assert!(r
        .sso
        .list_identities(&actx, bob.id)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        r.sso
            .find_user_by_identity(&actx, provider.id, "bob-subject")
            .await
            .unwrap(),
        None
    );
    assert!(r
        .tenants
        .list_my_tenants(&Context::user(bob.id))
        .await
        .unwrap()
        .is_empty());
    assert!(!r
        .rbac
        .has_permission(&bctx, &code("project.create"), None)
        .await
        .unwrap());
    assert_eq!(
        r.users.get_user(&system(), bob.id).await.unwrap().id,
        bob.id
    );
    assert_eq!(
        r.rbac
            .list_grants(&actx, Some(alice.id))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_err!(
        r.members.remove_member(&actx, bob.id).await,
        Error::NotFound { entity: "member" }
    );

    // Re-joining starts clean.
    join(r, &actx, &bob, None).await;
    assert!(r
        .rbac
        .list_grants(&actx, Some(bob.id))
        .await
        .unwrap()
        .is_empty());
}

/// The last active owner can neither be suspended, removed nor demoted — not
/// even by the system; a suspended owner does not count.
pub async fn last_active_owner_cannot_leave(h: Harness) {
    let r = &h.repos;
    let (acme, alice, actx) = tenant_with_owner(r, "acme").await;
    let (bob, bctx) = member_with_role(r, &actx, "bob@acme.io", None).await;
    let (carol, _) = member_with_role(r, &actx, "carol@acme.io", None).await;
    let sys = system().in_tenant(acme.id);

    assert_err!(
        r.members.suspend_member(&actx, alice.id).await,
        Error::InvalidState {
            entity: "member",
            ..
        }
    );
    assert_err!(
        r.members.remove_member(&actx, alice.id).await,
        Error::InvalidState {
            entity: "member",
            ..
        }
    );
    assert_err!(
        r.members.set_owner(&actx, alice.id, false).await,
        Error::InvalidState {
            entity: "member",
            ..
        }
    );
    assert_err!(
        r.members.remove_member(&sys, alice.id).await,
        Error::InvalidState {
            entity: "member",
            ..
        }
    );
    assert_err!(
        r.members.suspend_member(&sys, alice.id).await,
        Error::InvalidState {
            entity: "member",
            ..
        }
    );
    let m = r.members.get_member(&actx, alice.id).await.unwrap();
    assert!(m.is_owner && m.status == MembershipStatus::Active);

    // With a second owner, the first may step down.
    assert!(
        r.members
            .set_owner(&actx, bob.id, true)
            .await
            .unwrap()
            .is_owner
    );
    assert!(
        !r.members
            .set_owner(&actx, alice.id, false)
            .await
            .unwrap()
            .is_owner
    );
    assert_err!(
        r.members.set_owner(&bctx, bob.id, false).await,
        Error::InvalidState {
            entity: "member",
            ..
        }
    );

    // A suspended owner is not an active owner.
    r.members.set_owner(&bctx, carol.id, true).await.unwrap();
    r.members.suspend_member(&bctx, carol.id).await.unwrap();
    assert_err!(
        r.members.remove_member(&bctx, bob.id).await,
        Error::InvalidState {
            entity: "member",
            ..
        }
    );
    assert_err!(
        r.members.suspend_member(&bctx, bob.id).await,
        Error::InvalidState {
            entity: "member",
            ..
        }
    );
    r.members.remove_member(&bctx, carol.id).await.unwrap();
    assert_eq!(r.members.list_members(&bctx).await.unwrap().len(), 2);
}

/// Acting on an owner needs the actor to be an owner (or the system), even
/// with `member.manage`.
pub async fn only_owners_act_on_owners(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let (_, admin) = member_with_role(r, &actx, "admin@acme.io", Some("Admin")).await;
    let (bob, _) = member_with_role(r, &actx, "bob@acme.io", None).await;
    let (dev, _) = member_with_role(r, &actx, "dev@acme.io", Some("Developer")).await;
    r.members.set_owner(&actx, bob.id, true).await.unwrap();

    assert_err!(
        r.members.suspend_member(&admin, bob.id).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.members.remove_member(&admin, bob.id).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.members.set_owner(&admin, dev.id, true).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.members.set_owner(&admin, bob.id, false).await,
        Error::PermissionDenied { .. }
    );
    assert!(r.members.get_member(&actx, bob.id).await.unwrap().is_owner);
    assert!(!r.members.get_member(&actx, dev.id).await.unwrap().is_owner);
    assert_eq!(
        r.members
            .suspend_member(&admin, dev.id)
            .await
            .unwrap()
            .status,
        MembershipStatus::Suspended
    );
    assert_eq!(
        r.members
            .reactivate_member(&admin, dev.id)
            .await
            .unwrap()
            .status,
        MembershipStatus::Active
    );

    r.members.suspend_member(&actx, bob.id).await.unwrap();
    assert_err!(
        r.members.reactivate_member(&admin, bob.id).await,
        Error::PermissionDenied { .. }
    );
    assert_eq!(
        r.members.get_member(&actx, bob.id).await.unwrap().status,
        MembershipStatus::Suspended
    );
    r.members.reactivate_member(&actx, bob.id).await.unwrap();
    // The system counts as an owner.
    let sys = system().in_tenant(acme.id);
    assert_eq!(
        r.members.suspend_member(&sys, bob.id).await.unwrap().status,
        MembershipStatus::Suspended
    );
    r.members.reactivate_member(&sys, bob.id).await.unwrap();
    // An API key never does.
    let (_, _, kctx) = api_key(r, &actx, ApiKeyScope::Tenant, &["member.manage"]).await;
    assert_err!(
        r.members.suspend_member(&kctx, bob.id).await,
        Error::PermissionDenied { .. }
    );
    assert_eq!(
        r.members
            .suspend_member(&kctx, dev.id)
            .await
            .unwrap()
            .status,
        MembershipStatus::Suspended
    );
    assert_err!(
        r.members.set_owner(&kctx, dev.id, true).await,
        Error::PermissionDenied { .. }
    );
}

/// Owners promote and demote; an owner holds every permission.
pub async fn set_owner_promotes_and_demotes(h: Harness) {
    let r = &h.repos;
    let (_, _, actx) = tenant_with_owner(r, "acme").await;
    let (bob, bctx) = member_with_role(r, &actx, "bob@acme.io", Some("Viewer")).await;
    assert!(!r
        .rbac
        .has_permission(&bctx, &code("tenant.manage"), None)
        .await
        .unwrap());
    let m = r.members.set_owner(&actx, bob.id, true).await.unwrap();
    assert!(m.is_owner);
    assert!(r
        .rbac
        .has_permission(&bctx, &code("tenant.manage"), None)
        .await
        .unwrap());
    assert!(r
        .rbac
        .has_permission(&bctx, &code("billing.manage"), None)
        .await
        .unwrap());
    assert!(
        !r.members
            .set_owner(&actx, bob.id, false)
            .await
            .unwrap()
            .is_owner
    );
    assert!(!r
        .rbac
        .has_permission(&bctx, &code("tenant.manage"), None)
        .await
        .unwrap());
    assert_err!(
        r.members.set_owner(&actx, UserId::new(), true).await,
        Error::NotFound { entity: "member" }
    );
    assert_err!(
        r.members.set_owner(&bctx, bob.id, true).await,
        Error::PermissionDenied { .. }
    );
}

// ---------------------------------------------------------------------------
// Teams
// ---------------------------------------------------------------------------

/// Teams: unique slug per tenant, listed by slug, renamed and deleted with
/// `team.manage`.
pub async fn teams_are_unique_by_slug_and_ordered(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let (_, vctx) = member_with_role(r, &actx, "viewer@acme.io", Some("Viewer")).await;
    let new = |s: &str| NewTeam {
        slug: slug(s),
        name: name(s),
    };
    let web = r.teams.create_team(&actx, new("web")).await.unwrap();
    assert_eq!((web.tenant_id, web.created_at), (acme.id, h.clock.now()));
    for s in ["ab", "a-c"] {
        r.teams.create_team(&actx, new(s)).await.unwrap();
    }
    assert_err!(
        r.teams.create_team(&actx, new("web")).await,
        Error::Conflict { entity: "team", .. }
    );
    assert_err!(
        r.teams.create_team(&vctx, new("mine")).await,
        Error::PermissionDenied { .. }
    );
    let slugs = |teams: Vec<insightpulse_core::tenancy::Team>| {
        teams
            .into_iter()
            .map(|t| t.slug.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        slugs(r.teams.list_teams(&actx).await.unwrap()),
        ["a-c", "ab", "web"]
    );
    // Any member may read teams.
    assert_eq!(r.teams.list_teams(&vctx).await.unwrap().len(), 3);

    assert_err!(
        r.teams.rename_team(&vctx, web.id, name("Nope")).await,
        Error::PermissionDenied { .. }
    );
    let renamed = r
        .teams
        .rename_team(&actx, web.id, name("Web Team"))
        .await
        .unwrap();
    assert_eq!(renamed.name.as_str(), "Web Team");
    assert_eq!(r.teams.get_team(&actx, web.id).await.unwrap(), renamed);
    assert_err!(
        r.teams
            .rename_team(&actx, TeamId::new(), name("Ghost"))
            .await,
        Error::NotFound { entity: "team" }
    );

    assert_err!(
        r.teams.delete_team(&vctx, web.id).await,
        Error::PermissionDenied { .. }
    );
    r.teams.delete_team(&actx, web.id).await.unwrap();
    assert_err!(
        r.teams.get_team(&actx, web.id).await,
        Error::NotFound { entity: "team" }
    );
    assert_err!(
        r.teams.delete_team(&actx, web.id).await,
        Error::NotFound { entity: "team" }
    );
    assert_eq!(
        slugs(r.teams.list_teams(&actx).await.unwrap()),
        ["a-c", "ab"]
    );
}

/// Only members of the tenant join its teams, once; team members are listed
/// by user id.
pub async fn team_members_must_be_tenant_members(h: Harness) {
    let r = &h.repos;
    let (_, alice, actx) = tenant_with_owner(r, "acme").await;
    let (_, stranger, _) = tenant_with_owner(r, "umbrella").await;
    let (bob, _) = member_with_role(r, &actx, "bob@acme.io", None).await;
    let (carol, _) = member_with_role(r, &actx, "carol@acme.io", None).await;
    let (dave, vctx) = member_with_role(r, &actx, "dave@acme.io", Some("Viewer")).await;
    let team = r
        .teams
        .create_team(
            &actx,
            NewTeam {
                slug: slug("core"),
                name: name("Core"),
            },
        )
        .await
        .unwrap();

    for u in [&carol, &alice, &bob] {
        r.teams.add_team_member(&actx, team.id, u.id).await.unwrap();
    }
    let mut expected = vec![alice.id, bob.id, carol.id];
    expected.sort();
    assert_eq!(
        r.teams.list_team_members(&actx, team.id).await.unwrap(),
        expected
    );

    assert_err!(
        r.teams.add_team_member(&actx, team.id, bob.id).await,
        Error::Conflict {
            entity: "team member",
            ..
        }
    );
    assert_err!(
        r.teams.add_team_member(&actx, team.id, stranger.id).await,
        Error::NotFound { entity: "member" }
    );
    assert_err!(
        r.teams.add_team_member(&actx, team.id, UserId::new()).await,
        Error::NotFound { entity: "member" }
    );
    assert_err!(
        r.teams.add_team_member(&actx, TeamId::new(), bob.id).await,
        Error::NotFound { entity: "team" }
    );
    assert_err!(
        r.teams.add_team_member(&vctx, team.id, dave.id).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.teams.remove_team_member(&actx, team.id, dave.id).await,
        Error::NotFound {
            entity: "team member"
        }
    );
    assert_err!(
        r.teams.remove_team_member(&vctx, team.id, bob.id).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.teams.list_team_members(&actx, TeamId::new()).await,
        Error::NotFound { entity: "team" }
    );
    assert_eq!(
        r.teams.list_team_members(&actx, team.id).await.unwrap(),
        expected
    );

    r.teams
        .remove_team_member(&actx, team.id, bob.id)
        .await
        .unwrap();
    expected.retain(|u| *u != bob.id);
    assert_eq!(
        r.teams.list_team_members(&actx, team.id).await.unwrap(),
        expected
    );

    // Deleting a team deletes its memberships; a new team of the same slug starts empty.
    r.teams.delete_team(&actx, team.id).await.unwrap();
    let again = r
        .teams
        .create_team(
            &actx,
            NewTeam {
                slug: slug("core"),
                name: name("Core"),
            },
        )
        .await
        .unwrap();
    assert!(r
        .teams
        .list_team_members(&actx, again.id)
        .await
        .unwrap()
        .is_empty());
}

// ---------------------------------------------------------------------------
// Roles and grants
// ---------------------------------------------------------------------------

/// The permission catalog and the built-in roles are the same for every
/// tenant, sorted, and read-only.
pub async fn builtin_roles_and_catalog_are_shared_and_read_only(h: Harness) {
    let r = &h.repos;
    let (_, alice, actx) = tenant_with_owner(r, "acme").await;
    let (_, _, uctx) = tenant_with_owner(r, "umbrella").await;

    let mut expected: Vec<(&str, &str)> = catalog::PERMISSIONS.to_vec();
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
        let mut want: Vec<&str> = b.permission_codes();
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
        Error::InvalidState { entity: "role", .. }
    );
    assert_err!(
        r.rbac.delete_role(&actx, viewer.id).await,
        Error::InvalidState { entity: "role", .. }
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

    assert_err!(
        r.rbac
            .create_role(
                &actx,
                new("Flyer", RoleScope::Org, &["ticket.read", "ticket.fly"])
            )
            .await,
        Error::Validation {
            field: "permissions",
            ..
        }
    );
    assert_err!(
        r.rbac
            .create_role(&actx, new("Support", RoleScope::Org, &["ticket.read"]))
            .await,
        Error::Conflict { entity: "role", .. }
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
            .set_role_permissions(&actx, support.id, codes(&["ticket.fly"]))
            .await,
        Error::Validation {
            field: "permissions",
            ..
        }
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
        .has_permission(&bctx, &code("ticket.assign"), None)
        .await
        .unwrap());
    assert_err!(
        r.rbac.delete_role(&bctx, support.id).await,
        Error::PermissionDenied { .. }
    );
    r.rbac.delete_role(&actx, support.id).await.unwrap();
    assert!(!r
        .rbac
        .has_permission(&bctx, &code("ticket.assign"), None)
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
        Error::NotFound { entity: "role" }
    );
    assert_err!(
        r.rbac.delete_role(&actx, support.id).await,
        Error::NotFound { entity: "role" }
    );
    assert_err!(
        r.rbac
            .set_role_permissions(&actx, support.id, codes(&["ticket.read"]))
            .await,
        Error::NotFound { entity: "role" }
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
        Error::NotFound { entity: "project" }
    );
    assert_err!(
        r.rbac
            .grant_role(&actx, bob.id, viewer.id, Some(q.id))
            .await,
        Error::NotFound { entity: "project" }
    );
    assert_err!(
        r.rbac.grant_role(&actx, eve.id, viewer.id, None).await,
        Error::NotFound { entity: "member" }
    );
    assert_err!(
        r.rbac
            .grant_role(&actx, UserId::new(), viewer.id, None)
            .await,
        Error::NotFound { entity: "member" }
    );
    assert_err!(
        r.rbac.grant_role(&actx, bob.id, foreign.id, None).await,
        Error::NotFound { entity: "role" }
    );
    assert_err!(
        r.rbac.grant_role(&actx, bob.id, RoleId::new(), None).await,
        Error::NotFound { entity: "role" }
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
            entity: "role grant",
            ..
        }
    );
    assert_err!(
        r.rbac
            .grant_role(&actx, bob.id, developer.id, Some(p.id))
            .await,
        Error::Conflict {
            entity: "role grant",
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
            entity: "role grant"
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
            entity: "role grant"
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
        async move { r.rbac.has_permission(&bctx, &code(c), at).await.unwrap() }
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
                let got = r.rbac.has_permission(ctx, &code(c), level).await.unwrap();
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
        async move { r.rbac.has_permission(&ctx, &c, at).await.unwrap() }
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

// ---------------------------------------------------------------------------
// SSO
// ---------------------------------------------------------------------------

/// SSO providers: configuration validated before anything is written, names
/// unique per tenant, managed with `sso.manage`.
pub async fn sso_providers_are_validated_and_unique(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let (_, vctx) = member_with_role(r, &actx, "viewer@acme.io", Some("Viewer")).await;
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
    let azure = r
        .sso
        .create_provider(
            &actx,
            NewSsoProvider {
                name: name("Azure"),
                config: saml_config(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (okta.tenant_id, okta.enabled, okta.created_at),
        (acme.id, true, h.clock.now())
    );
    assert_eq!(okta.config.kind(), "oidc");
    assert_eq!(azure.config.kind(), "saml");
    assert_eq!(
        r.sso.list_providers(&actx).await.unwrap(),
        vec![azure.clone(), okta.clone()]
    );

    let saml = |entity: &str, sso: &str, pem: &str| SsoConfig::Saml {
        idp_entity_id: entity.to_owned(),
        sso_url: sso.parse().unwrap(),
        x509_certificate_pem: pem.to_owned(),
    };
    let oidc = |issuer: &str, client: &str, secret: &str, scopes: &[&str]| SsoConfig::Oidc {
        issuer: issuer.parse().unwrap(),
        client_id: client.to_owned(),
        client_secret_ref: secret.to_owned(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
    };
    let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
    let invalid = [
        (
            saml("  ", "https://idp.example.com/sso", pem),
            "idp_entity_id",
        ),
        (saml("idp", "http://idp.example.com/sso", pem), "sso_url"),
        (
            saml("idp", "https://idp.example.com/sso", "not a certificate"),
            "x509_certificate_pem",
        ),
        (
            oidc("http://login.example.com", "c", "secret://s", &["openid"]),
            "issuer",
        ),
        (
            oidc("https://login.example.com", " ", "secret://s", &["openid"]),
            "client_id",
        ),
        (
            oidc(
                "https://login.example.com",
                "c",
                "plaintext-secret",
                &["openid"],
            ),
            "client_secret_ref",
        ),
        (
            oidc("https://login.example.com", "c", "secret://s", &["email"]),
            "scopes",
        ),
    ];
    for (config, field) in invalid {
        match r
            .sso
            .create_provider(
                &actx,
                NewSsoProvider {
                    name: name("Broken"),
                    config: config.clone(),
                },
            )
            .await
        {
            Err(Error::Validation { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected Validation {{ {field} }}, got {other:?}"),
        }
        assert_err!(
            r.sso
                .update_provider(&actx, okta.id, Some(config), None)
                .await,
            Error::Validation { .. }
        );
    }
    assert_eq!(
        r.sso.list_providers(&actx).await.unwrap(),
        vec![azure.clone(), okta.clone()]
    );

    assert_err!(
        r.sso
            .create_provider(
                &actx,
                NewSsoProvider {
                    name: name("Okta"),
                    config: saml_config()
                }
            )
            .await,
        Error::Conflict {
            entity: "sso provider",
            ..
        }
    );
    assert_err!(
        r.sso
            .create_provider(
                &vctx,
                NewSsoProvider {
                    name: name("Mine"),
                    config: oidc_config()
                }
            )
            .await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.sso
            .update_provider(&vctx, okta.id, None, Some(false))
            .await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.sso.delete_provider(&vctx, okta.id).await,
        Error::PermissionDenied { .. }
    );

    h.clock.advance(Duration::minutes(1));
    let disabled = r
        .sso
        .update_provider(&actx, okta.id, None, Some(false))
        .await
        .unwrap();
    assert!(!disabled.enabled);
    assert_eq!(disabled.config, okta.config);
    assert_eq!(disabled.updated_at, h.clock.now());
    assert_eq!(disabled.created_at, okta.created_at);
    let reconfigured = r
        .sso
        .update_provider(&actx, okta.id, Some(saml_config()), None)
        .await
        .unwrap();
    assert_eq!(reconfigured.config, saml_config());
    assert!(!reconfigured.enabled);

    r.sso.delete_provider(&actx, azure.id).await.unwrap();
    assert_eq!(
        r.sso.list_providers(&actx).await.unwrap(),
        vec![reconfigured]
    );
    assert_err!(
        r.sso.delete_provider(&actx, azure.id).await,
        Error::NotFound {
            entity: "sso provider"
        }
    );
    assert_err!(
        r.sso
            .update_provider(&actx, azure.id, None, Some(true))
            .await,
        Error::NotFound {
            entity: "sso provider"
        }
    );
}

/// Identities link a provider subject to a member, once per subject; lookups
/// through a disabled provider are refused.
pub async fn identities_link_subjects_to_members(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let (_, stranger, _) = tenant_with_owner(r, "umbrella").await;
    let (bob, _) = member_with_role(r, &actx, "bob@acme.io", None).await;
    let (carol, vctx) = member_with_role(r, &actx, "carol@acme.io", Some("Viewer")).await;
    let provider = r
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

    let first = r
        .sso
        .link_identity(&actx, provider.id, "sub-123", bob.id)
        .await
        .unwrap();
    assert_eq!(
        (first.tenant_id, first.provider_id, first.user_id),
        (acme.id, provider.id, bob.id)
    );
    assert_eq!(first.subject, "sub-123");
    assert_eq!(first.created_at, h.clock.now());
    assert_err!(
        r.sso
            .link_identity(&actx, provider.id, "sub-123", carol.id)
            .await,
        Error::Conflict {
            entity: "identity",
            ..
        }
    );
    assert_err!(
        r.sso
            .link_identity(&actx, provider.id, "sub-123", bob.id)
            .await,
        Error::Conflict {
            entity: "identity",
            ..
        }
    );
    assert_err!(
        r.sso
            .link_identity(&actx, provider.id, "sub-9", stranger.id)
            .await,
        Error::NotFound { entity: "member" }
    );
    assert_err!(
        r.sso
            .link_identity(&actx, SsoProviderId::new(), "sub-9", bob.id)
            .await,
        Error::NotFound {
            entity: "sso provider"
        }
    );
    let too_long = "s".repeat(256);
    for bad in ["", "   ", too_long.as_str()] {
        assert_err!(
            r.sso.link_identity(&actx, provider.id, bad, bob.id).await,
            Error::Validation {
                field: "subject",
                ..
            }
        );
    }
    assert_err!(
        r.sso
            .link_identity(&vctx, provider.id, "sub-9", carol.id)
            .await,
        Error::PermissionDenied { .. }
    );
    assert_eq!(
        r.sso.list_identities(&actx, bob.id).await.unwrap(),
        vec![first.clone()]
    );
    assert!(r
        .sso
        .list_identities(&actx, carol.id)
        .await
        .unwrap()
        .is_empty());

    // The system links at just-in-time login; 255 characters are fine.
    h.clock.advance(Duration::seconds(1));
    let longest = "s".repeat(255);
    let second = r
        .sso
        .link_identity(&system().in_tenant(acme.id), provider.id, &longest, bob.id)
        .await
        .unwrap();
    assert_eq!(
        r.sso.list_identities(&actx, bob.id).await.unwrap(),
        vec![first.clone(), second.clone()]
    );

    let found = r
        .sso
        .find_user_by_identity(&actx, provider.id, "sub-123")
        .await
        .unwrap();
    assert_eq!(found.map(|u| u.id), Some(bob.id));
    assert_eq!(
        r.sso
            .find_user_by_identity(&actx, provider.id, "nobody")
            .await
            .unwrap(),
        None
    );
    assert_err!(
        r.sso
            .find_user_by_identity(&actx, SsoProviderId::new(), "sub-123")
            .await,
        Error::NotFound {
            entity: "sso provider"
        }
    );
    r.sso
        .update_provider(&actx, provider.id, None, Some(false))
        .await
        .unwrap();
    assert_err!(
        r.sso
            .find_user_by_identity(&actx, provider.id, "sub-123")
            .await,
        Error::InvalidState {
            entity: "sso provider",
            ..
        }
    );
    r.sso
        .update_provider(&actx, provider.id, None, Some(true))
        .await
        .unwrap();

    assert_err!(
        r.sso.unlink_identity(&vctx, first.id).await,
        Error::PermissionDenied { .. }
    );
    r.sso.unlink_identity(&actx, first.id).await.unwrap();
    assert_err!(
        r.sso.unlink_identity(&actx, first.id).await,
        Error::NotFound { entity: "identity" }
    );
    assert_eq!(
        r.sso
            .find_user_by_identity(&actx, provider.id, "sub-123")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        r.sso.list_identities(&actx, bob.id).await.unwrap(),
        vec![second]
    );

    // Deleting the provider deletes its identities.
    r.sso.delete_provider(&actx, provider.id).await.unwrap();
    assert!(r
        .sso
        .list_identities(&actx, bob.id)
        .await
        .unwrap()
        .is_empty());
}

// ---------------------------------------------------------------------------
// API keys
// ---------------------------------------------------------------------------

/// The plaintext key is returned once and verifies into a context with
/// exactly the key's tenant, scope and permissions; use is recorded.
pub async fn api_key_is_shown_once_and_verifies_to_its_scope(h: Harness) {
    let r = &h.repos;
    let (acme, alice, actx) = tenant_with_owner(r, "acme").await;
    let expires = h.clock.now() + Duration::days(30);
    let issued = r
        .api_keys
        .create(
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
    assert_eq!(r.api_keys.list(&actx).await.unwrap(), vec![key.clone()]);
    assert_eq!(r.api_keys.get(&actx, key.id).await.unwrap(), key);

    h.clock.advance(Duration::minutes(1));
    let caller = Context::system("api gateway").with_request(RequestMeta {
        request_id: Some("req-1".to_owned()),
        ip: Some("203.0.113.9".parse().unwrap()),
        user_agent: Some("curl/8".to_owned()),
    });
    let kctx = r.api_keys.verify(&caller, &issued.secret).await.unwrap();
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
        r.api_keys.get(&actx, key.id).await.unwrap().last_used_at,
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
            .create(&actx, new(ApiKeyScope::Tenant, &[], None))
            .await,
        Error::Validation {
            field: "permissions",
            ..
        }
    );
    assert_err!(
        r.api_keys
            .create(
                &actx,
                new(ApiKeyScope::Tenant, &["member.read", "member.fly"], None)
            )
            .await,
        Error::Validation {
            field: "permissions",
            ..
        }
    );
    for past in [now, now - Duration::seconds(1)] {
        assert_err!(
            r.api_keys
                .create(
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
            .create(&dctx, new(ApiKeyScope::Tenant, &["billing.read"], None))
            .await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.api_keys
            .create(&vctx, new(ApiKeyScope::Tenant, &["dashboard.read"], None))
            .await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.api_keys
            .create(
                &system().in_tenant(acme.id),
                new(ApiKeyScope::Tenant, &["member.read"], None)
            )
            .await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.api_keys
            .create(
                &actx,
                new(
                    ApiKeyScope::Project(ProjectId::new()),
                    &["member.read"],
                    None
                )
            )
            .await,
        Error::NotFound { entity: "project" }
    );
    assert_err!(
        r.api_keys
            .create(
                &actx,
                new(ApiKeyScope::Project(theirs.id), &["member.read"], None)
            )
            .await,
        Error::NotFound { entity: "project" }
    );
    assert_err!(
        r.api_keys
            .create(
                &actx,
                new(
                    ApiKeyScope::Environment(EnvironmentId::new()),
                    &["member.read"],
                    None
                )
            )
            .await,
        Error::NotFound {
            entity: "environment"
        }
    );
    assert!(r.api_keys.list(&actx).await.unwrap().is_empty());

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
            .create(&kctx, new(ApiKeyScope::Tenant, &["member.read"], None))
            .await,
        Error::PermissionDenied { .. }
    );
    // A developer may create keys within its own permissions.
    let ok = r
        .api_keys
        .create(
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
        .list(&actx)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&manager.id) && ids.contains(&ok.key.id));
}

/// Refused keys say why: malformed, unknown, revoked or expired. Revoking is
/// idempotent.
pub async fn api_key_rejections_have_reasons(h: Harness) {
    let r = &h.repos;
    let (_, _, actx) = tenant_with_owner(r, "acme").await;
    let (_, vctx) = member_with_role(r, &actx, "viewer@acme.io", Some("Viewer")).await;
    let invite = r
        .members
        .invite(&actx, invitation("x@acme.io", None, Duration::days(1)))
        .await
        .unwrap();
    let verify = |s: SecretString| {
        let r = r.clone();
        async move { r.api_keys.verify(&system(), &s).await }
    };
    for bad in [
        SecretString::from("nope"),
        SecretString::from(""),
        invite.token,
    ] {
        assert_err!(
            verify(bad).await,
            Error::Unauthenticated {
                reason: TokenRejection::Malformed,
                ..
            }
        );
    }
    let (key, secret, _) = api_key(r, &actx, ApiKeyScope::Tenant, &["member.read"]).await;
    for unknown in [foreign_token(TokenKind::ApiKey), tampered(&secret)] {
        assert_err!(
            verify(unknown).await,
            Error::Unauthenticated {
                reason: TokenRejection::Unknown,
                ..
            }
        );
    }

    let expiring = r
        .api_keys
        .create(
            &actx,
            NewApiKey {
                name: name("short-lived"),
                scope: ApiKeyScope::Tenant,
                permissions: codes(&["member.read"]),
                expires_at: Some(h.clock.now() + Duration::hours(1)),
            },
        )
        .await
        .unwrap();
    h.clock.advance(Duration::minutes(59));
    verify(SecretString::from(
        expiring.secret.expose_secret().to_owned(),
    ))
    .await
    .unwrap();
    let expiring_used_at = h.clock.now();
    h.clock.advance(Duration::minutes(1));
    assert_err!(
        verify(SecretString::from(
            expiring.secret.expose_secret().to_owned()
        ))
        .await,
        Error::Unauthenticated {
            reason: TokenRejection::Expired,
            ..
        }
    );

    assert_err!(
        r.api_keys.revoke(&vctx, key.id).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.api_keys
            .revoke(&actx, insightpulse_core::ApiKeyId::new())
            .await,
        Error::NotFound { entity: "api key" }
    );
    h.clock.advance(Duration::seconds(1));
    verify(SecretString::from(secret.expose_secret().to_owned()))
        .await
        .unwrap();
    let used_at = h.clock.now();
    h.clock.advance(Duration::seconds(1));
    let revoked = r.api_keys.revoke(&actx, key.id).await.unwrap();
    assert_eq!(revoked.revoked_at, Some(h.clock.now()));
    h.clock.advance(Duration::minutes(5));
    assert_eq!(
        r.api_keys.revoke(&actx, key.id).await.unwrap().revoked_at,
        revoked.revoked_at
    );
    assert_err!(
        verify(secret).await,
        Error::Unauthenticated {
            reason: TokenRejection::Revoked,
            ..
        }
    );
    // A refused verification does not count as use.
    assert_eq!(
        r.api_keys.get(&actx, key.id).await.unwrap().last_used_at,
        Some(used_at)
    );
    assert_eq!(
        r.api_keys
            .get(&actx, expiring.key.id)
            .await
            .unwrap()
            .last_used_at,
        Some(expiring_used_at)
    );
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
        Error::NotFound { entity: "project" }
    );
    assert_err!(
        r.projects.rename_project(&kctx, q.id, name("Mine")).await,
        Error::NotFound { entity: "project" }
    );
    assert_err!(
        r.projects.archive_project(&kctx, q.id).await,
        Error::NotFound { entity: "project" }
    );
    assert_err!(
        r.projects.list_environments(&kctx, q.id).await,
        Error::NotFound { entity: "project" }
    );
    assert_err!(
        r.projects.get_environment(&kctx, q_dev.id).await,
        Error::NotFound {
            entity: "environment"
        }
    );
    assert_err!(
        r.projects.delete_environment(&kctx, q_dev.id).await,
        Error::NotFound {
            entity: "environment"
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
            entity: "environment"
        }
    );
    assert_err!(
        r.projects.delete_environment(&kctx, staging.id).await,
        Error::NotFound {
            entity: "environment"
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
        Error::NotFound { entity: "project" }
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
        .list(&actx)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(listed, created);
    assert_err!(r.api_keys.list(&vctx).await, Error::PermissionDenied { .. });
    assert_err!(
        r.api_keys.get(&vctx, created[0]).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.api_keys.get(&actx, theirs.id).await,
        Error::NotFound { entity: "api key" }
    );
    assert_err!(
        r.api_keys
            .get(&actx, insightpulse_core::ApiKeyId::new())
            .await,
        Error::NotFound { entity: "api key" }
    );
    // A project-scoped key with api_key.manage holds it on its project only.
    let p = project(r, &actx, "web").await;
    let (_, _, pkctx) = api_key(r, &actx, ApiKeyScope::Project(p.id), &["api_key.manage"]).await;
    assert_err!(
        r.api_keys.list(&pkctx).await,
        Error::PermissionDenied { .. }
    );
}
