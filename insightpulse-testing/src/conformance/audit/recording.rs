//! Cases: what is written and what is not — unaudited and failed calls, secrets in diffs, host apps' own events.

use super::*;

/// Users, teams, sign-ins and reads are deliberately not audited.
pub async fn unaudited_calls_write_nothing(h: Harness) {
    let r = &h.repos;
    let (acme, alice, actx) = tenant_with_owner(r, "acme").await;
    let (bob, _) = member_with_role(r, &actx, "bob@acme.io", None).await;
    let web = project(r, &actx, "web").await;
    let prod = environment(r, &actx, web.id, EnvironmentKind::Production).await;
    let mut t = Trail::new(r, acme.id).await;

    signup(r, "dora@acme.io").await;
    r.users
        .update_profile(&Context::user(alice.id), Some(name("Alice A.")))
        .await
        .unwrap();
    r.users
        .set_password(
            &Context::user(alice.id),
            alice.id,
            &SecretString::from("correct horse battery staple"),
        )
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
    r.auth
        .sign_in(
            &alice.email,
            &SecretString::from("correct horse battery staple"),
            RequestMeta::default(),
        )
        .await
        .unwrap();
    r.projects.get_project(&actx, web.id).await.unwrap();
    r.projects.list_projects(&actx, true).await.unwrap();
    r.projects.get_environment(&actx, prod.id).await.unwrap();
    r.projects.list_environments(&actx, web.id).await.unwrap();
    r.members.list_members(&actx).await.unwrap();
    r.rbac.list_roles(&actx).await.unwrap();
    r.audit
        .query_entries(&actx, AuditQuery::last_days(30))
        .await
        .unwrap();
    r.audit.verify_chain(&actx).await.unwrap();
    t.none("unaudited calls").await;
}

/// A refused call — permission, conflict, validation, state, credentials —
/// leaves no entry.
pub async fn failed_calls_write_nothing(h: Harness) {
    let r = &h.repos;
    let (acme, alice, actx) = tenant_with_owner(r, "acme").await;
    let (bob, vctx) = member_with_role(r, &actx, "bob@acme.io", Some("Viewer")).await;
    let (_, _, uctx) = tenant_with_owner(r, "umbrella").await;
    let ops = custom_role(r, &actx, "Ops", RoleScope::Org, &["member.read"]).await;
    let invite = |e: &str| NewInvitation {
        email: email(e),
        role_id: None,
        valid_for: Duration::days(1),
    };
    let dora_inv = r
        .members
        .invite(&actx, invite("dora@acme.io"))
        .await
        .unwrap();
    let eve = signup(r, "eve@acme.io").await;
    let mut t = Trail::new(r, acme.id).await;

    assert_err!(
        r.members.invite(&vctx, invite("x@acme.io")).await,
        Error::PermissionDenied { .. }
    );
    t.none("invite without member.invite").await;
    assert_err!(
        r.members.invite(&actx, invite("bob@acme.io")).await,
        Error::Conflict { .. }
    );
    t.none("inviting a member").await;
    assert!(r
        .members
        .accept_invitation(&Context::user(eve.id), &dora_inv.token)
        .await
        .is_err());
    t.none("accepting another's invitation").await;
    assert_err!(
        r.members.remove_member(&actx, alice.id).await,
        Error::InvalidState { .. }
    );
    t.none("removing the last owner").await;
    assert_err!(
        r.members.set_owner(&vctx, bob.id, true).await,
        Error::PermissionDenied { .. }
    );
    t.none("set_owner by a non-owner").await;
    assert_err!(
        r.tenants
            .update_tenant(
                &vctx,
                TenantUpdate {
                    name: Some(name("Hacked")),
                    ..TenantUpdate::default()
                }
            )
            .await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.tenants
            .update_tenant(
                &actx,
                TenantUpdate {
                    settings: Some(json!([1, 2])),
                    ..TenantUpdate::default()
                }
            )
            .await,
        Error::Validation { .. }
    );
    assert_err!(
        r.tenants.delete_tenant(&vctx).await,
        Error::PermissionDenied { .. }
    );
    t.none("refused tenant changes").await;
    assert_err!(
        r.rbac
            .create_role(
                &actx,
                NewRole {
                    name: name("Ops"),
                    scope: RoleScope::Org,
                    description: None,
                    permissions: codes(&["member.read"]),
                }
            )
            .await,
        Error::Conflict { .. }
    );
    assert_err!(
        r.rbac.grant_role(&vctx, bob.id, ops.id, None).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.rbac.delete_role(&vctx, ops.id).await,
        Error::PermissionDenied { .. }
    );
    t.none("refused role changes").await;
    assert_err!(
        r.sso
            .create_provider(
                &actx,
                NewSsoProvider {
                    name: name("Okta"),
                    config: SsoConfig::Oidc {
                        issuer: "http://login.example.com".parse().unwrap(),
                        client_id: "x".to_owned(),
                        client_secret_ref: "secret://x".to_owned(),
                        scopes: vec!["openid".to_owned()],
                    },
                }
            )
            .await,
        Error::Validation { .. }
    );
    t.none("invalid provider").await;
    assert_err!(
        r.api_keys
            .create_api_key(
                &actx,
                NewApiKey {
                    name: name("old"),
                    scope: ApiKeyScope::Tenant,
                    permissions: codes(&["member.read"]),
                    expires_at: Some(h.clock.now() - Duration::days(1)),
                }
            )
            .await,
        Error::Validation { .. }
    );
    assert_err!(
        r.api_keys
            .create_api_key(
                &vctx,
                NewApiKey {
                    name: name("mine"),
                    scope: ApiKeyScope::Tenant,
                    permissions: codes(&["member.read"]),
                    expires_at: None,
                }
            )
            .await,
        Error::PermissionDenied { .. }
    );
    t.none("refused keys").await;
    assert_err!(
        r.audit
            .record_event(&uctx.clone().in_tenant(acme.id), event("app.noted"))
            .await,
        Error::NotFound {
            entity: Entity::Tenant
        }
    );
    t.none("record by an outsider").await;
}

