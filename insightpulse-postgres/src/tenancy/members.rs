//! `MemberRepo` on PostgreSQL: memberships and invitations.
//!
//! Accepting an invitation runs as the service role: the invitee is not a
//! member yet, so no tenant policy could let them in; the token is the
//! credential, checked here before anything is written.

use super::token_lookup;
use crate::error::{db, not_found};
use crate::guard::{first_missing, is_owner, may_list, require};
use crate::privacy::{Batch, Retention};
use crate::rows::{parse, row, sql, tenant_rows};
use crate::uow::traced;
use crate::uow::Tx;
use crate::PgBackend;
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use insightpulse_core::audit::{AuditEvent, Diff};
use insightpulse_core::privacy::{hashed_email, RetentionAction};
use insightpulse_core::tenancy::tokens::{self, TokenKind};
use insightpulse_core::tenancy::{
    Invitation, IssuedInvitation, MemberRepo, Membership, MembershipStatus, NewInvitation,
    RoleScope,
};
use insightpulse_core::{
    Context, Credential, Email, Entity, Error, ExposeSecret, InvitationId, PermissionCode,
    Rejection, Requirement, Result, RoleId, SecretString, StateRule, TenantId, UserId,
};
use uuid::Uuid;

row! {
    struct MemberRow {
        tenant_id: Uuid,
        user_id: Uuid,
        is_owner: bool,
        #[sql = "status::text"]
        status: String,
        created_at: DateTime<Utc>,
    }
}

impl TryFrom<MemberRow> for Membership {
    type Error = Error;
    fn try_from(r: MemberRow) -> Result<Self> {
        Ok(Membership {
            tenant_id: TenantId(r.tenant_id),
            user_id: UserId(r.user_id),
            is_owner: r.is_owner,
            status: parse(&r.status, str::parse)?,
            created_at: r.created_at,
        })
    }
}

row! {
    struct InvitationRow {
        tenant_id: Uuid,
        id: Uuid,
        email: String,
        role_id: Option<Uuid>,
        invited_by: Option<Uuid>,
        expires_at: DateTime<Utc>,
        accepted_at: Option<DateTime<Utc>>,
        revoked_at: Option<DateTime<Utc>>,
        created_at: DateTime<Utc>,
    }
}

impl TryFrom<InvitationRow> for Invitation {
    type Error = Error;
    fn try_from(r: InvitationRow) -> Result<Self> {
        Ok(Invitation {
            id: InvitationId(r.id),
            tenant_id: TenantId(r.tenant_id),
            email: parse(&r.email, Email::parse)?,
            role_id: r.role_id.map(RoleId),
            invited_by: r.invited_by.map(UserId),
            expires_at: r.expires_at,
            accepted_at: r.accepted_at,
            revoked_at: r.revoked_at,
            created_at: r.created_at,
        })
    }
}

async fn membership(tx: &mut Tx, tenant: TenantId, user: UserId, lock: bool) -> Result<MemberRow> {
    const SELECT: &str = sql!(
        "SELECT ",
        MemberRow::COLUMNS,
        " FROM org_memberships WHERE tenant_id = $1 AND user_id = $2"
    );
    tx.query_as(if lock {
        sql!(SELECT, " FOR UPDATE")
    } else {
        SELECT
    })
    .bind(tenant.0)
    .bind(user.0)
    .fetch_one(&mut **tx)
    .await
    .map_err(not_found(Entity::Member))
}

/// The owner rules shared by suspend, reactivate and remove: acting on an
/// owner needs an owner, and the last active owner must stay.
async fn check_owner_rules(
    tx: &mut Tx,
    ctx: &Context,
    tenant: TenantId,
    target: &MemberRow,
    keeps_target_active: bool,
) -> Result<()> {
    if !target.is_owner {
        return Ok(());
    }
    if !is_owner(tx, ctx, tenant).await? {
        return Err(Error::denied(Requirement::TenantOwner));
    }
    if !keeps_target_active && target.status == "active" {
        let others: i64 = tx
            .query_scalar(
                "SELECT count(*) FROM org_memberships
              WHERE tenant_id = $1 AND user_id <> $2 AND is_owner AND status = 'active'",
            )
            .bind(tenant.0)
            .bind(target.user_id)
            .fetch_one(&mut **tx)
            .await
            .map_err(db)?;
        if others == 0 {
            return Err(Error::invalid_state(
                Entity::Member,
                StateRule::LastActiveOwner,
            ));
        }
    }
    Ok(())
}

