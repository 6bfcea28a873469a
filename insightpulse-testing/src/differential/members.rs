//! Operations of `MemberRepo` (memberships and invitations) and `TeamRepo`.

use super::env::{sorted_names, Env, Outcome};
use super::generate::Gen;
use super::model::{acting_tenant, indices, made, rows, set_alive, InviteM, MemberM, Model, Row};
use super::ops::{display_name, email, team_slug, Kind, ModuleOp, Ref, Who};
use super::tenancy::Presented;
use async_trait::async_trait;
use insightpulse_core::tenancy::{NewInvitation, NewTeam};
use insightpulse_core::{Context, Email, Name, Repos, Result, Slug};
use std::fmt;

/// One call of `MemberRepo` or `TeamRepo`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum MemberOp {
    ListMembers,
    GetMember {
        user: Ref,
    },
    Invite {
        invitation: Ref,
        email: u8,
        role: Option<Ref>,
        valid_for: u8,
    },
    ListInvitations,
    RevokeInvitation {
        invitation: Ref,
    },
    AcceptInvitation {
        token: Presented,
    },
    SuspendMember {
        user: Ref,
    },
    ReactivateMember {
        user: Ref,
    },
    RemoveMember {
        user: Ref,
    },
    SetOwner {
        user: Ref,
        owner: bool,
    },
    CreateTeam {
        team: Ref,
        slug: u8,
        name: u8,
    },
    GetTeam {
        team: Ref,
    },
    ListTeams,
    RenameTeam {
        team: Ref,
        name: u8,
    },
    DeleteTeam {
        team: Ref,
    },
    AddTeamMember {
        team: Ref,
        user: Ref,
    },
    RemoveTeamMember {
        team: Ref,
        user: Ref,
    },
    ListTeamMembers {
        team: Ref,
    },
}

/// Invitation lifetimes in seconds; 0 and 31 days are out of range.
const VALID_FOR: &[i64] = &[60, 3_600, 7 * 86_400, 30 * 86_400, 0, 31 * 86_400];

fn name(i: u8) -> Result<Name> {
    Name::parse(&display_name(i))
}

impl fmt::Display for MemberOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use MemberOp::*;
        match self {
            ListMembers => f.write_str("list_members"),
            GetMember { user } => write!(f, "get_member {user}"),
            Invite {
                invitation,
                email: e,
                role,
                valid_for,
            } => write!(
                f,
                "invite {invitation} {} role={} valid_for={}",
                email(*e),
                role.map_or("None".to_owned(), |r| r.to_string()),
                super::generate::duration_text(VALID_FOR[*valid_for as usize % VALID_FOR.len()])
            ),
            ListInvitations => f.write_str("list_invitations"),
            RevokeInvitation { invitation } => write!(f, "revoke_invitation {invitation}"),
            AcceptInvitation { token } => write!(f, "accept_invitation {token}"),
            SuspendMember { user } => write!(f, "suspend_member {user}"),
            ReactivateMember { user } => write!(f, "reactivate_member {user}"),
            RemoveMember { user } => write!(f, "remove_member {user}"),
            SetOwner { user, owner } => write!(f, "set_owner {user} {owner}"),
            CreateTeam {
                team,
                slug,
                name: nm,
            } => write!(
                f,
                "create_team {team} slug={} name={:?}",
                team_slug(*slug),
                display_name(*nm)
            ),
            GetTeam { team } => write!(f, "get_team {team}"),
            ListTeams => f.write_str("list_teams"),
            RenameTeam { team, name: nm } => {
                write!(f, "rename_team {team} {:?}", display_name(*nm))
            }
            DeleteTeam { team } => write!(f, "delete_team {team}"),
            AddTeamMember { team, user } => write!(f, "add_team_member {team} {user}"),
            RemoveTeamMember { team, user } => write!(f, "remove_team_member {team} {user}"),
            ListTeamMembers { team } => write!(f, "list_team_members {team}"),
        }
    }
}

const METHODS: &[&str] = &[
    "list_members",
    "get_member",
    "invite",
    "list_invitations",
    "revoke_invitation",
    "accept_invitation",
    "suspend_member",
    "reactivate_member",
    "remove_member",
    "set_owner",
    "create_team",
    "get_team",
    "list_teams",
    "rename_team",
    "delete_team",
    "add_team_member",
    "remove_team_member",
    "list_team_members",
];