/// No entry holds a secret: no API key or invitation token, no password,
/// no SSO secret reference; and no diff holds an invitee's address.
pub async fn diffs_never_hold_secrets(h: Harness) {
    let r = &h.repos;
    let (acme, alice, actx) = tenant_with_owner(r, "acme").await;
    let password = "correct horse battery staple";
    r.users
        .set_password(
            &Context::user(alice.id),
            alice.id,
            &SecretString::from(password),
        )
        .await
        .unwrap();
    let dora = signup(r, "dora@acme.io").await;
    let issued = r
        .members
        .invite(
            &actx,
            NewInvitation {
                email: dora.email.clone(),
                role_id: None,
                valid_for: Duration::days(1),
            },
        )
        .await
        .unwrap();
    r.members
        .accept_invitation(&Context::user(dora.id), &issued.token)
        .await
        .unwrap();
    let revoked = r
        .members
        .invite(
            &actx,
            NewInvitation {
                email: email("frank@acme.io"),
                role_id: None,
                valid_for: Duration::days(1),
            },
        )
        .await
        .unwrap();
    r.members
        .revoke_invitation(&actx, revoked.invitation.id)
        .await
        .unwrap();
    let key = r
        .api_keys
        .create_api_key(
            &actx,
            NewApiKey {
                name: name("ci"),
                scope: ApiKeyScope::Tenant,
                permissions: codes(&["member.read"]),
                expires_at: None,
            },
        )
        .await
        .unwrap();
    r.auth
        .authenticate(&key.secret, RequestMeta::default())
        .await
        .unwrap();
    r.api_keys.revoke_api_key(&actx, key.key.id).await.unwrap();
    let okta = r
        .sso
        .create_provider(
            &actx,
            NewSsoProvider {
                name: name("Okta"),
                config: oidc_config(),
            },
        )
        .await
        .unwrap();
    r.sso
        .update_provider(&actx, okta.id, Some(oidc_config()), None)
        .await
        .unwrap();

    let tokens = [
        issued.token.expose_secret().to_owned(),
        revoked.token.expose_secret().to_owned(),
        key.secret.expose_secret().to_owned(),
    ];
    // The secret half of each token (after `<tag>_<lookup>_`).
    let secret_halves: Vec<String> = tokens
        .iter()
        .map(|t| t.rsplit('_').next().unwrap().to_owned())
        .collect();
    let trail = audit_trail(r, acme.id).await;
    assert!(trail.len() >= 9, "{trail:#?}");
    for e in &trail {
        let text = format!("{e:?} {}", e.diff);
        for secret in tokens.iter().chain(&secret_halves) {
            assert!(!text.contains(secret.as_str()), "token in {text}");
        }
        for s in [password, "okta-client-secret", "$argon2"] {
            assert!(!text.contains(s), "{s} in {text}");
        }
        let diff = e.diff.to_string();
        for address in ["dora@acme.io", "frank@acme.io"] {
            assert!(!diff.contains(address), "{address} in {diff}");
        }
    }
}

