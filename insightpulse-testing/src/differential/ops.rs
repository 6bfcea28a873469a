//! What a sequence is made of: logical names ([`Ref`]), actors ([`Who`]),
//! steps ([`Step`]) and the top-level [`Op`], which holds one module's
//! operation per variant. The values behind an operation's small indices
//! (slugs, emails, names …) come from the pools at the end of this file, so
//! an operation prints as what it sends.

use super::audit::AuditOp;
use super::credentials::CredentialOp;
use super::env::{Env, Outcome};
use super::generate::Gen;
use super::jobs::JobOp;
use super::members::MemberOp;
use super::model::Model;
use super::outbox::OutboxOp;
use super::privacy::PrivacyOp;
use super::projects::ProjectOp;
use super::rbac::RbacOp;
use super::tenancy::TenancyOp;
use async_trait::async_trait;
use insightpulse_core::tenancy::catalog::BUILTIN_ROLES;
use insightpulse_core::{Context, Repos};
use std::fmt;

/// The kind of a logical name; it fixes the name's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A user account (`u3`).
    User,
    /// A tenant (`t1`).
    Tenant,
    /// A project (`p2`).
    Project,
    /// An environment (`e0`).
    Environment,
    /// A team (`team1`).
    Team,
    /// A role (`role5`; the built-in roles are `role:Admin` …).
    Role,
    /// A role grant (`g4`).
    Grant,
    /// An invitation (`inv2`).
    Invitation,
    /// An SSO provider (`sso0`).
    Provider,
    /// A federated identity (`idn1`).
    Identity,
    /// An API key (`key3`).
    Key,
    /// An audit entry recorded by the host (`ae0`).
    Entry,
    /// A consent entry (`c2`).
    Consent,
    /// An outbox event (`ev4`).
    Event,
    /// A job of the queue (`j1`).
    Job,
    /// A claim of jobs: names the leases it handed out (`claim0`); never
    /// bound to an id.
    Claim,
}

impl Kind {
    /// The prefix of its names.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::User => "u",
            Self::Tenant => "t",
            Self::Project => "p",
            Self::Environment => "e",
            Self::Team => "team",
            Self::Role => "role",
            Self::Grant => "g",
            Self::Invitation => "inv",
            Self::Provider => "sso",
            Self::Identity => "idn",
            Self::Key => "key",
            Self::Entry => "ae",
            Self::Consent => "c",
            Self::Event => "ev",
            Self::Job => "j",
            Self::Claim => "claim",
        }
    }
}

/// A logical name: what an operation calls a row instead of its id. Each
/// backend binds it to its own id when the creating operation succeeds; a
/// name no earlier operation bound resolves to a fresh random id (a
/// "ghost", normalized as `?` on both sides).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ref {
    /// Its kind.
    pub kind: Kind,
    /// Its number within the kind.
    pub idx: u32,
}

/// The index of a name that is never bound.
pub const GHOST: u32 = u32::MAX;

/// The index of the tenant name bound to the platform's audit trail
/// ([`PLATFORM_TENANT`](insightpulse_core::audit::PLATFORM_TENANT)).
pub const PLATFORM: u32 = u32::MAX - 1;

impl Ref {
    /// `kind` number `idx`.
    pub fn new(kind: Kind, idx: u32) -> Self {
        Self { kind, idx }
    }
    /// A name that is never bound.
    pub fn ghost(kind: Kind) -> Self {
        Self { kind, idx: GHOST }
    }
}

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.idx == GHOST {
            return write!(f, "{}?", self.kind.prefix());
        }
        if self.idx == PLATFORM && self.kind == Kind::Tenant {
            return f.write_str("platform");
        }
        if self.kind == Kind::Role {
            if let Some(b) = BUILTIN_ROLES.get(self.idx as usize) {
                return write!(f, "role:{}", b.name.replace(' ', "_"));
            }
        }
        write!(f, "{}{}", self.kind.prefix(), self.idx)
    }
}

