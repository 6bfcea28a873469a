//! Cases: data policies are validated, need `data_policy.manage`, and are set, replaced, listed and deleted.

use super::*;

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
