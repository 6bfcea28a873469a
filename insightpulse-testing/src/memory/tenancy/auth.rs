//! Sign-up, sign-in and API-key authentication in memory: the calls a host
//! makes before it has a context. Argon2 runs without the state's lock.

use super::super::{hash_password, verify_password, MemoryBackend, State};
use super::UserRow;
use async_trait::async_trait;
use insightpulse_core::audit::{Actor, AuditEvent, Diff};
use insightpulse_core::idempotency::{self, Call, Operation};
use insightpulse_core::tenancy::tokens::{last_use_due, prefix_of, usable, TokenKind};
use insightpulse_core::tenancy::{AuthRepo, SignUp, SignedIn, SignedUp, User};
use insightpulse_core::{
    ApiKeyPrincipal, Context, Credential, Email, Entity, Error, ExposeSecret, Rejection,
    RequestMeta, Result, SecretString, TenantId, UserId,
};

/// An earlier sign-up under the same key: its tenant, and the account now
/// holding the email with its password hash.
type Earlier = (TenantId, Option<UserId>, Option<String>);

impl MemoryBackend {
    /// Replays an earlier sign-up for whoever knows its password; anyone
    /// else finds the email taken.
    async fn replay_sign_up(
        &self,
        (tenant, user, stored): Earlier,
        password: &SecretString,
        request: &RequestMeta,
    ) -> Result<SignedUp> {
        match user {
            Some(user) if verify_password(password, stored, self.password_cost).await? => {
                self.signed_up(user, tenant, request.clone())
            }
            _ => Err(Error::conflict(Entity::User, "email")),
        }
    }

    /// What a sign-up made, as the rows are now.
    fn signed_up(&self, user: UserId, tenant: TenantId, request: RequestMeta) -> Result<SignedUp> {
        let st = self.lock();
        let user_row = st
            .tenancy
            .users
            .get(&user)
            .ok_or_else(|| Error::not_found(Entity::User))?;
        let tenant_row = st
            .tenancy
            .tenants
            .get(&tenant)
            .ok_or_else(|| Error::not_found(Entity::Tenant))?;
        let membership = st
            .tenancy
            .memberships
            .get(&(tenant, user))
            .ok_or_else(|| Error::not_found(Entity::Member))?;
        Ok(SignedUp {
            user: user_row.user.clone(),
            tenant: tenant_row.clone(),
            membership: membership.m.clone(),
            ctx: Context::user(user).in_tenant(tenant).with_request(request),
        })
    }
}

#[async_trait]
impl AuthRepo for MemoryBackend {
    async fn sign_up(&self, request: RequestMeta, new: SignUp) -> Result<SignedUp> {
        let ctx = Context::system("sign-up").with_request(request.clone());
        self.run_async(&ctx, "AuthRepo.sign_up", async {
            let call = Call::new(
                Operation::SignUp,
                None,
                &(&new.email, &new.full_name, &new.tenant),
            )?;
            let scope = idempotency::sign_up_scope(&new.email);
            // What an earlier sign-up under the key made, with the account's
            // password hash to check this caller against.
            let earlier = |st: &State| -> Result<Option<Earlier>> {
                Ok(st
                    .idempotency
                    .replayed(&scope, &request, &call, self.now())?
                    .map(|tenant| {
                        let user = st.tenancy.user_by_email.get(&new.email).copied();
                        let stored = user.and_then(|u| st.tenancy.users[&u].password_hash.clone());
                        (TenantId(tenant), user, stored)
                    }))
            };
            let replay = earlier(&self.lock())?;
            if let Some(earlier) = replay {
                return self.replay_sign_up(earlier, &new.password, &request).await;
            }
            let phc = hash_password(&new.password, self.password_cost).await?;
            let now = self.now();
            // A racing sign-up with the key may have finished while argon2
            // ran without the lock: replay it rather than conflict with it.
            let made = (|| -> Result<std::result::Result<SignedUp, Earlier>> {
                let mut st = self.lock();
                if let Some(raced) = earlier(&st)? {
                    return Ok(Err(raced));
                }
                if st.tenancy.user_by_email.contains_key(&new.email) {
                    return Err(Error::conflict(Entity::User, "email"));
                }
                if st.tenancy.tenant_by_slug.contains_key(&new.tenant.slug) {
                    return Err(Error::conflict(Entity::Tenant, "slug"));
                }
                let user = User {
                    id: UserId::new(),
                    email: new.email.clone(),
                    full_name: new.full_name.clone(),
                    has_password: true,
                    created_at: now,
                    updated_at: now,
                };
                let user_ctx = Context::user(user.id).with_request(request.clone());
                st.tenancy.insert_user(UserRow {
                    user: user.clone(),
                    password_hash: Some(phc),
                });
                let tenant =
                    st.create_tenant_owned_by(&user_ctx, user.id, new.tenant.clone(), now)?;
                st.idempotency
                    .remember(scope.clone(), &request, call, tenant.id.0, now);
                let membership = st.tenancy.memberships[&(tenant.id, user.id)].m.clone();
                Ok(Ok(SignedUp {
                    user,
                    membership,
                    ctx: user_ctx.in_tenant(tenant.id),
                    tenant,
                }))
            })()?;
            match made {
                Ok(signed_up) => Ok(signed_up),
                Err(raced) => self.replay_sign_up(raced, &new.password, &request).await,
            }
        })
        .await
    }