/// Who performs a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// Nobody: the calls made before there is a context (`sign_up`,
    /// `sign_in`, `authenticate`) and clock moves.
    Nobody,
    /// A user, in a tenant or in none.
    User(Ref, Option<Ref>),
    /// The context the last successful `authenticate` of this key returned
    /// (a forged key principal of a ghost key if it never succeeded).
    Key(Ref),
    /// The system, in a tenant or in none.
    System(Option<Ref>),
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Nobody => f.write_str("-"),
            Self::User(u, Some(t)) => write!(f, "{u}@{t}"),
            Self::User(u, None) => write!(f, "{u}"),
            Self::Key(k) => write!(f, "{k}"),
            Self::System(Some(t)) => write!(f, "system@{t}"),
            Self::System(None) => f.write_str("system"),
        }
    }
}

/// One step of a sequence: who calls what, with which idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The caller.
    pub by: Who,
    /// The request's idempotency key (`idem-<n>`), if any. Every call gets
    /// it; only the calls that honour keys look at it.
    pub idem: Option<u8>,
    /// The call.
    pub op: Op,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<14} {}", self.by.to_string(), self.op)?;
        if let Some(k) = self.idem {
            write!(f, "  [idempotency key idem-{k}]")?;
        }
        Ok(())
    }
}

/// One module's operations: what each module file implements. The
/// interpreter and the generator reach a module only through this trait
/// and the [`modules!`] list below.
#[async_trait]
pub(crate) trait ModuleOp:
    Clone + fmt::Debug + fmt::Display + PartialEq + Send + Sync
{
    /// The repository method it calls (`create_project` …).
    fn method(&self) -> &'static str;
    /// Whether it changes nothing on any backend (so a run may go on after
    /// the backends disagreed on it).
    fn is_read(&self) -> bool;
    /// A new step of this module, or `None` when nothing fits the model.
    fn generate(g: &mut Gen) -> Option<(Who, Self)>;
    /// Updates the generator's model after the fake ran the step (`ok`:
    /// whether it succeeded there).
    fn observe(&self, by: &Who, model: &mut Model, ok: bool);
    /// Runs the operation on one backend as `ctx`; binds what it creates.
    async fn apply(&self, ctx: &Context, env: &mut Env, repos: &Repos) -> Outcome;
    /// Every repository method this module's operations call, to report
    /// coverage.
    fn methods() -> &'static [&'static str];
}

/// Declares [`Op`] from the list of modules and dispatches to them. A new
/// module adds one line here.
macro_rules! modules {
    ($( $(#[$doc:meta])* $variant:ident($ty:ty), )+) => {
        /// One operation: a clock move, or one module's repository call.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Op {
            /// Moves the shared clock forward by this many seconds.
            Advance(i64),
            /// Moves the shared clock so that the next step runs exactly
            /// `secs` seconds after the step `back` steps before this one
            /// (an expiry's or a retention cutoff's very instant); does
            /// nothing if that instant has passed.
            AdvanceToEdge {
                /// How many steps back.
                back: u8,
                /// Seconds after that step.
                secs: i64,
            },
            $( $(#[$doc])* $variant($ty), )+
        }

        impl Op {
            /// The repository method called (`advance` for a clock move).
            pub fn method(&self) -> &'static str {
                match self {
                    Self::Advance(_) | Self::AdvanceToEdge { .. } => "advance",
                    $( Self::$variant(op) => op.method(), )+
                }
            }
            /// Whether it changes nothing on any backend.
            pub fn is_read(&self) -> bool {
                match self {
                    Self::Advance(_) | Self::AdvanceToEdge { .. } => false,
                    $( Self::$variant(op) => op.is_read(), )+
                }
            }
            pub(crate) fn observe(&self, by: &Who, model: &mut Model, ok: bool) {
                match self {
                    Self::Advance(_) | Self::AdvanceToEdge { .. } => {}
                    $( Self::$variant(op) => op.observe(by, model, ok), )+
                }
            }
            pub(crate) async fn apply(&self, ctx: &Context, env: &mut Env, repos: &Repos) -> Outcome {
                match self {
                    Self::Advance(_) | Self::AdvanceToEdge { .. } => Outcome::Ok(String::new()),
                    $( Self::$variant(op) => op.apply(ctx, env, repos).await, )+
                }
            }
            /// Every repository method the operations call.
            pub fn all_methods() -> Vec<&'static str> {
                let mut all = Vec::new();
                $( all.extend_from_slice(<$ty as ModuleOp>::methods()); )+
                all
            }
        }

        impl fmt::Display for Op {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    Self::Advance(s) => write!(f, "advance {}", super::generate::duration_text(*s)),
                    Self::AdvanceToEdge { back, secs } => write!(
                        f,
                        "advance until the next step runs {} after step -{back}",
                        super::generate::duration_text(*secs)
                    ),
                    $( Self::$variant(op) => fmt::Display::fmt(op, f), )+
                }
            }
        }

        /// The module whose operations call `method`.
        pub(crate) fn module_of(method: &str) -> Option<&'static str> {
            $(
                if <$ty as ModuleOp>::methods().contains(&method) {
                    return Some(stringify!($variant));
                }
            )+
            None
        }

        /// A step of one module, chosen by the modules' weights.
        pub(crate) fn generate_module(g: &mut Gen, module: &str) -> Option<(Who, Op)> {
            $(
                if module == stringify!($variant) {
                    return <$ty as ModuleOp>::generate(g).map(|(w, op)| (w, Op::$variant(op)));
                }
            )+
            None
        }
    };
}

