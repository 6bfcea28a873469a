//! Tenants: the first owner and Admin grant, visibility between tenants,
//! settings, deletion with everything in it.

use super::{invitation, oidc_config};
use crate::conformance::{assert_err, Harness};
use crate::fixtures::*;
use chrono::Duration;
use insightpulse_core::audit::{AuditEvent, ChainVerdict};
use insightpulse_core::jobs::{ClaimRequest, JobKind, NewJob};
use insightpulse_core::privacy::{DataCategory, NewDataPolicy, RetentionAction, RetentionDays};
use insightpulse_core::projects::EnvironmentKind;
use insightpulse_core::tenancy::catalog;
use insightpulse_core::tenancy::{
    ApiKeyScope, MembershipStatus, NewSsoProvider, NewTeam, NewTenant, RoleScope, TenantUpdate,
};
use insightpulse_core::{Clock, Context, Entity, Error, Rejection, RequestMeta, TimeZone, UserId};
use serde_json::json;

/// Creating a tenant makes the creator its active owner with a tenant-wide
/// grant of the built-in Admin role, atomically.
pub async fn create_tenant_makes_creator_owner_and_admin(h: Harness) {
    let r = &h.repos;
    let alice = signup(r, "alice@acme.io").await;
    let tenant = r
        .tenants
        .create_tenant(
            &Context::user(alice.id),
            NewTenant {
                slug: slug("acme"),
                name: name("Acme Corp"),
                timezone: TimeZone::parse("Europe/Paris").unwrap(),
            },
        )
        .await
        .unwrap();
    assert_eq!(tenant.slug.as_str(), "acme");
    assert_eq!(tenant.name.as_str(), "Acme Corp");
    assert_eq!(tenant.timezone.as_str(), "Europe/Paris");
    assert_eq!(tenant.settings, json!({}));
    assert_eq!(tenant.created_at, h.clock.now());
    assert_eq!(tenant.updated_at, h.clock.now());

    let ctx = Context::user(alice.id).in_tenant(tenant.id);
    assert_eq!(r.tenants.get_tenant(&ctx, tenant.id).await.unwrap(), tenant);
    assert_eq!(
        r.tenants
            .get_tenant_by_slug(&ctx, &slug("acme"))
            .await
            .unwrap(),
        tenant
    );

    let members = r.members.list_members(&ctx).await.unwrap();
    assert_eq!(members.len(), 1);
    let m = &members[0];
    assert_eq!((m.tenant_id, m.user_id), (tenant.id, alice.id));
    assert!(m.is_owner);
    assert_eq!(m.status, MembershipStatus::Active);
    assert_eq!(m.created_at, h.clock.now());

    let grants = r.rbac.list_grants(&ctx, None).await.unwrap();
    assert_eq!(grants.len(), 1);
    let g = &grants[0];
    assert_eq!(
        (g.tenant_id, g.user_id, g.project_id, g.granted_by),
        (tenant.id, alice.id, None, Some(alice.id))
    );
    let admin = r.rbac.get_role(&ctx, g.role_id).await.unwrap();
    assert_eq!(admin.name.as_str(), catalog::ADMIN_ROLE);
    assert_eq!(admin.tenant_id, None);
    assert_eq!(admin.scope, RoleScope::Org);

    for (c, _) in catalog::PERMISSIONS {
        assert!(
            r.rbac.has_permission(&ctx, *c, None).await.unwrap(),
            "owner lacks {c}"
        );
    }
}

