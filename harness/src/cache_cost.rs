//! What a response cost the cache: the live answers it threw away, and the hit rate
//! before the resolution and after it.
//!
//! A `FLUSHDB` throws away answers the cache would have served: the providers are
//! asked again for them, and the hit rate falls until the workload's repeats fill it
//! back. The Memory Exhaustion runbook's text says nothing of that cost; the report
//! shows it rather than hiding it. What was thrown away is counted exactly: the
//! cache's live entries (`enrich:*`, not the never-read analyses of the `cache_bloat`
//! fault) as the resolution starts and as it ends. The hit rates say what that cost the
//! users, but they are the weaker evidence: the twin's cache starts empty with its
//! stack, so a window before the resolution and one after it are both a cache warming
//! up, and their difference is within the workload's noise. Before: the hit rate of
//! `/stats` (its window of the last 15 modeled minutes) as the resolution starts.
//! After: hits and misses from then to the drill's end, from the counters of
//! `/metrics` (a restarted service counts from its start, which is then the after).

use std::fmt;

use redis::AsyncCommands;
use runbooks::ops::Ops;
use runbooks::ops::api::prometheus_value;
use serde::Serialize;

/// The cache, as the resolution found it and as the drill left it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CacheCost {
    /// `/stats .cache_hit_rate` as the resolution started, and over how many lookups.
    pub hit_rate_before: f64,
    pub lookups_before: u64,
    /// Lookups from the resolution to the drill's end, and how many hit.
    pub hits_after: Option<u64>,
    pub lookups_after: Option<u64>,
    /// Live cached answers as the resolution started, and as it ended.
    pub live_entries_before: Option<u64>,
    pub live_entries_after_resolution: Option<u64>,
    #[serde(skip)]
    counters_at_start: Option<(f64, f64)>,
}

async fn counters(ops: &Ops) -> Option<(f64, f64)> {
    let text = ops.enrichment.metrics().await.ok()?;
    Some((
        prometheus_value(&text, "cache_hits_total", &[])?,
        prometheus_value(&text, "cache_misses_total", &[])?,
    ))
}

/// The cache's live answers: every `enrich:*` key but the never-read analyses of the
/// `cache_bloat` fault. `None` when Redis does not answer.
async fn live_entries(ops: &Ops) -> Option<u64> {
    let mut connection = ops.redis.get_multiplexed_async_connection().await.ok()?;
    // A thousand keys a round trip: this is the drill's reading, not the runbook's, and
    // SCAN's default of ten made it some ninety round trips on a warm cache.
    let scan = redis::ScanOptions::default()
        .with_pattern("enrich:*")
        .with_count(1000);
    let mut keys: redis::AsyncIter<'_, String> = connection.scan_options(scan).await.ok()?;
    let mut live = 0;
    while let Some(key) = keys.next_item().await {
        if !key.ok()?.contains(":analysis:") {
            live += 1;
        }
    }
    Some(live)
}

/// Hits and lookups between two readings of the (hits, misses) counters. Counters that
/// went down belong to a restarted service: then everything it counted is after.
fn counted_after(start: (f64, f64), end: (f64, f64)) -> (u64, u64) {
    let (hits, misses) = if end.0 < start.0 || end.1 < start.1 {
        end
    } else {
        (end.0 - start.0, end.1 - start.1)
    };
    (hits as u64, (hits + misses) as u64)
}

impl CacheCost {
    /// Read as the resolution starts; `None` when the enrichment service does not
    /// answer (the report then says nothing of the cache rather than a guess).
    pub async fn at_resolution(ops: &Ops) -> Option<CacheCost> {
        let stats = ops.enrichment.stats().await.ok()?;
        Some(CacheCost {
            hit_rate_before: stats.cache_hit_rate,
            lookups_before: stats.cache_hits + stats.cache_misses,
            hits_after: None,
            lookups_after: None,
            live_entries_before: live_entries(ops).await,
            live_entries_after_resolution: None,
            counters_at_start: counters(ops).await,
        })
    }

    /// Counts the live answers left as the resolution ends.
    pub async fn resolution_ended(&mut self, ops: &Ops) {
        self.live_entries_after_resolution = live_entries(ops).await;
    }

    /// Live answers the resolution threw away, if both counts were read.
    pub fn entries_thrown_away(&self) -> Option<u64> {
        Some(
            self.live_entries_before?
                .saturating_sub(self.live_entries_after_resolution?),
        )
    }

    /// Counts what came after, at the drill's end.
    pub async fn close(&mut self, ops: &Ops) {
        if let (Some(start), Some(end)) = (self.counters_at_start, counters(ops).await) {
            let (hits, lookups) = counted_after(start, end);
            self.hits_after = Some(hits);
            self.lookups_after = Some(lookups);
        }
    }

    /// The hit rate after the resolution, if there were lookups to judge it by.
    pub fn hit_rate_after(&self) -> Option<f64> {
        match (self.hits_after, self.lookups_after) {
            (Some(hits), Some(lookups)) if lookups > 0 => Some(hits as f64 / lookups as f64),
            _ => None,
        }
    }
}

impl fmt::Display for CacheCost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "hit rate {:.0}% before the resolution ({} lookups in the last 15 minutes)",
            self.hit_rate_before * 100.0,
            self.lookups_before
        )?;
        match (self.hit_rate_after(), self.hits_after, self.lookups_after) {
            (Some(rate), Some(hits), Some(lookups)) => write!(
                f,
                ", {:.0}% after it ({hits} of {lookups} lookups hit)",
                rate * 100.0
            )?,
            _ => write!(f, ", no lookups after it to judge by")?,
        }
        if let (Some(before), Some(gone)) = (self.live_entries_before, self.entries_thrown_away()) {
            write!(
                f,
                "; the resolution threw away {gone} of its {before} live cached answers"
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(start: (f64, f64)) -> CacheCost {
        CacheCost {
            hit_rate_before: 0.4,
            lookups_before: 300,
            hits_after: None,
            lookups_after: None,
            live_entries_before: None,
            live_entries_after_resolution: None,
            counters_at_start: Some(start),
        }
    }

    #[test]
    fn what_came_after_is_counted_from_the_resolution_or_from_a_restart() {
        assert_eq!(counted_after((100.0, 150.0), (110.0, 240.0)), (10, 100));
        // metadata-enrichment restarted: its counters start again from nothing.
        assert_eq!(counted_after((100.0, 150.0), (4.0, 36.0)), (4, 40));
    }

    #[test]
    fn the_cost_reads_as_before_and_after() {
        let mut after = cost((100.0, 150.0));
        after.hits_after = Some(10);
        after.lookups_after = Some(100);
        assert_eq!(after.hit_rate_after(), Some(0.1));
        assert_eq!(
            after.to_string(),
            "hit rate 40% before the resolution (300 lookups in the last 15 minutes), \
             10% after it (10 of 100 lookups hit)"
        );
        after.live_entries_before = Some(120);
        after.live_entries_after_resolution = Some(3);
        assert_eq!(after.entries_thrown_away(), Some(117));
        assert!(
            after
                .to_string()
                .ends_with("; the resolution threw away 117 of its 120 live cached answers")
        );
        let nothing = cost((0.0, 0.0));
        assert_eq!(nothing.hit_rate_after(), None);
        assert!(
            nothing
                .to_string()
                .ends_with("no lookups after it to judge by")
        );
    }
}
