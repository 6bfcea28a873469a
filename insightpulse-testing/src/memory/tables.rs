//! The table shapes every module's state is built from.
//!
//! Rule guarded here: a tenant-scoped table is keyed like its PostgreSQL
//! primary key, `(tenant_id, id)`, so one tenant's rows are one contiguous
//! range — a call about one tenant never walks another tenant's rows.

use insightpulse_core::{
    ApiKeyId, EnvironmentId, IdentityId, InvitationId, ProjectId, RoleGrantId, RoleId,
    SsoProviderId, TeamId, TenantId, UserId,
};
use std::collections::{BTreeMap, BTreeSet};

/// A table of tenant-scoped rows keyed like its Postgres primary key,
/// `(tenant_id, id)`: one tenant's rows are one contiguous range, reached
/// through [`TenantRows`] without looking at any other tenant's.
pub(crate) type TenantTable<K, V> = BTreeMap<(TenantId, K), V>;

/// An id type whose smallest value starts a range of keys.
pub(crate) trait MinId: Copy + Ord {
    /// The nil uuid, the smallest id of its type.
    fn min_id() -> Self;
}

macro_rules! min_id {
    ($($id:ident),* $(,)?) => {$(
        impl MinId for $id {
            fn min_id() -> Self {
                // `Uuid::default()` is the nil uuid (this crate has no direct
                // `uuid` dependency to name it).
                Self(Default::default())
            }
        }
    )*};
}

min_id!(
    TenantId,
    UserId,
    TeamId,
    RoleId,
    RoleGrantId,
    InvitationId,
    SsoProviderId,
    IdentityId,
    ApiKeyId,
    ProjectId,
    EnvironmentId,
);

/// The rows of one tenant in a [`TenantTable`].
pub(crate) trait TenantRows<K, V> {
    /// The rows of tenant `t`, in id order.
    fn of_tenant<'a>(&'a self, t: TenantId) -> impl Iterator<Item = &'a V>
    where
        V: 'a;
    /// The rows of tenant `t`, mutably, in id order.
    fn of_tenant_mut<'a>(&'a mut self, t: TenantId) -> impl Iterator<Item = &'a mut V>
    where
        V: 'a;
    /// Removes the rows of tenant `t` that match `pred`; returns them.
    fn remove_of_tenant(&mut self, t: TenantId, pred: impl FnMut(&V) -> bool) -> Vec<V>;
}

impl<K: MinId, V> TenantRows<K, V> for TenantTable<K, V> {
    fn of_tenant<'a>(&'a self, t: TenantId) -> impl Iterator<Item = &'a V>
    where
        V: 'a,
    {
        self.range((t, K::min_id())..)
            .take_while(move |((tt, _), _)| *tt == t)
            .map(|(_, v)| v)
    }

    fn of_tenant_mut<'a>(&'a mut self, t: TenantId) -> impl Iterator<Item = &'a mut V>
    where
        V: 'a,
    {
        self.range_mut((t, K::min_id())..)
            .take_while(move |((tt, _), _)| *tt == t)
            .map(|(_, v)| v)
    }

    fn remove_of_tenant(&mut self, t: TenantId, mut pred: impl FnMut(&V) -> bool) -> Vec<V> {
        let keys: Vec<K> = self
            .range((t, K::min_id())..)
            .take_while(|((tt, _), _)| *tt == t)
            .filter(|(_, v)| pred(v))
            .map(|((_, id), _)| *id)
            .collect();
        keys.into_iter()
            .filter_map(|id| self.remove(&(t, id)))
            .collect()
    }
}

/// The `(tenant, id)` keys filed under a token prefix, in a prefix index.
pub(crate) fn under_prefix<'a, K: MinId>(
    index: &'a BTreeSet<(String, TenantId, K)>,
    prefix: &'a str,
) -> impl Iterator<Item = (TenantId, K)> + 'a {
    index
        .range((prefix.to_owned(), TenantId::min_id(), K::min_id())..)
        .take_while(move |(p, _, _)| p == prefix)
        .map(|(_, t, id)| (*t, *id))
}
