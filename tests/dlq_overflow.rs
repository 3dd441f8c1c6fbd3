//! Drills of the DLQ Overflow runbook: every scenario end to end, and each scenario's
//! control run (the same incident with the resolution replaced by doing nothing).

mod common;

use common::{assert_control_needs_the_runbook, assert_drill_passed, drill};

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
async fn scenario_d_invalid_data_replays_what_it_can_and_purges_only_the_unfixable() {
    let report = drill("dlq-overflow/d-invalid-data").await;
    assert_drill_passed(&report);
    let ledger = report.ledger.as_ref().unwrap();
    assert!(
        ledger.discarded_unfixable >= 500,
        "the garbage was purged into the archive: {ledger:?}"
    );
    assert_eq!(ledger.lost_work, 0, "{ledger:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_runbook_a_breaker_error_flood_does_not_resolve() {
    assert_control_needs_the_runbook("dlq-overflow/a-breaker-errors").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_runbook_a_timeout_flood_does_not_resolve() {
    assert_control_needs_the_runbook("dlq-overflow/b-timeouts").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_runbook_a_rate_limit_does_not_lift() {
    assert_control_needs_the_runbook("dlq-overflow/c-rate-limit").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_runbook_invalid_data_stays_in_the_dlq() {
    assert_control_needs_the_runbook("dlq-overflow/d-invalid-data").await;
}
