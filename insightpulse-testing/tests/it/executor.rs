//! The fake hashes passwords the way the Postgres backend does: on the
//! blocking pool. A host's test running the fake on a single-threaded
//! runtime keeps its other tasks (timers, servers) running meanwhile.

use insightpulse_core::tenancy::passwords::PasswordCost;
use insightpulse_core::tenancy::{NewTenant, SignUp};
use insightpulse_core::{Email, Name, RequestMeta, SecretString, Slug, TimeZone};
use insightpulse_testing::memory::MemoryBackend;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "current_thread")]
async fn argon2_never_stalls_the_executor() {
    let repos = MemoryBackend::new()
        .with_password_cost(PasswordCost::Standard)
        .repos();
    let sign_up = SignUp {
        email: Email::parse("ada@example.com").unwrap(),
        password: SecretString::from("correct horse battery staple"),
        full_name: None,
        tenant: NewTenant {
            slug: Slug::parse("ada").unwrap(),
            name: Name::parse("Ada").unwrap(),
            timezone: TimeZone::parse("UTC").unwrap(),
        },
    };
    // The ticker records when it last ran and the longest gap between runs.
    let last = std::cell::Cell::new(Instant::now());
    let longest = std::cell::Cell::new(Duration::ZERO);
    let ticker = async {
        loop {
            last.set(Instant::now());
            tokio::time::sleep(Duration::from_millis(1)).await;
            longest.set(longest.get().max(last.get().elapsed()));
        }
    };
    let started = Instant::now();
    let signed_up = tokio::select! {
        biased;
        () = ticker => unreachable!("the ticker never ends"),
        done = repos.auth.sign_up(RequestMeta::default(), sign_up) => done.unwrap(),
    };
    longest.set(longest.get().max(last.get().elapsed()));
    let took = started.elapsed();
    assert!(signed_up.user.has_password);
    // Standard argon2 is slow on purpose; hashed on the executor it would
    // stop the ticker for all of it.
    assert!(
        took > Duration::from_millis(20),
        "argon2 took only {took:?}"
    );
    assert!(
        longest.get() < took * 3 / 4,
        "the executor stalled for {:?} of the {took:?} sign-up",
        longest.get()
    );
}
