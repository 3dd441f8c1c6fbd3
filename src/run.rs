//! `drill list` and `drill run`: drills from the command line.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use harness::report::junit;
use harness::scenario::{self, Scenario};
use harness::{DrillOptions, DrillReport, Response, run_drill};
use runbooks::ops::AutoApprove;
use stack::KeepPolicy;

use crate::approve::{AskOperator, operator_present};
use crate::stacks::StackArgs;

/// Runs the drills of a runbook, or one scenario of it.
///
/// Each drill resets the stack, lets the scenario's faults strike under its workload,
/// waits for the alert, runs the runbook's investigation and resolution, checks its
/// verification, and checks that no track or DLQ message was lost. Exit status 1
/// when any drill fails.
///
/// With `--control` the resolution is replaced by doing nothing: each control run must
/// fail to resolve (else the drill cannot tell the runbook's work from the world's),
/// unless its scenario declares that the world heals it. Exit status 1 when a control
/// run resolves although it should not.
///
/// With `--no-incident` each runbook is run once, as if paged, on a stack with no fault,
/// and must do no harm (remediation safety).
///
/// With `DRILL_KEEP=on-failure` a failed drill's stack is left up and described (how
/// to reach it, how to remove it: `drill reap --kept`).
#[derive(Args)]
pub struct RunArgs {
    /// A runbook (`dlq-overflow`) or one scenario of it (`dlq-overflow/a-breaker-errors`);
    /// `all` for every scenario. Not needed with --scenario-file.
    #[arg(required_unless_present = "scenario_file")]
    selector: Option<String>,
    /// Drills this scenario file instead, or a fault schedule's file (one with a
    /// `[watch]` table, e.g. one the property test printed): its faults strike, every
    /// alert that fires is answered by its runbook, and the run fails when a property
    /// breaks (work lost, an alert neither resolved nor escalated, an alert the
    /// remedy raised, the configuration left changed undeclared).
    #[arg(long, conflicts_with = "selector")]
    scenario_file: Option<PathBuf>,
    /// Seed of the generated data and of every fault time drawn from the scenarios.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Replaces each resolution by doing nothing, to show the runbook is what resolves.
    #[arg(long)]
    control: bool,
    /// Skips remediation safety: by default each resolved drill runs its resolution a
    /// second time on the healed stack and fails if that did harm (a failed step,
    /// verification no longer holding, the alert firing again, the configuration
    /// changed again, work lost).
    #[arg(long, conflicts_with = "control")]
    once: bool,
    /// Runs each selected runbook once, as if paged, on a stack with no incident (its
    /// workload and history, no fault) instead of its scenarios: it must lose nothing,
    /// raise no alert, interrupt no service and keep its verification holding; a
    /// config change is reported. Exit status 1 when it did harm.
    #[arg(long, conflicts_with_all = ["control", "scenario_file"])]
    no_incident: bool,
    /// Writes the reports as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Writes the reports as JUnit XML to this file (`time` in wall seconds, modeled
    /// times as properties).
    #[arg(long)]
    junit: Option<PathBuf>,
    /// Writes one HTML page for the drills here: a summary table, then each drill
    /// with charts of its signals (sampled every 30 modeled seconds) and its step log.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Who approves destructive steps (disable a provider, purge, terminate): `ask`
    /// the operator at the terminal, or `auto`. Defaults to `ask` when standard
    /// input is a terminal, `auto` otherwise (CI).
    #[arg(long, value_enum)]
    approve: Option<Approval>,
    #[command(flatten)]
    stack: StackArgs,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Approval {
    Ask,
    Auto,
}

pub async fn run(args: RunArgs) -> anyhow::Result<bool> {
    if let Some(file) = &args.scenario_file {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        if harness::schedule::is_schedule(&text) {
            return run_schedule(&args, file).await;
        }
    }
    let chosen: Vec<Scenario> = match (&args.scenario_file, &args.selector) {
        (Some(file), _) => vec![scenario::load_file(file)?],
        (None, Some(selector)) => scenario::select(args.stack.load_scenarios()?, selector)?,
        (None, None) => unreachable!("clap requires a selector or a scenario file"),
    };
    let chosen = if args.no_incident {
        with_no_incident(&chosen, &args.stack.load_scenarios()?)
    } else {
        chosen
    };
    let approver = approver(args.approve);
    let response = if args.control {
        Response::Control
    } else if args.no_incident {
        Response::Unprompted
    } else {
        Response::Runbook
    };
    let mut options = DrillOptions::new(approver, args.seed).with_response(response);
    if !args.once {
        options = options.with_second_resolution();
    }
    if args.html.is_some() {
        options = options.with_signals();
    }
    let keep = KeepPolicy::from_env()?;
    let label = format!(
        "drill-run {}",
        args.selector.as_deref().unwrap_or("scenario file")
    );
    let mut stacks = args.stack.stacks(label).await?;
    let mut reports: Vec<DrillReport> = Vec::new();
    let mut skipped = 0;
    for (i, scenario) in chosen.iter().enumerate() {
        let scale = args.stack.scale_for(scenario);
        let stack = stacks.get(scale, args.seed).await?;
        let runbook = runbooks::by_id(&scenario.runbook)?;
        eprintln!(
            "[{}/{}] {}{} — {}",
            i + 1,
            chosen.len(),
            match response {
                Response::Control => "control run of ",
                Response::Unprompted => "with no incident, running ",
                _ => "drilling ",
            },
            scenario.id,
            scenario.title
        );
        let report = match run_drill(stack, runbook.as_ref(), scenario, &options).await {
            // Not a failure of the runbook: this machine cannot drill it. Said, counted,
            // and left out of the pass/fail count.
            Err(
                error @ (harness::DrillError::NoSizeLimitedDisk { .. }
                | harness::DrillError::NoMemoryLimit { .. }),
            ) => {
                eprintln!("skipped: {error}");
                skipped += 1;
                continue;
            }
            other => other.with_context(|| format!("drilling {}", scenario.id))?,
        };
        println!("{}", report.render());
        if keep.keeps(report.passed()) {
            stacks.keep_current()?;
        }
        reports.push(report);
    }
    stacks.shutdown().await?;

    let passed = reports.iter().filter(|r| r.passed()).count();
    if args.control {
        println!(
            "{passed} control runs as expected, {} resolved without the runbook",
            reports.len() - passed
        );
    } else {
        println!("{passed} passed, {} failed", reports.len() - passed);
    }
    if skipped > 0 {
        println!("{skipped} skipped (see above for why)");
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&reports)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, junit(&reports))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.html {
        std::fs::write(path, harness::html::drills_page(&reports))
            .with_context(|| format!("writing {}", path.display()))?;
        println!("report (HTML): {}", path.display());
    }
    Ok(passed == reports.len())
}

