//! Database errors become domain errors here, and only here, keyed on
//! SQLSTATE and the violated constraint's name — never on PostgreSQL's
//! detail text, which holds the offending values (nor on its message,
//! except for the constraint's name where Citus leaves only that, see
//! [`relayed_constraint`]):
//!
//! | SQLSTATE | meaning | becomes |
//! |---|---|---|
//! | 23505 | unique violation | `Conflict { entity, field }` ([`Constraints::unique`]) |
//! | 23503 | foreign key violation | `NotFound { entity }` of the referenced row ([`Constraints::references`]) |
//! | 23514 | check violation | `InvalidState` for a state rule ([`Constraints::states`]), else `Validation` |
//! | 42501 | RLS / privilege refusal | `PermissionDenied` (row security) |
//! | 22xxx | bad data | `Validation` |
//! | no row | | `NotFound` (see [`not_found`]) |
//!
//! Each module declares what its own constraints mean, beside its SQL (a
//! [`Constraints`]); [`MODULES`] lists the modules. A constraint missing
//! from the tables is a bug of the SDK (every rule a caller can hit has its
//! entry): it surfaces as `Backend`.

use insightpulse_core::{Entity, Error, Requirement, StateRule};

/// What one module's constraints mean to a caller.
pub(crate) struct Constraints {
    /// The entity and field each unique constraint (or primary key)
    /// guards; the in-memory backend reports the same pairs.
    pub unique: &'static [(&'static str, Entity, &'static str)],
    /// The entity a foreign key points at, by the referencing columns its
    /// (Postgres-generated) name ends with, e.g.
    /// `team_members_tenant_id_user_id_fkey` → `tenant_id_user_id` →
    /// member. The longest match wins, so no table's order matters.
    pub references: &'static [(&'static str, Entity)],
    /// The check constraints (or constraint triggers) that guard a rule of
    /// a row's state.
    pub states: &'static [(&'static str, Entity, StateRule)],
}

/// Every module's constraints, one line per module.
const MODULES: &[&Constraints] = &[
    &crate::tenancy::CONSTRAINTS,
    &crate::projects::CONSTRAINTS,
    &crate::idempotency::CONSTRAINTS,
];

/// The entity and field a unique constraint guards.
fn unique(constraint: &str) -> Option<(Entity, &'static str)> {
    MODULES
        .iter()
        .flat_map(|m| m.unique)
        .find(|(name, _, _)| *name == constraint)
        .map(|&(_, entity, field)| (entity, field))
}

/// The entity a foreign key points at (see [`Constraints::references`]).
fn referenced_entity(constraint: &str) -> Option<Entity> {
    let columns = constraint.strip_suffix("_fkey")?;
    MODULES
        .iter()
        .flat_map(|m| m.references)
        .filter(|(column, _)| {
            columns
                .strip_suffix(column)
                .is_some_and(|rest| rest.ends_with('_'))
        })
        .max_by_key(|(column, _)| column.len())
        .map(|&(_, entity)| entity)
}

/// The state rule a check constraint guards.
fn state_rule(constraint: &str) -> Option<(Entity, StateRule)> {
    MODULES
        .iter()
        .flat_map(|m| m.states)
        .find(|(name, _, _)| *name == constraint)
        .map(|&(_, entity, rule)| (entity, rule))
}

/// A constraint's name as the SDK declared it: on Citus, the constraint
/// of a shard carries the shard's id (`teams_tenant_slug_key_102074`). No
/// name the SDK declares ends in `_<digits>` (tested).
fn declared(constraint: &str) -> &str {
    match constraint.rsplit_once('_') {
        Some((name, shard)) if !shard.is_empty() && shard.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => constraint,
    }
}

/// The constraint a message names (`… violates unique constraint
/// "teams_tenant_slug_key_102074"`): a Citus coordinator relays a worker's
/// error without the constraint field. Only the quoted name is read (the
/// values are in the detail); a server whose `lc_messages` is not English
/// names none, and the error stays `Backend`.
fn relayed_constraint(message: &str) -> Option<&str> {
    let (_, rest) = message.split_once("constraint \"")?;
    rest.split_once('"').map(|(name, _)| name)
}

