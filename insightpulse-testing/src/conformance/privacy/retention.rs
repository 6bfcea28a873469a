//! Cases: retention runs delete or anonymize exactly what is out of retention, in audited batches.

use super::*;

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
