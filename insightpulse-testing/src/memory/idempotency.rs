//! Idempotency keys in memory (rule: `insightpulse_core::idempotency`): a
//! create checks for a replay and remembers its row in the same locked
//! mutation as the create itself, so one key never makes two rows.

use chrono::{DateTime, Utc};
use insightpulse_core::idempotency::{Call, StoredKey};
use insightpulse_core::uuid::Uuid;
use insightpulse_core::{IdempotencyKey, RequestMeta, Result};
use std::collections::HashMap;

/// The idempotency keys by `(scope, key)`. Not removed with a tenant: a key
/// only expires (see `StoredKey::is_live`).
#[derive(Default)]
pub(crate) struct IdempotencyState {
    keys: HashMap<(String, IdempotencyKey), StoredKey>,
}

impl IdempotencyState {
    /// The row an earlier call made, when this call (`operation` with
    /// `input`, in `scope`) repeats it under the request's idempotency key;
    /// `None` to go ahead (no key, or none live); a `Conflict` on the key
    /// when the key was used for something else.
    pub fn replayed(
        &self,
        scope: &str,
        request: &RequestMeta,
        call: &Call,
        now: DateTime<Utc>,
    ) -> Result<Option<Uuid>> {
        let Some(key) = &request.idempotency_key else {
            return Ok(None);
        };
        match self.keys.get(&(scope.to_owned(), key.clone())) {
            Some(stored) if stored.is_live(now) => {
                stored.replay(call.operation, &call.fingerprint).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Remembers that this call made `resource` (when it carries a key).
    pub fn remember(
        &mut self,
        scope: String,
        request: &RequestMeta,
        call: Call,
        resource: Uuid,
        now: DateTime<Utc>,
    ) {
        if let Some(key) = &request.idempotency_key {
            self.keys.insert(
                (scope, key.clone()),
                StoredKey {
                    operation: call.operation,
                    fingerprint: call.fingerprint,
                    resource,
                    created_at: now,
                },
            );
        }
    }
}
