//! SSO providers and federated identities.

use super::super::{MemoryBackend, TenantRows};
use super::TenancyState;
use async_trait::async_trait;
use insightpulse_core::audit::{AuditEvent, Diff};
use insightpulse_core::tenancy::{
    identity_subject, Identity, NewSsoProvider, SsoConfig, SsoProvider, SsoRepo, User,
};
use insightpulse_core::{
    Context, Entity, Error, IdentityId, PermissionCode, Result, SsoProviderId, StateRule, TenantId,
    UserId,
};

impl TenancyState {
    fn provider(&self, t: TenantId, id: SsoProviderId) -> Result<&SsoProvider> {
        self.providers
            .get(&(t, id))
            .ok_or_else(|| Error::not_found(Entity::SsoProvider))
    }
}

#[async_trait]
impl SsoRepo for MemoryBackend {
    async fn create_provider(&self, ctx: &Context, new: NewSsoProvider) -> Result<SsoProvider> {
        self.run(ctx, "SsoRepo.create_provider", || {
            new.config.validate()?;
            let now = self.now();
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, PermissionCode::SSO_MANAGE, None)?;
            if st
                .tenancy
                .providers
                .of_tenant(t)
                .any(|p| p.name == new.name)
            {
                return Err(Error::conflict(Entity::SsoProvider, "name"));
            }
            let provider = SsoProvider {
                id: SsoProviderId::new(),
                tenant_id: t,
                name: new.name,
                config: new.config,
                enabled: true,
                created_at: now,
                updated_at: now,
            };
            let event = AuditEvent::new(
                "sso_provider.created",
                "sso_provider",
                Some(provider.id),
                Diff::new()
                    .set("name", &provider.name)
                    .set("kind", provider.config.kind())
                    .set("enabled", provider.enabled),
            )?;
            st.tenancy
                .providers
                .insert((t, provider.id), provider.clone());
            st.audit(ctx, t, event, now);
            Ok(provider)
        })
    }

    async fn list_providers(&self, ctx: &Context) -> Result<Vec<SsoProvider>> {
        self.run(ctx, "SsoRepo.list_providers", || {
            let st = self.lock();
            let Some(t) = st.list_tenant(ctx)? else {
                return Ok(Vec::new());
            };
            st.require(ctx, t, PermissionCode::SSO_MANAGE, None)?;
            let mut out: Vec<SsoProvider> = st.tenancy.providers.of_tenant(t).cloned().collect();
            out.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
            Ok(out)
        })
    }

    async fn update_provider(
        &self,
        ctx: &Context,
        id: SsoProviderId,
        config: Option<SsoConfig>,
        enabled: Option<bool>,
    ) -> Result<SsoProvider> {
        self.run(ctx, "SsoRepo.update_provider", || {
            if let Some(c) = &config {
                c.validate()?;
            }
            let now = self.now();
            let mut st = self.lock();
            let t = st.row_tenant(ctx, Entity::SsoProvider)?;
            st.require(ctx, t, PermissionCode::SSO_MANAGE, None)?;
            let p = st
                .tenancy
                .providers
                .get_mut(&(t, id))
                .ok_or_else(|| Error::not_found(Entity::SsoProvider))?;
            // The config itself may hold key material: only whether it
            // changed is recorded.
            let event = AuditEvent::new(
                "sso_provider.updated",
                "sso_provider",
                Some(id),
                Diff::new()
                    .change("enabled", p.enabled, enabled.unwrap_or(p.enabled))
                    .set("config_changed", config.is_some()),
            )?;
            if let Some(c) = config {
                p.config = c;
            }
            if let Some(e) = enabled {
                p.enabled = e;
            }
            p.updated_at = now;
            let updated = p.clone();
            st.audit(ctx, t, event, now);
            Ok(updated)
        })
    }

    async fn delete_provider(&self, ctx: &Context, id: SsoProviderId) -> Result<()> {
        self.run(ctx, "SsoRepo.delete_provider", || {
            let now = self.now();
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, PermissionCode::SSO_MANAGE, None)?;
            let name = st.tenancy.provider(t, id)?.name.clone();
            let event = AuditEvent::new(
                "sso_provider.deleted",
                "sso_provider",
                Some(id),
                Diff::new().set("name", name),
            )?;
            st.tenancy.delete_provider(t, id);
            st.audit(ctx, t, event, now);
            Ok(())
        })
    }

    async fn link_identity(
        &self,
        ctx: &Context,
        provider: SsoProviderId,
        subject: &str,
        user: UserId,
    ) -> Result<Identity> {
        self.run(ctx, "SsoRepo.link_identity", || {
            let subject = identity_subject(subject)?;
            let now = self.now();
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, PermissionCode::SSO_MANAGE, None)?;
            st.tenancy.provider(t, provider)?;
            // PostgreSQL's order: the unique subject is checked as the row
            // is inserted, the membership (a foreign key) after it.
            if st
                .tenancy
                .identities
                .of_tenant(t)
                .any(|i| i.provider_id == provider && i.subject == subject)
            {
                return Err(Error::conflict(Entity::Identity, "subject"));
            }
            if !st.tenancy.memberships.contains_key(&(t, user)) {
                return Err(Error::not_found(Entity::Member));
            }
            let identity = Identity {
                id: IdentityId::new(),
                tenant_id: t,
                provider_id: provider,
                subject: subject.to_owned(),
                user_id: user,
                created_at: now,
            };
            let event = AuditEvent::new(
                "identity.linked",
                "identity",
                Some(identity.id),
                Diff::new()
                    .set("provider_id", provider)
                    .set("user_id", user),
            )?;
            st.tenancy
                .identities
                .insert((t, identity.id), identity.clone());
            st.audit(ctx, t, event, now);
            Ok(identity)
        })
    }

    async fn find_user_by_identity(
        &self,
        ctx: &Context,
        provider: SsoProviderId,
        subject: &str,
    ) -> Result<Option<User>> {
        self.run(ctx, "SsoRepo.find_user_by_identity", || {
            let st = self.lock();
            let t = st.row_tenant(ctx, Entity::SsoProvider)?;
            st.require(ctx, t, PermissionCode::SSO_MANAGE, None)?;
            if !st.tenancy.provider(t, provider)?.enabled {
                return Err(Error::invalid_state(
                    Entity::SsoProvider,
                    StateRule::ProviderDisabled,
                ));
            }
            // Nothing but a valid subject is ever stored.
            let Ok(subject) = identity_subject(subject) else {
                return Ok(None);
            };
            let user = st
                .tenancy
                .identities
                .of_tenant(t)
                .find(|i| i.provider_id == provider && i.subject == subject)
                .and_then(|i| st.tenancy.users.get(&i.user_id))
                .map(|u| u.user.clone());
            Ok(user)
        })
    }

    async fn list_identities(&self, ctx: &Context, user: UserId) -> Result<Vec<Identity>> {
        self.run(ctx, "SsoRepo.list_identities", || {
            let st = self.lock();
            let Some(t) = st.list_tenant(ctx)? else {
                return Ok(Vec::new());
            };
            if ctx.user_id() != Some(user) {
                st.require(ctx, t, PermissionCode::SSO_MANAGE, None)?;
            }
            let mut out: Vec<Identity> = st
                .tenancy
                .identities
                .of_tenant(t)
                .filter(|i| i.user_id == user)
                .cloned()
                .collect();
            out.sort_by_key(|i| (i.created_at, i.id));
            Ok(out)
        })
    }

    async fn unlink_identity(&self, ctx: &Context, id: IdentityId) -> Result<()> {
        self.run(ctx, "SsoRepo.unlink_identity", || {
            let now = self.now();
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, PermissionCode::SSO_MANAGE, None)?;
            if !st.tenancy.identities.contains_key(&(t, id)) {
                return Err(Error::not_found(Entity::Identity));
            }
            let event = AuditEvent::new("identity.unlinked", "identity", Some(id), Diff::new())?;
            st.tenancy.identities.remove(&(t, id));
            st.audit(ctx, t, event, now);
            Ok(())
        })
    }
}
