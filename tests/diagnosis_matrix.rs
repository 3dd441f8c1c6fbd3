//! Diagnosis accuracy: every runbook's investigation chooses the right scenario for
//! every scenario it is drilled on, under another seed than the drills' (other onsets,
//! recoveries, amounts and data), and finds no incident on a stack without a fault.
//! The diagonal of `drill matrix`, one seed.

mod common;

use std::sync::Arc;

use harness::matrix::{Choice, ConfusionMatrix, no_fault};
use harness::scenario::{self, Scenario};
use harness::{DrillOptions, Response, run_drill};
use runbooks::ops::AutoApprove;

/// Not the drills' seed: the diagnosis must not depend on one schedule.
const SEED: u64 = 7;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_investigation_chooses_the_scenario_that_struck_and_nothing_without_a_fault() {
    let all = scenario::load_all(&scenario::default_dir()).expect("scenarios parse");
    let mut matrices = Vec::new();
    for runbook in runbooks::all() {
        let id = runbook.meta().id();
        let slugs: Vec<&str> = runbook.scenarios().iter().map(|s| s.slug).collect();
        let mut matrix = ConfusionMatrix::new(id, &slugs);
        let mut drills: Vec<Scenario> = all.iter().filter(|s| s.runbook == id).cloned().collect();
        drills.extend(no_fault(id, &all));
        let stack = common::stack(&format!("matrix {id}"), drills[0].scale).await;
        for scenario in &drills {
            assert_eq!(scenario.scale, drills[0].scale, "one stack per runbook");
            let options =
                DrillOptions::new(Arc::new(AutoApprove), SEED).with_response(Response::Diagnose);
            let report = run_drill(&stack, runbook.as_ref(), scenario, &options)
                .await
                .expect("the drill runs");
            matrix.record(
                &Choice::expected(scenario),
                &Choice::of(&report),
                &format!("{} seed {SEED}", scenario.id),
            );
        }
        stack.shutdown().await.expect("the stack stops");
        matrices.push(matrix);
    }
    let rendered: Vec<String> = matrices.iter().map(ConfusionMatrix::render).collect();
    println!("{}", rendered.join("\n"));
    for matrix in &matrices {
        assert!(
            matrix.misses.is_empty(),
            "the diagonal is incomplete:\n{}",
            rendered.join("\n")
        );
    }
}
