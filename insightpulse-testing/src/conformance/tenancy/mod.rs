//! Conformance cases of the tenancy module, one file per concept as in
//! `insightpulse-core/src/tenancy` and the backends: tenants, users and
//! passwords, memberships and invitations, teams, roles and grants with the
//! permission check, SSO, API keys, and authentication (sign-up, sign-in,
//! API-key contexts).
//!
//! Rule guarded here: every backend gives a principal exactly the rows it may
//! see (other tenants' rows are `NotFound`, their lists empty), exactly the
//! permissions core's evaluator grants, and refuses bad input, missing rights,
//! duplicates and forbidden transitions with the typed error of
//! behaviour.md — writing nothing when it refuses.
//!
//! The cases are re-exported here, so `conformance::tenancy::<case>` names
//! each one whatever file holds it.

mod api_keys;
mod auth;
mod invitations;
mod members;
mod rbac;
mod sso;
mod teams;
mod tenants;
mod users;

pub use api_keys::*;
pub use auth::*;
pub use invitations::*;
pub use members::*;
pub use rbac::*;
pub use sso::*;
pub use teams::*;
pub use tenants::*;
pub use users::*;

use crate::fixtures::*;
use chrono::Duration;
use insightpulse_core::tenancy::tokens::{issue, TokenHasher, TokenKind};
use insightpulse_core::tenancy::{NewInvitation, SsoConfig};
use insightpulse_core::{Context, ExposeSecret, RoleId, SecretString};

/// Replaces the last character of a token with another valid one: the same
/// lookup prefix, a secret that does not match.
pub(crate) fn tampered(token: &SecretString) -> SecretString {
    let mut s = token.expose_secret().to_owned();
    let last = s.pop().expect("non-empty token");
    s.push(if last == 'a' { 'b' } else { 'a' });
    SecretString::from(s)
}

/// A well-formed token of `kind` that no backend has ever issued.
pub(crate) fn foreign_token(kind: TokenKind) -> SecretString {
    let pepper = b"another deployment's pepper, 32+ bytes long".to_vec();
    issue(
        kind,
        &TokenHasher::new(pepper).expect("pepper is long enough"),
    )
    .token
}

/// A valid SAML configuration.
pub(crate) fn saml_config() -> SsoConfig {
    SsoConfig::Saml {
        idp_entity_id: "https://idp.example.com/metadata".to_owned(),
        sso_url: "https://idp.example.com/sso".parse().unwrap(),
        x509_certificate_pem:
            "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----"
                .to_owned(),
    }
}

/// A valid OIDC configuration.
pub(crate) fn oidc_config() -> SsoConfig {
    SsoConfig::Oidc {
        issuer: "https://login.example.com".parse().unwrap(),
        client_id: "insightpulse".to_owned(),
        client_secret_ref: "secret://okta-client-secret".to_owned(),
        scopes: vec!["openid".to_owned(), "email".to_owned()],
    }
}

/// An invitation of `email_address`.
pub(crate) fn invitation(
    email_address: &str,
    role_id: Option<RoleId>,
    valid_for: Duration,
) -> NewInvitation {
    NewInvitation {
        email: email(email_address),
        role_id,
        valid_for,
    }
}

/// Creates project `s`, returning the call's result (unlike
/// [`crate::fixtures::project`], which panics on an error).
pub(crate) async fn project_create(
    r: &insightpulse_core::Repos,
    ctx: &Context,
    s: &str,
) -> insightpulse_core::Result<insightpulse_core::projects::Project> {
    r.projects
        .create_project(
            ctx,
            insightpulse_core::projects::NewProject {
                slug: slug(s),
                name: name(s),
                description: None,
            },
        )
        .await
}
