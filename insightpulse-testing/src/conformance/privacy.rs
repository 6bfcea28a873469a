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

// ---------------------------------------------------------------------------
// Data policies
// ---------------------------------------------------------------------------

/// Policies are upserted per category (audited as `data_policy.set`),
/// listed in category order and deleted (`data_policy.deleted`).
pub async fn data_policies_are_set_replaced_listed_and_deleted(h: Harness) {
    let r = &h.repos;
    let (acme, alice, actx) = tenant_with_owner(r, "acme").await;
    let me = Actor::User(alice.id);
    let mut t = Trail::new(r, acme.id).await;
    assert!(r
        .privacy
        .list_data_policies(&actx)
        .await
        .unwrap()
        .is_empty());

    h.clock.advance(Duration::minutes(1));
    let p = set_policy(
        r,
        &actx.clone().with_request(request("req-policy")),
        policy(DataCategory::AuditLogs, 30, RetentionAction::Delete),
    )
    .await;
    assert_eq!(
        p,
        DataPolicy {
            tenant_id: acme.id,
            category: DataCategory::AuditLogs,
            retention: days(30),
            action: RetentionAction::Delete,
            updated_at: h.clock.now(),
        }
    );
    let e = t.one("set").await;
    assert_event(
        &e,
        "data_policy.set",
        "data_policy",
        target("audit_logs"),
        &me,
        json!({"retention_days": 30, "action": "delete"}),
    );
    assert_request(&e, "req-policy");
    assert_eq!(e.created_at, h.clock.now());

    // Setting it again replaces it.
    h.clock.advance(Duration::hours(1));
    let replaced = set_policy(
        r,
        &actx,
        policy(DataCategory::AuditLogs, 400, erase_ip_and_user_agent()),
    )
    .await;
    assert_eq!(
        replaced,
        DataPolicy {
            tenant_id: acme.id,
            category: DataCategory::AuditLogs,
            retention: days(400),
            action: erase_ip_and_user_agent(),
            updated_at: h.clock.now(),
        }
    );
    let e = t.one("replace").await;
    assert_event(
        &e,
        "data_policy.set",
        "data_policy",
        target("audit_logs"),
        &me,
        json!({"retention_days": 400, "action": "anonymize"}),
    );

    // Listed in DataCategory::ALL order (not by label).
    let tickets_rules = RetentionAction::Anonymize(vec![
        rule("requester_email", FieldTreatment::Hash),
        rule(
            "body",
            FieldTreatment::Replace {
                value: "[redacted]".to_owned(),
            },
        ),
    ]);
    let integration = set_policy(
        r,
        &actx,
        policy(DataCategory::IntegrationEvents, 7, RetentionAction::Delete),
    )
    .await;
    let tickets = set_policy(
        r,
        &actx,
        policy(DataCategory::Tickets, 90, tickets_rules.clone()),
    )
    .await;
    let invitations = set_policy(
        r,
        &actx,
        policy(DataCategory::Invitations, 14, hash_emails()),
    )
    .await;
    assert_eq!(tickets.action, tickets_rules);
    assert_eq!(t.take().await.len(), 3);
    assert_eq!(
        r.privacy.list_data_policies(&actx).await.unwrap(),
        vec![
            replaced.clone(),
            invitations.clone(),
            tickets.clone(),
            integration.clone()
        ]
    );

    r.privacy
        .delete_data_policy(
            &actx.clone().with_request(request("req-delete")),
            DataCategory::Tickets,
        )
        .await
        .unwrap();
    let e = t.one("delete").await;
    assert_event(
        &e,
        "data_policy.deleted",
        "data_policy",
        target("tickets"),
        &me,
        json!({}),
    );
    assert_request(&e, "req-delete");
    assert_eq!(
        r.privacy.list_data_policies(&actx).await.unwrap(),
        vec![replaced, invitations, integration]
    );
    for category in [DataCategory::Tickets, DataCategory::MeteredEvents] {
        assert_err!(
            r.privacy.delete_data_policy(&actx, category).await,
            Error::NotFound {
                entity: Entity::DataPolicy
            }
        );
    }
    t.none("deleting missing policies").await;
}

/// Unknown categories, retentions out of 1–36500 days and anonymization
/// rules that do not fit the category are `Validation`, before anything
/// is written (and before the permission check).
pub async fn data_policy_input_is_validated(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let (_, vctx) = member_with_role(r, &actx, "viewer@acme.io", Some("Viewer")).await;
    let mut t = Trail::new(r, acme.id).await;

    for bad in ["foo", "Audit_Logs", "audit-logs", ""] {
        assert_err!(
            bad.parse::<DataCategory>(),
            Error::Validation {
                field: "category",
                ..
            }
        );
    }
    for c in DataCategory::ALL {
        assert_eq!(c.as_str().parse::<DataCategory>().unwrap(), c);
    }
    for bad in [-1, 0, 36_501, i64::from(u32::MAX) + 1] {
        assert_err!(
            RetentionDays::new(bad),
            Error::Validation {
                field: "retention_days",
                ..
            }
        );
    }
    assert_eq!(RetentionDays::new(1).unwrap().get(), 1);
    assert_eq!(RetentionDays::new(36_500).unwrap().get(), 36_500);

    let anonymize = |category, rules: Vec<AnonymizationRule>| {
        policy(category, 30, RetentionAction::Anonymize(rules))
    };
    let bad = [
        // not a personal field of the category
        anonymize(
            DataCategory::AuditLogs,
            vec![rule("email", FieldTreatment::Hash)],
        ),
        anonymize(
            DataCategory::PromptRuns,
            vec![rule("password", FieldTreatment::Null)],
        ),
        // a treatment the field does not allow
        anonymize(
            DataCategory::Invitations,
            vec![rule("email", FieldTreatment::Null)],
        ),
        anonymize(
            DataCategory::AuditLogs,
            vec![
                rule("ip", FieldTreatment::Hash),
                rule("user_agent", FieldTreatment::Null),
            ],
        ),
        // audit entries erase ip and user agent together
        anonymize(
            DataCategory::AuditLogs,
            vec![rule("ip", FieldTreatment::Null)],
        ),
        // no rule, a field twice, an over-long replacement
        anonymize(DataCategory::Tickets, vec![]),
        anonymize(
            DataCategory::Invitations,
            vec![
                rule("email", FieldTreatment::Hash),
                rule("email", FieldTreatment::Hash),
            ],
        ),
        anonymize(
            DataCategory::Tickets,
            vec![rule(
                "body",
                FieldTreatment::Replace {
                    value: "x".repeat(201),
                },
            )],
        ),
    ];
    for p in bad {
        assert_err!(
            p.validate(),
            Error::Validation {
                field: "anonymization",
                ..
            }
        );
        for ctx in [&actx, &vctx] {
            assert_err!(
                r.privacy.set_data_policy(ctx, p.clone()).await,
                Error::Validation {
                    field: "anonymization",
                    ..
                }
            );
        }
    }
    assert!(r
        .privacy
        .list_data_policies(&actx)
        .await
        .unwrap()
        .is_empty());
    t.none("invalid policies").await;

    // What the categories do allow.
    for p in [
        anonymize(
            DataCategory::Tickets,
            vec![rule(
                "requester_email",
                FieldTreatment::Replace {
                    value: "x".repeat(200),
                },
            )],
        ),
        anonymize(
            DataCategory::PromptRuns,
            vec![rule("response", FieldTreatment::Hash)],
        ),
        policy(
            DataCategory::WebhookDeliveries,
            36_500,
            RetentionAction::Delete,
        ),
    ] {
        set_policy(r, &actx, p).await;
    }
    assert_eq!(r.privacy.list_data_policies(&actx).await.unwrap().len(), 3);
}

