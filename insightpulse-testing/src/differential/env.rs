//! One backend's side of a run: its logical names bound to its own ids, the
//! secrets and contexts it handed out, and the normalization that turns its
//! answers into [`Outcome`]s comparable with the other backend's.
//!
//! Normalization: a value is printed with `{:?}`; every uuid in the text is
//! replaced by its logical name (`p3`), `?` for a ghost, or `#<n>` for an id
//! no operation named (a grant made by `sign_up`, an audit entry's id …),
//! numbered in order of first appearance; random token prefixes
//! (`ipk_…`, `ipinv_…`) and audit hashes (computed over ids, so different on
//! each backend) are masked. Timestamps stay: both backends read the one
//! shared clock, at microsecond precision.

use super::ops::{Kind, Ref, Who, PLATFORM};
use insightpulse_core::audit::PLATFORM_TENANT;
use insightpulse_core::jobs::Lease;
use insightpulse_core::outbox::EventCursor;
use insightpulse_core::tenancy::catalog::BUILTIN_ROLES;
use insightpulse_core::tenancy::tokens::{issue, TokenHasher, TokenKind};
use insightpulse_core::uuid::Uuid;
use insightpulse_core::{
    ApiKeyId, ApiKeyPrincipal, Context, Error, EventId, IdempotencyKey, RequestMeta, Result,
    SecretString, TenantId,
};
use std::collections::HashMap;
use std::fmt;

/// A cursor past every position a backend hands out.
pub const FAR: EventCursor = EventCursor {
    xact: i64::MAX,
    seq: 0,
};

/// What one call returned, normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The normalized value.
    Ok(String),
    /// An error, by its typed parts and its text.
    Err {
        /// [`Error::code`].
        code: &'static str,
        /// [`Error::entity`].
        entity: Option<&'static str>,
        /// [`Error::field`].
        field: Option<&'static str>,
        /// The `Display` text (uuids normalized, in case a backend error
        /// holds one).
        display: String,
    },
    /// The call did not finish within the per-call timeout.
    Timeout,
    /// The call panicked.
    Panic(String),
}

impl Outcome {
    /// Whether the call succeeded.
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Ok(_))
    }

    /// Its class: `ok`, `err:<code>/<entity>/<field>`, `timeout`, `panic`.
    pub fn class(&self) -> String {
        match self {
            Self::Ok(_) => "ok".to_owned(),
            Self::Err {
                code,
                entity,
                field,
                ..
            } => format!(
                "err:{code}/{}/{}",
                entity.unwrap_or("-"),
                field.unwrap_or("-")
            ),
            Self::Timeout => "timeout".to_owned(),
            Self::Panic(_) => "panic".to_owned(),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ok(v) => write!(f, "Ok({v})"),
            Self::Err {
                code,
                entity,
                field,
                display,
            } => {
                write!(f, "Err({code}")?;
                if let Some(e) = entity {
                    write!(f, ", entity {e}")?;
                }
                if let Some(x) = field {
                    write!(f, ", field {x}")?;
                }
                write!(f, ": \"{display}\")")
            }
            Self::Timeout => f.write_str("Timeout"),
            Self::Panic(m) => write!(f, "Panic({m})"),
        }
    }
}

/// One backend's bindings.
#[derive(Debug, Default)]
pub struct Env {
    ids: HashMap<Ref, Uuid>,
    names: HashMap<Uuid, String>,
    anonymous: usize,
    tokens: HashMap<Ref, SecretString>,
    key_contexts: HashMap<Ref, Context>,
    /// Outbox positions learned from reads, by event id, and back: a
    /// position is the backend's own (`(xact, seq)` on PostgreSQL), so it
    /// prints as its event's name.
    positions: HashMap<Uuid, EventCursor>,
    at_position: HashMap<EventCursor, Uuid>,
    /// The leases each claim handed out, in the order of the claimed
    /// jobs' names.
    leases: HashMap<Ref, Vec<Lease>>,
    /// The index of the step being run (its request id is `req-<n>`).
    pub step: usize,
    /// The shared clock's time when the step started (for expiries).
    pub now: chrono::DateTime<chrono::Utc>,
    /// When each step so far ran (the current one last).
    pub times: Vec<chrono::DateTime<chrono::Utc>>,
}

impl Env {
    /// An empty environment; `builtin` are the ids of the built-in roles in
    /// [`BUILTIN_ROLES`] order, bound to `role:<name>`.
    pub fn new(builtin: &[Uuid]) -> Self {
        let mut env = Self::default();
        env.bind(Ref::new(Kind::Tenant, PLATFORM), PLATFORM_TENANT);
        for (i, id) in builtin.iter().enumerate().take(BUILTIN_ROLES.len()) {
            env.bind(Ref::new(Kind::Role, i as u32), *id);
        }
        env
    }

