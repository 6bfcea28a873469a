//! Who is acting, in which tenant, on behalf of which request.
//!
//! Rule: every repository call takes a `&Context`. There is no unscoped path
//! to tenant data; system access is a principal of its own that names its
//! reason, so it shows up in traces and the audit log.

use crate::error::{Error, Requirement, Result};
use crate::ids::{ApiKeyId, EnvironmentId, ProjectId, TenantId, UserId};
use crate::values::{IdempotencyKey, PermissionCode};
use std::borrow::Cow;
use std::net::IpAddr;

/// The identity of a verified API key, as carried by a [`Context`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyPrincipal {
    /// The key.
    pub key_id: ApiKeyId,
    /// The only tenant the key acts in.
    pub tenant_id: TenantId,
    /// The project the key is limited to, if any.
    pub project_id: Option<ProjectId>,
    /// The environment the key is limited to, if any.
    pub environment_id: Option<EnvironmentId>,
    /// Exactly the permissions the key was created with.
    pub permissions: Vec<PermissionCode>,
}

/// The acting principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A signed-in user.
    User(UserId),
    /// A verified API key.
    ApiKey(ApiKeyPrincipal),
    /// The host application itself, acting outside any user's rights
    /// (sign-up, SSO login, jobs). Bypasses row-level security; use sparingly.
    System {
        /// Why system access is needed; shows up in traces and audit rows.
        reason: Cow<'static, str>,
    },
}

/// The kind of a principal, for traces and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// [`Principal::User`].
    User,
    /// [`Principal::ApiKey`].
    ApiKey,
    /// [`Principal::System`].
    System,
}

impl PrincipalKind {
    /// `user`, `api_key` or `system`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::ApiKey => "api_key",
            Self::System => "system",
        }
    }
}

/// Request metadata: recorded with audited actions, and the request's
/// idempotency key.
///
/// ```
/// use insightpulse_core::{IdempotencyKey, RequestMeta};
/// let meta = RequestMeta::default()
///     .with_request_id("req-42")
///     .with_ip("203.0.113.7".parse().unwrap())
///     .with_idempotency_key(IdempotencyKey::parse("signup-form-5f2c").unwrap());
/// assert_eq!(meta.request_id.as_deref(), Some("req-42"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestMeta {
    /// The host app's request or trace id.
    pub request_id: Option<String>,
    /// The client's address.
    pub ip: Option<IpAddr>,
    /// The client's user agent.
    pub user_agent: Option<String>,
    /// The client's idempotency key (e.g. an `Idempotency-Key` header). A
    /// create call repeated with the same key and the same input returns
    /// the row the first call made instead of making another one; see
    /// [`IdempotencyKey`] for which calls honour it.
    pub idempotency_key: Option<IdempotencyKey>,
}

impl RequestMeta {
    /// Sets the request id.
    pub fn with_request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }
    /// Sets the client's address.
    pub fn with_ip(mut self, ip: IpAddr) -> Self {
        self.ip = Some(ip);
        self
    }
    /// Sets the client's user agent.
    pub fn with_user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }
    /// Sets the idempotency key.
    pub fn with_idempotency_key(mut self, key: IdempotencyKey) -> Self {
        self.idempotency_key = Some(key);
        self
    }
}

/// Who acts, in which tenant, for which request.
///
/// ```
/// use insightpulse_core::{Context, TenantId, UserId};
/// let alice = UserId::new();
/// let acme = TenantId::new();
/// let ctx = Context::user(alice).in_tenant(acme).with_request_id("req-42");
/// assert_eq!(ctx.user_id(), Some(alice));
/// assert_eq!(ctx.tenant_id(), Some(acme));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    principal: Principal,
    tenant: Option<TenantId>,
    request: RequestMeta,
}

impl Context {
    /// A user acting outside any tenant (e.g. listing their tenants).
    pub fn user(user: UserId) -> Self {
        Self {
            principal: Principal::User(user),
            tenant: None,
            request: RequestMeta::default(),
        }
    }

    /// The system acting for a stated reason.
    pub fn system(reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            principal: Principal::System {
                reason: reason.into(),
            },
            tenant: None,
            request: RequestMeta::default(),
        }
    }

    /// A verified API key; its tenant is fixed by the key.
    pub fn api_key(key: ApiKeyPrincipal) -> Self {
        let tenant = Some(key.tenant_id);
        Self {
            principal: Principal::ApiKey(key),
            tenant,
            request: RequestMeta::default(),
        }
    }

    /// The same principal acting in `tenant`.
    ///
    /// An API key is bound to the tenant it was created in: for an API-key
    /// context this leaves the tenant unchanged.
    pub fn in_tenant(mut self, tenant: TenantId) -> Self {
        if !matches!(self.principal, Principal::ApiKey(_)) {
            self.tenant = Some(tenant);
        }
        self
    }

    /// Attaches request metadata.
    pub fn with_request(mut self, request: RequestMeta) -> Self {
        self.request = request;
        self
    }

    /// Sets the request id.
    pub fn with_request_id(mut self, id: impl Into<String>) -> Self {
        self.request.request_id = Some(id.into());
        self
    }

    /// Sets the request's idempotency key (see [`RequestMeta::idempotency_key`]).
    pub fn with_idempotency_key(mut self, key: IdempotencyKey) -> Self {
        self.request.idempotency_key = Some(key);
        self
    }

    /// The acting principal.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The principal's kind.
    pub fn principal_kind(&self) -> PrincipalKind {
        match self.principal {
            Principal::User(_) => PrincipalKind::User,
            Principal::ApiKey(_) => PrincipalKind::ApiKey,
            Principal::System { .. } => PrincipalKind::System,
        }
    }

    /// The acting user, if the principal is a user.
    pub fn user_id(&self) -> Option<UserId> {
        match self.principal {
            Principal::User(u) => Some(u),
            _ => None,
        }
    }

    /// The acting API key, if the principal is one.
    pub fn api_key_principal(&self) -> Option<&ApiKeyPrincipal> {
        match &self.principal {
            Principal::ApiKey(k) => Some(k),
            _ => None,
        }
    }

    /// Whether this is system access.
    pub fn is_system(&self) -> bool {
        matches!(self.principal, Principal::System { .. })
    }

    /// The tenant the call acts in, if any.
    pub fn tenant_id(&self) -> Option<TenantId> {
        self.tenant
    }

    /// The tenant the call acts in, or a validation error for calls that
    /// need one.
    pub fn require_tenant(&self) -> Result<TenantId> {
        self.tenant.ok_or_else(|| {
            Error::validation("context", "this call needs a tenant (Context::in_tenant)")
        })
    }

    /// The acting user, or `PermissionDenied` (requires a user) for API
    /// keys and the system.
    pub fn require_user(&self) -> Result<UserId> {
        self.user_id()
            .ok_or_else(|| Error::denied(Requirement::User))
    }

    /// `Ok` for the system, `PermissionDenied` (requires the system) otherwise.
    pub fn require_system(&self) -> Result<()> {
        if self.is_system() {
            Ok(())
        } else {
            Err(Error::denied(Requirement::System))
        }
    }

    /// Request metadata.
    pub fn request(&self) -> &RequestMeta {
        &self.request
    }
}
