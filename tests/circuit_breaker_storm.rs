//! Drills of the Circuit Breaker Storm runbook: every scenario end to end, and each
//! scenario's control run (the same incident with the resolution replaced by doing
//! nothing).

mod common;

use common::{assert_control_needs_the_runbook, assert_drill_passed, drill};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_a_external_outage_disables_then_re_enables_the_provider() {
    let report = drill("circuit-breaker-storm/a-external-outage").await;
    assert_drill_passed(&report);
    // The provider comes back on its own time: most of the resolution is waiting on it.
    let waited = report.waiting_on_world.expect("measured");
    assert!(!waited.is_zero(), "{}", report.render());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_runbook_an_outage_ends_only_with_the_provider() {
    assert_control_needs_the_runbook("circuit-breaker-storm/a-external-outage").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_runbook_a_lost_route_stays_lost() {
    assert_control_needs_the_runbook("circuit-breaker-storm/b-network-issue").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_runbook_a_rate_limit_does_not_lift() {
    assert_control_needs_the_runbook("circuit-breaker-storm/c-rate-limiting").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_runbook_a_stuck_breaker_stays_open() {
    assert_control_needs_the_runbook("circuit-breaker-storm/d-breaker-stuck").await;
}