/// Weights, in `METHODS` order.
const WEIGHTS: &[u32] = &[2, 2, 14, 2, 3, 12, 3, 2, 4, 3, 4, 1, 1, 1, 2, 9, 8, 2];

/// Users that exist and are not members of `t`.
fn outsiders(g: &Gen, t: Ref) -> Vec<u32> {
    indices(&g.model.users, |u| u.alive && u.email.is_some())
        .into_iter()
        .filter(|u| !g.model.members.contains_key(&(t.idx, *u)))
        .collect()
}

/// Open invitations whose invitee exists and is not a member yet.
fn acceptable(g: &Gen) -> Vec<u32> {
    indices(&g.model.invitations, |i| {
        i.alive
            && !i.used
            && g.model
                .user_with_email(i.email)
                .is_some_and(|u| !g.model.members.contains_key(&(i.tenant, u)))
    })
}

/// What `method` needs first in `t`, if it is missing.
fn needs(g: &Gen, method: &'static str, t: Ref) -> Option<&'static str> {
    let plain_members =
        g.members_of(t, Some(false), false).len() + g.members_of(t, None, true).len();
    match method {
        "get_team" | "rename_team" | "delete_team" | "add_team_member" | "remove_team_member"
        | "list_team_members"
            if g.live_in(&rows(&g.model.teams), t) == 0 =>
        {
            Some("create_team")
        }
        "suspend_member" | "reactivate_member" | "remove_member" | "set_owner"
        | "add_team_member"
            if plain_members == 0 =>
        {
            Some("accept_invitation")
        }
        "accept_invitation" if acceptable(g).is_empty() => Some("invite"),
        "remove_team_member"
            if !g.model.team_members.iter().any(|(team, _)| {
                g.model
                    .teams
                    .get(*team as usize)
                    .is_some_and(|r| r.tenant == t.idx)
            }) =>
        {
            Some("add_team_member")
        }
        "revoke_invitation"
            if !g
                .model
                .invitations
                .iter()
                .any(|i| i.tenant == t.idx && i.alive && !i.used) =>
        {
            Some("invite")
        }
        // A user to invite is made by `UserRepo` (the tenancy module).
        "invite" if outsiders(g, t).is_empty() => Some("create_user"),
        _ => None,
    }
}

#[async_trait]
impl ModuleOp for MemberOp {
    fn method(&self) -> &'static str {
        use MemberOp::*;
        match self {
            ListMembers => "list_members",
            GetMember { .. } => "get_member",
            Invite { .. } => "invite",
            ListInvitations => "list_invitations",
            RevokeInvitation { .. } => "revoke_invitation",
            AcceptInvitation { .. } => "accept_invitation",
            SuspendMember { .. } => "suspend_member",
            ReactivateMember { .. } => "reactivate_member",
            RemoveMember { .. } => "remove_member",
            SetOwner { .. } => "set_owner",
            CreateTeam { .. } => "create_team",
            GetTeam { .. } => "get_team",
            ListTeams => "list_teams",
            RenameTeam { .. } => "rename_team",
            DeleteTeam { .. } => "delete_team",
            AddTeamMember { .. } => "add_team_member",
            RemoveTeamMember { .. } => "remove_team_member",
            ListTeamMembers { .. } => "list_team_members",
        }
    }

    fn is_read(&self) -> bool {
        use MemberOp::*;
        matches!(
            self,
            ListMembers
                | GetMember { .. }
                | ListInvitations
                | GetTeam { .. }
                | ListTeams
                | ListTeamMembers { .. }
        )
    }

    fn methods() -> &'static [&'static str] {
        METHODS
    }

    fn generate(g: &mut Gen) -> Option<(Who, Self)> {
        use MemberOp::*;
        let t = g.tenant();
        let method = g.next_method(METHODS, WEIGHTS, |g, m| needs(g, m, t))?;
        let op = match method {
            "list_members" => ListMembers,
            "get_member" => GetMember { user: g.member(t) },
            "invite" => {
                let members: Vec<u32> = g
                    .model
                    .members
                    .keys()
                    .filter(|k| k.0 == t.idx)
                    .map(|k| k.1)
                    .collect();
                let outsiders: Vec<u8> = outsiders(g, t)
                    .into_iter()
                    .filter_map(|u| g.model.users[u as usize].email)
                    .collect();
                let r = g.below(100);
                let e = if r < 75 && !outsiders.is_empty() {
                    g.pick(&outsiders)
                } else if r < 85 || members.is_empty() {
                    g.small(16)
                } else {
                    let m = g.pick(&members);
                    g.model
                        .users
                        .get(m as usize)
                        .and_then(|u| u.email)
                        .unwrap_or(0)
                };
                let invitation = g.fresh(Kind::Invitation, g.model.invitations.len());
                g.model.invitations.push(InviteM {
                    tenant: t.idx,
                    email: e,
                    alive: false,
                    used: false,
                    made: (g.index(), 0),
                });
                let r = g.below(100);
                let role = if r < 30 {
                    None
                } else if r < 80 {
                    Some(Ref::new(Kind::Role, g.small(4) as u32))
                } else {
                    let customs: Vec<(u32, bool)> = g
                        .model
                        .roles
                        .iter()
                        .map(|r| (r.tenant.unwrap_or(u32::MAX), r.alive))
                        .collect();
                    Some(g.row_in(Kind::Role, &customs, t))
                };
                let valid_for = if g.chance(0.06) {
                    4 + g.small(2)
                } else {
                    g.small(4)
                };
                if let Some(i) = g.model.invitations.get_mut(invitation.idx as usize) {
                    i.made.1 = VALID_FOR[valid_for as usize % VALID_FOR.len()];
                }
                Invite {
                    invitation,
                    email: e,
                    role,
                    valid_for,
                }
            }
            "list_invitations" => ListInvitations,
            "revoke_invitation" => {
                let invs: Vec<(u32, bool)> = g
                    .model
                    .invitations
                    .iter()
                    .map(|i| (i.tenant, i.alive))
                    .collect();
                RevokeInvitation {
                    invitation: g.row_in(Kind::Invitation, &invs, t),
                }
            }
            "accept_invitation" => {
                let open = acceptable(g);
                let inv = if !open.is_empty() && g.chance(0.9) {
                    g.pick(&open)
                } else if !g.model.invitations.is_empty() {
                    g.below(g.model.invitations.len()) as u32
                } else {
                    super::ops::GHOST
                };
                let invited = g
                    .model
                    .invitations
                    .get(inv as usize)
                    .and_then(|i| g.model.user_with_email(i.email));
                let user = match invited {
                    Some(u) if g.chance(0.85) => Ref::new(Kind::User, u),
                    _ => g.user(),
                };
                let r = g.below(100);
                let token = if r < 92 {
                    Presented::Token(Ref::new(Kind::Invitation, inv))
                } else if r < 96 || g.model.keys.is_empty() {
                    Presented::Malformed
                } else {
                    Presented::Token(Ref::new(Kind::Key, g.below(g.model.keys.len()) as u32))
                };
                let who = if g.chance(0.9) {
                    Who::User(user, None)
                } else {
                    Who::User(user, Some(t))
                };
                return Some((who, AcceptInvitation { token }));
            }
            "suspend_member" => SuspendMember {
                user: g.plain_member(t),
            },
            "reactivate_member" => {
                let suspended = g.members_of(t, None, true);
                let user = if !suspended.is_empty() && g.chance(0.7) {
                    Ref::new(Kind::User, g.pick(&suspended))
                } else {
                    g.member(t)
                };
                ReactivateMember { user }
            }
            "remove_member" => RemoveMember {
                user: g.plain_member(t),
            },
            "set_owner" => SetOwner {
                user: g.plain_member(t),
                owner: g.chance(0.6),
            },
            "create_team" => {
                let team = g.fresh(Kind::Team, g.model.teams.len());
                g.model.teams.push(Row {
                    tenant: t.idx,
                    alive: false,
                });
                CreateTeam {
                    team,
                    slug: g.small(6),
                    name: g.small(12),
                }
            }
            "get_team" => GetTeam {
                team: g.row_in(Kind::Team, &rows(&g.model.teams), t),
            },
            "list_teams" => ListTeams,
            "rename_team" => RenameTeam {
                team: g.row_in(Kind::Team, &rows(&g.model.teams), t),
                name: g.small(12),
            },
            "delete_team" => DeleteTeam {
                team: g.row_in(Kind::Team, &rows(&g.model.teams), t),
            },
            "add_team_member" => AddTeamMember {
                team: g.row_in(Kind::Team, &rows(&g.model.teams), t),
                user: g.member(t),
            },
            "remove_team_member" => {
                let joined: Vec<(u32, u32)> = g
                    .model
                    .team_members
                    .iter()
                    .filter(|(team, _)| {
                        g.model
                            .teams
                            .get(*team as usize)
                            .is_some_and(|r| r.tenant == t.idx)
                    })
                    .copied()
                    .collect();
                if !joined.is_empty() && g.chance(0.85) {
                    let (team, user) = g.pick(&joined);
                    RemoveTeamMember {
                        team: Ref::new(Kind::Team, team),
                        user: Ref::new(Kind::User, user),
                    }
                } else {
                    RemoveTeamMember {
                        team: g.row_in(Kind::Team, &rows(&g.model.teams), t),
                        user: g.member(t),
                    }
                }
            }
            _ => ListTeamMembers {
                team: g.row_in(Kind::Team, &rows(&g.model.teams), t),
            },
        };
        Some((g.actor(t), op))
    }

    fn observe(&self, by: &Who, m: &mut Model, ok: bool) {
        use MemberOp::*;
        if !ok {
            return;
        }
        let ctx_tenant = match by {
            Who::User(_, Some(t)) | Who::System(Some(t)) => Some(*t),
            Who::Key(k) => m
                .keys
                .get(k.idx as usize)
                .map(|k| Ref::new(Kind::Tenant, k.tenant)),
            _ => None,
        };
        let acting_user = match by {
            Who::User(u, _) => Some(*u),
            _ => None,
        };
        match self {
            Invite { invitation, .. } => {
                let t = acting_tenant(by, m);
                if let Some(i) = m.invitations.get_mut(invitation.idx as usize) {
                    i.alive = true;
                    i.tenant = t.unwrap_or(i.tenant);
                }
            }
            RevokeInvitation { invitation } => {
                if let Some(i) = m.invitations.get_mut(invitation.idx as usize) {
                    i.used = true;
                }
            }
            AcceptInvitation {
                token: Presented::Token(inv),
            } => {
                if let (Some(i), Some(u)) = (m.invitations.get_mut(inv.idx as usize), acting_user) {
                    i.used = true;
                    let t = i.tenant;
                    m.members.insert(
                        (t, u.idx),
                        MemberM {
                            owner: false,
                            suspended: false,
                        },
                    );
                    m.former.remove(&(t, u.idx));
                }
            }
            SuspendMember { user } | ReactivateMember { user } | SetOwner { user, .. } => {
                if let Some(t) = ctx_tenant {
                    if let Some(mm) = m.members.get_mut(&(t.idx, user.idx)) {
                        match self {
                            SuspendMember { .. } => mm.suspended = true,
                            ReactivateMember { .. } => mm.suspended = false,
                            SetOwner { owner, .. } => mm.owner = *owner,
                            _ => {}
                        }
                    }
                }
            }
            RemoveMember { user } => {
                if let Some(t) = ctx_tenant {
                    m.members.remove(&(t.idx, user.idx));
                    m.former.insert((t.idx, user.idx));
                }
            }
            CreateTeam { team, .. } => {
                let t = acting_tenant(by, m);
                made(&mut m.teams, *team, t);
            }
            DeleteTeam { team } => {
                set_alive(&mut m.teams, *team, false);
                m.team_members.retain(|(tm, _)| *tm != team.idx);
            }
            AddTeamMember { team, user } => {
                m.team_members.insert((team.idx, user.idx));
            }
            RemoveTeamMember { team, user } => {
                m.team_members.remove(&(team.idx, user.idx));
            }
            _ => {}
        }
    }

    async fn apply(&self, ctx: &Context, env: &mut Env, repos: &Repos) -> Outcome {
        use MemberOp::*;
        match self {
            ListMembers => {
                let r = repos.members.list_members(ctx).await;
                env.outcome(r)
            }
            GetMember { user } => {
                let id = env.id(*user);
                let r = repos.members.get_member(ctx, id).await;
                env.outcome(r)
            }
            Invite {
                invitation,
                email: e,
                role,
                valid_for,
            } => {
                let role_id = role.map(|r| env.id(r));
                let secs = VALID_FOR[*valid_for as usize % VALID_FOR.len()];
                let r = match Email::parse(&email(*e)) {
                    Ok(addr) => {
                        repos
                            .members
                            .invite(
                                ctx,
                                NewInvitation {
                                    email: addr,
                                    role_id,
                                    valid_for: chrono::Duration::seconds(secs),
                                },
                            )
                            .await
                    }
                    Err(e) => Err(e),
                };
                if let Ok(issued) = &r {
                    env.bind(*invitation, issued.invitation.id);
                    env.keep_token(*invitation, issued.token.clone());
                }
                env.outcome(r)
            }
            ListInvitations => {
                let r = repos.members.list_invitations(ctx).await;
                env.outcome(r)
            }
            RevokeInvitation { invitation } => {
                let id = env.id(*invitation);
                let r = repos.members.revoke_invitation(ctx, id).await;
                env.outcome(r)
            }
            AcceptInvitation { token } => {
                let secret = token.secret(env);
                let r = repos.members.accept_invitation(ctx, &secret).await;
                env.outcome(r)
            }
            SuspendMember { user } => {
                let id = env.id(*user);
                let r = repos.members.suspend_member(ctx, id).await;
                env.outcome(r)
            }
            ReactivateMember { user } => {
                let id = env.id(*user);
                let r = repos.members.reactivate_member(ctx, id).await;
                env.outcome(r)
            }
            RemoveMember { user } => {
                let id = env.id(*user);
                let r = repos.members.remove_member(ctx, id).await;
                env.outcome(r)
            }
            SetOwner { user, owner } => {
                let id = env.id(*user);
                let r = repos.members.set_owner(ctx, id, *owner).await;
                env.outcome(r)
            }
            CreateTeam {
                team,
                slug,
                name: nm,
            } => {
                let new = (|| {
                    Ok(NewTeam {
                        slug: Slug::parse(&team_slug(*slug))?,
                        name: name(*nm)?,
                    })
                })();
                let r = match new {
                    Ok(new) => repos.teams.create_team(ctx, new).await,
                    Err(e) => Err(e),
                };
                if let Ok(t) = &r {
                    env.bind(*team, t.id);
                }
                env.outcome(r)
            }
            GetTeam { team } => {
                let id = env.id(*team);
                let r = repos.teams.get_team(ctx, id).await;
                env.outcome(r)
            }
            ListTeams => {
                let r = repos.teams.list_teams(ctx).await;
                env.outcome(r)
            }
            RenameTeam { team, name: nm } => {
                let id = env.id(*team);
                let r = match name(*nm) {
                    Ok(n) => repos.teams.rename_team(ctx, id, n).await,
                    Err(e) => Err(e),
                };
                env.outcome(r)
            }
            DeleteTeam { team } => {
                let id = env.id(*team);
                let r = repos.teams.delete_team(ctx, id).await;
                env.outcome(r)
            }
            AddTeamMember { team, user } => {
                let (team, user) = (env.id(*team), env.id(*user));
                let r = repos.teams.add_team_member(ctx, team, user).await;
                env.outcome(r)
            }
            RemoveTeamMember { team, user } => {
                let (team, user) = (env.id(*team), env.id(*user));
                let r = repos.teams.remove_team_member(ctx, team, user).await;
                env.outcome(r)
            }
            ListTeamMembers { team } => {
                let id = env.id(*team);
                // "Ordered by id": ids differ between backends, so compare
                // the members by name.
                let r = repos.teams.list_team_members(ctx, id).await;
                let r = r.map(|users| sorted_names(env, &users));
                env.outcome_text(r)
            }
        }
    }
}