/// Setting, listing and deleting policies need `data_policy.manage` (the
/// system may); an outsider sees no tenant.
pub async fn data_policies_need_data_policy_manage(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let (_, vctx) = member_with_role(r, &actx, "viewer@acme.io", Some("Viewer")).await;
    let (_, dctx) = member_with_role(r, &actx, "dev@acme.io", Some("Developer")).await;
    custom_role(
        r,
        &actx,
        "Privacy Officer",
        insightpulse_core::tenancy::RoleScope::Org,
        &["data_policy.manage"],
    )
    .await;
    let (officer, octx) = member_with_role(r, &actx, "dpo@acme.io", Some("Privacy Officer")).await;
    let (_, _, uctx) = tenant_with_owner(r, "umbrella").await;
    let outsider = uctx.in_tenant(acme.id);
    set_policy(
        r,
        &actx,
        policy(DataCategory::AuditLogs, 30, RetentionAction::Delete),
    )
    .await;
    let mut t = Trail::new(r, acme.id).await;

    let tickets = policy(DataCategory::Tickets, 10, RetentionAction::Delete);
    for ctx in [&vctx, &dctx] {
        assert_err!(
            r.privacy.set_data_policy(ctx, tickets.clone()).await,
            Error::PermissionDenied { .. }
        );
        assert_err!(
            r.privacy.list_data_policies(ctx).await,
            Error::PermissionDenied { .. }
        );
        assert_err!(
            r.privacy
                .delete_data_policy(ctx, DataCategory::AuditLogs)
                .await,
            Error::PermissionDenied { .. }
        );
    }
    assert_err!(
        r.privacy.set_data_policy(&outsider, tickets.clone()).await,
        Error::NotFound {
            entity: Entity::Tenant
        }
    );
    assert!(r
        .privacy
        .list_data_policies(&outsider)
        .await
        .unwrap()
        .is_empty());
    assert_err!(
        r.privacy
            .delete_data_policy(&outsider, DataCategory::AuditLogs)
            .await,
        Error::NotFound { .. }
    );
    assert_err!(
        r.privacy
            .set_data_policy(&Context::user(officer.id), tickets.clone())
            .await,
        Error::Validation {
            field: "context",
            ..
        }
    );
    t.none("refused policy calls").await;
    assert_eq!(r.privacy.list_data_policies(&actx).await.unwrap().len(), 1);

    // The permission alone is enough; the system may too.
    set_policy(r, &octx, tickets).await;
    assert_eq!(t.one("officer sets").await.actor, Actor::User(officer.id));
    assert_eq!(r.privacy.list_data_policies(&octx).await.unwrap().len(), 2);
    r.privacy
        .delete_data_policy(&octx, DataCategory::AuditLogs)
        .await
        .unwrap();
    t.one("officer deletes").await;
    set_policy(
        r,
        &system().in_tenant(acme.id),
        policy(DataCategory::Invitations, 10, RetentionAction::Delete),
    )
    .await;
    assert_eq!(t.one("system sets").await.actor, system_actor());
    let categories: Vec<DataCategory> = r
        .privacy
        .list_data_policies(&actx)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.category)
        .collect();
    assert_eq!(
        categories,
        [DataCategory::Invitations, DataCategory::Tickets]
    );
}

// ---------------------------------------------------------------------------
// Retention
// ---------------------------------------------------------------------------

/// Only the system runs retention; a batch size of 0 is `Validation`;
/// refused runs change nothing.
pub async fn enforce_retention_is_system_only(h: Harness) {
    let r = &h.repos;
    let (acme, alice, actx) = tenant_with_owner(r, "acme").await;
    set_policy(
        r,
        &actx,
        policy(DataCategory::AuditLogs, 30, RetentionAction::Delete),
    )
    .await;
    let (_, _, kctx) = api_key(r, &actx, ApiKeyScope::Tenant, &["data_policy.manage"]).await;
    h.clock.advance(Duration::days(31));
    let now = h.clock.now();
    let mut t = Trail::new(r, acme.id).await;

    for ctx in [&actx, &kctx, &Context::user(alice.id)] {
        assert_err!(
            r.privacy.enforce_retention(ctx, now, 10).await,
            Error::PermissionDenied { .. }
        );
    }
    assert_err!(
        r.privacy.enforce_retention(&system(), now, 0).await,
        Error::Validation {
            field: "batch_size",
            ..
        }
    );
    t.none("refused runs").await;
    assert_eq!(audit_trail(r, acme.id).await.len(), 4);

    let report = enforce(r, now, 1000).await;
    assert_eq!(
        report.outcomes,
        [outcome(
            acme.id,
            DataCategory::AuditLogs,
            now - Duration::days(30),
            4,
            0,
            true
        )]
    );
    let trail = audit_trail(r, acme.id).await;
    assert_eq!(seqs(&trail), [5]);
    assert_eq!(chain_verdict(r, acme.id).await, intact(1, 5));
}

/// `audit_logs` + delete purges exactly the entries older than the cutoff,
/// oldest first, in batches: each batch moves the chain's anchor and is
/// attested by an `audit.purged` entry, so the chain stays intact. Running
/// again changes nothing; other tenants are untouched.
pub async fn audit_log_deletion_purges_the_old_prefix_in_batches(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await; // #1
    for i in 0..4 {
        record(
            r,
            &actx.clone().with_request(request(&format!("req-{i}"))),
            event("old.event"),
        )
        .await; // #2..#5
    }
    let old = audit_trail(r, acme.id).await;
    assert_eq!(seqs(&old), [1, 2, 3, 4, 5]);
    let (umbrella, _, uctx) = tenant_with_owner(r, "umbrella").await;
    record(r, &uctx, event("old.event")).await;
    let umbrella_trail = audit_trail(r, umbrella.id).await;

    h.clock.advance(Duration::days(31));
    set_policy(
        r,
        &actx,
        policy(DataCategory::AuditLogs, 30, RetentionAction::Delete),
    )
    .await; // #6
    record(r, &actx, event("new.event")).await; // #7
    record(r, &actx, event("new.event")).await; // #8
    let kept = audit_trail(r, acme.id).await[5..].to_vec();

    let now = h.clock.now();
    let cutoff = now - Duration::days(30);
    let report = enforce(r, now, 2).await;
    assert_eq!(
        report.outcomes,
        [outcome(
            acme.id,
            DataCategory::AuditLogs,
            cutoff,
            5,
            0,
            true
        )]
    );
    let trail = audit_trail(r, acme.id).await;
    assert_eq!(seqs(&trail), [6, 7, 8, 9, 10, 11]);
    assert_eq!(trail[..3], kept[..]);
    for (e, (through, deleted)) in trail[3..].iter().zip([(2, 2), (4, 2), (5, 1)]) {
        assert_event(
            e,
            "audit.purged",
            "audit_log",
            None,
            &system_actor(),
            e.diff.clone(),
        );
        assert_eq!(
            keys(&e.diff),
            ["cutoff", "deleted", "through_hash", "through_seq"]
        );
        assert_eq!(e.diff["through_seq"], json!(through), "{e:#?}");
        assert_eq!(
            e.diff["through_hash"],
            json!(chain::hex(&old[through as usize - 1].hash)),
            "{e:#?}"
        );
        assert_eq!(e.diff["deleted"], json!(deleted), "{e:#?}");
        assert_eq!(instant(&e.diff["cutoff"]), cutoff);
        assert_eq!(e.created_at, h.clock.now());
        assert_no_request(e);
    }
    assert_eq!(chain_verdict(r, acme.id).await, intact(6, 11));
    assert_eq!(audit_trail(r, umbrella.id).await, umbrella_trail);
    assert_eq!(chain_verdict(r, umbrella.id).await, intact(2, 2));

    // Idempotent.
    let again = enforce(r, now, 2).await;
    assert_eq!(
        again.outcomes,
        [outcome(
            acme.id,
            DataCategory::AuditLogs,
            cutoff,
            0,
            0,
            true
        )]
    );
    assert_eq!(audit_trail(r, acme.id).await, trail);

    // A month later everything is out of retention, the purge entries too:
    // the chain then holds only the newest attestations.
    h.clock.advance(Duration::days(31));
    let later = h.clock.now();
    let report = enforce(r, later, 2).await;
    assert_eq!(
        report.outcomes,
        [outcome(
            acme.id,
            DataCategory::AuditLogs,
            later - Duration::days(30),
            6,
            0,
            true
        )]
    );
    let last = audit_trail(r, acme.id).await;
    assert_eq!(seqs(&last), [12, 13, 14]);
    assert_eq!(last[2].diff["through_seq"], json!(11));
    assert_eq!(
        last[2].diff["through_hash"],
        json!(chain::hex(&trail[5].hash))
    );
    assert_eq!(chain_verdict(r, acme.id).await, intact(3, 14));
    assert_eq!(r.audit.verify_chain(&actx).await.unwrap(), intact(3, 14));
}

