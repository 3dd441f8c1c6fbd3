//! The harness must be able to fail: a wrong runbook, or a fault nobody heals,
//! makes a drill fail with a message that says what was expected, what was seen,
//! what was injected when, and what the runbook did.

mod common;

use common::{drill_scenario, drill_with, scenario};
use harness::scenario::FaultSpec;
use runbooks::circuit_breaker_storm::{self, CircuitBreakerStorm};
use runbooks::dlq_overflow::{self, DlqOverflow};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_before_the_breaker_recovers_fails_the_dlq_drill() {
    let runbook = DlqOverflow::with_flaw(dlq_overflow::Flaw::ReplayBeforeRecovery);
    // The outage outlasts the drill's verification, so that whatever is replayed
    // early fails for certain (with the scenario's 7 minutes, part of a slow replay
    // could land after the provider is back).
    let mut scenario = scenario("dlq-overflow/a-breaker-errors");
    // The flaw fails the drill at any scale; at 60 its long outage passes faster.
    scenario.scale = 60.0;
    for fault in &mut scenario.faults {
        if let FaultSpec::ProviderOutage {
            heal_after_minutes, ..
        } = fault
        {
            *heal_after_minutes = Some(40.0);
        }
    }
    let report = drill_scenario(&runbook, &scenario).await;
    let text = report.render();
    assert!(
        !report.passed(),
        "a premature replay must not pass:\n{text}"
    );
    assert!(text.contains("FAILED"), "{text}");
    assert!(
        text.contains("✗ verification ✗ DLQ depth decreasing: expected decreasing over 3 samples (or 0), observed"),
        "the failed criterion says what was expected and what was seen:\n{text}"
    );
    assert!(text.contains("fault timeline:"), "{text}");
    assert!(
        text.contains("spotify answers 503"),
        "the fault is named:\n{text}"
    );
    assert!(text.contains("step log:"), "{text}");
    assert!(
        text.contains("Replay DLQ batch"),
        "the replay step is logged:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_re_enabling_the_provider_fails_the_storm_drill() {
    let runbook = CircuitBreakerStorm::with_flaw(circuit_breaker_storm::Flaw::NeverReEnable);
    let report = drill_with(&runbook, "circuit-breaker-storm/a-external-outage").await;
    let text = report.render();
    assert!(!report.passed(), "{text}");
    assert!(
        text.contains("remediation left metadata_enrichment_config changed"),
        "the drift is named:\n{text}"
    );
    assert!(text.contains("enabled=false"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_that_never_heals_fails_the_storm_drill_with_the_awaited_condition() {
    // The scenario's outage, minus its end: the provider never comes back.
    let mut scenario = scenario("circuit-breaker-storm/a-external-outage");
    for fault in &mut scenario.faults {
        if let harness::scenario::FaultSpec::ProviderOutage {
            heal_after_minutes, ..
        } = fault
        {
            *heal_after_minutes = None;
        }
    }
    let stack = common::stack("unhealed-outage", scenario.scale).await;
    let options = harness::DrillOptions::new(
        std::sync::Arc::new(runbooks::ops::AutoApprove),
        common::SEED,
    );
    let report = harness::run_drill(&stack, &CircuitBreakerStorm::default(), &scenario, &options)
        .await
        .expect("the drill runs");
    stack.shutdown().await.expect("the stack stops");
    let text = report.render();
    assert!(!report.passed(), "{text}");
    assert!(
        text.contains("Monitor for spotify API recovery"),
        "the awaited condition is named:\n{text}"
    );
    assert!(text.contains("still not true after"), "{text}");
    assert!(
        text.contains("spotify answers 503"),
        "the last observation is shown:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_purge_stops_the_drill_at_the_approval_gate() {
    let report = common::drill_approved_by(
        &DlqOverflow::default(),
        &scenario("dlq-overflow/d-invalid-data"),
        std::sync::Arc::new(runbooks::ops::RefuseAll),
    )
    .await;
    let text = report.render();
    assert!(!report.passed(), "{text}");
    assert!(
        text.contains(
            "Purge bad messages that can't be fixed: refused at the approval gate by refuse-all"
        ),
        "the refused step is named:\n{text}"
    );
    let ledger = report.ledger.as_ref().expect("a ledger");
    assert_eq!(
        ledger.archived, 0,
        "nothing is purged without approval: {ledger:?}"
    );
}
