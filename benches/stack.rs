//! Stack lifecycle benchmarks, against the targets of DESIGN.md ("Targets"):
//! `stack_boot/local` (free ports, to all-ready) ≤ 0.5 s median and, in the same run,
//! `stack_boot/docker` ≤ 1.5 s (skipped, saying why, without an engine and the images);
//! `stack_reset` (a running local stack back to its seeded state) ≤ 100 ms.
//!
//! Only the part a target names is timed (`iter_custom`): a boot is timed until
//! `Stack::start` returns, and the shutdown after it is not; a reset is timed, the
//! faults that give it something to undo are not.

mod common;

use std::cell::RefCell;
use std::time::{Duration, Instant};

use criterion::{SamplingMode, criterion_group, criterion_main};
use harness::drill::Fault;
use harness::{Backend, Stack};
use wire::api::Provider;

fn stack_boot(c: &mut criterion::Criterion) {
    let rt = common::runtime();
    let mut backends = vec![Backend::Local];
    if rt.block_on(common::docker_available()) {
        backends.push(Backend::Docker);
    }
    let mut group = c.benchmark_group("stack_boot");
    // One boot per sample: a boot is long enough to time on its own.
    group.sampling_mode(SamplingMode::Flat);
    for backend in backends {
        let phases: RefCell<Vec<String>> = RefCell::default();
        group.bench_function(backend.name(), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let phases = &phases;
                async move {
                    let mut measured = Duration::ZERO;
                    for _ in 0..iters {
                        let started = Instant::now();
                        let stack = Stack::start(common::options("bench-stack-boot"), backend)
                            .await
                            .expect("the benchmark stack starts");
                        measured += started.elapsed();
                        phases.borrow_mut().push(boot_phases(&stack));
                        stack.shutdown().await.expect("the stack stops");
                    }
                    measured
                }
            });
        });
        // The last boot's phases, so that a missed target says which phase missed it.
        if let Some(last) = phases.into_inner().pop() {
            eprintln!("stack_boot/{backend} phases of the last boot: {last}");
        }
    }
    group.finish();
}

fn boot_phases(stack: &Stack) -> String {
    match stack {
        Stack::Local(local) => {
            let r = local.boot_report();
            format!(
                "postgres ready {:?} (data dir copy {:?}), seed restore {:?}, twin ready {:?}, \
                 total {:?}, template {:?}",
                r.postgres_ready,
                r.data_dir_copy,
                r.seed_restore,
                r.twin_ready,
                r.total,
                r.template
            )
        }
        Stack::Docker(docker) => {
            let r = docker.boot_report();
            format!(
                "prepare {:?}, postgres ready {:?}, seed restore {:?}, twin ready {:?}, \
                 total {:?}, template {:?}",
                r.prepare, r.postgres_ready, r.seed_restore, r.twin_ready, r.total, r.template
            )
        }
    }
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
