//! Cases: the audit report — who may read it, its window, filters, pages and actors.

use super::*;

/// The report and the chain check need `audit.read`: a plain member is
/// refused, an outsider (or a suspended member) sees an empty page.
pub async fn query_needs_audit_read(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let (_, vctx) = member_with_role(r, &actx, "viewer@acme.io", Some("Viewer")).await;
    let (_, dctx) = member_with_role(r, &actx, "dev@acme.io", Some("Developer")).await;
    custom_role(r, &actx, "Auditor", RoleScope::Org, &["audit.read"]).await;
    let (_, audctx) = member_with_role(r, &actx, "auditor@acme.io", Some("Auditor")).await;
    let (sus, susctx) = member_with_role(r, &actx, "sus@acme.io", Some("Admin")).await;
    r.members.suspend_member(&actx, sus.id).await.unwrap();
    let (_, _, uctx) = tenant_with_owner(r, "umbrella").await;
    let outsider = uctx.in_tenant(acme.id);
    let (_, _, reader_key) = api_key(r, &actx, ApiKeyScope::Tenant, &["audit.read"]).await;
    let (_, _, other_key) = api_key(r, &actx, ApiKeyScope::Tenant, &["member.read"]).await;

    let q = AuditQuery::last_days(30);
    let all = page(r, &system().in_tenant(acme.id), q.clone()).await;
    assert!(all.entries.len() >= 10, "{all:#?}");
    for ctx in [&actx, &audctx, &reader_key] {
        assert_eq!(page(r, ctx, q.clone()).await, all);
        assert_eq!(
            r.audit.verify_chain(ctx).await.unwrap(),
            chain_verdict(r, acme.id).await
        );
    }
    for ctx in [&vctx, &dctx, &other_key] {
        assert_err!(
            r.audit.query(ctx, q.clone()).await,
            Error::PermissionDenied { .. }
        );
        assert_err!(
            r.audit.verify_chain(ctx).await,
            Error::PermissionDenied { .. }
        );
    }
    for ctx in [&outsider, &susctx] {
        let p = page(r, ctx, q.clone()).await;
        assert!(p.entries.is_empty() && p.next.is_none(), "{p:#?}");
        assert_err!(
            r.audit.verify_chain(ctx).await,
            Error::NotFound {
                entity: Entity::Tenant
            }
        );
    }
}

/// Entries come newest first — by time, then position — within the last
/// `last_days` days of the backend's clock (inclusive bound).
pub async fn query_is_newest_first_within_the_window(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await; // #1
    let t0 = h.clock.now();
    record(r, &actx, event("a.one")).await; // #2 at t0
    record(r, &actx, event("a.two")).await; // #3 at t0
    h.clock.advance(Duration::days(3));
    record(r, &actx, event("a.three")).await; // #4 at t0+3d
    h.clock.advance(Duration::days(4));
    record(r, &actx, event("a.four")).await; // #5 at t0+7d

    // An entry dated back (the clock was moved back) sorts by its time.
    h.clock.set(t0 + Duration::days(5));
    record(r, &actx, event("a.back")).await; // #6 at t0+5d
    h.clock.set(t0 + Duration::days(7));
    record(r, &actx, event("a.five")).await; // #7 at t0+7d

    let q = |days: u32| AuditQuery::last_days(days);
    let p = page(r, &actx, q(30)).await;
    assert_eq!(seqs(&p.entries), [7, 5, 6, 4, 3, 2, 1]);
    assert_eq!(
        actions(&p.entries),
        [
            "a.five",
            "a.four",
            "a.back",
            "a.three",
            "a.two",
            "a.one",
            "tenant.created"
        ]
    );
    assert_eq!(p.next, None);
    assert_eq!(p.entries[0].created_at, t0 + Duration::days(7));
    assert_eq!(p.entries[2].created_at, t0 + Duration::days(5));
    assert_eq!(p.entries[6].created_at, t0);

    // now - 7 days == t0: entries at exactly the bound are in.
    assert_eq!(
        seqs(&page(r, &actx, q(7)).await.entries),
        [7, 5, 6, 4, 3, 2, 1]
    );
    h.clock.advance(Duration::microseconds(1));
    assert_eq!(seqs(&page(r, &actx, q(7)).await.entries), [7, 5, 6, 4]);
    assert_eq!(seqs(&page(r, &actx, q(4)).await.entries), [7, 5, 6]);
    assert_eq!(seqs(&page(r, &actx, q(1)).await.entries), [7, 5]);
    h.clock.advance(Duration::days(2));
    let p = page(r, &actx, q(1)).await;
    assert!(p.entries.is_empty() && p.next.is_none(), "{p:#?}");
    assert_eq!(page(r, &actx, q(3)).await.entries.len(), 2);
    // The window does not hide the chain.
    assert_eq!(
        chain_verdict(r, acme.id).await,
        ChainVerdict::Intact {
            entries: 7,
            head_seq: 7
        }
    );
}

