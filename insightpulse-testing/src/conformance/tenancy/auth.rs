//! Authentication: sign-up, sign-in, and presented API keys turned into
//! contexts — the calls a host makes before it has a context.
//!
//! Rule guarded here: a sign-up is all or nothing (a refused one leaves no
//! user, tenant or audit entry behind, so its retry is not blocked by half
//! of it); every failed sign-in looks the same; an API key acts with exactly
//! its own tenant, scope and permissions, and its use is written at most
//! once a minute.

use super::{foreign_token, invitation, tampered};
use crate::conformance::audit::{assert_event, assert_request, Trail};
use crate::conformance::{assert_err, Harness};
use crate::fixtures::*;
use chrono::Duration;
use insightpulse_core::audit::Actor;
use insightpulse_core::projects::EnvironmentKind;
use insightpulse_core::tenancy::tokens::TokenKind;
use insightpulse_core::tenancy::{
    ApiKeyScope, Membership, MembershipStatus, NewApiKey, NewTenant, SignUp, SignedUp,
};
use insightpulse_core::{
    ApiKeyPrincipal, Clock, Context, Credential, Entity, Error, ExposeSecret, IdempotencyKey,
    PermissionCode, Rejection, RequestMeta, SecretString, TimeZone,
};
use serde_json::json;

/// A sign-up of `email_address` (named "Ada") with its first tenant `tenant_slug`.
fn sign_up_input(email_address: &str, tenant_slug: &str, password: &str) -> SignUp {
    SignUp {
        email: email(email_address),
        full_name: Some(name("Ada")),
        password: SecretString::from(password.to_owned()),
        tenant: NewTenant {
            slug: slug(tenant_slug),
            name: name("Acme"),
            timezone: TimeZone::utc(),
        },
    }
}

const PASSWORD: &str = "correct horse battery";

/// Signs up, which must succeed.
async fn sign_up(h: &Harness, request: RequestMeta, input: SignUp) -> SignedUp {
    h.repos
        .auth
        .sign_up(request, input)
        .await
        .unwrap_or_else(|e| panic!("sign up: {e}"))
}

/// Asserts that nothing was made for `email_address` and `tenant_slug`.
async fn assert_nothing_made(h: &Harness, email_address: &str, tenant_slug: &str) {
    let r = &h.repos;
    assert_eq!(
        r.users
            .find_user_by_email(&system(), &email(email_address))
            .await
            .unwrap(),
        None,
        "a user {email_address} was left behind"
    );
    assert_err!(
        r.tenants
            .get_tenant_by_slug(&system(), &slug(tenant_slug))
            .await,
        Error::NotFound {
            entity: Entity::Tenant
        }
    );
}

