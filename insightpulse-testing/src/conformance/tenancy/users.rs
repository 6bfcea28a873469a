//! Users and passwords: system registration, who sees whom, profiles,
//! setting and checking passwords.

use crate::conformance::{assert_err, Harness};
use crate::fixtures::*;
use chrono::Duration;
use insightpulse_core::tenancy::{ApiKeyScope, NewUser};
use insightpulse_core::{
    Clock, Context, Credential, Entity, Error, Rejection, RequestMeta, SecretString, UserId,
};

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
        Error::Conflict {
            entity: Entity::User,
            ..
        }
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
        Error::NotFound {
            entity: Entity::User
        }
    );
    assert_err!(
        r.users.get_user(&as_alice, UserId::new()).await,
        Error::NotFound {
            entity: Entity::User
        }
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
/// checked by `sign_in`, every failure indistinguishable.
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
        .auth
        .sign_in(
            &alice.email,
            &pw("correct horse battery"),
            RequestMeta::default(),
        )
        .await
        .unwrap();
    assert_eq!(verified.user.id, alice.id);

    for (who, secret) in [
        (&alice.email, "wrong horse battery"),
        (&email("nobody@x.io"), "whatever1"),
        (&bob.email, "whatever1"),
    ] {
        assert_err!(
            r.auth
                .sign_in(who, &pw(secret), RequestMeta::default())
                .await,
            Error::Unauthenticated {
                credential: Credential::Password,
                reason: Rejection::Unknown,
            }
        );
    }

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
    r.auth
        .sign_in(
            &alice.email,
            &pw("correct horse battery"),
            RequestMeta::default(),
        )
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
        Error::NotFound {
            entity: Entity::User
        }
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
        r.auth
            .sign_in(&bob.email, &pw("bobs password"), RequestMeta::default())
            .await
            .unwrap()
            .user
            .id,
        bob.id
    );
}
