//! The catalog-driven attack inside one tenant.
//!
//! The isolation attack (`isolation.rs`) sends an owner against another
//! tenant; this one stays inside tenant A. A member without grants, and one
//! member per built-in role, run raw SQL as `authenticated` on every tenant
//! table — read, change, delete, create — and may do exactly what their
//! permissions allow, no more: the SDK checks first, so without this test a
//! policy that asked only for membership would pass every other test.
//!
//! Every tenant table found in the catalog needs a [`Rule`]: a table added
//! by a later module fails here until it says who may do what.

use crate::isolation::{attack_on, insert_row_sql, populate, tenant_tables};
use insightpulse_core::{Context, Repos, TenantId, UserId};
use insightpulse_postgres::uow::Cluster;
use insightpulse_testing::fixtures::member_with_role;
use sqlx::PgPool;
use uuid::Uuid;

/// Who may do something to a table's rows of the acting tenant.
#[derive(Clone, Copy, Debug)]
enum Need {
    /// Any active member.
    Member,
    /// Holders of the permission.
    Perm(&'static str),
    /// Holders of the permission see every row; others only their own
    /// (`user_id` = the caller).
    OwnOr(&'static str),
    /// Nobody at runtime (the system, as `service_role`, or no one at all).
    Nobody,
}

/// What each kind of statement needs on one table, and how the attack
/// changes a row (`SET …`, touching no value) and which rows it aims at.
struct Rule {
    table: &'static str,
    read: Need,
    insert: Need,
    update: Need,
    delete: Need,
    set: &'static str,
    /// Extra condition picking the victim rows (`{member}`: the plain
    /// member of `populate`, never an owner).
    victims: &'static str,
}

#[rustfmt::skip]
const RULES: &[Rule] = &[
    Rule { table: "api_keys", read: Need::Perm("api_key.manage"), insert: Need::Perm("api_key.manage"), update: Need::Perm("api_key.manage"), delete: Need::Nobody, set: "name = name", victims: "" },
    Rule { table: "audit_chain_heads", read: Need::Perm("audit.read"), insert: Need::Nobody, update: Need::Nobody, delete: Need::Nobody, set: "seq = seq", victims: "" },
    // A member appends entries naming itself (the chain trigger checks it).
    Rule { table: "audit_logs", read: Need::Perm("audit.read"), insert: Need::Member, update: Need::Nobody, delete: Need::Nobody, set: "action = action", victims: "" },
    Rule { table: "consents", read: Need::OwnOr("consent.manage"), insert: Need::Member, update: Need::Nobody, delete: Need::Nobody, set: "purpose = purpose", victims: "" },
    Rule { table: "data_policies", read: Need::Perm("data_policy.manage"), insert: Need::Perm("data_policy.manage"), update: Need::Perm("data_policy.manage"), delete: Need::Perm("data_policy.manage"), set: "action = action", victims: "" },
    Rule { table: "environments", read: Need::Member, insert: Need::Perm("environment.manage"), update: Need::Nobody, delete: Need::Perm("environment.manage"), set: "kind = kind", victims: "" },
    Rule { table: "invitations", read: Need::Perm("member.invite"), insert: Need::Perm("member.invite"), update: Need::Perm("member.invite"), delete: Need::Perm("member.invite"), set: "revoked_at = revoked_at", victims: "" },
    Rule { table: "jobs", read: Need::Perm("job.read"), insert: Need::Nobody, update: Need::Nobody, delete: Need::Nobody, set: "priority = priority", victims: "" },
    Rule { table: "org_memberships", read: Need::Member, insert: Need::Nobody, update: Need::Perm("member.manage"), delete: Need::Perm("member.manage"), set: "status = status", victims: "AND user_id = {member}" },
    Rule { table: "outbox_cursors", read: Need::Perm("event.read"), insert: Need::Perm("event.read"), update: Need::Perm("event.read"), delete: Need::Nobody, set: "seq = seq", victims: "" },
    // Any member publishes, but only the event's own columns: a whole row
    // (with a position of its choosing) is refused to everyone.
    Rule { table: "outbox_events", read: Need::Perm("event.read"), insert: Need::Nobody, update: Need::Nobody, delete: Need::Nobody, set: "seq = seq", victims: "" },
    Rule { table: "projects", read: Need::Member, insert: Need::Perm("project.create"), update: Need::Perm("project.update"), delete: Need::Perm("project.delete"), set: "name = name", victims: "" },
    Rule { table: "role_permissions", read: Need::Member, insert: Need::Perm("role.manage"), update: Need::Nobody, delete: Need::Perm("role.manage"), set: "permission_id = permission_id", victims: "" },
    Rule { table: "roles", read: Need::Member, insert: Need::Perm("role.manage"), update: Need::Perm("role.manage"), delete: Need::Perm("role.manage"), set: "name = name", victims: "" },
    Rule { table: "sso_providers", read: Need::Perm("sso.manage"), insert: Need::Perm("sso.manage"), update: Need::Perm("sso.manage"), delete: Need::Perm("sso.manage"), set: "enabled = enabled", victims: "" },
    Rule { table: "team_members", read: Need::Member, insert: Need::Perm("team.manage"), update: Need::Perm("team.manage"), delete: Need::Perm("team.manage"), set: "user_id = user_id", victims: "" },
    Rule { table: "teams", read: Need::Member, insert: Need::Perm("team.manage"), update: Need::Perm("team.manage"), delete: Need::Perm("team.manage"), set: "name = name", victims: "" },
    Rule { table: "token_lookups", read: Need::Nobody, insert: Need::Member, update: Need::Nobody, delete: Need::Nobody, set: "prefix = prefix", victims: "" },
    Rule { table: "user_identities", read: Need::OwnOr("sso.manage"), insert: Need::Perm("sso.manage"), update: Need::Perm("sso.manage"), delete: Need::Perm("sso.manage"), set: "subject = subject", victims: "" },
    Rule { table: "user_roles", read: Need::Member, insert: Need::Perm("role.assign"), update: Need::Nobody, delete: Need::Perm("role.assign"), set: "role_id = role_id", victims: "" },
];

/// One attacker: a member of A with nothing, or with one built-in role
/// tenant-wide.
struct Actor {
    label: String,
    id: UserId,
    ctx: Context,
    holds: Vec<String>,
}

impl Actor {
    fn may(&self, need: Need) -> bool {
        match need {
            Need::Member => true,
            Need::Perm(code) | Need::OwnOr(code) => self.holds.iter().any(|h| h == code),
            Need::Nobody => false,
        }
    }
}

async fn actors(repos: &Repos, owner: &Context) -> Vec<Actor> {
    let mut out = vec![];
    for role in [
        None,
        Some("Viewer"),
        Some("Developer"),
        Some("Billing Admin"),
        Some("Admin"),
    ] {
        let label = role.unwrap_or("no grant").to_owned();
        let email = format!("{}@alpha.io", label.replace(' ', "-").to_lowercase());
        let (user, ctx) = member_with_role(repos, owner, &email, role).await;
        // What the SDK says the actor holds: RLS must agree with it.
        let mut holds = vec![];
        for (code, _) in insightpulse_core::tenancy::catalog::PERMISSIONS {
            if repos.rbac.has_permission(&ctx, *code, None).await.unwrap() {
                holds.push(code.as_str().to_owned());
            }
        }
        out.push(Actor {
            label,
            id: user.id,
            ctx,
            holds,
        });
    }
    assert!(out[0].holds.is_empty() && out[4].holds.len() > 20);
    out
}

/// A copy of one of the table's rows in A with fresh keys and the actor as
/// its user, as JSON for `jsonb_populate_record`.
async fn forged_row(pool: &PgPool, table: &str, a: TenantId, actor: UserId) -> serde_json::Value {
    let row: serde_json::Value = sqlx::query_scalar(&format!(
        "SELECT to_jsonb(x) FROM insightpulse.{table} x WHERE tenant_id = $1 LIMIT 1"
    ))
    .bind(a.0)
    .fetch_optional(pool)
    .await
    .unwrap()
    .unwrap_or_else(|| panic!("{table}: add a row of this table to `populate`"));
    let mut forged = row;
    let obj = forged.as_object_mut().unwrap();
    for key in [
        "token_prefix",
        "prefix",
        "slug",
        "name",
        "subject",
        "purpose",
    ] {
        if obj.contains_key(key) {
            obj.insert(
                key.into(),
                serde_json::json!(Uuid::new_v4().simple().to_string()[..12]),
            );
        }
    }
    if obj.contains_key("id") {
        obj.insert("id".into(), serde_json::json!(Uuid::new_v4()));
    }
    if obj.contains_key("user_id") {
        obj.insert("user_id".into(), serde_json::json!(actor));
    }
    forged
}

#[sqlx::test(migrations = false)]
async fn members_do_in_raw_sql_exactly_what_their_grants_allow(pool: PgPool) {
    grants_hold_in_raw_sql(&pool, Cluster::Postgres).await;
}

/// The same through a Citus coordinator.
#[tokio::test]
async fn members_do_in_raw_sql_exactly_what_their_grants_allow_on_citus() {
    if let Some(pool) = crate::citus::database().await {
        grants_hold_in_raw_sql(&pool, Cluster::Citus).await;
    }
}

async fn grants_hold_in_raw_sql(pool: &PgPool, cluster: Cluster) {
    let repos = crate::harness(pool.clone()).await.repos;
    let (a, owner) = populate(&repos, "alpha").await;
    let owner_ctx = Context::user(owner).in_tenant(a);
    let member: Uuid =
        sqlx::query_scalar("SELECT id FROM insightpulse.users WHERE email = 'member@alpha.io'")
            .fetch_one(pool)
            .await
            .unwrap();
    let actors = actors(&repos, &owner_ctx).await;

    let tables = tenant_tables(pool).await;
    let mut wrong = vec![];
    for (table, ..) in &tables {
        let rule = RULES
            .iter()
            .find(|r| r.table == table)
            .unwrap_or_else(|| panic!("{table}: add a `Rule` saying who may do what"));
        let total: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM insightpulse.{table} WHERE tenant_id = $1"
        ))
        .bind(a.0)
        .fetch_one(pool)
        .await
        .unwrap();
        assert!(total > 0, "{table}: add a row of this table to `populate`");
        let victims = rule
            .victims
            .replace("{member}", &format!("'{member}'::uuid"));
        let in_a = format!("tenant_id = '{}'::uuid {victims}", a.0);
        for actor in &actors {
            let who = &actor.label;
            // Read: every row, none, or only the actor's own.
            let own: i64 = sqlx::query_scalar(&format!(
                "SELECT count(*) FROM insightpulse.{table} x WHERE tenant_id = $1 AND to_jsonb(x) ->> 'user_id' = $2::text"
            ))
            .bind(a.0)
            .bind(actor.id.0)
            .fetch_one(pool)
            .await
            .unwrap();
            let expected = match rule.read {
                need if actor.may(need) => total,
                Need::OwnOr(_) => own,
                _ => 0,
            };
            let mut tx = crate::acting_as_on(pool, cluster, &actor.ctx).await;
            let seen: i64 = sqlx::query_scalar(&format!(
                "SELECT count(*) FROM {table} WHERE tenant_id = $1"
            ))
            .bind(a.0)
            .fetch_one(&mut *tx)
            .await
            .unwrap_or(-1);
            tx.rollback().await.unwrap();
            if seen != expected {
                wrong.push(format!(
                    "{table}: {who} read {seen} rows, expected {expected}"
                ));
            }

            let statements = [
                (
                    "update",
                    rule.update,
                    format!("UPDATE {table} SET {} WHERE {in_a}", rule.set),
                ),
                (
                    "delete",
                    rule.delete,
                    format!("DELETE FROM {table} WHERE {in_a}"),
                ),
            ];
            for (what, need, sql) in statements {
                let outcome = attack_on(pool, cluster, &actor.ctx, &sql, None).await;
                judge(&mut wrong, table, who, what, actor.may(need), outcome);
            }
            let forged = forged_row(pool, table, a, actor.id).await;
            let sql = insert_row_sql(pool, table).await;
            let outcome = attack_on(pool, cluster, &actor.ctx, &sql, Some(&forged)).await;
            judge(
                &mut wrong,
                table,
                who,
                "insert",
                actor.may(rule.insert),
                outcome,
            );
        }
    }
    assert!(
        wrong.is_empty(),
        "RLS inside the tenant disagrees with the grants:\n{}",
        wrong.join("\n")
    );
}

/// An allowed statement must get past RLS (touch rows, or fail on
/// something else than RLS — a unique key, a trigger's own rule); a
/// refused one must touch nothing or be refused with `42501`.
fn judge(
    wrong: &mut Vec<String>,
    table: &str,
    who: &str,
    what: &str,
    allowed: bool,
    outcome: Result<u64, String>,
) {
    let ok = match (&outcome, allowed) {
        (Ok(n), true) => *n > 0,
        (Err(code), true) => code != "42501",
        (Ok(n), false) => *n == 0,
        (Err(code), false) => code == "42501",
    };
    if !ok {
        let verdict = if allowed {
            "should be allowed"
        } else {
            "should be refused"
        };
        wrong.push(format!("{table}: {who} {what} {verdict}, got {outcome:?}"));
    }
}
