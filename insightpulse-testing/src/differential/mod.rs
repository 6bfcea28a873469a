//! The differential test: the in-memory fake against a real backend.
//!
//! Rule guarded here: **a host's tests on the fake mean something only if
//! the fake agrees with PostgreSQL on the sequences a real app produces.**
//! The conformance suite pins behaviours one case at a time; this module
//! looks for the sequences nobody wrote a case for. Seeded random sequences
//! over every method of [`Repos`] are applied to
//! both backends, which share one [`ManualClock`];
//! their outcomes are compared call by call, and at the end every actor's
//! whole view (every list it may read, its permissions) is compared too. A
//! divergence is shrunk to a minimal sequence and reported with its seed.
//!
//! ```ignore
//! // insightpulse-postgres/tests/it/differential.rs
//! let config = differential::Config::from_env(12, 80);
//! if let Err(report) = differential::check(&PgDatabases::new().await, &config).await {
//!     panic!("{report}");
//! }
//! ```
//!
//! ## How a sequence is made and compared
//!
//! * A [`Step`](ops::Step) is a caller ([`Who`](ops::Who)), an optional
//!   idempotency key and an [`Op`](ops::Op). Arguments are logical names
//!   ([`Ref`](ops::Ref): `t1`, `u3`, `p2`, `key0`, `role:Admin` …) and small
//!   indices into value pools, so a step prints as what it sends. Each
//!   backend binds a name to its own id when the creating call succeeds; a
//!   name nothing bound is a fresh random "ghost" id on both sides, so any
//!   subsequence of a sequence is a sequence too.
//! * Callers: owners, members with built-in and custom roles, suspended and
//!   removed members, outsiders, users without a tenant, API keys (tenant,
//!   project or environment scoped, each the context `authenticate`
//!   returned), the system with and without a tenant, and all of them after
//!   their tenant, project or key is gone.
//! * The generator ([`generate`]) keeps a [`Model`](model::Model) of what
//!   exists, fed by the fake's answers, and mostly makes valid calls: a
//!   call that needs a row the tenant lacks is mostly replaced by the call
//!   that makes it. It also plays sessions (a key just authenticated, a
//!   member who just joined, the key of a tenant just deleted act in most of
//!   the next steps, a key mostly doing what its permissions allow), client
//!   retries (a recent step repeated as it was, idempotency key included),
//!   and edges: the clock is moved so that the next step runs exactly at an
//!   invitation's or a key's expiry, a minute after a key's last recorded
//!   use, or at the start of the audit report's window; retention runs
//!   with a cutoff exactly at an earlier step's rows.
//! * Time: the clock starts at a seed-dependent instant and moves 1.001 ms
//!   before every step (rows of different steps never tie on creation
//!   time), and by `advance` steps (30 s to 40 days).
//! * An [`Outcome`](env::Outcome) is `Ok(normalized value)` or the error's
//!   `code()`, `entity()`, `field()` and `Display`. Values are compared as
//!   `{:?}` text with uuids replaced by names, and random token prefixes and
//!   hashes computed over ids masked ([`env`](mod@env)). Lists whose order the traits
//!   leave open or fix by id (`list_team_members`, `list_identities`, the
//!   tenants of an erasure report, the outcomes of a retention report, the
//!   jobs of a claim) are sorted first. Outbox positions are the backend's
//!   own numbers: a cursor prints as the name of the event it stands at.
//!   Where a backend may choose at random (which tenants a short job claim
//!   serves first, ties between equal jobs), the generated operations leave
//!   it no choice ([`jobs`](mod@jobs)).
//! * Every call runs in its own task under a timeout; a hang or a panic is
//!   an outcome too.
//! * At the end, every caller of the sequence reads everything it may
//!   ([`view`]): the lists of each module, every user, its permissions
//!   tenant-wide and on every project; the system reads each row; the
//!   platform's audit trail is verified.
//! * A divergence is shrunk ([`shrink`]) and reported with its seed, the
//!   minimal sequence and both outcomes.
//!
//! ## Running it
//!
//! The defaults are the caller's (a CI budget). Environment variables:
//! `INSIGHTPULSE_DIFF_SEEDS` (how many seeds, from `INSIGHTPULSE_DIFF_FIRST_SEED`,
//! default 0), `INSIGHTPULSE_DIFF_OPS` (steps per sequence),
//! `INSIGHTPULSE_DIFF_SEED=<n>` (replay one seed), `INSIGHTPULSE_DIFF_TIMEOUT_SECS`
//! (per call, default 5), `INSIGHTPULSE_DIFF_ALL=1` (do not stop at the
//! first divergence: go on through the remaining seeds and report every
//! distinct one, each shrunk), `INSIGHTPULSE_DIFF_IGNORE=<pattern>;<pattern>`
//! (skip divergences whose signature — the text after `divergence:` in a
//! report — contains a pattern, to look past known ones),
//! `INSIGHTPULSE_DIFF_TRACE=1` (print every step of the generated sequences
//! with the fake's outcome).
//!
//! ## Adding a module's operations
//!
//! A module `M` (integrations, secrets, billing …) adds one file, its rows
//! in the model, and one line in two lists:
//!
//! 1. `differential/M.rs`, like `projects.rs`: `enum MOp` (one variant per
//!    repository method; arguments as [`Ref`](ops::Ref)s — a new
//!    [`Kind`](ops::Kind) for each new kind of row — and pool indices), its
//!    `Display` (the method name and its arguments), and `impl ModuleOp for
//!    MOp`: `method`, `is_read`, `methods` (its method names, for the
//!    coverage report), `generate` (pick a tenant with `g.tenant()`, the
//!    method with `g.next_method(METHODS, WEIGHTS, needs)?` — what it needs
//!    first may be another module's call, which then goes next — rows with
//!    `g.row_in(..)`, the caller with `g.actor(t)`; push a
//!    fresh name for what it creates to the model), `observe` (mark rows
//!    made or deleted when the fake said `ok`) and `apply` (call the
//!    repository, `env.bind` what it created, return `env.outcome(result)`;
//!    sort lists whose order the trait leaves open with
//!    [`env::sorted_names`]).
//! 2. Its rows in [`Model`](model::Model) (`Vec<Row>` per kind of row).
//! 3. One line in the `modules!` list of `ops.rs` (`M(MOp)`) and its weight
//!    in `MODULE_WEIGHTS` of `generate.rs`; its list calls in `view.rs`'s
//!    `lists`, so every caller's final view covers them. The unit test
//!    `two_fakes_agree_and_every_method_succeeds` then checks that the
//!    generator reaches every new method.

