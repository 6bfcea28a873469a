//! Conformance cases of data governance: data policies, retention runs,
//! consents and the erasure of a user.
//!
//! Rule guarded here: policies are validated and need `data_policy.manage`;
//! a retention run (system only) deletes or anonymizes exactly the data out
//! of retention, in batches, audits each batch, leaves every chain intact
//! and changes nothing when run again; consents keep their full history;
//! erasure removes a user's memberships, identities and invitations and
//! pseudonymizes the trail without breaking it — or, for a last owner,
//! changes nothing (audit.md).

use super::audit::{
    assert_event, assert_no_request, assert_request, event, instant, keys, record, system_actor,
    target, Trail,
};
use super::{assert_err, Harness};
use crate::fixtures::*;
use chrono::{DateTime, Duration, Utc};
use insightpulse_core::audit::{
    chain, Actor, AuditEntry, AuditQuery, ChainVerdict, PLATFORM_TENANT,
};
use insightpulse_core::privacy::{
    erased_email, hashed_email, AnonymizationRule, ConsentChange, DataCategory, DataPolicy,
    ErasureReport, FieldTreatment, NewDataPolicy, RetentionAction, RetentionDays, RetentionOutcome,
    RetentionReport,
};
use insightpulse_core::tenancy::{ApiKeyScope, NewInvitation, NewSsoProvider, NewTeam, SsoConfig};
use insightpulse_core::{
    Clock, ConsentPurpose, ConsentSource, Context, Credential, Entity, Error, InvitationId,
    PolicyVersion, Rejection, Repos, RequestMeta, Requirement, SecretString, TenantId, UserId,
};
use serde_json::json;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn days(n: i64) -> RetentionDays {
    RetentionDays::new(n).unwrap()
}

fn policy(category: DataCategory, retention_days: i64, action: RetentionAction) -> NewDataPolicy {
    NewDataPolicy {
        category,
        retention: days(retention_days),
        action,
    }
}

fn rule(field: &str, treatment: FieldTreatment) -> AnonymizationRule {
    AnonymizationRule::new(field, treatment)
}

/// The only anonymization of audit entries: erase ip and user agent.
fn erase_ip_and_user_agent() -> RetentionAction {
    RetentionAction::Anonymize(vec![
        rule("ip", FieldTreatment::Null),
        rule("user_agent", FieldTreatment::Null),
    ])
}

fn hash_emails() -> RetentionAction {
    RetentionAction::Anonymize(vec![rule("email", FieldTreatment::Hash)])
}

async fn set_policy(r: &Repos, ctx: &Context, p: NewDataPolicy) -> DataPolicy {
    r.privacy
        .set_data_policy(ctx, p)
        .await
        .unwrap_or_else(|e| panic!("set data policy: {e}"))
}

async fn enforce(r: &Repos, now: DateTime<Utc>, batch_size: u32) -> RetentionReport {
    r.privacy
        .enforce_retention(&system(), now, batch_size)
        .await
        .unwrap_or_else(|e| panic!("enforce retention: {e}"))
}

fn outcome(
    tenant_id: TenantId,
    category: DataCategory,
    cutoff: DateTime<Utc>,
    deleted: u64,
    anonymized: u64,
    applied: bool,
) -> RetentionOutcome {
    RetentionOutcome {
        tenant_id,
        category,
        cutoff,
        deleted,
        anonymized,
        applied,
    }
}

fn intact(n: u64, head_seq: i64) -> ChainVerdict {
    ChainVerdict::Intact {
        entries: n,
        head_seq,
    }
}

fn seqs(entries: &[AuditEntry]) -> Vec<i64> {
    entries.iter().map(|e| e.seq).collect()
}

async fn invite(r: &Repos, ctx: &Context, address: &str, valid_for: Duration) -> NewInvited {
    let issued = r
        .members
        .invite(
            ctx,
            NewInvitation {
                email: email(address),
                role_id: None,
                valid_for,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("invite {address}: {e}"));
    NewInvited {
        id: issued.invitation.id,
        token: issued.token,
    }
}

struct NewInvited {
    id: InvitationId,
    token: SecretString,
}

/// `(id, email)` of the tenant's invitations, oldest first.
async fn invitations(r: &Repos, ctx: &Context) -> Vec<(InvitationId, String)> {
    r.members
        .list_invitations(ctx)
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.id, i.email.to_string()))
        .collect()
}

/// Asserts the `retention.applied` events of one run: one per batch, each
/// within `batch_size`, adding up to the totals.
fn assert_retention_events(
    events: &[AuditEntry],
    category: &str,
    cutoff: DateTime<Utc>,
    batches: &[(u64, u64)],
) {
    assert_eq!(events.len(), batches.len(), "{events:#?}");
    for (e, (deleted, anonymized)) in events.iter().zip(batches) {
        assert_eq!(e.action.as_str(), "retention.applied", "{e:#?}");
        assert_eq!(e.target_type.as_str(), "data_policy");
        assert_eq!(e.target_id, target(category));
        assert_eq!(e.actor, system_actor());
        assert_eq!(keys(&e.diff), ["anonymized", "cutoff", "deleted"]);
        assert_eq!(instant(&e.diff["cutoff"]), cutoff);
        assert_eq!(e.diff["deleted"], json!(deleted), "{e:#?}");
        assert_eq!(e.diff["anonymized"], json!(anonymized), "{e:#?}");
        assert_no_request(e);
    }
}

fn purpose(s: &str) -> ConsentPurpose {
    ConsentPurpose::parse(s).unwrap()
}

fn consent(user: UserId, purpose_label: &str, version: &str, source: &str) -> ConsentChange {
    ConsentChange {
        user,
        purpose: purpose(purpose_label),
        policy_version: PolicyVersion::parse(version).unwrap(),
        source: ConsentSource::parse(source).unwrap(),
    }
}

mod consents;
mod erasure;
mod invitations;
mod policies;
mod retention;

pub use consents::*;
pub use erasure::*;
pub use invitations::*;
pub use policies::*;
pub use retention::*;

/// This module's conformance cases, for [`conformance_tests!`](crate::conformance_tests):
/// a new case is listed here, next to its module.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases_privacy {
    ($backend:tt) => {
        $crate::__conformance_module!($backend privacy [
            data_policies_are_set_replaced_listed_and_deleted,
            data_policy_input_is_validated,
            data_policies_need_data_policy_manage,
            enforce_retention_is_system_only,
            audit_log_deletion_purges_the_old_prefix_in_batches,
            audit_log_purge_stops_at_the_first_recent_entry,
            audit_log_purge_never_purges_its_own_attestations,
            audit_log_anonymization_erases_old_personal_fields,
            invitation_retention_deletes_settled_old_invitations,
            invitation_retention_hashes_settled_old_emails,
            invitation_retention_honours_its_boundaries,
            retention_reports_every_policy_and_touches_nothing_else,
            consents_keep_their_full_history,
            consent_rights_and_subjects_are_checked,
            consent_input_is_validated,
            erase_user_removes_and_pseudonymizes,
            erase_user_is_self_or_system,
            last_active_owner_cannot_be_erased,
        ]);
    };
}
