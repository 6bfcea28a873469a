//! In-memory tenancy: tenants, users, memberships and invitations, teams,
//! roles and grants, SSO providers and identities, API keys.
//!
//! Rule guarded here: each operation follows behaviour.md's check order
//! (validation → tenant visible → permission → row exists → state and
//! uniqueness) and only then mutates, so a failed call writes nothing.
//! Permissions are decided by core's `UserFacts::allows` / `api_key_allows`;
//! tokens and passwords are stored only as hashes.
//!
//! Every mutation the audit spec lists appends its event in the same locked
//! mutation, built (and so validated) before anything changes, and only
//! when something changed: a no-op early return and a failed call write no
//! entry. Users and teams are not audited (deliberately).
//!
//! Creating a tenant, a team or a role, and signing up, honour the
//! request's idempotency key: the replay is looked up after the permission
//! check and before uniqueness (`IdempotencyState::replayed`), and the key
//! is remembered in the mutation that makes the row
//! (`IdempotencyState::remember`), so a failed call leaves it unused.
//!
//! The tables live in [`state`] ([`TenancyState`]); each file below holds
//! one concept's repository calls and the hooks its rows need.

mod api_keys;
mod auth;
mod members;
mod rbac;
mod sso;
mod state;
mod teams;
mod tenants;
mod users;

pub(crate) use state::{InvitationRow, KeyRow, TenancyState, UserRow};

use insightpulse_core::PermissionCode;

/// Sorted and deduplicated permission codes.
fn normalized(mut codes: Vec<PermissionCode>) -> Vec<PermissionCode> {
    codes.sort();
    codes.dedup();
    codes
}
