//! The generator's model: what probably exists, by logical name, as the
//! fake's answers say. Generators read it to make mostly valid calls and
//! update it in their `observe`.

use super::ops::{Ref, Who};
use insightpulse_core::tenancy::catalog::BUILTIN_ROLES;
use insightpulse_core::tenancy::RoleScope;
use insightpulse_core::PermissionCode;
use std::collections::{BTreeMap, BTreeSet};

/// A generated row: its tenant and whether the fake said it was made (and
/// not deleted since).
#[derive(Debug, Clone, Copy)]
pub struct Row {
    /// Its tenant's index.
    pub tenant: u32,
    /// Made and not deleted.
    pub alive: bool,
}

/// A user of the model.
#[derive(Debug, Clone)]
pub struct UserM {
    /// Index into the email pool; `None` once erased.
    pub email: Option<u8>,
    /// Index into the password pool, if one is set.
    pub password: Option<u8>,
    /// Made.
    pub alive: bool,
}

/// A tenant of the model.
#[derive(Debug, Clone)]
pub struct TenantM {
    /// Index into the slug pool.
    pub slug: u8,
    /// Made and not deleted.
    pub alive: bool,
}

/// A membership of the model.
#[derive(Debug, Clone, Copy)]
pub struct MemberM {
    /// An owner.
    pub owner: bool,
    /// Suspended.
    pub suspended: bool,
}

/// An invitation of the model.
#[derive(Debug, Clone)]
pub struct InviteM {
    /// Its tenant.
    pub tenant: u32,
    /// The invited email.
    pub email: u8,
    /// Made.
    pub alive: bool,
    /// Accepted or revoked.
    pub used: bool,
    /// The step that made it, and its lifetime in seconds.
    pub made: (usize, i64),
}

/// A role of the model (the built-ins first).
#[derive(Debug, Clone)]
pub struct RoleM {
    /// `None` for a built-in role.
    pub tenant: Option<u32>,
    /// Where it may be granted.
    pub scope: RoleScope,
    /// Made and not deleted.
    pub alive: bool,
}

/// An API key of the model.
#[derive(Debug, Clone)]
pub struct KeyM {
    /// Its tenant.
    pub tenant: u32,
    /// Made and not deleted.
    pub alive: bool,
    /// Authenticated at least once (so `Who::Key` has a context).
    pub authenticated: bool,
    /// Its permissions.
    pub permissions: Vec<PermissionCode>,
    /// The project it is limited to, if any.
    pub project: Option<u32>,
    /// The step that made it, and its lifetime in seconds if it expires.
    pub made: (usize, Option<i64>),
    /// The step of its last successful authentication.
    pub used_at: Option<usize>,
}

/// An environment of the model.
#[derive(Debug, Clone, Copy)]
pub struct EnvM {
    /// Its tenant.
    pub tenant: u32,
    /// Its project.
    pub project: u32,
    /// Made and not deleted.
    pub alive: bool,
}

/// What the generator believes exists. Indices are the logical names'
/// numbers.
#[derive(Debug, Default)]
pub struct Model {
    /// Users.
    pub users: Vec<UserM>,
    /// Tenants.
    pub tenants: Vec<TenantM>,
    /// Memberships by `(tenant, user)`.
    pub members: BTreeMap<(u32, u32), MemberM>,
    /// Removed or erased memberships, `(tenant, user)`.
    pub former: BTreeSet<(u32, u32)>,
    /// Invitations.
    pub invitations: Vec<InviteM>,
    /// Teams.
    pub teams: Vec<Row>,
    /// Roles, the built-in ones first.
    pub roles: Vec<RoleM>,
    /// Grants.
    pub grants: Vec<Row>,
    /// SSO providers.
    pub providers: Vec<Row>,
    /// Identities.
    pub identities: Vec<Row>,
    /// API keys.
    pub keys: Vec<KeyM>,
    /// Projects.
    pub projects: Vec<Row>,
    /// Environments.
    pub environments: Vec<EnvM>,
    /// Audit entries recorded by the host.
    pub entries: u32,
    /// Consent entries.
    pub consents: u32,
    /// Given consents, `(tenant, user, purpose)`.
    pub consented: BTreeSet<(u32, u32, u8)>,
    /// Data policies set, `(tenant, category)`.
    pub policies: BTreeSet<(u32, u8)>,
    /// Team memberships, `(team, user)`.
    pub team_members: BTreeSet<(u32, u32)>,
    /// Outbox events.
    pub events: Vec<Row>,
    /// Jobs.
    pub jobs: Vec<Row>,
    /// `(kind, tenant)` of every job enqueued: the tenants that may have
    /// waiting jobs of a kind (a superset: the model never learns what a
    /// claim took).
    pub job_tenants: BTreeSet<(u8, u32)>,
    /// Jobs of each kind enqueued since its last claim, less what claims
    /// may have taken since (a guide: claims mostly go where jobs wait).
    pub waiting: BTreeMap<u8, u32>,
    /// Claims: the kind of each that succeeded where jobs were waiting
    /// (so probably took some).
    pub claims: Vec<Option<u8>>,
    /// The last claim that probably took jobs, until a worker call on it
    /// succeeds.
    pub unsettled: Option<u32>,
    /// The index of the step being observed.
    pub step: usize,
}

