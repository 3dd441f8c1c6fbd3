//! Shared set-up of the drill test targets: a stack on free ports, and a drill of
//! one scenario file against it.
#![allow(dead_code)]

pub mod flawed;

use std::path::PathBuf;
use std::sync::Arc;

use harness::scenario::{self, Scenario};
use harness::{ControlOutcome, DrillOptions, DrillReport, Response, run_drill};
use runbooks::DynRunbook;
use runbooks::ops::{Approver, AutoApprove};
use stack::{Backend, BackendChoice, KeepPolicy, Stack, StackOptions, TurnKind};

/// The seed every drill test runs with, unless it says otherwise.
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

/// A test stack at `scale`, on free ports, labelled with the test's name, taking one
/// of the machine's turns.
pub async fn stack(label: &str, scale: f64) -> Stack {
    stack_taking(label, scale, TurnKind::Shared).await
}

/// [`stack`], for drills of `scenarios`: alone on the machine if one of them needs it.
pub async fn stack_for(label: &str, scenarios: &[Scenario]) -> Stack {
    let turn = scenarios
        .iter()
        .map(Scenario::turn)
        .fold(TurnKind::Shared, TurnKind::max);
    stack_taking(label, scenarios[0].scale, turn).await
}

async fn stack_taking(label: &str, scale: f64, turn: TurnKind) -> Stack {
    let mut options = StackOptions::for_tests(twin_binary());
    options.scale = scale;
    options.turn = turn;
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

/// How a test drill runs.
pub struct Drill<'a> {
    pub runbook: &'a dyn DynRunbook,
    pub approver: Arc<dyn Approver>,
    pub seed: u64,
    pub response: Response,
}

impl<'a> Drill<'a> {
    pub fn of(runbook: &'a dyn DynRunbook) -> Self {
        Self {
            runbook,
            approver: Arc::new(AutoApprove),
            seed: SEED,
            response: Response::Runbook,
        }
    }

    /// Drills `scenario` on a fresh stack at the scenario's scale; prints the report.
    pub async fn run(&self, scenario: &Scenario) -> DrillReport {
        self.try_run(scenario)
            .await
            .unwrap_or_else(|reason| panic!("the drill cannot run here: {reason}"))
    }

    /// Like [`Drill::run`], but a stack without the memory limit the scenario needs
    /// is a reason to skip (an error in CI, which must drill it), not a panic.
    pub async fn try_run(&self, scenario: &Scenario) -> Result<DrillReport, String> {
        let stack = stack_for(&scenario.id, std::slice::from_ref(scenario)).await;
        if scenario.needs_memory_limit()
            && let Err(reason) = limited_memory(&stack)
        {
            stack.shutdown().await.expect("the stack stops");
            return Err(reason);
        }
        // Every resolved drill also resolves again on the healed stack (remediation
        // safety): a second run must do no harm.
        let options = DrillOptions::new(self.approver.clone(), self.seed)
            .with_response(self.response)
            .with_second_resolution();
        let report = run_drill(&stack, self.runbook, scenario, &options)
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
        Ok(report)
    }
}

/// Drills `scenario_id` with the runbook its file names.
pub async fn drill(scenario_id: &str) -> DrillReport {
    try_drill(scenario_id)
        .await
        .unwrap_or_else(|reason| panic!("the drill cannot run here: {reason}"))
}

/// [`drill`], or why this machine cannot drill the scenario (see [`Drill::try_run`]).
pub async fn try_drill(scenario_id: &str) -> Result<DrillReport, String> {
    let scenario = scenario(scenario_id);
    let runbook = runbooks::by_id(&scenario.runbook).expect("known runbook");
    Drill::of(runbook.as_ref()).try_run(&scenario).await
}

/// The report, or `None` after saying why this machine cannot drill the scenario (a
/// [`Drill::try_run`] that returned its reason).
pub fn unless_skipped(outcome: Result<DrillReport, String>) -> Option<DrillReport> {
    outcome
        .inspect_err(|reason| eprintln!("skipped: {reason}"))
        .ok()
}

