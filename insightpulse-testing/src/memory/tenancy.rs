//! In-memory tenancy: tenants, users, memberships and invitations, teams,
//! roles and grants, SSO providers and identities, API keys.
//!
//! Rule guarded here: each operation follows behaviour.md's check order
//! (validation → tenant visible → permission → row exists → state and
//! uniqueness) and only then mutates, so a failed call writes nothing.
//! Permissions are decided by core's `UserFacts::allows` / `api_key_allows`;
//! tokens and passwords are stored only as hashes.
//!
//! Every mutation the audit spec lists appends its event in the same locked
//! mutation, built (and so validated) before anything changes, and only
//! when something changed: a no-op early return and a failed call write no
//! entry. Users, teams and projects are not audited (deliberately).

use super::{
    check_known_permissions, normalized, perm, InvitationRow, KeyRow, MemoryBackend, TenantRows,
    UserRow,
};
use async_trait::async_trait;
use chrono::Duration;
use insightpulse_core::audit::{Actor, AuditEvent, Diff};
use insightpulse_core::tenancy::catalog::{ADMIN_ROLE, PERMISSIONS};
use insightpulse_core::tenancy::tokens::{issue, prefix_of, TokenKind};
use insightpulse_core::tenancy::{
    passwords, ApiKey, ApiKeyRepo, ApiKeyScope, Identity, Invitation, IssuedApiKey,
    IssuedInvitation, MemberRepo, Membership, MembershipStatus, NewApiKey, NewInvitation, NewRole,
    NewSsoProvider, NewTeam, NewTenant, NewUser, Permission, RbacRepo, Role, RoleGrant, RoleScope,
    SsoConfig, SsoProvider, SsoRepo, Team, TeamRepo, Tenant, TenantRepo, TenantUpdate, User,
    UserRepo,
};
use insightpulse_core::{
    ApiKeyId, ApiKeyPrincipal, Context, Email, Error, ExposeSecret, IdentityId, InvitationId, Name,
    PermissionCode, Principal, ProjectId, Result, RoleGrantId, RoleId, SecretString, Slug,
    SsoProviderId, TeamId, TenantId, TokenRejection, UserId,
};

/// Longest accepted identity subject, in characters.
const MAX_SUBJECT_CHARS: usize = 255;

// ---------------------------------------------------------------------------
// Tenants
// ---------------------------------------------------------------------------

