//! Shared set-up of the drill test targets: a stack on free ports, and a drill of
//! one scenario file against it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use harness::scenario::{self, Scenario};
use harness::{DrillOptions, DrillReport, run_drill};
use runbooks::DynRunbook;
use runbooks::ops::{Approver, AutoApprove};
use stack::{Backend, BackendChoice, KeepPolicy, Stack, StackOptions};

pub const SEED: u64 = 42;

pub fn twin_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_drill"))
}

/// The backend `DRILL_BACKEND` names (`auto` when unset: docker when the engine
/// and images are there). CI runs the suite once with each.
pub async fn backend() -> Backend {
    let selected = BackendChoice::from_env()
        .expect("DRILL_BACKEND is local, docker or auto")
        .select()
        .await
        .expect("the chosen backend can run here");
    eprintln!("{selected}");
    selected.backend
}

/// A test stack at `scale`, on free ports, labelled with the test's name.
pub async fn stack(label: &str, scale: f64) -> Stack {
    let mut options = StackOptions::for_tests(twin_binary());
    options.scale = scale;
    options.seed = SEED;
    options.label = label.to_owned();
    Stack::start(options, backend().await)
        .await
        .expect("the stack starts")
}

pub fn scenario(id: &str) -> Scenario {
    let all = scenario::load_all(&scenario::default_dir()).expect("scenarios parse");
    scenario::select(all, id)
        .expect("the scenario exists")
        .into_iter()
        .next()
        .expect("one scenario")
}

/// Drills `scenario_id` with `runbook` on a fresh stack at the scenario's scale.
pub async fn drill_with(runbook: &dyn DynRunbook, scenario_id: &str) -> DrillReport {
    drill_scenario(runbook, &scenario(scenario_id)).await
}

/// Drills a scenario (perhaps changed by the test) with `runbook` on a fresh stack.
pub async fn drill_scenario(runbook: &dyn DynRunbook, scenario: &Scenario) -> DrillReport {
    drill_approved_by(runbook, scenario, Arc::new(AutoApprove)).await
}

/// Drills a scenario with destructive steps approved (or not) by `approver`.
pub async fn drill_approved_by(
    runbook: &dyn DynRunbook,
    scenario: &Scenario,
    approver: Arc<dyn Approver>,
) -> DrillReport {
    let stack = stack(&scenario.id, scenario.scale).await;
    let options = DrillOptions::new(approver, SEED);
    let report = run_drill(&stack, runbook, scenario, &options)
        .await
        .expect("the drill runs");
    let keep = KeepPolicy::from_env().expect("DRILL_KEEP is on-failure or never");
    if keep.keeps(report.passed()) {
        eprintln!("{}", stack.keep().expect("the stack is kept"));
    } else {
        stack.shutdown().await.expect("the stack stops");
    }
    // Shown by the test runner when the test fails, or with --no-capture.
    println!("{}", report.render());
    report
}

/// Drills `scenario_id` with the runbook its file names.
pub async fn drill(scenario_id: &str) -> DrillReport {
    let scenario = scenario(scenario_id);
    let runbook = runbooks::by_id(&scenario.runbook).expect("known runbook");
    drill_with(runbook.as_ref(), scenario_id).await
}

/// Asserts a drill passed in full, printing its report otherwise.
pub fn assert_drill_passed(report: &DrillReport) {
    assert!(report.passed(), "{}", report.render());
    assert!(report.time_to_detect.is_some(), "{}", report.render());
    let diagnosis = report.diagnosis.as_ref().expect("a diagnosis");
    assert_eq!(
        diagnosis.scenario,
        report.expected_diagnosis,
        "{}",
        report.render()
    );
    assert!(
        report.verification.iter().all(|o| o.passed),
        "{}",
        report.render()
    );
    let ledger = report.ledger.as_ref().expect("a ledger");
    assert!(ledger.balanced(), "{}", report.render());
    let ttr = report.time_to_resolve.expect("resolved");
    assert!(ttr <= report.budget.expect("budget"), "{}", report.render());
}
