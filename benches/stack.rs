//! Stack lifecycle benchmarks, against the targets of DESIGN.md ("Targets"):
//! `stack_boot` (local backend, free ports, to all-ready) ≤ 0.5 s median, and
//! `stack_reset` (a running stack back to its seeded state) ≤ 100 ms.
//!
//! Only the part a target names is timed (`iter_custom`): a boot is timed until
//! `Stack::start` returns, and the shutdown after it is not; a reset is timed, the
//! faults that give it something to undo are not.

mod common;

use std::cell::RefCell;
use std::time::{Duration, Instant};

use criterion::{SamplingMode, criterion_group, criterion_main};
use harness::BootReport;
use harness::drill::Fault;
use wire::api::Provider;

fn stack_boot(c: &mut criterion::Criterion) {
    let rt = common::runtime();
    let reports: RefCell<Vec<BootReport>> = RefCell::default();
    let mut group = c.benchmark_group("stack");
    // One boot per sample: a boot is long enough to time on its own.
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("stack_boot", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let reports = &reports;
            async move {
                let mut measured = Duration::ZERO;
                for _ in 0..iters {
                    let started = Instant::now();
                    let stack = common::stack("bench-stack-boot").await;
                    measured += started.elapsed();
                    reports.borrow_mut().push(*stack.boot_report());
                    stack.shutdown().await.expect("the stack stops");
                }
                measured
            }
        });
    });
    group.finish();
    print_boot_phases(&reports.into_inner());
}

/// The median of each boot phase, so that a missed target says which phase missed it.
fn print_boot_phases(reports: &[BootReport]) {
    if reports.is_empty() {
        return;
    }
    let median = |phase: fn(&BootReport) -> Duration| {
        let mut values: Vec<Duration> = reports.iter().map(phase).collect();
        values.sort();
        values[values.len() / 2]
    };
    eprintln!(
        "stack_boot phases, median of {} boots: postgres ready {:?} (data dir copy {:?}, \
         seed restore {:?}), twin ready {:?}, total {:?}; templates: {:?}",
        reports.len(),
        median(|r| r.postgres_ready),
        median(|r| r.data_dir_copy),
        median(|r| r.seed_restore),
        median(|r| r.twin_ready),
        median(|r| r.total),
        reports.last().map(|r| r.template),
    );
}

fn stack_reset(c: &mut criterion::Criterion) {
    let rt = common::runtime();
    let stack = rt.block_on(common::stack("bench-stack-reset"));
    // What a test case typically leaves behind: a provider fault mock, a chaos switch
    // that is on, and rows that are not the seed's.
    let leftovers = [
        Fault::provider(Provider::Spotify).status(503),
        Fault::stuck_breaker(Provider::Spotify),
        Fault::dlq_flood(1_000),
    ];
    let mut group = c.benchmark_group("stack");
    group.bench_function("stack_reset", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (stack, leftovers) = (&stack, &leftovers);
            async move {
                let mut measured = Duration::ZERO;
                for _ in 0..iters {
                    for fault in leftovers {
                        fault
                            .inject(stack)
                            .await
                            .expect("the fault injects")
                            .forget();
                    }
                    let started = Instant::now();
                    stack.reset().await.expect("the stack resets");
                    measured += started.elapsed();
                }
                measured
            }
        });
    });
    group.finish();
    rt.block_on(stack.shutdown()).expect("the stack stops");
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = stack_boot, stack_reset
}
criterion_main!(benches);
