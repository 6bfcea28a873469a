//! Cases: erasing a user removes and pseudonymizes without breaking any chain.

use super::*;

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
        .query_entries(&actx, AuditQuery::last_days(1).limit(1000))
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
        .query_entries(
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
