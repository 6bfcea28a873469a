//! A tour of InsightPulse Core: sign-up, a tenant with its owner, roles and
//! permission checks, an invited member, an API key, projects and
//! environments, then the audit trail all of that wrote, a retention
//! policy, a consent and the erasure of a user.
//!
//! ```text
//! cargo run --example quickstart                       # in-memory backend
//! DATABASE_URL=postgres://… cargo run --example quickstart   # PostgreSQL (migrated first)
//! ```

use chrono::Duration;
use insightpulse::audit::{AuditEvent, AuditQuery, Diff};
use insightpulse::privacy::{
    ConsentChange, DataCategory, NewDataPolicy, RetentionAction, RetentionDays,
};
use insightpulse::projects::{EnvironmentKind, NewProject};
use insightpulse::tenancy::{ApiKeyScope, NewApiKey, NewInvitation, NewTenant, NewUser};
use insightpulse::{Context, Email, ExposeSecret, Name, PermissionCode, Repos, Slug, TimeZone};

#[tokio::main]
async fn main() -> Result<(), insightpulse::Error> {
    let repos = backend().await?;
    let system = Context::system("quickstart sign-up");
    // Names are unique per run, so the tour can run again on the same database.
    let run = &uuid::Uuid::new_v4().simple().to_string()[..8];

    // Users sign up (a system action: nobody is signed in yet).
    let ada = repos
        .users
        .create_user(
            &system,
            NewUser {
                email: Email::parse(&format!("ada-{run}@acme.example"))?,
                full_name: Some(Name::parse("Ada")?),
            },
        )
        .await?;
    let bob = repos
        .users
        .create_user(
            &system,
            NewUser {
                email: Email::parse(&format!("bob-{run}@acme.example"))?,
                full_name: None,
            },
        )
        .await?;
    println!("1. signed up {} and {}", ada.email, bob.email);

    // 1. Ada creates a tenant: she becomes its owner with the Admin role.
    let acme = repos
        .tenants
        .create_tenant(
            &Context::user(ada.id),
            NewTenant {
                slug: Slug::parse(&format!("acme-{run}"))?,
                name: Name::parse("Acme Corporation")?,
                timezone: TimeZone::parse("America/New_York")?,
            },
        )
        .await?;
    let ada_ctx = Context::user(ada.id)
        .in_tenant(acme.id)
        .with_request_id("quickstart-1");
    let mine = repos
        .tenants
        .list_my_tenants(&Context::user(ada.id))
        .await?;
    println!(
        "   created tenant {} ({}); Ada's tenants: {:?}",
        acme.slug,
        acme.id,
        mine.iter().map(|t| t.slug.as_str()).collect::<Vec<_>>()
    );

    // 3. Roles and permission checks: Bob joins as a Viewer.
    let roles = repos.rbac.list_roles(&ada_ctx).await?;
    let viewer = roles
        .iter()
        .find(|r| r.name.as_str() == "Viewer")
        .expect("built-in role");
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
    let bob_ctx =
        Context::user(bob.id)
            .in_tenant(acme.id)
            .with_request(insightpulse::RequestMeta {
                request_id: Some("quickstart-2".into()),
                ip: Some("203.0.113.7".parse().expect("an ip address")),
                user_agent: Some("quickstart/1.0".into()),
            });
    let delete: PermissionCode = "dashboard.delete".parse()?;
    let read: PermissionCode = "dashboard.read".parse()?;
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
            repos.rbac.has_permission(ctx, &delete, None).await?,
            repos.rbac.has_permission(ctx, &read, None).await?
        );
    }

    // 7. Projects and their environments.
    let web = repos
        .projects
        .create_project(
            &ada_ctx,
            NewProject {
                slug: Slug::parse("web")?,
                name: Name::parse("Web app")?,
                description: None,
            },
        )
        .await?;
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
    match repos
        .projects
        .create_environment(&ada_ctx, web.id, EnvironmentKind::Production)
        .await
    {
        Err(e) => println!("   a second production environment is refused: {e}"),
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
        .create(
            &ada_ctx,
            NewApiKey {
                name: Name::parse("CI deploys")?,
                scope: ApiKeyScope::Project(web.id),
                permissions: vec!["project.update".parse()?, "environment.manage".parse()?],
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
    let key_ctx = repos
        .api_keys
        .verify(&Context::system("authenticate request"), &issued.secret)
        .await?;
    let visible = repos.projects.list_projects(&key_ctx, true).await?;
    println!(
        "   the key acts in tenant {:?}, sees {} project(s), holds project.update on web: {}, project.delete: {}",
        key_ctx.tenant_id(),
        visible.len(),
        repos.rbac.has_permission(&key_ctx, &"project.update".parse()?, Some(web.id)).await?,
        repos.rbac.has_permission(&key_ctx, &"project.delete".parse()?, Some(web.id)).await?,
    );
    repos.api_keys.revoke(&ada_ctx, issued.key.id).await?;
    match repos
        .api_keys
        .verify(&Context::system("authenticate request"), &issued.secret)
        .await
    {
        Err(e) => println!("   after revocation: {e}"),
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
            e.actor_email.as_deref().unwrap_or(e.actor.kind())
        );
    }
    println!("   chain: {:?}", repos.audit.verify_chain(&ada_ctx).await?);
    match repos.audit.query(&bob_ctx, AuditQuery::last_days(30)).await {
        Err(e) => println!("   Bob (Viewer) cannot read it: {e}"),
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
            let backend = insightpulse::postgres::PgBackend::connect(&url).await?;
            backend.migrate().await?;
            println!("backend: PostgreSQL");
            Ok(backend.repos())
        }
        _ => {
            println!("backend: in-memory");
            Ok(insightpulse::testing::memory::MemoryBackend::new().repos())
        }
    }
}
