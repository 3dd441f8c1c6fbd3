//! `drill bench`: time to resolution over seeds, against a saved baseline.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use harness::bench::{self, BenchFile, Sample};
use harness::scenario::{self, Scenario};
use harness::{DrillOptions, run_drill};
use runbooks::ops::AutoApprove;

use crate::stacks::{SeedArgs, StackArgs};

/// Drills scenarios to the end under several seeds and prints, per scenario, time to
/// detect, runbook time and time waiting on the world as p50 / p90 / max (modeled),
/// beside the scenario's budget and the runbook's typical resolution time.
///
/// With `--baseline FILE` (an earlier `--json`), exit status 1 when a scenario's runbook
/// time p50 or p90 is more than `--tolerance` percent above the baseline's, when a
/// scenario that always passed there fails here, or when one is missing. The drills are
/// numbered seed by seed, scenario by scenario; `--partition count:I/N` takes every
/// N-th of them, so N machines share a run, and `--merge` combines their `--json` files.
#[derive(Args)]
pub struct BenchArgs {
    /// A runbook (`dlq-overflow`), one scenario (`dlq-overflow/a-breaker-errors`), or
    /// `all` (the default).
    #[arg(default_value = "all", conflicts_with = "merge")]
    selector: String,
    #[command(flatten)]
    seeds: SeedArgs,
    /// Drills nothing: combines the `--json` files of a partitioned run.
    #[arg(long, num_args = 1..)]
    merge: Vec<PathBuf>,
    /// Writes the samples (one per drill) as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Compares with this earlier `--json` file; exit status 1 on a regression.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// How much slower (percent) a runbook time may get before it is a regression.
    #[arg(long, default_value_t = 25.0)]
    tolerance: f64,
    #[command(flatten)]
    stack: StackArgs,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<bool> {
    anyhow::ensure!(args.seeds.seeds > 0, "--seeds must be at least 1");
    anyhow::ensure!(
        args.tolerance >= 0.0,
        "--tolerance is a percentage, 0 or more"
    );
    let baseline = args.baseline.as_deref().map(BenchFile::read).transpose()?;
    let file = if args.merge.is_empty() {
        BenchFile::new(drill_samples(&args).await?)
    } else {
        let files = args
            .merge
            .iter()
            .map(|path| BenchFile::read(path))
            .collect::<Result<Vec<_>, _>>()?;
        BenchFile::merge(files)?
    };
    let summaries = bench::summarise(&file.samples);
    print!("{}", bench::render_table(&summaries));
    print!("{}", bench::render_failures(&file.samples));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&file)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let Some(baseline) = baseline else {
        return Ok(true);
    };
    let mut baseline_samples = baseline.samples;
    if args.merge.is_empty() {
        // A shard or a selection is compared with the same part of the baseline.
        baseline_samples.retain(|b| {
            file.samples
                .iter()
                .any(|s| s.scenario == b.scenario && s.seed == b.seed)
        });
    }
    let regressions = bench::regressions(
        &summaries,
        &bench::summarise(&baseline_samples),
        args.tolerance / 100.0,
    );
    for regression in &regressions {
        println!("regression: {} — {}", regression.scenario, regression.what);
    }
    if regressions.is_empty() {
        println!(
            "no regression against the baseline (tolerance {}%)",
            args.tolerance
        );
    }
    Ok(regressions.is_empty())
}

/// This shard's drills, run one after another on one stack per seed and scale.
async fn drill_samples(args: &BenchArgs) -> anyhow::Result<Vec<Sample>> {
    let chosen = scenario::select(args.stack.load_scenarios()?, &args.selector)?;
    let drills: Vec<(u64, &Scenario)> = args
        .seeds
        .seeds()
        .flat_map(|seed| chosen.iter().map(move |s| (seed, s)))
        .enumerate()
        .filter(|(index, _)| args.seeds.takes(*index))
        .map(|(_, drill)| drill)
        .collect();
    let mut stacks = args
        .stack
        .stacks(format!("drill-bench {}", args.selector))
        .await?;
    let mut samples = Vec::new();
    for (i, (seed, scenario)) in drills.iter().enumerate() {
        let stack = stacks.get(args.stack.scale_for(scenario), *seed).await?;
        let runbook = runbooks::by_id(&scenario.runbook)?;
        let options = DrillOptions::new(Arc::new(AutoApprove), *seed);
        let report = match run_drill(stack, runbook.as_ref(), scenario, &options).await {
            Err(
                error @ (harness::DrillError::NoSizeLimitedDisk { .. }
                | harness::DrillError::NoMemoryLimit { .. }),
            ) => {
                eprintln!("skipped {} (seed {seed}): {error}", scenario.id);
                continue;
            }
            other => other.with_context(|| format!("drilling {} (seed {seed})", scenario.id))?,
        };
        let sample = Sample::of(&report);
        eprintln!(
            "[{}/{}] {} seed {seed}: {}",
            i + 1,
            drills.len(),
            scenario.id,
            if sample.passed {
                "passed".to_owned()
            } else {
                format!("FAILED\n{}", report.render())
            }
        );
        samples.push(sample);
    }
    stacks.shutdown().await?;
    Ok(samples)
}
