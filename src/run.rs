//! `drill list` and `drill run`: drills from the command line.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use harness::report::junit;
use harness::scenario::{self, Scenario};
use harness::{DrillOptions, DrillReport, run_drill};
use runbooks::ops::AutoApprove;
use stack::{KeepPolicy, PortMode, Stack, StackOptions};

use crate::approve::{AskOperator, operator_present};
use crate::backend_arg::BackendArg;

/// Runs the drills of a runbook, or one scenario of it.
///
/// Each drill resets the stack, injects the scenario's faults, waits for the alert,
/// runs the runbook's investigation and resolution, checks its verification, and
/// checks that no track or DLQ message was lost. Exit status 1 when any drill fails.
///
/// With `DRILL_KEEP=on-failure` a failed drill's stack is left up and described (how
/// to reach it, how to remove it: `drill reap --kept`).
#[derive(Args)]
pub struct RunArgs {
    /// A runbook (`dlq-overflow`) or one scenario of it (`dlq-overflow/a-breaker-errors`);
    /// `all` for every scenario.
    selector: String,
    /// Seed of the generated data.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Modeled seconds per real second; defaults to each scenario's own scale.
    #[arg(long)]
    scale: Option<f64>,
    /// Writes the reports as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Writes the reports as JUnit XML to this file.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// Directory of scenario files.
    #[arg(long, env = "DRILL_SCENARIOS")]
    scenarios: Option<PathBuf>,
    /// How many tracks of history to load.
    #[arg(long, default_value_t = 2000)]
    tracks: usize,
    /// Who approves destructive steps (disable a provider, purge, terminate): `ask`
    /// the operator at the terminal, or `auto`. Defaults to `ask` when standard
    /// input is a terminal, `auto` otherwise (CI).
    #[arg(long, value_enum)]
    approve: Option<Approval>,
    #[command(flatten)]
    backend: BackendArg,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Approval {
    Ask,
    Auto,
}

pub async fn run(args: RunArgs) -> anyhow::Result<bool> {
    let dir = args.scenarios.clone().unwrap_or_else(scenario::default_dir);
    let all = scenario::load_all(&dir)?;
    let chosen = if args.selector == "all" {
        all
    } else {
        scenario::select(all, &args.selector)?
    };
    let twin_binary = std::env::current_exe().context("finding the drill binary")?;
    let approver: Arc<dyn runbooks::ops::Approver> = match args.approve {
        Some(Approval::Ask) => Arc::new(AskOperator),
        Some(Approval::Auto) => Arc::new(AutoApprove),
        None if operator_present() => Arc::new(AskOperator),
        None => Arc::new(AutoApprove),
    };
    let options = DrillOptions::new(approver, args.seed);
    let backend = args.backend.select().await?.backend;
    let keep = KeepPolicy::from_env()?;
    let mut reports: Vec<DrillReport> = Vec::new();
    let mut stack: Option<(f64, Stack)> = None;
    for scenario in &chosen {
        let scale = args.scale.unwrap_or(scenario.scale);
        if stack.as_ref().is_none_or(|(s, _)| *s != scale) {
            if let Some((_, old)) = stack.take() {
                old.shutdown().await?;
            }
            eprintln!(
                "starting a {backend} stack (scale {scale}, seed {}, {} tracks)…",
                args.seed, args.tracks
            );
            let started = Instant::now();
            let new = Stack::start(
                StackOptions {
                    ports: PortMode::Free,
                    scale,
                    seed: args.seed,
                    tracks: args.tracks,
                    twin_binary: twin_binary.clone(),
                    label: format!("drill-run {}", args.selector),
                    takes_turn: true,
                },
                backend,
            )
            .await
            .context("starting the stack")?;
            eprintln!("stack up in {:.2} s", started.elapsed().as_secs_f64());
            stack = Some((scale, new));
        }
        let Some((_, current)) = stack.as_ref() else {
            unreachable!()
        };
        let report = drill_one(current, scenario, &options).await?;
        if keep.keeps(report.passed())
            && let Some((_, failed)) = stack.take()
        {
            // The next scenario, if any, gets a stack of its own.
            eprintln!("{}", failed.keep()?);
        }
        reports.push(report);
    }
    if let Some((_, stack)) = stack.take() {
        stack.shutdown().await?;
    }

    let passed = reports.iter().filter(|r| r.passed()).count();
    println!("{passed} passed, {} failed", reports.len() - passed);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&reports)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, junit(&reports))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(passed == reports.len())
}

async fn drill_one(
    stack: &Stack,
    scenario: &Scenario,
    options: &DrillOptions,
) -> anyhow::Result<DrillReport> {
    let runbook = runbooks::by_id(&scenario.runbook)?;
    eprintln!("drilling {} — {}", scenario.id, scenario.title);
    let report = run_drill(stack, runbook.as_ref(), scenario, options).await?;
    println!("{}", report.render());
    Ok(report)
}

/// `drill list`: the runbooks and their scenarios.
pub fn list(scenarios: Option<PathBuf>) -> anyhow::Result<()> {
    let dir = scenarios.unwrap_or_else(scenario::default_dir);
    let all = scenario::load_all(&dir)?;
    for runbook in runbooks::all() {
        let meta = runbook.meta();
        println!(
            "{} — {} ({}, {:?}, {}; typical {} min)",
            meta.id,
            meta.title,
            meta.alert,
            meta.severity,
            meta.threshold,
            meta.typical_resolution.as_secs() / 60
        );
        for scenario in all.iter().filter(|s| s.runbook == meta.id) {
            println!("  {:<45} {}", scenario.id, scenario.title);
        }
    }
    Ok(())
}