    /// Binds `name` to `id` (a later binding of the same name wins; the
    /// earlier id keeps printing as the name with a `'`).
    pub fn bind(&mut self, name: Ref, id: impl Into<Uuid>) {
        let id = id.into();
        if let Some(old) = self.ids.insert(name, id).filter(|old| *old != id) {
            self.names.insert(old, format!("{name}'"));
        }
        self.names.insert(id, name.to_string());
    }

    /// Whether `name` is bound.
    pub fn is_bound(&self, name: Ref) -> bool {
        self.ids.contains_key(&name)
    }

    /// The id bound to `name`, or a fresh ghost id.
    pub fn id<T: From<Uuid>>(&mut self, name: Ref) -> T {
        T::from(self.uuid(name))
    }

    fn uuid(&mut self, name: Ref) -> Uuid {
        if let Some(id) = self.ids.get(&name) {
            return *id;
        }
        let ghost = Uuid::new_v4();
        self.names.insert(ghost, "?".to_owned());
        ghost
    }

    /// Keeps a token (an API key's secret, an invitation's token).
    pub fn keep_token(&mut self, name: Ref, token: SecretString) {
        self.tokens.insert(name, token);
    }

    /// The token kept for `name`, or a well-formed token nothing matches.
    pub fn token(&self, name: Ref, kind: TokenKind) -> SecretString {
        self.tokens
            .get(&name)
            .cloned()
            .unwrap_or_else(|| issue(kind, &TokenHasher::insecure_development()).token)
    }

    /// The time of the step `back` steps before the current one (0: the
    /// current one), moved by `nudge` microseconds: a cutoff exactly at,
    /// just before or just after that step's rows.
    pub fn step_time(&self, back: u8, nudge: i8) -> chrono::DateTime<chrono::Utc> {
        let base = self
            .times
            .len()
            .checked_sub(1 + usize::from(back))
            .and_then(|i| self.times.get(i).copied())
            .unwrap_or(self.now);
        base + chrono::Duration::microseconds(i64::from(nudge))
    }

    /// Keeps an event's position (learned from a read).
    pub fn keep_position(&mut self, event: EventId, position: EventCursor) {
        self.positions.insert(event.0, position);
        self.at_position.insert(position, event.0);
    }

    /// The position of the event bound to `name`, if a read showed it.
    pub fn position(&self, name: Ref) -> Option<EventCursor> {
        self.ids
            .get(&name)
            .and_then(|id| self.positions.get(id))
            .copied()
    }

    /// A cursor as text both backends agree on: `start`, `far` (past
    /// every position), the name of the event at that position, or
    /// `unknown`.
    pub fn cursor_text(&mut self, c: EventCursor) -> String {
        if c == EventCursor::START {
            return "start".to_owned();
        }
        if c == FAR {
            return "far".to_owned();
        }
        match self.at_position.get(&c).copied() {
            Some(id) => format!("@{}", self.name_of(id)),
            None => "unknown".to_owned(),
        }
    }

    /// Keeps the leases a claim handed out.
    pub fn keep_leases(&mut self, claim: Ref, leases: Vec<Lease>) {
        self.leases.insert(claim, leases);
    }

    /// The leases of `claim` (none if it failed or never ran).
    pub fn leases(&self, claim: Ref) -> Vec<Lease> {
        self.leases.get(&claim).cloned().unwrap_or_default()
    }

    /// Keeps the context an API key authenticated into.
    pub fn keep_key_context(&mut self, key: Ref, ctx: Context) {
        self.key_contexts.insert(key, ctx);
    }

    /// The request metadata of the current step.
    pub fn request(&self, who: &Who, idem: Option<u8>) -> RequestMeta {
        let mut meta = RequestMeta::default().with_request_id(format!("req-{}", self.step));
        if !matches!(who, Who::System(_)) {
            meta = meta
                .with_ip("198.51.100.7".parse().expect("valid ip"))
                .with_user_agent("differential-agent/1.0");
        }
        if let Some(k) = idem {
            meta = meta.with_idempotency_key(
                IdempotencyKey::parse(&format!("idem-{k}")).expect("valid idempotency key"),
            );
        }
        meta
    }

    /// The context `who` acts with.
    pub fn context(&mut self, who: &Who, request: RequestMeta) -> Context {
        let ctx = match who {
            Who::Nobody | Who::System(None) => Context::system("differential test"),
            Who::System(Some(t)) => {
                Context::system("differential test").in_tenant(self.id::<TenantId>(*t))
            }
            Who::User(u, t) => {
                let ctx = Context::user(self.id(*u));
                match t {
                    Some(t) => ctx.in_tenant(self.id(*t)),
                    None => ctx,
                }
            }
            Who::Key(k) => match self.key_contexts.get(k) {
                Some(ctx) => ctx.clone(),
                None => Context::api_key(ApiKeyPrincipal {
                    key_id: self.id::<ApiKeyId>(Ref::ghost(Kind::Key)),
                    tenant_id: self.id(Ref::ghost(Kind::Tenant)),
                    project_id: None,
                    environment_id: None,
                    permissions: Vec::new(),
                }),
            },
        };
        ctx.with_request(request)
    }