/// The report filters by action, actor (user, key, system) and target.
pub async fn query_filters_by_action_actor_and_target(h: Harness) {
    let r = &h.repos;
    let (acme, alice, actx) = tenant_with_owner(r, "acme").await;
    let (bob, vctx) = member_with_role(r, &actx, "bob@acme.io", Some("Viewer")).await;
    let (key, _, kctx) = api_key(r, &actx, ApiKeyScope::Tenant, &["member.read"]).await;
    let doc = |action: &str, id: &str| AuditEvent::new(action, "doc", Some(id), json!({})).unwrap();
    record(r, &actx, doc("doc.viewed", "d1")).await;
    record(r, &vctx, doc("doc.viewed", "d2")).await;
    record(r, &kctx, doc("doc.exported", "d1")).await;
    record(
        r,
        &system().in_tenant(acme.id),
        AuditEvent::new("doc.viewed", "report", Some("d1"), json!({})).unwrap(),
    )
    .await;

    let mut all = audit_trail(r, acme.id).await;
    all.reverse(); // newest first: every entry was written at the same instant
    let expect = |pred: &dyn Fn(&AuditEntry) -> bool| -> Vec<i64> {
        all.iter().filter(|e| pred(e)).map(|e| e.seq).collect()
    };
    let reader = &actx;
    let query = |q: AuditQuery| async move { seqs(&page(r, reader, q).await.entries) };
    let base = AuditQuery::last_days(30);

    let viewed = query(base.clone().action(action("doc.viewed"))).await;
    assert_eq!(viewed.len(), 3);
    assert_eq!(viewed, expect(&|e| e.action.as_str() == "doc.viewed"));

    let by_alice = query(base.clone().actor(ActorFilter::User(alice.id))).await;
    assert_eq!(by_alice, expect(&|e| e.actor == Actor::User(alice.id)));
    // tenant.created, bob's invitation, the key's creation, alice's doc.viewed
    assert_eq!(by_alice.len(), 4);
    assert_eq!(
        query(base.clone().actor(ActorFilter::User(bob.id))).await,
        expect(&|e| e.actor == Actor::User(bob.id))
    );
    let by_key = query(base.clone().actor(ActorFilter::ApiKey(key.id))).await;
    assert_eq!(by_key.len(), 2); // api_key.first_used, doc.exported
    assert_eq!(by_key, expect(&|e| e.actor == Actor::ApiKey(key.id)));
    let by_system = query(base.clone().actor(ActorFilter::System)).await;
    assert_eq!(by_system.len(), 1);
    assert_eq!(by_system, expect(&|e| e.actor.kind() == "system"));
    assert!(query(base.clone().actor(ActorFilter::User(UserId::new())))
        .await
        .is_empty());

    let d1 = query(base.clone().target(target_type("doc"), target("d1"))).await;
    assert_eq!(d1.len(), 2);
    assert_eq!(
        d1,
        expect(&|e| e.target_type.as_str() == "doc" && e.target_id.as_deref() == Some("d1"))
    );
    let docs = query(base.clone().target(target_type("doc"), None)).await;
    assert_eq!(docs, expect(&|e| e.target_type.as_str() == "doc"));
    assert_eq!(docs.len(), 3);
    let key_entries = query(base.clone().target(target_type("api_key"), target(key.id))).await;
    assert_eq!(key_entries.len(), 2);

    let bobs_views = query(
        base.clone()
            .action(action("doc.viewed"))
            .actor(ActorFilter::User(bob.id)),
    )
    .await;
    assert_eq!(bobs_views.len(), 1);
    assert!(query(base.clone().action(action("doc.deleted")))
        .await
        .is_empty());
}

