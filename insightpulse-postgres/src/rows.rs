//! Small row helpers every module's SQL shares, and the one way the crate
//! maps rows: [`row!`].
//!
//! Rule: a table's field list is written once. [`row!`] turns it into the
//! `#[derive(sqlx::FromRow)]` struct and the select list `COLUMNS` the
//! statements use (with [`sql!`] to join them at compile time); the
//! conversion into the domain type (`TryFrom<Row>`, parsing each stored
//! value with its core type's parser, see [`parse`]) is written beside it.

use crate::error::db;
use crate::uow::Tx;
use insightpulse_core::{Entity, Error, Result, TenantId};

/// Declares a row struct from one field list: the
/// `#[derive(sqlx::FromRow)]` struct itself and its associated
/// `const COLUMNS: &str`, the field names joined with `", "` in order.
///
/// A column the database must compute (a cast, a function, a subquery) is
/// given its SQL with `#[sql = "…"]` before the field: `COLUMNS` then holds
/// `… AS field`. Expressions are written as the statements' `FROM` names
/// the table (e.g. `r.scope::text` under `FROM roles r`); plain columns are
/// unqualified, so a statement that joins another table with the same
/// column names reads its own rows through a subquery instead.
///
/// A write that returns a row whose `COLUMNS` compute a field from a
/// stored column of the same name (`kind::text AS kind`) returns the stored
/// `FIELDS` from a CTE and selects `COLUMNS` from that: `WITH r AS (INSERT
/// … RETURNING FIELDS) SELECT COLUMNS FROM r`, since Citus accepts no
/// function in `RETURNING` unless it is immutable (an enum's text is not).
///
/// A statement that reads a row plus a few more columns flattens the row
/// into a local struct (`#[sqlx(flatten)] row: Row, extra: T`) and
/// selects `COLUMNS` and the extras. A statement that reads a value or two
/// that are no domain row (a flag, a count, a state pair) decodes them as a
/// scalar or a tuple.
///
/// ```ignore
/// row! {
///     struct EnvRow {
///         tenant_id: Uuid,
///         id: Uuid,
///         #[sql = "kind::text"]
///         kind: String,
///     }
/// }
/// // EnvRow::COLUMNS == "tenant_id, id, kind::text AS kind"
/// ```
macro_rules! row {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[sql = $sql:literal])? $fvis:vis $field:ident : $ty:ty ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(sqlx::FromRow)]
        $vis struct $name {
            $( $fvis $field: $ty, )+
        }

        impl $name {
            /// The select list of this row: every field, in order.
            pub(crate) const COLUMNS: &'static str =
                $crate::rows::comma_separated(concat!($( $crate::rows::row!(@column $field $($sql)?), ", ", )+));
            /// The field names alone: the stored columns a write returns
            /// when `COLUMNS` computes some of them (see [`row!`]).
            #[allow(dead_code)]
            pub(crate) const FIELDS: &'static str =
                $crate::rows::comma_separated(concat!($( stringify!($field), ", ", )+));
        }
    };
    (@column $field:ident) => { stringify!($field) };
    (@column $field:ident $sql:literal) => { concat!($sql, " AS ", stringify!($field)) };
}
pub(crate) use row;

/// Joins string constants (literals, a row's `COLUMNS`) into one
/// `&'static str` at compile time: a statement built from a row's columns
/// costs nothing at run time and can be a `const` (a [`crate::uow::Prepared`]).
pub(crate) use const_format::concatcp as sql;

/// `s` without the trailing `", "` that [`row!`] leaves.
pub(crate) const fn comma_separated(s: &'static str) -> &'static str {
    let (head, _) = s.as_bytes().split_at(s.len() - 2);
    match std::str::from_utf8(head) {
        Ok(s) => s,
        Err(_) => panic!("a column list is ASCII"),
    }
}

/// Deletes the row `(tenant, id)` of `table`, or `NotFound { entity }`.
pub(crate) async fn delete_one(
    tx: &mut Tx,
    table: &'static str,
    tenant: TenantId,
    id: uuid::Uuid,
    entity: Entity,
) -> Result<()> {
    let deleted = tx
        .query(&format!(
            "DELETE FROM {table} WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant.0)
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    if deleted.rows_affected() == 0 {
        return Err(Error::not_found(entity));
    }
    Ok(())
}

/// The rows `sql` selects with the tenant bound as `$1`.
pub(crate) async fn tenant_rows<R>(tx: &mut Tx, sql: &str, tenant: TenantId) -> Result<Vec<R>>
where
    R: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    tx.query_as(sql)
        .bind(tenant.0)
        .fetch_all(&mut **tx)
        .await
        .map_err(db)
}

/// Parses a stored value with a core value type's parser.
pub(crate) fn parse<T>(s: &str, f: impl Fn(&str) -> Result<T>) -> Result<T> {
    f(s).map_err(crate::error::corrupt)
}

#[cfg(test)]
mod tests {
    use super::sql;

    row! {
        #[allow(dead_code)]
        struct Sample {
            tenant_id: uuid::Uuid,
            #[sql = "kind::text"]
            kind: String,
            pub(crate) n: i64,
        }
    }

    const SELECT: &str = sql!("SELECT ", Sample::COLUMNS, " FROM t WHERE n = $1");

    #[test]
    fn one_field_list_gives_the_select_list() {
        assert_eq!(Sample::COLUMNS, "tenant_id, kind::text AS kind, n");
        assert_eq!(
            SELECT,
            "SELECT tenant_id, kind::text AS kind, n FROM t WHERE n = $1"
        );
    }
}
