//! Conformance cases of the audit trail: the events the SDK's own mutations
//! write, host apps' events, the report and the hash chain.
//!
//! Rule guarded here: every audited call writes exactly its event (action,
//! target, actor, diff, request metadata) in the change's transaction — a
//! refused or no-op call writes nothing, and no diff holds a secret; the
//! report shows `audit.read` holders their tenant's entries newest first,
//! filtered and paginated without gaps; each tenant's chain verifies as
//! intact, even under concurrent writers (audit.md).

use super::{assert_err, Harness};
use crate::fixtures::*;
use chrono::{DateTime, Duration, Utc};
use insightpulse_core::audit::{
    Actor, ActorFilter, AuditCursor, AuditEntry, AuditEvent, AuditPage, AuditQuery, ChainVerdict,
    Diff, KeyLabel, PLATFORM_TENANT,
};
use insightpulse_core::projects::EnvironmentKind;
use insightpulse_core::tenancy::{
    ApiKeyScope, NewApiKey, NewInvitation, NewRole, NewSsoProvider, NewTeam, RoleScope, SsoConfig,
    TenantUpdate,
};
use insightpulse_core::{
    AuditAction, AuditEntryId, Clock, Context, Entity, Error, ExposeSecret, Repos, RequestMeta,
    Result, SecretString, TargetType, TenantId, UserId,
};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

// ---------------------------------------------------------------------------
// Helpers (shared with the privacy cases)
// ---------------------------------------------------------------------------

/// Reads what a tenant's trail gained since the last look.
pub(crate) struct Trail<'a> {
    repos: &'a Repos,
    tenant: TenantId,
    /// The `seq` of the last entry seen (0 before the first).
    pub(crate) seen: i64,
}

impl<'a> Trail<'a> {
    /// Starts watching `tenant`'s trail from its current head.
    pub(crate) async fn new(repos: &'a Repos, tenant: TenantId) -> Self {
        let seen = audit_trail(repos, tenant).await.last().map_or(0, |e| e.seq);
        Self {
            repos,
            tenant,
            seen,
        }
    }

    /// The entries written since the last look, in `seq` order (which must
    /// continue the chain without gaps).
    pub(crate) async fn take(&mut self) -> Vec<AuditEntry> {
        let new: Vec<AuditEntry> = audit_trail(self.repos, self.tenant)
            .await
            .into_iter()
            .filter(|e| e.seq > self.seen)
            .collect();
        for (i, e) in new.iter().enumerate() {
            assert_eq!(
                e.seq,
                self.seen + 1 + i as i64,
                "gap in the chain: {new:#?}"
            );
            assert_eq!(e.tenant_id, self.tenant, "entry of another tenant: {e:#?}");
        }
        if let Some(last) = new.last() {
            self.seen = last.seq;
        }
        new
    }

    /// The one entry `what` wrote.
    pub(crate) async fn one(&mut self, what: &str) -> AuditEntry {
        let mut new = self.take().await;
        assert_eq!(
            new.len(),
            1,
            "{what}: expected exactly one new audit entry, got {new:#?}"
        );
        new.pop().expect("one entry")
    }

    /// Asserts that `what` wrote nothing.
    pub(crate) async fn none(&mut self, what: &str) {
        let new = self.take().await;
        assert!(
            new.is_empty(),
            "{what}: expected no new audit entry, got {new:#?}"
        );
    }
}

/// A target id as entries hold it.
pub(crate) fn target(id: impl ToString) -> Option<String> {
    Some(id.to_string())
}

/// Asserts an entry's action, target, actor and exact diff.
pub(crate) fn assert_event(
    e: &AuditEntry,
    action: &str,
    target_type: &str,
    target_id: Option<String>,
    actor: &Actor,
    diff: Value,
) {
    let what = format!("entry #{} ({})", e.seq, e.action);
    assert_eq!(e.action.as_str(), action, "{what}: action");
    assert_eq!(e.target_type.as_str(), target_type, "{what}: target type");
    assert_eq!(e.target_id, target_id, "{what}: target id");
    assert_eq!(&e.actor, actor, "{what}: actor");
    assert_eq!(e.diff, diff, "{what}: diff");
}

