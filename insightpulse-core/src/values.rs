//! Validated value types. Each can only hold a valid value, so validation
//! happens once, at the edge, before any I/O — never scattered across
//! callers or left to a database constraint.

use crate::error::{Error, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

macro_rules! string_value {
    ($name:ident) => {
        impl $name {
            /// The validated string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::parse(s)
            }
        }
        impl TryFrom<&str> for $name {
            type Error = Error;
            fn try_from(s: &str) -> Result<Self> {
                Self::parse(s)
            }
        }
        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(s: String) -> Result<Self> {
                Self::parse(&s)
            }
        }
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A URL-safe identifier: 2–63 characters of `a-z`, `0-9` and single
/// hyphens, starting with a letter and not ending with a hyphen.
///
/// ```
/// use insightpulse_core::Slug;
/// assert!(Slug::parse("acme-corp").is_ok());
/// assert!(Slug::parse("Acme Corp").is_err());
/// assert!(Slug::parse("-acme").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slug(String);

impl Slug {
    /// Validates a slug.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |why: &'static str| Err(Error::validation("slug", why));
        if !(2..=63).contains(&s.len()) {
            return bad("must be 2 to 63 characters");
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return bad("may contain only a-z, 0-9 and '-'");
        }
        if !s.as_bytes()[0].is_ascii_lowercase() {
            return bad("must start with a letter");
        }
        if s.ends_with('-') || s.contains("--") {
            return bad("must not end with '-' or contain '--'");
        }
        Ok(Self(s.to_owned()))
    }
}
string_value!(Slug);

/// An email address (RFC 5322 syntax), stored lower-cased so lookups and
/// uniqueness are case-insensitive.
///
/// ```
/// use insightpulse_core::Email;
/// assert_eq!(Email::parse("Ada@Example.COM").unwrap().as_str(), "ada@example.com");
/// assert!(Email::parse("not an email").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

impl Email {
    /// Validates and normalises an email address.
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.len() > 254 || !email_address::EmailAddress::is_valid(s) || !s.contains('.') {
            return Err(Error::validation("email", "not a valid email address"));
        }
        Ok(Self(s.to_lowercase()))
    }
}
string_value!(Email);

/// A human-readable name: trimmed, 1–200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

/// Refuses text PostgreSQL cannot store: `text` and `jsonb` both refuse
/// the NUL character (U+0000), so every backend refuses it up front, as
/// `Validation { field }`, instead of one backend storing what the other
/// cannot.
///
/// ```
/// use insightpulse_core::values::storable_text;
/// assert!(storable_text("description", "fine").is_ok());
/// assert!(storable_text("description", "nul\0byte").is_err());
/// ```
pub fn storable_text(field: &'static str, s: &str) -> Result<()> {
    if s.contains('\0') {
        return Err(Error::validation(field, "must not contain a NUL character"));
    }
    Ok(())
}

/// [`storable_text`] for every key and string of a JSON value.
pub fn storable_json(field: &'static str, v: &serde_json::Value) -> Result<()> {
    use serde_json::Value;
    match v {
        Value::String(s) => storable_text(field, s),
        Value::Array(items) => items.iter().try_for_each(|i| storable_json(field, i)),
        Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            storable_text(field, k)?;
            storable_json(field, v)
        }),
        _ => Ok(()),
    }
}

/// `v` as it comes back from a PostgreSQL `jsonb` column, so a backend
/// that keeps JSON in memory holds what the database would. serde writes a
/// float of magnitude 1e16 or more in exponent form (`1e+16`), which
/// `jsonb` stores as a plain integer (`10000000000000000`, read back as an
/// integer when it fits 64 bits); smaller integral floats keep their `.0`;
/// negative zero loses its sign. Every other value survives unchanged.
///
/// ```
/// use insightpulse_core::values::canonical_json;
/// use serde_json::json;
/// assert_eq!(
///     canonical_json(json!({"n": 1e16, "x": [0.5, 1.0, -0.0]})),
///     json!({"n": 10_000_000_000_000_000u64, "x": [0.5, 1.0, 0.0]})
/// );
/// ```
pub fn canonical_json(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    const EXPONENT_FORM: f64 = 1e16;
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f == 0.0 => Value::from(0.0),
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() >= EXPONENT_FORM => {
                // Exact: f is integral and inside the target type's range.
                if (-9.223_372_036_854_776e18..0.0).contains(&f) {
                    Value::from(f as i64)
                } else if (0.0..1.844_674_407_370_955_2e19).contains(&f) {
                    Value::from(f as u64)
                } else {
                    Value::Number(n)
                }
            }
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(canonical_json).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, canonical_json(v)))
                .collect(),
        ),
        other => other,
    }
}

