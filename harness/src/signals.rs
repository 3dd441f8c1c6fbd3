//! The signals an on-call engineer watches, sampled over modeled time.
//!
//! One list of signals feeds the game day's live board, the charts of its report and
//! those of `drill run --html`: DLQ depth and rate, breaker states, success and
//! cache-hit rates, the gateway's error rate, pool usage, disk and memory, the hourly
//! quality score, the scrapers' staleness and the last scraped track. Where an alert
//! rule watches a signal, the signal is read with the rule's own probe, so the board
//! and the alert can never disagree about what a figure means.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use runbooks::ops::Ops;
use runbooks::probe::{Api, Probe, Reading, state_name};
use serde::{Deserialize, Serialize};

/// One figure of the board.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Signal {
    DlqDepth,
    DlqRate,
    SuccessRate,
    CacheHitRate,
    GatewayErrorRate,
    PoolUsage,
    DiskUsage,
    MemoryUsage,
    QualityScore,
    ScraperStaleness,
}

/// How a signal's figure reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Count,
    PerMinute,
    /// A share, 0..=1, shown as a percentage.
    Share,
    Score,
    Minutes,
}

impl Signal {
    pub const ALL: [Signal; 10] = [
        Signal::DlqDepth,
        Signal::DlqRate,
        Signal::SuccessRate,
        Signal::CacheHitRate,
        Signal::GatewayErrorRate,
        Signal::PoolUsage,
        Signal::DiskUsage,
        Signal::MemoryUsage,
        Signal::QualityScore,
        Signal::ScraperStaleness,
    ];

    /// What a person calls it.
    pub fn label(self) -> &'static str {
        match self {
            Signal::DlqDepth => "DLQ depth",
            Signal::DlqRate => "DLQ errors/min",
            Signal::SuccessRate => "enrichment success rate",
            Signal::CacheHitRate => "cache hit rate",
            Signal::GatewayErrorRate => "gateway error rate",
            Signal::PoolUsage => "DB pool usage",
            Signal::DiskUsage => "disk used",
            Signal::MemoryUsage => "memory used",
            Signal::QualityScore => "quality score (1 h)",
            Signal::ScraperStaleness => "stalest scraper, minutes",
        }
    }

    pub fn unit(self) -> Unit {
        match self {
            Signal::DlqDepth => Unit::Count,
            Signal::DlqRate => Unit::PerMinute,
            Signal::SuccessRate
            | Signal::CacheHitRate
            | Signal::GatewayErrorRate
            | Signal::PoolUsage
            | Signal::DiskUsage
            | Signal::MemoryUsage => Unit::Share,
            Signal::QualityScore => Unit::Score,
            Signal::ScraperStaleness => Unit::Minutes,
        }
    }

    /// The alert rule that watches this signal, if one does.
    pub fn alert(self) -> Option<&'static str> {
        Some(match self {
            Signal::DlqDepth => "DLQDepthCritical",
            Signal::SuccessRate => "EnrichmentSuccessRateLow",
            Signal::GatewayErrorRate => "APIGatewayErrorRateHigh",
            Signal::PoolUsage => "DatabaseConnectionPoolHigh",
            Signal::DiskUsage => "DiskSpaceHigh",
            Signal::MemoryUsage => "MemoryUsageHigh",
            Signal::QualityScore => "DataQualityScoreLow",
            Signal::ScraperStaleness => "ScraperStalled",
            Signal::DlqRate | Signal::CacheHitRate => return None,
        })
    }

    /// The probe that reads it: the alert rule's, where a rule watches it.
    pub fn probe(self) -> Probe {
        if let Some(rule) = self
            .alert()
            .and_then(|name| runbooks::alert_rules().into_iter().find(|r| r.name == name))
        {
            return rule.probe.clone();
        }
        match self {
            Signal::DlqRate => Probe::Json {
                api: Api::Dlq,
                path: "/dlq/stats",
                field: ".error_rate_per_minute",
            },
            _ => Probe::Json {
                api: Api::Enrichment,
                path: "/stats",
                field: ".cache_hit_rate",
            },
        }
    }

    /// The figure as the board shows it.
    pub fn format(self, value: f64) -> String {
        match self.unit() {
            Unit::Count => format!("{value:.0}"),
            Unit::PerMinute => format!("{value:.1}/min"),
            Unit::Share => format!("{:.1}%", value * 100.0),
            Unit::Score => format!("{value:.1}"),
            Unit::Minutes => format!("{value:.0} min"),
        }
    }
}

