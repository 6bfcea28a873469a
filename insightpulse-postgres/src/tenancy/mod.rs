//! Tenancy & identity on PostgreSQL (core module [`insightpulse_core::tenancy`]).
//!
//! The permission rule itself lives in SQL (`insightpulse_auth.user_has_permission`) and
//! in core's pure evaluator; this module only asks the database and turns
//! the answer into `NotFound` (tenant not visible) or `PermissionDenied`
//! (visible, permission missing), so both backends answer alike.

mod api_keys;
mod auth;
mod members;
mod rbac;
mod sso;
mod teams;
mod tenants;
mod users;

use crate::error::db;
use crate::uow::Tx;
use insightpulse_core::{Context, Entity, Error, PermissionCode, ProjectId, Result, TenantId};

/// Opens an instrumented block: the future runs inside the operation's span.
macro_rules! traced {
    ($ctx:expr, $op:literal, $body:block) => {{
        use tracing::Instrument as _;
        let span = $crate::uow::span($ctx, $op);
        async move $body.instrument(span).await
    }};
}
pub(crate) use traced;

/// Refuses unless `ctx` can see `tenant` (`NotFound`) and, when `code` is
/// given, holds it at `project` (`PermissionDenied`). The system sees every
/// existing tenant and holds every permission.
pub(crate) async fn require(
    tx: &mut Tx,
    ctx: &Context,
    tenant: TenantId,
    code: Option<PermissionCode>,
    project: Option<ProjectId>,
) -> Result<()> {
    let (visible, allowed): (bool, bool) = if ctx.is_system() {
        let exists = tx
            .query_scalar("SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1)")
            .bind(tenant.0)
            .fetch_one(&mut **tx)
            .await
            .map_err(db)?;
        (exists, true)
    } else {
        tx.query_as(
            "SELECT $1 = ANY (insightpulse_auth.user_tenant_ids()),
                    $2::text IS NULL OR insightpulse_auth.user_has_permission($2, $1, $3)",
        )
        .bind(tenant.0)
        .bind(code.map(|c| c.as_str()))
        .bind(project.map(|p| p.0))
        .fetch_one(&mut **tx)
        .await
        .map_err(db)?
    };
    match (visible, allowed, code) {
        (false, _, _) => Err(Error::not_found(Entity::Tenant)),
        (true, false, Some(code)) => Err(Error::denied(code)),
        _ => Ok(()),
    }
}

/// [`require`] for a call that names one row by id: a tenant the caller
/// cannot see hides its rows, so the answer is `NotFound` of the row's
/// `entity`, as RLS would give, and says nothing about the tenant.
pub(crate) async fn require_row(
    tx: &mut Tx,
    ctx: &Context,
    tenant: TenantId,
    code: Option<PermissionCode>,
    entity: Entity,
) -> Result<()> {
    match require(tx, ctx, tenant, code, None).await {
        Err(Error::NotFound { .. }) => Err(Error::not_found(entity)),
        other => other,
    }
}

/// Like [`require`], for a list: a tenant the principal cannot see lists
/// as empty (`Ok(false)`), exactly as RLS shows it; a missing permission is
/// still `PermissionDenied`.
pub(crate) async fn may_list(
    tx: &mut Tx,
    ctx: &Context,
    tenant: TenantId,
    code: PermissionCode,
) -> Result<bool> {
    match require(tx, ctx, tenant, Some(code), None).await {
        Ok(()) => Ok(true),
        Err(Error::NotFound {
            entity: Entity::Tenant,
        }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The first of `codes` (in their order) that `ctx` does not hold at
/// `project`, if any.
pub(crate) async fn first_missing(
    tx: &mut Tx,
    ctx: &Context,
    tenant: TenantId,
    codes: &[PermissionCode],
    project: Option<ProjectId>,
) -> Result<Option<PermissionCode>> {
    if ctx.is_system() {
        return Ok(None);
    }
    let codes: Vec<&str> = codes.iter().map(PermissionCode::as_str).collect();
    let missing: Option<String> = tx
        .query_scalar(
            "SELECT c FROM unnest($1::text[]) WITH ORDINALITY AS asked (c, n)
          WHERE NOT insightpulse_auth.user_has_permission(c, $2, $3) ORDER BY n LIMIT 1",
        )
        .bind(codes)
        .bind(tenant.0)
        .bind(project.map(|p| p.0))
        .fetch_optional(&mut **tx)
        .await
        .map_err(db)?;
    missing
        .map(|c| parse(&c, PermissionCode::parse))
        .transpose()
}

/// Whether the acting principal is an active owner of `tenant` (the system
/// counts as one).
pub(crate) async fn is_owner(tx: &mut Tx, ctx: &Context, tenant: TenantId) -> Result<bool> {
    if ctx.is_system() {
        return Ok(true);
    }
    tx.query_scalar("SELECT insightpulse_auth.is_tenant_owner($1)")
        .bind(tenant.0)
        .fetch_one(&mut **tx)
        .await
        .map_err(db)
}

/// Deletes the row `(tenant, id)` of `table`, or `NotFound { entity }`.
pub(crate) async fn delete_one(
    tx: &mut Tx,
    table: &'static str,
    tenant: TenantId,
    id: uuid::Uuid,
    entity: Entity,
) -> Result<()> {
    let deleted = tx
        .query(&format!(
            "DELETE FROM {table} WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant.0)
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    if deleted.rows_affected() == 0 {
        return Err(Error::not_found(entity));
    }
    Ok(())
}

/// The rows `sql` selects with the tenant bound as `$1`.
pub(crate) async fn tenant_rows<R>(tx: &mut Tx, sql: &str, tenant: TenantId) -> Result<Vec<R>>
where
    R: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    tx.query_as(sql)
        .bind(tenant.0)
        .fetch_all(&mut **tx)
        .await
        .map_err(db)
}

/// Parses a stored value with a core value type's parser.
pub(crate) fn parse<T>(s: &str, f: impl Fn(&str) -> Result<T>) -> Result<T> {
    f(s).map_err(crate::error::corrupt)
}