/// A sign-up makes the user (with a password), the tenant, the user's
/// active owner membership and tenant-wide Admin grant, audited as
/// `tenant.created` by the new user with the request's metadata; its
/// context acts in the new tenant.
pub async fn sign_up_makes_user_tenant_owner_and_admin(h: Harness) {
    let r = &h.repos;
    let now = h.clock.now();
    let up = sign_up(
        &h,
        request("req-sign-up"),
        sign_up_input("Ada@Example.io", "acme", PASSWORD),
    )
    .await;

    assert_eq!(up.user.email, email("ada@example.io"));
    assert_eq!(up.user.full_name, Some(name("Ada")));
    assert!(up.user.has_password);
    assert_eq!((up.user.created_at, up.user.updated_at), (now, now));
    assert_eq!(
        (up.tenant.slug.as_str(), up.tenant.name.as_str()),
        ("acme", "Acme")
    );
    assert_eq!(up.tenant.timezone, TimeZone::utc());
    assert_eq!(up.tenant.settings, json!({}));
    assert_eq!(
        up.membership,
        Membership {
            tenant_id: up.tenant.id,
            user_id: up.user.id,
            is_owner: true,
            status: MembershipStatus::Active,
            created_at: now,
        }
    );
    assert_eq!(
        up.ctx,
        Context::user(up.user.id)
            .in_tenant(up.tenant.id)
            .with_request(request("req-sign-up"))
    );

    // What it returned is what is stored.
    assert_eq!(
        r.users.get_user(&up.ctx, up.user.id).await.unwrap(),
        up.user
    );
    assert_eq!(
        r.tenants.get_tenant(&up.ctx, up.tenant.id).await.unwrap(),
        up.tenant
    );
    assert_eq!(
        r.members.list_members(&up.ctx).await.unwrap(),
        vec![up.membership.clone()]
    );
    let grants = r.rbac.list_grants(&up.ctx, None).await.unwrap();
    assert_eq!(grants.len(), 1, "{grants:#?}");
    assert_eq!(
        (grants[0].user_id, grants[0].project_id),
        (up.user.id, None)
    );
    let admin = r.rbac.get_role(&up.ctx, grants[0].role_id).await.unwrap();
    assert_eq!((admin.name.as_str(), admin.tenant_id), ("Admin", None));

    // One entry, by the new user, carrying the sign-up's request.
    let trail = audit_trail(r, up.tenant.id).await;
    assert_eq!(trail.len(), 1, "{trail:#?}");
    assert_event(
        &trail[0],
        "tenant.created",
        "tenant",
        Some(up.tenant.id.to_string()),
        &Actor::User(up.user.id),
        json!({"slug": "acme", "name": "Acme"}),
    );
    assert_request(&trail[0], "req-sign-up");
    assert_eq!(trail[0].actor_email.as_deref(), Some("ada@example.io"));

    // Its context acts in the tenant, and the password signs in.
    assert!(r
        .rbac
        .has_permission(&up.ctx, PermissionCode::TENANT_MANAGE, None)
        .await
        .unwrap());
    assert_eq!(project(r, &up.ctx, "web").await.tenant_id, up.tenant.id);
    let signed_in = r
        .auth
        .sign_in(
            &up.user.email,
            &SecretString::from(PASSWORD),
            RequestMeta::default(),
        )
        .await
        .unwrap();
    assert_eq!(signed_in.user, up.user);
    assert_eq!(
        r.tenants
            .list_my_tenants(&signed_in.ctx)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.id)
            .collect::<Vec<_>>(),
        vec![up.tenant.id]
    );
}

/// A taken slug or email, or a short password, refuses the whole sign-up:
/// no user, no tenant, no audit entry — so retrying with a free slug works
/// (a slug conflict must not leave a user behind whose email then blocks
/// the retry).
pub async fn sign_up_is_all_or_nothing(h: Harness) {
    let r = &h.repos;
    let first = sign_up(
        &h,
        RequestMeta::default(),
        sign_up_input("ada@example.io", "acme", PASSWORD),
    )
    .await;
    let trail = audit_trail(r, first.tenant.id).await;

    // A taken slug.
    assert_err!(
        r.auth
            .sign_up(
                RequestMeta::default(),
                sign_up_input("bob@example.io", "acme", PASSWORD)
            )
            .await,
        Error::Conflict {
            entity: Entity::Tenant,
            field: "slug"
        }
    );
    assert_eq!(
        r.users
            .find_user_by_email(&system(), &email("bob@example.io"))
            .await
            .unwrap(),
        None,
        "the slug conflict left a user behind"
    );
    assert_err!(
        r.auth
            .sign_in(
                &email("bob@example.io"),
                &SecretString::from(PASSWORD),
                RequestMeta::default()
            )
            .await,
        Error::Unauthenticated { .. }
    );

    // A taken email (compared case-insensitively), with a free slug.
    assert_err!(
        r.auth
            .sign_up(
                RequestMeta::default(),
                sign_up_input("ADA@example.io", "umbrella", "another password")
            )
            .await,
        Error::Conflict {
            entity: Entity::User,
            field: "email"
        }
    );
    assert_err!(
        r.tenants
            .get_tenant_by_slug(&system(), &slug("umbrella"))
            .await,
        Error::NotFound {
            entity: Entity::Tenant
        }
    );
    // The existing account is untouched: its password still signs in.
    r.auth
        .sign_in(
            &email("ada@example.io"),
            &SecretString::from(PASSWORD),
            RequestMeta::default(),
        )
        .await
        .unwrap();

    // A short password is refused before anything is written.
    assert_err!(
        r.auth
            .sign_up(
                RequestMeta::default(),
                sign_up_input("carol@example.io", "globex", "short")
            )
            .await,
        Error::Validation {
            field: "password",
            ..
        }
    );
    assert_nothing_made(&h, "carol@example.io", "globex").await;
    assert_eq!(audit_trail(r, first.tenant.id).await, trail);

    // The retry of the refused sign-up, with a free slug, goes through.
    let bob = sign_up(
        &h,
        RequestMeta::default(),
        sign_up_input("bob@example.io", "bobs-co", PASSWORD),
    )
    .await;
    assert_eq!(bob.tenant.slug.as_str(), "bobs-co");
    assert_eq!(audit_trail(r, bob.tenant.id).await.len(), 1);
}

