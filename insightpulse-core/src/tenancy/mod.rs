//! Module 1 of the seed — tenancy & identity: tenants, users, memberships,
//! invitations, teams, roles and permissions, SSO providers and federated
//! identities, API keys. One file per concept, named as in every other crate
//! (`tenants`, `users`, `auth`, `members`, `teams`, `rbac`, `sso`,
//! `api_keys`), each holding the concept's rows, inputs and repository trait.
//!
//! Rules guarded here: a tenant's rows are reachable only by its active
//! members (and its own API keys); writes need the named permission; a
//! grant or API key never carries more than its creator holds; secrets
//! (passwords, tokens) are only ever stored hashed.
//!
//! Each repository call takes the acting [`Context`](crate::Context). Reads
//! see only what the principal may see (a member sees its tenants' rows; a
//! project-scoped API key sees its project); writes check the named
//! permission in the context's tenant and return `PermissionDenied` inside
//! the tenant, `NotFound` outside it.

mod api_keys;
mod auth;
pub mod catalog;
mod members;
pub mod passwords;
mod permissions;
mod rbac;
mod sso;
mod teams;
mod tenants;
pub mod tokens;
mod users;

pub use api_keys::*;
pub use auth::*;
pub use members::*;
pub use permissions::{api_key_allows, GrantFacts, UserFacts};
pub use rbac::*;
pub use sso::*;
pub use teams::*;
pub use tenants::*;
pub use users::*;
