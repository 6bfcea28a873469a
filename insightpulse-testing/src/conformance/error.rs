//! Conformance cases of the error contract (`insightpulse_core::error`).
//!
//! Rule guarded here: a uniqueness rule broken through any repository comes
//! back as the same `Conflict { entity, field }` from every backend — so the
//! same `code()` and the same `Display` text — and that text names the kind
//! of row and the field, never the value the caller sent, so a host can log
//! it as it is.

use super::tenancy::{invitation, saml_config};
use super::Harness;
use crate::fixtures::*;
use chrono::Duration;
use insightpulse_core::audit::{AuditEvent, AuditQuery, Diff};
use insightpulse_core::projects::{EnvironmentKind, NewProject};
use insightpulse_core::tenancy::{
    NewRole, NewSsoProvider, NewTeam, NewTenant, NewUser, RoleScope, SsoConfig, TenantUpdate,
};
use insightpulse_core::{
    ConsentPurpose, Context, Entity, Error, IdempotencyKey, Result, TargetType, TenantId, TimeZone,
};

/// Checks one conflict: the exact variant and parts, the code, the text,
/// and that the text holds none of `sent`.
fn check<T: std::fmt::Debug>(
    what: &str,
    result: Result<T>,
    (entity, field, text): (Entity, &str, &str),
    sent: &[&str],
) {
    let e = match result {
        Err(e @ Error::Conflict { .. }) => e,
        other => panic!("{what}: expected a conflict, got {other:?}"),
    };
    assert!(
        matches!(e, Error::Conflict { entity: got, field: f } if got == entity && f == field),
        "{what}: expected Conflict {{ {entity:?}, {field:?} }}, got {e:?}"
    );
    assert_eq!(
        (e.entity(), e.field()),
        (Some(entity), Some(field)),
        "{what}"
    );
    assert_eq!(e.code(), "conflict", "{what}");
    let shown = e.to_string();
    assert_eq!(shown, text, "{what}");
    for value in sent {
        assert!(
            !shown.to_lowercase().contains(&value.to_lowercase()),
            "{what}: {shown:?} shows the value {value:?}"
        );
    }
}

