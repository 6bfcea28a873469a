//! Projects & environments on PostgreSQL (core module
//! [`insightpulse_core::projects`]). Visibility, including an API key's
//! project and environment scope, is decided by the RLS policies of
//! `migrations/*_projects.sql`. Every change is audited in its own
//! transaction (`project.created` … `environment.deleted`).

use crate::error::{db, not_found, Constraints};
use crate::guard::require;
use crate::idempotency::claim;
use crate::rows::{parse, row, sql};
use crate::uow::traced;
use crate::uow::{uuid_literal, Prepared, Tx};
use crate::PgBackend;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insightpulse_core::audit::{AuditEvent, Diff};
use insightpulse_core::idempotency::{Call, Operation};
use insightpulse_core::projects::{
    require_environment_creator, Environment, EnvironmentKind, NewProject, Project, ProjectRepo,
};
use insightpulse_core::{
    Context, Entity, EnvironmentId, Error, Name, PermissionCode, ProjectId, Result, Slug,
    StateRule, TenantId,
};
use uuid::Uuid;

/// What this module's constraints mean to a caller (see [`crate::error`]).
pub(crate) const CONSTRAINTS: Constraints = Constraints {
    unique: &[
        ("projects_tenant_slug_key", Entity::Project, "slug"),
        ("environments_project_kind_key", Entity::Environment, "kind"),
    ],
    references: &[
        ("project_id", Entity::Project),
        ("environment_id", Entity::Environment),
    ],
    states: &[],
};

row! {
    pub(crate) struct Row {
        tenant_id: Uuid,
        id: Uuid,
        slug: String,
        name: String,
        description: Option<String>,
        archived_at: Option<DateTime<Utc>>,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    }
}

const GET_PROJECT: Prepared = Prepared {
    name: "insightpulse_get_project",
    params: "(uuid, uuid)",
    sql: sql!(
        "SELECT ",
        Row::COLUMNS,
        " FROM projects WHERE tenant_id = $1 AND id = $2"
    ),
};
const LIST_PROJECTS: Prepared = Prepared {
    name: "insightpulse_list_projects",
    params: "(uuid, boolean)",
    sql: sql!(
        "SELECT ",
        Row::COLUMNS,
        " FROM projects WHERE tenant_id = $1 AND ($2 OR archived_at IS NULL) ORDER BY slug COLLATE \"C\""
    ),
};

