//! The documented JSON shapes of the SongNodes API, and the vocabularies they use.
//!
//! Field names are the runbook's: `curl http://localhost:8024/dlq/stats | jq
//! .total_messages` must work, so these types are the contract between the twin
//! (which serves them) and the runbook implementations (which read them).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// An external metadata provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Spotify,
    Musicbrainz,
    Lastfm,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::Spotify, Provider::Musicbrainz, Provider::Lastfm];

    /// The name used in `metadata_enrichment_config` and in URLs.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Spotify => "spotify",
            Provider::Musicbrainz => "musicbrainz",
            Provider::Lastfm => "lastfm",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("unknown provider '{0}' (expected spotify, musicbrainz or lastfm)")]
pub struct UnknownProvider(pub String);

impl FromStr for Provider {
    type Err = UnknownProvider;
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Provider::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| UnknownProvider(name.to_owned()))
    }
}

/// A site the scrapers read tracklists from; `tracks.source` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SourceSite {
    #[serde(rename = "mixesdb")]
    Mixesdb,
    #[serde(rename = "1001tracklists")]
    Tracklists1001,
}

impl SourceSite {
    pub const ALL: [SourceSite; 2] = [SourceSite::Mixesdb, SourceSite::Tracklists1001];

    /// `tracks.source` for what this site yields.
    pub fn name(self) -> &'static str {
        match self {
            SourceSite::Mixesdb => "mixesdb",
            SourceSite::Tracklists1001 => "1001tracklists",
        }
    }

    /// The listing endpoint, relative to the site's base URL; the page goes in
    /// `?page=` (the contract between a scraper and the site's stand-in).
    pub fn listing_path(self) -> &'static str {
        match self {
            SourceSite::Mixesdb => "api/tracklists",
            SourceSite::Tracklists1001 => "api/tracklist",
        }
    }

    /// The compose service that scrapes this site.
    pub fn scraper(self) -> crate::Service {
        match self {
            SourceSite::Mixesdb => crate::Service::ScraperMixesdb,
            SourceSite::Tracklists1001 => crate::Service::Scraper1001Tracklists,
        }
    }

    /// The site a compose service scrapes, if it is a scraper.
    pub fn scraped_by(service: crate::Service) -> Option<Self> {
        SourceSite::ALL
            .into_iter()
            .find(|site| site.scraper() == service)
    }
}

impl fmt::Display for SourceSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an enrichment failed, as the DLQ records it (`dlq_messages.error`).
///
/// The first four are the keys the runbook shows under `/dlq/errors/grouped`;
/// `provider_error` (a 5xx or refused connection before any breaker opened) is
/// reported there only when it occurs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    CircuitBreakerOpen,
    Timeout,
    InvalidData,
    ApiRateLimit,
    ProviderError,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 5] = [
        ErrorKind::CircuitBreakerOpen,
        ErrorKind::Timeout,
        ErrorKind::InvalidData,
        ErrorKind::ApiRateLimit,
        ErrorKind::ProviderError,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::CircuitBreakerOpen => "circuit_breaker_open",
            ErrorKind::Timeout => "timeout",
            ErrorKind::InvalidData => "invalid_data",
            ErrorKind::ApiRateLimit => "api_rate_limit",
            ErrorKind::ProviderError => "provider_error",
        }
    }

    /// Whether the runbook always shows this key in `/dlq/errors/grouped`.
    pub fn always_reported(self) -> bool {
        self != ErrorKind::ProviderError
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("unknown DLQ error type '{0}'")]
pub struct UnknownErrorKind(pub String);

impl FromStr for ErrorKind {
    type Err = UnknownErrorKind;
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        ErrorKind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| UnknownErrorKind(name.to_owned()))
    }
}

/// A circuit breaker's state, spelled as `/health` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

/// `GET :8024/dlq/stats`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DlqStats {
    pub total_messages: i64,
    pub oldest_message_age_minutes: f64,
    pub error_rate_per_minute: f64,
}