/// Every uniqueness rule of the SDK, provoked through the public traits:
/// each is exactly `Conflict { entity, field }` with its fixed text, which
/// shows no value sent.
pub async fn every_conflict_names_its_entity_and_field_only(h: Harness) {
    let r = &h.repos;
    let (_, _, actx) = tenant_with_owner(r, "zebracorp").await;

    // tenant / slug
    let other = signup(r, "okapi@elsewhere.io").await;
    check(
        "create_tenant",
        r.tenants
            .create_tenant(
                &Context::user(other.id),
                NewTenant {
                    slug: slug("zebracorp"),
                    name: name("Zebra Corporation"),
                    timezone: TimeZone::utc(),
                },
            )
            .await,
        (
            Entity::Tenant,
            "slug",
            "a tenant with this slug already exists",
        ),
        &["zebracorp", "Zebra Corporation"],
    );

    // user / email
    check(
        "create_user",
        r.users
            .create_user(
                &system(),
                NewUser {
                    email: email("Okapi@Elsewhere.io"),
                    full_name: Some(name("Olive Okapi")),
                },
            )
            .await,
        (
            Entity::User,
            "email",
            "a user with this email already exists",
        ),
        &["okapi@elsewhere.io", "Olive Okapi"],
    );

    // member / email: inviting someone who is a member
    let (quokka, _) = member_with_role(r, &actx, "quokka@zebracorp.io", None).await;
    check(
        "invite",
        r.members
            .invite(
                &actx,
                invitation("quokka@zebracorp.io", None, Duration::days(1)),
            )
            .await,
        (
            Entity::Member,
            "email",
            "a member with this email already exists",
        ),
        &["quokka"],
    );

    // member / user: accepting while already a member
    let numbat = signup(r, "numbat@zebracorp.io").await;
    let first = r
        .members
        .invite(
            &actx,
            invitation("numbat@zebracorp.io", None, Duration::days(1)),
        )
        .await
        .unwrap();
    let second = r
        .members
        .invite(
            &actx,
            invitation("numbat@zebracorp.io", None, Duration::days(1)),
        )
        .await
        .unwrap();
    let as_numbat = Context::user(numbat.id);
    r.members
        .accept_invitation(&as_numbat, &first.token)
        .await
        .unwrap();
    let numbat_id = numbat.id.to_string();
    check(
        "accept_invitation",
        r.members.accept_invitation(&as_numbat, &second.token).await,
        (
            Entity::Member,
            "user",
            "a member with this user already exists",
        ),
        &["numbat", &numbat_id],
    );

    // team / slug
    let team = NewTeam {
        slug: slug("wombat-squad"),
        name: name("Wombat Squad"),
    };
    let squad = r.teams.create_team(&actx, team.clone()).await.unwrap();
    check(
        "create_team",
        r.teams.create_team(&actx, team).await,
        (Entity::Team, "slug", "a team with this slug already exists"),
        &["wombat"],
    );

    // team_member / user
    r.teams
        .add_team_member(&actx, squad.id, quokka.id)
        .await
        .unwrap();
    let quokka_id = quokka.id.to_string();
    check(
        "add_team_member",
        r.teams.add_team_member(&actx, squad.id, quokka.id).await,
        (
            Entity::TeamMember,
            "user",
            "a team member with this user already exists",
        ),
        &[&quokka_id],
    );

    // role / name
    let role = NewRole {
        name: name("Pangolin Keeper"),
        scope: RoleScope::Global,
        description: None,
        permissions: codes(&["ticket.read"]),
    };
    let keeper = r.rbac.create_role(&actx, role.clone()).await.unwrap();
    check(
        "create_role",
        r.rbac.create_role(&actx, role).await,
        (Entity::Role, "name", "a role with this name already exists"),
        &["Pangolin"],
    );

    // role_grant / role
    r.rbac
        .grant_role(&actx, quokka.id, keeper.id, None)
        .await
        .unwrap();
    let keeper_id = keeper.id.to_string();
    check(
        "grant_role",
        r.rbac.grant_role(&actx, quokka.id, keeper.id, None).await,
        (
            Entity::RoleGrant,
            "role",
            "a role grant with this role already exists",
        ),
        &[&keeper_id, &quokka_id],
    );

    // sso_provider / name
    let provider = NewSsoProvider {
        name: name("Axolotl Login"),
        config: saml_config(),
    };
    let axolotl = r
        .sso
        .create_provider(&actx, provider.clone())
        .await
        .unwrap();
    check(
        "create_provider",
        r.sso.create_provider(&actx, provider).await,
        // Core's `Entity::article` gives "a" here ("an SSO provider" reads
        // right); this pins what both backends show until core changes it.
        (
            Entity::SsoProvider,
            "name",
            "an SSO provider with this name already exists",
        ),
        &["Axolotl", "idp.example.com"],
    );

    // identity / subject
    r.sso
        .link_identity(&actx, axolotl.id, "subject-tapir-42", quokka.id)
        .await
        .unwrap();
    check(
        "link_identity",
        r.sso
            .link_identity(&actx, axolotl.id, "subject-tapir-42", numbat.id)
            .await,
        (
            Entity::Identity,
            "subject",
            "an identity with this subject already exists",
        ),
        &["tapir", &numbat_id],
    );

    // project / slug
    let new_project = NewProject {
        slug: slug("capybara"),
        name: name("Capybara Portal"),
        description: Some("the capybara site".to_owned()),
    };
    let capybara = r
        .projects
        .create_project(&actx, new_project.clone())
        .await
        .unwrap();
    check(
        "create_project",
        r.projects.create_project(&actx, new_project).await,
        (
            Entity::Project,
            "slug",
            "a project with this slug already exists",
        ),
        &["capybara"],
    );

    // environment / kind
    r.projects
        .create_environment(&actx, capybara.id, EnvironmentKind::Staging)
        .await
        .unwrap();
    let capybara_id = capybara.id.to_string();
    check(
        "create_environment",
        r.projects
            .create_environment(&actx, capybara.id, EnvironmentKind::Staging)
            .await,
        // Core's `Entity::article` gives "a" here ("an environment" reads
        // right); this pins what both backends show until core changes it.
        (
            Entity::Environment,
            "kind",
            "an environment with this kind already exists",
        ),
        &["staging", &capybara_id],
    );

    // idempotency_key / key
    let keyed = actx
        .clone()
        .with_idempotency_key(IdempotencyKey::parse("narwhal-key-7").unwrap());
    r.teams
        .create_team(
            &keyed,
            NewTeam {
                slug: slug("narwhals"),
                name: name("Narwhals"),
            },
        )
        .await
        .unwrap();
    check(
        "a reused idempotency key",
        r.teams
            .create_team(
                &keyed,
                NewTeam {
                    slug: slug("belugas"),
                    name: name("Belugas"),
                },
            )
            .await,
        (
            Entity::IdempotencyKey,
            "key",
            "an idempotency key with this key already exists",
        ),
        &["narwhal", "beluga"],
    );
}

