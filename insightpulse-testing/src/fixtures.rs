//! Builders for tests: sign a user up, create a tenant with its owner, bring
//! in a member with a role, create projects, roles and API keys.
//!
//! Rule guarded here: fixtures only use the public repository traits (never a
//! backend's internals), so the same fixture works on every backend and a
//! test built from them exercises the real code paths — a member is added by
//! invitation and acceptance, an API key context comes from
//! `AuthRepo::authenticate`.
//! Fixtures panic with a message on any error: they set a test up, they are
//! not what it checks.

use insightpulse_core::audit::{AuditEntry, AuditQuery, ChainVerdict};
use insightpulse_core::projects::{Environment, EnvironmentKind, NewProject, Project};
use insightpulse_core::tenancy::{
    ApiKey, ApiKeyScope, NewApiKey, NewInvitation, NewRole, NewTenant, NewUser, Role, RoleScope,
    Tenant, User,
};
use insightpulse_core::{
    Context, Email, Name, PermissionCode, ProjectId, Repos, RequestMeta, SecretString, Slug,
    TenantId, TimeZone,
};

/// A system context, as a host app uses for sign-up and background work.
pub fn system() -> Context {
    Context::system("insightpulse-testing fixture")
}

/// A slug that must be valid.
pub fn slug(s: &str) -> Slug {
    Slug::parse(s).unwrap_or_else(|e| panic!("fixture slug {s:?}: {e}"))
}

/// A name that must be valid.
pub fn name(s: &str) -> Name {
    Name::parse(s).unwrap_or_else(|e| panic!("fixture name {s:?}: {e}"))
}

/// An email that must be valid.
pub fn email(s: &str) -> Email {
    Email::parse(s).unwrap_or_else(|e| panic!("fixture email {s:?}: {e}"))
}

/// A permission code that must be well-formed.
pub fn code(s: &str) -> PermissionCode {
    PermissionCode::parse(s).unwrap_or_else(|e| panic!("fixture permission {s:?}: {e}"))
}

/// Several permission codes.
pub fn codes(list: &[&str]) -> Vec<PermissionCode> {
    list.iter().map(|s| code(s)).collect()
}