// ---------------------------------------------------------------------------
// Host apps' events
// ---------------------------------------------------------------------------

/// Any principal that sees the tenant records events, always as itself and
/// with its request metadata.
pub async fn host_apps_record_their_own_events(h: Harness) {
    let r = &h.repos;
    let (acme, alice, actx) = tenant_with_owner(r, "acme").await;
    let (bob, vctx) = member_with_role(r, &actx, "bob@acme.io", Some("Viewer")).await;
    let (key, _, kctx) = api_key(r, &actx, ApiKeyScope::Tenant, &["member.read"]).await;
    let mut t = Trail::new(r, acme.id).await;

    h.clock.advance(Duration::minutes(1));
    let ev = AuditEvent::new(
        "invoice.finalized",
        "invoice",
        Some("inv_42"),
        Diff::new()
            .set("total", 4200)
            .change("status", "draft", "final"),
    )
    .unwrap();
    let id = record(r, &actx.clone().with_request(request("req-host")), ev).await;
    let e = t.one("owner's event").await;
    assert_eq!(e.id, id);
    assert_eq!((e.tenant_id, e.created_at), (acme.id, h.clock.now()));
    assert_event(
        &e,
        "invoice.finalized",
        "invoice",
        target("inv_42"),
        &Actor::User(alice.id),
        json!({"total": 4200, "status": {"from": "draft", "to": "final"}}),
    );
    assert_request(&e, "req-host");

    // A plain member needs no permission to record.
    let id = record(
        r,
        &vctx.clone().with_request_id("req-viewer"),
        event("doc.viewed"),
    )
    .await;
    let e = t.one("viewer's event").await;
    assert_eq!(e.id, id);
    assert_event(
        &e,
        "doc.viewed",
        "widget",
        target("w-1"),
        &Actor::User(bob.id),
        json!({"size": 3}),
    );
    assert_eq!(
        (e.request_id.as_deref(), e.ip, e.user_agent.as_deref()),
        (Some("req-viewer"), None, None)
    );

    let id = record(
        r,
        &kctx.clone().with_request(request("req-key")),
        event("sync.ran"),
    )
    .await;
    let e = t.one("key's event").await;
    assert_eq!(e.id, id);
    assert_eq!(e.actor, Actor::ApiKey(key.id));
    assert_request(&e, "req-key");

    let job = Context::system("nightly export").in_tenant(acme.id);
    let no_target =
        AuditEvent::new("report.exported", "report", None::<String>, json!({})).unwrap();
    let id = record(r, &job, no_target).await;
    let e = t.one("system's event").await;
    assert_eq!(e.id, id);
    assert_event(
        &e,
        "report.exported",
        "report",
        None,
        &Actor::System {
            reason: "nightly export".to_owned(),
        },
        json!({}),
    );
    assert_no_request(&e);

    // A target id of exactly 200 characters is fine.
    let long = "x".repeat(200);
    record(
        r,
        &actx,
        AuditEvent::new(
            "doc.tagged",
            "doc",
            Some(long.as_str()),
            json!({"tags": ["a"]}),
        )
        .unwrap(),
    )
    .await;
    assert_eq!(t.one("long target").await.target_id, Some(long));

    let trail = audit_trail(r, acme.id).await;
    let ids: HashSet<_> = trail.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), trail.len());
    assert_eq!(
        chain_verdict(r, acme.id).await,
        ChainVerdict::Intact {
            entries: trail.len() as u64,
            head_seq: trail.len() as i64
        }
    );
}