/// Pages follow each other by cursor — across equal timestamps — with no
/// entry missing or repeated; `next` is set iff there are more.
pub async fn query_pages_by_cursor_without_gaps_or_duplicates(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let paged = |i: i64| AuditEvent::new("page.entry", "doc", Some(i), json!({"i": i})).unwrap();
    let other = |i: i64| AuditEvent::new("page.other", "doc", Some(i), json!({"i": i})).unwrap();
    for i in 0..7 {
        if i == 3 || i == 5 {
            h.clock.advance(Duration::minutes(1));
        }
        record(r, &actx, paged(i)).await;
        // Entries the filter skips sit between the matching ones.
        record(r, &actx, other(i)).await;
    }
    let q = AuditQuery::last_days(30).action(action("page.entry"));
    let all = page(r, &actx, q.clone().limit(1000)).await;
    assert_eq!(all.entries.len(), 7);
    assert_eq!(all.next, None);
    let is: Vec<i64> = all
        .entries
        .iter()
        .map(|e| e.diff["i"].as_i64().unwrap())
        .collect();
    assert_eq!(is, [6, 5, 4, 3, 2, 1, 0]);

    let p1 = page(r, &actx, q.clone().limit(3)).await;
    assert_eq!(p1.entries, all.entries[..3]);
    let c1 = p1.next.expect("a second page");
    assert_eq!(c1, AuditCursor::after(&p1.entries[2]));
    assert_eq!(c1.to_string().parse::<AuditCursor>().unwrap(), c1);

    // Entries written meanwhile are newer: they do not shift later pages.
    record(r, &actx, paged(7)).await;

    let p2 = page(r, &actx, q.clone().limit(3).after(c1)).await;
    assert_eq!(p2.entries, all.entries[3..6]);
    let c2 = p2.next.expect("a third page");
    let p3 = page(r, &actx, q.clone().limit(3).after(c2)).await;
    assert_eq!(p3.entries, all.entries[6..]);
    assert_eq!(p3.next, None);

    // A page that ends exactly at the last entry has no next.
    let fresh = page(r, &actx, q.clone().limit(8)).await;
    assert_eq!(fresh.entries.len(), 8);
    assert_eq!(fresh.next, None);
    let p = page(r, &actx, q.clone().limit(4).after(c1)).await;
    assert_eq!(p.entries, all.entries[3..]);
    assert_eq!(p.next, None);

    // Unfiltered, two by two, the pages cover the whole trail exactly once.
    let trail = audit_trail(r, acme.id).await;
    let mut seen = Vec::new();
    let mut q = AuditQuery::last_days(30).limit(2);
    loop {
        let p = page(r, &actx, q.clone()).await;
        assert!(p.entries.len() <= 2);
        seen.extend(p.entries.iter().map(|e| e.id));
        match p.next {
            Some(c) => q = q.after(c),
            None => break,
        }
    }
    let mut newest_first: Vec<_> = trail.iter().map(|e| e.id).collect();
    newest_first.reverse();
    assert_eq!(seen, newest_first);

    // A cursor older than everything yields an empty page.
    let before_all = AuditCursor {
        created_at_micros: trail[0].created_at.timestamp_micros(),
        seq: 1,
    };
    let p = page(r, &actx, AuditQuery::last_days(30).after(before_all)).await;
    assert!(p.entries.is_empty() && p.next.is_none(), "{p:#?}");
}

/// Bounds and cursors are checked before anything else.
pub async fn query_rejects_bad_bounds_and_cursors(h: Harness) {
    let r = &h.repos;
    let (acme, owner, actx) = tenant_with_owner(r, "acme").await;
    let (_, _, uctx) = tenant_with_owner(r, "umbrella").await;
    let outsider = uctx.in_tenant(acme.id);
    for (q, field) in [
        (AuditQuery::last_days(0), "last_days"),
        (AuditQuery::last_days(3651), "last_days"),
        (AuditQuery::last_days(30).limit(0), "limit"),
        (AuditQuery::last_days(30).limit(1001), "limit"),
    ] {
        for ctx in [&actx, &outsider] {
            match r.audit.query(ctx, q.clone()).await {
                Err(Error::Validation { field: f, .. }) if f == field => {}
                other => panic!("{q:?}: expected Validation({field}), got {other:?}"),
            }
        }
        // Where before what: without a tenant, the context is the error.
        assert_err!(
            r.audit.query(&Context::user(owner.id), q.clone()).await,
            Error::Validation {
                field: "context",
                ..
            }
        );
    }
    assert_eq!(
        page(r, &actx, AuditQuery::last_days(3650).limit(1000))
            .await
            .entries
            .len(),
        1
    );
    assert_eq!(
        page(r, &actx, AuditQuery::last_days(1).limit(1))
            .await
            .entries
            .len(),
        1
    );
    for bad in [
        "",
        "abc",
        "12",
        "x.1",
        "1.y",
        "1.0",
        "1.-3",
        "1.2.3",
        "99999999999999999999.1",
    ] {
        assert_err!(
            bad.parse::<AuditCursor>(),
            Error::Validation {
                field: "cursor",
                ..
            }
        );
    }
}

