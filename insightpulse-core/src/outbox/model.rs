//! Events, their positions (cursors), and the rules on their input.

use crate::audit::PLATFORM_TENANT;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::ids::{EventId, TenantId};
use crate::values::{storable_json, EventType};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The most a payload may weigh, serialised as JSON (256 KiB): an event
/// says what changed and names the rows; it does not carry documents.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// The most events one [`read_events`](super::OutboxRepo::read_events)
/// call returns.
pub const MAX_READ_LIMIT: u32 = 1000;

/// How many events one purge transaction deletes at most (oldest first).
pub const PURGE_BATCH: u32 = 5000;

/// The audit entry a purge batch appends to each tenant whose events it
/// deleted: `outbox.purged` with `deleted` and `before`.
pub fn purged_event(deleted: u64, before: DateTime<Utc>) -> Result<crate::audit::AuditEvent> {
    crate::audit::AuditEvent::new(
        "outbox.purged",
        "outbox",
        None::<String>,
        crate::audit::Diff::new()
            .set("deleted", deleted)
            .set("before", before),
    )
}

/// Checks a payload before anything is written: text a database can store
/// (no NUL, see [`storable_json`]) and at most [`MAX_PAYLOAD_BYTES`].
///
/// ```
/// use insightpulse_core::outbox::validate_payload;
/// use serde_json::json;
/// assert!(validate_payload(&json!({"project_id": "p1"})).is_ok());
/// assert!(validate_payload(&json!({"name": "nul\u{0}"})).is_err());
/// ```
pub fn validate_payload(payload: &serde_json::Value) -> Result<()> {
    storable_json("payload", payload)?;
    let size = serde_json::to_vec(payload).map_err(Error::backend)?.len();
    if size > MAX_PAYLOAD_BYTES {
        return Err(Error::validation(
            "payload",
            format!("must be at most {MAX_PAYLOAD_BYTES} bytes of JSON"),
        ));
    }
    Ok(())
}

/// Checks a read's `limit`: 1 to [`MAX_READ_LIMIT`].
pub fn validate_limit(limit: u32) -> Result<()> {
    if (1..=MAX_READ_LIMIT).contains(&limit) {
        Ok(())
    } else {
        Err(Error::validation("limit", "must be 1 to 1000"))
    }
}

/// Checks a cursor handed in: both parts non-negative.
pub fn validate_cursor(cursor: EventCursor) -> Result<()> {
    if cursor.xact < 0 || cursor.seq < 0 {
        return Err(Error::validation("cursor", "parts must be non-negative"));
    }
    Ok(())
}

/// Whose events a read covers: the context's tenant, or — for the system
/// acting without one — every tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadScope {
    /// One tenant.
    Tenant(TenantId),
    /// Every tenant (system only).
    AllTenants,
}

impl ReadScope {
    /// The scope of `ctx`: its tenant; every tenant for the system without
    /// one; `Validation` (`context`) for anyone else without one.
    pub fn of(ctx: &Context) -> Result<Self> {
        match ctx.tenant_id() {
            Some(t) => Ok(Self::Tenant(t)),
            None if ctx.is_system() => Ok(Self::AllTenants),
            None => ctx.require_tenant().map(Self::Tenant),
        }
    }

    /// The tenant a consumer's cursor is filed under: the tenant, or the
    /// platform's (nil) id for every tenant.
    pub fn cursor_key(self) -> TenantId {
        match self {
            Self::Tenant(t) => t,
            Self::AllTenants => PLATFORM_TENANT,
        }
    }
}

/// Where an event stands in the outbox's delivery order, and where a
/// consumer stands in it: the events *after* a cursor are the ones it has
/// not processed yet.
///
/// Cursors are totally ordered and only ever compared, stored and handed
/// back; their parts are the backend's (on PostgreSQL, the publishing
/// transaction's id and the row's sequence number). They print as
/// `xact-seq`, which [`FromStr`] reads back, so a host can keep one
/// anywhere.
///
/// ```
/// use insightpulse_core::outbox::EventCursor;
/// let c: EventCursor = "42-7".parse().unwrap();
/// assert_eq!(c.to_string(), "42-7");
/// assert!(EventCursor::START < c);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct EventCursor {
    /// The publishing transaction's order (first key).
    pub xact: i64,
    /// The event's order within it (second key).
    pub seq: i64,
}

impl EventCursor {
    /// Before every event.
    pub const START: EventCursor = EventCursor { xact: 0, seq: 0 };

    /// A cursor from its parts (as a backend stores them).
    pub fn new(xact: i64, seq: i64) -> Self {
        Self { xact, seq }
    }
}

