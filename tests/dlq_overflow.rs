//! Drills of the DLQ Overflow runbook: every scenario, end to end.

mod common;

use common::{assert_drill_passed, drill};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_a_breaker_errors_waits_for_recovery_then_replays() {
    assert_drill_passed(&drill("dlq-overflow/a-breaker-errors").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_b_timeouts_raises_the_timeout_then_replays() {
    assert_drill_passed(&drill("dlq-overflow/b-timeouts").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_c_rate_limit_pauses_scrapers_until_the_limit_lifts() {
    assert_drill_passed(&drill("dlq-overflow/c-rate-limit").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_d_invalid_data_is_purged_into_the_archive() {
    let report = drill("dlq-overflow/d-invalid-data").await;
    assert_drill_passed(&report);
    let ledger = report.ledger.as_ref().unwrap();
    assert!(
        ledger.archived >= 1000,
        "purged messages are archived: {ledger:?}"
    );
}