/// Expects `NotFound { entity }`, printing what came back otherwise.
fn not_found<T: std::fmt::Debug>(what: &str, result: Result<T>, entity: Entity) {
    match result {
        Err(Error::NotFound { entity: got }) if got == entity => {}
        other => panic!("{what}: expected NotFound({entity:?}), got {other:?}"),
    }
}

/// A caller who cannot see the tenant — a non-member, a suspended member,
/// the system in a tenant that does not exist — and names one of its rows
/// by id learns that this row is not there (`NotFound` of the row's
/// entity), as RLS answers, and nothing about the tenant.
pub async fn an_unseen_tenants_rows_are_not_found_as_themselves(h: Harness) {
    let r = &h.repos;
    let (acme, _, actx) = tenant_with_owner(r, "acme").await;
    let (bob, _) = member_with_role(r, &actx, "bob@acme.io", Some("Developer")).await;
    let (carol, _) = member_with_role(r, &actx, "carol@acme.io", None).await;
    r.members.suspend_member(&actx, carol.id).await.unwrap();
    let (_, _, uctx) = tenant_with_owner(r, "umbrella").await;
    let p = project(r, &actx, "web").await;
    let env = environment(r, &actx, p.id, EnvironmentKind::Development).await;
    let team = r
        .teams
        .create_team(
            &actx,
            NewTeam {
                slug: slug("core"),
                name: name("Core"),
            },
        )
        .await
        .unwrap();
    let viewer = role_named(r, &actx, "Viewer").await;
    let grant = r
        .rbac
        .grant_role(&actx, bob.id, viewer.id, None)
        .await
        .unwrap();
    let provider = r
        .sso
        .create_provider(
            &actx,
            NewSsoProvider {
                name: name("Okta"),
                config: saml_config(),
            },
        )
        .await
        .unwrap();
    r.sso
        .link_identity(&actx, provider.id, "sub-1", bob.id)
        .await
        .unwrap();
    let marketing = ConsentPurpose::parse("marketing").unwrap();

    let callers = [
        ("non-member", uctx.in_tenant(acme.id)),
        (
            "suspended member",
            Context::user(carol.id).in_tenant(acme.id),
        ),
        (
            "system, missing tenant",
            system().in_tenant(TenantId::new()),
        ),
    ];
    for (who, ctx) in &callers {
        let w = |call: &str| format!("{who}: {call}");
        let pr = &r.projects;
        not_found(
            &w("get_project"),
            pr.get_project(ctx, p.id).await,
            Entity::Project,
        );
        let renamed = pr.rename_project(ctx, p.id, name("x")).await;
        not_found(&w("rename_project"), renamed, Entity::Project);
        not_found(
            &w("archive_project"),
            pr.archive_project(ctx, p.id).await,
            Entity::Project,
        );
        let unarchived = pr.unarchive_project(ctx, p.id).await;
        not_found(&w("unarchive_project"), unarchived, Entity::Project);
        not_found(
            &w("delete_project"),
            pr.delete_project(ctx, p.id).await,
            Entity::Project,
        );
        let created = pr
            .create_environment(ctx, p.id, EnvironmentKind::Staging)
            .await;
        not_found(&w("create_environment"), created, Entity::Project);
        let got = pr.get_environment(ctx, env.id).await;
        not_found(&w("get_environment"), got, Entity::Environment);
        let deleted = pr.delete_environment(ctx, env.id).await;
        not_found(&w("delete_environment"), deleted, Entity::Environment);
        not_found(
            &w("get_member"),
            r.members.get_member(ctx, bob.id).await,
            Entity::Member,
        );
        not_found(
            &w("get_team"),
            r.teams.get_team(ctx, team.id).await,
            Entity::Team,
        );
        let listed = r.teams.list_team_members(ctx, team.id).await;
        not_found(&w("list_team_members"), listed, Entity::Team);
        not_found(
            &w("revoke_role"),
            r.rbac.revoke_role(ctx, grant.id).await,
            Entity::RoleGrant,
        );
        let updated = r
            .sso
            .update_provider(ctx, provider.id, None, Some(false))
            .await;
        not_found(&w("update_provider"), updated, Entity::SsoProvider);
        let found = r.sso.find_user_by_identity(ctx, provider.id, "sub-1").await;
        not_found(&w("find_user_by_identity"), found, Entity::SsoProvider);
        let history = r.privacy.consent_history(ctx, bob.id).await;
        not_found(&w("consent_history"), history, Entity::User);
        let consent = r.privacy.has_consent(ctx, bob.id, &marketing).await;
        not_found(&w("has_consent"), consent, Entity::User);
    }
    // Nothing changed.
    assert_eq!(r.projects.get_project(&actx, p.id).await.unwrap(), p);
    assert_eq!(
        r.projects.list_environments(&actx, p.id).await.unwrap(),
        vec![env]
    );
    assert_eq!(
        r.rbac.list_grants(&actx, Some(bob.id)).await.unwrap().len(),
        2
    );
}