impl fmt::Display for EventCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.xact, self.seq)
    }
}

impl FromStr for EventCursor {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::validation("cursor", "must be two non-negative integers as xact-seq");
        let (x, q) = s.split_once('-').ok_or_else(bad)?;
        let part = |p: &str| {
            p.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0 && p.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(bad)
        };
        Ok(Self::new(part(x)?, part(q)?))
    }
}

impl Serialize for EventCursor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EventCursor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A published domain event, as consumers read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Its id (stable across redeliveries: consumers deduplicate on it).
    pub id: EventId,
    /// The tenant it happened in.
    pub tenant_id: TenantId,
    /// What happened.
    pub event_type: EventType,
    /// The details, as JSON (as `jsonb` keeps it).
    pub payload: serde_json::Value,
    /// When it was published (the backend's clock).
    pub published_at: DateTime<Utc>,
    /// Its place in the delivery order: commit it as a consumer's cursor
    /// once the event is processed.
    pub position: EventCursor,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cursors_order_by_transaction_then_sequence_and_round_trip() {
        let a = EventCursor::new(5, 9);
        let b = EventCursor::new(6, 1);
        assert!(EventCursor::START < a && a < b);
        assert!(EventCursor::new(5, 10) > a);
        for c in [EventCursor::START, a, b, EventCursor::new(i64::MAX, 3)] {
            assert_eq!(c.to_string().parse::<EventCursor>().unwrap(), c);
            let j = serde_json::to_value(c).unwrap();
            assert_eq!(serde_json::from_value::<EventCursor>(j).unwrap(), c);
        }
        for bad in [
            "",
            "1",
            "1-",
            "-1-2",
            "1--2",
            "a-b",
            "1-2-3",
            "+1-2",
            "99999999999999999999-1",
        ] {
            assert!(bad.parse::<EventCursor>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn payloads_are_storable_and_bounded() {
        assert!(validate_payload(&json!(null)).is_ok());
        assert!(validate_payload(&json!({"k\u{0}": 1})).is_err());
        assert!(validate_payload(&json!(["a", ["b\u{0}"]])).is_err());
        let big = "x".repeat(MAX_PAYLOAD_BYTES);
        assert!(matches!(
            validate_payload(&json!(big)),
            Err(Error::Validation {
                field: "payload",
                ..
            })
        ));
        let fits = "x".repeat(MAX_PAYLOAD_BYTES - 2);
        assert!(validate_payload(&json!(fits)).is_ok());
    }

    #[test]
    fn payloads_up_to_256_kib_are_accepted() {
        assert!(validate_payload(&json!("x".repeat(250 * 1024))).is_ok());
        assert!(validate_payload(&json!("x".repeat(257 * 1024))).is_err());
    }

    #[test]
    fn cursors_handed_in_have_non_negative_parts() {
        for ok in [
            EventCursor::START,
            EventCursor::new(0, 3),
            EventCursor::new(7, 0),
        ] {
            assert!(validate_cursor(ok).is_ok(), "{ok}");
        }
        for bad in [
            EventCursor::new(-1, 0),
            EventCursor::new(0, -1),
            EventCursor::new(-2, -2),
        ] {
            assert!(matches!(
                validate_cursor(bad),
                Err(Error::Validation {
                    field: "cursor",
                    ..
                })
            ));
        }
    }

    #[test]
    fn a_read_covers_the_contexts_tenant_or_for_the_system_every_tenant() {
        let t = TenantId::new();
        let user = Context::user(crate::ids::UserId::new());
        assert_eq!(
            ReadScope::of(&user.clone().in_tenant(t)).unwrap(),
            ReadScope::Tenant(t)
        );
        assert!(matches!(
            ReadScope::of(&user),
            Err(Error::Validation {
                field: "context",
                ..
            })
        ));
        let system = Context::system("test");
        assert_eq!(ReadScope::of(&system).unwrap(), ReadScope::AllTenants);
        assert_eq!(
            ReadScope::of(&system.in_tenant(t)).unwrap(),
            ReadScope::Tenant(t)
        );
        assert_eq!(ReadScope::Tenant(t).cursor_key(), t);
        assert_eq!(ReadScope::AllTenants.cursor_key(), PLATFORM_TENANT);
    }

    #[test]
    fn limits_are_1_to_1000() {
        assert!(validate_limit(0).is_err());
        assert!(validate_limit(1).is_ok());
        assert!(validate_limit(MAX_READ_LIMIT).is_ok());
        assert!(validate_limit(MAX_READ_LIMIT + 1).is_err());
    }
}