impl Name {
    /// Validates a name.
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.is_empty() || s.chars().count() > 200 {
            return Err(Error::validation("name", "must be 1 to 200 characters"));
        }
        if s.chars().any(char::is_control) {
            return Err(Error::validation(
                "name",
                "must not contain control characters",
            ));
        }
        Ok(Self(s.to_owned()))
    }
}
string_value!(Name);

/// An IANA time zone name such as `America/New_York`.
///
/// ```
/// use insightpulse_core::TimeZone;
/// assert!(TimeZone::parse("Europe/Paris").is_ok());
/// assert!(TimeZone::parse("Mars/Olympus").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimeZone(String);

impl TimeZone {
    /// Validates a time zone against the IANA database.
    pub fn parse(s: &str) -> Result<Self> {
        let tz: chrono_tz::Tz = s
            .parse()
            .map_err(|_| Error::validation("timezone", "not an IANA time zone"))?;
        Ok(Self(tz.name().to_owned()))
    }
    /// UTC.
    pub fn utc() -> Self {
        Self("UTC".to_owned())
    }
    /// The zone, for local-time arithmetic.
    pub fn tz(&self) -> chrono_tz::Tz {
        self.0.parse().expect("validated at construction")
    }
}
string_value!(TimeZone);

/// A permission of the catalog, e.g. [`PermissionCode::DASHBOARD_DELETE`].
///
/// Only the permissions the SDK's modules check exist (see
/// [`crate::tenancy::catalog`]): a code outside the catalog is refused when
/// parsed, so a typo can never become a permission that nobody checks.
///
/// ```
/// use insightpulse_core::PermissionCode;
/// assert_eq!(PermissionCode::parse("billing.read").unwrap(), PermissionCode::BILLING_READ);
/// assert!(PermissionCode::parse("project.updte").is_err());
/// assert!(PermissionCode::parse("Billing.Read").is_err());
/// assert_eq!(PermissionCode::PROJECT_UPDATE.as_str(), "project.update");
/// assert_eq!(PermissionCode::PROJECT_UPDATE.as_ref(), "project.update");
/// assert_eq!(PermissionCode::PROJECT_UPDATE.to_string(), "project.update");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PermissionCode(pub(crate) &'static str);

impl PermissionCode {
    /// The permission of the catalog with this code.
    pub fn parse(s: &str) -> Result<Self> {
        crate::tenancy::catalog::PERMISSIONS
            .iter()
            .map(|(p, _)| *p)
            .find(|p| p.0 == s)
            .ok_or_else(|| Error::validation("permission", "not a permission of the catalog"))
    }

    /// The code, e.g. `dashboard.delete`.
    pub fn as_str(&self) -> &'static str {
        self.0
    }

    /// What the permission allows, from the catalog.
    pub fn description(&self) -> &'static str {
        crate::tenancy::catalog::PERMISSIONS
            .iter()
            .find(|(p, _)| p == self)
            .map_or("", |(_, d)| d)
    }
}

impl fmt::Display for PermissionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl AsRef<str> for PermissionCode {
    fn as_ref(&self) -> &str {
        self.0
    }
}

