//! Tenants: create with the first owner, read, update, delete.

use super::super::MemoryBackend;
use async_trait::async_trait;
use insightpulse_core::audit::{AuditEvent, Diff};
use insightpulse_core::idempotency::{self, Call, Operation};
use insightpulse_core::tenancy::catalog::ADMIN_ROLE;
use insightpulse_core::tenancy::{
    Membership, MembershipStatus, NewTenant, RoleGrant, RoleScope, Tenant, TenantRepo, TenantUpdate,
};
use insightpulse_core::values::canonical_json;
use insightpulse_core::{
    Context, Entity, Error, PermissionCode, Requirement, Result, RoleGrantId, Slug, TenantId,
    UserId,
};

impl super::super::State {
    /// The seed's "Create First Tenant", in one mutation: the tenant, its
    /// creator's active owner membership and tenant-wide `Admin` grant, and
    /// the `tenant.created` entry (acted by `ctx`). `Conflict` on a taken slug.
    pub(super) fn create_tenant_owned_by(
        &mut self,
        ctx: &Context,
        user: UserId,
        new: NewTenant,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Tenant> {
        // PostgreSQL's order: the slug is checked as the tenant row goes
        // in, the owner (the membership's foreign key) after it.
        if self.tenancy.tenant_by_slug.contains_key(&new.slug) {
            return Err(Error::conflict(Entity::Tenant, "slug"));
        }
        if !self.tenancy.users.contains_key(&user) {
            return Err(Error::not_found(Entity::User));
        }
        let admin = self
            .tenancy
            .builtin_roles
            .values()
            .find(|r| r.name.as_str() == ADMIN_ROLE && r.scope == RoleScope::Org)
            .map(|r| r.id)
            .ok_or_else(|| Error::not_found(Entity::Role))?;
        let tenant = Tenant {
            id: TenantId::new(),
            slug: new.slug,
            name: new.name,
            timezone: new.timezone,
            settings: serde_json::json!({}),
            created_at: now,
            updated_at: now,
        };
        let event = AuditEvent::new(
            "tenant.created",
            "tenant",
            Some(tenant.id),
            Diff::new()
                .set("slug", &tenant.slug)
                .set("name", &tenant.name),
        )?;
        self.tenancy.insert_tenant(tenant.clone());
        self.audit(ctx, tenant.id, event, now);
        self.tenancy.insert_membership(Membership {
            tenant_id: tenant.id,
            user_id: user,
            is_owner: true,
            status: MembershipStatus::Active,
            created_at: now,
        });
        let grant = RoleGrant {
            id: RoleGrantId::new(),
            tenant_id: tenant.id,
            user_id: user,
            role_id: admin,
            project_id: None,
            granted_by: Some(user),
            created_at: now,
        };
        self.tenancy.grants.insert((tenant.id, grant.id), grant);
        Ok(tenant)
    }
}

#[async_trait]
impl TenantRepo for MemoryBackend {
    async fn create_tenant(&self, ctx: &Context, new: NewTenant) -> Result<Tenant> {
        self.run(ctx, "TenantRepo.create_tenant", || {
            let user = ctx.require_user()?;
            let call = Call::new(Operation::CreateTenant, None, &new)?;
            let scope = idempotency::scope(ctx);
            let now = self.now();
            let mut st = self.lock();
            if let Some(id) = st.idempotency.replayed(&scope, ctx.request(), &call, now)? {
                let id = TenantId(id);
                return st
                    .tenancy
                    .tenants
                    .get(&id)
                    .filter(|_| st.tenant_visible(ctx, id))
                    .cloned()
                    .ok_or_else(|| Error::not_found(Entity::Tenant));
            }
            let tenant = st.create_tenant_owned_by(ctx, user, new, now)?;
            st.idempotency
                .remember(scope, ctx.request(), call, tenant.id.0, now);
            Ok(tenant)
        })
    }

    async fn get_tenant(&self, ctx: &Context, id: TenantId) -> Result<Tenant> {
        self.run(ctx, "TenantRepo.get_tenant", || {
            let st = self.lock();
            if st.tenant_visible(ctx, id) {
                Ok(st.tenancy.tenants[&id].clone())
            } else {
                Err(Error::not_found(Entity::Tenant))
            }
        })
    }

    async fn get_tenant_by_slug(&self, ctx: &Context, slug: &Slug) -> Result<Tenant> {
        self.run(ctx, "TenantRepo.get_tenant_by_slug", || {
            let st = self.lock();
            st.tenancy
                .tenant_by_slug
                .get(slug)
                .filter(|t| st.tenant_visible(ctx, **t))
                .map(|t| st.tenancy.tenants[t].clone())
                .ok_or_else(|| Error::not_found(Entity::Tenant))
        })
    }

    async fn list_my_tenants(&self, ctx: &Context) -> Result<Vec<Tenant>> {
        self.run(ctx, "TenantRepo.list_my_tenants", || {
            let user = ctx.require_user()?;
            let st = self.lock();
            let mut out: Vec<Tenant> = st
                .tenancy
                .tenants_of_user(user)
                .filter(|t| st.tenancy.is_active_member(*t, user))
                .filter_map(|t| st.tenancy.tenants.get(&t).cloned())
                .collect();
            out.sort_by(|a, b| a.slug.as_str().cmp(b.slug.as_str()));
            Ok(out)
        })
    }

    async fn update_tenant(&self, ctx: &Context, update: TenantUpdate) -> Result<Tenant> {
        self.run(ctx, "TenantRepo.update_tenant", || {
            update.validate()?;
            let now = self.now();
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, PermissionCode::TENANT_MANAGE, None)?;
            let tenant = st
                .tenancy
                .tenants
                .get_mut(&t)
                .ok_or_else(|| Error::not_found(Entity::Tenant))?;
            let mut diff = Diff::new();
            if let Some(name) = &update.name {
                diff = diff.change("name", &tenant.name, name);
            }
            if let Some(tz) = &update.timezone {
                diff = diff.change("timezone", &tenant.timezone, tz);
            }
            // Compared as PostgreSQL's jsonb column would hold them, so
            // `1e16` against a stored `10000000000000000` is no change.
            let settings = update.settings.map(canonical_json);
            if let Some(settings) = &settings {
                diff = diff.change("settings", &tenant.settings, settings);
            }
            // Written even when nothing differs: the update was made.
            let event = AuditEvent::new("tenant.updated", "tenant", Some(t), diff)?;
            if let Some(name) = update.name {
                tenant.name = name;
            }
            if let Some(tz) = update.timezone {
                tenant.timezone = tz;
            }
            if let Some(settings) = settings {
                tenant.settings = settings;
            }
            tenant.updated_at = now;
            let updated = tenant.clone();
            st.audit(ctx, t, event, now);
            Ok(updated)
        })
    }

    async fn delete_tenant(&self, ctx: &Context) -> Result<()> {
        self.run(ctx, "TenantRepo.delete_tenant", || {
            let now = self.now();
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            if !st.actor_is_owner(ctx, t) {
                return Err(Error::denied(Requirement::TenantOwner));
            }
            let slug = st.tenancy.tenants.get(&t).map(|x| x.slug.clone());
            let event = AuditEvent::new(
                "tenant.deleted",
                "tenant",
                Some(t),
                Diff::new().set("slug", slug),
            )?;
            // The chain is kept by delete_tenant: the entry outlives the tenant.
            st.delete_tenant(t);
            st.audit(ctx, t, event, now);
            Ok(())
        })
    }
}
