//! Time to resolution as criterion sees it: each scenario's runbook time, in modeled
//! seconds, one benchmark per scenario (`<runbook>/<scenario>`).
//!
//! Criterion times a routine; here the routine is a whole drill and the time it is
//! given (`iter_custom`) is the drill's *runbook time*: from the alert firing to its
//! clearing, less the waiting on the world (a provider's own recovery belongs to the
//! fault, not to the runbook). So criterion's statistics, `--save-baseline` /
//! `--baseline` and its change reports speak of how long the runbook takes. Figures
//! print as seconds: they are modeled seconds. Each iteration drills under the next
//! seed (other onsets, recoveries and amounts) on a stack that stays up for the
//! scenario's scale, reset between drills.
//!
//! Filter by runbook or scenario: `cargo bench --bench ttr -- dlq-overflow`. Ten
//! samples of one drill each per scenario (criterion's least), some two minutes a
//! scenario on two cores. A scenario whose runbook correctly escalates has no runbook
//! time and is left out, as is one this machine cannot drill (a full disk needs a
//! tmpfs mount, so root; memory exhaustion a cgroup); a drill that fails stops the benchmark with its report.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use harness::scenario::{self, Scenario};
use harness::{DrillOptions, run_drill};
use runbooks::ops::AutoApprove;
use stack::{Backend, Stack};

/// One drill of `scenario` under `seed`: its runbook time.
async fn runbook_time(stack: &Stack, scenario: &Scenario, seed: u64) -> Duration {
    let runbook = runbooks::by_id(&scenario.runbook).expect("a known runbook");
    let options = DrillOptions::new(Arc::new(AutoApprove), seed);
    let report = run_drill(stack, runbook.as_ref(), scenario, &options)
        .await
        .expect("the drill runs");
    assert!(report.passed(), "{}", report.render());
    report
        .runbook_time
        .expect("a resolved drill has a runbook time")
}

fn ttr(c: &mut Criterion) {
    let rt = common::runtime();
    let scenarios: Vec<Scenario> = scenario::load_all(&scenario::default_dir())
        .expect("scenarios parse")
        .into_iter()
        .filter(|s| !s.expect.escalates)
        .filter(|s| match stack::local::disk::can_mount() {
            Err(why) if s.needs_size_limited_disk() => {
                eprintln!("{} not benchmarked: {why}", s.id);
                false
            }
            _ => true,
        })
        .collect();
    let mut current: Option<(u64, Stack)> = None;
    for scenario in &scenarios {
        let (runbook, slug) = scenario
            .id
            .split_once('/')
            .expect("scenario ids are runbook/slug");
        let key = scenario.scale.to_bits();
        if current.as_ref().is_none_or(|(k, _)| *k != key) {
            if let Some((_, old)) = current.take() {
                rt.block_on(old.shutdown()).expect("the stack stops");
            }
            let mut options = common::options("bench-ttr");
            options.scale = scenario.scale;
            let stack = rt
                .block_on(Stack::start(options, Backend::Local))
                .expect("the benchmark stack starts");
            current = Some((key, stack));
        }
        let (_, stack) = current.as_ref().expect("a stack");
        if scenario.needs_memory_limit()
            && let Err(why) = stack.memory()
        {
            eprintln!("{} not benchmarked: {why}", scenario.id);
            continue;
        }
        let mut group = c.benchmark_group(runbook);
        group.sampling_mode(SamplingMode::Flat);
        let seed = AtomicU64::new(common::SEED);
        group.bench_function(slug, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let seed = &seed;
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let next = seed.fetch_add(1, Ordering::Relaxed);
                        total += runbook_time(stack, scenario, next).await;
                    }
                    total
                }
            });
        });
        group.finish();
    }
    if let Some((_, stack)) = current {
        rt.block_on(stack.shutdown()).expect("the stack stops");
    }
}

criterion_group! {
    name = benches;
    // The "time" is modeled runbook time (minutes): the least warm-up and measurement
    // time make criterion take one drill per sample.
    config = common::criterion()
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_millis(1));
    targets = ttr
}
criterion_main!(benches);
