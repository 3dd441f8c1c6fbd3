//! DLQ benchmarks, against the targets of DESIGN.md ("Targets"): a flood of 100k
//! messages injected in ≤ 2 s, and a replay of ≥ 10k messages/s.
//!
//! `dlq_flood_100k` times `Fault::dlq_flood(100_000).inject` with an error mix like
//! the dlq-overflow scenarios'; the heal after each injection is not timed.
//! `dlq_replay_throughput` floods (untimed), then times the runbook's own drain,
//! `POST /dlq/replay/batch` with `batch_size` 10000 until a batch comes back short,
//! and reports messages/s. The stack is reset (untimed) after every replay, which
//! also puts back the seeded messages the replay took along.

mod common;

use std::time::{Duration, Instant};

use criterion::{SamplingMode, Throughput, criterion_group, criterion_main};
use harness::Fault;
use wire::api::{ErrorKind, ReplayOutcome};

const FLOOD: usize = 100_000;
/// The largest batch dlq-manager accepts.
const BATCH: i64 = 10_000;

/// Mostly breaker errors, as in a provider outage, with every other kind present.
fn flood() -> Fault {
    Fault::dlq_flood(FLOOD).with_mix([
        (ErrorKind::CircuitBreakerOpen, 70),
        (ErrorKind::Timeout, 15),
        (ErrorKind::ApiRateLimit, 8),
        (ErrorKind::InvalidData, 5),
        (ErrorKind::ProviderError, 2),
    ])
}

fn dlq_flood_100k(c: &mut criterion::Criterion) {
    let rt = common::runtime();
    let stack = rt.block_on(common::stack("bench-dlq-flood"));
    let fault = flood();
    let mut group = c.benchmark_group("dlq");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(FLOOD as u64));
    group.bench_function("dlq_flood_100k", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (stack, fault) = (&stack, &fault);
            async move {
                let mut measured = Duration::ZERO;
                for _ in 0..iters {
                    let started = Instant::now();
                    let guard = fault.inject(stack).await.expect("the flood injects");
                    measured += started.elapsed();
                    guard.heal().await.expect("the flood heals");
                }
                measured
            }
        });
    });
    group.finish();
    rt.block_on(stack.shutdown()).expect("the stack stops");
}

fn dlq_replay_throughput(c: &mut criterion::Criterion) {
    let rt = common::runtime();
    let stack = rt.block_on(common::stack("bench-dlq-replay"));
    let fault = flood();
    let http = reqwest::Client::new();
    let replay_url = stack
        .endpoints()
        .dlq
        .join("dlq/replay/batch")
        .expect("a relative path joins");
    let mut group = c.benchmark_group("dlq");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(FLOOD as u64));
    group.bench_function("dlq_replay_throughput", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (stack, fault, http, replay_url) = (&stack, &fault, &http, &replay_url);
            async move {
                let mut measured = Duration::ZERO;
                for _ in 0..iters {
                    let guard = fault.inject(stack).await.expect("the flood injects");
                    let started = Instant::now();
                    let replayed = drain(http, replay_url).await;
                    measured += started.elapsed();
                    assert!(
                        replayed >= FLOOD as i64,
                        "the drain replayed {replayed} messages, fewer than the {FLOOD} flooded"
                    );
                    guard.heal().await.expect("the flood heals");
                    stack.reset().await.expect("the stack resets");
                }
                measured
            }
        });
    });
    group.finish();
    rt.block_on(stack.shutdown()).expect("the stack stops");
}

/// Replays full batches until one comes back short (the queue was empty at that
/// instant), as the runbook's loop does; returns how many messages were replayed.
async fn drain(http: &reqwest::Client, url: &reqwest::Url) -> i64 {
    let mut replayed = 0;
    // The bound only stops a runaway loop: workers re-failing replayed tracks can
    // refill the queue, but never by a full batch per round here.
    for _ in 0..(FLOOD as i64 / BATCH) * 4 {
        let response = http
            .post(url.clone())
            .json(&serde_json::json!({ "batch_size": BATCH }))
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .expect("dlq-manager answers the replay");
        let status = response.status();
        assert!(
            status.is_success(),
            "replay answered {status}: {}",
            response.text().await.unwrap_or_default()
        );
        let outcome: ReplayOutcome = response.json().await.expect("a replay outcome");
        replayed += outcome.replayed;
        if outcome.replayed < BATCH {
            return replayed;
        }
    }
    panic!("the DLQ did not drain: {replayed} messages replayed and batches still full");
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = dlq_flood_100k, dlq_replay_throughput
}
criterion_main!(benches);