#[async_trait]
impl TenantRepo for MemoryBackend {
    async fn create_tenant(&self, ctx: &Context, new: NewTenant) -> Result<Tenant> {
        self.run(ctx, "TenantRepo.create_tenant", || {
            let user = ctx.require_user()?;
            let now = self.now();
            let mut st = self.lock();
            if !st.users.contains_key(&user) {
                return Err(Error::not_found("user"));
            }
            if st.tenant_by_slug.contains_key(&new.slug) {
                return Err(Error::conflict("tenant", format!("slug={}", new.slug)));
            }
            let admin = st
                .builtin_roles
                .values()
                .find(|r| r.name.as_str() == ADMIN_ROLE && r.scope == RoleScope::Org)
                .map(|r| r.id)
                .ok_or_else(|| Error::not_found("role"))?;
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
            st.insert_tenant(tenant.clone());
            st.audit(ctx, tenant.id, event, now);
            st.insert_membership(Membership {
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
            st.grants.insert((tenant.id, grant.id), grant);
            Ok(tenant)
        })
    }

    async fn get_tenant(&self, ctx: &Context, id: TenantId) -> Result<Tenant> {
        self.run(ctx, "TenantRepo.get_tenant", || {
            let st = self.lock();
            if st.tenant_visible(ctx, id) {
                Ok(st.tenants[&id].clone())
            } else {
                Err(Error::not_found("tenant"))
            }
        })
    }

    async fn get_tenant_by_slug(&self, ctx: &Context, slug: &Slug) -> Result<Tenant> {
        self.run(ctx, "TenantRepo.get_tenant_by_slug", || {
            let st = self.lock();
            st.tenant_by_slug
                .get(slug)
                .filter(|t| st.tenant_visible(ctx, **t))
                .map(|t| st.tenants[t].clone())
                .ok_or_else(|| Error::not_found("tenant"))
        })
    }

    async fn list_my_tenants(&self, ctx: &Context) -> Result<Vec<Tenant>> {
        self.run(ctx, "TenantRepo.list_my_tenants", || {
            let user = ctx.require_user()?;
            let st = self.lock();
            let mut out: Vec<Tenant> = st
                .tenants_of_user(user)
                .filter(|t| st.is_active_member(*t, user))
                .filter_map(|t| st.tenants.get(&t).cloned())
                .collect();
            out.sort_by(|a, b| a.slug.as_str().cmp(b.slug.as_str()));
            Ok(out)
        })
    }

    async fn update_tenant(&self, ctx: &Context, update: TenantUpdate) -> Result<Tenant> {
        self.run(ctx, "TenantRepo.update_tenant", || {
            if update.settings.as_ref().is_some_and(|s| !s.is_object()) {
                return Err(Error::validation("settings", "must be a JSON object"));
            }
            let now = self.now();
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, "tenant.manage", None)?;
            let tenant = st
                .tenants
                .get_mut(&t)
                .ok_or_else(|| Error::not_found("tenant"))?;
            let mut diff = Diff::new();
            if let Some(name) = &update.name {
                diff = diff.change("name", &tenant.name, name);
            }
            if let Some(tz) = &update.timezone {
                diff = diff.change("timezone", &tenant.timezone, tz);
            }
            if let Some(settings) = &update.settings {
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
            if let Some(settings) = update.settings {
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
                return Err(Error::denied("tenant owner"));
            }
            let slug = st.tenants.get(&t).map(|x| x.slug.clone());
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

// ---------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------

#[async_trait]
impl UserRepo for MemoryBackend {
    async fn create_user(&self, ctx: &Context, new: NewUser) -> Result<User> {
        self.run(ctx, "UserRepo.create_user", || {
            if !ctx.is_system() {
                return Err(Error::denied("system"));
            }
            let now = self.now();
            let mut st = self.lock();
            if st.user_by_email.contains_key(&new.email) {
                return Err(Error::conflict("user", format!("email={}", new.email)));
            }
            let user = User {
                id: UserId::new(),
                email: new.email,
                full_name: new.full_name,
                has_password: false,
                created_at: now,
                updated_at: now,
            };
            st.insert_user(UserRow {
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
                Ok(st.users[&id].user.clone())
            } else {
                Err(Error::not_found("user"))
            }
        })
    }

    async fn find_user_by_email(&self, ctx: &Context, email: &Email) -> Result<Option<User>> {
        self.run(ctx, "UserRepo.find_user_by_email", || {
            let st = self.lock();
            Ok(st
                .user_by_email
                .get(email)
                .filter(|u| st.user_visible(ctx, **u))
                .map(|u| st.users[u].user.clone()))
        })
    }

    async fn update_profile(&self, ctx: &Context, full_name: Option<Name>) -> Result<User> {
        self.run(ctx, "UserRepo.update_profile", || {
            let me = ctx.require_user()?;
            let now = self.now();
            let mut st = self.lock();
            let row = st
                .users
                .get_mut(&me)
                .ok_or_else(|| Error::not_found("user"))?;
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
        self.run(ctx, "UserRepo.set_password", || {
            // Validates (and hashes) before touching any state.
            let phc = passwords::hash(password)?;
            let now = self.now();
            let mut st = self.lock();
            let allowed = match ctx.principal() {
                Principal::System { .. } => true,
                Principal::User(me) => *me == user,
                Principal::ApiKey(_) => false,
            };
            if !st.user_visible(ctx, user) {
                return Err(Error::not_found("user"));
            }
            if !allowed {
                return Err(Error::denied("only the user itself or the system"));
            }
            let row = st
                .users
                .get_mut(&user)
                .ok_or_else(|| Error::not_found("user"))?;
            row.password_hash = Some(phc);
            row.user.has_password = true;
            row.user.updated_at = now;
            Ok(())
        })
    }

    async fn verify_password(
        &self,
        ctx: &Context,
        email: &Email,
        password: &SecretString,
    ) -> Result<User> {
        self.run(ctx, "UserRepo.verify_password", || {
            if !ctx.is_system() {
                return Err(Error::denied("system"));
            }
            let found = {
                let st = self.lock();
                st.user_by_email
                    .get(email)
                    .and_then(|u| st.users.get(u))
                    .and_then(|u| u.password_hash.clone().map(|h| (u.user.clone(), h)))
            };
            // argon2 runs without the lock held.
            match found {
                Some((user, phc)) if passwords::verify(password, &phc) => Ok(user),
                _ => Err(Error::unauthenticated("password", TokenRejection::Unknown)),
            }
        })
    }
}

// ---------------------------------------------------------------------------
// Members and invitations
// ---------------------------------------------------------------------------

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
        st.require(ctx, t, "member.manage", None)?;
        let target = st
            .memberships
            .get(&(t, user))
            .ok_or_else(|| Error::not_found("member"))?;
        if target.m.is_owner && !st.actor_is_owner(ctx, t) {
            return Err(Error::denied("tenant owner"));
        }
        if target.m.status == status {
            return Ok(target.m.clone());
        }
        if status == MembershipStatus::Suspended
            && target.m.is_owner
            && st.active_owner_count(t) <= 1
        {
            return Err(Error::invalid_state(
                "member",
                "the last active owner cannot be suspended",
            ));
        }
        let action = match status {
            MembershipStatus::Active => "member.reactivated",
            MembershipStatus::Suspended => "member.suspended",
        };
        let event = AuditEvent::new(action, "user", Some(user), Diff::new())?;
        let row = st
            .memberships
            .get_mut(&(t, user))
            .ok_or_else(|| Error::not_found("member"))?;
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
            let mut out: Vec<Membership> =
                st.memberships.of_tenant(t).map(|m| m.m.clone()).collect();
            out.sort_by_key(|m| (m.created_at, m.user_id));
            Ok(out)
        })
    }

    async fn get_member(&self, ctx: &Context, user: UserId) -> Result<Membership> {
        self.run(ctx, "MemberRepo.get_member", || {
            let st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.memberships
                .get(&(t, user))
                .map(|m| m.m.clone())
                .ok_or_else(|| Error::not_found("member"))
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
            st.require(ctx, t, "member.invite", None)?;
            let already_member = st
                .user_by_email
                .get(&new.email)
                .is_some_and(|u| st.memberships.contains_key(&(t, *u)));
            if already_member {
                return Err(Error::conflict("member", format!("email={}", new.email)));
            }
            if let Some(role_id) = new.role_id {
                let role = st.role(t, role_id)?;
                if !role.scope.allows_grant(None) {
                    return Err(Error::validation(
                        "role",
                        "a project role cannot be granted tenant-wide",
                    ));
                }
                st.require(ctx, t, "role.assign", None)?;
                if let Some(missing) = role
                    .permissions
                    .iter()
                    .find(|p| !st.allows(ctx, t, p, None))
                {
                    return Err(Error::denied(missing.to_string()));
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
            st.insert_invitation(InvitationRow {
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
            st.require(ctx, t, "member.invite", None)?;
            let mut out: Vec<Invitation> =
                st.invitations.of_tenant(t).map(|i| i.inv.clone()).collect();
            out.sort_by_key(|i| (i.created_at, i.id));
            Ok(out)
        })
    }

    async fn revoke_invitation(&self, ctx: &Context, id: InvitationId) -> Result<()> {
        self.run(ctx, "MemberRepo.revoke_invitation", || {
            let now = self.now();
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, "member.invite", None)?;
            let row = st
                .invitations
                .get_mut(&(t, id))
                .ok_or_else(|| Error::not_found("invitation"))?;
            if row.inv.accepted_at.is_some() {
                return Err(Error::invalid_state("invitation", "already accepted"));
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
            let reject = |r| Error::unauthenticated("invitation token", r);
            let prefix = prefix_of(TokenKind::Invitation, presented).map_err(reject)?;
            let now = self.now();
            let mut st = self.lock();
            let inv = st
                .invitations_with_prefix(prefix)
                .filter_map(|key| st.invitations.get(&key))
                .find(|r| self.hasher.matches(presented, &r.hash))
                .map(|r| r.inv.clone())
                .ok_or_else(|| reject(TokenRejection::Unknown))?;
            if inv.revoked_at.is_some() {
                return Err(reject(TokenRejection::Revoked));
            }
            if inv.accepted_at.is_some() {
                return Err(reject(TokenRejection::AlreadyUsed));
            }
            if now >= inv.expires_at {
                return Err(reject(TokenRejection::Expired));
            }
            let user = st.users.get(&me).ok_or_else(|| Error::not_found("user"))?;
            if user.user.email != inv.email {
                return Err(Error::denied("the invited email address"));
            }
            let t = inv.tenant_id;
            if st.memberships.contains_key(&(t, me)) {
                return Err(Error::conflict("member", format!("user_id={me}")));
            }
            let membership = Membership {
                tenant_id: t,
                user_id: me,
                is_owner: false,
                status: MembershipStatus::Active,
                created_at: now,
            };
            let role_id = inv.role_id.filter(|r| st.role(t, *r).is_ok());
            // The actor is the joining user: the context's principal.
            let event = AuditEvent::new(
                "member.joined",
                "user",
                Some(me),
                Diff::new()
                    .set("invitation_id", inv.id)
                    .set("role_id", role_id),
            )?;
            st.insert_membership(membership.clone());
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
                st.grants.insert((t, grant.id), grant);
            }
            if let Some(row) = st.invitations.get_mut(&(t, inv.id)) {
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
            st.require(ctx, t, "member.manage", None)?;
            let target = st
                .memberships
                .get(&(t, user))
                .ok_or_else(|| Error::not_found("member"))?;
            if target.m.is_owner && !st.actor_is_owner(ctx, t) {
                return Err(Error::denied("tenant owner"));
            }
            if st.is_active_owner(t, user) && st.active_owner_count(t) <= 1 {
                return Err(Error::invalid_state(
                    "member",
                    "the last active owner cannot be removed",
                ));
            }
            let event = AuditEvent::new("member.removed", "user", Some(user), Diff::new())?;
            st.delete_membership(t, user);
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
                return Err(Error::denied("tenant owner"));
            }
            let current = st
                .memberships
                .get(&(t, user))
                .ok_or_else(|| Error::not_found("member"))?;
            if current.m.is_owner == is_owner {
                return Ok(current.m.clone());
            }
            if !is_owner && st.is_active_owner(t, user) && st.active_owner_count(t) <= 1 {
                return Err(Error::invalid_state(
                    "member",
                    "the last active owner cannot step down",
                ));
            }
            let event = AuditEvent::new(
                "member.ownership_changed",
                "user",
                Some(user),
                Diff::new().change("is_owner", !is_owner, is_owner),
            )?;
            let row = st
                .memberships
                .get_mut(&(t, user))
                .ok_or_else(|| Error::not_found("member"))?;
            row.m.is_owner = is_owner;
            let membership = row.m.clone();
            st.audit(ctx, t, event, now);
            Ok(membership)
        })
    }
}

// ---------------------------------------------------------------------------
// Teams
// ---------------------------------------------------------------------------

impl super::State {
    fn team(&self, t: TenantId, id: TeamId) -> Result<&Team> {
        self.teams
            .get(&(t, id))
            .ok_or_else(|| Error::not_found("team"))
    }
}

#[async_trait]
impl TeamRepo for MemoryBackend {
    async fn create_team(&self, ctx: &Context, new: NewTeam) -> Result<Team> {
        self.run(ctx, "TeamRepo.create_team", || {
            let now = self.now();
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, "team.manage", None)?;
            if st.teams.of_tenant(t).any(|x| x.slug == new.slug) {
                return Err(Error::conflict("team", format!("slug={}", new.slug)));
            }
            let team = Team {
                id: TeamId::new(),
                tenant_id: t,
                slug: new.slug,
                name: new.name,
                created_at: now,
            };
            st.teams.insert((t, team.id), team.clone());
            Ok(team)
        })
    }

    async fn get_team(&self, ctx: &Context, id: TeamId) -> Result<Team> {
        self.run(ctx, "TeamRepo.get_team", || {
            let st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.team(t, id).cloned()
        })
    }

    async fn list_teams(&self, ctx: &Context) -> Result<Vec<Team>> {
        self.run(ctx, "TeamRepo.list_teams", || {
            let st = self.lock();
            let Some(t) = st.list_tenant(ctx)? else {
                return Ok(Vec::new());
            };
            let mut out: Vec<Team> = st.teams.of_tenant(t).cloned().collect();
            out.sort_by(|a, b| a.slug.as_str().cmp(b.slug.as_str()));
            Ok(out)
        })
    }

    async fn rename_team(&self, ctx: &Context, id: TeamId, name: Name) -> Result<Team> {
        self.run(ctx, "TeamRepo.rename_team", || {
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, "team.manage", None)?;
            st.team(t, id)?;
            let team = st
                .teams
                .get_mut(&(t, id))
                .ok_or_else(|| Error::not_found("team"))?;
            team.name = name;
            Ok(team.clone())
        })
    }

    async fn delete_team(&self, ctx: &Context, id: TeamId) -> Result<()> {
        self.run(ctx, "TeamRepo.delete_team", || {
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, "team.manage", None)?;
            st.team(t, id)?;
            st.delete_team(t, id);
            Ok(())
        })
    }

    async fn add_team_member(&self, ctx: &Context, team: TeamId, user: UserId) -> Result<()> {
        self.run(ctx, "TeamRepo.add_team_member", || {
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, "team.manage", None)?;
            st.team(t, team)?;
            if !st.memberships.contains_key(&(t, user)) {
                return Err(Error::not_found("member"));
            }
            if !st.team_members.insert((t, team, user)) {
                return Err(Error::conflict("team member", format!("user_id={user}")));
            }
            Ok(())
        })
    }

    async fn remove_team_member(&self, ctx: &Context, team: TeamId, user: UserId) -> Result<()> {
        self.run(ctx, "TeamRepo.remove_team_member", || {
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, "team.manage", None)?;
            st.team(t, team)?;
            if !st.team_members.remove(&(t, team, user)) {
                return Err(Error::not_found("team member"));
            }
            Ok(())
        })
    }

    async fn list_team_members(&self, ctx: &Context, team: TeamId) -> Result<Vec<UserId>> {
        self.run(ctx, "TeamRepo.list_team_members", || {
            let st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.team(t, team)?;
            // The set is ordered by (tenant, team, user): users come out by id.
            Ok(st
                .team_members_of_tenant(t)
                .filter(|(tm, _)| *tm == team)
                .map(|(_, u)| u)
                .collect())
        })
    }
}

// ---------------------------------------------------------------------------
// Roles, grants, permission checks
// ---------------------------------------------------------------------------

/// The diff of `role.granted` and `role.revoked`.
fn grant_diff(g: &RoleGrant) -> Diff {
    Diff::new()
        .set("user_id", g.user_id)
        .set("role_id", g.role_id)
        .set("project_id", g.project_id)
}

fn sort_roles(roles: &mut [Role]) {
    roles.sort_by(|a, b| {
        (a.name.as_str(), a.scope.as_str()).cmp(&(b.name.as_str(), b.scope.as_str()))
    });
}

#[async_trait]
impl RbacRepo for MemoryBackend {
    async fn list_permissions(&self, ctx: &Context) -> Result<Vec<Permission>> {
        self.run(ctx, "RbacRepo.list_permissions", || {
            let mut out: Vec<Permission> = PERMISSIONS
                .iter()
                .map(|(code, description)| Permission {
                    code: perm(code),
                    description: (*description).to_owned(),
                })
                .collect();
            out.sort_by(|a, b| a.code.as_str().cmp(b.code.as_str()));
            Ok(out)
        })
    }

    async fn list_roles(&self, ctx: &Context) -> Result<Vec<Role>> {
        self.run(ctx, "RbacRepo.list_roles", || {
            let st = self.lock();
            let t = st.list_tenant(ctx)?;
            let mut out: Vec<Role> = st.builtin_roles.values().cloned().collect();
            if let Some(t) = t {
                out.extend(st.roles.of_tenant(t).cloned());
            }
            sort_roles(&mut out);
            Ok(out)
        })
    }

    async fn get_role(&self, ctx: &Context, id: RoleId) -> Result<Role> {
        self.run(ctx, "RbacRepo.get_role", || {
            let st = self.lock();
            let t = ctx.require_tenant()?;
            if let Some(role) = st.builtin_roles.get(&id) {
                return Ok(role.clone());
            }
            st.roles
                .get(&(t, id))
                .filter(|_| st.tenant_visible(ctx, t))
                .cloned()
                .ok_or_else(|| Error::not_found("role"))
        })
    }

    async fn create_role(&self, ctx: &Context, new: NewRole) -> Result<Role> {
        self.run(ctx, "RbacRepo.create_role", || {
            check_known_permissions(&new.permissions, "permissions")?;
            let now = self.now();
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, "role.manage", None)?;
            if st
                .roles
                .of_tenant(t)
                .any(|r| r.name == new.name && r.scope == new.scope)
            {
                return Err(Error::conflict(
                    "role",
                    format!("name={} scope={}", new.name, new.scope.as_str()),
                ));
            }
            let role = Role {
                id: RoleId::new(),
                tenant_id: Some(t),
                name: new.name,
                scope: new.scope,
                description: new.description,
                permissions: normalized(new.permissions),
            };
            let event = AuditEvent::new(
                "role.created",
                "role",
                Some(role.id),
                Diff::new()
                    .set("name", &role.name)
                    .set("scope", role.scope.as_str())
                    .set("permissions", &role.permissions),
            )?;
            st.roles.insert((t, role.id), role.clone());
            st.audit(ctx, t, event, now);
            Ok(role)
        })
    }

    async fn set_role_permissions(
        &self,
        ctx: &Context,
        id: RoleId,
        permissions: Vec<PermissionCode>,
    ) -> Result<Role> {
        self.run(ctx, "RbacRepo.set_role_permissions", || {
            check_known_permissions(&permissions, "permissions")?;
            let now = self.now();
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, "role.manage", None)?;
            if st.role(t, id)?.tenant_id.is_none() {
                return Err(Error::invalid_state("role", "built-in roles are read-only"));
            }
            let role = st
                .roles
                .get_mut(&(t, id))
                .ok_or_else(|| Error::not_found("role"))?;
            let permissions = normalized(permissions);
            // Written even when the set is unchanged (empty diff), like
            // tenant.updated: the call is an update, not a no-op return.
            let event = AuditEvent::new(
                "role.updated",
                "role",
                Some(id),
                Diff::new().change("permissions", &role.permissions, &permissions),
            )?;
            role.permissions = permissions;
            let updated = role.clone();
            st.audit(ctx, t, event, now);
            Ok(updated)
        })
    }

    async fn delete_role(&self, ctx: &Context, id: RoleId) -> Result<()> {
        self.run(ctx, "RbacRepo.delete_role", || {
            let now = self.now();
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, "role.manage", None)?;
            let role = st.role(t, id)?;
            if role.tenant_id.is_none() {
                return Err(Error::invalid_state("role", "built-in roles are read-only"));
            }
            let event = AuditEvent::new(
                "role.deleted",
                "role",
                Some(id),
                Diff::new().set("name", &role.name),
            )?;
            st.delete_role(t, id);
            st.audit(ctx, t, event, now);
            Ok(())
        })
    }

