//! `UserRepo` on PostgreSQL. `authenticated` cannot read `password_hash`
//! (column privileges); only the system's sign-in path does.

use crate::error::{db, not_found};
use crate::rows::{parse, row, sql};
use crate::uow::traced;
use crate::uow::Tx;
use crate::PgBackend;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insightpulse_core::privacy::erased_email;
use insightpulse_core::tenancy::{passwords, NewUser, User, UserRepo};
use insightpulse_core::{
    Context, Email, Entity, Error, ExposeSecret, Name, Requirement, Result, SecretString, UserId,
};
use uuid::Uuid;

row! {
    pub(crate) struct Row {
        id: Uuid,
        email: String,
        full_name: Option<String>,
        has_password: bool,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    }
}

impl TryFrom<Row> for User {
    type Error = Error;
    fn try_from(r: Row) -> Result<Self> {
        Ok(User {
            id: UserId(r.id),
            email: parse(&r.email, Email::parse)?,
            full_name: r
                .full_name
                .as_deref()
                .map(|n| parse(n, Name::parse))
                .transpose()?,
            has_password: r.has_password,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct WithHash {
    #[sqlx(flatten)]
    pub user: Row,
    pub password_hash: Option<String>,
}

/// The email of `user`, whose row stays locked for the erasure (privacy's
/// hook, see [`super::erase_user`]); `NotFound` without such a user.
pub(crate) async fn lock_for_erasure(tx: &mut Tx, user: UserId) -> Result<String> {
    tx.query_scalar("SELECT email FROM users WHERE id = $1 FOR UPDATE")
        .bind(user.0)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db)?
        .ok_or_else(|| Error::not_found(Entity::User))
}

/// Scrubs the personal fields of `user`'s account: an address that names
/// nobody, no name, no password (privacy's erasure hook).
pub(crate) async fn erase(tx: &mut Tx, user: UserId, now: DateTime<Utc>) -> Result<()> {
    tx.query(
        "UPDATE users SET email = $2, full_name = NULL, password_hash = NULL, updated_at = $3
          WHERE id = $1",
    )
    .bind(user.0)
    .bind(erased_email(user))
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(())
}

/// Argon2 is deliberately slow; keep it off the async executor's threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(Error::backend)
}

pub(crate) fn copy(secret: &SecretString) -> SecretString {
    SecretString::from(secret.expose_secret().to_owned())
}

#[async_trait]
impl UserRepo for PgBackend {
    async fn create_user(&self, ctx: &Context, new: NewUser) -> Result<User> {
        traced!(ctx, "UserRepo.create_user", {
            ctx.require_system()?;
            let now = self.clock.now();
            let mut tx = self.begin(ctx).await?;
            let row: Row = tx
                .query_as(sql!(
                    "INSERT INTO users (email, full_name, created_at, updated_at)
                 VALUES ($1, $2, $3, $3) RETURNING ",
                    Row::COLUMNS
                ))
                .bind(new.email.as_str())
                .bind(new.full_name.as_ref().map(Name::as_str))
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            row.try_into()
        })
    }

    async fn get_user(&self, ctx: &Context, id: UserId) -> Result<User> {
        traced!(ctx, "UserRepo.get_user", {
            let mut tx = self.begin(ctx).await?;
            let row: Row = tx
                .query_as(sql!("SELECT ", Row::COLUMNS, " FROM users WHERE id = $1"))
                .bind(id.0)
                .fetch_one(&mut *tx)
                .await
                .map_err(not_found(Entity::User))?;
            tx.commit().await.map_err(db)?;
            row.try_into()
        })
    }

    async fn find_user_by_email(&self, ctx: &Context, email: &Email) -> Result<Option<User>> {
        traced!(ctx, "UserRepo.find_user_by_email", {
            let mut tx = self.begin(ctx).await?;
            let row: Option<Row> = tx
                .query_as(sql!(
                    "SELECT ",
                    Row::COLUMNS,
                    " FROM users WHERE email = $1"
                ))
                .bind(email.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            row.map(User::try_from).transpose()
        })
    }

    async fn update_profile(&self, ctx: &Context, full_name: Option<Name>) -> Result<User> {
        traced!(ctx, "UserRepo.update_profile", {
            let user = ctx.require_user()?;
            let mut tx = self.begin(ctx).await?;
            let row: Row = tx
                .query_as(sql!(
                    "UPDATE users SET full_name = $2, updated_at = $3 WHERE id = $1 RETURNING ",
                    Row::COLUMNS
                ))
                .bind(user.0)
                .bind(full_name.as_ref().map(Name::as_str))
                .bind(self.clock.now())
                .fetch_one(&mut *tx)
                .await
                .map_err(not_found(Entity::User))?;
            tx.commit().await.map_err(db)?;
            row.try_into()
        })
    }

    async fn set_password(
        &self,
        ctx: &Context,
        user: UserId,
        password: &SecretString,
    ) -> Result<()> {
        traced!(ctx, "UserRepo.set_password", {
            let password = copy(password);
            let cost = self.password_cost;
            let phc = blocking(move || passwords::hash(&password, cost)).await??;
            let mut tx = self.begin(ctx).await?;
            if !ctx.is_system() && ctx.user_id() != Some(user) {
                let visible: bool = tx
                    .query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)")
                    .bind(user.0)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db)?;
                return Err(if visible {
                    Error::denied(Requirement::SameUserOrSystem)
                } else {
                    Error::not_found(Entity::User)
                });
            }
            let updated = tx
                .query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
                .bind(user.0)
                .bind(phc)
                .bind(self.clock.now())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            if updated.rows_affected() == 0 {
                return Err(Error::not_found(Entity::User));
            }
            tx.commit().await.map_err(db)
        })
    }
}
