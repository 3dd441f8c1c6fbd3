//! A memory leak on demand: the `memory_leak` chaos switch.
//!
//! The Memory Exhaustion runbook restarts "heavy services"; to drill it, a service
//! must really grow. While the switch is on, the service allocates memory at a
//! modeled rate and keeps it, touching every page so that the kernel (and a
//! container's memory limit) sees resident memory rise. The growth is bounded by
//! `max_mib` so that a forgotten switch cannot take the machine down; only a restart
//! of the process (or a chaos reset) gives the memory back, as with a real leak.
//!
//! Parameters: `{"mib_per_minute": 64, "max_mib": 512, "held_mib": 0}` (modeled
//! minutes): `held_mib` is what the leak already holds when the switch is turned on
//! (it ran before anyone looked), allocated at once.

use std::time::Duration;

use serde::Deserialize;
use wire::Clock;

use crate::chaos::Chaos;

#[derive(Debug, Deserialize)]
struct LeakParams {
    #[serde(default = "default_rate")]
    mib_per_minute: f64,
    #[serde(default = "default_max")]
    max_mib: usize,
    #[serde(default)]
    held_mib: usize,
}

fn default_rate() -> f64 {
    64.0
}

fn default_max() -> usize {
    512
}

const MIB: usize = 1024 * 1024;
const PAGE: usize = 4096;

/// Runs for the life of the service, leaking while the switch is on.
pub fn spawn(chaos: Chaos, clock: Clock) {
    tokio::spawn(async move {
        let mut leaked: Vec<Vec<u8>> = Vec::new();
        let mut resets = chaos.resets();
        // One modeled second between allocations keeps the growth smooth at any scale.
        let mut tick = clock.interval(Duration::from_secs(1));
        let mut owed_mib = 0.0;
        // Whether this switch-on's `held_mib` was taken: once, not at every tick.
        let mut held_taken = false;
        // Owed for the modeled time that passed, not per tick: a tick the machine was
        // too busy to run must not slow the leak.
        let mut last = clock.now();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                changed = resets.changed() => {
                    if changed.is_err() { return; }
                    leaked = Vec::new();
                    owed_mib = 0.0;
                    held_taken = false;
                    continue;
                }
            }
            let now = clock.now();
            let elapsed_minutes = (now - last).as_seconds_f64().max(0.0) / 60.0;
            last = now;
            let Some(params) = chaos.get("memory_leak") else {
                held_taken = false;
                continue;
            };
            let params: LeakParams = match serde_json::from_value(params) {
                Ok(params) => params,
                Err(error) => {
                    tracing::error!(%error, "memory_leak switch has bad parameters");
                    continue;
                }
            };
            owed_mib += params.mib_per_minute * elapsed_minutes;
            if !held_taken {
                held_taken = true;
                owed_mib += params.held_mib as f64;
            }
            while owed_mib >= 1.0 && leaked.len() < params.max_mib {
                leaked.push(touched_mib());
                owed_mib -= 1.0;
            }
            if leaked.len().is_multiple_of(16) && !leaked.is_empty() {
                tracing::warn!(
                    "memory usage growing: {} MiB held by request cache (not released)",
                    leaked.len()
                );
            }
        }
    });
}

/// One MiB whose pages are all written, so that it is resident, not just reserved.
fn touched_mib() -> Vec<u8> {
    let mut block = vec![0u8; MIB];
    for page in block.chunks_mut(PAGE) {
        page[0] = 1;
    }
    block
}
