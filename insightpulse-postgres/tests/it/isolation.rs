//! The catalog-driven isolation attack.
//!
//! Every table with a `tenant_id` column is found in the catalog (so tables
//! added by later modules are covered by adding their rows to
//! [`populate`]), must have RLS enabled **and forced** with at least one
//! policy, and is attacked by the owner of tenant A — who holds every
//! permission in A — trying to read, change, delete, create and move rows
//! of tenant B. Every attempt must be refused or touch zero rows.

use crate::{acting_as_on, tenant, user};
use chrono::Duration;
use insightpulse_core::outbox::EventCursor;
use insightpulse_core::privacy::{
    ConsentChange, DataCategory, NewDataPolicy, RetentionAction, RetentionDays,
};
use insightpulse_core::projects::{EnvironmentKind, NewProject};
use insightpulse_core::tenancy::*;
use insightpulse_core::{
    ConsentPurpose, ConsentSource, ConsumerName, Context, Email, EnvironmentId, EventType,
    IdempotencyKey, Name, PermissionCode, PolicyVersion, ProjectId, Repos, Slug, TenantId, UserId,
};
use insightpulse_postgres::uow::Cluster;
use sqlx::PgPool;
use uuid::Uuid;

/// Puts at least one row in every tenant table for the tenant `slug`, and
/// returns the tenant and its owner: one function per module below (a new
/// module adds its own and one line here). The audit trail and the
/// idempotency keys fill up as a by-product of the calls.
pub(crate) async fn populate(repos: &Repos, slug: &str) -> (TenantId, UserId) {
    let f = fixture(repos, slug).await;
    let (project, env) = projects(&f).await;
    tenancy(&f, project, env).await;
    privacy(&f).await;
    outbox(&f).await;
    jobs(&f).await;
    (f.tenant, f.owner)
}

async fn fixture<'a>(repos: &'a Repos, slug: &'a str) -> Fixture<'a> {
    let owner = user(repos, &format!("owner@{slug}.io")).await;
    let member = user(repos, &format!("member@{slug}.io")).await;
    let (t, ctx) = tenant(repos, owner.id, slug).await;
    Fixture {
        repos,
        ctx,
        tenant: t.id,
        owner: owner.id,
        member: member.id,
        slug,
    }
}

/// A tenant being populated: its owner's context, and a user who is to
/// become a plain member.
struct Fixture<'a> {
    repos: &'a Repos,
    ctx: Context,
    tenant: TenantId,
    owner: UserId,
    member: UserId,
    slug: &'a str,
}

/// A project and its environment.
async fn projects(f: &Fixture<'_>) -> (ProjectId, EnvironmentId) {
    let project = f
        .repos
        .projects
        .create_project(
            &f.ctx,
            NewProject {
                slug: Slug::parse("web").unwrap(),
                name: Name::parse("Web").unwrap(),
                description: None,
            },
        )
        .await
        .unwrap();
    let env = f
        .repos
        .projects
        .create_environment(&f.ctx, project.id, EnvironmentKind::Production)
        .await
        .unwrap();
    (project.id, env.id)
}

