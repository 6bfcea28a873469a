//! When a failed job runs again: exponential backoff with jitter, as pure
//! maths so it can be tested to its bounds.
//!
//! Rule: the n-th failed attempt waits `base · factorⁿ⁻¹`, capped at
//! `max`, then shortened by a random share of at most `jitter` (so many
//! jobs failing together do not come back together). The result is always
//! within `[cap · (1 − jitter), cap]`, never negative, never above `max`.

use chrono::Duration;

/// How long to wait between attempts.
///
/// ```
/// use insightpulse_core::jobs::RetryPolicy;
/// use chrono::Duration;
/// let p = RetryPolicy::default();
/// // Without jitter (u = 0) the delays double from `base`.
/// assert_eq!(p.delay(1, 0.0), p.base);
/// assert_eq!(p.delay(2, 0.0), p.base * 2);
/// assert!(p.delay(60, 0.99) <= p.max);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// The wait after the first failure.
    pub base: Duration,
    /// The growth per further failure (≥ 1).
    pub factor: f64,
    /// The longest wait.
    pub max: Duration,
    /// The largest share of a wait jitter may take off (0..=1).
    pub jitter: f64,
}

impl Default for RetryPolicy {
    /// 2 s, doubling, at most an hour, up to half taken off at random.
    fn default() -> Self {
        Self {
            base: Duration::seconds(2),
            factor: 2.0,
            max: Duration::hours(1),
            jitter: 0.5,
        }
    }
}

impl RetryPolicy {
    /// The wait before the attempt after failed attempt `attempt` (1 for
    /// the first), for a uniform random `u` in `[0, 1)` (clamped there).
    pub fn delay(&self, attempt: u32, u: f64) -> Duration {
        let max_ms = self.max.num_milliseconds().max(0) as f64;
        let base_ms = self.base.num_milliseconds().max(0) as f64;
        let factor = if self.factor.is_finite() {
            self.factor.max(1.0)
        } else {
            1.0
        };
        // powi of a large exponent is +inf, which min() caps.
        let exp = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let capped = (base_ms * factor.powi(exp)).min(max_ms);
        let jitter = if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let u = if u.is_finite() {
            u.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let ms = capped * (1.0 - jitter * u);
        Duration::milliseconds(ms.max(0.0).round() as i64)
    }

    /// [`Self::delay`] with a fresh random `u`.
    pub fn random_delay(&self, attempt: u32) -> Duration {
        self.delay(attempt, rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_up_to_the_cap() {
        let p = RetryPolicy {
            base: Duration::seconds(1),
            factor: 3.0,
            max: Duration::seconds(100),
            jitter: 0.0,
        };
        let secs: Vec<i64> = (1..=6).map(|a| p.delay(a, 0.7).num_seconds()).collect();
        assert_eq!(secs, [1, 3, 9, 27, 81, 100]);
        assert_eq!(p.delay(u32::MAX, 0.0), Duration::seconds(100));
        assert_eq!(p.delay(0, 0.0), Duration::seconds(1));
    }

    #[test]
    fn jitter_stays_within_its_bounds() {
        let p = RetryPolicy::default();
        for attempt in 1..=30 {
            let cap = p.delay(attempt, 0.0);
            assert!(cap <= p.max);
            for i in 0..100 {
                let u = f64::from(i) / 100.0;
                let d = p.delay(attempt, u);
                assert!(d <= cap, "{attempt} {u}");
                assert!(
                    d.num_milliseconds() as f64
                        >= cap.num_milliseconds() as f64 * (1.0 - p.jitter) - 1.0,
                    "{attempt} {u}"
                );
            }
            let r = p.random_delay(attempt);
            assert!(r <= cap && r >= Duration::zero());
        }
        // Without jitter the random delay is the cap itself.
        let steady = RetryPolicy { jitter: 0.0, ..p };
        assert_eq!(steady.random_delay(3), p.base * 4);
        // Out-of-range inputs are clamped, never negative or above the cap.
        let wild = RetryPolicy {
            base: Duration::seconds(-5),
            factor: f64::NAN,
            max: Duration::seconds(10),
            jitter: 7.0,
        };
        assert_eq!(wild.delay(3, 0.5), Duration::zero());
        let p = RetryPolicy { jitter: 1.0, ..p };
        assert_eq!(p.delay(1, 5.0), Duration::zero());
        assert_eq!(p.delay(1, f64::NAN), p.base);
    }
}