/// Each entry names the acting user's current email; keys and the system
/// have none.
pub async fn query_shows_the_acting_users_email(h: Harness) {
    let r = &h.repos;
    let (acme, alice, actx) = tenant_with_owner(r, "acme").await;
    let (bob, _) = member_with_role(r, &actx, "bob@acme.io", None).await;
    let (key, _, kctx) = api_key(r, &actx, ApiKeyScope::Tenant, &["member.read"]).await;
    record(r, &kctx, event("sync.ran")).await;
    record(r, &system().in_tenant(acme.id), event("job.ran")).await;
    // Bob leaves: his entries still name him.
    r.members.remove_member(&actx, bob.id).await.unwrap();

    let entries = page(r, &actx, AuditQuery::last_days(30)).await.entries;
    assert_eq!(entries.len(), 8, "{entries:#?}");
    for e in &entries {
        let expected = match &e.actor {
            Actor::User(u) if *u == alice.id => Some(alice.email.to_string()),
            Actor::User(u) if *u == bob.id => Some(bob.email.to_string()),
            Actor::User(u) => panic!("unexpected actor {u}"),
            Actor::ApiKey(k) => {
                assert_eq!(*k, key.id);
                None
            }
            Actor::System { .. } => None,
        };
        assert_eq!(e.actor_email, expected, "{e:#?}");
    }
    assert!(entries
        .iter()
        .any(|e| e.actor == Actor::User(bob.id) && e.action.as_str() == "member.joined"));
    assert_eq!(
        entries.iter().filter(|e| e.actor_email.is_none()).count(),
        3
    );
}

/// Each entry an API key acted in names the key (its name and public
/// prefix) and no email, while the key exists — revoked keys included; a
/// key deleted with its project leaves its entries unnamed. Users' and the
/// system's entries name no key.
pub async fn query_names_the_acting_key(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let web = project(r, &actx, "web").await;
    let issue = |key_name: &str, scope: ApiKeyScope| {
        let (r, actx, key_name) = (r.clone(), actx.clone(), name(key_name));
        async move {
            let issued = r
                .api_keys
                .create_api_key(
                    &actx,
                    NewApiKey {
                        name: key_name,
                        scope,
                        permissions: codes(&["member.read"]),
                        expires_at: None,
                    },
                )
                .await
                .unwrap();
            let ctx = r
                .auth
                .authenticate(&issued.secret, RequestMeta::default())
                .await
                .unwrap();
            (issued.key, ctx)
        }
    };
    let (nightly, nctx) = issue("Nightly sync", ApiKeyScope::Tenant).await;
    let (deploy, dctx) = issue("Deploy bot", ApiKeyScope::Project(web.id)).await;
    record(r, &nctx, event("sync.ran")).await;
    record(r, &dctx, event("deploy.ran")).await;
    record(r, &system().in_tenant(acme.id), event("job.ran")).await;
    r.api_keys.revoke_api_key(&actx, nightly.id).await.unwrap();

    let label = |k: &insightpulse_core::tenancy::ApiKey| KeyLabel {
        name: k.name.clone(),
        prefix: k.prefix.clone(),
    };
    let entries = page(r, &actx, AuditQuery::last_days(30)).await.entries;
    let mut by_key = 0;
    for e in &entries {
        let expected = match e.actor {
            Actor::ApiKey(k) if k == nightly.id => Some(label(&nightly)),
            Actor::ApiKey(k) if k == deploy.id => Some(label(&deploy)),
            Actor::ApiKey(k) => panic!("unexpected key {k}"),
            Actor::User(_) | Actor::System { .. } => None,
        };
        if expected.is_some() {
            by_key += 1;
            assert_eq!(e.actor_email, None, "{e:#?}");
        }
        assert_eq!(e.actor_key, expected, "{e:#?}");
    }
    // Each key's first use and its event.
    assert_eq!(by_key, 4, "{entries:#?}");
    assert_eq!(
        label(&nightly).to_string(),
        format!("Nightly sync ({})", nightly.prefix)
    );

    // The project-scoped key goes with its project; its entries stay.
    r.projects.delete_project(&actx, web.id).await.unwrap();
    let entries = page(r, &actx, AuditQuery::last_days(30)).await.entries;
    let deploys: Vec<&AuditEntry> = entries
        .iter()
        .filter(|e| e.actor == Actor::ApiKey(deploy.id))
        .collect();
    assert_eq!(deploys.len(), 2);
    assert!(deploys
        .iter()
        .all(|e| e.actor_key.is_none() && e.actor_email.is_none()));
    assert!(entries
        .iter()
        .filter(|e| e.actor == Actor::ApiKey(nightly.id))
        .all(|e| e.actor_key == Some(label(&nightly))));
}
