//! Idempotency keys on PostgreSQL (rule: `insightpulse_core::idempotency`;
//! table: `migrations/0006_idempotency.sql`).
//!
//! The key is claimed by the first statement of the create's own
//! transaction, an `INSERT … ON CONFLICT` on `(scope, key)`: a concurrent
//! request with the same key blocks on that row until the first one
//! commits (then replays it) or rolls back (then claims the key itself), so
//! one key never makes two rows.

use crate::error::{corrupt, db, Constraints};
use crate::rows::{parse, row, sql};
use crate::uow::Tx;
use chrono::{DateTime, Utc};
use insightpulse_core::idempotency::{self, Call, StoredKey, WINDOW};
use insightpulse_core::{Context, Entity, Error, RequestMeta, Result};
use uuid::Uuid;

/// What this module's constraints mean to a caller (see [`crate::error`]).
pub(crate) const CONSTRAINTS: Constraints = Constraints {
    unique: &[("idempotency_keys_pkey", Entity::IdempotencyKey, "key")],
    references: &[],
    states: &[],
};

row! {
    /// A claimed key, as an earlier call left it.
    struct KeyRow {
        operation: String,
        fingerprint: Vec<u8>,
        resource_id: Uuid,
        created_at: DateTime<Utc>,
    }
}

impl TryFrom<KeyRow> for StoredKey {
    type Error = Error;
    fn try_from(r: KeyRow) -> Result<Self> {
        Ok(StoredKey {
            operation: parse(&r.operation, str::parse)?,
            fingerprint: r
                .fingerprint
                .try_into()
                .map_err(|_| corrupt("a fingerprint that is not 32 bytes"))?,
            resource: r.resource_id,
            created_at: r.created_at,
        })
    }
}

/// Claims the key of `ctx`'s request, among its principal's keys, for
/// `call`, which will make `resource`. `Ok(None)`: go ahead (no key, a new
/// one, or an expired one reused); `Ok(Some(id))`: replay the row `id` an
/// earlier call made; a `Conflict` on the key when it was used for another
/// call.
pub(crate) async fn claim(
    tx: &mut Tx,
    ctx: &Context,
    call: &Call,
    resource: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<Uuid>> {
    claim_in(
        tx,
        &idempotency::scope(ctx),
        ctx.request(),
        call,
        resource,
        now,
    )
    .await
}

/// [`claim`] among the keys of `scope` (a sign-up's, which has no
/// principal yet).
pub(crate) async fn claim_in(
    tx: &mut Tx,
    scope: &str,
    request: &RequestMeta,
    call: &Call,
    resource: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<Uuid>> {
    let Some(key) = &request.idempotency_key else {
        return Ok(None);
    };
    let claimed: Option<bool> = tx.query_scalar(
        "INSERT INTO idempotency_keys (scope, key, operation, fingerprint, resource_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (scope, key) DO UPDATE
            SET operation = EXCLUDED.operation, fingerprint = EXCLUDED.fingerprint,
                resource_id = EXCLUDED.resource_id, created_at = EXCLUDED.created_at
          WHERE idempotency_keys.created_at <= $7
         RETURNING true",
    )
    .bind(scope)
    .bind(key.as_str())
    .bind(call.operation.as_str())
    .bind(call.fingerprint.as_slice())
    .bind(resource)
    .bind(now)
    .bind(now - WINDOW)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db)?;
    if claimed.is_some() {
        return Ok(None);
    }
    let stored: StoredKey = tx
        .query_as::<KeyRow>(sql!(
            "SELECT ",
            KeyRow::COLUMNS,
            " FROM idempotency_keys WHERE scope = $1 AND key = $2"
        ))
        .bind(scope)
        .bind(key.as_str())
        .fetch_one(&mut **tx)
        .await
        .map_err(db)?
        .try_into()?;
    stored.replay(call.operation, &call.fingerprint).map(Some)
}