/// Asserts that an entry carries the metadata of [`request`]`(id)`.
pub(crate) fn assert_request(e: &AuditEntry, id: &str) {
    let meta = request(id);
    assert_eq!(
        (e.request_id.as_deref(), e.ip, e.user_agent.as_deref()),
        (Some(id), meta.ip, meta.user_agent.as_deref()),
        "request metadata of entry #{} ({})",
        e.seq,
        e.action
    );
}

/// Asserts that an entry carries no request metadata.
pub(crate) fn assert_no_request(e: &AuditEntry) {
    assert_eq!(
        (e.request_id.as_deref(), e.ip, e.user_agent.as_deref()),
        (None, None, None),
        "request metadata of entry #{} ({})",
        e.seq,
        e.action
    );
}

/// The keys of a JSON object, sorted.
pub(crate) fn keys(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

/// An instant recorded in a diff.
pub(crate) fn instant(v: &Value) -> DateTime<Utc> {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("not an instant: {v} ({e})"))
}

/// The system actor of [`system`].
pub(crate) fn system_actor() -> Actor {
    Actor::of(&system())
}

/// A host app's event.
pub(crate) fn event(action: &str) -> AuditEvent {
    AuditEvent::new(action, "widget", Some("w-1"), Diff::new().set("size", 3))
        .unwrap_or_else(|e| panic!("event {action}: {e}"))
}

/// Records a host app's event, which must succeed.
pub(crate) async fn record(r: &Repos, ctx: &Context, ev: AuditEvent) -> AuditEntryId {
    r.audit
        .record_event(ctx, ev)
        .await
        .unwrap_or_else(|e| panic!("record: {e}"))
}

fn action(s: &str) -> AuditAction {
    AuditAction::parse(s).unwrap()
}

fn target_type(s: &str) -> TargetType {
    TargetType::parse(s).unwrap()
}

pub(crate) async fn page(r: &Repos, ctx: &Context, q: AuditQuery) -> AuditPage {
    r.audit
        .query_entries(ctx, q)
        .await
        .unwrap_or_else(|e| panic!("query: {e}"))
}

pub(crate) fn actions(entries: &[AuditEntry]) -> Vec<String> {
    entries.iter().map(|e| e.action.to_string()).collect()
}

pub(crate) fn seqs(entries: &[AuditEntry]) -> Vec<i64> {
    entries.iter().map(|e| e.seq).collect()
}

/// A boxed future, so futures of different calls can be joined.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Polls every future concurrently until all are done (no runtime needed:
/// the backend's I/O interleaves within the one task).
pub(crate) async fn join_all<'a, T>(futures: Vec<BoxFuture<'a, T>>) -> Vec<T> {
    let mut futures = futures;
    let mut outputs: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *out = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|o| o.expect("every future completed"))
        .collect()
}

use super::tenancy::oidc_config;

mod chain;
mod recording;
mod report;

pub use chain::*;
pub use recording::*;
pub use report::*;

/// This module's conformance cases, for [`conformance_tests!`](crate::conformance_tests):
/// a new case is listed here, next to its module.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases_audit {
    ($backend:tt) => {
        $crate::__conformance_module!($backend audit [
            unaudited_calls_write_nothing,
            failed_calls_write_nothing,
            diffs_never_hold_secrets,
            host_apps_record_their_own_events,
            record_refuses_bad_events_and_invisible_tenants,
            query_needs_audit_read,
            query_is_newest_first_within_the_window,
            query_filters_by_action_actor_and_target,
            query_pages_by_cursor_without_gaps_or_duplicates,
            query_rejects_bad_bounds_and_cursors,
            query_shows_the_acting_users_email,
            query_names_the_acting_key,
            verify_chain_is_intact_per_tenant,
            concurrent_writers_keep_one_chain,
        ]);
    };
}
