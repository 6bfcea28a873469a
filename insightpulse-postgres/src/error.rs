//! Database errors become domain errors here, and only here, keyed on
//! SQLSTATE and the violated constraint's name:
//!
//! | SQLSTATE | meaning | becomes |
//! |---|---|---|
//! | 23505 | unique violation | `Conflict { entity, key }` |
//! | 23503 | foreign key violation | `NotFound { entity }` |
//! | 23514 | check violation | `Validation`, or `InvalidState` for `tenant_has_active_owner` |
//! | 42501 | RLS / privilege refusal | `PermissionDenied` |
//! | 22xxx | bad data | `Validation` |
//! | no row | | `NotFound` (see [`not_found`]) |

use insightpulse_core::Error;

/// Which entity a constraint belongs to, for `Conflict` and `NotFound`.
fn entity_of(constraint: &str) -> &'static str {
    const BY_PREFIX: &[(&str, &str)] = &[
        ("tenants", "tenant"),
        ("users", "user"),
        ("org_memberships", "member"),
        ("invitations", "invitation"),
        ("team_members", "team member"),
        ("teams", "team"),
        ("role_permissions", "permission"),
        ("roles", "role"),
        ("user_roles", "role grant"),
        ("sso_providers", "sso provider"),
        ("user_identities", "identity"),
        ("api_keys", "api key"),
        ("projects", "project"),
        ("environments", "environment"),
        ("permissions", "permission"),
    ];
    BY_PREFIX
        .iter()
        .find(|(table, _)| constraint.starts_with(table))
        .map(|(_, entity)| *entity)
        .unwrap_or("row")
}

/// The entity a foreign key points at, read from its (Postgres-generated)
/// name, e.g. `team_members_tenant_id_user_id_fkey` → `member`.
fn referenced_entity(constraint: &str) -> &'static str {
    const BY_COLUMN: &[(&str, &str)] = &[
        ("environment_id", "environment"),
        ("project_id", "project"),
        ("team_id", "team"),
        ("provider_id", "sso provider"),
        ("role_id", "role"),
        ("permission_id", "permission"),
        ("tenant_id_user_id", "member"),
        ("user_id", "user"),
        ("tenant_id", "tenant"),
    ];
    BY_COLUMN
        .iter()
        .find(|(column, _)| constraint.contains(column))
        .map(|(_, entity)| *entity)
        .unwrap_or("row")
}

/// Maps any sqlx error to the SDK's error.
pub(crate) fn db(e: sqlx::Error) -> Error {
    let sqlx::Error::Database(dbe) = &e else {
        return Error::backend(e);
    };
    let code = dbe.code().unwrap_or_default().into_owned();
    let constraint = dbe.constraint().unwrap_or_default().to_owned();
    let detail = dbe
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .and_then(|pg| pg.detail().map(str::to_owned))
        .unwrap_or_default();
    match code.as_str() {
        // With RLS on the table, Postgres withholds the key values from
        // DETAIL (they could belong to another tenant): name the constraint.
        "23505" if detail.is_empty() => Error::conflict(entity_of(&constraint), constraint),
        "23505" => Error::conflict(entity_of(&constraint), detail),
        "23503" => Error::not_found(referenced_entity(&constraint)),
        "23514" if constraint == "tenant_has_active_owner" => {
            Error::invalid_state("member", "a tenant must keep at least one active owner")
        }
        "23514" | "23502" => Error::validation("input", format!("violates {constraint}")),
        "42501" => Error::denied(dbe.message().to_owned()),
        c if c.starts_with("22") => Error::validation("input", dbe.message().to_owned()),
        _ => Error::backend(e),
    }
}

/// `NotFound { entity }` for a missing row, any other error mapped by [`db`].
pub(crate) fn not_found(entity: &'static str) -> impl Fn(sqlx::Error) -> Error {
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
