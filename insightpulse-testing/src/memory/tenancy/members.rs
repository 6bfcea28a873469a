//! Memberships and invitations, and the invitations' retention hook.

use super::super::privacy::{retention_event, Counts, RetentionRun};
use super::super::{MemoryBackend, State, TenantRows};
use super::InvitationRow;
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use insightpulse_core::audit::{AuditEvent, Diff};
use insightpulse_core::privacy::{hashed_email, DataCategory};
use insightpulse_core::tenancy::tokens::{issue, prefix_of, TokenKind};
use insightpulse_core::tenancy::{
    Invitation, IssuedInvitation, MemberRepo, Membership, MembershipStatus, NewInvitation,
    RoleGrant,
};
use insightpulse_core::{
    Context, Credential, Email, Entity, Error, ExposeSecret, InvitationId, PermissionCode,
    Rejection, Requirement, Result, RoleGrantId, SecretString, StateRule, UserId,
};

/// The domain [`hashed_email`] pseudonyms end with: an invitation whose
/// email has it was already anonymized.
const HASHED_EMAIL_SUFFIX: &str = "@anonymized.invalid";

impl State {
    /// The invitations' retention hook (`invitations`): those older than
    /// the cutoff that are no longer pending at `now` are deleted, or have
    /// their email replaced by its pseudonym.
    pub(in crate::memory) fn retire_invitations(
        &mut self,
        run: &RetentionRun<'_>,
    ) -> Result<Counts> {
        let delete = run.deletes();
        let mut targets: Vec<(DateTime<Utc>, InvitationId, Email)> = self
            .tenancy
            .invitations
            .of_tenant(run.tenant)
            .map(|r| &r.inv)
            .filter(|i| i.created_at < run.cutoff)
            .filter(|i| {
                i.accepted_at.is_some() || i.revoked_at.is_some() || i.expires_at <= run.now
            })
            .filter(|i| delete || !i.email.as_str().ends_with(HASHED_EMAIL_SUFFIX))
            .map(|i| (i.created_at, i.id, i.email.clone()))
            .collect();
        targets.sort_by_key(|(at, id, _)| (*at, *id));
        let (mut deleted, mut anonymized) = (0, 0);
        for batch in targets.chunks(run.batch_size) {
            let n = batch.len() as u64;
            let counts = if delete { (n, 0) } else { (0, n) };
            let event = retention_event(DataCategory::Invitations, run.cutoff, counts)?;
            // The only rule an invitations policy can hold is `email: hash`
            // (NewDataPolicy::validate), so anonymizing means exactly that.
            let pseudonyms = if delete {
                Vec::new()
            } else {
                batch
                    .iter()
                    .map(|(_, _, email)| Email::parse(&hashed_email(email.as_str())))
                    .collect::<Result<Vec<Email>>>()?
            };
            if delete {
                for (_, id, _) in batch {
                    self.tenancy.remove_invitation(run.tenant, *id);
                }
            } else {
                for ((_, id, _), pseudonym) in batch.iter().zip(pseudonyms) {
                    if let Some(row) = self.tenancy.invitations.get_mut(&(run.tenant, *id)) {
                        row.inv.email = pseudonym;
                    }
                }
            }
            self.audit(run.ctx, run.tenant, event, run.at);
            deleted += counts.0;
            anonymized += counts.1;
        }
        Ok((deleted, anonymized))
    }
}

impl MemoryBackend {
    /// Suspends or reactivates a member: only owners act on owners, the
    /// last active owner stays active, and a call that changes nothing
    /// writes no audit entry.
    fn set_status(
        &self,
        ctx: &Context,
        user: UserId,
        status: MembershipStatus,
    ) -> Result<Membership> {
        let now = self.now();
        let mut st = self.lock();
        let t = st.visible_tenant(ctx)?;
        st.require(ctx, t, PermissionCode::MEMBER_MANAGE, None)?;
        let target = st
            .tenancy
            .memberships
            .get(&(t, user))
            .ok_or_else(|| Error::not_found(Entity::Member))?;
        if target.m.is_owner && !st.actor_is_owner(ctx, t) {
            return Err(Error::denied(Requirement::TenantOwner));
        }
        if target.m.status == status {
            return Ok(target.m.clone());
        }
        if status == MembershipStatus::Suspended
            && target.m.is_owner
            && st.tenancy.active_owner_count(t) <= 1
        {
            return Err(Error::invalid_state(
                Entity::Member,
                StateRule::LastActiveOwner,
            ));
        }
        let action = match status {
            MembershipStatus::Active => "member.reactivated",
            MembershipStatus::Suspended => "member.suspended",
        };
        let event = AuditEvent::new(action, "user", Some(user), Diff::new())?;
        let row = st
            .tenancy
            .memberships
            .get_mut(&(t, user))
            .ok_or_else(|| Error::not_found(Entity::Member))?;
        row.m.status = status;
        let membership = row.m.clone();
        st.audit(ctx, t, event, now);
        Ok(membership)
    }
}