/// A fault schedule's file (one a property test printed): its faults strike, every
/// alert that fires is answered by its runbook, and the properties are judged.
async fn run_schedule(args: &RunArgs, file: &std::path::Path) -> anyhow::Result<bool> {
    if args.control || args.no_incident || args.html.is_some() || args.junit.is_some() {
        anyhow::bail!(
            "{} is a fault schedule: it is drilled with every runbook answering its alerts \
             (and a control run when one is needed); --control, --no-incident, --html and \
             --junit are for scenarios",
            file.display()
        );
    }
    let schedule = harness::schedule::load_file(file)?;
    let approver = approver(args.approve);
    let options = DrillOptions::new(approver, args.seed);
    let keep = KeepPolicy::from_env()?;
    let mut stacks = args
        .stack
        .stacks(format!("drill-run {}", schedule.id))
        .await?;
    let stack = stacks
        .get(args.stack.scale().unwrap_or(schedule.scale), args.seed)
        .await?;
    eprintln!(
        "drilling fault schedule {} — {} ({} faults, watched {} modeled minutes)",
        schedule.id,
        schedule.title,
        schedule.faults.len(),
        schedule.watch.as_secs() / 60
    );
    let report = harness::schedule::drill_schedule(stack, &schedule, &options)
        .await
        .with_context(|| format!("drilling {}", schedule.id))?;
    println!("{}", report.render());
    if keep.keeps(report.passed()) {
        stacks.keep_current()?;
    }
    stacks.shutdown().await?;
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report.passed())
}

fn approver(approval: Option<Approval>) -> Arc<dyn runbooks::ops::Approver> {
    match approval {
        Some(Approval::Ask) => Arc::new(AskOperator),
        Some(Approval::Auto) => Arc::new(AutoApprove),
        None if operator_present() => Arc::new(AskOperator),
        None => Arc::new(AutoApprove),
    }
}

/// `drill list`: the runbooks and their scenarios.
pub fn list(scenarios: Option<PathBuf>) -> anyhow::Result<()> {
    let dir = scenarios.unwrap_or_else(scenario::default_dir);
    let all = scenario::load_all(&dir)?;
    for runbook in runbooks::all() {
        let meta = runbook.meta();
        let rule = &meta.rule;
        println!(
            "{} — {} ({}, {:?}, {}; typical {} min)",
            meta.id(),
            meta.title,
            rule.name,
            rule.severity,
            rule.threshold,
            rule.typical_resolution.as_secs() / 60
        );
        for scenario in all.iter().filter(|s| s.runbook == meta.id()) {
            println!("  {:<45} {}", scenario.id, scenario.title);
        }
    }
    Ok(())
}

/// The no-fault stack of each runbook among `chosen`, once per runbook.
fn with_no_incident(chosen: &[Scenario], all: &[Scenario]) -> Vec<Scenario> {
    let mut runbooks: Vec<&str> = chosen.iter().map(|s| s.runbook.as_str()).collect();
    runbooks.dedup();
    runbooks
        .into_iter()
        .filter_map(|id| harness::matrix::no_fault(id, all))
        .collect()
}