/// One reading of every signal.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Modeled minutes since the history began.
    pub minute: f64,
    /// The signals that could be read (a rate over too few events is left out).
    pub values: BTreeMap<Signal, f64>,
    /// Why the others could not be, one line each.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unreadable: BTreeMap<Signal, String>,
    /// Each provider's breaker state, as `/health` names it.
    pub breakers: BTreeMap<String, String>,
    /// The newest scraped track: "artist – title (source)".
    pub last_track: Option<String>,
}

/// The samples of one drill or game day.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub started_at: Option<DateTime<Utc>>,
    pub samples: Vec<Sample>,
}

impl History {
    pub fn starting(at: DateTime<Utc>) -> Self {
        Self {
            started_at: Some(at),
            samples: Vec::new(),
        }
    }

    pub fn latest(&self) -> Option<&Sample> {
        self.samples.last()
    }

    /// `(minute, value)` of one signal, where it was read.
    pub fn series(&self, signal: Signal) -> Vec<(f64, f64)> {
        self.samples
            .iter()
            .filter_map(|s| s.values.get(&signal).map(|v| (s.minute, *v)))
            .collect()
    }

    /// Modeled minutes from the start to `at`.
    pub fn minute_of(&self, at: DateTime<Utc>) -> f64 {
        self.started_at.map_or(0.0, |start| {
            (at - start).num_milliseconds() as f64 / 60_000.0
        })
    }
}

const LAST_TRACK: &str = "SELECT COALESCE(artist_name, '?') || ' – ' || COALESCE(track_name, '?') || ' (' || source || ')' \
     FROM tracks WHERE source IN ('mixesdb', '1001tracklists') ORDER BY created_at DESC, track_id DESC LIMIT 1";

/// Reads every signal once.
pub async fn sample(ops: &Ops, history_start: DateTime<Utc>) -> Sample {
    let now = ops.clock.now();
    let mut sample = Sample {
        minute: (now - history_start).num_milliseconds() as f64 / 60_000.0,
        ..Sample::default()
    };
    for signal in Signal::ALL {
        match signal.probe().read(ops).await {
            Ok(Reading::Number(value)) => {
                sample.values.insert(signal, value);
            }
            Ok(reading) => {
                sample.unreadable.insert(signal, reading.to_string());
            }
            Err(error) => {
                sample.unreadable.insert(signal, error.to_string());
            }
        }
    }
    if let Ok(Reading::Breakers(states)) = Probe::Breakers.read(ops).await {
        sample.breakers = states
            .into_iter()
            .map(|(provider, state)| (provider.to_string(), state_name(state).to_owned()))
            .collect();
    }
    sample.last_track = sqlx::query_scalar::<_, String>(LAST_TRACK)
        .fetch_optional(&ops.db)
        .await
        .ok()
        .flatten();
    sample
}

/// Samples every `every` (modeled) into `history` until aborted.
pub fn spawn_sampler(
    ops: Ops,
    every: Duration,
    history: Arc<Mutex<History>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let start = {
            let mut history = history.lock().unwrap_or_else(|p| p.into_inner());
            *history.started_at.get_or_insert_with(|| ops.clock.now())
        };
        let mut tick = ops.clock.interval(every);
        loop {
            tick.tick().await;
            let sample = sample(&ops, start).await;
            history
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .samples
                .push(sample);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alert_a_signal_names_is_a_rule_of_the_runbooks() {
        let rules: Vec<&str> = runbooks::alert_rules().iter().map(|r| r.name).collect();
        for signal in Signal::ALL {
            if let Some(alert) = signal.alert() {
                assert!(rules.contains(&alert), "{signal:?} names {alert}");
            }
        }
    }

    #[test]
    fn a_series_skips_samples_where_the_signal_was_unreadable() {
        let mut history = History::default();
        for (minute, value) in [(0.0, Some(0.9)), (0.5, None), (1.0, Some(0.4))] {
            let mut sample = Sample {
                minute,
                ..Sample::default()
            };
            if let Some(value) = value {
                sample.values.insert(Signal::SuccessRate, value);
            }
            history.samples.push(sample);
        }
        assert_eq!(
            history.series(Signal::SuccessRate),
            vec![(0.0, 0.9), (1.0, 0.4)]
        );
        assert_eq!(Signal::SuccessRate.format(0.4), "40.0%");
    }
}