/// Registers a user without a password or tenant, as the system does when
/// it provisions one (`AuthRepo::sign_up` is the user's own way in).
pub async fn signup(repos: &Repos, email_address: &str) -> User {
    repos
        .users
        .create_user(
            &system(),
            NewUser {
                email: email(email_address),
                full_name: None,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("signup {email_address}: {e}"))
}

/// `user` creates tenant `slug` (UTC); returns it and the owner's context in it.
pub async fn create_tenant(repos: &Repos, user: &User, tenant_slug: &str) -> (Tenant, Context) {
    let tenant = repos
        .tenants
        .create_tenant(
            &Context::user(user.id),
            NewTenant {
                slug: slug(tenant_slug),
                name: name(tenant_slug),
                timezone: TimeZone::utc(),
            },
        )
        .await
        .unwrap_or_else(|e| panic!("create tenant {tenant_slug}: {e}"));
    let ctx = Context::user(user.id).in_tenant(tenant.id);
    (tenant, ctx)
}

/// A new user `owner@<slug>.test` who creates tenant `slug`: the tenant, the
/// owner and the owner's context in the tenant.
pub async fn tenant_with_owner(repos: &Repos, tenant_slug: &str) -> (Tenant, User, Context) {
    let owner = signup(repos, &format!("owner@{tenant_slug}.test")).await;
    let (tenant, ctx) = create_tenant(repos, &owner, tenant_slug).await;
    (tenant, owner, ctx)
}

/// The first role named `role_name` visible in `ctx` (built-ins included).
pub async fn role_named(repos: &Repos, ctx: &Context, role_name: &str) -> Role {
    repos
        .rbac
        .list_roles(ctx)
        .await
        .unwrap_or_else(|e| panic!("list roles: {e}"))
        .into_iter()
        .find(|r| r.name.as_str() == role_name)
        .unwrap_or_else(|| panic!("no role named {role_name}"))
}

/// Creates a tenant role.
pub async fn custom_role(
    repos: &Repos,
    ctx: &Context,
    role_name: &str,
    scope: RoleScope,
    permissions: &[&str],
) -> Role {
    repos
        .rbac
        .create_role(
            ctx,
            NewRole {
                name: name(role_name),
                scope,
                description: None,
                permissions: codes(permissions),
            },
        )
        .await
        .unwrap_or_else(|e| panic!("create role {role_name}: {e}"))
}

/// Brings an existing `user` into `inviter`'s tenant the way a host app
/// does: invitation (with `role`, granted tenant-wide) and acceptance.
/// Returns the user's context in the tenant.
pub async fn join(repos: &Repos, inviter: &Context, user: &User, role: Option<&str>) -> Context {
    let role_id = match role {
        Some(r) => Some(role_named(repos, inviter, r).await.id),
        None => None,
    };
    let issued = repos
        .members
        .invite(
            inviter,
            NewInvitation {
                email: user.email.clone(),
                role_id,
                valid_for: chrono::Duration::days(7),
            },
        )
        .await
        .unwrap_or_else(|e| panic!("invite {}: {e}", user.email));
    let ctx = Context::user(user.id);
    repos
        .members
        .accept_invitation(&ctx, &issued.token)
        .await
        .unwrap_or_else(|e| panic!("accept invitation of {}: {e}", user.email));
    ctx.in_tenant(issued.invitation.tenant_id)
}

/// Signs `email` up and brings the user into `inviter`'s tenant with `role`.
pub async fn member_with_role(
    repos: &Repos,
    inviter: &Context,
    email_address: &str,
    role: Option<&str>,
) -> (User, Context) {
    let user = signup(repos, email_address).await;
    let ctx = join(repos, inviter, &user, role).await;
    (user, ctx)
}

/// Creates project `slug` (named after it).
pub async fn project(repos: &Repos, ctx: &Context, project_slug: &str) -> Project {
    repos
        .projects
        .create_project(
            ctx,
            NewProject {
                slug: slug(project_slug),
                name: name(project_slug),
                description: None,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("create project {project_slug}: {e}"))
}

/// Creates an environment of `project`.
pub async fn environment(
    repos: &Repos,
    ctx: &Context,
    project: ProjectId,
    kind: EnvironmentKind,
) -> Environment {
    repos
        .projects
        .create_environment(ctx, project, kind)
        .await
        .unwrap_or_else(|e| panic!("create environment {}: {e}", kind.as_str()))
}

/// Creates an API key as `ctx` and authenticates it (its first use): the
/// stored key, its plaintext and the context it acts with.
pub async fn api_key(
    repos: &Repos,
    ctx: &Context,
    scope: ApiKeyScope,
    permissions: &[&str],
) -> (ApiKey, SecretString, Context) {
    let issued = repos
        .api_keys
        .create_api_key(
            ctx,
            NewApiKey {
                name: name("fixture key"),
                scope,
                permissions: codes(permissions),
                expires_at: None,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("create api key: {e}"));
    let key_ctx = repos
        .auth
        .authenticate(&issued.secret, ctx.request().clone())
        .await
        .unwrap_or_else(|e| panic!("authenticate api key: {e}"));
    (issued.key, issued.secret, key_ctx)
}

/// Request metadata as a host app attaches it: `request_id`, a fixed client
/// address (`203.0.113.7`) and user agent (`conformance-agent/1.0`).
pub fn request(request_id: &str) -> RequestMeta {
    RequestMeta {
        request_id: Some(request_id.to_owned()),
        ip: Some("203.0.113.7".parse().expect("valid ip")),
        user_agent: Some("conformance-agent/1.0".to_owned()),
        idempotency_key: None,
    }
}

/// Every entry of `tenant`'s audit trail (of the last 3650 days), read by
/// the system page by page, in ascending `seq` order.
pub async fn audit_trail(repos: &Repos, tenant: TenantId) -> Vec<AuditEntry> {
    let ctx = system().in_tenant(tenant);
    let mut entries = Vec::new();
    let mut q = AuditQuery::last_days(3650).limit(1000);
    loop {
        let page = repos
            .audit
            .query_entries(&ctx, q.clone())
            .await
            .unwrap_or_else(|e| panic!("audit trail of {tenant}: {e}"));
        entries.extend(page.entries);
        match page.next {
            Some(cursor) => q = q.after(cursor),
            None => break,
        }
    }
    entries.sort_by_key(|e| e.seq);
    entries
}

/// The verdict on `tenant`'s hash chain, as the system sees it.
pub async fn chain_verdict(repos: &Repos, tenant: TenantId) -> ChainVerdict {
    repos
        .audit
        .verify_chain(&system().in_tenant(tenant))
        .await
        .unwrap_or_else(|e| panic!("verify chain of {tenant}: {e}"))
}