/// Permissions of a role visible in `tenant` (built-in or the tenant's own),
/// with its scope; `NotFound` otherwise.
pub(crate) async fn role_permissions(
    tx: &mut Tx,
    tenant: TenantId,
    role: RoleId,
) -> Result<(RoleScope, Vec<PermissionCode>)> {
    let (scope, codes): (String, Vec<String>) = tx.query_as(
        "SELECT r.scope::text,
                array(SELECT p.code FROM role_permissions rp JOIN permissions p ON p.id = rp.permission_id
                       WHERE rp.role_id = r.id ORDER BY p.code COLLATE \"C\")
           FROM roles r WHERE r.id = $1 AND (r.tenant_id IS NULL OR r.tenant_id = $2)",
    )
    .bind(role.0)
    .bind(tenant.0)
    .fetch_one(&mut **tx)
    .await
    .map_err(not_found(Entity::Role))?;
    let perms = codes
        .iter()
        .map(|c| parse(c, PermissionCode::parse))
        .collect::<Result<_>>()?;
    Ok((parse(&scope, str::parse)?, perms))
}

/// The tenants `user` is a member of, in id order.
pub(crate) async fn tenants_of(tx: &mut Tx, user: UserId) -> Result<Vec<TenantId>> {
    let ids: Vec<Uuid> = tx
        .query_scalar("SELECT tenant_id FROM org_memberships WHERE user_id = $1 ORDER BY tenant_id")
        .bind(user.0)
        .fetch_all(&mut **tx)
        .await
        .map_err(db)?;
    Ok(ids.into_iter().map(TenantId).collect())
}

/// Removes every membership of `user` (privacy's erasure hook), with their
/// grants and team memberships (ON DELETE CASCADE); the last active owner
/// of a tenant is refused by the `tenant_has_active_owner` trigger, and
/// nothing is changed. Returns how many.
pub(crate) async fn erase_memberships(tx: &mut Tx, user: UserId) -> Result<u64> {
    Ok(tx
        .query("DELETE FROM org_memberships WHERE user_id = $1")
        .bind(user.0)
        .execute(&mut **tx)
        .await
        .map_err(db)?
        .rows_affected())
}

/// Removes every invitation to `email`, in every tenant (privacy's erasure
/// hook). Returns how many.
pub(crate) async fn erase_invitations(tx: &mut Tx, email: &str) -> Result<u64> {
    Ok(tx
        .query("DELETE FROM invitations WHERE email = $1")
        .bind(email)
        .execute(&mut **tx)
        .await
        .map_err(db)?
        .rows_affected())
}

/// Retention of `run.tenant`'s invitations (privacy's hook): only those
/// that can no longer be used (accepted, revoked or expired) and were made
/// before the cutoff, deleted, or their email hashed (the only rule
/// invitations allow).
pub(crate) async fn retire_invitations(tx: &mut Tx, run: &Retention<'_>) -> Result<Batch> {
    let delete = matches!(run.action, RetentionAction::Delete);
    let ids: Vec<(Uuid, String)> = tx
        .query_as(
            "SELECT id, email FROM invitations
              WHERE tenant_id = $1 AND created_at < $2
                AND (accepted_at IS NOT NULL OR revoked_at IS NOT NULL OR expires_at <= $3)
                AND ($4 OR email NOT LIKE '%@anonymized.invalid')
              ORDER BY created_at, id LIMIT $5",
        )
        .bind(run.tenant.0)
        .bind(run.cutoff)
        .bind(run.now)
        .bind(delete)
        .bind(i64::from(run.limit))
        .fetch_all(&mut **tx)
        .await
        .map_err(db)?;
    let (ids, emails): (Vec<Uuid>, Vec<String>) = if delete {
        ids.into_iter().unzip()
    } else {
        ids.into_iter()
            .map(|(id, email)| (id, hashed_email(&email)))
            .unzip()
    };
    let n = if delete {
        tx.query("DELETE FROM invitations WHERE tenant_id = $1 AND id = ANY ($2)")
            .bind(run.tenant.0)
            .bind(&ids)
    } else {
        tx.query(
            "UPDATE invitations i SET email = v.email
               FROM unnest($2::uuid[], $3::text[]) AS v (id, email)
              WHERE i.tenant_id = $1 AND i.id = v.id",
        )
        .bind(run.tenant.0)
        .bind(&ids)
        .bind(&emails)
    }
    .execute(&mut **tx)
    .await
    .map_err(db)?
    .rows_affected();
    Ok(if delete {
        Batch {
            deleted: n,
            ..Batch::default()
        }
    } else {
        Batch {
            anonymized: n,
            ..Batch::default()
        }
    })
}

impl PgBackend {
    /// Audits a change to `user`'s membership. A member acting on
    /// themselves (suspending or removing themselves) loses access to the
    /// tenant's trail with the change, so their entry is written at once,
    /// before it; any other entry travels with `COMMIT`.
    async fn audit_member_change(
        &self,
        tx: &mut Tx,
        ctx: &Context,
        tenant: TenantId,
        user: UserId,
        event: AuditEvent,
    ) -> Result<()> {
        if ctx.user_id() == Some(user) {
            self.audit_now(tx, ctx, tenant, event).await
        } else {
            self.audit(tx, ctx, tenant, event);
            Ok(())
        }
    }

    async fn set_status(
        &self,
        ctx: &Context,
        user: UserId,
        status: MembershipStatus,
    ) -> Result<Membership> {
        let tenant = ctx.require_tenant()?;
        let mut tx = self.begin(ctx).await?;
        require(
            &mut tx,
            ctx,
            tenant,
            Some(PermissionCode::MEMBER_MANAGE),
            None,
        )
        .await?;
        let target = membership(&mut tx, tenant, user, true).await?;
        check_owner_rules(
            &mut tx,
            ctx,
            tenant,
            &target,
            status == MembershipStatus::Active,
        )
        .await?;
        if target.status == status.as_str() {
            tx.commit().await.map_err(db)?;
            return target.try_into();
        }
        let action = match status {
            MembershipStatus::Active => "member.reactivated",
            MembershipStatus::Suspended => "member.suspended",
        };
        let event = AuditEvent::new(action, "user", Some(user), Diff::new())?;
        self.audit_member_change(&mut tx, ctx, tenant, user, event)
            .await?;
        let row: MemberRow = tx
            .query_as(sql!(
                "WITH r AS (UPDATE org_memberships SET status = $3::membership_status, updated_at = $4
                             WHERE tenant_id = $1 AND user_id = $2 RETURNING ",
                MemberRow::FIELDS,
                ") SELECT ",
                MemberRow::COLUMNS,
                " FROM r"
            ))
            .bind(tenant.0)
            .bind(user.0)
            .bind(status.as_str())
            .bind(self.clock.now())
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        row.try_into()
    }
}

#[async_trait]
impl MemberRepo for PgBackend {
    async fn list_members(&self, ctx: &Context) -> Result<Vec<Membership>> {
        traced!(ctx, "MemberRepo.list_members", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            let rows: Vec<MemberRow> = tenant_rows(
                &mut tx,
                sql!(
                    "SELECT ",
                    MemberRow::COLUMNS,
                    " FROM org_memberships WHERE tenant_id = $1 ORDER BY created_at, user_id"
                ),
                tenant,
            )
            .await?;
            tx.commit().await.map_err(db)?;
            rows.into_iter().map(Membership::try_from).collect()
        })
    }

    async fn get_member(&self, ctx: &Context, user: UserId) -> Result<Membership> {
        traced!(ctx, "MemberRepo.get_member", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            let row = membership(&mut tx, tenant, user, false).await?;
            tx.commit().await.map_err(db)?;
            row.try_into()
        })
    }

    async fn invite(&self, ctx: &Context, new: NewInvitation) -> Result<IssuedInvitation> {
        traced!(ctx, "MemberRepo.invite", {
            if new.valid_for < Duration::minutes(1) || new.valid_for > Duration::days(30) {
                return Err(Error::validation(
                    "valid_for",
                    "must be between 1 minute and 30 days",
                ));
            }
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            require(
                &mut tx,
                ctx,
                tenant,
                Some(PermissionCode::MEMBER_INVITE),
                None,
            )
            .await?;
            let already: bool = tx.query_scalar(
                "SELECT EXISTS (SELECT 1 FROM org_memberships m JOIN users u ON u.id = m.user_id
                                 WHERE m.tenant_id = $1 AND u.email = $2)",
            )
            .bind(tenant.0)
            .bind(new.email.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            if already {
                return Err(Error::conflict(Entity::Member, "email"));
            }
            if let Some(role) = new.role_id {
                let (scope, perms) = role_permissions(&mut tx, tenant, role).await?;
                if !scope.allows_grant(None) {
                    return Err(Error::validation(
                        "role",
                        "a project role cannot be granted tenant-wide",
                    ));
                }
                require(
                    &mut tx,
                    ctx,
                    tenant,
                    Some(PermissionCode::ROLE_ASSIGN),
                    None,
                )
                .await?;
                if let Some(missing) = first_missing(&mut tx, ctx, tenant, &perms, None).await? {
                    return Err(Error::denied(missing));
                }
            }
            let now = self.clock.now();
            let token = tokens::issue(TokenKind::Invitation, &self.hasher);
            let row: InvitationRow = tx.query_as(sql!(
                "INSERT INTO invitations (tenant_id, email, role_id, token_prefix, token_hash, invited_by, expires_at, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ",
                InvitationRow::COLUMNS
            ))
            .bind(tenant.0)
            .bind(new.email.as_str())
            .bind(new.role_id.map(|r| r.0))
            .bind(&token.prefix)
            .bind(&token.hash)
            .bind(ctx.user_id().map(|u| u.0))
            .bind(now + new.valid_for)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            let invitation: Invitation = row.try_into()?;
            tx.queue(token_lookup(&token.prefix, tenant));
            let diff = Diff::new()
                .set("role_id", invitation.role_id)
                .set("expires_at", invitation.expires_at);
            let event = AuditEvent::new("member.invited", "invitation", Some(invitation.id), diff)?;
            self.audit(&mut tx, ctx, tenant, event);
            tx.commit().await.map_err(db)?;
            Ok(IssuedInvitation {
                invitation,
                token: token.token,
            })
        })
    }

    async fn list_invitations(&self, ctx: &Context) -> Result<Vec<Invitation>> {
        traced!(ctx, "MemberRepo.list_invitations", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            if !may_list(&mut tx, ctx, tenant, PermissionCode::MEMBER_INVITE).await? {
                return Ok(vec![]);
            }
            let rows: Vec<InvitationRow> = tenant_rows(
                &mut tx,
                sql!(
                    "SELECT ",
                    InvitationRow::COLUMNS,
                    " FROM invitations WHERE tenant_id = $1 ORDER BY created_at, id"
                ),
                tenant,
            )
            .await?;
            tx.commit().await.map_err(db)?;
            rows.into_iter().map(Invitation::try_from).collect()
        })
    }

    async fn revoke_invitation(&self, ctx: &Context, id: InvitationId) -> Result<()> {
        traced!(ctx, "MemberRepo.revoke_invitation", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            require(
                &mut tx,
                ctx,
                tenant,
                Some(PermissionCode::MEMBER_INVITE),
                None,
            )
            .await?;
            let (accepted, revoked): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) = tx.query_as(
                "SELECT accepted_at, revoked_at FROM invitations WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
            )
            .bind(tenant.0)
            .bind(id.0)
            .fetch_one(&mut *tx)
            .await
            .map_err(not_found(Entity::Invitation))?;
            if accepted.is_some() {
                return Err(Error::invalid_state(
                    Entity::Invitation,
                    StateRule::InvitationAccepted,
                ));
            }
            if revoked.is_none() {
                tx.query("UPDATE invitations SET revoked_at = $3 WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.0)
                    .bind(id.0)
                    .bind(self.clock.now())
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                let event =
                    AuditEvent::new("invitation.revoked", "invitation", Some(id), Diff::new())?;
                self.audit(&mut tx, ctx, tenant, event);
            }
            tx.commit().await.map_err(db)
        })
    }

    async fn accept_invitation(&self, ctx: &Context, token: &SecretString) -> Result<Membership> {
        traced!(ctx, "MemberRepo.accept_invitation", {
            let user = ctx.require_user()?;
            let presented = token.expose_secret();
            let reject = |reason| Error::unauthenticated(Credential::InvitationToken, reason);
            let prefix = tokens::prefix_of(TokenKind::Invitation, presented).map_err(reject)?;
            let now = self.clock.now();
            let mut tx = self.begin(&Context::system("accept invitation")).await?;
            #[derive(sqlx::FromRow)]
            struct Candidate {
                #[sqlx(flatten)]
                invitation: InvitationRow,
                token_hash: Vec<u8>,
            }
            // The token's tenant first, then its row, locked, in that
            // tenant's shard alone (see migration 0012).
            let tenant_of: Option<Uuid> = tx
                .query_scalar("SELECT tenant_id FROM token_lookups WHERE prefix = $1")
                .bind(prefix)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            let candidates: Vec<Candidate> = tx
                .query_as(sql!(
                    "SELECT ",
                    InvitationRow::COLUMNS,
                    ", token_hash FROM invitations WHERE tenant_id = $2 AND token_prefix = $1 FOR UPDATE"
                ))
                .bind(prefix)
                .bind(tenant_of)
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
            let inv = candidates
                .into_iter()
                .find(|c| self.hasher.matches(presented, &c.token_hash))
                .map(|c| c.invitation)
                .ok_or(reject(Rejection::Unknown))?;
            if inv.revoked_at.is_some() {
                return Err(reject(Rejection::Revoked));
            }
            if inv.accepted_at.is_some() {
                return Err(reject(Rejection::AlreadyUsed));
            }
            if now >= inv.expires_at {
                return Err(reject(Rejection::Expired));
            }
            let email: String = tx
                .query_scalar("SELECT email FROM users WHERE id = $1")
                .bind(user.0)
                .fetch_one(&mut *tx)
                .await
                .map_err(not_found(Entity::User))?;
            if email != inv.email {
                return Err(Error::denied(Requirement::InvitedUser));
            }
            let row: MemberRow = tx.query_as(sql!(
                "WITH r AS (INSERT INTO org_memberships (tenant_id, user_id, is_owner, status, invited_by, created_at, updated_at)
                            VALUES ($1, $2, false, 'active', $3, $4, $4) RETURNING ",
                MemberRow::FIELDS,
                ") SELECT ",
                MemberRow::COLUMNS,
                " FROM r"
            ))
            .bind(inv.tenant_id)
            .bind(user.0)
            .bind(inv.invited_by)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            if let Some(role) = inv.role_id {
                tx.query(
                    "INSERT INTO user_roles (tenant_id, user_id, role_id, granted_by, created_at)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(inv.tenant_id)
                .bind(user.0)
                .bind(role)
                .bind(inv.invited_by)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            }
            tx.query("UPDATE invitations SET accepted_at = $3, accepted_by = $4 WHERE tenant_id = $1 AND id = $2")
                .bind(inv.tenant_id)
                .bind(inv.id)
                .bind(now)
                .bind(user.0)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            let diff = Diff::new()
                .set("invitation_id", inv.id)
                .set("role_id", inv.role_id);
            let event = AuditEvent::new("member.joined", "user", Some(user), diff)?;
            self.audit(&mut tx, ctx, TenantId(inv.tenant_id), event);
            tx.commit().await.map_err(db)?;
            row.try_into()
        })
    }

    async fn suspend_member(&self, ctx: &Context, user: UserId) -> Result<Membership> {
        traced!(ctx, "MemberRepo.suspend_member", {
            self.set_status(ctx, user, MembershipStatus::Suspended)
                .await
        })
    }

    async fn reactivate_member(&self, ctx: &Context, user: UserId) -> Result<Membership> {
        traced!(ctx, "MemberRepo.reactivate_member", {
            self.set_status(ctx, user, MembershipStatus::Active).await
        })
    }

    async fn remove_member(&self, ctx: &Context, user: UserId) -> Result<()> {
        traced!(ctx, "MemberRepo.remove_member", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            require(
                &mut tx,
                ctx,
                tenant,
                Some(PermissionCode::MEMBER_MANAGE),
                None,
            )
            .await?;
            let target = membership(&mut tx, tenant, user, true).await?;
            check_owner_rules(&mut tx, ctx, tenant, &target, false).await?;
            let event = AuditEvent::new("member.removed", "user", Some(user), Diff::new())?;
            self.audit_member_change(&mut tx, ctx, tenant, user, event)
                .await?;
            // Grants, team memberships and identities go with it (ON DELETE CASCADE).
            tx.query("DELETE FROM org_memberships WHERE tenant_id = $1 AND user_id = $2")
                .bind(tenant.0)
                .bind(user.0)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)
        })
    }

    async fn set_owner(&self, ctx: &Context, user: UserId, owner: bool) -> Result<Membership> {
        traced!(ctx, "MemberRepo.set_owner", {
            let tenant = ctx.require_tenant()?;
            let mut tx = self.begin(ctx).await?;
            require(&mut tx, ctx, tenant, None, None).await?;
            if !is_owner(&mut tx, ctx, tenant).await? {
                return Err(Error::denied(Requirement::TenantOwner));
            }
            let target = membership(&mut tx, tenant, user, true).await?;
            if target.is_owner == owner {
                tx.commit().await.map_err(db)?;
                return target.try_into();
            }
            if !owner {
                check_owner_rules(&mut tx, ctx, tenant, &target, false).await?;
            }
            let diff = Diff::new().change("is_owner", target.is_owner, owner);
            let event = AuditEvent::new("member.ownership_changed", "user", Some(user), diff)?;
            self.audit(&mut tx, ctx, tenant, event);
            let row: MemberRow = tx
                .query_as(sql!(
                    "WITH r AS (UPDATE org_memberships SET is_owner = $3, updated_at = $4
                                 WHERE tenant_id = $1 AND user_id = $2 RETURNING ",
                    MemberRow::FIELDS,
                    ") SELECT ",
                    MemberRow::COLUMNS,
                    " FROM r"
                ))
                .bind(tenant.0)
                .bind(user.0)
                .bind(owner)
                .bind(self.clock.now())
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            row.try_into()
        })
    }
}