#[async_trait]
impl MemberRepo for MemoryBackend {
    async fn list_members(&self, ctx: &Context) -> Result<Vec<Membership>> {
        self.run(ctx, "MemberRepo.list_members", || {
            let st = self.lock();
            let Some(t) = st.list_tenant(ctx)? else {
                return Ok(Vec::new());
            };
            let mut out: Vec<Membership> = st
                .tenancy
                .memberships
                .of_tenant(t)
                .map(|m| m.m.clone())
                .collect();
            out.sort_by_key(|m| (m.created_at, m.user_id));
            Ok(out)
        })
    }

    async fn get_member(&self, ctx: &Context, user: UserId) -> Result<Membership> {
        self.run(ctx, "MemberRepo.get_member", || {
            let st = self.lock();
            let t = st.row_tenant(ctx, Entity::Member)?;
            st.tenancy
                .memberships
                .get(&(t, user))
                .map(|m| m.m.clone())
                .ok_or_else(|| Error::not_found(Entity::Member))
        })
    }

    async fn invite(&self, ctx: &Context, new: NewInvitation) -> Result<IssuedInvitation> {
        self.run(ctx, "MemberRepo.invite", || {
            if new.valid_for < Duration::minutes(1) || new.valid_for > Duration::days(30) {
                return Err(Error::validation(
                    "valid_for",
                    "must be between 1 minute and 30 days",
                ));
            }
            let now = self.now();
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, PermissionCode::MEMBER_INVITE, None)?;
            let already_member = st
                .tenancy
                .user_by_email
                .get(&new.email)
                .is_some_and(|u| st.tenancy.memberships.contains_key(&(t, *u)));
            if already_member {
                return Err(Error::conflict(Entity::Member, "email"));
            }
            if let Some(role_id) = new.role_id {
                let role = st.tenancy.role(t, role_id)?;
                if !role.scope.allows_grant(None) {
                    return Err(Error::validation(
                        "role",
                        "a project role cannot be granted tenant-wide",
                    ));
                }
                st.require(ctx, t, PermissionCode::ROLE_ASSIGN, None)?;
                if let Some(missing) = role
                    .permissions
                    .iter()
                    .find(|p| !st.allows(ctx, t, p, None))
                {
                    return Err(Error::denied(*missing));
                }
            }
            let issued = issue(TokenKind::Invitation, &self.hasher);
            let invitation = Invitation {
                id: InvitationId::new(),
                tenant_id: t,
                email: new.email,
                role_id: new.role_id,
                invited_by: ctx.user_id(),
                expires_at: now + new.valid_for,
                accepted_at: None,
                revoked_at: None,
                created_at: now,
            };
            // No email: personal data stays in the invitation, where
            // retention and erasure reach it.
            let event = AuditEvent::new(
                "member.invited",
                "invitation",
                Some(invitation.id),
                Diff::new()
                    .set("role_id", invitation.role_id)
                    .set("expires_at", invitation.expires_at),
            )?;
            st.audit(ctx, t, event, now);
            st.tenancy.insert_invitation(InvitationRow {
                inv: invitation.clone(),
                prefix: issued.prefix,
                hash: issued.hash,
            });
            Ok(IssuedInvitation {
                invitation,
                token: issued.token,
            })
        })
    }

    async fn list_invitations(&self, ctx: &Context) -> Result<Vec<Invitation>> {
        self.run(ctx, "MemberRepo.list_invitations", || {
            let st = self.lock();
            let Some(t) = st.list_tenant(ctx)? else {
                return Ok(Vec::new());
            };
            st.require(ctx, t, PermissionCode::MEMBER_INVITE, None)?;
            let mut out: Vec<Invitation> = st
                .tenancy
                .invitations
                .of_tenant(t)
                .map(|i| i.inv.clone())
                .collect();
            out.sort_by_key(|i| (i.created_at, i.id));
            Ok(out)
        })
    }

    async fn revoke_invitation(&self, ctx: &Context, id: InvitationId) -> Result<()> {
        self.run(ctx, "MemberRepo.revoke_invitation", || {
            let now = self.now();
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, PermissionCode::MEMBER_INVITE, None)?;
            let row = st
                .tenancy
                .invitations
                .get_mut(&(t, id))
                .ok_or_else(|| Error::not_found(Entity::Invitation))?;
            if row.inv.accepted_at.is_some() {
                return Err(Error::invalid_state(
                    Entity::Invitation,
                    StateRule::InvitationAccepted,
                ));
            }
            if row.inv.revoked_at.is_some() {
                return Ok(());
            }
            let event = AuditEvent::new("invitation.revoked", "invitation", Some(id), Diff::new())?;
            row.inv.revoked_at = Some(now);
            st.audit(ctx, t, event, now);
            Ok(())
        })
    }

    async fn accept_invitation(&self, ctx: &Context, token: &SecretString) -> Result<Membership> {
        self.run(ctx, "MemberRepo.accept_invitation", || {
            let me = ctx.require_user()?;
            let presented = token.expose_secret();
            let reject = |r| Error::unauthenticated(Credential::InvitationToken, r);
            let prefix = prefix_of(TokenKind::Invitation, presented).map_err(reject)?;
            let now = self.now();
            let mut st = self.lock();
            let inv = st
                .tenancy
                .invitations_with_prefix(prefix)
                .filter_map(|key| st.tenancy.invitations.get(&key))
                .find(|r| self.hasher.matches(presented, &r.hash))
                .map(|r| r.inv.clone())
                .ok_or_else(|| reject(Rejection::Unknown))?;
            if inv.revoked_at.is_some() {
                return Err(reject(Rejection::Revoked));
            }
            if inv.accepted_at.is_some() {
                return Err(reject(Rejection::AlreadyUsed));
            }
            if now >= inv.expires_at {
                return Err(reject(Rejection::Expired));
            }
            let user = st
                .tenancy
                .users
                .get(&me)
                .ok_or_else(|| Error::not_found(Entity::User))?;
            if user.user.email != inv.email {
                return Err(Error::denied(Requirement::InvitedUser));
            }
            let t = inv.tenant_id;
            if st.tenancy.memberships.contains_key(&(t, me)) {
                return Err(Error::conflict(Entity::Member, "user"));
            }
            let membership = Membership {
                tenant_id: t,
                user_id: me,
                is_owner: false,
                status: MembershipStatus::Active,
                created_at: now,
            };
            let role_id = inv.role_id.filter(|r| st.tenancy.role(t, *r).is_ok());
            // The actor is the joining user: the context's principal.
            let event = AuditEvent::new(
                "member.joined",
                "user",
                Some(me),
                Diff::new()
                    .set("invitation_id", inv.id)
                    .set("role_id", role_id),
            )?;
            st.tenancy.insert_membership(membership.clone());
            st.audit(ctx, t, event, now);
            if let Some(role_id) = role_id {
                let grant = RoleGrant {
                    id: RoleGrantId::new(),
                    tenant_id: t,
                    user_id: me,
                    role_id,
                    project_id: None,
                    granted_by: inv.invited_by,
                    created_at: now,
                };
                st.tenancy.grants.insert((t, grant.id), grant);
            }
            if let Some(row) = st.tenancy.invitations.get_mut(&(t, inv.id)) {
                row.inv.accepted_at = Some(now);
            }
            Ok(membership)
        })
    }

    async fn suspend_member(&self, ctx: &Context, user: UserId) -> Result<Membership> {
        self.run(ctx, "MemberRepo.suspend_member", || {
            self.set_status(ctx, user, MembershipStatus::Suspended)
        })
    }

    async fn reactivate_member(&self, ctx: &Context, user: UserId) -> Result<Membership> {
        self.run(ctx, "MemberRepo.reactivate_member", || {
            self.set_status(ctx, user, MembershipStatus::Active)
        })
    }

    async fn remove_member(&self, ctx: &Context, user: UserId) -> Result<()> {
        self.run(ctx, "MemberRepo.remove_member", || {
            let now = self.now();
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, PermissionCode::MEMBER_MANAGE, None)?;
            let target = st
                .tenancy
                .memberships
                .get(&(t, user))
                .ok_or_else(|| Error::not_found(Entity::Member))?;
            if target.m.is_owner && !st.actor_is_owner(ctx, t) {
                return Err(Error::denied(Requirement::TenantOwner));
            }
            if st.tenancy.is_active_owner(t, user) && st.tenancy.active_owner_count(t) <= 1 {
                return Err(Error::invalid_state(
                    Entity::Member,
                    StateRule::LastActiveOwner,
                ));
            }
            let event = AuditEvent::new("member.removed", "user", Some(user), Diff::new())?;
            st.tenancy.delete_membership(t, user);
            st.audit(ctx, t, event, now);
            Ok(())
        })
    }

    async fn set_owner(&self, ctx: &Context, user: UserId, is_owner: bool) -> Result<Membership> {
        self.run(ctx, "MemberRepo.set_owner", || {
            let now = self.now();
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            if !st.actor_is_owner(ctx, t) {
                return Err(Error::denied(Requirement::TenantOwner));
            }
            let current = st
                .tenancy
                .memberships
                .get(&(t, user))
                .ok_or_else(|| Error::not_found(Entity::Member))?;
            if current.m.is_owner == is_owner {
                return Ok(current.m.clone());
            }
            if !is_owner
                && st.tenancy.is_active_owner(t, user)
                && st.tenancy.active_owner_count(t) <= 1
            {
                return Err(Error::invalid_state(
                    Entity::Member,
                    StateRule::LastActiveOwner,
                ));
            }
            let event = AuditEvent::new(
                "member.ownership_changed",
                "user",
                Some(user),
                Diff::new().change("is_owner", !is_owner, is_owner),
            )?;
            let row = st
                .tenancy
                .memberships
                .get_mut(&(t, user))
                .ok_or_else(|| Error::not_found(Entity::Member))?;
            row.m.is_owner = is_owner;
            let membership = row.m.clone();
            st.audit(ctx, t, event, now);
            Ok(membership)
        })
    }
}
