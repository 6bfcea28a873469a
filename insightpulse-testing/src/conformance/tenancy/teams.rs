//! Teams and their members.

use crate::conformance::{assert_err, Harness};
use crate::fixtures::*;
use insightpulse_core::tenancy::NewTeam;
use insightpulse_core::{Clock, Entity, Error, TeamId, UserId};

/// Teams: unique slug per tenant, listed by slug, renamed and deleted with
/// `team.manage`.
pub async fn teams_are_unique_by_slug_and_ordered(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let (_, vctx) = member_with_role(r, &actx, "viewer@acme.io", Some("Viewer")).await;
    // Names sort the other way round from slugs, and creation order is a
    // third order: the list must follow the slugs.
    let new = |s: &str| NewTeam {
        slug: slug(s),
        name: name(match s {
            "web" => "Alpha",
            "a-c" => "Mike",
            "ab" => "Zulu",
            other => other,
        }),
    };
    let web = r.teams.create_team(&actx, new("web")).await.unwrap();
    assert_eq!((web.tenant_id, web.created_at), (acme.id, h.clock.now()));
    for s in ["ab", "a-c"] {
        r.teams.create_team(&actx, new(s)).await.unwrap();
    }
    assert_err!(
        r.teams.create_team(&actx, new("web")).await,
        Error::Conflict {
            entity: Entity::Team,
            ..
        }
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
        Error::NotFound {
            entity: Entity::Team
        }
    );

    assert_err!(
        r.teams.delete_team(&vctx, web.id).await,
        Error::PermissionDenied { .. }
    );
    r.teams.delete_team(&actx, web.id).await.unwrap();
    assert_err!(
        r.teams.get_team(&actx, web.id).await,
        Error::NotFound {
            entity: Entity::Team
        }
    );
    assert_err!(
        r.teams.delete_team(&actx, web.id).await,
        Error::NotFound {
            entity: Entity::Team
        }
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
            entity: Entity::TeamMember,
            ..
        }
    );
    assert_err!(
        r.teams.add_team_member(&actx, team.id, stranger.id).await,
        Error::NotFound {
            entity: Entity::Member
        }
    );
    assert_err!(
        r.teams.add_team_member(&actx, team.id, UserId::new()).await,
        Error::NotFound {
            entity: Entity::Member
        }
    );
    assert_err!(
        r.teams.add_team_member(&actx, TeamId::new(), bob.id).await,
        Error::NotFound {
            entity: Entity::Team
        }
    );
    assert_err!(
        r.teams.add_team_member(&vctx, team.id, dave.id).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.teams.remove_team_member(&actx, team.id, dave.id).await,
        Error::NotFound {
            entity: Entity::TeamMember
        }
    );
    assert_err!(
        r.teams.remove_team_member(&vctx, team.id, bob.id).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.teams.list_team_members(&actx, TeamId::new()).await,
        Error::NotFound {
            entity: Entity::Team
        }
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
