//! Small row helpers every module's SQL shares.

use crate::error::db;
use crate::uow::Tx;
use insightpulse_core::{Entity, Error, Result, TenantId};

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
