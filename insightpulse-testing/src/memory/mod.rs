//! The in-memory backend: every repository trait of core, implemented over
//! plain collections behind one `std::sync::Mutex`.
//!
//! Rule guarded here: the fake behaves exactly like the PostgreSQL backend
//! (visibility as RLS gives it, permission checks through core's pure
//! evaluator, uniqueness, referential checks and `ON DELETE CASCADE`, state
//! transitions, ordering with bytewise text comparison). The conformance
//! suite runs against both; any divergence is a bug in whichever is wrong.
//!
//! Every call validates everything first and mutates only at the end, while
//! holding the lock once, so a failed call changes nothing. The lock is never
//! held across an `.await` (the bodies are synchronous). An audited
//! mutation appends its audit entry inside that same locked mutation (see
//! `audit.rs`), as PostgreSQL writes it in the same transaction.

mod audit;
mod guard;
mod idempotency;
mod jobs;
mod outbox;
mod privacy;
mod projects;
mod tables;
mod tenancy;

pub use jobs::MemoryJobWaker;
pub(crate) use tables::{MinId, TenantRows, TenantTable};

use crate::conformance::Harness;
use insightpulse_core::tenancy::passwords::PasswordCost;
use insightpulse_core::tenancy::tokens::TokenHasher;
use insightpulse_core::{
    Clock, Context, EnvironmentId, Error, ManualClock, ProjectId, Repos, ReposBuilder, Result,
    SystemClock, TenantId,
};
use std::sync::{Arc, Mutex, MutexGuard};

/// The pepper [`MemoryBackend::new`] keys its [`TokenHasher`] with. Fixed, so
/// tokens are reproducible within a test run; never use it in production.
pub const TEST_PEPPER: &[u8] = b"insightpulse-testing-fixed-pepper-not-for-production";

/// The in-memory backend. Cheap to clone; clones share one state.
///
/// ```
/// use insightpulse_testing::memory::MemoryBackend;
/// use insightpulse_core::ManualClock;
/// use std::sync::Arc;
///
/// let clock = Arc::new(ManualClock::starting_now());
/// let repos = MemoryBackend::new().with_clock(clock.clone()).repos();
/// # let _ = repos;
/// ```
#[derive(Clone)]
pub struct MemoryBackend {
    state: Arc<Mutex<State>>,
    clock: Arc<dyn Clock>,
    hasher: TokenHasher,
    password_cost: PasswordCost,
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBackend {
    /// An empty backend (built-in roles and the permission catalog only) on
    /// the system clock, hashing tokens under [`TEST_PEPPER`] and passwords
    /// with [`PasswordCost::InsecureFastForTests`] (so a host's tests do not
    /// spend seconds in argon2; see [`Self::with_password_cost`]).
    pub fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(State::seeded())),
            clock: Arc::new(SystemClock),
            hasher: TokenHasher::new(TEST_PEPPER.to_vec()).expect("the test pepper is long enough"),
            password_cost: PasswordCost::InsecureFastForTests,
        }
    }

    /// The same backend hashing new passwords at `cost` (e.g.
    /// [`PasswordCost::Standard`] to measure what production sign-ups cost).
    pub fn with_password_cost(mut self, cost: PasswordCost) -> Self {
        self.password_cost = cost;
        self
    }

    /// The same backend (same state) reading time from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The same backend (same state) hashing tokens with `hasher`.
    pub fn with_token_hasher(mut self, hasher: TokenHasher) -> Self {
        self.hasher = hasher;
        self
    }

    /// A builder over this backend's repositories, to replace some of them
    /// (with mocks, say) in a host's test:
    ///
    /// ```
    /// # #[cfg(feature = "mocks")] {
    /// use insightpulse_testing::{memory::MemoryBackend, mocks::MockProjectRepo};
    /// let repos = MemoryBackend::new().repos_builder().projects(MockProjectRepo::new()).build();
    /// # let _ = repos; }
    /// ```
    pub fn repos_builder(&self) -> ReposBuilder {
        self.repos().into_builder()
    }

    /// Every repository of this backend, over its one shared state.
    pub fn repos(&self) -> Repos {
        let me = Arc::new(self.clone());
        Repos {
            auth: me.clone(),
            tenants: me.clone(),
            users: me.clone(),
            members: me.clone(),
            teams: me.clone(),
            rbac: me.clone(),
            sso: me.clone(),
            api_keys: me.clone(),
            projects: me.clone(),
            audit: me.clone(),
            privacy: me.clone(),
            outbox: me.clone(),
            jobs: me,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in another test thread must not poison every later call.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// Runs one repository call inside its tracing span. Only the operation,
    /// the tenant and the principal's kind are recorded — never a secret.
    fn run<T>(&self, ctx: &Context, op: &'static str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        span(ctx, op).in_scope(f)
    }

    /// [`Self::run`] for a call that awaits: one that hashes or verifies a
    /// password on the blocking pool.
    async fn run_async<T>(
        &self,
        ctx: &Context,
        op: &'static str,
        f: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        tracing::Instrument::instrument(f, span(ctx, op)).await
    }
}

fn span(ctx: &Context, op: &'static str) -> tracing::Span {
    tracing::debug_span!(
        "insightpulse",
        op,
        tenant = ?ctx.tenant_id(),
        principal = ctx.principal_kind().as_str()
    )
}

/// Runs argon2 — deliberately slow — on the blocking pool, as the Postgres
/// backend does, so a host's tests on the fake never stall the executor.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(Error::backend)
}

