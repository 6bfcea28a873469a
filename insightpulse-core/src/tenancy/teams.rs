//! Teams inside a tenant: the row, its input and [`TeamRepo`].

use crate::context::Context;
use crate::error::Result;
use crate::ids::*;
use crate::values::{Name, Slug};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A team inside a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Team {
    /// Its id.
    pub id: TeamId,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// Unique within the tenant.
    pub slug: Slug,
    /// Display name.
    pub name: Name,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// Input of [`TeamRepo::create_team`](super::TeamRepo::create_team).
#[derive(Debug, Clone, Serialize)]
pub struct NewTeam {
    /// Unique within the tenant.
    pub slug: Slug,
    /// Display name.
    pub name: Name,
}

/// Teams of the context's tenant.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait TeamRepo: Send + Sync {
    /// Creates a team. Needs `team.manage`. `Conflict` on a taken slug.
    /// Honours the request's idempotency key.
    async fn create_team(&self, ctx: &Context, new: NewTeam) -> Result<Team>;
    /// One team.
    async fn get_team(&self, ctx: &Context, id: TeamId) -> Result<Team>;
    /// Every team, ordered by slug.
    async fn list_teams(&self, ctx: &Context) -> Result<Vec<Team>>;
    /// Renames a team. Needs `team.manage`.
    async fn rename_team(&self, ctx: &Context, id: TeamId, name: Name) -> Result<Team>;
    /// Deletes a team and its memberships. Needs `team.manage`.
    async fn delete_team(&self, ctx: &Context, id: TeamId) -> Result<()>;
    /// Adds a member of the tenant to a team. Needs `team.manage`.
    /// `NotFound` (entity `member`) for a user who is not a member.
    async fn add_team_member(&self, ctx: &Context, team: TeamId, user: UserId) -> Result<()>;
    /// Removes a user from a team. Needs `team.manage`.
    async fn remove_team_member(&self, ctx: &Context, team: TeamId, user: UserId) -> Result<()>;
    /// The team's members, ordered by id.
    async fn list_team_members(&self, ctx: &Context, team: TeamId) -> Result<Vec<UserId>>;
}