pub mod audit;
pub mod credentials;
pub mod env;
pub mod generate;
pub mod jobs;
pub mod members;
pub mod model;
pub mod ops;
pub mod outbox;
pub mod privacy;
pub mod projects;
pub mod rbac;
pub mod run;
pub mod shrink;
pub mod tenancy;
pub mod view;

use async_trait::async_trait;
use insightpulse_core::{ManualClock, Repos};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The backend compared with the fake.
#[async_trait]
pub trait RealBackend: Send + Sync {
    /// A fresh, empty backend reading `clock` (hashing tokens with
    /// `TokenHasher::insecure_development()`, as the fake does here).
    async fn fresh(&self, clock: Arc<ManualClock>) -> Result<Repos, String>;
    /// Frees what the last [`Self::fresh`] made (a database, say).
    async fn release(&self);
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The seeds.
    pub seeds: Vec<u64>,
    /// Steps per sequence.
    pub ops: usize,
    /// Per-call timeout.
    pub timeout: Duration,
    /// Report every distinct divergence instead of stopping at the first.
    pub all: bool,
    /// Divergences whose signature contains one of these are not reported
    /// (known ones, while they are being fixed); a run goes on after one
    /// that changed nothing on either side.
    pub ignore: Vec<String>,
    /// Print every generated step with the fake's outcome (stderr).
    pub trace: bool,
}