/// Expects `Validation { field }` about a NUL character.
fn refused_nul<T: std::fmt::Debug>(what: &str, result: Result<T>, field: &str) {
    match result {
        Err(e @ Error::Validation { .. }) if e.field() == Some(field) => assert_eq!(
            e.to_string(),
            format!("invalid {field}: must not contain a NUL character"),
            "{what}"
        ),
        other => panic!("{what}: expected Validation({field}), got {other:?}"),
    }
}

/// Text PostgreSQL cannot store (a NUL character, in `text` or `jsonb`) is
/// refused by every backend up front, naming the field, and nothing is
/// written.
pub async fn text_no_database_can_store_is_refused(h: Harness) {
    let r = &h.repos;
    let (acme, owner, actx) = tenant_with_owner(r, "acme").await;
    let nul = "nul\0byte";
    let before = audit_trail(r, acme.id).await.len();

    let description = r
        .projects
        .create_project(
            &actx,
            NewProject {
                slug: slug("web"),
                name: name("Web"),
                description: Some(nul.into()),
            },
        )
        .await;
    refused_nul("project description", description, "description");
    let settings = TenantUpdate {
        settings: Some(serde_json::json!({ "note": nul })),
        ..Default::default()
    };
    refused_nul(
        "tenant settings",
        r.tenants.update_tenant(&actx, settings).await,
        "settings",
    );
    let listed = TenantUpdate {
        settings: Some(serde_json::json!({ "tags": ["ok", nul] })),
        ..Default::default()
    };
    let listed = r.tenants.update_tenant(&actx, listed).await;
    refused_nul("settings list", listed, "settings");
    let key = TenantUpdate {
        settings: Some(serde_json::json!({ nul: 1 })),
        ..Default::default()
    };
    refused_nul(
        "settings key",
        r.tenants.update_tenant(&actx, key).await,
        "settings",
    );
    let SsoConfig::Oidc {
        issuer,
        client_secret_ref,
        scopes,
        ..
    } = super::tenancy::oidc_config()
    else {
        unreachable!("oidc_config is OIDC")
    };
    let config = SsoConfig::Oidc {
        issuer,
        client_id: nul.into(),
        client_secret_ref,
        scopes,
    };
    let provider = r
        .sso
        .create_provider(
            &actx,
            NewSsoProvider {
                name: name("Okta"),
                config: config.clone(),
            },
        )
        .await;
    refused_nul("sso config", provider, "config");
    let okta = r
        .sso
        .create_provider(
            &actx,
            NewSsoProvider {
                name: name("Okta"),
                config: saml_config(),
            },
        )
        .await
        .unwrap();
    let updated = r
        .sso
        .update_provider(&actx, okta.id, Some(config), None)
        .await;
    refused_nul("sso config update", updated, "config");
    let linked = r.sso.link_identity(&actx, okta.id, nul, owner.id).await;
    refused_nul("identity subject", linked, "subject");
    assert_eq!(
        r.sso
            .find_user_by_identity(&actx, okta.id, nul)
            .await
            .unwrap(),
        None
    );
    let diff = AuditEvent::new(
        "note.added",
        "note",
        None::<String>,
        Diff::new().set("text", nul),
    );
    refused_nul("audit diff", diff, "diff");
    let target = AuditEvent::new("note.added", "note", Some(nul), Diff::new());
    refused_nul("audit target", target, "target_id");
    let filter =
        AuditQuery::last_days(1).target(TargetType::parse("note").unwrap(), Some(nul.into()));
    refused_nul(
        "audit filter",
        r.audit.query_entries(&actx, filter).await,
        "target_id",
    );

    assert!(r
        .projects
        .list_projects(&actx, true)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(r.sso.list_providers(&actx).await.unwrap(), vec![okta]);
    // Only the provider that was valid was audited.
    assert_eq!(audit_trail(r, acme.id).await.len(), before + 1);
}

/// This module's conformance cases, for [`conformance_tests!`](crate::conformance_tests):
/// a new case is listed here, next to its module.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases_error {
    ($backend:tt) => {
        $crate::__conformance_module!($backend error [
            every_conflict_names_its_entity_and_field_only,
            an_unseen_tenants_rows_are_not_found_as_themselves,
            text_no_database_can_store_is_refused,
        ]);
    };
}
