//! The `cache_bloat` chaos switch: what a build that cached whole provider payloads
//! left in Redis.
//!
//! The Memory Exhaustion runbook flushes Redis "if large". Redis grows large in
//! production when something caches more than it reads back: here, a build of
//! metadata-enrichment that cached each provider's whole answer for the catalogue's
//! popular tracks (the audio analysis beside the audio features, a few hundred KiB a
//! track), which the running build never reads. When the switch turns on, the service
//! writes `held_mib` of such entries, `entry_kib` each, under
//! `enrich:<provider>:analysis:<artist>|<title>` keys of the most frequent pairs, with
//! the week-long TTL of the cache; they stay until they expire or someone deletes them.
//! Beside them the cache goes on holding the live answers the workload's repeats hit,
//! which is what a `FLUSHDB` costs.
//!
//! Parameters: `{"held_mib": 800, "entry_kib": 256}`. Turning the switch off (the
//! harness's heal) or a chaos reset deletes the entries, as their expiry would.

use std::time::Duration;

use serde::Deserialize;
use sqlx::PgPool;
use wire::api::Provider;

use super::cache::Cache;
use super::warm::popular_pairs;
use crate::chaos::Chaos;

pub const SWITCH: &str = "cache_bloat";
/// The keys the switch writes, as a `SCAN` pattern.
pub const PATTERN: &str = "enrich:*:analysis:*";
/// The cache's TTL for the entries (`cache_ttl_hours` of 168, modeled).
const TTL: Duration = Duration::from_secs(168 * 3600);
/// Real time between two looks at the switch.
const POLL: Duration = Duration::from_millis(200);

#[derive(Debug, Deserialize)]
struct BloatParams {
    held_mib: u64,
    #[serde(default = "default_entry_kib")]
    entry_kib: u64,
}

fn default_entry_kib() -> u64 {
    256
}

/// Runs for the life of the service: writes the entries when the switch turns on,
/// deletes them when it turns off or the service's state is reset.
pub fn spawn(chaos: Chaos, cache: Cache, pool: PgPool) {
    tokio::spawn(async move {
        let mut resets = chaos.resets();
        let mut written = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                changed = resets.changed() => {
                    if changed.is_err() { return; }
                }
            }
            match chaos.get(SWITCH) {
                Some(params) if !written => {
                    written = true;
                    match serde_json::from_value::<BloatParams>(params) {
                        Ok(params) => write(&cache, &pool, &params).await,
                        Err(error) => {
                            tracing::error!(%error, "cache_bloat switch has bad parameters");
                        }
                    }
                }
                None if written => {
                    written = false;
                    let removed = cache.unlink_matching(PATTERN).await;
                    tracing::info!("cache_bloat off: {removed} analysis entries deleted");
                }
                _ => {}
            }
        }
    });
}

async fn write(cache: &Cache, pool: &PgPool, params: &BloatParams) {
    let entry_bytes = (params.entry_kib.max(1) * 1024) as usize;
    let entries = (params.held_mib * 1024 / params.entry_kib.max(1)) as usize;
    let pairs = match popular_pairs(pool, entries as i64).await {
        Ok(pairs) if !pairs.is_empty() => pairs,
        Ok(_) => {
            tracing::error!("cache_bloat: no scraped track to cache an analysis of");
            return;
        }
        Err(error) => {
            tracing::error!(%error, "cache_bloat: reading the popular tracks");
            return;
        }
    };
    let laps = pairs.len();
    let keys = pairs
        .iter()
        .cycle()
        .enumerate()
        .flat_map(|(round, (artist, title))| {
            let suffix = match round / laps {
                0 => String::new(),
                lap => format!("#{lap}"),
            };
            Provider::ALL.map(|provider| {
                format!(
                    "enrich:{}:analysis:{artist}|{title}{suffix}",
                    provider.name()
                )
            })
        });
    // Segments of an analysis: incompressible enough that Redis holds every byte. Each
    // value is a little under `entry_kib`, so that Redis's allocator (size classes of a
    // quarter of a power of two) holds it in an allocation of that size, not the next.
    let filler: String = (0..entry_bytes / 16)
        .map(|i| format!("{:016x}", (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)))
        .collect();
    for key in keys.take(entries) {
        let mut value = format!("{{\"key\":\"{key}\",\"segments\":\"{filler}\"}}");
        value.truncate(entry_bytes.saturating_sub(64));
        cache.put(&key, &value, TTL).await;
    }
    tracing::info!(
        "cache_bloat: {entries} analysis entries of {} KiB written ({} MiB)",
        params.entry_kib,
        params.held_mib
    );
}