modules! {
    /// Sign-up, sign-in, API-key authentication, tenants, users.
    Tenancy(TenancyOp),
    /// Memberships, invitations, teams.
    Members(MemberOp),
    /// Roles, grants, permission checks.
    Rbac(RbacOp),
    /// SSO providers and identities, API keys.
    Credentials(CredentialOp),
    /// Projects and environments.
    Projects(ProjectOp),
    /// The audit trail.
    Audit(AuditOp),
    /// Data policies, retention, consents, erasure.
    Privacy(PrivacyOp),
    /// Domain events: publish, read and commit by cursor, follow, purge.
    Outbox(OutboxOp),
    /// The job queue: enqueue, read, claim and settle, cancel, purge.
    Jobs(JobOp),
}

// ---------------------------------------------------------------------------
// Pools: the values behind an operation's indices. Small on purpose, so
// duplicates (taken slugs and emails, repeated subjects) come up often.
// ---------------------------------------------------------------------------

/// Emails: `u<i>@ex.test`, two of them with non-ASCII letters.
pub fn email(i: u8) -> String {
    match i {
        13 => "Ünï.çødé@ex.test".to_owned(),
        14 => "İstanbul.ΣΑΣ@ex.test".to_owned(),
        _ => format!("u{i}@ex.test"),
    }
}

/// The same email written in another case (emails are case-insensitive).
pub fn email_shouted(i: u8) -> String {
    email(i).to_uppercase()
}

/// Passwords; index 9 is too short (a `Validation` error).
pub fn password(i: u8) -> String {
    if i == 9 {
        "short".to_owned()
    } else {
        format!("password-{i}-correct-horse")
    }
}

/// Tenant slugs.
pub fn tenant_slug(i: u8) -> String {
    format!("acme{i}")
}

/// Project slugs.
pub fn project_slug(i: u8) -> String {
    format!("web{i}")
}

/// Team slugs.
pub fn team_slug(i: u8) -> String {
    format!("team{i}")
}

/// Display names, with untrimmed and non-ASCII ones.
pub fn display_name(i: u8) -> String {
    match i % 6 {
        0 => format!("Name {i}"),
        1 => format!("  Padded {i}  "),
        2 => format!("Café {i}"),
        3 => format!("Zeta {i}"),
        4 => format!("alpha {i}"),
        _ => format!("Ünïcode {i}"),
    }
}

/// IANA time zones.
pub const TIME_ZONES: &[&str] = &["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"];
