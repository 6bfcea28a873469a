//! The rows of the tenancy module, as the SDK hands them out, and the inputs
//! that create or change them. Secrets (password hashes, token hashes) never
//! appear in these types.

use crate::context::Context;
use crate::ids::*;
use crate::values::{Email, Name, PermissionCode, Slug, TimeZone};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A tenant (organization).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// Its id.
    pub id: TenantId,
    /// Unique URL slug.
    pub slug: Slug,
    /// Display name.
    pub name: Name,
    /// IANA time zone used for the tenant's local dates.
    pub timezone: TimeZone,
    /// Free-form settings owned by the host app (a JSON object).
    pub settings: serde_json::Value,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// Input of [`TenantRepo::create_tenant`](super::TenantRepo::create_tenant).
#[derive(Debug, Clone, Serialize)]
pub struct NewTenant {
    /// Unique URL slug.
    pub slug: Slug,
    /// Display name.
    pub name: Name,
    /// IANA time zone.
    pub timezone: TimeZone,
}

/// A partial update of a tenant; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct TenantUpdate {
    /// New display name.
    pub name: Option<Name>,
    /// New time zone.
    pub timezone: Option<TimeZone>,
    /// New settings; must be a JSON object.
    pub settings: Option<serde_json::Value>,
}

impl TenantUpdate {
    /// Checks the input; called by every backend before any I/O.
    pub fn validate(&self) -> crate::Result<()> {
        if let Some(settings) = &self.settings {
            if !settings.is_object() {
                return Err(crate::Error::validation(
                    "settings",
                    "must be a JSON object",
                ));
            }
            crate::values::storable_json("settings", settings)?;
        }
        Ok(())
    }
}

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

/// Input of [`AuthRepo::sign_up`](super::AuthRepo::sign_up): a new account
/// and its first tenant.
#[derive(Debug, Clone)]
pub struct SignUp {
    /// Unique email.
    pub email: Email,
    /// Display name.
    pub full_name: Option<Name>,
    /// The password (8 to 1024 characters); only its argon2id hash is kept.
    pub password: secrecy::SecretString,
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

/// State of a user's membership in a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MembershipStatus {
    /// Can act in the tenant.
    Active,
    /// Kept, but sees nothing and can do nothing in the tenant.
    Suspended,
}

impl MembershipStatus {
    /// The SQL enum label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }
}

parse_by_label!(
    MembershipStatus,
    "status",
    [MembershipStatus::Active, MembershipStatus::Suspended]
);

/// A user's membership in a tenant (`org_memberships`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The member.
    pub user_id: UserId,
    /// Owners hold every permission in the tenant.
    pub is_owner: bool,
    /// Active or suspended.
    pub status: MembershipStatus,
    /// When the user joined.
    pub created_at: DateTime<Utc>,
}

/// An invitation to join a tenant. The token is stored only as a hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    /// Its id.
    pub id: InvitationId,
    /// The inviting tenant.
    pub tenant_id: TenantId,
    /// Only a user with this email can accept it.
    pub email: Email,
    /// Role granted tenant-wide on acceptance, if any.
    pub role_id: Option<RoleId>,
    /// Who invited.
    pub invited_by: Option<UserId>,
    /// After this instant the token is refused.
    pub expires_at: DateTime<Utc>,
    /// Set once, when accepted.
    pub accepted_at: Option<DateTime<Utc>>,
    /// Set when withdrawn before acceptance.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// Input of [`MemberRepo::invite`](super::MemberRepo::invite).
#[derive(Debug, Clone)]
pub struct NewInvitation {
    /// Who is invited.
    pub email: Email,
    /// Role to grant on acceptance (must be grantable tenant-wide).
    pub role_id: Option<RoleId>,
    /// How long the token stays valid (1 minute to 30 days).
    pub valid_for: chrono::Duration,
}

/// An invitation together with its one-time token, returned once at creation.
#[derive(Debug)]
pub struct IssuedInvitation {
    /// The stored invitation.
    pub invitation: Invitation,
    /// The plaintext token to send to the invitee; not stored anywhere.
    pub token: secrecy::SecretString,
}

/// A team inside a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Team {
    /// Its id.
    pub id: TeamId,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// Unique within the tenant.
    pub slug: Slug,
    /// Display name.
    pub name: Name,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// Input of [`TeamRepo::create_team`](super::TeamRepo::create_team).
