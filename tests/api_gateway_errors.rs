//! Drills of the API Gateway High Error Rate runbook, which resolves by following the
//! Circuit Breaker Storm runbook: both scenarios end to end, and their control runs.

mod common;

use common::{assert_control_needs_the_runbook, assert_drill_passed, drill};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_a_an_outage_seen_at_the_gateway_follows_the_storm_runbook() {
    let report = drill("api-gateway-errors/a-provider-outage").await;
    assert_drill_passed(&report);
    assert!(
        report
            .timeline_text
            .contains("Follow Circuit Breaker Storm runbook"),
        "{}",
        report.render()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_b_a_lost_route_is_cleared_by_restarting_the_gateway() {
    assert_drill_passed(&drill("api-gateway-errors/b-gateway-network").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_runbook_an_outage_ends_only_with_the_provider() {
    assert_control_needs_the_runbook("api-gateway-errors/a-provider-outage").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_runbook_the_gateways_route_stays_lost() {
    assert_control_needs_the_runbook("api-gateway-errors/b-gateway-network").await;
}
