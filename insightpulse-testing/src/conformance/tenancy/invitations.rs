//! Conformance cases of invitations: single-use tokens bound to their
//! email, expiry and revocation, and who may invite with which role.

use super::{foreign_token, invitation, tampered};
use crate::conformance::{assert_err, Harness};
use crate::fixtures::*;
use chrono::Duration;
use insightpulse_core::tenancy::tokens::TokenKind;
use insightpulse_core::tenancy::{ApiKeyScope, RoleScope};
use insightpulse_core::{
    Clock, Context, Entity, Error, InvitationId, Rejection, RoleId, SecretString,
};

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
            reason: Rejection::AlreadyUsed,
            ..
        }
    );
    assert_err!(
        r.members
            .revoke_invitation(&actx, issued.invitation.id)
            .await,
        Error::InvalidState {
            entity: Entity::Invitation,
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
            reason: Rejection::Expired,
            ..
        }
    );
    assert_err!(
        r.members.get_member(&actx, bob.id).await,
        Error::NotFound {
            entity: Entity::Member
        }
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
            entity: Entity::Invitation
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
            reason: Rejection::Revoked,
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
                reason: Rejection::Malformed,
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
                reason: Rejection::Unknown,
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
            entity: Entity::Member,
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
            entity: Entity::Member,
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
            entity: Entity::Member,
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
        Error::NotFound {
            entity: Entity::Role
        }
    );
    assert_err!(
        r.members
            .invite(&actx, inv("a@x.io", Some(RoleId::new())))
            .await,
        Error::NotFound {
            entity: Entity::Role
        }
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
