//! Drills of the Database Connection Pool Exhaustion runbook: every scenario end to
//! end, and each scenario's control run (the same incident with the resolution replaced
//! by doing nothing).

mod common;

use common::{assert_control_needs_the_runbook, assert_drill_passed, drill};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_a_long_running_queries_are_killed_as_they_pass_ten_minutes() {
    let report = drill("db-connection-pool/a-long-running-queries").await;
    assert_drill_passed(&report);
    assert!(
        report.timeline_text.contains("sessions terminated"),
        "the runaway queries were terminated:\n{}",
        report.render()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_b_a_leak_that_has_passed_is_cured_by_a_restart() {
    assert_drill_passed(&drill("db-connection-pool/b-connection-leak").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_b_a_leak_in_the_build_is_escalated_after_the_restart() {
    let report = drill("db-connection-pool/b-leak-persists").await;
    assert_drill_passed(&report);
    let escalation = report.escalated.as_deref().unwrap_or_default();
    assert!(
        escalation.contains("the leak came back after the restart")
            && escalation.contains("idle in transaction"),
        "the escalation carries its evidence:\n{}",
        report.render()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_c_more_traffic_than_the_pool_holds_is_met_with_a_larger_pool() {
    let report = drill("db-connection-pool/c-need-more-connections").await;
    assert_drill_passed(&report);
    assert!(
        report.timeline_text.contains("Deliberate config change")
            && report.timeline_text.contains("POSTGRES_POOL_SIZE 10 → 20"),
        "the new sizing is reported as a deliberate change:\n{}",
        report.render()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_runbook_runaway_queries_hold_the_pool() {
    assert_control_needs_the_runbook("db-connection-pool/a-long-running-queries").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_runbook_leaked_connections_stay_leaked() {
    assert_control_needs_the_runbook("db-connection-pool/b-connection-leak").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_runbook_a_leak_in_the_build_is_not_escalated() {
    assert_control_needs_the_runbook("db-connection-pool/b-leak-persists").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_runbook_the_traffic_keeps_the_pool_full() {
    assert_control_needs_the_runbook("db-connection-pool/c-need-more-connections").await;
}
