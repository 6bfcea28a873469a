//! The mockall mocks of the repository traits, generated in
//! `insightpulse-core` (feature `mocks`) and re-exported here so host apps
//! need one dev-dependency.
//!
//! Rule guarded here: mocks are for unit-testing host code in isolation
//! (expectations on calls); they enforce none of the SDK's rules. To test
//! behaviour against realistic data use [`crate::memory::MemoryBackend`],
//! which the conformance suite holds to the PostgreSQL backend's rules —
//! or both at once: replace single repositories of the memory backend with
//! mocks through [`MemoryBackend::repos_builder`](crate::memory::MemoryBackend::repos_builder).
//!
//! ```
//! use insightpulse_testing::mocks::{predicate, MockProjectRepo};
//! use insightpulse_core::{Entity, Error, ProjectId};
//!
//! let id = ProjectId::new();
//! let mut repo = MockProjectRepo::new();
//! repo.expect_get_project()
//!     .with(predicate::always(), predicate::eq(id))
//!     .returning(|_, _| Err(Error::not_found(Entity::Project)));
//! ```

pub use insightpulse_core::audit::MockAuditRepo;
pub use insightpulse_core::jobs::MockJobRepo;
pub use insightpulse_core::outbox::MockOutboxRepo;
pub use insightpulse_core::privacy::MockPrivacyRepo;
pub use insightpulse_core::projects::MockProjectRepo;
pub use insightpulse_core::tenancy::{
    MockApiKeyRepo, MockAuthRepo, MockMemberRepo, MockRbacRepo, MockSsoRepo, MockTeamRepo,
    MockTenantRepo, MockUserRepo,
};
/// mockall itself, for `predicate`, `Sequence` and friends.
pub use mockall;
pub use mockall::predicate;