    async fn grant_role(
        &self,
        ctx: &Context,
        user: UserId,
        role: RoleId,
        project: Option<ProjectId>,
    ) -> Result<RoleGrant> {
        self.run(ctx, "RbacRepo.grant_role", || {
            let now = self.now();
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, "role.assign", project)?;
            let role = st.role(t, role)?;
            if !role.scope.allows_grant(project) {
                return Err(Error::validation(
                    "project",
                    format!(
                        "a role of scope {} cannot be granted at this level",
                        role.scope.as_str()
                    ),
                ));
            }
            if let Some(p) = project {
                st.project(ctx, t, p)?;
            }
            if !st.memberships.contains_key(&(t, user)) {
                return Err(Error::not_found("member"));
            }
            if let Some(missing) = role
                .permissions
                .iter()
                .find(|p| !st.allows(ctx, t, p, project))
            {
                return Err(Error::denied(missing.to_string()));
            }
            let role_id = role.id;
            if st
                .grants
                .of_tenant(t)
                .any(|g| g.user_id == user && g.role_id == role_id && g.project_id == project)
            {
                return Err(Error::conflict(
                    "role grant",
                    format!("user_id={user} role_id={role_id}"),
                ));
            }
            let grant = RoleGrant {
                id: RoleGrantId::new(),
                tenant_id: t,
                user_id: user,
                role_id,
                project_id: project,
                granted_by: ctx.user_id(),
                created_at: now,
            };
            let event = AuditEvent::new(
                "role.granted",
                "role_grant",
                Some(grant.id),
                grant_diff(&grant),
            )?;
            st.grants.insert((t, grant.id), grant.clone());
            st.audit(ctx, t, event, now);
            Ok(grant)
        })
    }

    async fn revoke_role(&self, ctx: &Context, grant: RoleGrantId) -> Result<()> {
        self.run(ctx, "RbacRepo.revoke_role", || {
            let now = self.now();
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            let found = st
                .grants
                .get(&(t, grant))
                .ok_or_else(|| Error::not_found("role grant"))?;
            st.require(ctx, t, "role.assign", found.project_id)?;
            let event =
                AuditEvent::new("role.revoked", "role_grant", Some(grant), grant_diff(found))?;
            st.grants.remove(&(t, grant));
            st.audit(ctx, t, event, now);
            Ok(())
        })
    }

    async fn list_grants(&self, ctx: &Context, user: Option<UserId>) -> Result<Vec<RoleGrant>> {
        self.run(ctx, "RbacRepo.list_grants", || {
            let st = self.lock();
            let Some(t) = st.list_tenant(ctx)? else {
                return Ok(Vec::new());
            };
            let mut out: Vec<RoleGrant> = st
                .grants
                .of_tenant(t)
                .filter(|g| user.is_none() || user == Some(g.user_id))
                .cloned()
                .collect();
            out.sort_by_key(|g| (g.created_at, g.id));
            Ok(out)
        })
    }

    async fn has_permission(
        &self,
        ctx: &Context,
        permission: &PermissionCode,
        project: Option<ProjectId>,
    ) -> Result<bool> {
        self.run(ctx, "RbacRepo.has_permission", || {
            let t = ctx.require_tenant()?;
            let st = self.lock();
            Ok(st.allows(ctx, t, permission, project))
        })
    }
}

