//! In-memory projects and environments.
//!
//! Rule guarded here: project slugs are unique per tenant, each environment
//! kind exists once per project, an archived project refuses renames and new
//! environments, project-level permissions are checked at the target
//! project's level, and an API key scoped to a project (or environment) sees
//! only that project (or environment). Deleting cascades like Postgres'
//! foreign keys: a project takes its environments here, and the tenancy
//! drops the grants and keys that name it (`State::delete_project`).
//!
//! Every change that changes something is audited in the same locked
//! mutation (`project.created`, `project.renamed`, `project.archived`,
//! `project.unarchived`, `project.deleted`, `environment.created`,
//! `environment.deleted`); a no-op (an unchanged name, archiving an archived
//! project) and a failed call write no entry. Both creates honour the
//! request's idempotency key.

use super::{MemoryBackend, TenantRows, TenantTable};
use async_trait::async_trait;
use insightpulse_core::audit::{AuditEvent, Diff};
use insightpulse_core::idempotency::{self, Call, Operation};
use insightpulse_core::projects::{
    require_environment_creator, Environment, EnvironmentKind, NewProject, Project, ProjectRepo,
};
use insightpulse_core::{
    Context, Entity, EnvironmentId, Error, Name, PermissionCode, ProjectId, Result, StateRule,
    TenantId,
};

/// The projects module's tables.
#[derive(Default)]
pub(crate) struct ProjectsState {
    pub projects: TenantTable<ProjectId, Project>,
    pub environments: TenantTable<EnvironmentId, Environment>,
}

impl ProjectsState {
    /// Whether a project is visible to the principal (API-key scope).
    pub fn project_visible(ctx: &Context, p: &Project) -> bool {
        match ctx.api_key_principal() {
            Some(k) => k.project_id.is_none() || k.project_id == Some(p.id),
            None => true,
        }
    }

    /// Whether an environment is visible to the principal (API-key scope).
    pub fn environment_visible(ctx: &Context, e: &Environment) -> bool {
        match ctx.api_key_principal() {
            Some(k) => {
                (k.project_id.is_none() || k.project_id == Some(e.project_id))
                    && (k.environment_id.is_none() || k.environment_id == Some(e.id))
            }
            None => true,
        }
    }

    /// A visible project of tenant `t`, or `NotFound{project}`.
    pub fn project(&self, ctx: &Context, t: TenantId, id: ProjectId) -> Result<&Project> {
        self.projects
            .get(&(t, id))
            .filter(|p| Self::project_visible(ctx, p))
            .ok_or_else(|| Error::not_found(Entity::Project))
    }

    /// A visible environment of tenant `t`, or `NotFound{environment}`.
    pub fn environment(
        &self,
        ctx: &Context,
        t: TenantId,
        id: EnvironmentId,
    ) -> Result<&Environment> {
        self.environments
            .get(&(t, id))
            .filter(|e| Self::environment_visible(ctx, e))
            .ok_or_else(|| Error::not_found(Entity::Environment))
    }

    /// Removes a project with its environments.
    pub fn remove_project(&mut self, t: TenantId, id: ProjectId) {
        self.projects.remove(&(t, id));
        self.environments
            .remove_of_tenant(t, |e| e.project_id == id);
    }

    /// Removes an environment.
    pub fn remove_environment(&mut self, t: TenantId, id: EnvironmentId) {
        self.environments.remove(&(t, id));
    }

    /// A deleted tenant takes its projects and environments.
    pub fn on_tenant_deleted(&mut self, t: TenantId) {
        self.projects.remove_of_tenant(t, |_| true);
        self.environments.remove_of_tenant(t, |_| true);
    }
}

/// The diff of `environment.created` and `environment.deleted`.
fn environment_diff(env: &Environment) -> Diff {
    Diff::new()
        .set("project_id", env.project_id)
        .set("kind", env.kind.as_str())
}

