//! Audit entries, the events that create them and the report's query.

use crate::error::{Error, Result};
use crate::ids::{ApiKeyId, AuditEntryId, TenantId, UserId};
use crate::values::{canonical_json, storable_json, storable_text, AuditAction, TargetType};
use crate::{Context, Principal};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An entry's target id: 1 to 200 bytes of storable text.
fn check_target_id(t: &str) -> Result<()> {
    if t.is_empty() || t.len() > 200 {
        return Err(Error::validation(
            "target_id",
            "must be 1 to 200 characters",
        ));
    }
    storable_text("target_id", t)
}

/// The chain of events that belong to no tenant (a user's erasure). Nobody
/// is a member of it, so only the system reads it.
pub const PLATFORM_TENANT: TenantId = TenantId(uuid::Uuid::nil());

/// Keys a diff may never hold, at any depth (compared lower-cased; keys
/// ending in `_secret`, `_password` or `_token` are refused too).
const SECRET_KEYS: &[&str] = &[
    "password",
    "password_hash",
    "secret",
    "token",
    "token_hash",
    "key_hash",
    "private_key",
    "key_pem",
    "ciphertext",
];

fn names_a_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    SECRET_KEYS.contains(&k.as_str())
        || k.ends_with("_secret")
        || k.ends_with("_password")
        || k.ends_with("_token")
}

fn first_secret_key(v: &Value) -> Option<&str> {
    match v {
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if names_a_secret(k) {
                Some(k.as_str())
            } else {
                first_secret_key(v)
            }
        }),
        Value::Array(items) => items.iter().find_map(first_secret_key),
        _ => None,
    }
}

/// What changed, as a JSON object: created or removed fields as
/// `{"field": value}`, changed fields as `{"field": {"from": old, "to": new}}`.
///
/// ```
/// use insightpulse_core::audit::Diff;
/// let diff = Diff::new().set("role", "admin").change("name", "Acme", "Acme Inc");
/// assert_eq!(
///     diff.into_value(),
///     serde_json::json!({"role": "admin", "name": {"from": "Acme", "to": "Acme Inc"}})
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Diff(Map<String, Value>);

impl Diff {
    /// An empty diff.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `field` = `value`.
    pub fn set(mut self, field: &str, value: impl Serialize) -> Self {
        self.0.insert(field.to_owned(), json(value));
        self
    }

    /// Records that `field` went from `from` to `to`; nothing when equal.
    pub fn change(mut self, field: &str, from: impl Serialize, to: impl Serialize) -> Self {
        let (from, to) = (json(from), json(to));
        if from != to {
            self.0.insert(
                field.to_owned(),
                serde_json::json!({ "from": from, "to": to }),
            );
        }
        self
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The JSON object.
    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }
}

fn json(v: impl Serialize) -> Value {
    // Every type the SDK records (ids, strings, numbers, instants, labels)
    // serialises infallibly.
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// One event to append to a tenant's audit trail. Only [`AuditEvent::new`]
/// makes one, so every event a backend receives is valid.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    action: AuditAction,
    target_type: TargetType,
    target_id: Option<String>,
    diff: Value,
}

impl AuditEvent {
    /// Validates an event. Errors: `Validation` for a malformed action or
    /// target type, a target id over 200 characters, a diff that is not an
    /// object, or a diff key naming a secret (field `diff`).
    ///
    /// ```
    /// use insightpulse_core::audit::{AuditEvent, Diff};
    /// let ok = AuditEvent::new("invoice.finalized", "invoice", Some("inv_42"), Diff::new().set("total", 4200));
    /// assert!(ok.is_ok());
    /// let leak = AuditEvent::new("user.updated", "user", None::<String>, Diff::new().set("password", "hunter2"));
    /// assert!(leak.is_err());
    /// ```
    pub fn new(
        action: &str,
        target_type: &str,
        target_id: Option<impl ToString>,
        diff: impl Into<Value>,
    ) -> Result<Self> {
        let diff = diff.into();
        if !diff.is_object() {
            return Err(Error::validation("diff", "must be a JSON object"));
        }
        if let Some(key) = first_secret_key(&diff) {
            return Err(Error::validation(
                "diff",
                format!("must not hold secrets (key {key:?})"),
            ));
        }
        storable_json("diff", &diff)?;
        let diff = canonical_json(diff);
        let target_id = target_id.map(|t| t.to_string());
        if let Some(t) = &target_id {
            check_target_id(t)?;
        }
        Ok(Self {
            action: AuditAction::parse(action)?,
            target_type: TargetType::parse(target_type)?,
            target_id,
            diff,
        })
    }

    /// What happened.
    pub fn action(&self) -> &AuditAction {
        &self.action
    }

    /// The kind of thing it happened to.
    pub fn target_type(&self) -> &TargetType {
        &self.target_type
    }

    /// Which one, if it has an id.
    pub fn target_id(&self) -> Option<&str> {
        self.target_id.as_deref()
    }