/// The member (through an accepted invitation), a pending invitation, a
/// team, a role granted at `project`, an SSO provider and identity, and an
/// API key scoped to `env`.
async fn tenancy(f: &Fixture<'_>, project: ProjectId, env: EnvironmentId) {
    let (repos, ctx, slug) = (f.repos, &f.ctx, f.slug);
    let invite = |email: &str| NewInvitation {
        email: Email::parse(email).unwrap(),
        role_id: None,
        valid_for: Duration::days(1),
    };
    let issued = repos
        .members
        .invite(ctx, invite(&format!("member@{slug}.io")))
        .await
        .unwrap();
    repos
        .members
        .accept_invitation(&Context::user(f.member), &issued.token)
        .await
        .unwrap();
    repos
        .members
        .invite(ctx, invite(&format!("pending@{slug}.io")))
        .await
        .unwrap();
    // Made with an idempotency key: the owner's key is a row too.
    let keyed = ctx
        .clone()
        .with_idempotency_key(IdempotencyKey::parse(&format!("team-{slug}")).unwrap());
    let team = repos
        .teams
        .create_team(
            &keyed,
            NewTeam {
                slug: Slug::parse("core").unwrap(),
                name: Name::parse("Core").unwrap(),
            },
        )
        .await
        .unwrap();
    repos
        .teams
        .add_team_member(ctx, team.id, f.member)
        .await
        .unwrap();
    let role = repos
        .rbac
        .create_role(
            ctx,
            NewRole {
                name: Name::parse("Auditor").unwrap(),
                scope: RoleScope::Global,
                description: None,
                permissions: vec![PermissionCode::parse("audit.read").unwrap()],
            },
        )
        .await
        .unwrap();
    repos
        .rbac
        .grant_role(ctx, f.member, role.id, Some(project))
        .await
        .unwrap();
    let provider = repos
        .sso
        .create_provider(
            ctx,
            NewSsoProvider {
                name: Name::parse("Okta").unwrap(),
                config: SsoConfig::Oidc {
                    issuer: "https://acme.okta.com".parse().unwrap(),
                    client_id: "client".into(),
                    client_secret_ref: "secret://okta".into(),
                    scopes: vec!["openid".into()],
                },
            },
        )
        .await
        .unwrap();
    repos
        .sso
        .link_identity(ctx, provider.id, "00u1", f.member)
        .await
        .unwrap();
    repos
        .api_keys
        .create_api_key(
            ctx,
            NewApiKey {
                name: Name::parse("ci").unwrap(),
                scope: ApiKeyScope::Environment(env),
                permissions: vec![PermissionCode::parse("project.update").unwrap()],
                expires_at: None,
            },
        )
        .await
        .unwrap();
}

/// A data policy and the member's consent.
async fn privacy(f: &Fixture<'_>) {
    f.repos
        .privacy
        .set_data_policy(
            &f.ctx,
            NewDataPolicy {
                category: DataCategory::AuditLogs,
                retention: RetentionDays::new(365).unwrap(),
                action: RetentionAction::Delete,
            },
        )
        .await
        .unwrap();
    f.repos
        .privacy
        .record_consent(
            &f.ctx,
            ConsentChange {
                user: f.member,
                purpose: ConsentPurpose::parse("analytics").unwrap(),
                policy_version: PolicyVersion::parse("v1").unwrap(),
                source: ConsentSource::parse("settings").unwrap(),
            },
        )
        .await
        .unwrap();
}

/// An event, and a consumer's cursor in the tenant.
async fn outbox(f: &Fixture<'_>) {
    f.repos
        .outbox
        .publish_event(
            &f.ctx,
            &EventType::parse("fixture.created").unwrap(),
            &serde_json::json!({}),
        )
        .await
        .unwrap();
    f.repos
        .outbox
        .commit_cursor(
            &f.ctx,
            &ConsumerName::parse("fixture").unwrap(),
            EventCursor::new(1, 1),
        )
        .await
        .unwrap();
}

/// A queued job.
async fn jobs(f: &Fixture<'_>) {
    let job = insightpulse_core::jobs::NewJob::new("sync".parse().unwrap(), serde_json::json!({}));
    f.repos
        .jobs
        .enqueue_job(&Context::system("populate").in_tenant(f.tenant), job)
        .await
        .unwrap();
}