/// The purge deletes a prefix of the chain: it stops at the first entry
/// still in retention, even if older entries follow it.
pub async fn audit_log_purge_stops_at_the_first_recent_entry(h: Harness) {
    let r = &h.repos;
    let t0 = h.clock.now();
    let (acme, _, actx) = tenant_with_owner(r, "acme").await; // #1 at t0
    record(r, &actx, event("a.old")).await; // #2 at t0
    h.clock.set(t0 + Duration::days(40));
    record(r, &actx, event("a.recent")).await; // #3 at t0+40d
    h.clock.set(t0 + Duration::hours(1));
    record(r, &actx, event("a.backdated")).await; // #4 at t0+1h
    h.clock.set(t0 + Duration::days(40) + Duration::hours(1));
    set_policy(
        r,
        &actx,
        policy(DataCategory::AuditLogs, 30, RetentionAction::Delete),
    )
    .await; // #5

    let now = h.clock.now();
    let report = enforce(r, now, 10).await;
    assert_eq!(
        report.outcomes,
        [outcome(
            acme.id,
            DataCategory::AuditLogs,
            now - Duration::days(30),
            2,
            0,
            true
        )]
    );
    let trail = audit_trail(r, acme.id).await;
    assert_eq!(seqs(&trail), [3, 4, 5, 6]);
    assert_eq!(trail[1].action.as_str(), "a.backdated");
    assert_eq!(trail[3].action.as_str(), "audit.purged");
    assert_eq!(trail[3].diff["through_seq"], json!(2));
    assert_eq!(trail[3].diff["deleted"], json!(2));
    assert_eq!(chain_verdict(r, acme.id).await, intact(4, 6));
}

/// A run asked for a `now` ahead of the clock finds even the entries it
/// appends out of retention: it still purges only what the chain held when
/// it started, so it ends, and each batch's attestation stays.
pub async fn audit_log_purge_never_purges_its_own_attestations(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await; // #1
    record(r, &actx, event("a.old")).await; // #2
    set_policy(
        r,
        &actx,
        policy(DataCategory::AuditLogs, 1, RetentionAction::Delete),
    )
    .await; // #3
    let now = h.clock.now() + Duration::days(10);
    let report = enforce(r, now, 1).await;
    assert_eq!(
        report.outcomes,
        [outcome(
            acme.id,
            DataCategory::AuditLogs,
            now - Duration::days(1),
            3,
            0,
            true
        )]
    );
    let trail = audit_trail(r, acme.id).await;
    assert_eq!(seqs(&trail), [4, 5, 6]);
    for (e, through) in trail.iter().zip([1, 2, 3]) {
        assert_eq!(e.action.as_str(), "audit.purged");
        assert_eq!(e.diff["through_seq"], json!(through), "{e:#?}");
    }
    assert_eq!(chain_verdict(r, acme.id).await, intact(3, 6));

    // With a larger batch the next run purges those three, and only them.
    let report = enforce(r, now, 2).await;
    assert_eq!(report.outcomes[0].deleted, 3);
    assert_eq!(seqs(&audit_trail(r, acme.id).await), [7, 8]);
    assert_eq!(chain_verdict(r, acme.id).await, intact(2, 8));
}

/// `audit_logs` + anonymize erases ip and user agent of the entries older
/// than the cutoff (keeping the entries, their request id and the chain),
/// one `retention.applied` per batch; running again changes nothing.
pub async fn audit_log_anonymization_erases_old_personal_fields(h: Harness) {
    let r = &h.repos;
    let (acme, alice, actx) = tenant_with_owner(r, "acme").await; // #1, no request metadata
    for i in 0..3 {
        record(
            r,
            &actx.clone().with_request(request(&format!("req-old-{i}"))),
            event("old.event"),
        )
        .await; // #2..#4
    }
    record(
        r,
        &actx.clone().with_request_id("req-bare"),
        event("old.event"),
    )
    .await; // #5
    h.clock.advance(Duration::days(31));
    set_policy(
        r,
        &actx.clone().with_request(request("req-policy")),
        policy(DataCategory::AuditLogs, 30, erase_ip_and_user_agent()),
    )
    .await; // #6
    record(
        r,
        &actx.clone().with_request(request("req-new")),
        event("new.event"),
    )
    .await; // #7
    let before = audit_trail(r, acme.id).await;
    let mut t = Trail::new(r, acme.id).await;

    let now = h.clock.now();
    let cutoff = now - Duration::days(30);
    let report = enforce(r, now, 2).await;
    assert_eq!(
        report.outcomes,
        [outcome(
            acme.id,
            DataCategory::AuditLogs,
            cutoff,
            0,
            3,
            true
        )]
    );
    let events = t.take().await;
    assert_retention_events(&events, "audit_logs", cutoff, &[(0, 2), (0, 1)]);
    assert!(events.iter().all(|e| e.created_at == h.clock.now()));

    let after = audit_trail(r, acme.id).await;
    assert_eq!(seqs(&after), (1..=9).collect::<Vec<i64>>());
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(
            (
                a.id,
                a.seq,
                &a.actor,
                &a.action,
                &a.diff,
                &a.request_id,
                a.hash
            ),
            (
                b.id,
                b.seq,
                &b.actor,
                &b.action,
                &b.diff,
                &b.request_id,
                b.hash
            )
        );
        if a.seq <= 5 {
            assert_eq!((a.ip, a.user_agent.as_deref()), (None, None), "{a:#?}");
        } else {
            assert_eq!((a.ip, &a.user_agent), (b.ip, &b.user_agent));
        }
    }
    assert_eq!(after[1].request_id.as_deref(), Some("req-old-0"));
    assert_request(&after[5], "req-policy");
    assert_request(&after[6], "req-new");
    assert_eq!(after[1].actor_email.as_deref(), Some(alice.email.as_str()));
    assert_eq!(chain_verdict(r, acme.id).await, intact(9, 9));

    let again = enforce(r, now, 2).await;
    assert_eq!(
        again.outcomes,
        [outcome(
            acme.id,
            DataCategory::AuditLogs,
            cutoff,
            0,
            0,
            true
        )]
    );
    t.none("second run").await;
    assert_eq!(chain_verdict(r, acme.id).await, intact(9, 9));
}

