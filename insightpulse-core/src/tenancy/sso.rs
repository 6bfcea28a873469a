//! SSO providers and federated identities: the rows, their inputs and
//! [`SsoRepo`].

use super::User;
use crate::context::Context;
use crate::error::Result;
use crate::ids::*;
use crate::values::Name;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Protocol-specific configuration of an SSO provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "protocol", rename_all = "snake_case")]
pub enum SsoConfig {
    /// SAML 2.0 identity provider.
    Saml {
        /// The IdP's entity id.
        idp_entity_id: String,
        /// The IdP's single-sign-on URL (https).
        sso_url: url::Url,
        /// The IdP's signing certificate, PEM encoded.
        x509_certificate_pem: String,
    },
    /// OpenID Connect provider.
    Oidc {
        /// The issuer URL (https).
        issuer: url::Url,
        /// OAuth client id.
        client_id: String,
        /// Reference to the client secret in the secrets store
        /// (e.g. `secret://okta-client-secret`); never the secret itself.
        client_secret_ref: String,
        /// Requested scopes; must include `openid`.
        scopes: Vec<String>,
    },
}

impl SsoConfig {
    /// The protocol label (`saml` or `oidc`), as stored in `sso_providers.kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Saml { .. } => "saml",
            Self::Oidc { .. } => "oidc",
        }
    }

    /// Checks the configuration; called by every backend before writing.
    pub fn validate(&self) -> Result<()> {
        use crate::Error;
        let json = serde_json::to_value(self).map_err(Error::backend)?;
        crate::values::storable_json("config", &json)?;
        let https = |u: &url::Url, field: &'static str| {
            if u.scheme() == "https" && u.host().is_some() {
                Ok(())
            } else {
                Err(Error::validation(field, "must be an https URL"))
            }
        };
        match self {
            Self::Saml {
                idp_entity_id,
                sso_url,
                x509_certificate_pem,
            } => {
                if idp_entity_id.trim().is_empty() {
                    return Err(Error::validation("idp_entity_id", "must not be empty"));
                }
                https(sso_url, "sso_url")?;
                let pem = x509_certificate_pem.trim();
                if !(pem.starts_with("-----BEGIN CERTIFICATE-----")
                    && pem.ends_with("-----END CERTIFICATE-----"))
                {
                    return Err(Error::validation(
                        "x509_certificate_pem",
                        "must be a PEM encoded certificate",
                    ));
                }
            }
            Self::Oidc {
                issuer,
                client_id,
                client_secret_ref,
                scopes,
            } => {
                https(issuer, "issuer")?;
                if client_id.trim().is_empty() {
                    return Err(Error::validation("client_id", "must not be empty"));
                }
                if !client_secret_ref.starts_with("secret://") || client_secret_ref.len() <= 9 {
                    return Err(Error::validation(
                        "client_secret_ref",
                        "must be a secret reference like secret://name",
                    ));
                }
                if !scopes.iter().any(|s| s == "openid") {
                    return Err(Error::validation("scopes", "must include openid"));
                }
            }
        }
        Ok(())
    }
}

/// A tenant's SAML or OIDC identity provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SsoProvider {
    /// Its id.
    pub id: SsoProviderId,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// Unique within the tenant.
    pub name: Name,
    /// Validated configuration.
    pub config: SsoConfig,
    /// Disabled providers refuse logins.
    pub enabled: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// Input of [`SsoRepo::create_provider`](super::SsoRepo::create_provider).
#[derive(Debug, Clone)]
pub struct NewSsoProvider {
    /// Unique within the tenant.
    pub name: Name,
    /// Validated before anything is written.
    pub config: SsoConfig,
}

/// An identity's subject as it is stored, linked and looked up: the
/// provider's string without surrounding whitespace, 1 to 255 characters.
/// Linking refuses anything else (`Validation{subject}`); a lookup of
/// anything else finds nobody, since nothing else is ever stored.
///
/// ```
/// use insightpulse_core::tenancy::identity_subject;
/// assert_eq!(identity_subject(" sub-1 ").unwrap(), "sub-1");
/// assert!(identity_subject("  ").is_err());
/// ```
pub fn identity_subject(raw: &str) -> Result<&str> {
    let subject = raw.trim();
    if subject.is_empty() || subject.chars().count() > 255 {
        return Err(crate::Error::validation(
            "subject",
            "must be 1 to 255 characters",
        ));
    }
    crate::values::storable_text("subject", subject)?;
    Ok(subject)
}

/// A federated identity: a subject at one of the tenant's SSO providers,
/// linked to a member of that tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Its id.
    pub id: IdentityId,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// The provider.
    pub provider_id: SsoProviderId,
    /// The provider's stable subject id (unique per provider).
    pub subject: String,
    /// The linked user.
    pub user_id: UserId,
    /// When it was linked.
    pub created_at: DateTime<Utc>,
}

/// SSO providers and federated identities of the context's tenant.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait SsoRepo: Send + Sync {
    /// Registers a provider (validated). Needs `sso.manage`.
    async fn create_provider(&self, ctx: &Context, new: NewSsoProvider) -> Result<SsoProvider>;
    /// Every provider, ordered by name. Needs `sso.manage`.
    async fn list_providers(&self, ctx: &Context) -> Result<Vec<SsoProvider>>;
    /// Changes the configuration and/or enabled flag. Needs `sso.manage`.
    async fn update_provider(
        &self,
        ctx: &Context,
        id: SsoProviderId,
        config: Option<SsoConfig>,
        enabled: Option<bool>,
    ) -> Result<SsoProvider>;
    /// Deletes a provider and its identities. Needs `sso.manage`.
    async fn delete_provider(&self, ctx: &Context, id: SsoProviderId) -> Result<()>;
    /// Links a provider subject to a member. Needs `sso.manage` (or the
    /// system, at just-in-time login). `Conflict` when the subject is
    /// already linked.
    async fn link_identity(
        &self,
        ctx: &Context,
        provider: SsoProviderId,
        subject: &str,
        user: UserId,
    ) -> Result<Identity>;
    /// The user linked to a subject. Needs `sso.manage` (or the system, at
    /// login). `InvalidState` when the provider is disabled.
    async fn find_user_by_identity(
        &self,
        ctx: &Context,
        provider: SsoProviderId,
        subject: &str,
    ) -> Result<Option<User>>;
    /// Identities of a user in the tenant. Needs `sso.manage`, except for
    /// a user's own.
    async fn list_identities(&self, ctx: &Context, user: UserId) -> Result<Vec<Identity>>;
    /// Removes a link. Needs `sso.manage`.
    async fn unlink_identity(&self, ctx: &Context, id: IdentityId) -> Result<()>;
}
