//! `AuthRepo` on PostgreSQL: sign-up, sign-in and API-key authentication,
//! the calls made before there is a context.
//!
//! Each runs as the service role, on a named system path: nobody is signed
//! in yet, so no policy could let the lookup through; the credential is
//! checked here before anything is returned or written. Authentication is
//! on every request's path, so it is one round trip (a prepared lookup by
//! the key's public prefix) unless the key's `last_used_at` is due (at most
//! once a minute per key), which costs one more.

use super::api_keys::{self, Row as KeyRow};
use super::tenants::{created_event, insert_with_owner};
use super::users::{blocking, copy, Row as UserRow, WithHash};
use crate::audit::append;
use crate::error::db;
use crate::idempotency::claim_in;
use crate::rows::sql;
use crate::uow::traced;
use crate::uow::{quote_literal, Cluster, Prepared};
use crate::PgBackend;
use async_trait::async_trait;
use insightpulse_core::audit::{Actor, AuditEvent, Diff};
use insightpulse_core::idempotency::{self, Call, Operation};
use insightpulse_core::tenancy::tokens::{self, last_use_due, TokenKind, LAST_USED_INTERVAL};
use insightpulse_core::tenancy::{
    passwords, AuthRepo, Membership, MembershipStatus, SignUp, SignedIn, SignedUp, User,
};
use insightpulse_core::{
    ApiKeyId, Context, Credential, Email, Entity, Error, ExposeSecret, Rejection, RequestMeta,
    Result, SecretString, TenantId, UserId,
};

/// The candidates for a presented key: its public prefix is unique per
/// tenant only, so there may (very rarely) be several.
const KEYS_BY_PREFIX: Prepared = Prepared {
    name: "insightpulse_keys_by_prefix",
    params: "(text)",
    sql: sql!(
        "SELECT ",
        KeyRow::COLUMNS,
        ", key_hash FROM api_keys WHERE prefix = $1"
    ),
};

/// The same on Citus: the tenant from the token lookups first, then its
/// shard alone (`insightpulse.api_keys_by_prefix`, migration 0012).
const KEYS_BY_PREFIX_ON_CITUS: Prepared = Prepared {
    name: "insightpulse_keys_by_prefix_on_citus",
    params: "(text)",
    sql: sql!(
        "SELECT ",
        KeyRow::COLUMNS,
        ", key_hash FROM api_keys_by_prefix($1) api_keys"
    ),
};

#[derive(sqlx::FromRow)]
struct Candidate {
    #[sqlx(flatten)]
    key: KeyRow,
    key_hash: Vec<u8>,
}

impl PgBackend {
    /// What a sign-up made, as the rows are now (for a replay).
    async fn signed_up(
        &self,
        user: UserId,
        tenant: TenantId,
        request: RequestMeta,
    ) -> Result<SignedUp> {
        let ctx = Context::user(user).in_tenant(tenant).with_request(request);
        let user = insightpulse_core::tenancy::UserRepo::get_user(self, &ctx, user).await?;
        let tenant = insightpulse_core::tenancy::TenantRepo::get_tenant(self, &ctx, tenant).await?;
        let membership =
            insightpulse_core::tenancy::MemberRepo::get_member(self, &ctx, user.id).await?;
        Ok(SignedUp {
            user,
            tenant,
            membership,
            ctx,
        })
    }

