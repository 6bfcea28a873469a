//! Idempotent creates: the rule both backends apply to a request that
//! carries an [`IdempotencyKey`](crate::IdempotencyKey).
//!
//! Rule: a key belongs to the principal that first used it (its *scope*);
//! within [`WINDOW`] the same scope, key, operation and input
//! ([`fingerprint`]) replays the first call's row, and anything else under
//! that key is a `Conflict` on the key. A call that fails stores nothing, so
//! it may be retried with its key. The key is claimed in the same
//! transaction as the row it makes: two racing requests with one key make
//! one row, and the second waits for the first and replays it.

use crate::context::{Context, Principal};
use crate::error::{Entity, Error, Result};
use crate::ids::TenantId;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

/// How long a key is remembered.
pub const WINDOW: Duration = Duration::hours(24);

/// The creates that honour an idempotency key; each is a stored label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `AuthRepo::sign_up`
    SignUp,
    /// `TenantRepo::create_tenant`
    CreateTenant,
    /// `ProjectRepo::create_project`
    CreateProject,
    /// `ProjectRepo::create_environment`
    CreateEnvironment,
    /// `TeamRepo::create_team`
    CreateTeam,
    /// `RbacRepo::create_role`
    CreateRole,
    /// `AuditRepo::record_event`
    RecordAuditEvent,
}

impl Operation {
    /// The stored label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignUp => "sign_up",
            Self::CreateTenant => "create_tenant",
            Self::CreateProject => "create_project",
            Self::CreateEnvironment => "create_environment",
            Self::CreateTeam => "create_team",
            Self::CreateRole => "create_role",
            Self::RecordAuditEvent => "record_audit_event",
        }
    }
}

parse_by_label!(
    Operation,
    "operation",
    [
        Operation::SignUp,
        Operation::CreateTenant,
        Operation::CreateProject,
        Operation::CreateEnvironment,
        Operation::CreateTeam,
        Operation::CreateRole,
        Operation::RecordAuditEvent
    ]
);

/// Whose keys a key is among: `user:<id>`, `api_key:<id>`, `system`, or
/// for a sign-up (nobody is signed in yet) `sign_up:<email>` — a sign-up
/// replay also needs the password (see `AuthRepo::sign_up`).
pub fn scope(ctx: &Context) -> String {
    match ctx.principal() {
        Principal::User(u) => format!("user:{u}"),
        Principal::ApiKey(k) => format!("api_key:{}", k.key_id),
        Principal::System { .. } => "system".to_owned(),
    }
}

/// The scope of a sign-up's key.
pub fn sign_up_scope(email: &crate::Email) -> String {
    format!("sign_up:{email}")
}

/// SHA-256 over the operation, the tenant the call acts in (`None` for a
/// sign-up or a new tenant) and its input.
pub fn fingerprint(
    operation: Operation,
    tenant: Option<TenantId>,
    input: &impl Serialize,
) -> Result<[u8; 32]> {
    let input = serde_json::to_vec(&(operation.as_str(), tenant, input))
        .map_err(|e| Error::validation("input", format!("cannot be fingerprinted: {e}")))?;
    Ok(Sha256::digest(&input).into())
}

/// One call that honours a key: its operation and the fingerprint of its
/// input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    /// What the call does.
    pub operation: Operation,
    /// [`fingerprint`] of its tenant and input.
    pub fingerprint: [u8; 32],
}

impl Call {
    /// Fingerprints a call (see [`fingerprint`]).
    pub fn new(
        operation: Operation,
        tenant: Option<TenantId>,
        input: &impl Serialize,
    ) -> Result<Self> {
        Ok(Self {
            operation,
            fingerprint: fingerprint(operation, tenant, input)?,
        })
    }
}

/// A key as a backend stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// The operation it was used for.
    pub operation: Operation,
    /// The fingerprint of that call's input.
    pub fingerprint: [u8; 32],
    /// The row that call made.
    pub resource: Uuid,
    /// When it was used.
    pub created_at: DateTime<Utc>,
}

impl StoredKey {
    /// Whether the key is still remembered at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        now < self.created_at + WINDOW
    }

    /// What a new call with this key gets: `Ok(resource)` to replay when
    /// operation and fingerprint match, a `Conflict` on the key otherwise.
    pub fn replay(&self, operation: Operation, fingerprint: &[u8; 32]) -> Result<Uuid> {
        if self.operation == operation && &self.fingerprint == fingerprint {
            Ok(self.resource)
        } else {
            Err(Error::conflict(Entity::IdempotencyKey, "key"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_cover_operation_tenant_and_input() {
        let a = Some(TenantId::new());
        let base = fingerprint(Operation::CreateTeam, a, &"web").unwrap();
        assert_eq!(base, fingerprint(Operation::CreateTeam, a, &"web").unwrap());
        assert_ne!(base, fingerprint(Operation::CreateRole, a, &"web").unwrap());
        assert_ne!(base, fingerprint(Operation::CreateTeam, a, &"api").unwrap());
        assert_ne!(
            base,
            fingerprint(Operation::CreateTeam, Some(TenantId::new()), &"web").unwrap()
        );
        assert_ne!(
            base,
            fingerprint(Operation::CreateTeam, None, &"web").unwrap()
        );
    }

    #[test]
    fn keys_replay_only_their_own_call_within_the_window() {
        let now = Utc::now();
        let fp = [7; 32];
        let stored = StoredKey {
            operation: Operation::CreateProject,
            fingerprint: fp,
            resource: Uuid::new_v4(),
            created_at: now,
        };
        assert_eq!(
            stored.replay(Operation::CreateProject, &fp).unwrap(),
            stored.resource
        );
        assert!(stored
            .replay(Operation::CreateTeam, &fp)
            .unwrap_err()
            .is_conflict());
        assert!(stored
            .replay(Operation::CreateProject, &[8; 32])
            .unwrap_err()
            .is_conflict());
        assert!(stored.is_live(now + WINDOW - Duration::microseconds(1)));
        assert!(!stored.is_live(now + WINDOW));
    }
}