// ---------------------------------------------------------------------------
// SSO
// ---------------------------------------------------------------------------

impl super::State {
    fn provider(&self, t: TenantId, id: SsoProviderId) -> Result<&SsoProvider> {
        self.providers
            .get(&(t, id))
            .ok_or_else(|| Error::not_found("sso provider"))
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
            st.require(ctx, t, "sso.manage", None)?;
            if st.providers.of_tenant(t).any(|p| p.name == new.name) {
                return Err(Error::conflict(
                    "sso provider",
                    format!("name={}", new.name),
                ));
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
            st.providers.insert((t, provider.id), provider.clone());
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
            let mut out: Vec<SsoProvider> = st.providers.of_tenant(t).cloned().collect();
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
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, "sso.manage", None)?;
            let p = st
                .providers
                .get_mut(&(t, id))
                .ok_or_else(|| Error::not_found("sso provider"))?;
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
            st.require(ctx, t, "sso.manage", None)?;
            let name = st.provider(t, id)?.name.clone();
            let event = AuditEvent::new(
                "sso_provider.deleted",
                "sso_provider",
                Some(id),
                Diff::new().set("name", name),
            )?;
            st.delete_provider(t, id);
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
            let subject = subject.trim();
            if subject.is_empty() || subject.chars().count() > MAX_SUBJECT_CHARS {
                return Err(Error::validation("subject", "must be 1 to 255 characters"));
            }
            let now = self.now();
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, "sso.manage", None)?;
            st.provider(t, provider)?;
            if !st.memberships.contains_key(&(t, user)) {
                return Err(Error::not_found("member"));
            }
            if st
                .identities
                .of_tenant(t)
                .any(|i| i.provider_id == provider && i.subject == subject)
            {
                return Err(Error::conflict("identity", format!("subject={subject}")));
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
            st.identities.insert((t, identity.id), identity.clone());
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
            let t = st.visible_tenant(ctx)?;
            if !st.provider(t, provider)?.enabled {
                return Err(Error::invalid_state(
                    "sso provider",
                    "the provider is disabled",
                ));
            }
            let user = st
                .identities
                .of_tenant(t)
                .find(|i| i.provider_id == provider && i.subject == subject)
                .and_then(|i| st.users.get(&i.user_id))
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
            let mut out: Vec<Identity> = st
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
            st.require(ctx, t, "sso.manage", None)?;
            if !st.identities.contains_key(&(t, id)) {
                return Err(Error::not_found("identity"));
            }
            let event = AuditEvent::new("identity.unlinked", "identity", Some(id), Diff::new())?;
            st.identities.remove(&(t, id));
            st.audit(ctx, t, event, now);
            Ok(())
        })
    }
}

