//! What every module asks before touching rows: can the caller see the
//! tenant (`NotFound` otherwise, as RLS would hide it), and does it hold
//! the permission (`PermissionDenied`) — the memory side of the Postgres
//! crate's `guard.rs`.
//!
//! Rule guarded here: visibility is what RLS gives (a member sees its
//! tenants, a key its own tenant, the system every existing one), and the
//! permission rule is core's pure evaluator (`UserFacts::allows`,
//! `api_key_allows`) over the tenancy's memberships and grants; nothing
//! here re-decides it.

use super::State;
use insightpulse_core::tenancy::api_key_allows;
use insightpulse_core::{Context, Entity, Error, PermissionCode, Principal, ProjectId, Result};
use insightpulse_core::{TenantId, UserId};

impl State {
    /// Whether the principal can see tenant `t` (it must exist).
    pub fn tenant_visible(&self, ctx: &Context, t: TenantId) -> bool {
        if !self.tenancy.tenants.contains_key(&t) {
            return false;
        }
        match ctx.principal() {
            Principal::System { .. } => true,
            Principal::User(u) => self.tenancy.is_active_member(t, *u),
            Principal::ApiKey(k) => k.tenant_id == t,
        }
    }

    /// The context's tenant if visible; `Validation{context}` without one,
    /// `NotFound{tenant}` when it cannot be seen.
    pub fn visible_tenant(&self, ctx: &Context) -> Result<TenantId> {
        let t = ctx.require_tenant()?;
        if self.tenant_visible(ctx, t) {
            Ok(t)
        } else {
            Err(Error::not_found(Entity::Tenant))
        }
    }

    /// For a call that names one row by id: the context's tenant if
    /// visible, `NotFound{entity}` (the row's) when it cannot be seen — as
    /// RLS answers, the caller learns that the row is not there and nothing
    /// about the tenant.
    pub fn row_tenant(&self, ctx: &Context, entity: Entity) -> Result<TenantId> {
        let t = ctx.require_tenant()?;
        if self.tenant_visible(ctx, t) {
            Ok(t)
        } else {
            Err(Error::not_found(entity))
        }
    }

    /// For lists: the context's tenant if visible, `None` (an empty list)
    /// when it cannot be seen — what RLS gives.
    pub fn list_tenant(&self, ctx: &Context) -> Result<Option<TenantId>> {
        let t = ctx.require_tenant()?;
        Ok(self.tenant_visible(ctx, t).then_some(t))
    }

    /// Whether the actor counts as an owner of `t` (the system does).
    pub fn actor_is_owner(&self, ctx: &Context, t: TenantId) -> bool {
        match ctx.principal() {
            Principal::System { .. } => true,
            Principal::User(u) => self.tenancy.is_active_owner(t, *u),
            Principal::ApiKey(_) => false,
        }
    }

    /// Whether the principal may see user `target` (see behaviour.md).
    pub fn user_visible(&self, ctx: &Context, target: UserId) -> bool {
        let tenancy = &self.tenancy;
        if !tenancy.users.contains_key(&target) {
            return false;
        }
        match ctx.principal() {
            Principal::System { .. } => true,
            Principal::User(me) => {
                *me == target
                    || tenancy
                        .tenants_of_user(target)
                        .any(|t| tenancy.is_active_member(t, *me))
            }
            Principal::ApiKey(k) => {
                tenancy.tenants.contains_key(&k.tenant_id)
                    && tenancy.memberships.contains_key(&(k.tenant_id, target))
            }
        }
    }

    /// Whether the principal holds `code` in `t` at level `project`, through
    /// core's pure evaluator.
    pub fn allows(
        &self,
        ctx: &Context,
        t: TenantId,
        code: &PermissionCode,
        project: Option<ProjectId>,
    ) -> bool {
        match ctx.principal() {
            Principal::System { .. } => true,
            Principal::User(u) => self.tenancy.user_facts(t, *u).allows(code, project),
            // The key's claims are not trusted to keep its tenant alive.
            Principal::ApiKey(k) => {
                k.tenant_id == t
                    && self.tenancy.tenants.contains_key(&t)
                    && api_key_allows(k, code, project)
            }
        }
    }

    /// `PermissionDenied{code}` unless [`Self::allows`].
    pub fn require(
        &self,
        ctx: &Context,
        t: TenantId,
        code: PermissionCode,
        project: Option<ProjectId>,
    ) -> Result<()> {
        if self.allows(ctx, t, &code, project) {
            Ok(())
        } else {
            Err(Error::denied(code))
        }
    }
}