pub(crate) async fn tenant_tables(pool: &PgPool) -> Vec<(String, bool, bool, i64)> {
    sqlx::query_as(
        "SELECT c.relname::text, c.relrowsecurity, c.relforcerowsecurity,
                (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)
           FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
          WHERE a.attname = 'tenant_id' AND NOT a.attisdropped AND c.relkind IN ('r', 'p')
            AND c.relnamespace = 'insightpulse'::regnamespace
            -- Partitions are reached only through their parent (checked below).
            AND NOT c.relispartition
          ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The attack on one tenant table: `attacker` (acting in `a`, user
/// `attacker_id`) reads, changes, deletes and moves rows of `b` and forges
/// one there, through `cluster`; returns what got through. Panics unless
/// the fixture holds a row of `b` and the attacker sees rows of its own
/// (except in the token lookups, which no one reads at runtime).
pub(crate) async fn attack_table(
    pool: &PgPool,
    cluster: Cluster,
    attacker: &Context,
    attacker_id: UserId,
    (a, b): (TenantId, TenantId),
    table: &str,
) -> Vec<String> {
    let mut leaks = vec![];
    // Superuser view: the fixture must hold rows of both tenants.
    let row_b: Option<serde_json::Value> = sqlx::query_scalar(&format!(
        "SELECT to_jsonb(x) FROM insightpulse.{table} x WHERE tenant_id = $1 LIMIT 1"
    ))
    .bind(b.0)
    .fetch_optional(pool)
    .await
    .unwrap();
    let row_b = row_b.unwrap_or_else(|| panic!("{table}: add a row of this table to `populate`"));

    let mut tx = acting_as_on(pool, cluster, attacker).await;
    let seen: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {table} WHERE tenant_id = $1"
    ))
    .bind(b.0)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    let own: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {table} WHERE tenant_id = $1"
    ))
    .bind(a.0)
    .fetch_one(&mut *tx)
    .await
    .unwrap_or(0);
    tx.rollback().await.unwrap();
    if seen != 0 {
        leaks.push(format!("{table}: read {seen} rows of B"));
    }
    // The attacker really is privileged in its own tenant (an attack by
    // someone who sees nothing at all would prove little).
    assert!(
        own > 0 || table == "token_lookups",
        "{table}: the attacker should see its own rows"
    );

    let b_lit = format!("'{}'::uuid", b.0);
    let a_lit = format!("'{}'::uuid", a.0);
    for (what, sql) in [
        (
            "update",
            format!("UPDATE {table} SET tenant_id = tenant_id WHERE tenant_id = {b_lit}"),
        ),
        (
            "delete",
            format!("DELETE FROM {table} WHERE tenant_id = {b_lit}"),
        ),
        (
            "move own row into B",
            format!("UPDATE {table} SET tenant_id = {b_lit} WHERE tenant_id = {a_lit}"),
        ),
    ] {
        if let Ok(n) = attack_on(pool, cluster, attacker, &sql, None).await {
            if n > 0 {
                leaks.push(format!("{table}: {what} touched {n} rows"));
            }
        }
    }

    // Create a row in B: a copy of one of B's rows with fresh keys and the
    // attacker as its user (e.g. "make me an owner of B").
    let mut forged = row_b;
    let obj = forged.as_object_mut().unwrap();
    for key in ["id", "token_prefix", "prefix", "slug", "name", "subject"] {
        if obj.contains_key(key) {
            obj.insert(
                key.into(),
                serde_json::json!(format!("{}", Uuid::new_v4()).replace('-', "")[..12]),
            );
        }
    }
    if obj.contains_key("id") {
        obj.insert("id".into(), serde_json::json!(Uuid::new_v4()));
    }
    if obj.contains_key("user_id") {
        obj.insert("user_id".into(), serde_json::json!(attacker_id));
    }
    let sql = insert_row_sql(pool, table).await;
    match attack_on(pool, cluster, attacker, &sql, Some(&forged)).await {
        Err(code) if code == "42501" => {}
        other => leaks.push(format!(
            "{table}: insert into B was not refused by RLS: {other:?}"
        )),
    }
    leaks
}

/// An insert into `table` of the row given as JSON in `$1`: a plain
/// `INSERT … VALUES` of every stored column (Citus takes no `INSERT …
/// SELECT` from a function).
pub(crate) async fn insert_row_sql(pool: &PgPool, table: &str) -> String {
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT attname::text FROM pg_attribute
          WHERE attrelid = ('insightpulse.' || $1)::regclass AND attnum > 0
            AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
    )
    .bind(table)
    .fetch_all(pool)
    .await
    .unwrap();
    let values: Vec<String> = columns
        .iter()
        .map(|c| format!("(jsonb_populate_record(NULL::{table}, $1)).{c}"))
        .collect();
    format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        columns.join(", "),
        values.join(", ")
    )
}