    async fn sign_in(
        &self,
        email: &Email,
        password: &SecretString,
        request: RequestMeta,
    ) -> Result<SignedIn> {
        let ctx = Context::system("sign-in").with_request(request.clone());
        self.run_async(&ctx, "AuthRepo.sign_in", async {
            let found = {
                let st = self.lock();
                st.tenancy
                    .user_by_email
                    .get(email)
                    .and_then(|u| st.tenancy.users.get(u))
                    .map(|u| (u.user.clone(), u.password_hash.clone()))
            };
            let (user, stored) = found.map_or((None, None), |(u, h)| (Some(u), h));
            // Verified (against a dummy hash when there is no account) before
            // anything is decided, so both answers take as long.
            let verified = verify_password(password, stored, self.password_cost).await?;
            match user {
                Some(user) if verified => Ok(SignedIn {
                    ctx: Context::user(user.id).with_request(request.clone()),
                    user,
                }),
                _ => Err(Error::unauthenticated(
                    Credential::Password,
                    Rejection::Unknown,
                )),
            }
        })
        .await
    }

    async fn authenticate(
        &self,
        presented: &SecretString,
        request: RequestMeta,
    ) -> Result<Context> {
        let ctx = Context::system("authenticate an API key").with_request(request.clone());
        self.run(&ctx, "AuthRepo.authenticate", || {
            let presented = presented.expose_secret();
            let reject = |r| Error::unauthenticated(Credential::ApiKey, r);
            let prefix = prefix_of(TokenKind::ApiKey, presented).map_err(reject)?;
            let now = self.now();
            let mut st = self.lock();
            let key = st
                .tenancy
                .api_keys_with_prefix(prefix)
                .find(|key| {
                    st.tenancy
                        .api_keys
                        .get(key)
                        .is_some_and(|k| self.hasher.matches(presented, &k.hash))
                })
                .ok_or_else(|| reject(Rejection::Unknown))?;
            let row = st
                .tenancy
                .api_keys
                .get_mut(&key)
                .ok_or_else(|| reject(Rejection::Unknown))?;
            usable(row.key.revoked_at, row.key.expires_at, now).map_err(reject)?;
            let first_use = row.key.last_used_at.is_none();
            let event = AuditEvent::new(
                "api_key.first_used",
                "api_key",
                Some(row.key.id),
                Diff::new(),
            )?;
            if last_use_due(row.key.last_used_at, now) {
                row.key.last_used_at = Some(now);
            }
            let principal = ApiKeyPrincipal {
                key_id: row.key.id,
                tenant_id: row.key.tenant_id,
                project_id: row.key.project_id,
                environment_id: row.environment_id(),
                permissions: row.key.permissions.clone(),
            };
            if first_use {
                let (t, actor) = (principal.tenant_id, Actor::ApiKey(principal.key_id));
                st.audit.append(t, actor, &request, event, now);
            }
            Ok(Context::api_key(principal).with_request(request.clone()))
        })
    }
}