    /// What changed (a JSON object, never holding a secret).
    pub fn diff(&self) -> &Value {
        &self.diff
    }
}

impl From<Diff> for Value {
    fn from(d: Diff) -> Self {
        d.into_value()
    }
}

/// Who performed an audited action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A user.
    User(UserId),
    /// An API key.
    ApiKey(ApiKeyId),
    /// The system, with its stated reason.
    System {
        /// Why system access was used.
        reason: String,
    },
}

impl Actor {
    /// The acting principal of `ctx`.
    pub fn of(ctx: &Context) -> Self {
        match ctx.principal() {
            Principal::User(u) => Self::User(*u),
            Principal::ApiKey(k) => Self::ApiKey(k.key_id),
            Principal::System { reason } => Self::System {
                reason: reason.to_string(),
            },
        }
    }

    /// `user`, `api_key` or `system`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::User(_) => "user",
            Self::ApiKey(_) => "api_key",
            Self::System { .. } => "system",
        }
    }

    /// The user, when the actor is one.
    pub fn user_id(&self) -> Option<UserId> {
        match self {
            Self::User(u) => Some(*u),
            _ => None,
        }
    }

    /// The API key, when the actor is one.
    pub fn api_key_id(&self) -> Option<ApiKeyId> {
        match self {
            Self::ApiKey(k) => Some(*k),
            _ => None,
        }
    }

    /// The system's reason, when the actor is the system.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::System { reason } => Some(reason),
            _ => None,
        }
    }

    /// Rebuilds an actor from its stored columns.
    pub fn from_parts(
        kind: &str,
        user: Option<UserId>,
        key: Option<ApiKeyId>,
        reason: Option<String>,
    ) -> Result<Self> {
        match (kind, user, key, reason) {
            ("user", Some(u), None, None) => Ok(Self::User(u)),
            ("api_key", None, Some(k), None) => Ok(Self::ApiKey(k)),
            ("system", None, None, Some(reason)) => Ok(Self::System { reason }),
            _ => Err(Error::validation("actor", "inconsistent actor columns")),
        }
    }
}

/// One entry of the audit trail, as the report returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Its id.
    pub id: AuditEntryId,
    /// The tenant whose trail holds it.
    pub tenant_id: TenantId,
    /// Its position in the tenant's chain (1, 2, …).
    pub seq: i64,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// Who acted.
    pub actor: Actor,
    /// The acting user's current email (a pseudonym once the user is
    /// erased); `None` for keys and the system.
    pub actor_email: Option<String>,
    /// The acting API key's name and public prefix, while the key exists
    /// (revoked keys stay; a key goes with its project or environment);
    /// `None` for users and the system.
    pub actor_key: Option<KeyLabel>,
    /// What happened.
    pub action: AuditAction,
    /// The kind of target.
    pub target_type: TargetType,
    /// The target's id.
    pub target_id: Option<String>,
    /// What changed.
    pub diff: Value,
    /// The client's address (erased with the actor's personal data).
    pub ip: Option<IpAddr>,
    /// The client's user agent (erased likewise).
    pub user_agent: Option<String>,
    /// The host app's request id.
    pub request_id: Option<String>,
    /// The entry's chain hash.
    pub hash: chain::Digest,
}

use super::chain;

/// How the report names an acting API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLabel {
    /// The key's display name.
    pub name: crate::Name,
    /// Its public prefix (`ipk_…`).
    pub prefix: String,
}

impl fmt::Display for KeyLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.prefix)
    }
}

/// Which actor a report is filtered to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActorFilter {
    /// One user's actions.
    User(UserId),
    /// One API key's actions.
    ApiKey(ApiKeyId),
    /// Every system action.
    System,
}

impl ActorFilter {
    /// Whether `actor` passes the filter.
    pub fn matches(&self, actor: &Actor) -> bool {
        match (self, actor) {
            (Self::User(u), Actor::User(a)) => u == a,
            (Self::ApiKey(k), Actor::ApiKey(a)) => k == a,
            (Self::System, Actor::System { .. }) => true,
            _ => false,
        }
    }
}

/// Where a page of the report ends: the `(created_at, seq)` of its last
/// entry. Opaque to callers; round-trips through its string form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct AuditCursor {
    /// Microseconds since the epoch of the last entry returned.
    pub created_at_micros: i64,
    /// Its chain position.
    pub seq: i64,
}

impl AuditCursor {
    /// The cursor just after `entry` (newest-first order).
    pub fn after(entry: &AuditEntry) -> Self {
        Self {
            created_at_micros: entry.created_at.timestamp_micros(),
            seq: entry.seq,
        }
    }

    /// Whether an entry at `(created_at, seq)` comes after this cursor in
    /// newest-first order.
    pub fn precedes(&self, created_at: DateTime<Utc>, seq: i64) -> bool {
        (created_at.timestamp_micros(), seq) < (self.created_at_micros, self.seq)
    }

