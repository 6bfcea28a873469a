//! Time is a parameter. Domain rules (expiry, backoff, billing periods) read
//! the time from a [`Clock`] handed to the backend, never from the wall
//! clock directly, so tests can move time forward on every backend alike.

use chrono::{DateTime, Duration, DurationRound, Utc};
use std::sync::Mutex;

/// A source of the current instant.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant, truncated to microseconds (PostgreSQL's
    /// precision) so a value read back from the database compares equal to
    /// the value written.
    fn now(&self) -> DateTime<Utc>;
}

/// `t` at PostgreSQL's precision (microseconds), so an instant survives a
/// round trip through the database unchanged (hashes and equality rely on it).
pub fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::microseconds(1)).unwrap_or(t)
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        truncate_to_micros(Utc::now())
    }
}

/// A clock that only moves when told to.
///
/// ```
/// use insightpulse_core::{Clock, ManualClock};
/// let clock = ManualClock::starting_now();
/// let t0 = clock.now();
/// clock.advance(chrono::Duration::days(8));
/// assert_eq!(clock.now() - t0, chrono::Duration::days(8));
/// ```
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    /// A manual clock set to `t`.
    pub fn new(t: DateTime<Utc>) -> Self {
        Self(Mutex::new(truncate_to_micros(t)))
    }
    /// A manual clock set to the current wall-clock time.
    pub fn starting_now() -> Self {
        Self::new(Utc::now())
    }
    /// Moves the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().expect("clock lock");
        *t += by;
    }
    /// Sets the clock to `t`.
    pub fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().expect("clock lock") = truncate_to_micros(t);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock lock")
    }
}