/// Only an existing user creates tenants; a taken slug is a conflict and
/// writes nothing.
pub async fn create_tenant_needs_an_existing_user_and_a_free_slug(h: Harness) {
    let r = &h.repos;
    let (acme, _alice, actx) = tenant_with_owner(r, "acme").await;
    let new = |s: &str| NewTenant {
        slug: slug(s),
        name: name("Other"),
        timezone: TimeZone::utc(),
    };
    assert_err!(
        r.tenants.create_tenant(&system(), new("sys")).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.tenants
            .create_tenant(&Context::user(UserId::new()), new("ghost"))
            .await,
        Error::NotFound {
            entity: Entity::User
        }
    );
    // A taken slug is the conflict whoever asks: the slug is checked first.
    assert_err!(
        r.tenants
            .create_tenant(&Context::user(UserId::new()), new("acme"))
            .await,
        Error::Conflict {
            entity: Entity::Tenant,
            field: "slug"
        }
    );
    let (_, _, kctx) = api_key(r, &actx, ApiKeyScope::Tenant, &["project.create"]).await;
    assert_err!(
        r.tenants.create_tenant(&kctx, new("keyco")).await,
        Error::PermissionDenied { .. }
    );

    let bob = signup(r, "bob@else.io").await;
    assert_err!(
        r.tenants
            .create_tenant(&Context::user(bob.id), new("acme"))
            .await,
        Error::Conflict {
            entity: Entity::Tenant,
            ..
        }
    );
    assert!(r
        .tenants
        .list_my_tenants(&Context::user(bob.id))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        r.tenants
            .get_tenant_by_slug(&system(), &slug("acme"))
            .await
            .unwrap()
            .id,
        acme.id
    );
    assert_eq!(r.members.list_members(&actx).await.unwrap().len(), 1);
    for s in ["sys", "ghost", "keyco"] {
        assert_err!(
            r.tenants.get_tenant_by_slug(&system(), &slug(s)).await,
            Error::NotFound { .. }
        );
    }
}

/// A user's tenants are those with an active membership, ordered by slug
/// compared bytewise.
pub async fn list_my_tenants_shows_active_memberships_by_slug(h: Harness) {
    let r = &h.repos;
    let alice = signup(r, "alice@x.io").await;
    let bob = signup(r, "bob@x.io").await;
    for s in ["zeta", "ab", "a-c"] {
        create_tenant(r, &alice, s).await;
    }
    let (_, beta) = create_tenant(r, &bob, "beta").await;
    let (_, mid) = create_tenant(r, &bob, "mid").await;
    join(r, &beta, &alice, None).await;
    join(r, &mid, &alice, None).await;
    r.members.suspend_member(&mid, alice.id).await.unwrap();

    let slugs: Vec<String> = r
        .tenants
        .list_my_tenants(&Context::user(alice.id))
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.slug.to_string())
        .collect();
    // Bytewise: '-' (0x2d) sorts before 'b'; "mid" is hidden (suspended).
    assert_eq!(slugs, ["a-c", "ab", "beta", "zeta"]);
    assert_err!(
        r.tenants.list_my_tenants(&system()).await,
        Error::PermissionDenied { .. }
    );
}