/// Maps any sqlx error to the SDK's error.
pub(crate) fn db(e: sqlx::Error) -> Error {
    let sqlx::Error::Database(dbe) = &e else {
        return Error::backend(e);
    };
    let code = dbe.code().unwrap_or_default().into_owned();
    let constraint = declared(
        dbe.constraint()
            .or_else(|| relayed_constraint(dbe.message()))
            .unwrap_or_default(),
    );
    match code.as_str() {
        "23505" => match unique(constraint) {
            Some((entity, field)) => Error::conflict(entity, field),
            None => Error::backend(e),
        },
        "23503" => match referenced_entity(constraint) {
            Some(entity) => Error::not_found(entity),
            None => Error::backend(e),
        },
        "23514" | "23502" => match state_rule(constraint) {
            Some((entity, rule)) if code == "23514" => Error::invalid_state(entity, rule),
            _ => Error::validation("input", "violates a rule of the database"),
        },
        "42501" => Error::denied(Requirement::RowSecurity),
        c if c.starts_with("22") => Error::validation("input", "not a value the database accepts"),
        _ => Error::backend(e),
    }
}

/// `NotFound { entity }` for a missing row, any other error mapped by [`db`].
pub(crate) fn not_found(entity: Entity) -> impl Fn(sqlx::Error) -> Error {
    move |e| match e {
        sqlx::Error::RowNotFound => Error::not_found(entity),
        e => db(e),
    }
}

