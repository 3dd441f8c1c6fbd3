//! Drills of the Scraper Stalled runbook: a hung spider a restart cures, and a site
//! that is down, which the runbook must escalate; each with its control run.

mod common;

use common::{assert_control_needs_the_runbook, assert_drill_passed, drill};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_a_a_hung_spider_is_restarted_and_scrapes_again() {
    let report = drill("scraper-stalled/a-spider-hung").await;
    assert_drill_passed(&report);
    assert!(
        report.timeline_text.contains("scraped page"),
        "the followed log shows the spider at work again:\n{}",
        report.render()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_b_a_site_that_is_down_is_escalated_with_its_answer() {
    let report = drill("scraper-stalled/b-source-site-down").await;
    assert_drill_passed(&report);
    let escalation = report.escalated.as_deref().unwrap_or_default();
    assert!(
        escalation.contains("1001tracklists is down (HTTP 503)"),
        "the escalation carries the site's answer:\n{}",
        report.render()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_runbook_a_hung_spider_stays_hung() {
    assert_control_needs_the_runbook("scraper-stalled/a-spider-hung").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_runbook_a_site_outage_is_not_escalated() {
    assert_control_needs_the_runbook("scraper-stalled/b-source-site-down").await;
}
