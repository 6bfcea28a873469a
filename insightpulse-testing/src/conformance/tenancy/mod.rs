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
mod audited;
mod auth;
mod invitations;
mod members;
mod rbac;
mod sso;
mod teams;
mod tenants;
mod users;

pub use api_keys::*;
pub use audited::*;
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

/// This module's conformance cases, for [`conformance_tests!`](crate::conformance_tests):
/// a new case is listed here, next to its module.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases_tenancy {
    ($backend:tt) => {
        $crate::__conformance_module!($backend tenancy [
            create_tenant_makes_creator_owner_and_admin,
            create_tenant_needs_an_existing_user_and_a_free_slug,
            list_my_tenants_shows_active_memberships_by_slug,
            other_tenants_are_invisible,
            calls_without_a_tenant_are_rejected,
            update_tenant_needs_tenant_manage_and_object_settings,
            json_numbers_come_back_as_the_database_keeps_them,
            delete_tenant_is_owner_only_and_cascades,
            users_are_created_by_the_system_with_unique_emails,
            users_see_themselves_and_co_members_only,
            update_profile_changes_own_name,
            passwords_are_set_by_self_or_system_and_verified,
            sign_up_makes_user_tenant_owner_and_admin,
            sign_up_is_all_or_nothing,
            sign_up_honours_its_idempotency_key,
            sign_in_checks_email_and_password,
            authenticate_acts_with_exactly_the_keys_scope,
            authenticate_records_use_at_most_once_a_minute,
            a_keys_context_dies_with_its_tenant,
            invite_and_accept_makes_a_member_with_the_role,
            members_are_ordered_by_join_time_then_id,
            invitation_tokens_are_single_use,
            expired_invitations_are_rejected,
            revoked_invitations_are_rejected,
            malformed_and_unknown_invitation_tokens_are_rejected,
            invitations_are_bound_to_their_email,
            inviting_an_existing_member_conflicts,
            invite_needs_member_invite_and_a_valid_window,
            invite_role_must_be_visible_grantable_and_held,
            suspended_members_see_nothing_and_hold_nothing,
            removing_a_member_removes_grants_teams_and_identities,
            last_active_owner_cannot_leave,
            only_owners_act_on_owners,
            set_owner_promotes_and_demotes,
            teams_are_unique_by_slug_and_ordered,
            team_members_must_be_tenant_members,
            builtin_roles_and_catalog_are_shared_and_read_only,
            custom_roles_lifecycle,
            roles_are_ordered_by_name_then_scope,
            grants_follow_role_scope_and_tenant_boundaries,
            grants_need_role_assign_and_cannot_escalate,
            project_grant_reaches_only_its_project,
            has_permission_matrix,
            has_permission_for_api_keys,
            require_permission_guards_like_has_permission,
            get_role_by_name_follows_list_order,
            sso_providers_are_validated_and_unique,
            identities_link_subjects_to_members,
            api_key_is_shown_once_and_verifies_to_its_scope,
            api_key_creation_is_checked,
            api_key_rejections_have_reasons,
            project_scoped_key_sees_only_its_project,
            environment_scoped_key_sees_only_its_environment,
            api_keys_list_and_get_need_manage,
            tenant_changes_are_audited,
            membership_changes_are_audited,
            rbac_changes_are_audited,
            sso_changes_are_audited,
            api_key_changes_are_audited,
        ]);
    };
}
