//! What the benchmarks share: the runtime, the stack they measure, and criterion
//! settings that keep a full `cargo bench` within a few minutes on two cores.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use criterion::Criterion;
use stack::{Backend, BackendChoice, Stack, StackOptions, TurnKind};

/// The seed of every benchmarked stack, as in the tests.
pub const SEED: u64 = 42;

/// Two worker threads: the machine the targets are stated for has two cores.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A test stack's options (free ports, scale 60), labelled for the run directory;
/// alone on the machine, whatever `DRILL_TURNS` allows: a benchmark measures.
pub fn options(label: &str) -> StackOptions {
    let mut options = StackOptions::for_tests(PathBuf::from(env!("CARGO_BIN_EXE_drill")));
    options.seed = SEED;
    options.turn = TurnKind::Alone;
    options.label = label.to_owned();
    options
}

/// A local stack: the figures of the targets that do not name a backend.
pub async fn stack(label: &str) -> Stack {
    Stack::start(options(label), Backend::Local)
        .await
        .expect("the benchmark stack starts")
}

/// Whether a docker stack can start here (engine and images); says why not.
pub async fn docker_available() -> bool {
    match BackendChoice::Docker.select().await {
        Ok(_) => true,
        Err(why) => {
            eprintln!("docker backend not benchmarked: {why}");
            false
        }
    }
}

/// Ten samples, one second of warm-up: every routine here takes from tens of
/// milliseconds to a second per iteration, so criterion's defaults (100 samples,
/// 5 s) would run for many minutes and say nothing more.
pub fn criterion() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
}
