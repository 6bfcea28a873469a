//! The calls a host makes before it has a context (sign-up, sign-in, API-key
//! authentication): their inputs and results, and [`AuthRepo`].

use super::{Membership, NewTenant, Tenant, User};
use crate::context::{Context, RequestMeta};
use crate::error::Result;
use crate::values::{Email, Name};
use async_trait::async_trait;
use secrecy::SecretString;

/// Input of [`AuthRepo::sign_up`](super::AuthRepo::sign_up): a new account
/// and its first tenant.
#[derive(Debug, Clone)]
pub struct SignUp {
    /// Unique email.
    pub email: Email,
    /// Display name.
    pub full_name: Option<Name>,
    /// The password (8 to 1024 characters); only its argon2id hash is kept.
    pub password: SecretString,
    /// The first tenant, owned by the new user.
    pub tenant: NewTenant,
}

/// What [`AuthRepo::sign_up`](super::AuthRepo::sign_up) made.
#[derive(Debug, Clone)]
pub struct SignedUp {
    /// The new account.
    pub user: User,
    /// Its first tenant.
    pub tenant: Tenant,
    /// The user's owner membership in it.
    pub membership: Membership,
    /// The new user acting in the new tenant, with the sign-up's request
    /// metadata.
    pub ctx: Context,
}

/// What [`AuthRepo::sign_in`](super::AuthRepo::sign_in) returns.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The account.
    pub user: User,
    /// The user acting in no tenant yet, with the sign-in's request
    /// metadata; pick a tenant with [`Context::in_tenant`].
    pub ctx: Context,
}

/// The calls a host makes before it has a [`Context`]: sign-up, sign-in,
/// and turning a presented API key into a context. None needs a system
/// context from the host; each runs the SDK's own, named system path.
///
/// ```no_run
/// # async fn demo(repos: insightpulse_core::Repos, bearer: insightpulse_core::SecretString) -> insightpulse_core::Result<()> {
/// use insightpulse_core::{PermissionCode, RequestMeta};
/// let ctx = repos.auth.authenticate(&bearer, RequestMeta::default().with_request_id("req-1")).await?;
/// repos.rbac.require_permission(&ctx, PermissionCode::PROJECT_CREATE, None).await?;
/// # Ok(()) }
/// ```
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait AuthRepo: Send + Sync {
    /// Signs a new user up, all or nothing: the user, their password
    /// (argon2id), their first tenant, their active owner membership and
    /// the tenant-wide `Admin` grant, audited as `tenant.created`. Returns
    /// them with the new user's context in the new tenant.
    ///
    /// Honours the request's idempotency key (scoped to the email): a
    /// repeated sign-up with the same key, input and password returns the
    /// first one's result.
    /// Errors: `Validation` (password length), `Conflict` on a taken email
    /// or slug — and then nothing is written.
    async fn sign_up(&self, request: RequestMeta, new: SignUp) -> Result<SignedUp>;

    /// Checks an email and password. Returns the user and their context
    /// (in no tenant yet; see [`Context::in_tenant`]). Errors:
    /// `Unauthenticated` (credential `password`, reason `unknown`) for an
    /// unknown email, an account without password or a wrong password —
    /// indistinguishably, also in time.
    async fn sign_in(
        &self,
        email: &Email,
        password: &SecretString,
        request: RequestMeta,
    ) -> Result<SignedIn>;

    /// Checks a presented API key and returns a context that acts with
    /// exactly the key's tenant, scope and permissions, carrying
    /// `request`. Records the time of use at most once a minute per key
    /// (and audits the first use). Errors: `Unauthenticated` (credential
    /// `api_key`) with the reason: malformed, unknown, expired or revoked.
    async fn authenticate(&self, presented: &SecretString, request: RequestMeta)
        -> Result<Context>;
}
