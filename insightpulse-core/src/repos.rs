//! Every module's repository, gathered in one cloneable bundle. A backend
//! hands out a `Repos`; host code depends on the traits, not the backend.

use crate::audit::AuditRepo;
use crate::privacy::PrivacyRepo;
use crate::projects::ProjectRepo;
use crate::tenancy::{ApiKeyRepo, MemberRepo, RbacRepo, SsoRepo, TeamRepo, TenantRepo, UserRepo};
use std::sync::Arc;

/// The repositories of one backend.
#[derive(Clone)]
pub struct Repos {
    /// Tenants.
    pub tenants: Arc<dyn TenantRepo>,
    /// Users and passwords.
    pub users: Arc<dyn UserRepo>,
    /// Memberships and invitations.
    pub members: Arc<dyn MemberRepo>,
    /// Teams.
    pub teams: Arc<dyn TeamRepo>,
    /// Roles, permissions, grants and permission checks.
    pub rbac: Arc<dyn RbacRepo>,
    /// SSO providers and identities.
    pub sso: Arc<dyn SsoRepo>,
    /// API keys.
    pub api_keys: Arc<dyn ApiKeyRepo>,
    /// Projects and environments.
    pub projects: Arc<dyn ProjectRepo>,
    /// The audit trail.
    pub audit: Arc<dyn AuditRepo>,
    /// Data policies, consents and erasure.
    pub privacy: Arc<dyn PrivacyRepo>,
}

impl std::fmt::Debug for Repos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Repos { .. }")
    }
}