// ---------------------------------------------------------------------------
// API keys
// ---------------------------------------------------------------------------

impl super::State {
    fn api_key(&self, t: TenantId, id: ApiKeyId) -> Result<&KeyRow> {
        self.api_keys
            .get(&(t, id))
            .ok_or_else(|| Error::not_found("api key"))
    }
}

#[async_trait]
impl ApiKeyRepo for MemoryBackend {
    async fn create(&self, ctx: &Context, new: NewApiKey) -> Result<IssuedApiKey> {
        self.run(ctx, "ApiKeyRepo.create", || {
            if new.permissions.is_empty() {
                return Err(Error::validation(
                    "permissions",
                    "an API key needs at least one permission",
                ));
            }
            check_known_permissions(&new.permissions, "permissions")?;
            let now = self.now();
            if new.expires_at.is_some_and(|e| e <= now) {
                return Err(Error::validation("expires_at", "must be in the future"));
            }
            let creator = ctx.require_user()?;
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            let project_id = match new.scope {
                ApiKeyScope::Tenant => None,
                ApiKeyScope::Project(p) => Some(st.project(ctx, t, p)?.id),
                ApiKeyScope::Environment(e) => Some(st.environment(ctx, t, e)?.project_id),
            };
            st.require(ctx, t, "api_key.manage", project_id)?;
            if let Some(missing) = new
                .permissions
                .iter()
                .find(|p| !st.allows(ctx, t, p, project_id))
            {
                return Err(Error::denied(missing.to_string()));
            }
            let issued = issue(TokenKind::ApiKey, &self.hasher);
            let key = ApiKey {
                id: ApiKeyId::new(),
                tenant_id: t,
                name: new.name,
                prefix: issued.prefix,
                scope: new.scope,
                project_id,
                permissions: normalized(new.permissions),
                created_by: Some(creator),
                expires_at: new.expires_at,
                last_used_at: None,
                revoked_at: None,
                created_at: now,
            };
            let environment_id = match key.scope {
                ApiKeyScope::Environment(e) => Some(e),
                _ => None,
            };
            let event = AuditEvent::new(
                "api_key.created",
                "api_key",
                Some(key.id),
                Diff::new()
                    .set("name", &key.name)
                    .set("prefix", &key.prefix)
                    .set("permissions", &key.permissions)
                    .set("project_id", key.project_id)
                    .set("environment_id", environment_id),
            )?;
            st.audit(ctx, t, event, now);
            st.insert_api_key(KeyRow {
                key: key.clone(),
                hash: issued.hash,
            });
            Ok(IssuedApiKey {
                key,
                secret: issued.token,
            })
        })
    }