    /// The instant of the cursor.
    pub fn created_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.created_at_micros).unwrap_or_default()
    }
}

impl fmt::Display for AuditCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.created_at_micros, self.seq)
    }
}

impl FromStr for AuditCursor {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::validation("cursor", "not a cursor returned by the audit report");
        let (at, seq) = s.split_once('.').ok_or_else(bad)?;
        let cursor = Self {
            created_at_micros: at.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        };
        if DateTime::from_timestamp_micros(cursor.created_at_micros).is_none() || cursor.seq < 1 {
            return Err(bad());
        }
        Ok(cursor)
    }
}

/// The seed's "Audit Report": a tenant's entries of the last `last_days`
/// days, newest first, optionally filtered, one page at a time.
///
/// ```
/// use insightpulse_core::audit::AuditQuery;
/// use insightpulse_core::AuditAction;
/// let q = AuditQuery::last_days(30).action(AuditAction::parse("member.invited").unwrap()).limit(20);
/// assert!(q.validate().is_ok());
/// assert!(AuditQuery::last_days(0).validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct AuditQuery {
    /// How many days back from the backend's clock (1–3650).
    pub last_days: u32,
    /// Only this action.
    pub action: Option<AuditAction>,
    /// Only this actor.
    pub actor: Option<ActorFilter>,
    /// Only this kind of target.
    pub target_type: Option<TargetType>,
    /// Only this target id.
    pub target_id: Option<String>,
    /// Page size (1–1000, default 50).
    pub limit: u32,
    /// Continue after this cursor (from the previous page's `next`).
    pub after: Option<AuditCursor>,
}

impl AuditQuery {
    /// Entries of the last `days` days, 50 per page.
    pub fn last_days(days: u32) -> Self {
        Self {
            last_days: days,
            action: None,
            actor: None,
            target_type: None,
            target_id: None,
            limit: 50,
            after: None,
        }
    }
    /// Only `action`.
    pub fn action(mut self, action: AuditAction) -> Self {
        self.action = Some(action);
        self
    }
    /// Only `actor`'s entries.
    pub fn actor(mut self, actor: ActorFilter) -> Self {
        self.actor = Some(actor);
        self
    }
    /// Only entries about `target_type` (and `target_id`, when given).
    pub fn target(mut self, target_type: TargetType, target_id: Option<String>) -> Self {
        self.target_type = Some(target_type);
        self.target_id = target_id;
        self
    }
    /// Page size.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }
    /// The page after `cursor`.
    pub fn after(mut self, cursor: AuditCursor) -> Self {
        self.after = Some(cursor);
        self
    }

    /// Checks the bounds. Backends call it before any I/O.
    pub fn validate(&self) -> Result<()> {
        if !(1..=3650).contains(&self.last_days) {
            return Err(Error::validation("last_days", "must be 1 to 3650"));
        }
        if !(1..=1000).contains(&self.limit) {
            return Err(Error::validation("limit", "must be 1 to 1000"));
        }
        // A filter no entry could match is still a filter PostgreSQL must
        // be able to compare.
        self.target_id.as_deref().map_or(Ok(()), check_target_id)
    }

    /// Whether `e` passes the filters (not the time window or cursor).
    pub fn matches(&self, e: &AuditEntry) -> bool {
        self.action.as_ref().is_none_or(|a| *a == e.action)
            && self.actor.as_ref().is_none_or(|f| f.matches(&e.actor))
            && self
                .target_type
                .as_ref()
                .is_none_or(|t| *t == e.target_type)
            && self
                .target_id
                .as_ref()
                .is_none_or(|t| Some(t) == e.target_id.as_ref())
    }
}

/// One page of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditPage {
    /// Entries, newest first.
    pub entries: Vec<AuditEntry>,
    /// The cursor of the next page, when there is one.
    pub next: Option<AuditCursor>,
}

/// What [`chain::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainVerdict {
    /// Every entry is intact and linked, up to the recorded head.
    Intact {
        /// Entries checked.
        entries: u64,
        /// The chain's last position (0 for an empty chain).
        head_seq: i64,
    },
    /// The first position where the chain does not hold.
    Broken {
        /// The position of the first broken entry.
        seq: i64,
        /// What is wrong with it.
        reason: ChainBreak,
    },
}

/// Why a chain is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainBreak {
    /// The entry's content does not match its hash (it was edited).
    ContentChanged,
    /// The entry's stored personal fields do not match their commitment.
    PersonalDataChanged,
    /// The entry does not link to the previous entry's hash.
    LinkBroken,
    /// The entry at this position is missing (deleted).
    Missing,
    /// Two entries claim this position.
    Duplicate,
    /// The entries end elsewhere than the chain's head records (the newest
    /// entries were removed, or the head was edited).
    HeadMismatch,
    /// The chain starts after a purge that no `audit.purged` entry attests.
    UnattestedPurge,
}