impl Config {
    /// `seeds` seeds of `ops` steps, unless the environment says otherwise
    /// (see the module documentation).
    pub fn from_env(seeds: u64, ops: usize) -> Self {
        let var = |name: &str| -> Option<u64> {
            std::env::var(name).ok().map(|v| {
                v.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}"))
            })
        };
        let first = var("INSIGHTPULSE_DIFF_FIRST_SEED").unwrap_or(0);
        let count = var("INSIGHTPULSE_DIFF_SEEDS").unwrap_or(seeds);
        let seeds = match var("INSIGHTPULSE_DIFF_SEED") {
            Some(one) => vec![one],
            None => (first..first + count).collect(),
        };
        Self {
            seeds,
            ops: var("INSIGHTPULSE_DIFF_OPS").map_or(ops, |n| n as usize),
            timeout: Duration::from_secs(var("INSIGHTPULSE_DIFF_TIMEOUT_SECS").unwrap_or(5)),
            all: var("INSIGHTPULSE_DIFF_ALL").is_some_and(|v| v != 0),
            trace: var("INSIGHTPULSE_DIFF_TRACE").is_some_and(|v| v != 0),
            ignore: std::env::var("INSIGHTPULSE_DIFF_IGNORE")
                .map(|v| {
                    v.split(';')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Whether `d` is one of the ignored divergences.
    pub fn ignores(&self, d: &run::Disagreement) -> bool {
        let signature = d.signature();
        self.ignore.iter().any(|p| signature.contains(p.as_str()))
    }
}

/// What a passing run did.
#[derive(Debug)]
pub struct Summary {
    /// Seeds run.
    pub seeds: usize,
    /// Calls made (views included), per method: `(ok, err)` on the fake.
    pub calls: BTreeMap<&'static str, (usize, usize)>,
    /// Wall time.
    pub elapsed: Duration,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total: usize = self.calls.values().map(|(a, b)| a + b).sum();
        writeln!(
            f,
            "differential: {} seeds, {total} calls on each backend, {:.1?}",
            self.seeds, self.elapsed
        )?;
        let all = ops::Op::all_methods();
        let never: Vec<&str> = all
            .iter()
            .filter(|m| !self.calls.contains_key(*m))
            .copied()
            .collect();
        let never_ok: Vec<&str> = all
            .iter()
            .filter(|m| self.calls.get(*m).is_some_and(|(ok, _)| *ok == 0))
            .copied()
            .collect();
        writeln!(
            f,
            "  {} of {} methods called; never called: {never:?}; never succeeded: {never_ok:?}",
            all.len() - never.len(),
            all.len()
        )?;
        let per: Vec<String> = self
            .calls
            .iter()
            .map(|(m, (ok, err))| format!("{m} {ok}/{err}"))
            .collect();
        write!(f, "  ok/err per method: {}", per.join(", "))
    }
}

/// One divergence, shrunk.
#[derive(Debug, Clone)]
pub struct Divergence {
    /// The seed that found it.
    pub seed: u64,
    /// The minimal sequence and what it shows.
    pub shrunk: shrink::Shrunk,
    /// Steps of the original sequence up to the divergence.
    pub original_len: usize,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.shrunk.disagreement;
        writeln!(f, "divergence: {}", d.signature())?;
        writeln!(
            f,
            "  seed {} (replay: INSIGHTPULSE_DIFF_SEED={}), clock from {}; shrunk from {} to {} steps in {} runs:",
            self.seed,
            self.seed,
            run::clock_start(self.seed),
            self.original_len,
            self.shrunk.steps.len(),
            self.shrunk.runs
        )?;
        for (i, s) in self.shrunk.steps.iter().enumerate() {
            writeln!(f, "    {i:>3}  {s}")?;
        }
        if d.in_view {
            writeln!(f, "    then, in the final view: {}", d.step)?;
        }
        writeln!(f, "  fake: {}", d.fake)?;
        write!(f, "  real: {}", d.real)
    }
}

/// Why [`check`] failed.
#[derive(Debug)]
pub struct Report {
    /// The divergences, shrunk.
    pub divergences: Vec<Divergence>,
    /// Runs that could not start (a backend that failed to come up).
    pub errors: Vec<String>,
    /// What ran.
    pub summary: Summary,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "the fake and the real backend disagree ({} distinct divergences):\n",
            self.divergences.len()
        )?;
        for d in &self.divergences {
            writeln!(f, "{d}\n")?;
        }
        for e in &self.errors {
            writeln!(f, "error: {e}")?;
        }
        write!(f, "{}", self.summary)
    }
}