/// Asserts a drill passed in full, printing its report otherwise.
pub fn assert_drill_passed(report: &DrillReport) {
    let text = report.render();
    assert!(report.passed(), "{text}");
    assert!(report.time_to_detect.is_some(), "{text}");
    let diagnosis = report.diagnosis.as_ref().expect("a diagnosis");
    assert_eq!(diagnosis.scenario.slug, report.expected_diagnosis, "{text}");
    assert!(report.verification.iter().all(|o| o.passed), "{text}");
    let ledger = report.ledger.as_ref().expect("a ledger");
    assert!(ledger.balanced(), "{text}");
    if report.escalation_expected {
        // The right outcome of an incident beyond the runbook: escalated, not resolved.
        assert!(report.escalated.is_some(), "{text}");
        return;
    }
    let runbook_time = report.runbook_time.expect("resolved");
    assert!(runbook_time <= report.budget, "{text}");
    assert!(
        report.resolved_again.is_some(),
        "the resolution ran again on the healed stack:\n{text}"
    );
}

/// Drills `scenario_id` with its resolution replaced by doing nothing, and asserts
/// the control showed what it must: the incident does not resolve without the runbook,
/// unless the scenario declares that the world heals it.
pub async fn assert_control_needs_the_runbook(scenario_id: &str) -> DrillReport {
    try_assert_control_needs_the_runbook(scenario_id)
        .await
        .unwrap_or_else(|reason| panic!("the drill cannot run here: {reason}"))
}

/// [`assert_control_needs_the_runbook`], or why this machine cannot drill the scenario.
pub async fn try_assert_control_needs_the_runbook(
    scenario_id: &str,
) -> Result<DrillReport, String> {
    let scenario = scenario(scenario_id);
    let runbook = runbooks::by_id(&scenario.runbook).expect("known runbook");
    let mut drill = Drill::of(runbook.as_ref());
    drill.response = Response::Control;
    let report = drill.try_run(&scenario).await?;
    let text = report.render();
    assert!(report.time_to_detect.is_some(), "the alert fired:\n{text}");
    match report.control {
        Some(ControlOutcome::NeededTheRunbook) => {}
        Some(ControlOutcome::WorldHealedIt) => {
            assert!(scenario.expect.world_heals, "{text}");
            assert!(
                report.waiting_on_world.is_some_and(|w| !w.is_zero()),
                "the report says how much was waiting on the world:\n{text}"
            );
        }
        other => panic!("the control run showed {other:?}:\n{text}"),
    }
    Ok(report)
}

/// Whether `stack` has memory limited to its budget (a cgroup of its own); if not,
/// why, for a skip message. In CI, where it must have one, a missing limit fails.
pub fn limited_memory(stack: &Stack) -> Result<(), String> {
    match stack.memory() {
        Ok(_) => Ok(()),
        Err(reason) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI must drill memory exhaustion, but {reason}")
        }
        Err(reason) => Err(reason.to_owned()),
    }
}

/// Whether this machine can give a stack a size-limited disk (always on docker; on the
/// local backend a tmpfs mount, which needs root); if not, why, for a skip message.
pub async fn size_limited_disk() -> Result<(), String> {
    match backend().await {
        stack::Backend::Docker => Ok(()),
        stack::Backend::Local => stack::local::disk::can_mount(),
    }
}

/// Runs `runbook_id` as if paged on a stack with no incident (its workload and seeded
/// history, no fault: [`Response::Unprompted`]), at the scale of its scenarios.
pub async fn run_with_no_incident(runbook: &dyn DynRunbook) -> DrillReport {
    let all = scenario::load_all(&scenario::default_dir()).expect("scenarios parse");
    let healthy =
        harness::matrix::no_fault(runbook.meta().id(), &all).expect("the runbook has scenarios");
    let mut drill = Drill::of(runbook);
    drill.response = Response::Unprompted;
    drill.run(&healthy).await
}

/// Asserts a run with no incident did no harm: nothing lost, no alert raised,
/// verification holding (its report's failures), and the runbook ran.
pub fn assert_did_no_harm(report: &DrillReport) {
    let text = report.render();
    assert!(report.passed(), "{text}");
    assert!(report.unprompted.is_some(), "the runbook was run:\n{text}");
    let ledger = report.ledger.as_ref().expect("a ledger");
    assert!(ledger.balanced(), "{text}");
}
