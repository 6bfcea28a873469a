//! The interpreter: applies each step to both backends (the fake first,
//! then the real one, at the same instant of the shared clock), each call
//! in its own task under a timeout so a hang or a panic becomes an
//! [`Outcome`], and compares the outcomes.

use super::env::{Env, Outcome};
use super::generate::Gen;
use super::ops::{Op, Step, Who};
use super::view::view_steps;
use super::{Config, RealBackend};
use crate::memory::MemoryBackend;
use insightpulse_core::tenancy::catalog::BUILTIN_ROLES;
use insightpulse_core::tenancy::tokens::TokenHasher;
use insightpulse_core::uuid::Uuid;
use insightpulse_core::{Context, ManualClock, Repos, TenantId};
use std::sync::Arc;
use std::time::Duration;

/// How far the clock moves before every step: requests do not happen in
/// the same microsecond, and rows made by different steps never tie on
/// their creation time (lists ordered by creation break ties by id, which
/// differs between backends).
pub const TICK: chrono::Duration = chrono::Duration::microseconds(1_001);

/// Where two backends disagreed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disagreement {
    /// The step's index in the sequence (view steps follow the sequence).
    pub index: usize,
    /// The step.
    pub step: Step,
    /// Whether the step belongs to the final view.
    pub in_view: bool,
    /// The fake's outcome.
    pub fake: Outcome,
    /// The real backend's outcome.
    pub real: Outcome,
}

impl Disagreement {
    /// What identifies the divergence while shrinking: the method (and for
    /// a step of the final view, the kind of caller) and how the outcomes
    /// differ.
    pub fn signature(&self) -> String {
        let what = if self.in_view {
            let by = match self.step.by {
                Who::User(..) => "a user",
                Who::Key(_) => "an API key",
                Who::System(_) => "the system",
                Who::Nobody => "nobody",
            };
            format!("{} in the final view, by {by}", self.step.op.method())
        } else {
            self.step.op.method().to_owned()
        };
        let (a, b) = (self.fake.class(), self.real.class());
        let how = if a != b {
            String::new()
        } else if self.fake.is_ok() {
            " (values differ)".to_owned()
        } else {
            " (texts differ)".to_owned()
        };
        format!("{what}: fake {a} vs real {b}{how}")
    }

    /// Whether both backends are still comparable after it: a read, or a
    /// call both refused (so neither changed anything).
    pub fn harmless(&self) -> bool {
        let both_refused =
            matches!(self.fake, Outcome::Err { .. }) && matches!(self.real, Outcome::Err { .. });
        self.step.op.is_read() || both_refused
    }
}

/// Both backends, their environments and the shared clock.
pub struct Runner {
    clock: Arc<ManualClock>,
    fake: Repos,
    real: Repos,
    fake_env: Option<Env>,
    real_env: Option<Env>,
    timeout: Duration,
    index: usize,
    /// When each step ran.
    times: Vec<chrono::DateTime<chrono::Utc>>,
}

impl Runner {
    /// A runner over two fresh backends reading `clock`. Binds the built-in
    /// roles on each side (by name, through `list_roles`).
    pub async fn new(
        clock: Arc<ManualClock>,
        fake: Repos,
        real: Repos,
        timeout: Duration,
    ) -> Result<Self, String> {
        let fake_env = Env::new(&builtin_roles(&fake).await?);
        let real_env = Env::new(&builtin_roles(&real).await?);
        Ok(Self {
            clock,
            fake,
            real,
            fake_env: Some(fake_env),
            real_env: Some(real_env),
            timeout,
            index: 0,
            times: Vec::new(),
        })
    }

    /// Whether both environments survived every call so far (a call that
    /// timed out or panicked takes its environment with it).
    pub fn alive(&self) -> bool {
        self.fake_env.is_some() && self.real_env.is_some()
    }

    /// Runs one step on both backends; `Some` when they disagree.
    pub async fn step(&mut self, step: &Step, in_view: bool) -> (Outcome, Option<Disagreement>) {
        let index = self.index;
        self.index += 1;
        self.clock.advance(TICK);
        match step.op {
            Op::Advance(secs) => self.clock.advance(chrono::Duration::seconds(secs)),
            Op::AdvanceToEdge { back, secs } => {
                let base = index
                    .checked_sub(usize::from(back))
                    .and_then(|i| self.times.get(i));
                if let Some(base) = base {
                    let target = *base + chrono::Duration::seconds(secs) - TICK;
                    if target > insightpulse_core::Clock::now(&*self.clock) {
                        self.clock.set(target);
                    }
                }
            }
            _ => {}
        }
        let now = insightpulse_core::Clock::now(&*self.clock);
        self.times.push(now);
        let (Some(fake_env), Some(real_env)) = (self.fake_env.take(), self.real_env.take()) else {
            return (Outcome::Timeout, None);
        };
        let (fake, fake_env) = call(
            self.fake.clone(),
            fake_env,
            step.clone(),
            index,
            now,
            self.timeout,
        )
        .await;
        let (real, real_env) = call(
            self.real.clone(),
            real_env,
            step.clone(),
            index,
            now,
            self.timeout,
        )
        .await;
        self.fake_env = fake_env;
        self.real_env = real_env;
        let disagreement = (fake != real).then(|| Disagreement {
            index,
            step: step.clone(),
            in_view,
            fake: fake.clone(),
            real,
        });
        (fake, disagreement)
    }
}