#[async_trait]
impl ProjectRepo for MemoryBackend {
    async fn create_project(&self, ctx: &Context, new: NewProject) -> Result<Project> {
        self.run(ctx, "ProjectRepo.create_project", || {
            new.validate()?;
            let call = Call::new(Operation::CreateProject, ctx.tenant_id(), &new)?;
            let scope = idempotency::scope(ctx);
            let now = self.now();
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, PermissionCode::PROJECT_CREATE, None)?;
            if let Some(id) = st.idempotency.replayed(&scope, ctx.request(), &call, now)? {
                return st.projects.project(ctx, t, ProjectId(id)).cloned();
            }
            if st
                .projects
                .projects
                .of_tenant(t)
                .any(|p| p.slug == new.slug)
            {
                return Err(Error::conflict(Entity::Project, "slug"));
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
            let event = AuditEvent::new(
                "project.created",
                "project",
                Some(project.id),
                Diff::new()
                    .set("slug", &project.slug)
                    .set("name", &project.name),
            )?;
            st.projects
                .projects
                .insert((t, project.id), project.clone());
            st.audit(ctx, t, event, now);
            st.idempotency
                .remember(scope, ctx.request(), call, project.id.0, now);
            Ok(project)
        })
    }

    async fn get_project(&self, ctx: &Context, id: ProjectId) -> Result<Project> {
        self.run(ctx, "ProjectRepo.get_project", || {
            let st = self.lock();
            let t = st.row_tenant(ctx, Entity::Project)?;
            st.projects.project(ctx, t, id).cloned()
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
                .projects
                .of_tenant(t)
                .filter(|p| ProjectsState::project_visible(ctx, p))
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
            let t = st.row_tenant(ctx, Entity::Project)?;
            let archived = st.projects.project(ctx, t, id)?.archived_at.is_some();
            st.require(ctx, t, PermissionCode::PROJECT_UPDATE, Some(id))?;
            if archived {
                return Err(Error::invalid_state(
                    Entity::Project,
                    StateRule::ProjectArchived,
                ));
            }
            let p = st
                .projects
                .projects
                .get_mut(&(t, id))
                .ok_or_else(|| Error::not_found(Entity::Project))?;
            let diff = Diff::new().change("name", &p.name, &name);
            let event = if diff.is_empty() {
                None
            } else {
                Some(AuditEvent::new(
                    "project.renamed",
                    "project",
                    Some(id),
                    diff,
                )?)
            };
            p.name = name;
            p.updated_at = now;
            let renamed = p.clone();
            if let Some(event) = event {
                st.audit(ctx, t, event, now);
            }
            Ok(renamed)
        })
    }

    async fn archive_project(&self, ctx: &Context, id: ProjectId) -> Result<Project> {
        self.run(ctx, "ProjectRepo.archive_project", || {
            let now = self.now();
            let mut st = self.lock();
            let t = st.row_tenant(ctx, Entity::Project)?;
            st.projects.project(ctx, t, id)?;
            st.require(ctx, t, PermissionCode::PROJECT_UPDATE, Some(id))?;
            let p = st
                .projects
                .projects
                .get_mut(&(t, id))
                .ok_or_else(|| Error::not_found(Entity::Project))?;
            if p.archived_at.is_some() {
                // Already archived: nothing changes, nothing is audited.
                return Ok(p.clone());
            }
            let event = AuditEvent::new("project.archived", "project", Some(id), Diff::new())?;
            p.archived_at = Some(now);
            p.updated_at = now;
            let changed = p.clone();
            st.audit(ctx, t, event, now);
            Ok(changed)
        })
    }

    async fn unarchive_project(&self, ctx: &Context, id: ProjectId) -> Result<Project> {
        self.run(ctx, "ProjectRepo.unarchive_project", || {
            let now = self.now();
            let mut st = self.lock();
            let t = st.row_tenant(ctx, Entity::Project)?;
            st.projects.project(ctx, t, id)?;
            st.require(ctx, t, PermissionCode::PROJECT_UPDATE, Some(id))?;
            let p = st
                .projects
                .projects
                .get_mut(&(t, id))
                .ok_or_else(|| Error::not_found(Entity::Project))?;
            if p.archived_at.is_none() {
                // Not archived: nothing changes, nothing is audited.
                return Ok(p.clone());
            }
            let event = AuditEvent::new("project.unarchived", "project", Some(id), Diff::new())?;
            p.archived_at = None;
            p.updated_at = now;
            let changed = p.clone();
            st.audit(ctx, t, event, now);
            Ok(changed)
        })
    }