/// Decoding a stored value into a validated type failed: the database holds
/// something the SDK never writes.
pub(crate) fn corrupt(e: impl std::fmt::Display) -> Error {
    Error::backend(std::io::Error::other(format!(
        "stored value failed validation: {e}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::PgPool;

    /// What `sql` fails with, mapped.
    async fn mapped(pool: &PgPool, sql: &str) -> Error {
        db(sqlx::raw_sql(sql).execute(pool).await.unwrap_err())
    }

    /// Each SQLSTATE class becomes its variant, keyed on the constraint's
    /// name; what the tables do not name is `Backend`.
    #[sqlx::test(migrations = false)]
    async fn sqlstates_and_constraints_become_variants(pool: PgPool) {
        sqlx::raw_sql(
            "CREATE TABLE p (id int PRIMARY KEY);
             CREATE TABLE c (x int NOT NULL CONSTRAINT c_x_check CHECK (x > 0),
                             p int CONSTRAINT c_project_id_fkey REFERENCES p (id),
                             q int CONSTRAINT c_q_fkey REFERENCES p (id),
                             CONSTRAINT tenants_slug_key UNIQUE (x),
                             CONSTRAINT c_y_key UNIQUE (q));
             INSERT INTO p VALUES (1);
             INSERT INTO c VALUES (1, NULL, 1);",
        )
        .execute(&pool)
        .await
        .unwrap();
        let raise = |code: &str, constraint: &str| {
            format!(
                "DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '{code}', CONSTRAINT = '{constraint}'; END $$"
            )
        };
        let cases: Vec<(String, &str)> = vec![
            (
                "INSERT INTO c VALUES (1)".into(),
                "a tenant with this slug already exists",
            ),
            ("INSERT INTO c VALUES (2, 9)".into(), "project not found"),
            (
                "INSERT INTO c VALUES (0)".into(),
                "invalid input: violates a rule of the database",
            ),
            (
                "INSERT INTO c VALUES (NULL)".into(),
                "invalid input: violates a rule of the database",
            ),
            (
                "SELECT 1 / 0".into(),
                "invalid input: not a value the database accepts",
            ),
            (
                raise("check_violation", "tenant_has_active_owner"),
                "member: a tenant must keep at least one active owner",
            ),
            (
                raise("insufficient_privilege", ""),
                "permission denied: requires a row the database's row-level security allows",
            ),
        ];
        for (sql, text) in cases {
            assert_eq!(mapped(&pool, &sql).await.to_string(), text, "{sql}");
        }
        // Constraints and failures the tables do not name are the SDK's bugs.
        for sql in [
            "INSERT INTO c VALUES (3, NULL, 1)",
            "INSERT INTO c VALUES (4, NULL, 9)",
            "SELECT * FROM no_such_table",
        ] {
            assert!(mapped(&pool, sql).await.is_backend(), "{sql}");
        }
        let missing = sqlx::query("SELECT 1 FROM p WHERE id = 2")
            .fetch_one(&pool)
            .await
            .unwrap_err();
        assert!(matches!(
            not_found(Entity::Team)(missing),
            Error::NotFound {
                entity: Entity::Team
            }
        ));
    }

    /// A name in two modules' tables would make its meaning depend on
    /// which module is asked first.
    #[test]
    fn no_constraint_is_declared_twice() {
        let mut seen = std::collections::HashSet::new();
        let names = MODULES.iter().flat_map(|m| {
            let unique = m.unique.iter().map(|(name, _, _)| *name);
            let references = m.references.iter().map(|(column, _)| *column);
            let states = m.states.iter().map(|(name, _, _)| *name);
            unique.chain(references).chain(states)
        });
        for name in names {
            assert!(seen.insert(name), "{name} is declared twice");
            // Citus's shard suffix is stripped: the name must not look like one.
            assert_eq!(declared(name), name, "{name} ends like a shard's id");
        }
        assert!(seen.len() > 20, "every module's table is consulted");
    }

    /// On Citus a shard's constraint carries the shard's id.
    #[test]
    fn shard_suffixes_are_stripped() {
        assert_eq!(
            declared("teams_tenant_slug_key_102074"),
            "teams_tenant_slug_key"
        );
        assert_eq!(declared("users_email_key"), "users_email_key");
        assert_eq!(declared("tenants_slug_key_"), "tenants_slug_key_");
        assert_eq!(declared("x_1a"), "x_1a");
        assert_eq!(declared(""), "");
        assert_eq!(
            referenced_entity(declared("org_memberships_user_id_fkey_102065")),
            Some(Entity::User)
        );
    }

    /// What a Citus coordinator relays names the constraint in its message.
    #[test]
    fn relayed_messages_name_their_constraint() {
        for (message, name) in [
            (
                r#"duplicate key value violates unique constraint "users_email_key_102104""#,
                Some("users_email_key_102104"),
            ),
            (
                r#"insert or update on table "org_memberships_102067" violates foreign key constraint "org_memberships_user_id_fkey_102067""#,
                Some("org_memberships_user_id_fkey_102067"),
            ),
            (
                r#"new row for relation "teams_102070" violates check constraint "teams_name_check_102070""#,
                Some("teams_name_check_102070"),
            ),
            ("permission denied for table teams", None),
            (r#"violates unique constraint "unterminated"#, None),
        ] {
            assert_eq!(relayed_constraint(message), name, "{message}");
        }
    }

    /// Every foreign key of the schema that maps to an entity maps to the
    /// one of the table it references; those that map to none name who did
    /// something (`…_by`), a column no caller ever sets to a missing row.
    #[sqlx::test(migrations = false)]
    async fn foreign_keys_name_the_entity_they_reference(pool: PgPool) {
        crate::migrate::run(&pool).await.unwrap();
        let keys: Vec<(String, String)> = sqlx::query_as(
            "SELECT conname::text, confrelid::regclass::text FROM pg_constraint
              WHERE contype = 'f' AND connamespace = 'insightpulse'::regnamespace
              ORDER BY conname",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let entity_of = |table: &str| match table.trim_start_matches("insightpulse.") {
            "tenants" => Entity::Tenant,
            "users" => Entity::User,
            "org_memberships" => Entity::Member,
            "teams" => Entity::Team,
            "roles" => Entity::Role,
            "permissions" => Entity::Permission,
            "sso_providers" => Entity::SsoProvider,
            "projects" => Entity::Project,
            "environments" => Entity::Environment,
            other => panic!("a foreign key to {other}: give it an entity here"),
        };
        let mut mapped = 0;
        for (name, table) in &keys {
            match referenced_entity(name) {
                Some(entity) => {
                    assert_eq!(entity, entity_of(table), "{name} references {table}");
                    mapped += 1;
                }
                None => assert!(name.ends_with("_by_fkey"), "{name} maps to no entity"),
            }
        }
        assert!(
            mapped > 20,
            "{mapped} of {} foreign keys mapped",
            keys.len()
        );
    }
}
