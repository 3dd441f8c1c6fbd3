//! What enrichment has done lately: `/stats`, `/stats/by-provider` and the counters
//! behind `/metrics`.
//!
//! The runbooks' thresholds ("success rate > 70%") are about recent behaviour, so
//! rates are computed over the last [`WINDOW`] of modeled time ([`Window`]); the
//! Prometheus counters are totals since start (or since the last chaos reset).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use wire::api::{EnrichmentStats, Provider, ProviderStats, StatsByProvider};

use super::window::{Tally, Window};

/// The span `/stats` reports on.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Bucket width of the window: its edge is this precise.
const BUCKET: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProviderTally {
    pub calls: u64,
    pub failures: u64,
    pub latency_ms_sum: f64,
}

/// Everything counted, per bucket or in total.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counts {
    pub enriched: u64,
    pub failed: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    /// Indexed like [`Provider::ALL`].
    pub providers: [ProviderTally; 3],
}

impl Tally for Counts {
    fn absorb(&mut self, other: &Self) {
        self.enriched += other.enriched;
        self.failed += other.failed;
        self.cache_hits += other.cache_hits;
        self.cache_misses += other.cache_misses;
        for (mine, theirs) in self.providers.iter_mut().zip(&other.providers) {
            mine.calls += theirs.calls;
            mine.failures += theirs.failures;
            mine.latency_ms_sum += theirs.latency_ms_sum;
        }
    }
}

impl Counts {
    pub fn provider(&self, provider: Provider) -> &ProviderTally {
        &self.providers[index(provider)]
    }

    /// `/stats` from the counts of a window.
    pub fn to_stats(&self) -> EnrichmentStats {
        let total = self.enriched + self.failed;
        let lookups = self.cache_hits + self.cache_misses;
        EnrichmentStats {
            success_rate: ratio(self.enriched, total, 1.0),
            cache_hit_rate: ratio(self.cache_hits, lookups, 0.0),
            total_enrichments: total,
            successful_enrichments: self.enriched,
            failed_enrichments: self.failed,
            cache_hits: self.cache_hits,
            cache_misses: self.cache_misses,
            window_minutes: WINDOW.as_secs_f64() / 60.0,
        }
    }

    /// `/stats/by-provider` from the counts of a window: every provider, 1.0 when idle.
    pub fn to_by_provider(&self) -> StatsByProvider {
        Provider::ALL
            .into_iter()
            .map(|provider| {
                let tally = self.provider(provider);
                let stats = ProviderStats {
                    success_rate: ratio(tally.calls - tally.failures, tally.calls, 1.0),
                    calls: tally.calls,
                    failures: tally.failures,
                    avg_latency_ms: if tally.calls == 0 {
                        0.0
                    } else {
                        tally.latency_ms_sum / tally.calls as f64
                    },
                };
                (provider, stats)
            })
            .collect()
    }
}

/// The service's statistics; cheap to clone.
#[derive(Clone)]
pub struct Stats {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    window: Window<Counts>,
    totals: Counts,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                window: Window::new(WINDOW, BUCKET),
                totals: Counts::default(),
            })),
        }
    }
}

impl Stats {
    /// One track's enrichment ended.
    pub fn record_enrichment(&self, at: DateTime<Utc>, success: bool, hits: u32, misses: u32) {
        self.update(at, |c| {
            if success {
                c.enriched += 1;
            } else {
                c.failed += 1;
            }
            c.cache_hits += u64::from(hits);
            c.cache_misses += u64::from(misses);
        });
    }

    /// One provider call (a real one, not a cache hit) ended.
    pub fn record_call(
        &self,
        at: DateTime<Utc>,
        provider: Provider,
        success: bool,
        latency_ms: f64,
    ) {
        self.update(at, |c| {
            let tally = &mut c.providers[index(provider)];
            tally.calls += 1;
            if !success {
                tally.failures += 1;
            }
            tally.latency_ms_sum += latency_ms;
        });
    }

    /// The counts of the window ending at `now`.
    pub fn recent(&self, now: DateTime<Utc>) -> Counts {
        self.lock().window.total(now)
    }

    /// Totals since start or the last [`Stats::clear`].
    pub fn totals(&self) -> Counts {
        self.lock().totals.clone()
    }

    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.window.clear();
        inner.totals = Counts::default();
    }

    fn update(&self, at: DateTime<Utc>, change: impl Fn(&mut Counts)) {
        let mut inner = self.lock();
        inner.window.record(at, &change);
        change(&mut inner.totals);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn index(provider: Provider) -> usize {
    match provider {
        Provider::Spotify => 0,
        Provider::Musicbrainz => 1,
        Provider::Lastfm => 2,
    }
}

fn ratio(part: u64, whole: u64, when_empty: f64) -> f64 {
    if whole == 0 {
        when_empty
    } else {
        part as f64 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_764_300_000, 0).unwrap() + TimeDelta::minutes(minutes)
    }

    #[test]
    fn an_idle_window_reports_full_success_and_no_hits() {
        let stats = Stats::default().recent(at(0)).to_stats();
        assert_eq!(stats.success_rate, 1.0);
        assert_eq!(stats.cache_hit_rate, 0.0);
        assert_eq!(stats.total_enrichments, 0);
        assert_eq!(stats.window_minutes, 15.0);
        let by = Stats::default().recent(at(0)).to_by_provider();
        assert_eq!(by.len(), 3);
        assert!(by.values().all(|p| p.success_rate == 1.0 && p.calls == 0));
    }

    #[test]
    fn rates_cover_the_last_fifteen_minutes_only() {
        let stats = Stats::default();
        stats.record_enrichment(at(0), false, 0, 4);
        stats.record_enrichment(at(10), true, 3, 1);
        stats.record_enrichment(at(11), true, 1, 3);
        let now = stats.recent(at(12)).to_stats();
        assert_eq!(now.total_enrichments, 3);
        assert!((now.success_rate - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(now.cache_hit_rate, 4.0 / 12.0);
        let later = stats.recent(at(20)).to_stats();
        assert_eq!(later.total_enrichments, 2);
        assert_eq!(later.success_rate, 1.0);
        assert_eq!(later.cache_hit_rate, 0.5);
        assert_eq!(stats.totals().failed, 1, "totals do not slide");
    }

    #[test]
    fn provider_rates_and_latency() {
        let stats = Stats::default();
        stats.record_call(at(0), Provider::Musicbrainz, true, 100.0);
        stats.record_call(at(0), Provider::Musicbrainz, false, 300.0);
        let by = stats.recent(at(1)).to_by_provider();
        let mb = &by[&Provider::Musicbrainz];
        assert_eq!((mb.calls, mb.failures), (2, 1));
        assert_eq!(mb.success_rate, 0.5);
        assert_eq!(mb.avg_latency_ms, 200.0);
        assert_eq!(by[&Provider::Spotify].success_rate, 1.0);
        stats.clear();
        assert_eq!(stats.recent(at(1)).provider(Provider::Musicbrainz).calls, 0);
    }
}
