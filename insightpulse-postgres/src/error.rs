//! Database errors become domain errors here, and only here, keyed on
//! SQLSTATE and the violated constraint's name — never on PostgreSQL's
//! message or detail text, which holds the offending values:
//!
//! | SQLSTATE | meaning | becomes |
//! |---|---|---|
//! | 23505 | unique violation | `Conflict { entity, field }` from [`UNIQUE`] |
//! | 23503 | foreign key violation | `NotFound { entity }` of the referenced row |
//! | 23514 | check violation | `Validation`, or `InvalidState` for `tenant_has_active_owner` |
//! | 42501 | RLS / privilege refusal | `PermissionDenied` (row security) |
//! | 22xxx | bad data | `Validation` |
//! | no row | | `NotFound` (see [`not_found`]) |
//!
//! A constraint missing from the tables is a bug of the SDK (every unique
//! rule a caller can hit has its entry): it surfaces as `Backend`.

use insightpulse_core::{Entity, Error, Requirement, StateRule};

/// The entity and field each unique constraint (or primary key) guards;
/// the in-memory backend reports the same pairs.
const UNIQUE: &[(&str, Entity, &str)] = &[
    ("tenants_slug_key", Entity::Tenant, "slug"),
    ("users_email_key", Entity::User, "email"),
    ("org_memberships_pkey", Entity::Member, "user"),
    ("teams_tenant_slug_key", Entity::Team, "slug"),
    ("team_members_pkey", Entity::TeamMember, "user"),
    ("roles_tenant_name_scope_key", Entity::Role, "name"),
    ("user_roles_grant_key", Entity::RoleGrant, "role"),
    ("sso_providers_tenant_name_key", Entity::SsoProvider, "name"),
    (
        "user_identities_provider_subject_key",
        Entity::Identity,
        "subject",
    ),
    ("projects_tenant_slug_key", Entity::Project, "slug"),
    ("environments_project_kind_key", Entity::Environment, "kind"),
    ("idempotency_keys_pkey", Entity::IdempotencyKey, "key"),
];

/// The entity a foreign key points at, read from its (Postgres-generated)
/// name, e.g. `team_members_tenant_id_user_id_fkey` → member.
fn referenced_entity(constraint: &str) -> Option<Entity> {
    const BY_COLUMN: &[(&str, Entity)] = &[
        ("environment_id", Entity::Environment),
        ("project_id", Entity::Project),
        ("team_id", Entity::Team),
        ("provider_id", Entity::SsoProvider),
        ("role_id", Entity::Role),
        ("permission_id", Entity::Permission),
        ("tenant_id_user_id", Entity::Member),
        ("user_id", Entity::User),
        ("tenant_id", Entity::Tenant),
    ];
    BY_COLUMN
        .iter()
        .find(|(column, _)| constraint.contains(column))
        .map(|(_, entity)| *entity)
}

/// Maps any sqlx error to the SDK's error.
pub(crate) fn db(e: sqlx::Error) -> Error {
    let sqlx::Error::Database(dbe) = &e else {
        return Error::backend(e);
    };
    let code = dbe.code().unwrap_or_default().into_owned();
    let constraint = dbe.constraint().unwrap_or_default();
    match code.as_str() {
        "23505" => match UNIQUE.iter().find(|(name, _, _)| *name == constraint) {
            Some((_, entity, field)) => Error::conflict(*entity, field),
            None => Error::backend(e),
        },
        "23503" => match referenced_entity(constraint) {
            Some(entity) => Error::not_found(entity),
            None => Error::backend(e),
        },
        "23514" if constraint == "tenant_has_active_owner" => {
            Error::invalid_state(Entity::Member, StateRule::LastActiveOwner)
        }
        "23514" | "23502" => Error::validation("input", "violates a rule of the database"),
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
}