/// The ids of the built-in roles, in catalog order.
async fn builtin_roles(repos: &Repos) -> Result<Vec<Uuid>, String> {
    let ctx = Context::system("differential test: built-in roles").in_tenant(TenantId::new());
    let roles = repos
        .rbac
        .list_roles(&ctx)
        .await
        .map_err(|e| format!("listing the built-in roles: {e}"))?;
    BUILTIN_ROLES
        .iter()
        .map(|b| {
            roles
                .iter()
                .find(|r| r.tenant_id.is_none() && r.name.as_str() == b.name)
                .map(|r| r.id.0)
                .ok_or_else(|| format!("no built-in role {}", b.name))
        })
        .collect()
}

/// Runs `step` on one backend in its own task, under `timeout`.
async fn call(
    repos: Repos,
    mut env: Env,
    step: Step,
    index: usize,
    now: chrono::DateTime<chrono::Utc>,
    timeout: Duration,
) -> (Outcome, Option<Env>) {
    let task = tokio::spawn(async move {
        env.step = index;
        env.now = now;
        env.times.push(now);
        let request = env.request(&step.by, step.idem);
        let ctx = env.context(&step.by, request);
        let outcome = step.op.apply(&ctx, &mut env, &repos).await;
        (outcome, env)
    });
    let abort = task.abort_handle();
    match tokio::time::timeout(timeout, task).await {
        Ok(Ok((outcome, env))) => (outcome, Some(env)),
        Ok(Err(e)) => {
            let message = match e.try_into_panic() {
                Ok(payload) => payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-text panic".to_owned()),
                Err(e) => e.to_string(),
            };
            (Outcome::Panic(message), None)
        }
        Err(_) => {
            abort.abort();
            (Outcome::Timeout, None)
        }
    }
}

/// Where a run's steps come from.
pub enum Source<'a> {
    /// The seeded generator, for this many steps.
    Generated(&'a mut Gen, usize),
    /// A fixed sequence (a replay while shrinking).
    Fixed(&'a [Step]),
}

/// What one run of a sequence found.
#[derive(Debug, Default)]
pub struct Trace {
    /// The steps run (without the view).
    pub steps: Vec<Step>,
    /// The disagreements, in order.
    pub found: Vec<Disagreement>,
    /// Steps run, view included, and `(method, fake's outcome was Ok)` of
    /// each.
    pub calls: Vec<(&'static str, bool)>,
}

/// The shared clock's start for `seed`: an instant in 2026–2027, so month
/// and year boundaries fall at different places of different sequences.
pub fn clock_start(seed: u64) -> chrono::DateTime<chrono::Utc> {
    let base = chrono::DateTime::from_timestamp(1_767_225_600, 0).expect("2026-01-01");
    let mixed = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    base + chrono::Duration::microseconds((mixed % (700 * 86_400 * 1_000_000)) as i64)
}

/// Runs a sequence on a fresh fake and a fresh real backend sharing one
/// clock, then (unless the backends stopped being comparable) the final
/// view. With `go_on`, a disagreement that changed nothing on either side
/// does not stop the run.
pub async fn execute(
    real: &dyn RealBackend,
    seed: u64,
    mut source: Source<'_>,
    config: &Config,
    go_on: bool,
) -> Result<Trace, String> {
    let timeout = config.timeout;
    let clock = Arc::new(ManualClock::new(clock_start(seed)));
    let fake = MemoryBackend::new()
        .with_clock(clock.clone())
        .with_token_hasher(TokenHasher::insecure_development())
        .repos();
    let real_repos = real.fresh(clock.clone()).await?;
    let result = async {
        let mut runner = Runner::new(clock, fake, real_repos, timeout).await?;
        let mut trace = Trace::default();
        let mut comparable = true;
        loop {
            let step = match &mut source {
                Source::Generated(g, n) if trace.steps.len() < *n => g.next_step(),
                Source::Fixed(steps) if trace.steps.len() < steps.len() => {
                    steps[trace.steps.len()].clone()
                }
                _ => break,
            };
            let (fake_outcome, d) = runner.step(&step, false).await;
            if config.trace {
                eprintln!("{:>4} {step}\n       => {fake_outcome}", trace.steps.len());
            }
            if let Source::Generated(g, _) = &mut source {
                g.observe(&step, fake_outcome.is_ok());
            }
            trace.calls.push((step.op.method(), fake_outcome.is_ok()));
            trace.steps.push(step);
            if let Some(d) = d {
                let harmless = d.harmless();
                let ignored = config.ignores(&d);
                if !ignored {
                    trace.found.push(d);
                }
                if !((go_on || ignored) && harmless) {
                    comparable = false;
                    break;
                }
            }
            if !runner.alive() {
                comparable = false;
                break;
            }
        }
        if comparable {
            for step in view_steps(&trace.steps) {
                let (fake_outcome, d) = runner.step(&step, true).await;
                trace.calls.push((step.op.method(), fake_outcome.is_ok()));
                if let Some(d) = d.filter(|d| !config.ignores(d)) {
                    trace.found.push(d);
                    if !go_on {
                        break;
                    }
                }
                if !runner.alive() {
                    break;
                }
            }
        }
        Ok(trace)
    }
    .await;
    real.release().await;
    result
}
