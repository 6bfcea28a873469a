//! Teams and their members.

use super::super::{MemoryBackend, TenantRows};
use super::TenancyState;
use async_trait::async_trait;
use insightpulse_core::idempotency::{self, Call, Operation};
use insightpulse_core::tenancy::{NewTeam, Team, TeamRepo};
use insightpulse_core::{
    Context, Entity, Error, Name, PermissionCode, Result, TeamId, TenantId, UserId,
};

impl TenancyState {
    fn team(&self, t: TenantId, id: TeamId) -> Result<&Team> {
        self.teams
            .get(&(t, id))
            .ok_or_else(|| Error::not_found(Entity::Team))
    }
}

#[async_trait]
impl TeamRepo for MemoryBackend {
    async fn create_team(&self, ctx: &Context, new: NewTeam) -> Result<Team> {
        self.run(ctx, "TeamRepo.create_team", || {
            let call = Call::new(Operation::CreateTeam, ctx.tenant_id(), &new)?;
            let scope = idempotency::scope(ctx);
            let now = self.now();
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, PermissionCode::TEAM_MANAGE, None)?;
            if let Some(id) = st.idempotency.replayed(&scope, ctx.request(), &call, now)? {
                return st.tenancy.team(t, TeamId(id)).cloned();
            }
            if st.tenancy.teams.of_tenant(t).any(|x| x.slug == new.slug) {
                return Err(Error::conflict(Entity::Team, "slug"));
            }
            let team = Team {
                id: TeamId::new(),
                tenant_id: t,
                slug: new.slug,
                name: new.name,
                created_at: now,
            };
            st.tenancy.teams.insert((t, team.id), team.clone());
            st.idempotency
                .remember(scope, ctx.request(), call, team.id.0, now);
            Ok(team)
        })
    }

    async fn get_team(&self, ctx: &Context, id: TeamId) -> Result<Team> {
        self.run(ctx, "TeamRepo.get_team", || {
            let st = self.lock();
            let t = st.row_tenant(ctx, Entity::Team)?;
            st.tenancy.team(t, id).cloned()
        })
    }

    async fn list_teams(&self, ctx: &Context) -> Result<Vec<Team>> {
        self.run(ctx, "TeamRepo.list_teams", || {
            let st = self.lock();
            let Some(t) = st.list_tenant(ctx)? else {
                return Ok(Vec::new());
            };
            let mut out: Vec<Team> = st.tenancy.teams.of_tenant(t).cloned().collect();
            out.sort_by(|a, b| a.slug.as_str().cmp(b.slug.as_str()));
            Ok(out)
        })
    }

    async fn rename_team(&self, ctx: &Context, id: TeamId, name: Name) -> Result<Team> {
        self.run(ctx, "TeamRepo.rename_team", || {
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, PermissionCode::TEAM_MANAGE, None)?;
            st.tenancy.team(t, id)?;
            let team = st
                .tenancy
                .teams
                .get_mut(&(t, id))
                .ok_or_else(|| Error::not_found(Entity::Team))?;
            team.name = name;
            Ok(team.clone())
        })
    }

    async fn delete_team(&self, ctx: &Context, id: TeamId) -> Result<()> {
        self.run(ctx, "TeamRepo.delete_team", || {
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, PermissionCode::TEAM_MANAGE, None)?;
            st.tenancy.team(t, id)?;
            st.tenancy.delete_team(t, id);
            Ok(())
        })
    }

    async fn add_team_member(&self, ctx: &Context, team: TeamId, user: UserId) -> Result<()> {
        self.run(ctx, "TeamRepo.add_team_member", || {
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, PermissionCode::TEAM_MANAGE, None)?;
            st.tenancy.team(t, team)?;
            if !st.tenancy.memberships.contains_key(&(t, user)) {
                return Err(Error::not_found(Entity::Member));
            }
            if !st.tenancy.team_members.insert((t, team, user)) {
                return Err(Error::conflict(Entity::TeamMember, "user"));
            }
            Ok(())
        })
    }

    async fn remove_team_member(&self, ctx: &Context, team: TeamId, user: UserId) -> Result<()> {
        self.run(ctx, "TeamRepo.remove_team_member", || {
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, PermissionCode::TEAM_MANAGE, None)?;
            st.tenancy.team(t, team)?;
            if !st.tenancy.team_members.remove(&(t, team, user)) {
                return Err(Error::not_found(Entity::TeamMember));
            }
            Ok(())
        })
    }

    async fn list_team_members(&self, ctx: &Context, team: TeamId) -> Result<Vec<UserId>> {
        self.run(ctx, "TeamRepo.list_team_members", || {
            let st = self.lock();
            let t = st.row_tenant(ctx, Entity::Team)?;
            st.tenancy.team(t, team)?;
            // The set is ordered by (tenant, team, user): users come out by id.
            Ok(st
                .tenancy
                .team_members_of_tenant(t)
                .filter(|(tm, _)| *tm == team)
                .map(|(_, u)| u)
                .collect())
        })
    }
}
