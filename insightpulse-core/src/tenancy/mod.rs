//! Module 1 of the seed — tenancy & identity: tenants, users, memberships,
//! invitations, teams, roles and permissions, SSO providers and federated
//! identities, API keys.
//!
//! Rules guarded here: a tenant's rows are reachable only by its active
//! members (and its own API keys); writes need the named permission; a
//! grant or API key never carries more than its creator holds; secrets
//! (passwords, tokens) are only ever stored hashed.

pub mod catalog;
mod model;
pub mod passwords;
mod permissions;
mod repo;
pub mod tokens;

pub use model::*;
pub use permissions::{api_key_allows, GrantFacts, UserFacts};
pub use repo::*;
