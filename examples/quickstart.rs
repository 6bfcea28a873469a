//! A tour of InsightPulse Core: an atomic sign-up (user, password, first
//! tenant), sign-in, roles and typed permission checks, an invited member,
//! projects and environments (idempotent creates), an API key that
//! authenticates later requests, then the audit trail all of that wrote, a
//! retention policy, a consent and the erasure of a user. Errors print with
//! their stable code.
//!
//! ```text
//! cargo run --example quickstart                       # in-memory backend
//! DATABASE_URL=postgres://… cargo run --example quickstart   # PostgreSQL (migrated first)
//! ```

use insightpulse::audit::{AuditEvent, AuditQuery, Diff};
use insightpulse::chrono::{self, Duration};
use insightpulse::privacy::{
    ConsentChange, DataCategory, NewDataPolicy, RetentionAction, RetentionDays,
};
use insightpulse::projects::{EnvironmentKind, NewProject};
use insightpulse::tenancy::tokens::TokenHasher;
use insightpulse::tenancy::{ApiKeyScope, NewApiKey, NewInvitation, NewTenant, SignUp};
use insightpulse::{
    Context, Email, ExposeSecret, IdempotencyKey, Name, PermissionCode, Repos, RequestMeta,
    SecretString, Slug, TimeZone,
};

