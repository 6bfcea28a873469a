//! Module 2 of the seed — projects and their environments.
//!
//! Rules guarded here: a project's slug is unique in its tenant, each
//! environment kind exists at most once per project, an archived project
//! accepts no changes but unarchiving and deletion, a project- or
//! environment-scoped API key sees only its own project, and an
//! environment-scoped key makes no other environment.

use crate::context::Context;
use crate::error::{Error, Result};
use crate::ids::*;
use crate::values::PermissionCode;
use crate::values::{Name, Slug};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A project: a logical grouping of resources inside a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    /// Its id.
    pub id: ProjectId,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// Unique within the tenant.
    pub slug: Slug,
    /// Display name.
    pub name: Name,
    /// Free text.
    pub description: Option<String>,
    /// Set while archived.
    pub archived_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// Input of [`ProjectRepo::create_project`].
#[derive(Debug, Clone, Serialize)]
pub struct NewProject {
    /// Unique within the tenant.
    pub slug: Slug,
    /// Display name.
    pub name: Name,
    /// Free text (at most 2,000 characters).
    pub description: Option<String>,
}

impl NewProject {
    /// Checks the input; called by every backend before any I/O.
    pub fn validate(&self) -> Result<()> {
        let Some(description) = &self.description else {
            return Ok(());
        };
        if description.chars().count() > 2000 {
            return Err(Error::validation(
                "description",
                "must be at most 2000 characters",
            ));
        }
        crate::values::storable_text("description", description)
    }
}

/// The kind of an environment; each exists at most once per project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvironmentKind {
    /// `development`
    Development,
    /// `staging`
    Staging,
    /// `production`
    Production,
}

impl EnvironmentKind {
    /// The SQL enum label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Staging => "staging",
            Self::Production => "production",
        }
    }
}

parse_by_label!(
    EnvironmentKind,
    "kind",
    [
        EnvironmentKind::Development,
        EnvironmentKind::Staging,
        EnvironmentKind::Production
    ]
);

/// An environment of a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    /// Its id.
    pub id: EnvironmentId,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// Its project.
    pub project_id: ProjectId,
    /// Development, staging or production.
    pub kind: EnvironmentKind,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// Refuses an environment-scoped API key the creation of an environment:
/// the key acts inside its one environment, and a new one is outside it
/// (PostgreSQL's policies would hide from it the very row it made). Checked
/// after `environment.manage` itself, so the refusal names that permission.
pub fn require_environment_creator(ctx: &Context) -> Result<()> {
    match ctx.api_key_principal() {
        Some(key) if key.environment_id.is_some() => {
            Err(Error::denied(PermissionCode::ENVIRONMENT_MANAGE))
        }
        _ => Ok(()),
    }
}

/// Projects and environments of the context's tenant.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait ProjectRepo: Send + Sync {
    /// Creates a project. Needs `project.create`. `Conflict` on a taken
    /// slug. Honours the request's idempotency key. Audited as
    /// `project.created`, like every change below (`project.renamed`,
    /// `project.archived`, `project.unarchived`, `project.deleted`,
    /// `environment.created`, `environment.deleted`).
    async fn create_project(&self, ctx: &Context, new: NewProject) -> Result<Project>;
    /// One project.
    async fn get_project(&self, ctx: &Context, id: ProjectId) -> Result<Project>;
    /// The tenant's projects (without archived ones unless asked), by slug.
    async fn list_projects(&self, ctx: &Context, include_archived: bool) -> Result<Vec<Project>>;
    /// Renames a project. Needs `project.update`; not while archived.
    async fn rename_project(&self, ctx: &Context, id: ProjectId, name: Name) -> Result<Project>;
    /// Archives a project (idempotent). Needs `project.update`.
    async fn archive_project(&self, ctx: &Context, id: ProjectId) -> Result<Project>;
    /// Brings an archived project back (idempotent). Needs `project.update`.
    async fn unarchive_project(&self, ctx: &Context, id: ProjectId) -> Result<Project>;
    /// Deletes a project with its environments, project role grants and
    /// scoped API keys. Needs `project.delete`.
    async fn delete_project(&self, ctx: &Context, id: ProjectId) -> Result<()>;
    /// Adds an environment. Needs `environment.manage` on the project;
    /// `Conflict` when the kind exists; not while archived. Honours the
    /// request's idempotency key.
    async fn create_environment(
        &self,
        ctx: &Context,
        project: ProjectId,
        kind: EnvironmentKind,
    ) -> Result<Environment>;
    /// One environment.
    async fn get_environment(&self, ctx: &Context, id: EnvironmentId) -> Result<Environment>;
    /// A project's environments, in kind order (development, staging, production).
    async fn list_environments(
        &self,
        ctx: &Context,
        project: ProjectId,
    ) -> Result<Vec<Environment>>;
    /// Deletes an environment and the API keys scoped to it. Needs
    /// `environment.manage` on the project.
    async fn delete_environment(&self, ctx: &Context, id: EnvironmentId) -> Result<()>;
}