/// A repeated sign-up with the same idempotency key, input and password
/// returns the first one's user and tenant and makes nothing new; other
/// input under the key conflicts on the key; the right input with a wrong
/// password conflicts on the email; after 24 hours the key is forgotten.
pub async fn sign_up_honours_its_idempotency_key(h: Harness) {
    let r = &h.repos;
    let key = IdempotencyKey::parse("sign-up-form-5f2c").unwrap();
    let meta = request("req-sign-up").with_idempotency_key(key.clone());

    // A refused attempt stores nothing: the same key then works with a free slug.
    sign_up(
        &h,
        RequestMeta::default(),
        sign_up_input("taken@example.io", "taken", PASSWORD),
    )
    .await;
    assert_err!(
        r.auth
            .sign_up(
                meta.clone(),
                sign_up_input("ada@example.io", "taken", PASSWORD)
            )
            .await,
        Error::Conflict {
            entity: Entity::Tenant,
            field: "slug"
        }
    );
    let first = sign_up(
        &h,
        meta.clone(),
        sign_up_input("ada@example.io", "acme", PASSWORD),
    )
    .await;

    h.clock.advance(Duration::hours(23));
    let again = sign_up(
        &h,
        meta.clone(),
        sign_up_input("ada@example.io", "acme", PASSWORD),
    )
    .await;
    assert_eq!(
        (again.user.id, again.tenant.id),
        (first.user.id, first.tenant.id)
    );
    assert_eq!(again.membership, first.membership);
    assert_eq!(again.ctx, first.ctx);
    assert_eq!(
        r.tenants
            .list_my_tenants(&Context::user(first.user.id))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(audit_trail(r, first.tenant.id).await.len(), 1);

    // Other input under the key.
    for other in [
        sign_up_input("ada@example.io", "umbrella", PASSWORD),
        SignUp {
            full_name: Some(name("Ada Lovelace")),
            ..sign_up_input("ada@example.io", "acme", PASSWORD)
        },
    ] {
        assert_err!(
            r.auth.sign_up(meta.clone(), other).await,
            Error::Conflict {
                entity: Entity::IdempotencyKey,
                field: "key"
            }
        );
    }
    assert_err!(
        r.tenants
            .get_tenant_by_slug(&system(), &slug("umbrella"))
            .await,
        Error::NotFound {
            entity: Entity::Tenant
        }
    );

    // Only who knows the password replays it.
    assert_err!(
        r.auth
            .sign_up(
                meta.clone(),
                sign_up_input("ada@example.io", "acme", "a wrong password")
            )
            .await,
        Error::Conflict {
            entity: Entity::User,
            field: "email"
        }
    );

    // The key belongs to the email: another sign-up may use it too.
    let bob = sign_up(
        &h,
        meta.clone(),
        sign_up_input("bob@example.io", "bobs-co", PASSWORD),
    )
    .await;
    assert_ne!(bob.user.id, first.user.id);

    // 24 hours after its first use the key is forgotten: a repeat is a new
    // sign-up, which finds the email taken.
    h.clock.advance(Duration::hours(1));
    assert_err!(
        r.auth
            .sign_up(
                meta.clone(),
                sign_up_input("ada@example.io", "acme", PASSWORD)
            )
            .await,
        Error::Conflict {
            entity: Entity::User,
            field: "email"
        }
    );
    assert_err!(
        r.auth
            .sign_up(meta, sign_up_input("ada@example.io", "umbrella", PASSWORD))
            .await,
        Error::Conflict {
            entity: Entity::User,
            field: "email"
        }
    );
}

/// `sign_in` returns the user and a user context in no tenant carrying the
/// request; an unknown email, an account without a password and a wrong
/// password are one and the same refusal.
pub async fn sign_in_checks_email_and_password(h: Harness) {
    let r = &h.repos;
    let up = sign_up(
        &h,
        RequestMeta::default(),
        sign_up_input("ada@example.io", "acme", PASSWORD),
    )
    .await;
    let carol = signup(r, "carol@example.io").await;
    let meta = request("req-sign-in");

    let signed_in = r
        .auth
        .sign_in(
            &email("ADA@example.io"),
            &SecretString::from(PASSWORD),
            meta.clone(),
        )
        .await
        .unwrap();
    assert_eq!(signed_in.user, up.user);
    assert_eq!(
        signed_in.ctx,
        Context::user(up.user.id).with_request(meta.clone())
    );
    assert_eq!(signed_in.ctx.tenant_id(), None);

    let mut texts = Vec::new();
    for (who, password) in [
        ("ada@example.io", "wrong horse battery"),
        ("ada@example.io", "correct horse battery "),
        ("nobody@example.io", PASSWORD),
        ("carol@example.io", PASSWORD),
    ] {
        let refused = r
            .auth
            .sign_in(
                &email(who),
                &SecretString::from(password.to_owned()),
                meta.clone(),
            )
            .await;
        assert_err!(
            &refused,
            Error::Unauthenticated {
                credential: Credential::Password,
                reason: Rejection::Unknown,
            }
        );
        texts.push(refused.unwrap_err().to_string());
    }
    texts.dedup();
    assert_eq!(texts, ["email or password is not recognised"]);

    // Once Carol has a password, it signs her in.
    r.users
        .set_password(&system(), carol.id, &SecretString::from(PASSWORD))
        .await
        .unwrap();
    assert_eq!(
        r.auth
            .sign_in(&carol.email, &SecretString::from(PASSWORD), meta)
            .await
            .unwrap()
            .user
            .id,
        carol.id
    );
}

/// A presented key becomes exactly `Context::api_key` of the key's tenant,
/// project, environment and permissions, carrying the given request.
pub async fn authenticate_acts_with_exactly_the_keys_scope(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let web = project(r, &actx, "web").await;
    let prod = environment(r, &actx, web.id, EnvironmentKind::Production).await;
    let meta =
        request("req-key").with_idempotency_key(IdempotencyKey::parse("client-retry-1").unwrap());

    for (scope, project_id, environment_id) in [
        (ApiKeyScope::Tenant, None, None),
        (ApiKeyScope::Project(web.id), Some(web.id), None),
        (
            ApiKeyScope::Environment(prod.id),
            Some(web.id),
            Some(prod.id),
        ),
    ] {
        let issued = r
            .api_keys
            .create_api_key(
                &actx,
                NewApiKey {
                    name: name("ci"),
                    scope,
                    permissions: codes(&["project.update", "member.read", "project.update"]),
                    expires_at: None,
                },
            )
            .await
            .unwrap();
        let ctx = r
            .auth
            .authenticate(&issued.secret, meta.clone())
            .await
            .unwrap();
        assert_eq!(
            ctx,
            Context::api_key(ApiKeyPrincipal {
                key_id: issued.key.id,
                tenant_id: acme.id,
                project_id,
                environment_id,
                permissions: codes(&["member.read", "project.update"]),
            })
            .with_request(meta.clone()),
            "{scope:?}"
        );
    }
}

/// A key's use is written on first use and then at most once a minute;
/// only the first use is audited (`api_key.first_used`).
pub async fn authenticate_records_use_at_most_once_a_minute(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let issued = r
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
    let key = issued.key.id;
    let (actx, secret) = (&actx, &issued.secret);
    let last_used = || async move {
        r.api_keys
            .get_api_key(actx, key)
            .await
            .unwrap()
            .last_used_at
    };
    let present = |id: &str| {
        let meta = request(id);
        async move { r.auth.authenticate(secret, meta).await.unwrap() }
    };
    let mut t = Trail::new(r, acme.id).await;

    h.clock.advance(Duration::minutes(5));
    let first = h.clock.now();
    present("req-1").await;
    assert_eq!(last_used().await, Some(first));
    let e = t.one("first use").await;
    assert_event(
        &e,
        "api_key.first_used",
        "api_key",
        Some(key.to_string()),
        &Actor::ApiKey(key),
        json!({}),
    );
    assert_request(&e, "req-1");
    assert_eq!(e.created_at, first);

    // Within the minute: read only.
    h.clock.advance(Duration::seconds(30));
    present("req-2").await;
    assert_eq!(last_used().await, Some(first));
    h.clock.advance(Duration::seconds(29));
    present("req-3").await;
    assert_eq!(last_used().await, Some(first));

    // A minute after the recorded use: written again, not audited again.
    h.clock.advance(Duration::seconds(1));
    let second = h.clock.now();
    present("req-4").await;
    assert_eq!(last_used().await, Some(second));
    h.clock.advance(Duration::seconds(59));
    present("req-5").await;
    assert_eq!(last_used().await, Some(second));
    h.clock.advance(Duration::minutes(10));
    present("req-6").await;
    assert_eq!(last_used().await, Some(h.clock.now()));
    t.none("later uses").await;
}

/// Refused keys say why, always as an API-key credential: malformed,
/// unknown, expired or revoked. Revoking is idempotent, and a refused
/// presentation does not count as use.
pub async fn api_key_rejections_have_reasons(h: Harness) {
    let r = &h.repos;
    let (_, _, actx) = tenant_with_owner(r, "acme").await;
    let (_, vctx) = member_with_role(r, &actx, "viewer@acme.io", Some("Viewer")).await;
    let invite = r
        .members
        .invite(&actx, invitation("x@acme.io", None, Duration::days(1)))
        .await
        .unwrap();
    let present = |s: SecretString| {
        let r = r.clone();
        async move { r.auth.authenticate(&s, RequestMeta::default()).await }
    };
    for bad in [
        SecretString::from("nope"),
        SecretString::from(""),
        invite.token,
    ] {
        assert_err!(
            present(bad).await,
            Error::Unauthenticated {
                credential: Credential::ApiKey,
                reason: Rejection::Malformed,
            }
        );
    }
    let (key, secret, _) = api_key(r, &actx, ApiKeyScope::Tenant, &["member.read"]).await;
    for unknown in [foreign_token(TokenKind::ApiKey), tampered(&secret)] {
        assert_err!(
            present(unknown).await,
            Error::Unauthenticated {
                credential: Credential::ApiKey,
                reason: Rejection::Unknown,
            }
        );
    }

    let expiring = r
        .api_keys
        .create_api_key(
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
    present(SecretString::from(
        expiring.secret.expose_secret().to_owned(),
    ))
    .await
    .unwrap();
    let expiring_used_at = h.clock.now();
    h.clock.advance(Duration::minutes(1));
    assert_err!(
        present(SecretString::from(
            expiring.secret.expose_secret().to_owned()
        ))
        .await,
        Error::Unauthenticated {
            credential: Credential::ApiKey,
            reason: Rejection::Expired,
        }
    );

    assert_err!(
        r.api_keys.revoke_api_key(&vctx, key.id).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.api_keys
            .revoke_api_key(&actx, insightpulse_core::ApiKeyId::new())
            .await,
        Error::NotFound {
            entity: Entity::ApiKey
        }
    );
    h.clock.advance(Duration::seconds(1));
    present(SecretString::from(secret.expose_secret().to_owned()))
        .await
        .unwrap();
    let used_at = h.clock.now();
    h.clock.advance(Duration::seconds(1));
    let revoked = r.api_keys.revoke_api_key(&actx, key.id).await.unwrap();
    assert_eq!(revoked.revoked_at, Some(h.clock.now()));
    h.clock.advance(Duration::minutes(5));
    assert_eq!(
        r.api_keys
            .revoke_api_key(&actx, key.id)
            .await
            .unwrap()
            .revoked_at,
        revoked.revoked_at
    );
    assert_err!(
        present(secret).await,
        Error::Unauthenticated {
            credential: Credential::ApiKey,
            reason: Rejection::Revoked,
        }
    );
    // A refused presentation does not count as use (the last one was more
    // than a minute ago, so a counted use would have been written).
    assert_eq!(
        r.api_keys
            .get_api_key(&actx, key.id)
            .await
            .unwrap()
            .last_used_at,
        Some(used_at)
    );
    assert_eq!(
        r.api_keys
            .get_api_key(&actx, expiring.key.id)
            .await
            .unwrap()
            .last_used_at,
        Some(expiring_used_at)
    );
}