/// The five kinds of invitation of the retention cases, created a minute
/// apart from `t0` on and two days later: `(pending, accepted, revoked,
/// expired, recent)`.
async fn invitation_world(
    h: &Harness,
    actx: &Context,
) -> (
    InvitationId,
    InvitationId,
    InvitationId,
    InvitationId,
    InvitationId,
) {
    let r = &h.repos;
    let pending = invite(r, actx, "pending@acme.io", Duration::days(30)).await;
    h.clock.advance(Duration::minutes(1));
    let bob = signup(r, "bob@acme.io").await;
    let accepted = invite(r, actx, "bob@acme.io", Duration::days(7)).await;
    r.members
        .accept_invitation(&Context::user(bob.id), &accepted.token)
        .await
        .unwrap();
    h.clock.advance(Duration::minutes(1));
    let revoked = invite(r, actx, "revoked@acme.io", Duration::days(7)).await;
    r.members.revoke_invitation(actx, revoked.id).await.unwrap();
    h.clock.advance(Duration::minutes(1));
    let expired = invite(r, actx, "expired@acme.io", Duration::hours(1)).await;
    h.clock.advance(Duration::days(2));
    let recent = invite(r, actx, "recent@acme.io", Duration::days(7)).await;
    r.members.revoke_invitation(actx, recent.id).await.unwrap();
    (pending.id, accepted.id, revoked.id, expired.id, recent.id)
}

/// `invitations` + delete removes the invitations created before the
/// cutoff that are no longer pending (accepted, revoked or expired).
pub async fn invitation_retention_deletes_settled_old_invitations(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let (pending, _, _, _, recent) = invitation_world(&h, &actx).await;
    set_policy(
        r,
        &actx,
        policy(DataCategory::Invitations, 1, RetentionAction::Delete),
    )
    .await;
    let mut t = Trail::new(r, acme.id).await;
    let members = r.members.list_members(&actx).await.unwrap();

    let now = h.clock.now();
    let cutoff = now - Duration::days(1);
    let report = enforce(r, now, 2).await;
    assert_eq!(
        report.outcomes,
        [outcome(
            acme.id,
            DataCategory::Invitations,
            cutoff,
            3,
            0,
            true
        )]
    );
    let ids: Vec<InvitationId> = invitations(r, &actx)
        .await
        .into_iter()
        .map(|i| i.0)
        .collect();
    assert_eq!(ids, [pending, recent]);
    assert_eq!(r.members.list_members(&actx).await.unwrap(), members);
    assert_retention_events(&t.take().await, "invitations", cutoff, &[(2, 0), (1, 0)]);

    let again = enforce(r, now, 2).await;
    assert_eq!(
        again.outcomes,
        [outcome(
            acme.id,
            DataCategory::Invitations,
            cutoff,
            0,
            0,
            true
        )]
    );
    t.none("second run").await;

    // Once expired, the pending invitation goes too.
    h.clock.advance(Duration::days(29));
    let later = h.clock.now();
    let report = enforce(r, later, 2).await;
    assert_eq!(
        report.outcomes,
        [outcome(
            acme.id,
            DataCategory::Invitations,
            later - Duration::days(1),
            2,
            0,
            true
        )]
    );
    assert!(invitations(r, &actx).await.is_empty());
    assert_retention_events(
        &t.take().await,
        "invitations",
        later - Duration::days(1),
        &[(2, 0)],
    );
    let n = audit_trail(r, acme.id).await.len();
    assert_eq!(chain_verdict(r, acme.id).await, intact(n as u64, n as i64));
}

/// `invitations` + anonymize replaces the email of the same invitations by
/// its hash, once.
pub async fn invitation_retention_hashes_settled_old_emails(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let (pending, accepted, revoked, expired, recent) = invitation_world(&h, &actx).await;
    set_policy(
        r,
        &actx,
        policy(DataCategory::Invitations, 1, hash_emails()),
    )
    .await;
    let mut t = Trail::new(r, acme.id).await;

    let now = h.clock.now();
    let cutoff = now - Duration::days(1);
    let report = enforce(r, now, 2).await;
    assert_eq!(
        report.outcomes,
        [outcome(
            acme.id,
            DataCategory::Invitations,
            cutoff,
            0,
            3,
            true
        )]
    );
    assert_eq!(
        invitations(r, &actx).await,
        [
            (pending, "pending@acme.io".to_owned()),
            (accepted, hashed_email("bob@acme.io")),
            (revoked, hashed_email("revoked@acme.io")),
            (expired, hashed_email("expired@acme.io")),
            (recent, "recent@acme.io".to_owned()),
        ]
    );
    assert_retention_events(&t.take().await, "invitations", cutoff, &[(0, 2), (0, 1)]);

    let again = enforce(r, now, 2).await;
    assert_eq!(
        again.outcomes,
        [outcome(
            acme.id,
            DataCategory::Invitations,
            cutoff,
            0,
            0,
            true
        )]
    );
    t.none("second run").await;

    h.clock.advance(Duration::days(29));
    let later = h.clock.now();
    let report = enforce(r, later, 10).await;
    assert_eq!(report.outcomes[0].anonymized, 2);
    let emails: Vec<String> = invitations(r, &actx)
        .await
        .into_iter()
        .map(|i| i.1)
        .collect();
    assert_eq!(
        emails,
        [
            hashed_email("pending@acme.io"),
            hashed_email("bob@acme.io"),
            hashed_email("revoked@acme.io"),
            hashed_email("expired@acme.io"),
            hashed_email("recent@acme.io"),
        ]
    );
    assert_eq!(t.take().await.len(), 1);
}