/// `GET :8024/dlq/errors/grouped`: message counts keyed by [`ErrorKind`] name.
pub type DlqErrorsGrouped = BTreeMap<String, i64>;

/// One element of `GET :8024/dlq/messages?limit=N`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DlqMessage {
    pub message_id: i64,
    pub track_id: i64,
    pub artist_name: Option<String>,
    pub track_name: Option<String>,
    pub error: ErrorKind,
    pub error_message: String,
    pub provider: Option<Provider>,
    pub replay_count: i32,
    pub created_at: DateTime<Utc>,
}

/// `POST :8024/dlq/replay/batch` body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplayRequest {
    pub batch_size: i64,
}

/// `POST :8024/dlq/replay/batch` answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplayOutcome {
    pub replayed: i64,
    pub remaining: i64,
}

/// `DELETE :8024/dlq/messages/before/{date}` answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PurgeOutcome {
    pub purged: i64,
    pub archived: i64,
    pub before: String,
}

/// One provider under `GET :8020/health` → `.api_clients`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiClientHealth {
    pub state: BreakerState,
    pub failure_count: u32,
    pub enabled: bool,
    /// Modeled seconds until an OPEN breaker lets a trial call through.
    pub seconds_until_half_open: Option<f64>,
}

/// `GET :8020/health`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnrichmentHealth {
    pub status: String,
    pub api_clients: BTreeMap<Provider, ApiClientHealth>,
}

/// `GET :8020/stats`: figures over a sliding window of modeled time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnrichmentStats {
    pub success_rate: f64,
    pub cache_hit_rate: f64,
    pub total_enrichments: u64,
    pub successful_enrichments: u64,
    pub failed_enrichments: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub window_minutes: f64,
}

/// One provider under `GET :8020/stats/by-provider`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProviderStats {
    pub success_rate: f64,
    pub calls: u64,
    pub failures: u64,
    pub avg_latency_ms: f64,
}

/// `GET :8020/stats/by-provider`.
pub type StatsByProvider = BTreeMap<Provider, ProviderStats>;

/// Pool usage of rest-api / graph-api (`GET /health` → `.pool`), as also logged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PoolUsage {
    pub size: u32,
    pub max_overflow: u32,
    pub checked_out: u32,
    pub idle: u32,
    /// `checked_out / (size + max_overflow)`, 0..=1.
    pub usage: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_states_are_spelled_as_the_runbook_checks_them() {
        let json = serde_json::to_string(&BreakerState::HalfOpen).unwrap();
        assert_eq!(json, "\"HALF_OPEN\"");
    }

    #[test]
    fn error_kinds_use_the_grouped_keys() {
        for kind in ErrorKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.name()));
            assert_eq!(kind.name().parse::<ErrorKind>(), Ok(kind));
        }
    }

    #[test]
    fn api_clients_are_keyed_by_provider_name() {
        let mut api_clients = BTreeMap::new();
        api_clients.insert(
            Provider::Spotify,
            ApiClientHealth {
                state: BreakerState::Open,
                failure_count: 5,
                enabled: true,
                seconds_until_half_open: Some(12.0),
            },
        );
        let health = EnrichmentHealth {
            status: "degraded".into(),
            api_clients,
        };
        let value = serde_json::to_value(&health).unwrap();
        assert_eq!(value["api_clients"]["spotify"]["state"], "OPEN");
    }
}

/// What became of a twin service's log file writes: `GET /chaos/log_file` on its chaos
/// surface (JSON `null` for a service without a log file). The harness reads it to
/// prove a full disk fails the writes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogFileStatus {
    pub path: String,
    /// Lines appended in full.
    pub lines_written: u64,
    /// Lines that could not be written (or only in part), since the service started.
    pub write_failures: u64,
    /// Whether the last write failed.
    pub failing: bool,
    /// The last write error, e.g. "No space left on device (os error 28)".
    pub last_error: Option<String>,
}