/// Runs one attack statement in its own transaction as `attacker`; returns
/// the rows it touched, or the SQLSTATE that refused it.
pub(crate) async fn attack(
    pool: &PgPool,
    attacker: &Context,
    sql: &str,
    json: Option<&serde_json::Value>,
) -> Result<u64, String> {
    attack_on(pool, Cluster::Postgres, attacker, sql, json).await
}

/// [`attack`] on `cluster`.
pub(crate) async fn attack_on(
    pool: &PgPool,
    cluster: Cluster,
    attacker: &Context,
    sql: &str,
    json: Option<&serde_json::Value>,
) -> Result<u64, String> {
    let mut tx = acting_as_on(pool, cluster, attacker).await;
    let mut q = sqlx::query(sql);
    if let Some(j) = json {
        q = q.bind(j);
    }
    let out = match q.execute(&mut *tx).await {
        Ok(done) => Ok(done.rows_affected()),
        Err(sqlx::Error::Database(e)) => Err(e.code().unwrap_or_default().into_owned()),
        Err(e) => panic!("{sql}: {e}"),
    };
    tx.rollback().await.unwrap();
    out
}

#[sqlx::test(migrations = false)]
async fn no_tenant_reaches_another_tenants_rows(pool: PgPool) {
    let repos = crate::harness(pool.clone()).await.repos;
    let (a, attacker_id) = populate(&repos, "alpha").await;
    let (b, b_owner) = populate(&repos, "bravo").await;
    let attacker = Context::user(attacker_id).in_tenant(a);

    let tables = tenant_tables(&pool).await;
    assert!(tables.len() >= 14, "{tables:?}");
    // No runtime role may touch a partition directly, bypassing the
    // parent's policies.
    let reachable: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c, unnest(ARRAY['authenticated', 'service_role']) AS r
          WHERE c.relispartition AND c.relnamespace = 'insightpulse'::regnamespace
            AND (has_table_privilege(r, c.oid, 'SELECT') OR has_table_privilege(r, c.oid, 'INSERT')
                 OR has_table_privilege(r, c.oid, 'UPDATE') OR has_table_privilege(r, c.oid, 'DELETE'))",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        reachable.is_empty(),
        "partitions reachable directly: {reachable:?}"
    );
    let mut leaks = vec![];
    for (table, enabled, forced, policies) in &tables {
        assert!(
            *enabled && *forced && *policies > 0,
            "{table}: RLS enabled={enabled} forced={forced} policies={policies}"
        );

        leaks.extend(
            attack_table(
                &pool,
                Cluster::Postgres,
                &attacker,
                attacker_id,
                (a, b),
                table,
            )
            .await,
        );
    }

    // The tenants table itself (keyed by id).
    for (what, sql) in [
        (
            "read",
            format!("SELECT 1 FROM insightpulse.tenants WHERE id = '{}'", b.0),
        ),
        (
            "update",
            format!(
                "UPDATE insightpulse.tenants SET name = 'pwned' WHERE id = '{}'",
                b.0
            ),
        ),
        (
            "delete",
            format!("DELETE FROM insightpulse.tenants WHERE id = '{}'", b.0),
        ),
    ] {
        if let Ok(n) = attack(&pool, &attacker, &sql, None).await {
            if n > 0 {
                leaks.push(format!("tenants: {what} touched {n} rows"));
            }
        }
    }
    // Users of B only are invisible, and nobody reads a password hash.
    if let Ok(n) = attack(
        &pool,
        &attacker,
        "SELECT 1 FROM insightpulse.users WHERE email LIKE '%@bravo.io'",
        None,
    )
    .await
    {
        if n > 0 {
            leaks.push(format!("users: read {n} users of B"));
        }
    }
    assert_eq!(
        attack(
            &pool,
            &attacker,
            "SELECT password_hash FROM insightpulse.users",
            None
        )
        .await,
        Err("42501".to_owned())
    );
    // Idempotency keys belong to a principal, not a tenant: B's owner's
    // keys cannot be read, replaced, or forged in their name.
    let theirs = format!("'user:{b_owner}'");
    for (what, sql) in [
        (
            "read",
            format!("SELECT 1 FROM insightpulse.idempotency_keys WHERE scope = {theirs}"),
        ),
        (
            "update",
            format!(
                "UPDATE insightpulse.idempotency_keys SET resource_id = gen_random_uuid()
                  WHERE scope = {theirs}"
            ),
        ),
    ] {
        if let Ok(n) = attack(&pool, &attacker, &sql, None).await {
            if n > 0 {
                leaks.push(format!("idempotency_keys: {what} touched {n} rows"));
            }
        }
    }
    for sql in [
        format!(
            "INSERT INTO insightpulse.idempotency_keys VALUES
             ({theirs}, 'team-bravo-2', 'create_team', decode(repeat('00', 32), 'hex'),
              gen_random_uuid(), now())"
        ),
        format!("DELETE FROM insightpulse.idempotency_keys WHERE scope = {theirs}"),
        "SELECT * FROM insightpulse._migrations".to_owned(),
    ] {
        assert_eq!(
            attack(&pool, &attacker, &sql, None).await,
            Err("42501".to_owned()),
            "{sql}"
        );
    }
    assert!(
        leaks.is_empty(),
        "tenant isolation broken:\n{}",
        leaks.join("\n")
    );
}

