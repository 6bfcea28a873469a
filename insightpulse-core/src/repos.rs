//! Every module's repository, gathered in one cloneable bundle. A backend
//! hands out a `Repos`; host code depends on the traits, not the backend.
//!
//! Tests of host code replace single repositories and keep a backend's
//! for the rest:
//!
//! ```ignore
//! let repos = MemoryBackend::new().repos().into_builder().projects(mock_projects).build();
//! ```

use crate::audit::AuditRepo;
use crate::jobs::JobRepo;
use crate::outbox::OutboxRepo;
use crate::privacy::PrivacyRepo;
use crate::projects::ProjectRepo;
use crate::tenancy::{
    ApiKeyRepo, AuthRepo, MemberRepo, RbacRepo, SsoRepo, TeamRepo, TenantRepo, UserRepo,
};
use std::sync::Arc;

/// Declares `Repos` and its builder from one list of `field: Trait`.
macro_rules! repos {
    ($( $(#[$doc:meta])* $field:ident: $trait:ident, )+) => {
        /// The repositories of one backend.
        #[derive(Clone)]
        pub struct Repos {
            $( $(#[$doc])* pub $field: Arc<dyn $trait>, )+
        }

        /// Replaces single repositories of a [`Repos`] (e.g. with mocks),
        /// keeping the others. Made by [`Repos::into_builder`].
        #[derive(Clone)]
        pub struct ReposBuilder {
            repos: Repos,
        }

        impl ReposBuilder {
            $(
                #[doc = concat!("Uses `repo` for `", stringify!($field), "`.")]
                pub fn $field(mut self, repo: impl $trait + 'static) -> Self {
                    self.repos.$field = Arc::new(repo);
                    self
                }
            )+

            /// The bundle.
            pub fn build(self) -> Repos {
                self.repos
            }
        }
    };
}

repos! {
    /// Sign-up, sign-in and API-key authentication.
    auth: AuthRepo,
    /// Tenants.
    tenants: TenantRepo,
    /// Users and passwords.
    users: UserRepo,
    /// Memberships and invitations.
    members: MemberRepo,
    /// Teams.
    teams: TeamRepo,
    /// Roles, permissions, grants and permission checks.
    rbac: RbacRepo,
    /// SSO providers and identities.
    sso: SsoRepo,
    /// API keys.
    api_keys: ApiKeyRepo,
    /// Projects and environments.
    projects: ProjectRepo,
    /// The audit trail.
    audit: AuditRepo,
    /// Data policies, consents and erasure.
    privacy: PrivacyRepo,
    /// Domain events: publish, consume by cursor, follow as a stream.
    outbox: OutboxRepo,
    /// The job queue.
    jobs: JobRepo,
}

impl Repos {
    /// A builder that starts from these repositories.
    pub fn into_builder(self) -> ReposBuilder {
        ReposBuilder { repos: self }
    }
}

impl std::fmt::Debug for Repos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Repos { .. }")
    }
}

impl std::fmt::Debug for ReposBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReposBuilder { .. }")
    }
}
