//! `drill matrix`: diagnosis accuracy over seeds, as a confusion matrix.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use harness::matrix::{ConfusionMatrix, no_fault, summary};
use harness::scenario::Scenario;
use harness::{DrillOptions, Response, run_drill};
use runbooks::ops::AutoApprove;

use crate::stacks::{SeedArgs, StackArgs};

/// Drills every scenario of a runbook under several seeds, up to the diagnosis, plus a
/// stack with no fault, and prints what the investigation chose against what struck.
///
/// Each seed draws other onsets, recoveries and amounts (and other data). A drill ends
/// in one of the runbook's scenarios, in "no incident" (the alert did not fire) or in
/// "escalated" (the investigation would not choose). Each seed also runs the runbook
/// as if paged on the stack with no fault (remediation safety: it must lose nothing,
/// raise no alert, interrupt no service). Exit status 1 unless every drill chose right
/// and no run with no incident did harm. `--partition count:I/N` drills every N-th drill of the run (numbered
/// runbook by runbook, seed by seed, scenario by scenario), so N machines share it.
#[derive(Args)]
pub struct MatrixArgs {
    /// A runbook (`dlq-overflow`), or `all` (the default).
    #[arg(default_value = "all")]
    runbook: String,
    #[command(flatten)]
    seeds: SeedArgs,
    /// Writes the matrices as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    stack: StackArgs,
}

pub async fn run(args: MatrixArgs) -> anyhow::Result<bool> {
    let all = args.stack.load_scenarios()?;
    let runbook_ids: Vec<&'static str> = runbooks::all()
        .iter()
        .map(|r| r.meta().id())
        .filter(|id| args.runbook == "all" || *id == args.runbook)
        .collect();
    if runbook_ids.is_empty() {
        runbooks::by_id(&args.runbook)?;
    }
    let mut stacks = args
        .stack
        .stacks(format!("drill-matrix {}", args.runbook))
        .await?;
    let mut matrices = Vec::new();
    let mut numbered = 0..;
    for id in runbook_ids {
        let runbook = runbooks::by_id(id)?;
        let slugs: Vec<&str> = runbook.scenarios().iter().map(|s| s.slug).collect();
        let mut matrix = ConfusionMatrix::new(id, &slugs);
        let mut drills: Vec<Scenario> = all.iter().filter(|s| s.runbook == id).cloned().collect();
        let healthy = no_fault(id, &all);
        drills.extend(healthy.clone());
        for seed in args.seeds.seeds() {
            for scenario in &drills {
                let index = numbered.next().expect("an endless range");
                if !args.seeds.takes(index) {
                    continue;
                }
                let stack = stacks.get(args.stack.scale_for(scenario), seed).await?;
                let options = DrillOptions::new(Arc::new(AutoApprove), seed)
                    .with_response(Response::Diagnose);
                let report = run_drill(stack, runbook.as_ref(), scenario, &options)
                    .await
                    .with_context(|| format!("drilling {} (seed {seed})", scenario.id))?;
                let hit = matrix.record_drill(scenario, &report, seed);
                eprintln!(
                    "{} seed {seed}: {}",
                    scenario.id,
                    if hit { "✓" } else { "✗" }
                );
            }
            if let Some(healthy) = &healthy {
                let index = numbered.next().expect("an endless range");
                if !args.seeds.takes(index) {
                    continue;
                }
                let stack = stacks.get(args.stack.scale_for(healthy), seed).await?;
                let options = DrillOptions::new(Arc::new(AutoApprove), seed)
                    .with_response(Response::Unprompted);
                let report = run_drill(stack, runbook.as_ref(), healthy, &options)
                    .await
                    .with_context(|| format!("running {id} with no incident (seed {seed})"))?;
                let safe = matrix.record_safety(&report, seed);
                eprintln!(
                    "{id} with no incident, seed {seed}: {}",
                    if safe { "✓ no harm" } else { "✗ harm" }
                );
            }
        }
        println!("{}", matrix.render());
        matrices.push(matrix);
    }
    stacks.shutdown().await?;
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&matrices)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if matrices.len() > 1 {
        println!("{}", summary(&matrices));
    }
    Ok(matrices.iter().all(ConfusionMatrix::all_right))
}