impl FromStr for PermissionCode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl TryFrom<&str> for PermissionCode {
    type Error = Error;
    fn try_from(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl Serialize for PermissionCode {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for PermissionCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Declares a label type: 1–`$max` characters of `a-z`, `0-9`, `_`, `-`
/// and `.`, starting with a letter, with no empty dot-separated segment.
/// Errors name `$field`.
macro_rules! label_value {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Validates the label.
            pub fn parse(s: &str) -> Result<Self> {
                let ok = (1..=$max).contains(&s.len())
                    && s.as_bytes()[0].is_ascii_lowercase()
                    && s.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
                    })
                    && s.split('.').all(|seg| !seg.is_empty());
                if !ok {
                    return Err(Error::validation(
                        $field,
                        concat!(
                            "must be 1 to ",
                            stringify!($max),
                            " characters of a-z, 0-9, '_', '-', '.', starting with a letter"
                        ),
                    ));
                }
                Ok(Self(s.to_owned()))
            }
        }
        string_value!($name);
    };
}

label_value!(
    /// What an audited action did, as `noun.verb` (e.g. `member.invited`).
    ///
    /// ```
    /// use insightpulse_core::AuditAction;
    /// assert!(AuditAction::parse("invoice.finalized").is_ok());
    /// assert!(AuditAction::parse("Invoice Finalized").is_err());
    /// ```
    AuditAction,
    "action",
    100
);
label_value!(
    /// The kind of thing an audited action touched (e.g. `api_key`).
    TargetType,
    "target_type",
    64
);
label_value!(
    /// What a user consents to (e.g. `marketing_email`, `analytics`).
    ConsentPurpose,
    "purpose",
    64
);
label_value!(
    /// Where a consent was given or withdrawn (e.g. `signup_form`, `api`).
    ConsentSource,
    "source",
    64
);
label_value!(
    /// The type of a domain event of the outbox, as `noun.verb` (e.g.
    /// `project.created`).
    ///
    /// ```
    /// use insightpulse_core::EventType;
    /// assert!(EventType::parse("invoice.paid").is_ok());
    /// assert!(EventType::parse("Invoice Paid").is_err());
    /// ```
    EventType,
    "event_type",
    100
);
label_value!(
    /// The name of an outbox consumer, which owns one cursor per scope
    /// (e.g. `webhooks`, `alerts.evaluator`).
    ConsumerName,
    "consumer",
    64
);

/// The version of the policy text a consent refers to (e.g. `2026-05`,
/// `v3.1`): 1–64 characters, no whitespace or control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyVersion(String);

impl PolicyVersion {
    /// Validates a policy version.
    pub fn parse(s: &str) -> Result<Self> {
        if s.is_empty()
            || s.chars().count() > 64
            || s.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(Error::validation(
                "policy_version",
                "must be 1 to 64 characters without whitespace",
            ));
        }
        Ok(Self(s.to_owned()))
    }
}
string_value!(PolicyVersion);

/// A client's idempotency key: 1–255 visible ASCII characters (a UUID is
/// the usual choice), as sent in an `Idempotency-Key` header.
///
/// Set it on the request ([`crate::RequestMeta::idempotency_key`]); these
/// calls honour it: `AuthRepo::sign_up`, `TenantRepo::create_tenant`,
/// `ProjectRepo::create_project` and `create_environment`,
/// `TeamRepo::create_team`, `RbacRepo::create_role` and `AuditRepo::record`.
/// The same principal repeating the call with the same key and the same
/// input within 24 hours gets the row the first call made (as it is now);
/// the same key with other input is a `Conflict` on the idempotency key.
/// A call that failed stored nothing and may be retried with its key. Calls
/// that hand out a one-time secret (`invite`, `create_api_key`) cannot
/// replay it and do not take a key.
///
/// ```
/// use insightpulse_core::IdempotencyKey;
/// assert!(IdempotencyKey::parse("7f1c9a4e-1d3b-4c55-9a43-0f8e2d1b6a10").is_ok());
/// assert!(IdempotencyKey::parse("").is_err());
/// assert!(IdempotencyKey::parse("has space").is_err());
/// assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
/// assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Validates a key.
    pub fn parse(s: &str) -> Result<Self> {
        if s.is_empty() || s.len() > 255 || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::validation(
                "idempotency_key",
                "must be 1 to 255 visible ASCII characters",
            ));
        }
        Ok(Self(s.to_owned()))
    }
}
string_value!(IdempotencyKey);
