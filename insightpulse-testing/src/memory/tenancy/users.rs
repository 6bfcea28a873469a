//! Users: accounts, profiles and passwords, and the tenancy's part of
//! erasing a user.

use super::super::{hash_password, MemoryBackend, TenantRows};
use super::{TenancyState, UserRow};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insightpulse_core::privacy::{erased_email, ErasureReport};
use insightpulse_core::tenancy::{NewUser, User, UserRepo};
use insightpulse_core::{
    Context, Email, Entity, Error, InvitationId, Name, Principal, Requirement, Result,
    SecretString, StateRule, TenantId, UserId,
};

impl TenancyState {
    /// The tenancy's part of erasing `user`: their memberships (with the
    /// grants, team memberships and identities that go with them) and the
    /// invitations to their email are removed, and the account keeps only
    /// a pseudonymous email. Refused, with nothing changed, when it would
    /// leave a tenant without an active owner. The report's other modules'
    /// counts are theirs to fill.
    pub fn erase_user(&mut self, user: UserId, now: DateTime<Utc>) -> Result<ErasureReport> {
        let old_email = self
            .users
            .get(&user)
            .map(|u| u.user.email.clone())
            .ok_or_else(|| Error::not_found(Entity::User))?;
        // The (user, tenant) index yields the tenants in id order.
        let tenants: Vec<TenantId> = self.tenants_of_user(user).collect();
        if tenants
            .iter()
            .any(|t| self.is_active_owner(*t, user) && self.active_owner_count(*t) <= 1)
        {
            return Err(Error::invalid_state(
                Entity::Member,
                StateRule::LastActiveOwner,
            ));
        }
        let pseudonym = Email::parse(&erased_email(user))?;

        let mut identities_removed = 0;
        for t in &tenants {
            identities_removed += self
                .identities
                .of_tenant(*t)
                .filter(|i| i.user_id == user)
                .count() as u64;
            self.delete_membership(*t, user);
        }
        let invitations: Vec<(TenantId, InvitationId)> = self
            .invitations
            .iter()
            .filter(|(_, r)| r.inv.email == old_email)
            .map(|(key, _)| *key)
            .collect();
        for (t, id) in &invitations {
            self.remove_invitation(*t, *id);
        }
        self.set_user_email(user, pseudonym);
        if let Some(row) = self.users.get_mut(&user) {
            row.user.full_name = None;
            row.user.has_password = false;
            row.user.updated_at = now;
            row.password_hash = None;
        }
        Ok(ErasureReport {
            user_id: user,
            memberships_removed: tenants.len() as u64,
            tenants,
            identities_removed,
            invitations_removed: invitations.len() as u64,
            audit_entries_pseudonymized: 0,
        })
    }
}

#[async_trait]
impl UserRepo for MemoryBackend {
    async fn create_user(&self, ctx: &Context, new: NewUser) -> Result<User> {
        self.run(ctx, "UserRepo.create_user", || {
            ctx.require_system()?;
            let now = self.now();
            let mut st = self.lock();
            if st.tenancy.user_by_email.contains_key(&new.email) {
                return Err(Error::conflict(Entity::User, "email"));
            }
            let user = User {
                id: UserId::new(),
                email: new.email,
                full_name: new.full_name,
                has_password: false,
                created_at: now,
                updated_at: now,
            };
            st.tenancy.insert_user(UserRow {
                user: user.clone(),
                password_hash: None,
            });
            Ok(user)
        })
    }

    async fn get_user(&self, ctx: &Context, id: UserId) -> Result<User> {
        self.run(ctx, "UserRepo.get_user", || {
            let st = self.lock();
            if st.user_visible(ctx, id) {
                Ok(st.tenancy.users[&id].user.clone())
            } else {
                Err(Error::not_found(Entity::User))
            }
        })
    }

    async fn find_user_by_email(&self, ctx: &Context, email: &Email) -> Result<Option<User>> {
        self.run(ctx, "UserRepo.find_user_by_email", || {
            let st = self.lock();
            Ok(st
                .tenancy
                .user_by_email
                .get(email)
                .filter(|u| st.user_visible(ctx, **u))
                .map(|u| st.tenancy.users[u].user.clone()))
        })
    }

    async fn update_profile(&self, ctx: &Context, full_name: Option<Name>) -> Result<User> {
        self.run(ctx, "UserRepo.update_profile", || {
            let me = ctx.require_user()?;
            let now = self.now();
            let mut st = self.lock();
            let row = st
                .tenancy
                .users
                .get_mut(&me)
                .ok_or_else(|| Error::not_found(Entity::User))?;
            row.user.full_name = full_name;
            row.user.updated_at = now;
            Ok(row.user.clone())
        })
    }

    async fn set_password(
        &self,
        ctx: &Context,
        user: UserId,
        password: &SecretString,
    ) -> Result<()> {
        // Validates (and hashes) before touching any state.
        let phc = hash_password(password, self.password_cost).await?;
        self.run(ctx, "UserRepo.set_password", || {
            let now = self.now();
            let mut st = self.lock();
            let allowed = match ctx.principal() {
                Principal::System { .. } => true,
                Principal::User(me) => *me == user,
                Principal::ApiKey(_) => false,
            };
            if !st.user_visible(ctx, user) {
                return Err(Error::not_found(Entity::User));
            }
            if !allowed {
                return Err(Error::denied(Requirement::SameUserOrSystem));
            }
            let row = st
                .tenancy
                .users
                .get_mut(&user)
                .ok_or_else(|| Error::not_found(Entity::User))?;
            row.password_hash = Some(phc);
            row.user.has_password = true;
            row.user.updated_at = now;
            Ok(())
        })
    }
}