/// Another tenant's rows are NotFound, its lists empty, and attempts to
/// change them change nothing.
pub async fn other_tenants_are_invisible(h: Harness) {
    let r = &h.repos;
    let (acme, alice, actx) = tenant_with_owner(r, "acme").await;
    let (umb, bob, bctx) = tenant_with_owner(r, "umbrella").await;
    let b_team = r
        .teams
        .create_team(
            &bctx,
            NewTeam {
                slug: slug("ops"),
                name: name("Ops"),
            },
        )
        .await
        .unwrap();
    let b_role = custom_role(r, &bctx, "Auditor", RoleScope::Org, &["audit.read"]).await;
    let b_provider = r
        .sso
        .create_provider(
            &bctx,
            NewSsoProvider {
                name: name("Okta"),
                config: oidc_config(),
            },
        )
        .await
        .unwrap();
    r.sso
        .link_identity(&bctx, b_provider.id, "bob-1", bob.id)
        .await
        .unwrap();
    let b_inv = r
        .members
        .invite(
            &bctx,
            invitation("eve@umbrella.io", None, Duration::days(1)),
        )
        .await
        .unwrap();
    let (b_key, _, _) = api_key(r, &bctx, ApiKeyScope::Tenant, &["member.read"]).await;
    let b_project = project(r, &bctx, "web").await;

    // Gets of B's tenant from A.
    assert_err!(
        r.tenants.get_tenant(&actx, umb.id).await,
        Error::NotFound { .. }
    );
    assert_err!(
        r.tenants.get_tenant_by_slug(&actx, &slug("umbrella")).await,
        Error::NotFound { .. }
    );

    // Alice acting in B's tenant, where she is no member: lists empty, the rest NotFound.
    let in_b = Context::user(alice.id).in_tenant(umb.id);
    assert!(r.members.list_members(&in_b).await.unwrap().is_empty());
    assert!(r.members.list_invitations(&in_b).await.unwrap().is_empty());
    assert!(r.teams.list_teams(&in_b).await.unwrap().is_empty());
    assert!(r.rbac.list_grants(&in_b, None).await.unwrap().is_empty());
    assert!(r.sso.list_providers(&in_b).await.unwrap().is_empty());
    assert!(r
        .sso
        .list_identities(&in_b, bob.id)
        .await
        .unwrap()
        .is_empty());
    assert!(r.api_keys.list_api_keys(&in_b).await.unwrap().is_empty());
    assert!(r
        .rbac
        .list_roles(&in_b)
        .await
        .unwrap()
        .iter()
        .all(|role| role.tenant_id.is_none()));
    assert!(!r
        .rbac
        .has_permission(&in_b, code("member.read"), None)
        .await
        .unwrap());
    assert_err!(
        r.members.get_member(&in_b, bob.id).await,
        Error::NotFound { .. }
    );
    assert_err!(
        r.teams.get_team(&in_b, b_team.id).await,
        Error::NotFound { .. }
    );
    assert_err!(
        r.rbac.get_role(&in_b, b_role.id).await,
        Error::NotFound { .. }
    );
    assert_err!(
        r.tenants
            .update_tenant(
                &in_b,
                TenantUpdate {
                    name: Some(name("Pwned")),
                    ..Default::default()
                }
            )
            .await,
        Error::NotFound { .. }
    );
    assert_err!(r.tenants.delete_tenant(&in_b).await, Error::NotFound { .. });
    assert_err!(
        r.teams
            .create_team(
                &in_b,
                NewTeam {
                    slug: slug("evil"),
                    name: name("Evil")
                }
            )
            .await,
        Error::NotFound { .. }
    );
    assert_err!(
        r.members.suspend_member(&in_b, bob.id).await,
        Error::NotFound { .. }
    );
    assert_err!(
        r.members
            .invite(&in_b, invitation("mallory@x.io", None, Duration::days(1)))
            .await,
        Error::NotFound { .. }
    );

    // Alice acting in her own tenant with B's ids.
    assert_err!(
        r.members.get_member(&actx, bob.id).await,
        Error::NotFound {
            entity: Entity::Member
        }
    );
    assert_err!(
        r.teams.get_team(&actx, b_team.id).await,
        Error::NotFound {
            entity: Entity::Team
        }
    );
    assert_err!(
        r.teams.rename_team(&actx, b_team.id, name("Mine")).await,
        Error::NotFound {
            entity: Entity::Team
        }
    );
    assert_err!(
        r.teams.delete_team(&actx, b_team.id).await,
        Error::NotFound {
            entity: Entity::Team
        }
    );
    assert_err!(
        r.rbac.get_role(&actx, b_role.id).await,
        Error::NotFound {
            entity: Entity::Role
        }
    );
    assert_err!(
        r.rbac
            .set_role_permissions(&actx, b_role.id, codes(&["billing.manage"]))
            .await,
        Error::NotFound {
            entity: Entity::Role
        }
    );
    assert_err!(
        r.rbac.delete_role(&actx, b_role.id).await,
        Error::NotFound {
            entity: Entity::Role
        }
    );
    assert_err!(
        r.members
            .revoke_invitation(&actx, b_inv.invitation.id)
            .await,
        Error::NotFound {
            entity: Entity::Invitation
        }
    );
    assert_err!(
        r.api_keys.get_api_key(&actx, b_key.id).await,
        Error::NotFound {
            entity: Entity::ApiKey
        }
    );
    assert_err!(
        r.api_keys.revoke_api_key(&actx, b_key.id).await,
        Error::NotFound {
            entity: Entity::ApiKey
        }
    );
    assert_err!(
        r.sso
            .update_provider(&actx, b_provider.id, None, Some(false))
            .await,
        Error::NotFound {
            entity: Entity::SsoProvider
        }
    );
    assert_err!(
        r.sso.delete_provider(&actx, b_provider.id).await,
        Error::NotFound {
            entity: Entity::SsoProvider
        }
    );
    assert_err!(
        r.sso
            .find_user_by_identity(&actx, b_provider.id, "bob-1")
            .await,
        Error::NotFound {
            entity: Entity::SsoProvider
        }
    );
    assert_err!(
        r.projects.get_project(&actx, b_project.id).await,
        Error::NotFound {
            entity: Entity::Project
        }
    );
    assert!(r
        .rbac
        .list_roles(&actx)
        .await
        .unwrap()
        .iter()
        .all(|role| role.id != b_role.id));
    assert_eq!(
        r.tenants.get_tenant(&actx, acme.id).await.unwrap().id,
        acme.id
    );

    // B is untouched.
    assert_eq!(
        r.tenants
            .get_tenant(&bctx, umb.id)
            .await
            .unwrap()
            .name
            .as_str(),
        "umbrella"
    );
    assert_eq!(
        r.teams
            .get_team(&bctx, b_team.id)
            .await
            .unwrap()
            .name
            .as_str(),
        "Ops"
    );
    assert_eq!(
        r.rbac.get_role(&bctx, b_role.id).await.unwrap().permissions,
        codes(&["audit.read"])
    );
    assert!(r.sso.list_providers(&bctx).await.unwrap()[0].enabled);
    assert_eq!(
        r.api_keys
            .get_api_key(&bctx, b_key.id)
            .await
            .unwrap()
            .revoked_at,
        None
    );
    assert_eq!(
        r.members.list_invitations(&bctx).await.unwrap()[0].revoked_at,
        None
    );
    assert_eq!(r.members.list_members(&bctx).await.unwrap().len(), 1);
    assert_eq!(r.teams.list_teams(&bctx).await.unwrap().len(), 1);
}

