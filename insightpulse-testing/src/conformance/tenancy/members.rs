//! Memberships and invitations: invite and accept, single-use expiring
//! tokens, suspension, removal, owners.

use super::{foreign_token, invitation, oidc_config, project_create, tampered};
use crate::conformance::{assert_err, Harness};
use crate::fixtures::*;
use chrono::Duration;
use insightpulse_core::tenancy::tokens::TokenKind;
use insightpulse_core::tenancy::{
    ApiKeyScope, MembershipStatus, NewSsoProvider, NewTeam, RoleScope,
};
use insightpulse_core::{
    Clock, Context, Entity, Error, ExposeSecret, InvitationId, Rejection, RoleId, SecretString,
    UserId,
};

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
        .has_permission(&bctx, code("project.create"), None)
        .await
        .unwrap());
    assert!(!r
        .rbac
        .has_permission(&bctx, code("tenant.manage"), None)
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
        .has_permission(&cctx, code("member.read"), None)
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
        Error::NotFound {
            entity: Entity::Member
        }
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
        assert!(!r.rbac.has_permission(&bctx, code(c), None).await.unwrap());
        assert!(!r
            .rbac
            .has_permission(&bctx, code(c), Some(p.id))
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
        Error::NotFound {
            entity: Entity::Member
        }
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
        .has_permission(&bctx, code("project.create"), None)
        .await
        .unwrap());
    project(r, &bctx, "bobs").await;
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
        Error::NotFound {
            entity: Entity::Member
        }
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
        .has_permission(&bctx, code("project.create"), None)
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
        Error::NotFound {
            entity: Entity::Member
        }
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
            entity: Entity::Member,
            ..
        }
    );
    assert_err!(
        r.members.remove_member(&actx, alice.id).await,
        Error::InvalidState {
            entity: Entity::Member,
            ..
        }
    );
    assert_err!(
        r.members.set_owner(&actx, alice.id, false).await,
        Error::InvalidState {
            entity: Entity::Member,
            ..
        }
    );
    assert_err!(
        r.members.remove_member(&sys, alice.id).await,
        Error::InvalidState {
            entity: Entity::Member,
            ..
        }
    );
    assert_err!(
        r.members.suspend_member(&sys, alice.id).await,
        Error::InvalidState {
            entity: Entity::Member,
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
            entity: Entity::Member,
            ..
        }
    );

    // A suspended owner is not an active owner.
    r.members.set_owner(&bctx, carol.id, true).await.unwrap();
    r.members.suspend_member(&bctx, carol.id).await.unwrap();
    assert_err!(
        r.members.remove_member(&bctx, bob.id).await,
        Error::InvalidState {
            entity: Entity::Member,
            ..
        }
    );
    assert_err!(
        r.members.suspend_member(&bctx, bob.id).await,
        Error::InvalidState {
            entity: Entity::Member,
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
        .has_permission(&bctx, code("tenant.manage"), None)
        .await
        .unwrap());
    let m = r.members.set_owner(&actx, bob.id, true).await.unwrap();
    assert!(m.is_owner);
    assert!(r
        .rbac
        .has_permission(&bctx, code("tenant.manage"), None)
        .await
        .unwrap());
    assert!(r
        .rbac
        .has_permission(&bctx, code("billing.manage"), None)
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
        .has_permission(&bctx, code("tenant.manage"), None)
        .await
        .unwrap());
    assert_err!(
        r.members.set_owner(&actx, UserId::new(), true).await,
        Error::NotFound {
            entity: Entity::Member
        }
    );
    assert_err!(
        r.members.set_owner(&bctx, bob.id, true).await,
        Error::PermissionDenied { .. }
    );
}
