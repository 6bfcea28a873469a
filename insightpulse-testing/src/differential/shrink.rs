//! Delta debugging: removes chunks of steps, then single steps, as long as
//! the same divergence (same [`signature`](super::run::Disagreement::signature))
//! still shows. Every candidate runs on fresh backends; names whose
//! creating step was removed resolve to ghosts, so any subsequence is a
//! well-defined sequence.

use super::ops::Step;
use super::run::{execute, Disagreement, Source};
use super::{Config, RealBackend};

/// At most this many candidate runs per divergence.
const MAX_RUNS: usize = 300;

/// A shrunk divergence.
#[derive(Debug, Clone)]
pub struct Shrunk {
    /// The minimal sequence.
    pub steps: Vec<Step>,
    /// The divergence it shows.
    pub disagreement: Disagreement,
    /// Candidate runs it took.
    pub runs: usize,
}

/// The smallest subsequence of `steps` that still shows `target`.
pub async fn shrink(
    real: &dyn RealBackend,
    seed: u64,
    steps: &[Step],
    target: &Disagreement,
    config: &Config,
) -> Shrunk {
    let signature = target.signature();
    let mut current: Vec<Step> = if target.in_view {
        steps.to_vec()
    } else {
        steps[..=target.index.min(steps.len() - 1)].to_vec()
    };
    let mut best = target.clone();
    let mut runs = 0;
    let mut chunk = (current.len() / 2).max(1);
    loop {
        let mut removed = false;
        let mut i = 0;
        while i < current.len() && runs < MAX_RUNS {
            let end = (i + chunk).min(current.len());
            let candidate: Vec<Step> = current[..i]
                .iter()
                .chain(&current[end..])
                .cloned()
                .collect();
            runs += 1;
            match reproduce(real, seed, &candidate, &signature, config).await {
                Some(d) => {
                    current = candidate;
                    best = d;
                    removed = true;
                }
                None => i += chunk,
            }
        }
        if runs >= MAX_RUNS || (chunk == 1 && !removed) {
            break;
        }
        if !removed {
            chunk = (chunk / 2).max(1);
        }
    }
    if !best.in_view {
        current.truncate(best.index + 1);
    }
    Shrunk {
        steps: current,
        disagreement: best,
        runs,
    }
}

/// The divergence with `signature` if `steps` still show it.
async fn reproduce(
    real: &dyn RealBackend,
    seed: u64,
    steps: &[Step],
    signature: &str,
    config: &Config,
) -> Option<Disagreement> {
    let trace = execute(real, seed, Source::Fixed(steps), config, true)
        .await
        .ok()?;
    trace.found.into_iter().find(|d| d.signature() == signature)
}
