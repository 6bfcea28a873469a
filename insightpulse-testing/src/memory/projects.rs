//! In-memory projects and environments.
//!
//! Rule guarded here: project slugs are unique per tenant, each environment
//! kind exists once per project, an archived project refuses renames and new
//! environments, project-level permissions are checked at the target
//! project's level, and an API key scoped to a project (or environment) sees
//! only that project (or environment). Deleting cascades like Postgres'
//! foreign keys: environments, project grants and scoped keys.

use super::{MemoryBackend, TenantRows};
use async_trait::async_trait;
use insightpulse_core::projects::{Environment, EnvironmentKind, NewProject, Project, ProjectRepo};
use insightpulse_core::{Context, EnvironmentId, Error, Name, ProjectId, Result};

/// Longest accepted project description, in characters.
const MAX_DESCRIPTION_CHARS: usize = 2000;

#[async_trait]
impl ProjectRepo for MemoryBackend {
    async fn create_project(&self, ctx: &Context, new: NewProject) -> Result<Project> {
        self.run(ctx, "ProjectRepo.create_project", || {
            if new
                .description
                .as_ref()
                .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS)
            {
                return Err(Error::validation(
                    "description",
                    "must be at most 2000 characters",
                ));
            }
            let now = self.now();
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, "project.create", None)?;
            if st.projects.of_tenant(t).any(|p| p.slug == new.slug) {
                return Err(Error::conflict("project", format!("slug={}", new.slug)));
            }
            let project = Project {
                id: ProjectId::new(),
                tenant_id: t,
                slug: new.slug,
                name: new.name,
                description: new.description,
                archived_at: None,
                created_at: now,
                updated_at: now,
            };
            st.projects.insert((t, project.id), project.clone());
            Ok(project)
        })
    }

    async fn get_project(&self, ctx: &Context, id: ProjectId) -> Result<Project> {
        self.run(ctx, "ProjectRepo.get_project", || {
            let st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.project(ctx, t, id).cloned()
        })
    }

    async fn list_projects(&self, ctx: &Context, include_archived: bool) -> Result<Vec<Project>> {
        self.run(ctx, "ProjectRepo.list_projects", || {
            let st = self.lock();
            let Some(t) = st.list_tenant(ctx)? else {
                return Ok(Vec::new());
            };
            let mut out: Vec<Project> = st
                .projects
                .of_tenant(t)
                .filter(|p| super::State::project_visible(ctx, p))
                .filter(|p| include_archived || p.archived_at.is_none())
                .cloned()
                .collect();
            out.sort_by(|a, b| a.slug.as_str().cmp(b.slug.as_str()));
            Ok(out)
        })
    }

    async fn rename_project(&self, ctx: &Context, id: ProjectId, name: Name) -> Result<Project> {
        self.run(ctx, "ProjectRepo.rename_project", || {
            let now = self.now();
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            let archived = st.project(ctx, t, id)?.archived_at.is_some();
            st.require(ctx, t, "project.update", Some(id))?;
            if archived {
                return Err(Error::invalid_state(
                    "project",
                    "an archived project cannot be renamed",
                ));
            }
            let p = st
                .projects
                .get_mut(&(t, id))
                .ok_or_else(|| Error::not_found("project"))?;
            p.name = name;
            p.updated_at = now;
            Ok(p.clone())
        })
    }

    async fn archive_project(&self, ctx: &Context, id: ProjectId) -> Result<Project> {
        self.run(ctx, "ProjectRepo.archive_project", || {
            let now = self.now();
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.project(ctx, t, id)?;
            st.require(ctx, t, "project.update", Some(id))?;
            let p = st
                .projects
                .get_mut(&(t, id))
                .ok_or_else(|| Error::not_found("project"))?;
            if p.archived_at.is_none() {
                p.archived_at = Some(now);
                p.updated_at = now;
            }
            Ok(p.clone())
        })
    }

    async fn unarchive_project(&self, ctx: &Context, id: ProjectId) -> Result<Project> {
        self.run(ctx, "ProjectRepo.unarchive_project", || {
            let now = self.now();
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.project(ctx, t, id)?;
            st.require(ctx, t, "project.update", Some(id))?;
            let p = st
                .projects
                .get_mut(&(t, id))
                .ok_or_else(|| Error::not_found("project"))?;
            if p.archived_at.is_some() {
                p.archived_at = None;
                p.updated_at = now;
            }
            Ok(p.clone())
        })
    }

    async fn delete_project(&self, ctx: &Context, id: ProjectId) -> Result<()> {
        self.run(ctx, "ProjectRepo.delete_project", || {
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.project(ctx, t, id)?;
            st.require(ctx, t, "project.delete", Some(id))?;
            st.delete_project(t, id);
            Ok(())
        })
    }

    async fn create_environment(
        &self,
        ctx: &Context,
        project: ProjectId,
        kind: EnvironmentKind,
    ) -> Result<Environment> {
        self.run(ctx, "ProjectRepo.create_environment", || {
            let now = self.now();
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            let archived = st.project(ctx, t, project)?.archived_at.is_some();
            st.require(ctx, t, "environment.manage", Some(project))?;
            if archived {
                return Err(Error::invalid_state(
                    "project",
                    "an archived project accepts no new environments",
                ));
            }
            if st
                .environments
                .of_tenant(t)
                .any(|e| e.project_id == project && e.kind == kind)
            {
                return Err(Error::conflict(
                    "environment",
                    format!("kind={}", kind.as_str()),
                ));
            }
            let env = Environment {
                id: EnvironmentId::new(),
                tenant_id: t,
                project_id: project,
                kind,
                created_at: now,
            };
            st.environments.insert((t, env.id), env.clone());
            Ok(env)
        })
    }

    async fn get_environment(&self, ctx: &Context, id: EnvironmentId) -> Result<Environment> {
        self.run(ctx, "ProjectRepo.get_environment", || {
            let st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.environment(ctx, t, id).cloned()
        })
    }

    async fn list_environments(
        &self,
        ctx: &Context,
        project: ProjectId,
    ) -> Result<Vec<Environment>> {
        self.run(ctx, "ProjectRepo.list_environments", || {
            let st = self.lock();
            let t = ctx.require_tenant()?;
            if !st.tenant_visible(ctx, t) {
                return Err(Error::not_found("project"));
            }
            st.project(ctx, t, project)?;
            let mut out: Vec<Environment> = st
                .environments
                .of_tenant(t)
                .filter(|e| e.project_id == project)
                .filter(|e| super::State::environment_visible(ctx, e))
                .cloned()
                .collect();
            out.sort_by_key(|e| e.kind);
            Ok(out)
        })
    }

    async fn delete_environment(&self, ctx: &Context, id: EnvironmentId) -> Result<()> {
        self.run(ctx, "ProjectRepo.delete_environment", || {
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            let project = st.environment(ctx, t, id)?.project_id;
            st.require(ctx, t, "environment.manage", Some(project))?;
            st.delete_environment(t, id);
            Ok(())
        })
    }
}
