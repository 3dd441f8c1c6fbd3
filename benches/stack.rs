//! Stack lifecycle benchmarks, against the targets of DESIGN.md ("Targets"):
//! `stack_boot/local` (free ports, to all-ready) ≤ 0.5 s median and, in the same run,
//! `stack_boot/docker` ≤ 1.5 s (skipped, saying why, without an engine and the images);
//! `stack_reset` (a running local stack back to its seeded state) ≤ 100 ms.
//!
//! Beside the docker boot, `stack_boot/docker_engine_floor` times what the engine alone
//! needs for as many containers as a docker stack runs: bare ones, started at once. No
//! docker boot can beat it on the same engine, so the docker figure is read against it
//! (on the machines here, with the fuse-overlayfs storage driver and two cores, the
//! floor is above the target).
//!
//! Only the part a target names is timed (`iter_custom`): a boot is timed until
//! `Stack::start` returns, and the shutdown after it is not; a reset is timed, the
//! faults that give it something to undo are not.

mod common;

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, NetworkCreateRequest, PortBinding};
use bollard::query_parameters::{CreateContainerOptions, StartContainerOptions};
use stack::docker::{Images, engine};

use criterion::{SamplingMode, criterion_group, criterion_main};
use harness::Fault;
use stack::{Backend, Stack};
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
        if matches!(backend, Backend::Docker) {
            let docker = rt.block_on(engine::connect()).expect("the engine answers");
            let image = Images::from_env().base;
            group.bench_function("docker_engine_floor", |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    let (docker, image) = (&docker, &image);
                    async move {
                        let mut measured = Duration::ZERO;
                        for _ in 0..iters {
                            measured += engine_floor(docker, image).await;
                        }
                        measured
                    }
                });
            });
        }
    }
    group.finish();
}

/// How many containers a docker stack runs, and how many ports each publishes:
/// PostgreSQL and Redis one, the five twin services with an API two (API, chaos
/// surface), the other four one (chaos surface).
const STACK_CONTAINERS: [usize; 11] = [1, 1, 2, 2, 2, 2, 2, 1, 1, 1, 1];

/// Creates a network and [`STACK_CONTAINERS`] bare containers of `image` (tini and
/// `sleep`) on it, each publishing its ports on 127.0.0.1, starts them all at once and
/// returns the time until the last start returned; then removes them. Labelled as a
/// run of ours, so that reaping removes them should the benchmark be killed.
async fn engine_floor(docker: &Docker, image: &str) -> Duration {
    let run_id = format!("floor{}", std::process::id());
    let labels = HashMap::from([
        (engine::LABEL_RUN.to_owned(), run_id.clone()),
        (engine::LABEL_OWNER.to_owned(), engine::owner()),
    ]);
    let network = format!("drill-{run_id}");
    let started = Instant::now();
    docker
        .create_network(NetworkCreateRequest {
            name: network.clone(),
            driver: Some("bridge".into()),
            labels: Some(labels.clone()),
            ..Default::default()
        })
        .await
        .expect("the floor's network is created");
    let creates = STACK_CONTAINERS.iter().enumerate().map(|(i, &ports)| {
        let bindings = (0..ports)
            .map(|p| {
                let binding = PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: None,
                };
                (format!("{}/tcp", 9000 + p), Some(vec![binding]))
            })
            .collect();
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            entrypoint: Some(vec!["tini".into(), "--".into()]),
            cmd: Some(vec!["sleep".into(), "600".into()]),
            labels: Some(labels.clone()),
            host_config: Some(HostConfig {
                network_mode: Some(network.clone()),
                port_bindings: Some(bindings),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptions {
            name: Some(format!("{network}-{i}")),
            ..Default::default()
        };
        async move {
            let id = docker
                .create_container(Some(options), body)
                .await
                .expect("a floor container is created")
                .id;
            docker
                .start_container(&id, None::<StartContainerOptions>)
                .await
                .expect("a floor container starts");
        }
    });
    futures::future::join_all(creates).await;
    let elapsed = started.elapsed();
    engine::remove_run(docker, &run_id)
        .await
        .expect("the floor's containers are removed");
    elapsed
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
