//! Cases: each tenant's chain stays intact, under concurrent writers too.

use super::*;

/// After many mixed writes each tenant's chain is intact, numbered 1..n,
/// independently of the other tenants'.
pub async fn verify_chain_is_intact_per_tenant(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let (umbrella, _, uctx) = tenant_with_owner(r, "umbrella").await;
    let (bob, _) = member_with_role(r, &actx, "bob@acme.io", Some("Developer")).await;
    let ops = custom_role(r, &actx, "Ops", RoleScope::Global, &["member.read"]).await;
    let web = project(r, &actx, "web").await;
    for round in 0..3 {
        h.clock.advance(Duration::minutes(5));
        let grant = r
            .rbac
            .grant_role(&actx, bob.id, ops.id, Some(web.id))
            .await
            .unwrap();
        record(
            r,
            &actx.clone().with_request(request(&format!("req-{round}"))),
            event("app.step"),
        )
        .await;
        r.rbac.revoke_role(&actx, grant.id).await.unwrap();
        record(r, &uctx, event("other.step")).await;
        r.members.suspend_member(&actx, bob.id).await.unwrap();
        r.members.reactivate_member(&actx, bob.id).await.unwrap();
    }
    api_key(r, &actx, ApiKeyScope::Project(web.id), &["project.update"]).await;
    r.tenants
        .update_tenant(
            &uctx,
            TenantUpdate {
                name: Some(name("Umbrella Corp")),
                ..TenantUpdate::default()
            },
        )
        .await
        .unwrap();

    for (tenant, expected) in [(acme.id, 3 + 1 + 1 + 3 * 5 + 2), (umbrella.id, 1 + 3 + 1)] {
        let trail = audit_trail(r, tenant).await;
        assert_eq!(seqs(&trail), (1..=expected).collect::<Vec<i64>>());
        assert!(trail.iter().all(|e| e.tenant_id == tenant));
        assert_eq!(
            chain_verdict(r, tenant).await,
            ChainVerdict::Intact {
                entries: expected as u64,
                head_seq: expected
            }
        );
    }
    assert_eq!(
        r.audit.verify_chain(&actx).await.unwrap(),
        chain_verdict(r, acme.id).await
    );
}

/// Concurrent writers of one tenant — host events and SDK mutations — are
/// serialised on the chain's head: one intact chain, positions 1..n.
pub async fn concurrent_writers_keep_one_chain(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let (_, bctx) = member_with_role(r, &actx, "bob@acme.io", Some("Viewer")).await;
    let (umbrella, _, uctx) = tenant_with_owner(r, "umbrella").await;
    let base = audit_trail(r, acme.id).await.len();

    let mut futures: Vec<BoxFuture<'static, Result<()>>> = Vec::new();
    for i in 0..20 {
        let repos = r.clone();
        let ctx = if i % 2 == 0 {
            actx.clone()
        } else {
            bctx.clone()
        };
        futures.push(Box::pin(async move {
            let ev = AuditEvent::new("load.event", "doc", Some(i), json!({"i": i}))?;
            repos.audit.record_event(&ctx, ev).await.map(|_| ())
        }));
    }
    for i in 0..5 {
        let repos = r.clone();
        let ctx = actx.clone();
        futures.push(Box::pin(async move {
            repos
                .members
                .invite(
                    &ctx,
                    NewInvitation {
                        email: email(&format!("guest{i}@acme.io")),
                        role_id: None,
                        valid_for: Duration::days(1),
                    },
                )
                .await
                .map(|_| ())
        }));
    }
    for _ in 0..10 {
        let repos = r.clone();
        let ctx = uctx.clone();
        futures.push(Box::pin(async move {
            repos
                .audit
                .record_event(&ctx, event("other.event"))
                .await
                .map(|_| ())
        }));
    }
    for result in join_all(futures).await {
        result.unwrap();
    }

    let n = (base + 25) as i64;
    let trail = audit_trail(r, acme.id).await;
    assert_eq!(seqs(&trail), (1..=n).collect::<Vec<i64>>());
    let mut is: Vec<i64> = trail
        .iter()
        .filter(|e| e.action.as_str() == "load.event")
        .map(|e| e.diff["i"].as_i64().unwrap())
        .collect();
    is.sort_unstable();
    assert_eq!(is, (0..20).collect::<Vec<i64>>());
    assert_eq!(
        trail
            .iter()
            .filter(|e| e.action.as_str() == "member.invited")
            .count(),
        6
    );
    assert_eq!(
        chain_verdict(r, acme.id).await,
        ChainVerdict::Intact {
            entries: n as u64,
            head_seq: n
        }
    );
    assert_eq!(
        chain_verdict(r, umbrella.id).await,
        ChainVerdict::Intact {
            entries: 11,
            head_seq: 11
        }
    );
}