/// The report has one outcome per policy, ordered by tenant then category;
/// categories no module stores yet are reported as not applied; tenants
/// without policies are untouched.
pub async fn retention_reports_every_policy_and_touches_nothing_else(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let (umbrella, _, uctx) = tenant_with_owner(r, "umbrella").await;
    let (globex, _, gctx) = tenant_with_owner(r, "globex").await;
    for ctx in [&actx, &uctx, &gctx] {
        let old = invite(r, ctx, "old@example.io", Duration::days(1)).await;
        r.members.revoke_invitation(ctx, old.id).await.unwrap();
        record(r, ctx, event("old.event")).await;
    }
    h.clock.advance(Duration::days(40));
    let set = |ctx: &Context, category, retention, action| {
        let ctx = ctx.clone();
        async move { set_policy(r, &ctx, policy(category, retention, action)).await }
    };
    set(&actx, DataCategory::Tickets, 90, RetentionAction::Delete).await;
    set(&actx, DataCategory::AuditLogs, 30, RetentionAction::Delete).await;
    set(
        &actx,
        DataCategory::PromptRuns,
        10,
        RetentionAction::Anonymize(vec![rule("prompt", FieldTreatment::Hash)]),
    )
    .await;
    set(
        &uctx,
        DataCategory::IntegrationEvents,
        5,
        RetentionAction::Delete,
    )
    .await;
    set(&uctx, DataCategory::Invitations, 7, RetentionAction::Delete).await;
    set(
        &uctx,
        DataCategory::MeteredEvents,
        1,
        RetentionAction::Anonymize(vec![rule("properties", FieldTreatment::Null)]),
    )
    .await;
    let globex_trail = audit_trail(r, globex.id).await;
    let globex_invitations = invitations(r, &gctx).await;
    let umbrella_trail_len = audit_trail(r, umbrella.id).await.len();

    let now = h.clock.now();
    let cut = |d: i64| now - Duration::days(d);
    let report = enforce(r, now, 100).await;
    let mut expected = vec![
        outcome(acme.id, DataCategory::Tickets, cut(90), 0, 0, false),
        // tenant.created, the invitation's two events and old.event
        outcome(acme.id, DataCategory::AuditLogs, cut(30), 4, 0, true),
        outcome(acme.id, DataCategory::PromptRuns, cut(10), 0, 0, false),
        outcome(
            umbrella.id,
            DataCategory::IntegrationEvents,
            cut(5),
            0,
            0,
            false,
        ),
        outcome(umbrella.id, DataCategory::Invitations, cut(7), 1, 0, true),
        outcome(
            umbrella.id,
            DataCategory::MeteredEvents,
            cut(1),
            0,
            0,
            false,
        ),
    ];
    expected.sort_by_key(|o| (o.tenant_id, o.category));
    assert_eq!(report.outcomes, expected);
    assert_eq!(report.outcome(globex.id, DataCategory::AuditLogs), None);

    assert_eq!(audit_trail(r, globex.id).await, globex_trail);
    assert_eq!(invitations(r, &gctx).await, globex_invitations);
    assert!(invitations(r, &uctx).await.is_empty());
    assert_eq!(invitations(r, &actx).await.len(), 1);
    // umbrella: one retention.applied; acme: one audit.purged.
    let umbrella_trail = audit_trail(r, umbrella.id).await;
    assert_eq!(umbrella_trail.len(), umbrella_trail_len + 1);
    assert_eq!(
        umbrella_trail.last().unwrap().action.as_str(),
        "retention.applied"
    );
    let acme_trail = audit_trail(r, acme.id).await;
    assert_eq!(acme_trail.last().unwrap().action.as_str(), "audit.purged");
    assert_eq!(acme_trail[0].seq, 5);
    for tenant in [acme.id, umbrella.id, globex.id] {
        assert!(matches!(
            chain_verdict(r, tenant).await,
            ChainVerdict::Intact { .. }
        ));
    }
}

// ---------------------------------------------------------------------------
// Consents
// ---------------------------------------------------------------------------

/// Consents are append-only: grants and withdrawals are all kept, oldest
/// first; the current state is the latest entry per purpose; withdrawing
/// what is not granted is `InvalidState`. Each change is audited.
pub async fn consents_keep_their_full_history(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let (bob, bctx) = member_with_role(r, &actx, "bob@acme.io", None).await;
    let (_, _, uctx) = tenant_with_owner(r, "umbrella").await;
    let bob_in_umbrella = join(r, &uctx, &bob, None).await;
    let me = Actor::User(bob.id);
    let marketing = purpose("marketing_email");
    let analytics = purpose("analytics");
    let mut t = Trail::new(r, acme.id).await;

    h.clock.advance(Duration::minutes(1));
    let c1 = r
        .privacy
        .record_consent(
            &bctx.clone().with_request(request("req-consent")),
            consent(bob.id, "marketing_email", "2026-05", "signup_form"),
        )
        .await
        .unwrap();
    assert_eq!(
        (c1.tenant_id, c1.user_id, &c1.purpose, c1.granted),
        (acme.id, bob.id, &marketing, true)
    );
    assert_eq!(
        (c1.policy_version.as_str(), c1.source.as_str()),
        ("2026-05", "signup_form")
    );
    assert_eq!((c1.recorded_at, &c1.recorded_by), (h.clock.now(), &me));
    let e = t.one("grant").await;
    assert_event(
        &e,
        "consent.granted",
        "consent",
        target(c1.id),
        &me,
        json!({
            "user_id": bob.id,
            "purpose": "marketing_email",
            "policy_version": "2026-05",
            "source": "signup_form"
        }),
    );
    assert_request(&e, "req-consent");
    assert!(r
        .privacy
        .has_consent(&bctx, bob.id, &marketing)
        .await
        .unwrap());
    assert!(!r
        .privacy
        .has_consent(&bctx, bob.id, &analytics)
        .await
        .unwrap());

    // Same instant: the history keeps insertion order.
    let c2 = r
        .privacy
        .withdraw_consent(
            &bctx,
            consent(bob.id, "marketing_email", "2026-05", "settings_page"),
        )
        .await
        .unwrap();
    assert!(!c2.granted);
    assert_ne!(c2.id, c1.id);
    assert_eq!(c2.recorded_at, c1.recorded_at);
    let e = t.one("withdraw").await;
    assert_event(
        &e,
        "consent.withdrawn",
        "consent",
        target(c2.id),
        &me,
        json!({
            "user_id": bob.id,
            "purpose": "marketing_email",
            "policy_version": "2026-05",
            "source": "settings_page"
        }),
    );
    assert!(!r
        .privacy
        .has_consent(&bctx, bob.id, &marketing)
        .await
        .unwrap());

    for purpose_label in ["marketing_email", "analytics"] {
        assert_err!(
            r.privacy
                .withdraw_consent(&bctx, consent(bob.id, purpose_label, "2026-05", "api"))
                .await,
            Error::InvalidState {
                entity: Entity::Consent,
                ..
            }
        );
    }
    t.none("refused withdrawals").await;

    h.clock.advance(Duration::minutes(1));
    let c3 = r
        .privacy
        .record_consent(&bctx, consent(bob.id, "marketing_email", "2026-06", "api"))
        .await
        .unwrap();
    let c4 = r
        .privacy
        .record_consent(&bctx, consent(bob.id, "analytics", "2026-06", "api"))
        .await
        .unwrap();
    // Granting again is recorded too.
    let c5 = r
        .privacy
        .record_consent(&bctx, consent(bob.id, "analytics", "2026-07", "api"))
        .await
        .unwrap();
    assert_eq!(t.take().await.len(), 3);
    assert!(r
        .privacy
        .has_consent(&bctx, bob.id, &marketing)
        .await
        .unwrap());
    assert!(r
        .privacy
        .has_consent(&bctx, bob.id, &analytics)
        .await
        .unwrap());
    let history = r.privacy.consent_history(&bctx, bob.id).await.unwrap();
    assert_eq!(history, vec![c1, c2, c3, c4, c5.clone()]);
    assert_eq!(
        r.privacy.consent_history(&actx, bob.id).await.unwrap(),
        history
    );

    // Consents belong to their tenant.
    assert!(r
        .privacy
        .consent_history(&bob_in_umbrella, bob.id)
        .await
        .unwrap()
        .is_empty());
    assert!(!r
        .privacy
        .has_consent(&bob_in_umbrella, bob.id, &analytics)
        .await
        .unwrap());

    r.privacy
        .withdraw_consent(&bctx, consent(bob.id, "analytics", "2026-07", "api"))
        .await
        .unwrap();
    assert!(!r
        .privacy
        .has_consent(&bctx, bob.id, &analytics)
        .await
        .unwrap());
    assert_eq!(
        r.privacy
            .consent_history(&bctx, bob.id)
            .await
            .unwrap()
            .len(),
        6
    );
}

