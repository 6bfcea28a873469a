//! Cases: consents keep their full history; who may record them about whom.

use super::*;

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
