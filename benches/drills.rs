//! The drills of every scenario, one after another on the local backend, after the
//! build: DESIGN.md's target is at most 3 minutes of wall time on two cores.
//!
//! One iteration drills every scenario of `scenarios/` as `drill run all --backend
//! local` does: one stack per scale, reset between drills. Its wall time, boots
//! included, is the figure. Criterion asks for ten samples at least, so a full run takes
//! some twenty minutes; `cargo bench --bench drills` is run by hand, not in CI.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{SamplingMode, criterion_group, criterion_main};
use harness::scenario::{self, Scenario};
use harness::{DrillOptions, run_drill};
use runbooks::ops::AutoApprove;
use stack::{Backend, Stack};

async fn drill_all(scenarios: &[Scenario]) -> Duration {
    let started = Instant::now();
    let options = DrillOptions::new(Arc::new(AutoApprove), common::SEED);
    let mut current: Option<(f64, Stack)> = None;
    for scenario in scenarios {
        if current
            .as_ref()
            .is_none_or(|(scale, _)| *scale != scenario.scale)
        {
            if let Some((_, old)) = current.take() {
                old.shutdown().await.expect("the stack stops");
            }
            let mut options = common::options("bench-drills");
            options.scale = scenario.scale;
            let stack = Stack::start(options, Backend::Local)
                .await
                .expect("the benchmark stack starts");
            current = Some((scenario.scale, stack));
        }
        let (_, stack) = current.as_ref().expect("a stack");
        let runbook = runbooks::by_id(&scenario.runbook).expect("a known runbook");
        let report = run_drill(stack, runbook.as_ref(), scenario, &options)
            .await
            .expect("the drill runs");
        assert!(report.passed(), "{}", report.render());
    }
    if let Some((_, stack)) = current {
        stack.shutdown().await.expect("the stack stops");
    }
    started.elapsed()
}

fn drills(c: &mut criterion::Criterion) {
    let rt = common::runtime();
    let scenarios = scenario::load_all(&scenario::default_dir()).expect("scenarios parse");
    let mut group = c.benchmark_group("drills");
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function(format!("all_{}_local", scenarios.len()), |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let scenarios = &scenarios;
            async move {
                let mut measured = Duration::ZERO;
                for _ in 0..iters {
                    measured += drill_all(scenarios).await;
                }
                measured
            }
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion()
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(60));
    targets = drills
}
criterion_main!(benches);