/// The subject must be a member (any status) of the tenant; the caller is
/// the subject, a holder of `consent.manage` or the system.
pub async fn consent_rights_and_subjects_are_checked(h: Harness) {
    let r = &h.repos;
    let (acme, alice, actx) = tenant_with_owner(r, "acme").await;
    let (bob, bctx) = member_with_role(r, &actx, "bob@acme.io", None).await;
    let (_, vctx) = member_with_role(r, &actx, "carol@acme.io", Some("Viewer")).await;
    custom_role(
        r,
        &actx,
        "Consent Desk",
        insightpulse_core::tenancy::RoleScope::Org,
        &["consent.manage"],
    )
    .await;
    let (dave, dctx) = member_with_role(r, &actx, "dave@acme.io", Some("Consent Desk")).await;
    let (erin, ectx) = member_with_role(r, &actx, "erin@acme.io", None).await;
    r.members.suspend_member(&actx, erin.id).await.unwrap();
    let (_, frank, fctx) = tenant_with_owner(r, "umbrella").await;
    let news = purpose("newsletter");
    let change = |user: UserId| consent(user, "newsletter", "v1", "api");
    let mut t = Trail::new(r, acme.id).await;

    // A member without consent.manage acts for itself only.
    assert_err!(
        r.privacy.record_consent(&vctx, change(bob.id)).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.privacy.withdraw_consent(&vctx, change(bob.id)).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.privacy.has_consent(&vctx, bob.id, &news).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.privacy.consent_history(&vctx, bob.id).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.privacy.record_consent(&bctx, change(dave.id)).await,
        Error::PermissionDenied { .. }
    );
    t.none("refused consents").await;

    // The subject must be a member of the tenant.
    for user in [UserId::new(), frank.id] {
        assert_err!(
            r.privacy.record_consent(&actx, change(user)).await,
            Error::NotFound {
                entity: Entity::User
            }
        );
        assert_err!(
            r.privacy
                .record_consent(&system().in_tenant(acme.id), change(user))
                .await,
            Error::NotFound {
                entity: Entity::User
            }
        );
        assert_err!(
            r.privacy.has_consent(&actx, user, &news).await,
            Error::NotFound {
                entity: Entity::User
            }
        );
        assert_err!(
            r.privacy.consent_history(&actx, user).await,
            Error::NotFound {
                entity: Entity::User
            }
        );
    }
    // The tenant must be visible to the caller; one it cannot see hides
    // its members (NotFound of the user, as for any row named by id).
    let outsider = fctx.in_tenant(acme.id);
    for ctx in [&outsider, &ectx] {
        assert_err!(
            r.privacy.record_consent(ctx, change(bob.id)).await,
            Error::NotFound {
                entity: Entity::User
            }
        );
        assert_err!(
            r.privacy.consent_history(ctx, bob.id).await,
            Error::NotFound {
                entity: Entity::User
            }
        );
    }
    assert_err!(
        r.privacy.record_consent(&outsider, change(frank.id)).await,
        Error::NotFound {
            entity: Entity::User
        }
    );
    assert_err!(
        r.privacy
            .record_consent(&Context::user(bob.id), change(bob.id))
            .await,
        Error::Validation {
            field: "context",
            ..
        }
    );
    t.none("refused consents").await;

    // Self, consent.manage, owner and system may.
    let own = r
        .privacy
        .record_consent(&bctx, change(bob.id))
        .await
        .unwrap();
    assert_eq!(own.recorded_by, Actor::User(bob.id));
    let by_desk = r
        .privacy
        .withdraw_consent(&dctx, change(bob.id))
        .await
        .unwrap();
    assert_eq!(by_desk.recorded_by, Actor::User(dave.id));
    assert_eq!(t.take().await[1].actor, Actor::User(dave.id));
    let by_owner = r
        .privacy
        .record_consent(&actx, change(bob.id))
        .await
        .unwrap();
    assert_eq!(by_owner.recorded_by, Actor::User(alice.id));
    let by_system = r
        .privacy
        .withdraw_consent(&system().in_tenant(acme.id), change(bob.id))
        .await
        .unwrap();
    assert_eq!(by_system.recorded_by, system_actor());
    assert_eq!(t.take().await[1].actor, system_actor());
    assert!(!r.privacy.has_consent(&dctx, bob.id, &news).await.unwrap());
    assert_eq!(
        r.privacy.consent_history(&dctx, bob.id).await.unwrap(),
        vec![own, by_desk, by_owner, by_system]
    );
    // A suspended member is still a member: others may record for them.
    let for_erin = r
        .privacy
        .record_consent(&dctx, change(erin.id))
        .await
        .unwrap();
    assert_eq!(for_erin.user_id, erin.id);
    assert!(r.privacy.has_consent(&actx, erin.id, &news).await.unwrap());
}

/// Purposes, sources and policy versions are validated labels.
pub async fn consent_input_is_validated(h: Harness) {
    let r = &h.repos;
    let (_, owner, actx) = tenant_with_owner(r, "acme").await;
    for bad in [
        "",
        "Marketing Email",
        "1st",
        "marketing..email",
        &"p".repeat(65),
    ] {
        assert_err!(
            ConsentPurpose::parse(bad),
            Error::Validation {
                field: "purpose",
                ..
            }
        );
    }
    for bad in ["", "Sign up", "-form"] {
        assert_err!(
            ConsentSource::parse(bad),
            Error::Validation {
                field: "source",
                ..
            }
        );
    }
    for bad in ["", "v 1", "v1\n", &"9".repeat(65)] {
        assert_err!(
            PolicyVersion::parse(bad),
            Error::Validation {
                field: "policy_version",
                ..
            }
        );
    }
    for good in ["2026-05", "v3.1", "V3.1-rc", &"9".repeat(64)] {
        assert_eq!(PolicyVersion::parse(good).unwrap().as_str(), good);
    }
    // The labels come back exactly as given.
    let c = r
        .privacy
        .record_consent(
            &actx,
            consent(owner.id, "product_updates.email", "V3.1-rc", "mobile-app"),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            c.purpose.as_str(),
            c.policy_version.as_str(),
            c.source.as_str()
        ),
        ("product_updates.email", "V3.1-rc", "mobile-app")
    );
}

// ---------------------------------------------------------------------------
// Erasure
// ---------------------------------------------------------------------------