impl Model {
    /// An empty model: the built-in roles only.
    pub fn new() -> Self {
        Self {
            roles: BUILTIN_ROLES
                .iter()
                .map(|b| RoleM {
                    tenant: None,
                    scope: b.scope,
                    alive: true,
                })
                .collect(),
            ..Self::default()
        }
    }

    /// The membership of `user` in `tenant`, if any.
    pub fn member(&self, tenant: Ref, user: Ref) -> Option<MemberM> {
        self.members.get(&(tenant.idx, user.idx)).copied()
    }

    /// Removes every membership of tenant `t` (deleted).
    pub fn forget_tenant(&mut self, t: u32) {
        let gone: Vec<(u32, u32)> = self.members.keys().filter(|k| k.0 == t).copied().collect();
        for k in gone {
            self.members.remove(&k);
            self.former.insert(k);
        }
    }

    /// Removes every membership of user `u` (erased).
    pub fn forget_user(&mut self, u: u32) {
        let gone: Vec<(u32, u32)> = self.members.keys().filter(|k| k.1 == u).copied().collect();
        for k in gone {
            self.members.remove(&k);
            self.former.insert(k);
        }
    }

    /// The user holding email `e`, if the model knows one.
    pub fn user_with_email(&self, e: u8) -> Option<u32> {
        self.users
            .iter()
            .position(|u| u.alive && u.email == Some(e))
            .map(|i| i as u32)
    }
}

/// The tenant `by` acts in, as far as the model knows (a key acts in its
/// own).
pub fn acting_tenant(by: &Who, m: &Model) -> Option<u32> {
    match by {
        Who::User(_, Some(t)) | Who::System(Some(t)) => Some(t.idx),
        Who::Key(k) => m.keys.get(k.idx as usize).map(|k| k.tenant),
        _ => None,
    }
}

/// Marks row `r` of `rows` made, in the tenant its maker acted in.
pub fn made(rows: &mut [Row], r: Ref, tenant: Option<u32>) {
    if let Some(row) = rows.get_mut(r.idx as usize) {
        row.alive = true;
        if let Some(t) = tenant {
            row.tenant = t;
        }
    }
}

/// Marks row `r` of `rows` made (or deleted).
pub fn set_alive(rows: &mut [Row], r: Ref, alive: bool) {
    if let Some(row) = rows.get_mut(r.idx as usize) {
        row.alive = alive;
    }
}

/// The indices of `items` that satisfy `keep`.
pub fn indices<T>(items: &[T], keep: impl Fn(&T) -> bool) -> Vec<u32> {
    items
        .iter()
        .enumerate()
        .filter(|(_, x)| keep(x))
        .map(|(i, _)| i as u32)
        .collect()
}

/// `(tenant, alive)` of rows, for [`Gen::row_in`](super::generate::Gen::row_in).
pub fn rows(items: &[Row]) -> Vec<(u32, bool)> {
    items.iter().map(|r| (r.tenant, r.alive)).collect()
}
