//! Diagnosis accuracy: every runbook's investigation chooses the right scenario for
//! every scenario it is drilled on, under another seed than the drills' (other onsets,
//! recoveries, amounts and data), and finds no incident on a stack without a fault.
//! The diagonal of `drill matrix`, one seed, one test per runbook (each within the
//! test runner's time limit); a check that every runbook has one.

mod common;

use std::sync::Arc;

use harness::matrix::{ConfusionMatrix, no_fault};
use harness::scenario::{self, Scenario};
use harness::{DrillOptions, Response, run_drill};
use runbooks::ops::AutoApprove;

/// Not the drills' seed: the diagnosis must not depend on one schedule.
const SEED: u64 = 7;

/// Drills every scenario of runbook `id` up to its diagnosis, and a stack without a
/// fault, and asserts that all of it is on the diagonal.
async fn diagonal_of(id: &str) {
    let all = scenario::load_all(&scenario::default_dir()).expect("scenarios parse");
    let runbook = runbooks::by_id(id).expect("a known runbook");
    let slugs: Vec<&str> = runbook.scenarios().iter().map(|s| s.slug).collect();
    let mut matrix = ConfusionMatrix::new(id, &slugs);
    let of_runbook: Vec<&Scenario> = all.iter().filter(|s| s.runbook == id).collect();
    // A variant that escalates after the remediation (a leak in the build) is the same
    // incident as its scenario up to the diagnosis: the same row of the matrix twice.
    let mut drills: Vec<Scenario> = of_runbook
        .iter()
        .filter(|s| {
            !(s.expect.escalates
                && of_runbook
                    .iter()
                    .any(|o| !o.expect.escalates && o.expect.diagnosis == s.expect.diagnosis))
        })
        .map(|s| (*s).clone())
        .collect();
    if drills.iter().any(Scenario::needs_size_limited_disk)
        && let Err(reason) = common::size_limited_disk().await
    {
        eprintln!("skipped: {reason}");
        return;
    }
    drills.extend(no_fault(id, &all));
    // One stack per scale the runbook's scenarios are drilled at (most have one).
    let mut scales: Vec<f64> = drills.iter().map(|s| s.scale).collect();
    scales.sort_by(f64::total_cmp);
    scales.dedup();
    for scale in scales {
        let group: Vec<&Scenario> = drills.iter().filter(|s| s.scale == scale).collect();
        let owned: Vec<Scenario> = group.iter().map(|s| (*s).clone()).collect();
        let stack = common::stack_for(&format!("matrix {id} ×{scale}"), &owned).await;
        if owned.iter().any(Scenario::needs_memory_limit)
            && let Err(reason) = common::limited_memory(&stack)
        {
            eprintln!("skipped: {reason}");
            stack.shutdown().await.expect("the stack stops");
            return;
        }
        for scenario in group {
            let options =
                DrillOptions::new(Arc::new(AutoApprove), SEED).with_response(Response::Diagnose);
            let report = run_drill(&stack, runbook.as_ref(), scenario, &options)
                .await
                .expect("the drill runs");
            matrix.record_drill(scenario, &report, SEED);
        }
        stack.shutdown().await.expect("the stack stops");
    }
    let rendered = matrix.render();
    println!("{rendered}");
    assert!(
        matrix.misses.is_empty(),
        "the diagonal is incomplete:\n{rendered}"
    );
}

/// One test per runbook; [`COVERED`] lists them for the coverage check.
macro_rules! diagonals {
    ($($test:ident => $id:literal),+ $(,)?) => {
        const COVERED: &[&str] = &[$($id),+];
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                diagonal_of($id).await;
            }
        )+
    };
}

diagonals! {
    dlq_overflow_chooses_what_struck => "dlq-overflow",
    circuit_breaker_storm_chooses_what_struck => "circuit-breaker-storm",
    db_connection_pool_chooses_what_struck => "db-connection-pool",
    disk_space_chooses_what_struck => "disk-space",
    memory_chooses_what_struck => "memory",
    scraper_stalled_chooses_what_struck => "scraper-stalled",
    enrichment_success_rate_chooses_what_struck => "enrichment-success-rate",
    data_quality_chooses_what_struck => "data-quality",
    api_gateway_errors_chooses_what_struck => "api-gateway-errors",
}

#[test]
fn every_drilled_runbook_has_its_diagonal_test() {
    let missing: Vec<&str> = runbooks::all()
        .iter()
        .map(|r| r.meta().id())
        .filter(|id| !COVERED.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "add a diagonals! line for {missing:?} in tests/diagnosis_matrix.rs"
    );
}