/// Erasing a user removes their memberships (with grants, teams and
/// identities) and every invitation to their address, leaves the account a
/// pseudonymous email, erases the personal fields of the audit entries they
/// acted in (the entries stay, chains intact) and records `user.erased` in
/// each former tenant and the platform trail. Erasing again does nothing
/// but record it.
pub async fn erase_user_removes_and_pseudonymizes(h: Harness) {
    let r = &h.repos;
    let (acme, alice, actx) = tenant_with_owner(r, "acme").await;
    let (globex, _, gctx) = tenant_with_owner(r, "globex").await;
    let (umbrella, _, uctx) = tenant_with_owner(r, "umbrella").await;
    let bob = signup(r, "bob@example.io").await;
    r.users
        .update_profile(&Context::user(bob.id), Some(name("Bob Builder")))
        .await
        .unwrap();
    r.users
        .set_password(
            &Context::user(bob.id),
            bob.id,
            &SecretString::from("bob's long password"),
        )
        .await
        .unwrap();
    let b_acme = join(r, &actx, &bob, Some("Developer")).await;
    let b_globex = join(r, &gctx, &bob, Some("Viewer")).await;
    invite(r, &uctx, "bob@example.io", Duration::days(7)).await;
    let okta = r
        .sso
        .create_provider(
            &actx,
            NewSsoProvider {
                name: name("Okta"),
                config: SsoConfig::Oidc {
                    issuer: "https://login.example.com".parse().unwrap(),
                    client_id: "insightpulse".to_owned(),
                    client_secret_ref: "secret://okta".to_owned(),
                    scopes: vec!["openid".to_owned()],
                },
            },
        )
        .await
        .unwrap();
    r.sso
        .link_identity(&actx, okta.id, "okta|bob", bob.id)
        .await
        .unwrap();
    let team = r
        .teams
        .create_team(
            &actx,
            NewTeam {
                slug: slug("ops"),
                name: name("Ops"),
            },
        )
        .await
        .unwrap();
    r.teams
        .add_team_member(&actx, team.id, bob.id)
        .await
        .unwrap();
    // Bob's own entries: four with personal fields, one without.
    let with_meta = |ctx: &Context, id: &str| ctx.clone().with_request(request(id));
    record(r, &with_meta(&b_acme, "req-b1"), event("doc.viewed")).await;
    record(r, &with_meta(&b_acme, "req-b2"), event("doc.viewed")).await;
    r.privacy
        .record_consent(
            &with_meta(&b_acme, "req-b3"),
            consent(bob.id, "analytics", "v1", "web"),
        )
        .await
        .unwrap();
    record(r, &with_meta(&b_globex, "req-b4"), event("doc.viewed")).await;
    record(
        r,
        &b_globex.clone().with_request_id("req-b5"),
        event("doc.viewed"),
    )
    .await;
    // Alice's stay as they are.
    record(r, &with_meta(&actx, "req-alice"), event("doc.viewed")).await;

    let bobs = |trail: &[AuditEntry]| -> Vec<AuditEntry> {
        trail
            .iter()
            .filter(|e| e.actor == Actor::User(bob.id))
            .cloned()
            .collect()
    };
    let before_acme = audit_trail(r, acme.id).await;
    let before_globex = audit_trail(r, globex.id).await;
    let mut t_acme = Trail::new(r, acme.id).await;
    let mut t_globex = Trail::new(r, globex.id).await;
    let mut t_umbrella = Trail::new(r, umbrella.id).await;
    let mut t_platform = Trail::new(r, PLATFORM_TENANT).await;

    h.clock.advance(Duration::minutes(1));
    let me = Context::user(bob.id).with_request(request("req-erase"));
    let report = r.privacy.erase_user(&me, bob.id).await.unwrap();
    let mut tenants = vec![acme.id, globex.id];
    tenants.sort();
    assert_eq!(
        report,
        ErasureReport {
            user_id: bob.id,
            tenants,
            memberships_removed: 2,
            identities_removed: 1,
            invitations_removed: 3,
            audit_entries_pseudonymized: 4,
        }
    );

    // The account identifies no one.
    let account = r.users.get_user(&system(), bob.id).await.unwrap();
    assert_eq!(account.email.as_str(), erased_email(bob.id));
    assert_eq!(account.full_name, None);
    assert!(!account.has_password);
    assert_err!(
        r.auth
            .sign_in(
                &email("bob@example.io"),
                &SecretString::from("bob's long password"),
                RequestMeta::default()
            )
            .await,
        Error::Unauthenticated {
            credential: Credential::Password,
            reason: Rejection::Unknown
        }
    );
    assert!(r
        .tenants
        .list_my_tenants(&Context::user(bob.id))
        .await
        .unwrap()
        .is_empty());
    // Memberships, grants, teams, identities, invitations: gone.
    for ctx in [&actx, &gctx] {
        assert!(r
            .members
            .list_members(ctx)
            .await
            .unwrap()
            .iter()
            .all(|m| m.user_id != bob.id));
        assert!(r
            .rbac
            .list_grants(ctx, None)
            .await
            .unwrap()
            .iter()
            .all(|g| g.user_id != bob.id));
    }
    for ctx in [&actx, &gctx, &uctx] {
        assert!(invitations(r, ctx)
            .await
            .iter()
            .all(|(_, e)| e != "bob@example.io"));
    }
    assert!(invitations(r, &uctx).await.is_empty());
    assert!(r
        .teams
        .list_team_members(&actx, team.id)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        r.sso
            .find_user_by_identity(&actx, okta.id, "okta|bob")
            .await
            .unwrap(),
        None
    );
    // The address is free again.
    let new_bob = signup(r, "bob@example.io").await;
    assert_ne!(new_bob.id, bob.id);

    // The entries stay, stripped of personal fields; the chains hold.
    for (before, tenant) in [(&before_acme, acme.id), (&before_globex, globex.id)] {
        let after = audit_trail(r, tenant).await;
        for b in before {
            let a = after
                .iter()
                .find(|a| a.id == b.id)
                .unwrap_or_else(|| panic!("entry #{} is gone", b.seq));
            assert_eq!(
                (&a.actor, &a.action, &a.diff, &a.request_id, a.hash),
                (&b.actor, &b.action, &b.diff, &b.request_id, b.hash)
            );
            if a.actor == Actor::User(bob.id) {
                assert_eq!((a.ip, &a.user_agent), (None, &None), "{a:#?}");
                assert_eq!(
                    a.actor_email.as_deref(),
                    Some(erased_email(bob.id).as_str())
                );
            } else {
                assert_eq!((a.ip, &a.user_agent), (b.ip, &b.user_agent), "{a:#?}");
            }
        }
        assert!(!bobs(before).is_empty());
    }
    // The report names the erased actor by the pseudonym, for every reader.
    let report_page = r
        .audit
        .query(&actx, AuditQuery::last_days(1).limit(1000))
        .await
        .unwrap();
    let bob_entries: Vec<&AuditEntry> = report_page
        .entries
        .iter()
        .filter(|e| e.actor == Actor::User(bob.id))
        .collect();
    assert_eq!(bob_entries.len(), bobs(&before_acme).len() + 1);
    for e in bob_entries {
        assert_eq!(
            e.actor_email.as_deref(),
            Some(erased_email(bob.id).as_str()),
            "{e:#?}"
        );
    }
    let alice_entry = audit_trail(r, acme.id)
        .await
        .into_iter()
        .find(|e| e.request_id.as_deref() == Some("req-alice"))
        .unwrap();
    assert_request(&alice_entry, "req-alice");
    assert_eq!(
        alice_entry.actor_email.as_deref(),
        Some(alice.email.as_str())
    );

    let check_erased = |e: &AuditEntry, tenant: TenantId, actor: &Actor| {
        assert_event(e, "user.erased", "user", target(bob.id), actor, json!({}));
        assert_eq!((e.tenant_id, e.created_at), (tenant, h.clock.now()));
    };
    let bob_actor = Actor::User(bob.id);
    for (t, tenant) in [(&mut t_acme, acme.id), (&mut t_globex, globex.id)] {
        let e = t.one("erasure").await;
        check_erased(&e, tenant, &bob_actor);
        // The erased user's own request leaves no personal fields.
        assert_eq!(
            (e.request_id.as_deref(), e.ip, e.user_agent.as_deref()),
            (Some("req-erase"), None, None)
        );
    }
    t_umbrella
        .none("erasure in a tenant bob was only invited to")
        .await;
    let e = t_platform.one("erasure").await;
    check_erased(&e, PLATFORM_TENANT, &bob_actor);
    assert_eq!(
        (e.request_id.as_deref(), e.ip, e.user_agent.as_deref()),
        (Some("req-erase"), None, None)
    );
    for tenant in [acme.id, globex.id, umbrella.id, PLATFORM_TENANT] {
        let n = audit_trail(r, tenant).await.len();
        assert_eq!(
            chain_verdict(r, tenant).await,
            intact(n as u64, n as i64),
            "chain of {tenant}"
        );
    }

    // Again, by the system: nothing left to do, but recorded.
    h.clock.advance(Duration::minutes(1));
    let job = Context::system("gdpr request").with_request(request("req-again"));
    assert_eq!(
        r.privacy.erase_user(&job, bob.id).await.unwrap(),
        ErasureReport {
            user_id: bob.id,
            tenants: vec![],
            memberships_removed: 0,
            identities_removed: 0,
            invitations_removed: 0,
            audit_entries_pseudonymized: 0,
        }
    );
    t_acme.none("second erasure").await;
    t_globex.none("second erasure").await;
    let e = t_platform.one("second erasure").await;
    check_erased(
        &e,
        PLATFORM_TENANT,
        &Actor::System {
            reason: "gdpr request".to_owned(),
        },
    );
    assert_request(&e, "req-again");
    assert_eq!(chain_verdict(r, PLATFORM_TENANT).await, intact(2, 2));
    let platform = r
        .audit
        .query(
            &system().in_tenant(PLATFORM_TENANT),
            AuditQuery::last_days(1),
        )
        .await
        .unwrap();
    assert_eq!(platform.entries.len(), 2);
    assert_eq!(
        platform.entries[1].actor_email.as_deref(),
        Some(erased_email(bob.id).as_str())
    );
}