    /// The account with `email` and its password hash, read as the system.
    async fn account(&self, email: &Email) -> Result<Option<WithHash>> {
        let mut tx = self.begin(&Context::system("sign-in")).await?;
        let found: Option<WithHash> = tx
            .query_as(sql!(
                "SELECT ",
                UserRow::COLUMNS,
                ", password_hash FROM users WHERE email = $1"
            ))
            .bind(email.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(found)
    }

    /// Whether `password` is the account's, in the time of one argon2 check
    /// also when there is no account or no password.
    async fn password_matches(
        &self,
        password: &SecretString,
        stored: Option<String>,
    ) -> Result<bool> {
        let (password, cost) = (copy(password), self.password_cost);
        blocking(move || passwords::verify(&password, stored.as_deref(), cost)).await
    }

    /// Records a use of key `(tenant, id)` at `now` unless another request
    /// recorded one less than [`LAST_USED_INTERVAL`] ago; audits the first.
    async fn record_use(
        &self,
        tenant: TenantId,
        id: ApiKeyId,
        request: &RequestMeta,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<()> {
        let mut tx = self
            .begin(&Context::system("record an API key's use"))
            .await?;
        // The row lock orders concurrent requests: one of them records the
        // use (and, for the very first, the audit entry); the others see
        // the fresh time and leave it.
        let first_use: Option<bool> = tx
            .query_scalar(
                "UPDATE api_keys k SET last_used_at = $3
               FROM (SELECT last_used_at FROM api_keys
                      WHERE tenant_id = $1 AND id = $2 FOR UPDATE) AS before
              WHERE k.tenant_id = $1 AND k.id = $2
                AND (before.last_used_at IS NULL OR before.last_used_at <= $3 - $4::interval)
             RETURNING before.last_used_at IS NULL",
            )
            .bind(tenant.0)
            .bind(id.0)
            .bind(now)
            .bind(format!("{} seconds", LAST_USED_INTERVAL.num_seconds()))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        if first_use == Some(true) {
            let event = AuditEvent::new("api_key.first_used", "api_key", Some(id), Diff::new())?;
            append(&mut tx, tenant, &Actor::ApiKey(id), request, &event, now);
        }
        tx.commit().await.map_err(db)
    }
}

#[async_trait]
impl AuthRepo for PgBackend {
    async fn sign_up(&self, request: RequestMeta, new: SignUp) -> Result<SignedUp> {
        let system = Context::system("sign-up").with_request(request.clone());
        traced!(&system, "AuthRepo.sign_up", {
            let call = Call::new(
                Operation::SignUp,
                None,
                &(&new.email, &new.full_name, &new.tenant),
            )?;
            let password = copy(&new.password);
            let cost = self.password_cost;
            let phc = blocking(move || passwords::hash(&password, cost)).await??;
            let now = self.clock.now();
            let (user_id, tenant_id) = (UserId::new(), TenantId::new());
            let mut tx = self.begin(&system).await?;
            let scope = idempotency::sign_up_scope(&new.email);
            if let Some(tenant) =
                claim_in(&mut tx, &scope, &request, &call, tenant_id.0, now).await?
            {
                tx.commit().await.map_err(db)?;
                // Only whoever knows the password replays a sign-up.
                let account = self.account(&new.email).await?;
                let stored = account.as_ref().and_then(|a| a.password_hash.clone());
                return match account {
                    Some(a) if self.password_matches(&new.password, stored).await? => {
                        let user: User = a.user.try_into()?;
                        self.signed_up(user.id, TenantId(tenant), request.clone())
                            .await
                    }
                    _ => Err(Error::conflict(Entity::User, "email")),
                };
            }
            let row: UserRow = tx
                .query_as(sql!(
                    "INSERT INTO users (id, email, full_name, password_hash, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $5) RETURNING ",
                    UserRow::COLUMNS
                ))
                .bind(user_id.0)
                .bind(new.email.as_str())
                .bind(new.full_name.as_ref().map(|n| n.as_str()))
                .bind(phc)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
            let user: User = row.try_into()?;
            let tenant = insert_with_owner(&mut tx, tenant_id, &new.tenant, user.id, now).await?;
            let ctx = Context::user(user.id).with_request(request.clone());
            append(
                &mut tx,
                tenant.id,
                &Actor::User(user.id),
                &request,
                &created_event(&tenant)?,
                now,
            );
            tx.commit().await.map_err(db)?;
            Ok(SignedUp {
                membership: Membership {
                    tenant_id: tenant.id,
                    user_id: user.id,
                    is_owner: true,
                    status: MembershipStatus::Active,
                    created_at: now,
                },
                ctx: ctx.in_tenant(tenant.id),
                user,
                tenant,
            })
        })
    }

    async fn sign_in(
        &self,
        email: &Email,
        password: &SecretString,
        request: RequestMeta,
    ) -> Result<SignedIn> {
        let system = Context::system("sign-in").with_request(request.clone());
        traced!(&system, "AuthRepo.sign_in", {
            let account = self.account(email).await?;
            let stored = account.as_ref().and_then(|a| a.password_hash.clone());
            match account {
                Some(a) if self.password_matches(password, stored).await? => {
                    let user: User = a.user.try_into()?;
                    Ok(SignedIn {
                        ctx: Context::user(user.id).with_request(request.clone()),
                        user,
                    })
                }
                None => {
                    // The same argon2 work as a wrong password.
                    self.password_matches(password, None).await?;
                    Err(Error::unauthenticated(
                        Credential::Password,
                        Rejection::Unknown,
                    ))
                }
                Some(_) => Err(Error::unauthenticated(
                    Credential::Password,
                    Rejection::Unknown,
                )),
            }
        })
    }

    async fn authenticate(
        &self,
        presented: &SecretString,
        request: RequestMeta,
    ) -> Result<Context> {
        let system = Context::system("authenticate an API key").with_request(request.clone());
        traced!(&system, "AuthRepo.authenticate", {
            let presented = presented.expose_secret();
            let reject = |reason| Error::unauthenticated(Credential::ApiKey, reason);
            let prefix = tokens::prefix_of(TokenKind::ApiKey, presented).map_err(reject)?;
            let now = self.clock.now();
            let by_prefix = match self.cluster().await? {
                Cluster::Postgres => &KEYS_BY_PREFIX,
                Cluster::Citus => &KEYS_BY_PREFIX_ON_CITUS,
            };
            let candidates: Vec<Candidate> = self
                .read_once(&system, by_prefix, &[quote_literal(prefix)])
                .await?;
            let key = candidates
                .into_iter()
                .find(|c| self.hasher.matches(presented, &c.key_hash))
                .map(|c| c.key)
                .ok_or(reject(Rejection::Unknown))?;
            tokens::usable(key.revoked_at, key.expires_at, now).map_err(reject)?;
            let principal = api_keys::principal(&key)?;
            if last_use_due(key.last_used_at, now) {
                self.record_use(principal.tenant_id, principal.key_id, &request, now)
                    .await?;
            }
            Ok(Context::api_key(principal).with_request(request.clone()))
        })
    }
}
