//! # insightpulse-testing
//!
//! Everything a host application (and the SDK itself) needs to test code
//! built on InsightPulse Core without a database:
//!
//! | module | what it is for |
//! |---|---|
//! | [`memory`] | [`MemoryBackend`](memory::MemoryBackend): every repository trait in memory, obeying the same rules as PostgreSQL |
//! | [`fixtures`] | builders: a user, a tenant with its owner, a member with a role, projects, API keys |
//! | [`conformance`] | the behaviour suite both backends must pass, and the [`conformance_tests!`] macro that runs it |
//! | `mocks` (feature `mocks`) | the mockall mocks of the repository traits core exports, for unit tests of host code |
//!
//! The in-memory backend is checked by the very suite that checks the
//! PostgreSQL backend, so a test written against it means the same thing in
//! production.
//!
//! ```
//! use insightpulse_core::projects::NewProject;
//! use insightpulse_core::{Error, Name, Slug};
//! use insightpulse_testing::{fixtures, memory::MemoryBackend};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let repos = MemoryBackend::new().repos();
//! let (tenant, _owner, owner_ctx) = fixtures::tenant_with_owner(&repos, "acme").await;
//! let (_viewer, viewer_ctx) =
//!     fixtures::member_with_role(&repos, &owner_ctx, "viewer@acme.io", Some("Viewer")).await;
//!
//! let new = NewProject { slug: Slug::parse("web").unwrap(), name: Name::parse("Web").unwrap(), description: None };
//! let project = repos.projects.create_project(&owner_ctx, new.clone()).await.unwrap();
//! assert_eq!(project.tenant_id, tenant.id);
//!
//! // A viewer may read projects but not create them.
//! assert_eq!(repos.projects.list_projects(&viewer_ctx, false).await.unwrap().len(), 1);
//! assert!(matches!(
//!     repos.projects.create_project(&viewer_ctx, new).await,
//!     Err(Error::PermissionDenied { .. })
//! ));
//! # }
//! ```

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod conformance;
pub mod differential;
pub mod fixtures;
pub mod memory;
#[cfg(feature = "mocks")]
#[cfg_attr(docsrs, doc(cfg(feature = "mocks")))]
pub mod mocks;
