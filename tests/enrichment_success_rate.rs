//! Drills of the Low Enrichment Success Rate runbook: every scenario end to end, and
//! each scenario's control run (the same incident with the resolution replaced by
//! doing nothing).

mod common;

use common::{assert_control_needs_the_runbook, assert_drill_passed, drill};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_b_a_provider_answering_badly_falls_back_to_lastfm() {
    let report = drill("enrichment-success-rate/b-provider-underperforming").await;
    assert_drill_passed(&report);
    assert!(
        report.timeline_text.contains("Deliberate config change")
            && report.timeline_text.contains("priority 2 → lastfm"),
        "the priority swap is reported as a deliberate change:\n{}",
        report.render()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_c_timeouts_end_with_a_longer_timeout() {
    assert_drill_passed(&drill("enrichment-success-rate/c-timeout-issues").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_runbook_a_provider_answering_badly_keeps_the_rate_down() {
    assert_control_needs_the_runbook("enrichment-success-rate/b-provider-underperforming").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_runbook_slow_lookups_keep_timing_out() {
    assert_control_needs_the_runbook("enrichment-success-rate/c-timeout-issues").await;
}