    async fn list(&self, ctx: &Context) -> Result<Vec<ApiKey>> {
        self.run(ctx, "ApiKeyRepo.list", || {
            let st = self.lock();
            let Some(t) = st.list_tenant(ctx)? else {
                return Ok(Vec::new());
            };
            st.require(ctx, t, "api_key.manage", None)?;
            let mut out: Vec<ApiKey> = st.api_keys.of_tenant(t).map(|k| k.key.clone()).collect();
            out.sort_by_key(|k| (k.created_at, k.id));
            Ok(out)
        })
    }

    async fn get(&self, ctx: &Context, id: ApiKeyId) -> Result<ApiKey> {
        self.run(ctx, "ApiKeyRepo.get", || {
            let st = self.lock();
            let t = st.visible_tenant(ctx)?;
            st.require(ctx, t, "api_key.manage", None)?;
            Ok(st.api_key(t, id)?.key.clone())
        })
    }

    async fn revoke(&self, ctx: &Context, id: ApiKeyId) -> Result<ApiKey> {
        self.run(ctx, "ApiKeyRepo.revoke", || {
            let now = self.now();
            let mut st = self.lock();
            let t = st.visible_tenant(ctx)?;
            let level = st.api_key(t, id)?.key.project_id;
            st.require(ctx, t, "api_key.manage", level)?;
            let row = st
                .api_keys
                .get_mut(&(t, id))
                .ok_or_else(|| Error::not_found("api key"))?;
            if row.key.revoked_at.is_some() {
                return Ok(row.key.clone());
            }
            let event = AuditEvent::new("api_key.revoked", "api_key", Some(id), Diff::new())?;
            row.key.revoked_at = Some(now);
            let revoked = row.key.clone();
            st.audit(ctx, t, event, now);
            Ok(revoked)
        })
    }