/// [`passwords::hash`](insightpulse_core::tenancy::passwords::hash) off the executor.
async fn hash_password(
    password: &insightpulse_core::SecretString,
    cost: PasswordCost,
) -> Result<String> {
    let password = password.clone();
    blocking(move || insightpulse_core::tenancy::passwords::hash(&password, cost)).await?
}

/// [`passwords::verify`](insightpulse_core::tenancy::passwords::verify) off the executor.
async fn verify_password(
    password: &insightpulse_core::SecretString,
    stored: Option<String>,
    cost: PasswordCost,
) -> Result<bool> {
    let password = password.clone();
    blocking(move || {
        insightpulse_core::tenancy::passwords::verify(&password, stored.as_deref(), cost)
    })
    .await
}

/// A conformance [`Harness`] over a fresh memory backend on a fresh
/// [`ManualClock`] set to the current time.
pub fn harness() -> Harness {
    let clock = Arc::new(ManualClock::starting_now());
    let repos = MemoryBackend::new().with_clock(clock.clone()).repos();
    Harness { repos, clock }
}

// ---------------------------------------------------------------------------
// State: one part per module, each defined (with its tables) in the module's
// file; one line here per module.
// ---------------------------------------------------------------------------

/// The whole in-memory database: each module's tables, as PostgreSQL holds
/// them. A module reads another's tables freely (a join); it writes only
/// its own, and reacts to another module's deletions through a hook
/// (see the cascades below).
#[derive(Default)]
pub(crate) struct State {
    pub tenancy: tenancy::TenancyState,
    pub projects: projects::ProjectsState,
    pub audit: audit::AuditState,
    pub privacy: privacy::PrivacyState,
    pub idempotency: idempotency::IdempotencyState,
    pub outbox: outbox::OutboxState,
    pub jobs: jobs::JobsState,
}

impl State {
    /// A fresh database: the built-in roles and nothing else.
    fn seeded() -> Self {
        Self {
            tenancy: tenancy::TenancyState::seeded(),
            ..Self::default()
        }
    }

    // --- cascades across modules (ON DELETE CASCADE / SET NULL) ----------
    //
    // A deletion removes the owning module's rows, then every module whose
    // tables hold a foreign key to them reacts through its `on_*_deleted`
    // hook — the memory side of the referencing table's `ON DELETE` clause.
    // A module that adds such a reference adds one line here.

    /// Removes an environment; the API keys scoped to it go with it.
    pub fn delete_environment(&mut self, t: TenantId, id: EnvironmentId) {
        self.projects.remove_environment(t, id);
        self.tenancy.on_environment_deleted(t, id);
    }

    /// Removes a project with its environments; its project-level grants
    /// and the API keys scoped to it go with it.
    pub fn delete_project(&mut self, t: TenantId, id: ProjectId) {
        self.projects.remove_project(t, id);
        self.tenancy.on_project_deleted(t, id);
    }

    /// Removes a tenant and every row that belongs to it. Outliving it: its
    /// audit chain (only the system can read it then), its outbox events
    /// and cursors, and the idempotency keys made in it (they expire).
    pub fn delete_tenant(&mut self, t: TenantId) {
        self.tenancy.remove_tenant(t);
        self.projects.on_tenant_deleted(t);
        self.privacy.on_tenant_deleted(t);
        self.jobs.on_tenant_deleted(t);
    }
}