/// A tenant-scoped call without a tenant in its context is a validation
/// error; the global catalog needs none.
pub async fn calls_without_a_tenant_are_rejected(h: Harness) {
    let r = &h.repos;
    let (_, alice, _) = tenant_with_owner(r, "acme").await;
    let bare = Context::user(alice.id);
    assert_err!(
        r.members.list_members(&bare).await,
        Error::Validation {
            field: "context",
            ..
        }
    );
    assert_err!(
        r.teams.list_teams(&bare).await,
        Error::Validation {
            field: "context",
            ..
        }
    );
    assert_err!(
        r.projects.list_projects(&bare, true).await,
        Error::Validation {
            field: "context",
            ..
        }
    );
    assert_err!(
        r.rbac
            .has_permission(&bare, code("member.read"), None)
            .await,
        Error::Validation {
            field: "context",
            ..
        }
    );
    assert_err!(
        r.teams
            .create_team(
                &bare,
                NewTeam {
                    slug: slug("ops"),
                    name: name("Ops")
                }
            )
            .await,
        Error::Validation {
            field: "context",
            ..
        }
    );
    assert_eq!(
        r.rbac.list_permissions(&bare).await.unwrap().len(),
        catalog::PERMISSIONS.len()
    );
}

/// Updating a tenant needs `tenant.manage`; settings must be a JSON object;
/// `updated_at` moves, `created_at` does not.
pub async fn update_tenant_needs_tenant_manage_and_object_settings(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let (_, vctx) = member_with_role(r, &actx, "viewer@acme.io", Some("Viewer")).await;

    assert_err!(
        r.tenants
            .update_tenant(
                &actx,
                TenantUpdate {
                    settings: Some(json!(["not", "an", "object"])),
                    name: Some(name("X")),
                    ..Default::default()
                }
            )
            .await,
        Error::Validation {
            field: "settings",
            ..
        }
    );
    assert_err!(
        r.tenants
            .update_tenant(
                &vctx,
                TenantUpdate {
                    name: Some(name("Viewer Co")),
                    ..Default::default()
                }
            )
            .await,
        Error::PermissionDenied { .. }
    );
    assert_eq!(r.tenants.get_tenant(&actx, acme.id).await.unwrap(), acme);

    h.clock.advance(Duration::hours(1));
    let updated = r
        .tenants
        .update_tenant(
            &actx,
            TenantUpdate {
                name: Some(name("Acme Inc")),
                timezone: Some(TimeZone::parse("America/New_York").unwrap()),
                settings: Some(json!({"theme": "dark"})),
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.name.as_str(), "Acme Inc");
    assert_eq!(updated.timezone.as_str(), "America/New_York");
    assert_eq!(updated.settings, json!({"theme": "dark"}));
    assert_eq!(updated.updated_at, h.clock.now());
    assert_eq!(updated.created_at, acme.created_at);
    assert_eq!(r.tenants.get_tenant(&actx, acme.id).await.unwrap(), updated);

    let renamed = r
        .tenants
        .update_tenant(
            &actx,
            TenantUpdate {
                name: Some(name("Acme")),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.timezone.as_str(), "America/New_York");
    assert_eq!(renamed.settings, json!({"theme": "dark"}));
}

/// Only an active owner (or the system) deletes a tenant, and everything in
/// it goes with it.
pub async fn delete_tenant_is_owner_only_and_cascades(h: Harness) {
    let r = &h.repos;
    let (acme, alice, actx) = tenant_with_owner(r, "acme").await;
    let (dev, dctx) = member_with_role(r, &actx, "dev@acme.io", Some("Developer")).await;
    let (_, adminctx) = member_with_role(r, &actx, "admin@acme.io", Some("Admin")).await;
    let p = project(r, &actx, "web").await;
    environment(r, &actx, p.id, EnvironmentKind::Production).await;
    let (_, secret, kctx) = api_key(r, &actx, ApiKeyScope::Tenant, &["tenant.manage"]).await;
    // Rows of other modules that die with the tenant: a data policy and a
    // queued job.
    r.privacy
        .set_data_policy(
            &actx,
            NewDataPolicy {
                category: DataCategory::Jobs,
                retention: RetentionDays::new(1).unwrap(),
                action: RetentionAction::Delete,
            },
        )
        .await
        .unwrap();
    let kind = JobKind::parse("tenant.report").unwrap();
    r.jobs
        .enqueue_job(
            &system().in_tenant(acme.id),
            NewJob::new(kind.clone(), json!({})),
        )
        .await
        .unwrap();

    assert_err!(
        r.tenants.delete_tenant(&dctx).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.tenants.delete_tenant(&adminctx).await,
        Error::PermissionDenied { .. }
    );
    assert_err!(
        r.tenants.delete_tenant(&kctx).await,
        Error::PermissionDenied { .. }
    );
    assert_eq!(
        r.projects.list_projects(&actx, true).await.unwrap().len(),
        1
    );

    r.tenants.delete_tenant(&actx).await.unwrap();
    assert_err!(
        r.tenants.get_tenant(&system(), acme.id).await,
        Error::NotFound { .. }
    );
    assert!(r
        .tenants
        .list_my_tenants(&Context::user(alice.id))
        .await
        .unwrap()
        .is_empty());
    assert!(r
        .tenants
        .list_my_tenants(&Context::user(dev.id))
        .await
        .unwrap()
        .is_empty());
    assert_err!(
        r.auth.authenticate(&secret, RequestMeta::default()).await,
        Error::Unauthenticated {
            reason: Rejection::Unknown,
            ..
        }
    );
    // Its policy is no longer applied and its job is no longer claimed.
    let report = r
        .privacy
        .enforce_retention(&system(), h.clock.now() + Duration::days(30), 100)
        .await
        .unwrap();
    assert_eq!(report.outcome(acme.id, DataCategory::Jobs), None);
    let claim = ClaimRequest::new(kind, "w", 10, Duration::seconds(30));
    assert!(r
        .jobs
        .claim_jobs(&system(), &claim)
        .await
        .unwrap()
        .is_empty());
    // Users survive; the slug is free again and the new tenant starts empty.
    assert_eq!(
        r.users.get_user(&system(), dev.id).await.unwrap().id,
        dev.id
    );
    let (again, actx2) = create_tenant(r, &alice, "acme").await;
    assert_ne!(again.id, acme.id);
    assert!(r
        .projects
        .list_projects(&actx2, true)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(r.members.list_members(&actx2).await.unwrap().len(), 1);
    assert_eq!(r.rbac.list_grants(&actx2, None).await.unwrap().len(), 1);

    // The system may delete any tenant.
    let (other, _, _) = tenant_with_owner(r, "other").await;
    r.tenants
        .delete_tenant(&system().in_tenant(other.id))
        .await
        .unwrap();
    assert_err!(
        r.tenants.get_tenant(&system(), other.id).await,
        Error::NotFound { .. }
    );
}

/// JSON a caller stores (tenant settings, an audit diff) comes back as the
/// database keeps it, from every backend: a large integral float is an
/// integer (`jsonb` turns `1e+16` into `10000000000000000`), negative zero
/// is zero, other numbers are as sent.
pub async fn json_numbers_come_back_as_the_database_keeps_them(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let sent = serde_json::json!({ "big": 1e16, "neg": -1e16, "one": 1.0, "zero": -0.0, "half": 0.5, "tiny": 1.5e-7, "huge": 1e300 });
    let kept = serde_json::json!({
        "big": 10_000_000_000_000_000u64, "neg": -10_000_000_000_000_000i64, "one": 1.0, "zero": 0.0, "half": 0.5, "tiny": 1.5e-7, "huge": 1e300
    });
    let update = TenantUpdate {
        settings: Some(sent.clone()),
        ..Default::default()
    };
    let updated = r.tenants.update_tenant(&actx, update).await.unwrap();
    assert_eq!(updated.settings, kept);
    // As text too: `-0.0 == 0.0` for serde_json, not for a reader.
    assert_eq!(updated.settings.to_string(), kept.to_string());
    assert_eq!(
        r.tenants.get_tenant(&actx, acme.id).await.unwrap().settings,
        kept
    );
    // Sent again, the same settings are no change: the diff compares what
    // is kept, not how it was written.
    let again = TenantUpdate {
        settings: Some(sent.clone()),
        ..Default::default()
    };
    r.tenants.update_tenant(&actx, again).await.unwrap();
    let trail = audit_trail(r, acme.id).await;
    assert_eq!(trail.last().unwrap().diff, serde_json::json!({}));

    let event = AuditEvent::new("report.exported", "report", None::<String>, sent).unwrap();
    r.audit.record_event(&actx, event).await.unwrap();
    let trail = audit_trail(r, acme.id).await;
    assert_eq!(trail.last().unwrap().diff, kept);
    assert_eq!(
        chain_verdict(r, acme.id).await,
        ChainVerdict::Intact {
            entries: 4,
            head_seq: 4
        }
    );
}
