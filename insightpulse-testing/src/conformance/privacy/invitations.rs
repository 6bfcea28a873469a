//! Invitation retention: settled invitations (accepted, revoked or expired
//! by the run's `now`) created before the cutoff are deleted or have their
//! email hashed; pending ones and those created at or after the cutoff stay.

use super::*;

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

/// The boundaries of an invitations run: an invitation created exactly at
/// the cutoff stays (the cutoff is exclusive); one created before it that
/// expired between the cutoff and `now`, or exactly at `now`, goes; one that
/// expires just after `now` is still pending and stays.
pub async fn invitation_retention_honours_its_boundaries(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    set_policy(
        r,
        &actx,
        policy(DataCategory::Invitations, 1, RetentionAction::Delete),
    )
    .await;
    let run_at = h.clock.now() + Duration::minutes(1) + Duration::days(1);
    let expired_between = invite(r, &actx, "between@acme.io", Duration::hours(12)).await;
    let expires_at_run = invite(r, &actx, "at-run@acme.io", run_at - h.clock.now()).await;
    let expires_after_run = invite(
        r,
        &actx,
        "after-run@acme.io",
        run_at - h.clock.now() + Duration::seconds(1),
    )
    .await;
    h.clock.advance(Duration::minutes(1));
    // Created at what will be the cutoff, and settled at once.
    let at_cutoff = invite(r, &actx, "at-cutoff@acme.io", Duration::days(7)).await;
    r.members
        .revoke_invitation(&actx, at_cutoff.id)
        .await
        .unwrap();
    let cutoff = h.clock.now();
    assert_eq!(run_at - Duration::days(1), cutoff);

    let report = enforce(r, run_at, 10).await;
    assert_eq!(
        report.outcomes,
        [outcome(
            acme.id,
            DataCategory::Invitations,
            cutoff,
            2,
            0,
            true
        )]
    );
    let left: Vec<InvitationId> = invitations(r, &actx)
        .await
        .into_iter()
        .map(|i| i.0)
        .collect();
    assert_eq!(left, [expires_after_run.id, at_cutoff.id]);
    assert!(!left.contains(&expired_between.id) && !left.contains(&expires_at_run.id));
}
