//! Drills of the Circuit Breaker Storm runbook: every scenario, end to end.

mod common;

use common::{assert_drill_passed, drill};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_a_external_outage_disables_then_re_enables_the_provider() {
    assert_drill_passed(&drill("circuit-breaker-storm/a-external-outage").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_b_network_issue_is_cured_by_restarting_the_gateway() {
    assert_drill_passed(&drill("circuit-breaker-storm/b-network-issue").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_c_rate_limiting_pauses_the_workers() {
    assert_drill_passed(&drill("circuit-breaker-storm/c-rate-limiting").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_d_stuck_breaker_is_reset() {
    assert_drill_passed(&drill("circuit-breaker-storm/d-breaker-stuck").await);
}