#[derive(Debug, Clone, Serialize)]
pub struct NewTeam {
    /// Unique within the tenant.
    pub slug: Slug,
    /// Display name.
    pub name: Name,
}

/// Where a role may be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleScope {
    /// Grantable tenant-wide or on a single project.
    Global,
    /// Grantable tenant-wide only.
    Org,
    /// Grantable on a single project only.
    Project,
}

impl RoleScope {
    /// The SQL enum label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Global => "global",
            Self::Org => "org",
            Self::Project => "project",
        }
    }
    /// Whether a grant at this level (`project` = `None` for tenant-wide)
    /// is allowed for a role of this scope.
    pub fn allows_grant(self, project: Option<ProjectId>) -> bool {
        match self {
            Self::Global => true,
            Self::Org => project.is_none(),
            Self::Project => project.is_some(),
        }
    }
}

parse_by_label!(
    RoleScope,
    "scope",
    [RoleScope::Global, RoleScope::Org, RoleScope::Project]
);

/// A role: a named set of permissions. Built-in roles (`tenant_id = None`)
/// are shared by every tenant and cannot be changed by tenants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// Its id.
    pub id: RoleId,
    /// `None` for a built-in role.
    pub tenant_id: Option<TenantId>,
    /// Unique per tenant (and among built-ins) and scope.
    pub name: Name,
    /// Where it may be granted.
    pub scope: RoleScope,
    /// Free text.
    pub description: Option<String>,
    /// Its permissions, sorted.
    pub permissions: Vec<PermissionCode>,
}

/// Input of [`RbacRepo::create_role`](super::RbacRepo::create_role).
#[derive(Debug, Clone, Serialize)]
pub struct NewRole {
    /// Unique within the tenant and scope.
    pub name: Name,
    /// Where it may be granted.
    pub scope: RoleScope,
    /// Free text.
    pub description: Option<String>,
    /// Its permissions; each must exist in the catalog.
    pub permissions: Vec<PermissionCode>,
}

/// A permission of the global catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permission {
    /// e.g. `dashboard.delete`.
    pub code: PermissionCode,
    /// What it allows.
    pub description: String,
}

/// A role granted to a user, tenant-wide or on one project (`user_roles`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleGrant {
    /// Its id.
    pub id: RoleGrantId,
    /// The tenant.
    pub tenant_id: TenantId,
    /// The grantee.
    pub user_id: UserId,
    /// The role.
    pub role_id: RoleId,
    /// `None` for a tenant-wide grant.
    pub project_id: Option<ProjectId>,
    /// Who granted it (`None` for system grants).
    pub granted_by: Option<UserId>,
    /// When.
    pub created_at: DateTime<Utc>,
}

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
    pub fn validate(&self) -> crate::Result<()> {
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
pub fn identity_subject(raw: &str) -> crate::Result<&str> {
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

/// What an API key may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scope", content = "id", rename_all = "snake_case")]
pub enum ApiKeyScope {
    /// The whole tenant.
    Tenant,
    /// One project.
    Project(ProjectId),
    /// One environment (and so one project).
    Environment(EnvironmentId),
}

/// An API key's stored metadata; the secret is never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Its id.
    pub id: ApiKeyId,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// Display name.
    pub name: Name,
    /// The public lookup prefix, safe to show (`ipk_xxxxxxxxxxxxxxxx`).
    pub prefix: String,
    /// What it may reach.
    pub scope: ApiKeyScope,
    /// The project it is limited to (set for project and environment keys).
    pub project_id: Option<ProjectId>,
    /// Exactly what it may do.
    pub permissions: Vec<PermissionCode>,
    /// The user who created it.
    pub created_by: Option<UserId>,
    /// After this instant the key is refused.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last successful verification.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Set when revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// Input of [`ApiKeyRepo::create_api_key`](super::ApiKeyRepo::create_api_key).
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// Display name.
    pub name: Name,
    /// What it may reach.
    pub scope: ApiKeyScope,
    /// What it may do: a non-empty subset of the creator's permissions at
    /// that scope.
    pub permissions: Vec<PermissionCode>,
    /// Optional expiry (must be in the future).
    pub expires_at: Option<DateTime<Utc>>,
}

/// A new API key with its plaintext, returned exactly once.
#[derive(Debug)]
pub struct IssuedApiKey {
    /// The stored metadata.
    pub key: ApiKey,
    /// The plaintext key to hand to the client; not stored anywhere.
    pub secret: secrecy::SecretString,
}
