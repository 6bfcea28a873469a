//! The conformance suite: the one specification every backend is checked
//! against.
//!
//! Rule guarded here: a behaviour is specified once, as a case in this
//! module, and [`conformance_tests!`](crate::conformance_tests) runs every
//! case against any backend — the in-memory fake and PostgreSQL alike. A
//! divergence between backends is a bug in whichever one is wrong, never a
//! reason to special-case a test.
//!
//! Each case is `pub async fn case(h: Harness)`: it builds its world through
//! the public traits (see [`crate::fixtures`]), moves time only through
//! `h.clock`, and matches errors by variant and their typed parts (entity,
//! field, requirement, credential and reason), never by message — except
//! `error`, which pins the messages themselves.
//!
//! ```ignore
//! // memory backend (insightpulse-testing/tests/it/main.rs):
//! insightpulse_testing::conformance_tests!(#[tokio::test] () => insightpulse_testing::memory::harness());
//! // postgres backend:
//! insightpulse_testing::conformance_tests!(
//!     #[sqlx::test(migrator = "insightpulse_postgres::MIGRATOR")] (pool: sqlx::PgPool) => crate::harness(pool).await
//! );
//! ```

pub mod audit;
pub mod error;
pub mod idempotency;
pub mod jobs;
pub mod outbox;
pub mod privacy;
pub mod projects;
pub mod tenancy;

use insightpulse_core::{ManualClock, Repos};
use std::sync::Arc;

/// What a case runs against: one backend's repositories, all reading time
/// from `clock`.
#[derive(Debug, Clone)]
pub struct Harness {
    /// The backend under test.
    pub repos: Repos,
    /// The clock the backend reads; cases move it with `advance`.
    pub clock: Arc<ManualClock>,
}

/// Asserts that `$result` is an `Err` matching `$pattern` (an
/// `insightpulse_core::Error` pattern), printing what came back otherwise.
macro_rules! assert_err {
    ($result:expr, $pattern:pat $(,)?) => {
        match $result {
            Err(e) if matches!(e, $pattern) => {}
            other => panic!(
                "expected Err({}), got {:?} at {}:{}",
                stringify!($pattern),
                other,
                file!(),
                line!()
            ),
        }
    };
}
pub(crate) use assert_err;

/// Generates one test per conformance case for a backend.
///
/// Syntax: `conformance_tests!(#[test_attribute] (test fn args) => harness_expression);`
/// The harness expression is evaluated inside each (async) test function, so
/// it may use the test's arguments and `.await`. The generated tests live in
/// modules `tenancy`, `projects`, `audit`, `privacy`, `error`,
/// `idempotency` and `outbox` of the invoking module.
///
/// ```ignore
/// insightpulse_testing::conformance_tests!(#[tokio::test] () => insightpulse_testing::memory::harness());
/// ```
#[macro_export]
macro_rules! conformance_tests {
    (#[$attr:meta] $args:tt => $make:expr $(,)?) => {
        $crate::__conformance_cases!([#[$attr] $args => $make]);
    };
}

/// The case list, written once. Internal to [`conformance_tests!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($backend:tt) => {
        // One line per module; each module lists its own cases.
        $crate::__conformance_cases_tenancy!($backend);
        $crate::__conformance_cases_projects!($backend);
        $crate::__conformance_cases_audit!($backend);
        $crate::__conformance_cases_privacy!($backend);
        $crate::__conformance_cases_error!($backend);
        $crate::__conformance_cases_idempotency!($backend);
        $crate::__conformance_cases_outbox!($backend);
        $crate::__conformance_cases_jobs!($backend);
    };
}

/// Emits `mod $module` with one test per case. Internal to [`conformance_tests!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_module {
    ([#[$attr:meta] $args:tt => $make:expr] $module:ident [$($case:ident),* $(,)?]) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[$attr]
                async fn $case $args {
                    let h: $crate::conformance::Harness = $make;
                    $crate::conformance::$module::$case(h).await;
                }
            )*
        }
    };
}
