//! Remediation safety on a stack with no incident: every runbook, run as if paged on a
//! healthy stack (its workload and seeded history, no fault), does no harm. Its
//! investigation may find nothing, or choose a scenario and resolve it; either way
//! nothing is lost, no alert is raised (its own included), verification holds, and a
//! change to `metadata_enrichment_config` is reported. Running a resolution twice is
//! covered by every drill ([`harness::DrillOptions::with_second_resolution`]); a
//! runbook that does harm when nothing is wrong fails in `drill_can_fail`.

mod common;

use common::{assert_did_no_harm, run_with_no_incident};

async fn does_no_harm(runbook_id: &str) {
    let runbook = runbooks::by_id(runbook_id).expect("a known runbook");
    assert_did_no_harm(&run_with_no_incident(runbook.as_ref()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_overflow_does_no_harm_with_no_incident() {
    does_no_harm("dlq-overflow").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_breaker_storm_does_no_harm_with_no_incident() {
    does_no_harm("circuit-breaker-storm").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scraper_stalled_does_no_harm_with_no_incident() {
    does_no_harm("scraper-stalled").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_connection_pool_does_no_harm_with_no_incident() {
    does_no_harm("db-connection-pool").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_space_does_no_harm_with_no_incident() {
    let runbook = runbooks::by_id("disk-space").expect("a known runbook");
    let report = run_with_no_incident(runbook.as_ref()).await;
    assert_did_no_harm(&report);
    assert!(
        report
            .render()
            .contains("not above the alert's 85%: nothing to free"),
        "it reads df first and finds no incident:\n{}",
        report.render()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_does_no_harm_with_no_incident() {
    does_no_harm("memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrichment_success_rate_does_no_harm_with_no_incident() {
    does_no_harm("enrichment-success-rate").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_quality_does_no_harm_with_no_incident() {
    does_no_harm("data-quality").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_gateway_errors_does_no_harm_with_no_incident() {
    does_no_harm("api-gateway-errors").await;
}