impl TryFrom<Row> for Project {
    type Error = Error;
    fn try_from(r: Row) -> Result<Self> {
        Ok(Project {
            id: ProjectId(r.id),
            tenant_id: TenantId(r.tenant_id),
            slug: parse(&r.slug, Slug::parse)?,
            name: parse(&r.name, Name::parse)?,
            description: r.description,
            archived_at: r.archived_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

row! {
    struct EnvRow {
        tenant_id: Uuid,
        id: Uuid,
        project_id: Uuid,
        #[sql = "kind::text"]
        kind: String,
        created_at: DateTime<Utc>,
    }
}

impl TryFrom<EnvRow> for Environment {
    type Error = Error;
    fn try_from(r: EnvRow) -> Result<Self> {
        let kind = parse(&r.kind, str::parse)?;
        Ok(Environment {
            id: EnvironmentId(r.id),
            tenant_id: TenantId(r.tenant_id),
            project_id: ProjectId(r.project_id),
            kind,
            created_at: r.created_at,
        })
    }
}

async fn project(tx: &mut Tx, tenant: TenantId, id: ProjectId) -> Result<Row> {
    tx.query_as(GET_PROJECT.sql)
        .bind(tenant.0)
        .bind(id.0)
        .fetch_one(&mut **tx)
        .await
        .map_err(not_found(Entity::Project))
}

async fn environment(tx: &mut Tx, tenant: TenantId, id: EnvironmentId) -> Result<EnvRow> {
    tx.query_as(sql!(
        "SELECT ",
        EnvRow::COLUMNS,
        " FROM environments WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant.0)
    .bind(id.0)
    .fetch_one(&mut **tx)
    .await
    .map_err(not_found(Entity::Environment))
}

impl PgBackend {
    /// Sets or clears `archived_at` (idempotently) after the permission check.
    async fn set_archived(&self, ctx: &Context, id: ProjectId, archived: bool) -> Result<Project> {
        let tenant = ctx.require_tenant()?;
        let mut tx = self.begin(ctx).await?;
        let current = project(&mut tx, tenant, id).await?;
        require(
            &mut tx,
            ctx,
            tenant,
            Some(PermissionCode::PROJECT_UPDATE),
            Some(id),
        )
        .await?;
        if current.archived_at.is_some() == archived {
            return current.try_into();
        }
        let action = if archived {
            "project.archived"
        } else {
            "project.unarchived"
        };
        let event = AuditEvent::new(action, "project", Some(id), Diff::new())?;
        let now = self.clock.now();
        let row: Row = tx.query_as(sql!(
            "UPDATE projects SET archived_at = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2 RETURNING ",
            Row::COLUMNS
        ))
        .bind(tenant.0)
        .bind(id.0)
        .bind(archived.then_some(now))
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        self.audit(&mut tx, ctx, tenant, event);
        tx.commit().await.map_err(db)?;
        row.try_into()
    }
}

/// The audit entry of an environment created or deleted.
fn environment_event(action: &str, env: &Environment) -> Result<AuditEvent> {
    let diff = Diff::new()
        .set("project_id", env.project_id)
        .set("kind", env.kind.as_str());
    AuditEvent::new(action, "environment", Some(env.id), diff)
}

#[async_trait]
impl ProjectRepo for PgBackend {
    async fn create_project(&self, ctx: &Context, new: NewProject) -> Result<Project> {
        traced!(ctx, "ProjectRepo.create_project", {
            new.validate()?;
            let tenant = ctx.require_tenant()?;
            let call = Call::new(Operation::CreateProject, Some(tenant), &new)?;
            let (id, now) = (ProjectId::new(), self.clock.now());
            let mut tx = self.begin(ctx).await?;
            require(
                &mut tx,
                ctx,
                tenant,
                Some(PermissionCode::PROJECT_CREATE),
                None,
            )
            .await?;
            if let Some(done) = claim(&mut tx, ctx, &call, id.0, now).await? {
                tx.commit().await.map_err(db)?;
                return self.get_project(ctx, ProjectId(done)).await;
            }
            let row: Row = tx.query_as(sql!(
                "INSERT INTO projects (tenant_id, id, slug, name, description, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING ",
                Row::COLUMNS
            ))
            .bind(tenant.0)
            .bind(id.0)
            .bind(new.slug.as_str())
            .bind(new.name.as_str())
            .bind(&new.description)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            let project: Project = row.try_into()?;
            let diff = Diff::new()
                .set("slug", &project.slug)
                .set("name", &project.name);
            let event = AuditEvent::new("project.created", "project", Some(id), diff)?;
            self.audit(&mut tx, ctx, tenant, event);
            tx.commit().await.map_err(db)?;
            Ok(project)
        })
    }

    async fn get_project(&self, ctx: &Context, id: ProjectId) -> Result<Project> {
        traced!(ctx, "ProjectRepo.get_project", {
            let tenant = ctx.require_tenant()?;
            let rows: Vec<Row> = self
                .read_once(
                    ctx,
                    &GET_PROJECT,
                    &[uuid_literal(tenant.0), uuid_literal(id.0)],
                )
                .await?;
            rows.into_iter()
                .next()
                .ok_or(Error::not_found(Entity::Project))?
                .try_into()
        })
    }

    async fn list_projects(&self, ctx: &Context, include_archived: bool) -> Result<Vec<Project>> {
        traced!(ctx, "ProjectRepo.list_projects", {
            let tenant = ctx.require_tenant()?;
            let rows: Vec<Row> = self
                .read_once(
                    ctx,
                    &LIST_PROJECTS,
                    &[uuid_literal(tenant.0), include_archived.to_string()],
                )
                .await?;
            rows.into_iter().map(Project::try_from).collect()
        })
    }

    async fn rename_project(&self, ctx: &Context, id: ProjectId, name: Name) -> Result<Project> {
        traced!(ctx, "ProjectRepo.rename_project", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            let current = project(&mut tx, tenant, id).await?;
            require(
                &mut tx,
                ctx,
                tenant,
                Some(PermissionCode::PROJECT_UPDATE),
                Some(id),
            )
            .await?;
            if current.archived_at.is_some() {
                return Err(Error::invalid_state(
                    Entity::Project,
                    StateRule::ProjectArchived,
                ));
            }
            let diff = Diff::new().change("name", &current.name, &name);
            let row: Row = tx.query_as(sql!(
                "UPDATE projects SET name = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2 RETURNING ",
                Row::COLUMNS
            ))
            .bind(tenant.0)
            .bind(id.0)
            .bind(name.as_str())
            .bind(self.clock.now())
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            if !diff.is_empty() {
                let event = AuditEvent::new("project.renamed", "project", Some(id), diff)?;
                self.audit(&mut tx, ctx, tenant, event);
            }
            tx.commit().await.map_err(db)?;
            row.try_into()
        })
    }

    async fn archive_project(&self, ctx: &Context, id: ProjectId) -> Result<Project> {
        traced!(ctx, "ProjectRepo.archive_project", {
            self.set_archived(ctx, id, true).await
        })
    }

    async fn unarchive_project(&self, ctx: &Context, id: ProjectId) -> Result<Project> {
        traced!(ctx, "ProjectRepo.unarchive_project", {
            self.set_archived(ctx, id, false).await
        })
    }

    async fn delete_project(&self, ctx: &Context, id: ProjectId) -> Result<()> {
        traced!(ctx, "ProjectRepo.delete_project", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            let current = project(&mut tx, tenant, id).await?;
            require(
                &mut tx,
                ctx,
                tenant,
                Some(PermissionCode::PROJECT_DELETE),
                Some(id),
            )
            .await?;
            let diff = Diff::new().set("slug", &current.slug);
            let event = AuditEvent::new("project.deleted", "project", Some(id), diff)?;
            // Environments, project grants and scoped keys go with it (ON DELETE CASCADE).
            tx.query("DELETE FROM projects WHERE tenant_id = $1 AND id = $2")
                .bind(tenant.0)
                .bind(id.0)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            self.audit(&mut tx, ctx, tenant, event);
            tx.commit().await.map_err(db)
        })
    }

    async fn create_environment(
        &self,
        ctx: &Context,
        id: ProjectId,
        kind: EnvironmentKind,
    ) -> Result<Environment> {
        traced!(ctx, "ProjectRepo.create_environment", {
            let tenant = ctx.require_tenant()?;
            let call = Call::new(Operation::CreateEnvironment, Some(tenant), &(id, kind))?;
            let (env_id, now) = (EnvironmentId::new(), self.clock.now());
            let mut tx = self.begin(ctx).await?;
            let current = project(&mut tx, tenant, id).await?;
            require(
                &mut tx,
                ctx,
                tenant,
                Some(PermissionCode::ENVIRONMENT_MANAGE),
                Some(id),
            )
            .await?;
            require_environment_creator(ctx)?;
            if let Some(done) = claim(&mut tx, ctx, &call, env_id.0, now).await? {
                tx.commit().await.map_err(db)?;
                return self.get_environment(ctx, EnvironmentId(done)).await;
            }
            if current.archived_at.is_some() {
                return Err(Error::invalid_state(
                    Entity::Project,
                    StateRule::ProjectArchived,
                ));
            }
            let row: EnvRow = tx
                .query_as(sql!(
                    "WITH r AS (INSERT INTO environments (tenant_id, id, project_id, kind, created_at)
                                VALUES ($1, $2, $3, $4::environment_kind, $5) RETURNING ",
                    EnvRow::FIELDS,
                    ") SELECT ",
                    EnvRow::COLUMNS,
                    " FROM r"
                ))
                .bind(tenant.0)
                .bind(env_id.0)
                .bind(id.0)
                .bind(kind.as_str())
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
            let env: Environment = row.try_into()?;
            self.audit(
                &mut tx,
                ctx,
                tenant,
                environment_event("environment.created", &env)?,
            );
            tx.commit().await.map_err(db)?;
            Ok(env)
        })
    }

    async fn get_environment(&self, ctx: &Context, id: EnvironmentId) -> Result<Environment> {
        traced!(ctx, "ProjectRepo.get_environment", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            let row = environment(&mut tx, tenant, id).await?;
            tx.commit().await.map_err(db)?;
            row.try_into()
        })
    }

    async fn list_environments(&self, ctx: &Context, id: ProjectId) -> Result<Vec<Environment>> {
        traced!(ctx, "ProjectRepo.list_environments", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            project(&mut tx, tenant, id).await?;
            let rows: Vec<EnvRow> = tx.query_as(sql!(
                "SELECT ",
                EnvRow::COLUMNS,
                " FROM environments WHERE tenant_id = $1 AND project_id = $2 ORDER BY environments.kind"
            ))
            .bind(tenant.0)
            .bind(id.0)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
            tx.commit().await.map_err(db)?;
            rows.into_iter().map(Environment::try_from).collect()
        })
    }

    async fn delete_environment(&self, ctx: &Context, id: EnvironmentId) -> Result<()> {
        traced!(ctx, "ProjectRepo.delete_environment", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            let env: Environment = environment(&mut tx, tenant, id).await?.try_into()?;
            require(
                &mut tx,
                ctx,
                tenant,
                Some(PermissionCode::ENVIRONMENT_MANAGE),
                Some(env.project_id),
            )
            .await?;
            let event = environment_event("environment.deleted", &env)?;
            tx.query("DELETE FROM environments WHERE tenant_id = $1 AND id = $2")
                .bind(tenant.0)
                .bind(id.0)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            self.audit(&mut tx, ctx, tenant, event);
            tx.commit().await.map_err(db)
        })
    }
}
