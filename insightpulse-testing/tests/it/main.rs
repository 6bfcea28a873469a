//! The one integration-test binary of insightpulse-testing: the whole
//! conformance suite on the in-memory backend, plus examples of host-app
//! tests (mocks, the memory backend).

mod executor;
mod host_app;

insightpulse_testing::conformance_tests!(#[tokio::test] () => insightpulse_testing::memory::harness());