#[tokio::main]
async fn main() -> Result<(), insightpulse::Error> {
    let repos = backend().await?;
    // Names are unique per run, so the tour can run again on the same database.
    let run = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let request = |id: &str| RequestMeta::default().with_request_id(id);

    // 1. Ada signs up: her account, password, first tenant, owner
    //    membership and Admin grant in one transaction (all or nothing).
    let sign_up = |who: &str, slug: String| -> Result<SignUp, insightpulse::Error> {
        Ok(SignUp {
            email: Email::parse(&format!("{who}-{run}@acme.example"))?,
            full_name: Some(Name::parse(who)?),
            password: SecretString::from(format!("{who}'s correct horse battery")),
            tenant: NewTenant {
                slug: Slug::parse(&slug)?,
                name: Name::parse(&format!("{who}'s workspace"))?,
                timezone: TimeZone::parse("America/New_York")?,
            },
        })
    };
    let ada = repos
        .auth
        .sign_up(
            request("quickstart-1"),
            sign_up("ada", format!("acme-{run}"))?,
        )
        .await?;
    let (acme, ada_ctx) = (ada.tenant, ada.ctx);
    // A slug that is taken refuses the whole sign-up: no account is left
    // behind, so the retry with another slug succeeds.
    let taken = repos
        .auth
        .sign_up(
            request("quickstart-2"),
            sign_up("bob", acme.slug.to_string())?,
        )
        .await
        .expect_err("the slug is taken");
    let bobs = repos
        .auth
        .sign_up(
            request("quickstart-3"),
            sign_up("bob", format!("bob-{run}"))?,
        )
        .await?;
    let bob = bobs.user.clone();
    println!(
        "1. signed up {} (tenant {}) and {}; Bob's first try: {} [{}]",
        ada.user.email,
        acme.slug,
        bob.email,
        taken,
        taken.code()
    );
    let signed_in = repos
        .auth
        .sign_in(
            &ada.user.email,
            &SecretString::from("ada's correct horse battery"),
            request("quickstart-4"),
        )
        .await?;
    println!(
        "   Ada signs in again: {:?}",
        signed_in.ctx.in_tenant(acme.id).tenant_id() == Some(acme.id)
    );

    // 3. Roles and permission checks: Bob joins as a Viewer.
    let viewer = repos
        .rbac
        .get_role_by_name(&ada_ctx, &Name::parse("Viewer")?)
        .await?;
    let invitation = repos
        .members
        .invite(
            &ada_ctx,
            NewInvitation {
                email: bob.email.clone(),
                role_id: Some(viewer.id),
                valid_for: Duration::days(7),
            },
        )
        .await?;
    repos
        .members
        .accept_invitation(&Context::user(bob.id), &invitation.token)
        .await?;
    let bob_ctx = Context::user(bob.id).in_tenant(acme.id).with_request(
        request("quickstart-5")
            .with_ip("203.0.113.7".parse().expect("an ip address"))
            .with_user_agent("quickstart/1.0"),
    );
    let roles = repos.rbac.list_roles(&ada_ctx).await?;
    println!(
        "3. roles: {}",
        roles
            .iter()
            .map(|r| format!("{} ({})", r.name, r.scope.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (who, ctx) in [("Ada", &ada_ctx), ("Bob", &bob_ctx)] {
        println!(
            "   {who}: dashboard.delete={} dashboard.read={}",
            repos
                .rbac
                .has_permission(ctx, PermissionCode::DASHBOARD_DELETE, None)
                .await?,
            repos
                .rbac
                .has_permission(ctx, PermissionCode::DASHBOARD_READ, None)
                .await?
        );
    }
    let refused = repos
        .rbac
        .require_permission(&bob_ctx, PermissionCode::DASHBOARD_DELETE, None)
        .await
        .expect_err("viewers hold no dashboard.delete");
    println!("   Bob's guard: {refused} [{}]", refused.code());
    println!(
        "   \"project.updte\" is no permission: {}",
        "project.updte"
            .parse::<PermissionCode>()
            .expect_err("a typo")
    );

    // 7. Projects and their environments. A form submitted twice with the
    //    same idempotency key makes one project.
    let web_form = NewProject {
        slug: Slug::parse("web")?,
        name: Name::parse("Web app")?,
        description: None,
    };
    let once = ada_ctx
        .clone()
        .with_idempotency_key(IdempotencyKey::parse(&format!("new-project-{run}"))?);
    let web = repos
        .projects
        .create_project(&once, web_form.clone())
        .await?;
    let again = repos.projects.create_project(&once, web_form).await?;
    assert_eq!(web.id, again.id);
    for kind in [
        EnvironmentKind::Development,
        EnvironmentKind::Staging,
        EnvironmentKind::Production,
    ] {
        repos
            .projects
            .create_environment(&ada_ctx, web.id, kind)
            .await?;
    }
    let envs = repos.projects.list_environments(&ada_ctx, web.id).await?;
    println!(
        "7. project {} with environments {:?}",
        web.slug,
        envs.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>()
    );
    println!("   the same form sent twice made one project ({})", web.id);
    match repos
        .projects
        .create_environment(&ada_ctx, web.id, EnvironmentKind::Production)
        .await
    {
        Err(e) => println!(
            "   a second production environment is refused: {e} [{}]",
            e.code()
        ),
        Ok(_) => unreachable!("environments are unique per kind"),
    }
    match repos
        .projects
        .create_project(
            &bob_ctx,
            NewProject {
                slug: Slug::parse("bobs")?,
                name: Name::parse("Bob's")?,
                description: None,
            },
        )
        .await
    {
        Err(e) => println!("   Bob (Viewer) cannot create projects: {e}"),
        Ok(_) => unreachable!("viewers hold no project.create"),
    }
    let web = repos
        .projects
        .rename_project(&ada_ctx, web.id, Name::parse("Web storefront")?)
        .await?;
    let web = repos.projects.archive_project(&ada_ctx, web.id).await?;
    println!(
        "   renamed to {:?} and archived at {:?}",
        web.name.as_str(),
        web.archived_at
    );
    let web = repos.projects.unarchive_project(&ada_ctx, web.id).await?;

    // 6. An API key limited to one project and two permissions.
    let issued = repos
        .api_keys
        .create_api_key(
            &ada_ctx,
            NewApiKey {
                name: Name::parse("CI deploys")?,
                scope: ApiKeyScope::Project(web.id),
                permissions: vec![
                    PermissionCode::PROJECT_UPDATE,
                    PermissionCode::ENVIRONMENT_MANAGE,
                ],
                expires_at: Some(chrono::Utc::now() + Duration::days(90)),
            },
        )
        .await?;
    let shown = issued.secret.expose_secret();
    println!(
        "6. API key {} created (shown once: {}…)",
        issued.key.prefix,
        &shown[..shown.len().min(24)]
    );
    // A later request presents the key; the SDK turns it into a context.
    let key_ctx = repos
        .auth
        .authenticate(&issued.secret, request("quickstart-6"))
        .await?;
    let visible = repos.projects.list_projects(&key_ctx, true).await?;
    println!(
        "   the key acts in tenant {:?}, sees {} project(s), holds project.update on web: {}, project.delete: {}",
        key_ctx.tenant_id(),
        visible.len(),
        repos.rbac.has_permission(&key_ctx, PermissionCode::PROJECT_UPDATE, Some(web.id)).await?,
        repos.rbac.has_permission(&key_ctx, PermissionCode::PROJECT_DELETE, Some(web.id)).await?,
    );
    // The key acts (and the audit report names it).
    repos
        .projects
        .rename_project(&key_ctx, web.id, Name::parse("Web storefront (CI)")?)
        .await?;
    repos
        .api_keys
        .revoke_api_key(&ada_ctx, issued.key.id)
        .await?;
    match repos
        .auth
        .authenticate(&issued.secret, request("quickstart-7"))
        .await
    {
        Err(e) => println!("   after revocation: {e} [{}]", e.code()),
        Ok(_) => unreachable!("revoked keys are refused"),
    }

    // The audit trail: every change above wrote its entry in the same
    // transaction; the host app adds its own.
    repos
        .audit
        .record(
            &ada_ctx,
            AuditEvent::new(
                "report.exported",
                "report",
                Some("q3-revenue"),
                Diff::new().set("rows", 1200),
            )?,
        )
        .await?;
    let page = repos
        .audit
        .query(&ada_ctx, AuditQuery::last_days(30).limit(20))
        .await?;
    println!("8. audit report, newest first:");
    for e in &page.entries {
        println!(
            "   #{:<2} {:<26} {:<12} by {}",
            e.seq,
            e.action.as_str(),
            e.target_type.as_str(),
            e.actor_email
                .clone()
                .or_else(|| e.actor_key.as_ref().map(|k| format!("key {k}")))
                .unwrap_or_else(|| e.actor.kind().to_owned())
        );
    }
    println!("   chain: {:?}", repos.audit.verify_chain(&ada_ctx).await?);
    match repos.audit.query(&bob_ctx, AuditQuery::last_days(30)).await {
        Err(e) => println!("   Bob (Viewer) cannot read it: {e} [{}]", e.code()),
        Ok(_) => unreachable!("viewers hold no audit.read"),
    }

    // 9. Data governance: retention, consent, erasure.
    repos
        .privacy
        .set_data_policy(
            &ada_ctx,
            NewDataPolicy {
                category: DataCategory::AuditLogs,
                retention: RetentionDays::new(400)?,
                action: RetentionAction::Delete,
            },
        )
        .await?;
    let consent = ConsentChange {
        user: bob.id,
        purpose: "product_analytics".parse()?,
        policy_version: "2026-11".parse()?,
        source: "settings_page".parse()?,
    };
    repos
        .privacy
        .record_consent(&bob_ctx, consent.clone())
        .await?;
    repos
        .privacy
        .withdraw_consent(&bob_ctx, consent.clone())
        .await?;
    println!(
        "9. Bob consents to {} now: {} (history: {} entries)",
        consent.purpose,
        repos
            .privacy
            .has_consent(&bob_ctx, bob.id, &consent.purpose)
            .await?,
        repos.privacy.consent_history(&bob_ctx, bob.id).await?.len()
    );
    // Bob closes his account: his own workspace first (he is its last
    // owner, which erasure refuses to orphan), then himself.
    repos.tenants.delete_tenant(&bobs.ctx).await?;
    let erased = repos
        .privacy
        .erase_user(&Context::user(bob.id), bob.id)
        .await?;
    println!(
        "   Bob erased himself: left {} tenant(s), {} audit entries pseudonymized; chain: {:?}",
        erased.tenants.len(),
        erased.audit_entries_pseudonymized,
        repos.audit.verify_chain(&ada_ctx).await?
    );
    Ok(())
}

/// PostgreSQL when `DATABASE_URL` is set (migrated first), the in-memory
/// backend otherwise.
async fn backend() -> Result<Repos, insightpulse::Error> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            // The pepper is configuration; the tour falls back to the
            // public development one, saying so.
            let hasher = match std::env::var("INSIGHTPULSE_TOKEN_PEPPER") {
                Ok(pepper) => TokenHasher::new(pepper)?,
                Err(_) => {
                    println!(
                        "(INSIGHTPULSE_TOKEN_PEPPER unset: using the insecure development pepper)"
                    );
                    TokenHasher::insecure_development()
                }
            };
            let backend = insightpulse::postgres::PgBackend::connect(&url, hasher).await?;
            backend.migrate().await?;
            println!("backend: PostgreSQL");
            Ok(backend.repos())
        }
        _ => {
            println!("backend: in-memory");
            Ok(insightpulse_testing::memory::MemoryBackend::new().repos())
        }
    }
}