    async fn verify(&self, ctx: &Context, presented: &SecretString) -> Result<Context> {
        self.run(ctx, "ApiKeyRepo.verify", || {
            let presented = presented.expose_secret();
            let reject = |r| Error::unauthenticated("api key", r);
            let prefix = prefix_of(TokenKind::ApiKey, presented).map_err(reject)?;
            let now = self.now();
            let mut st = self.lock();
            let key = st
                .api_keys_with_prefix(prefix)
                .find(|key| {
                    st.api_keys
                        .get(key)
                        .is_some_and(|k| self.hasher.matches(presented, &k.hash))
                })
                .ok_or_else(|| reject(TokenRejection::Unknown))?;
            let row = st
                .api_keys
                .get_mut(&key)
                .ok_or_else(|| reject(TokenRejection::Unknown))?;
            if row.key.revoked_at.is_some() {
                return Err(reject(TokenRejection::Revoked));
            }
            if row.key.expires_at.is_some_and(|e| now >= e) {
                return Err(reject(TokenRejection::Expired));
            }
            let first_use = row.key.last_used_at.is_none();
            let event = if first_use {
                Some(AuditEvent::new(
                    "api_key.first_used",
                    "api_key",
                    Some(row.key.id),
                    Diff::new(),
                )?)
            } else {
                None
            };
            row.key.last_used_at = Some(now);
            let principal = ApiKeyPrincipal {
                key_id: row.key.id,
                tenant_id: row.key.tenant_id,
                project_id: row.key.project_id,
                environment_id: row.environment_id(),
                permissions: row.key.permissions.clone(),
            };
            if let Some(event) = event {
                // The key acts, whoever called verify (usually the system).
                let (t, actor) = (principal.tenant_id, Actor::ApiKey(principal.key_id));
                st.append_audit(t, actor, ctx.request(), event, now);
            }
            Ok(Context::api_key(principal).with_request(ctx.request().clone()))
        })
    }
}
