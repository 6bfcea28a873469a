//! Global user accounts: the row, its input and [`UserRepo`].

use crate::context::Context;
use crate::error::Result;
use crate::ids::*;
use crate::values::{Email, Name};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// A global user account. The password hash is never exposed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// Unique (case-insensitive) email.
    pub email: Email,
    /// Display name.
    pub full_name: Option<Name>,
    /// Whether the user has a password set.
    pub has_password: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// Input of [`UserRepo::create_user`](super::UserRepo::create_user).
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Unique email.
    pub email: Email,
    /// Display name.
    pub full_name: Option<Name>,
}

/// Global user accounts and their passwords.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait UserRepo: Send + Sync {
    /// Registers a user without a password or tenant (provisioning, e.g.
    /// an SSO just-in-time login). System principals only; a user signing
    /// themselves up goes through [`AuthRepo::sign_up`](super::AuthRepo::sign_up).
    /// Errors: `Conflict` on a taken email.
    async fn create_user(&self, ctx: &Context, new: NewUser) -> Result<User>;

    /// A user the principal may see: itself, a member of a shared tenant, or
    /// anyone for the system.
    async fn get_user(&self, ctx: &Context, id: UserId) -> Result<User>;

    /// Looks a user up by email, with the visibility of [`Self::get_user`].
    async fn find_user_by_email(&self, ctx: &Context, email: &Email) -> Result<Option<User>>;

    /// Changes the acting user's own display name.
    async fn update_profile(&self, ctx: &Context, full_name: Option<Name>) -> Result<User>;

    /// Sets a password (argon2id, PHC string). The user itself or the system.
    /// Errors: `Validation` for a password shorter than 8 characters.
    async fn set_password(
        &self,
        ctx: &Context,
        user: UserId,
        password: &SecretString,
    ) -> Result<()>;
}