/// Runs every seed of `config` against `real`; shrinks what diverges.
pub async fn check(real: &dyn RealBackend, config: &Config) -> Result<Summary, Report> {
    let started = Instant::now();
    let mut calls: BTreeMap<&'static str, (usize, usize)> = BTreeMap::new();
    let mut divergences = Vec::new();
    let mut errors = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut seeds = 0;
    for &seed in &config.seeds {
        seeds += 1;
        let mut gen = generate::Gen::new(seed);
        let source = run::Source::Generated(&mut gen, config.ops);
        let trace = match run::execute(real, seed, source, config, config.all).await {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!("seed {seed}: {e}"));
                continue;
            }
        };
        for (m, ok) in &trace.calls {
            let entry = calls.entry(m).or_default();
            if *ok {
                entry.0 += 1;
            } else {
                entry.1 += 1;
            }
        }
        for d in &trace.found {
            if !seen.insert(d.signature()) {
                continue;
            }
            let shrunk = shrink::shrink(real, seed, &trace.steps, d, config).await;
            divergences.push(Divergence {
                seed,
                shrunk,
                original_len: if d.in_view {
                    trace.steps.len()
                } else {
                    d.index + 1
                },
            });
        }
        if !divergences.is_empty() && !config.all {
            break;
        }
    }
    let summary = Summary {
        seeds,
        calls,
        elapsed: started.elapsed(),
    };
    if divergences.is_empty() && errors.is_empty() {
        Ok(summary)
    } else {
        Err(Report {
            divergences,
            errors,
            summary,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryBackend;
    use insightpulse_core::tenancy::tokens::TokenHasher;
    use insightpulse_core::Clock;

    /// A second fake, reading the shared clock `skew` later.
    struct Fake {
        skew: chrono::Duration,
    }

    #[derive(Debug)]
    struct Skewed(Arc<ManualClock>, chrono::Duration);

    impl Clock for Skewed {
        fn now(&self) -> chrono::DateTime<chrono::Utc> {
            self.0.now() + self.1
        }
    }

    #[async_trait]
    impl RealBackend for Fake {
        async fn fresh(&self, clock: Arc<ManualClock>) -> Result<Repos, String> {
            Ok(MemoryBackend::new()
                .with_clock(Arc::new(Skewed(clock, self.skew)))
                .with_token_hasher(TokenHasher::insecure_development())
                .repos())
        }
        async fn release(&self) {}
    }

    fn config(seeds: u64, ops: usize) -> Config {
        Config {
            seeds: (0..seeds).collect(),
            ops,
            timeout: Duration::from_secs(5),
            all: false,
            ignore: Vec::new(),
            trace: false,
        }
    }

    /// The harness itself is deterministic: two fakes never disagree, and
    /// the generator reaches every method, each succeeding somewhere.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_fakes_agree_and_every_method_succeeds() {
        let fake = Fake {
            skew: chrono::Duration::zero(),
        };
        let summary = match check(&fake, &config(40, 150)).await {
            Ok(s) => s,
            Err(report) => panic!("{report}"),
        };
        let never_ok: Vec<&str> = ops::Op::all_methods()
            .into_iter()
            .filter(|m| summary.calls.get(m).is_none_or(|(ok, _)| *ok == 0))
            .collect();
        assert!(
            never_ok.is_empty(),
            "never succeeded: {never_ok:?}\n{summary}"
        );
        println!("{summary}");
    }

    /// A backend one microsecond late disagrees on the first row it makes,
    /// and the shrinker gets there.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_disagreement_is_found_and_shrunk() {
        let late = Fake {
            skew: chrono::Duration::microseconds(1),
        };
        let report = check(&late, &config(1, 30))
            .await
            .expect_err("the clocks differ");
        let d = &report.divergences[0];
        assert_eq!(d.shrunk.steps.len(), 1, "{report}");
        assert!(
            d.shrunk.disagreement.signature().contains("values differ"),
            "{report}"
        );
        assert!(
            report.to_string().contains("INSIGHTPULSE_DIFF_SEED=0"),
            "{report}"
        );
    }
}