/// Events are validated before anything is written; a tenant the caller
/// cannot see is `NotFound`; the platform trail is the system's alone.
pub async fn record_refuses_bad_events_and_invisible_tenants(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let (bob, _) = member_with_role(r, &actx, "bob@acme.io", None).await;
    let (dave, _) = member_with_role(r, &actx, "dave@acme.io", None).await;
    r.members.suspend_member(&actx, dave.id).await.unwrap();
    let (umbrella, carol, _) = tenant_with_owner(r, "umbrella").await;
    let mut t = Trail::new(r, acme.id).await;

    let bad = [
        (
            AuditEvent::new("Invoice Finalized", "invoice", Some("1"), json!({})),
            "action",
        ),
        (
            AuditEvent::new("invoice.finalized", "Invoice", Some("1"), json!({})),
            "target_type",
        ),
        (
            AuditEvent::new("invoice.finalized", "invoice", Some("1"), json!([1, 2])),
            "diff",
        ),
        (
            AuditEvent::new("invoice.finalized", "invoice", Some("1"), json!("text")),
            "diff",
        ),
        (
            AuditEvent::new(
                "user.updated",
                "user",
                Some("1"),
                json!({"password": "hunter2"}),
            ),
            "diff",
        ),
        (
            AuditEvent::new(
                "user.updated",
                "user",
                Some("1"),
                json!({"profile": {"items": [{"api_token": "x"}]}}),
            ),
            "diff",
        ),
        (
            AuditEvent::new("doc.tagged", "doc", Some("x".repeat(201)), json!({})),
            "target_id",
        ),
        (
            AuditEvent::new("doc.tagged", "doc", Some(""), json!({})),
            "target_id",
        ),
    ];
    for (result, field) in bad {
        match result {
            Err(Error::Validation { field: f, .. }) if f == field => {}
            other => panic!("expected Validation({field}), got {other:?}"),
        }
    }

    let ev = event("app.noted");
    for ctx in [
        // a member of acme in a tenant it does not belong to
        Context::user(bob.id).in_tenant(umbrella.id),
        // an outsider in acme
        Context::user(carol.id).in_tenant(acme.id),
        // a tenant that does not exist
        system().in_tenant(TenantId::new()),
        // a suspended member
        Context::user(dave.id).in_tenant(acme.id),
    ] {
        assert_err!(
            r.audit.record_event(&ctx, ev.clone()).await,
            Error::NotFound {
                entity: Entity::Tenant
            }
        );
    }
    assert_err!(
        r.audit
            .record_event(&Context::user(bob.id), ev.clone())
            .await,
        Error::Validation {
            field: "context",
            ..
        }
    );
    t.none("refused records").await;

    // Only the system writes and reads the platform trail.
    let in_platform = Context::user(bob.id).in_tenant(PLATFORM_TENANT);
    assert_err!(
        r.audit.record_event(&in_platform, ev.clone()).await,
        Error::NotFound {
            entity: Entity::Tenant
        }
    );
    assert_err!(
        r.audit.verify_chain(&in_platform).await,
        Error::NotFound {
            entity: Entity::Tenant
        }
    );
    assert!(r
        .audit
        .query_entries(&in_platform, AuditQuery::last_days(30))
        .await
        .unwrap()
        .entries
        .is_empty());
    assert_eq!(
        chain_verdict(r, PLATFORM_TENANT).await,
        ChainVerdict::Intact {
            entries: 0,
            head_seq: 0
        }
    );
    record(r, &system().in_tenant(PLATFORM_TENANT), ev).await;
    let platform = audit_trail(r, PLATFORM_TENANT).await;
    assert_eq!(seqs(&platform), [1]);
    assert_eq!(platform[0].tenant_id, PLATFORM_TENANT);
    assert_eq!(platform[0].actor, system_actor());
    assert_eq!(
        chain_verdict(r, PLATFORM_TENANT).await,
        ChainVerdict::Intact {
            entries: 1,
            head_seq: 1
        }
    );
}