/// Inside its own tenant, a member holding `member.manage` (but not an
/// owner) cannot take ownership or touch an owner's membership with raw SQL
/// behind the SDK's back — while it can still manage ordinary members.
#[sqlx::test(migrations = false)]
async fn only_owners_act_on_ownership_even_in_raw_sql(pool: PgPool) {
    let repos = crate::harness(pool.clone()).await.repos;
    let owner = user(&repos, "owner@a.io").await;
    let (t, octx) = tenant(&repos, owner.id, "alpha").await;
    let mut members = vec![];
    for email in ["manager@a.io", "plain@a.io"] {
        let u = user(&repos, email).await;
        let issued = repos
            .members
            .invite(
                &octx,
                NewInvitation {
                    email: u.email.clone(),
                    role_id: None,
                    valid_for: Duration::days(1),
                },
            )
            .await
            .unwrap();
        repos
            .members
            .accept_invitation(&Context::user(u.id), &issued.token)
            .await
            .unwrap();
        members.push(u.id);
    }
    let role = repos
        .rbac
        .create_role(
            &octx,
            NewRole {
                name: Name::parse("People ops").unwrap(),
                scope: RoleScope::Org,
                description: None,
                permissions: vec![PermissionCode::parse("member.manage").unwrap()],
            },
        )
        .await
        .unwrap();
    repos
        .rbac
        .grant_role(&octx, members[0], role.id, None)
        .await
        .unwrap();
    let manager = Context::user(members[0]).in_tenant(t.id);

    for sql in [
        format!("UPDATE insightpulse.org_memberships SET is_owner = true WHERE tenant_id = '{}' AND user_id = '{}'", t.id, members[0]),
        format!("UPDATE insightpulse.org_memberships SET status = 'suspended' WHERE tenant_id = '{}' AND user_id = '{}'", t.id, owner.id),
        format!("DELETE FROM insightpulse.org_memberships WHERE tenant_id = '{}' AND user_id = '{}'", t.id, owner.id),
    ] {
        assert_eq!(attack(&pool, &manager, &sql, None).await, Err("42501".to_owned()), "{sql}");
    }
    let suspend_plain = format!(
        "UPDATE insightpulse.org_memberships SET status = 'suspended' WHERE tenant_id = '{}' AND user_id = '{}'",
        t.id, members[1]
    );
    assert_eq!(attack(&pool, &manager, &suspend_plain, None).await, Ok(1));
    // The owner still can, and deleting the whole tenant still cascades.
    let promote = format!(
        "UPDATE insightpulse.org_memberships SET is_owner = true WHERE tenant_id = '{}' AND user_id = '{}'",
        t.id, members[0]
    );
    assert_eq!(attack(&pool, &octx, &promote, None).await, Ok(1));
    repos.tenants.delete_tenant(&octx).await.unwrap();
}