    /// The normalized outcome of a call.
    pub fn outcome<T: fmt::Debug>(&mut self, result: Result<T>) -> Outcome {
        match result {
            Ok(v) => Outcome::Ok(self.norm(&v)),
            Err(e) => self.error(&e),
        }
    }

    /// The normalized outcome of a call whose value was already normalized.
    pub fn outcome_text(&mut self, result: Result<String>) -> Outcome {
        match result {
            Ok(v) => Outcome::Ok(v),
            Err(e) => self.error(&e),
        }
    }

    fn error(&mut self, e: &Error) -> Outcome {
        Outcome::Err {
            code: e.code(),
            entity: e.entity().map(|x| x.as_str()),
            field: e.field(),
            display: self.names_in(&e.to_string()),
        }
    }

    /// `{:?}` of `v`, normalized.
    pub fn norm<T: fmt::Debug + ?Sized>(&mut self, v: &T) -> String {
        let text = self.names_in(&format!("{v:?}"));
        mask_hex64(&mask_hashes(&mask_tokens(&text)))
    }

    /// `text` with every uuid replaced by its name.
    pub fn names_in(&mut self, text: &str) -> String {
        let bytes = text.as_bytes();
        let mut out = String::with_capacity(text.len());
        let mut i = 0;
        while i < text.len() {
            if i + 36 <= text.len() && looks_like_uuid(&bytes[i..i + 36]) {
                if let Ok(id) = Uuid::parse_str(&text[i..i + 36]) {
                    out.push_str(&self.name_of(id));
                    i += 36;
                    continue;
                }
            }
            let c = text[i..].chars().next().expect("in bounds");
            out.push(c);
            i += c.len_utf8();
        }
        out
    }

    fn name_of(&mut self, id: Uuid) -> String {
        if let Some(n) = self.names.get(&id) {
            return n.clone();
        }
        self.anonymous += 1;
        let n = format!("#{}", self.anonymous);
        self.names.insert(id, n.clone());
        n
    }
}

/// The normalized items of a list whose order the trait leaves open (or
/// fixes by id, which differs between backends), sorted.
pub fn sorted_names<T: fmt::Debug>(env: &mut Env, items: &[T]) -> String {
    let mut names: Vec<String> = items.iter().map(|i| env.norm(i)).collect();
    names.sort();
    format!("[{}] (sorted)", names.join(", "))
}

fn looks_like_uuid(b: &[u8]) -> bool {
    b.iter().enumerate().all(|(i, c)| match i {
        8 | 13 | 18 | 23 => *c == b'-',
        _ => c.is_ascii_hexdigit(),
    })
}

/// Replaces the random part of token prefixes (`ipk_<16>`, `ipinv_<16>`).
fn mask_tokens(text: &str) -> String {
    let mut out = text.to_owned();
    for tag in ["ipk_", "ipinv_"] {
        let mut result = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(pos) = rest.find(tag) {
            result.push_str(&rest[..pos + tag.len()]);
            rest = &rest[pos + tag.len()..];
            let n = rest
                .bytes()
                .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                .count();
            if n > 0 {
                result.push('*');
            }
            rest = &rest[n..];
        }
        result.push_str(rest);
        out = result;
    }
    out
}

/// Replaces runs of exactly 64 hex digits (hashes of audit entries quoted
/// in a diff, e.g. `audit.purged`'s `through_hash`: computed over ids).
fn mask_hex64(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() == 64 {
            out.push_str("<hex64>");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_hexdigit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Replaces `hash: [..]` (an audit entry's hash: computed over ids).
fn mask_hashes(text: &str) -> String {
    let tag = "hash: [";
    let mut result = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find(tag) {
        result.push_str(&rest[..pos]);
        result.push_str("hash: <masked>");
        rest = &rest[pos + tag.len()..];
        rest = rest.find(']').map_or("", |end| &rest[end + 1..]);
    }
    result.push_str(rest);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_become_names_tokens_and_hashes_are_masked() {
        let mut env = Env::new(&[]);
        let p = Uuid::new_v4();
        env.bind(Ref::new(Kind::Project, 3), p);
        let other = Uuid::new_v4();
        let text =
            format!("ProjectId({p}) X({other}) X({other}) ipk_abcdef0123456789 hash: [1, 2, 3], z");
        assert_eq!(
            env.norm(&format_args!("{text}")),
            "ProjectId(p3) X(#1) X(#1) ipk_* hash: <masked>, z"
        );
        let ghost: Uuid = env.id(Ref::new(Kind::Project, 9));
        assert_eq!(env.names_in(&ghost.to_string()), "?");
        assert_eq!(env.names_in(&PLATFORM_TENANT.0.to_string()), "platform");
    }
}