    async fn delete_project(&self, ctx: &Context, id: ProjectId) -> Result<()> {
        self.run(ctx, "ProjectRepo.delete_project", || {
            let now = self.now();
            let mut st = self.lock();
            let t = st.row_tenant(ctx, Entity::Project)?;
            let slug = st.projects.project(ctx, t, id)?.slug.clone();
            st.require(ctx, t, PermissionCode::PROJECT_DELETE, Some(id))?;
            let event = AuditEvent::new(
                "project.deleted",
                "project",
                Some(id),
                Diff::new().set("slug", &slug),
            )?;
            st.delete_project(t, id);
            st.audit(ctx, t, event, now);
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
            let call = Call::new(
                Operation::CreateEnvironment,
                ctx.tenant_id(),
                &(project, kind),
            )?;
            let scope = idempotency::scope(ctx);
            let now = self.now();
            let mut st = self.lock();
            let t = st.row_tenant(ctx, Entity::Project)?;
            let archived = st.projects.project(ctx, t, project)?.archived_at.is_some();
            st.require(ctx, t, PermissionCode::ENVIRONMENT_MANAGE, Some(project))?;
            require_environment_creator(ctx)?;
            if let Some(id) = st.idempotency.replayed(&scope, ctx.request(), &call, now)? {
                return st.projects.environment(ctx, t, EnvironmentId(id)).cloned();
            }
            if archived {
                return Err(Error::invalid_state(
                    Entity::Project,
                    StateRule::ProjectArchived,
                ));
            }
            if st
                .projects
                .environments
                .of_tenant(t)
                .any(|e| e.project_id == project && e.kind == kind)
            {
                return Err(Error::conflict(Entity::Environment, "kind"));
            }
            let env = Environment {
                id: EnvironmentId::new(),
                tenant_id: t,
                project_id: project,
                kind,
                created_at: now,
            };
            let event = AuditEvent::new(
                "environment.created",
                "environment",
                Some(env.id),
                environment_diff(&env),
            )?;
            st.projects.environments.insert((t, env.id), env.clone());
            st.audit(ctx, t, event, now);
            st.idempotency
                .remember(scope, ctx.request(), call, env.id.0, now);
            Ok(env)
        })
    }

    async fn get_environment(&self, ctx: &Context, id: EnvironmentId) -> Result<Environment> {
        self.run(ctx, "ProjectRepo.get_environment", || {
            let st = self.lock();
            let t = st.row_tenant(ctx, Entity::Environment)?;
            st.projects.environment(ctx, t, id).cloned()
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
                return Err(Error::not_found(Entity::Project));
            }
            st.projects.project(ctx, t, project)?;
            let mut out: Vec<Environment> = st
                .projects
                .environments
                .of_tenant(t)
                .filter(|e| e.project_id == project)
                .filter(|e| ProjectsState::environment_visible(ctx, e))
                .cloned()
                .collect();
            out.sort_by_key(|e| e.kind);
            Ok(out)
        })
    }

    async fn delete_environment(&self, ctx: &Context, id: EnvironmentId) -> Result<()> {
        self.run(ctx, "ProjectRepo.delete_environment", || {
            let now = self.now();
            let mut st = self.lock();
            let t = st.row_tenant(ctx, Entity::Environment)?;
            let env = st.projects.environment(ctx, t, id)?;
            let event = AuditEvent::new(
                "environment.deleted",
                "environment",
                Some(id),
                environment_diff(env),
            )?;
            st.require(
                ctx,
                t,
                PermissionCode::ENVIRONMENT_MANAGE,
                Some(env.project_id),
            )?;
            st.delete_environment(t, id);
            st.audit(ctx, t, event, now);
            Ok(())
        })
    }
}