/// Only the user themselves or the system erases a user; an unknown user
/// is `NotFound`; refused erasures change nothing.
pub async fn erase_user_is_self_or_system(h: Harness) {
    let r = &h.repos;
    let (acme, alice, actx) = tenant_with_owner(r, "acme").await;
    let (bob, bctx) = member_with_role(r, &actx, "bob@acme.io", None).await;
    let (_, cctx) = member_with_role(r, &actx, "carol@acme.io", Some("Admin")).await;
    let (_, _, kctx) = api_key(r, &actx, ApiKeyScope::Tenant, &["member.manage"]).await;
    let mut t = Trail::new(r, acme.id).await;

    for ctx in [&actx, &cctx, &kctx, &Context::user(alice.id)] {
        assert_err!(
            r.privacy.erase_user(ctx, bob.id).await,
            Error::PermissionDenied {
                required: Requirement::SameUserOrSystem
            }
        );
    }
    assert_err!(
        r.privacy.erase_user(&bctx, alice.id).await,
        Error::PermissionDenied {
            required: Requirement::SameUserOrSystem
        }
    );
    assert_err!(
        r.privacy.erase_user(&system(), UserId::new()).await,
        Error::NotFound {
            entity: Entity::User
        }
    );
    t.none("refused erasures").await;
    assert_eq!(
        r.users.get_user(&system(), bob.id).await.unwrap().email,
        bob.email
    );
    assert_eq!(r.members.list_members(&actx).await.unwrap().len(), 3);
    assert!(audit_trail(r, PLATFORM_TENANT).await.is_empty());

    let job = Context::system("gdpr request").with_request(request("req-erase"));
    let report = r.privacy.erase_user(&job, bob.id).await.unwrap();
    assert_eq!(report.tenants, [acme.id]);
    assert_eq!(report.memberships_removed, 1);
    let e = t.one("erasure").await;
    assert_event(
        &e,
        "user.erased",
        "user",
        target(bob.id),
        &Actor::System {
            reason: "gdpr request".to_owned(),
        },
        json!({}),
    );
    // Not the erased user's request: its metadata is kept.
    assert_request(&e, "req-erase");
    assert_eq!(audit_trail(r, PLATFORM_TENANT).await.len(), 1);
}

/// The only active owner of a tenant cannot be erased (a suspended
/// co-owner does not count): `InvalidState`, and nothing changes.
pub async fn last_active_owner_cannot_be_erased(h: Harness) {
    let r = &h.repos;
    let (acme, alice, actx) = tenant_with_owner(r, "acme").await;
    let (umbrella, _, uctx) = tenant_with_owner(r, "umbrella").await;
    let alice_in_umbrella = join(r, &uctx, &alice, None).await;
    let (bob, _) = member_with_role(r, &actx, "bob@acme.io", None).await;
    r.members.set_owner(&actx, bob.id, true).await.unwrap();
    r.members.suspend_member(&actx, bob.id).await.unwrap();
    record(
        r,
        &actx.clone().with_request(request("req-a")),
        event("doc.viewed"),
    )
    .await;
    record(
        r,
        &alice_in_umbrella.clone().with_request(request("req-u")),
        event("doc.viewed"),
    )
    .await;
    let acme_before = audit_trail(r, acme.id).await;
    let umbrella_before = audit_trail(r, umbrella.id).await;

    for ctx in [
        Context::user(alice.id).with_request(request("req-erase")),
        system(),
    ] {
        assert_err!(
            r.privacy.erase_user(&ctx, alice.id).await,
            Error::InvalidState {
                entity: Entity::Member,
                ..
            }
        );
    }
    assert_eq!(audit_trail(r, acme.id).await, acme_before);
    assert_eq!(audit_trail(r, umbrella.id).await, umbrella_before);
    assert!(audit_trail(r, PLATFORM_TENANT).await.is_empty());
    assert_eq!(r.users.get_user(&system(), alice.id).await.unwrap(), alice);
    assert_eq!(r.members.list_members(&actx).await.unwrap().len(), 2);
    assert_eq!(r.members.list_members(&uctx).await.unwrap().len(), 2);
    assert_eq!(
        r.tenants
            .list_my_tenants(&Context::user(alice.id))
            .await
            .unwrap()
            .len(),
        2
    );

    // With an active co-owner she may go.
    r.members.reactivate_member(&actx, bob.id).await.unwrap();
    let report = r.privacy.erase_user(&system(), alice.id).await.unwrap();
    let mut tenants = vec![acme.id, umbrella.id];
    tenants.sort();
    assert_eq!(report.tenants, tenants);
    assert_eq!(report.memberships_removed, 2);
    assert_eq!(report.audit_entries_pseudonymized, 2);
    let members = r
        .members
        .list_members(&Context::user(bob.id).in_tenant(acme.id))
        .await
        .unwrap();
    assert_eq!(members.len(), 1);
    assert!(members[0].is_owner && members[0].user_id == bob.id);
    for tenant in [acme.id, umbrella.id, PLATFORM_TENANT] {
        assert!(
            matches!(chain_verdict(r, tenant).await, ChainVerdict::Intact { .. }),
            "chain of {tenant}"
        );
    }
}
