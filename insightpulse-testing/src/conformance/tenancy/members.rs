//! Memberships: invite and accept, order, suspension, removal, owners
//! (invitations themselves are in `invitations.rs`).

use super::{invitation, oidc_config, project_create};
use crate::conformance::{assert_err, Harness};
use crate::fixtures::*;
use chrono::Duration;
use insightpulse_core::tenancy::{ApiKeyScope, MembershipStatus, NewSsoProvider, NewTeam};
use insightpulse_core::{Clock, Context, Entity, Error, ExposeSecret, UserId};

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
