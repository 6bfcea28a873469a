//! What every module asks before touching rows: can the caller see the
//! tenant (`NotFound` otherwise, as RLS would hide it), and does it hold
//! the permission (`PermissionDenied`).
//!
//! The permission rule itself lives in SQL (`insightpulse_auth.user_has_permission`,
//! over the grants the database derives once per unit of work, migration
//! 0008) and in core's pure evaluator; this module only asks the database and
//! turns the answer into the error both backends give.

use crate::error::db;
use crate::rows::parse;
use crate::uow::Tx;
use insightpulse_core::{Context, Entity, Error, PermissionCode, ProjectId, Result, TenantId};

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
