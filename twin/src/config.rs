//! A twin service's configuration, read from its environment as a compose service's is.

use std::net::SocketAddr;
use std::time::Duration;

use url::Url;
use wire::{Clock, Service, env};

/// Everything a twin service may be given. Each role requires the fields it uses and
/// says which one is missing ([`TwinConfig::require`]).
#[derive(Clone, Debug)]
pub struct TwinConfig {
    pub service: Service,
    pub clock: Clock,
    pub database_url: Option<String>,
    pub redis_url: Option<String>,
    pub listen: Option<SocketAddr>,
    pub chaos_listen: Option<SocketAddr>,
    /// The service runs in a container of the stack's network ([`env::CHAOS_IN_CONTAINER`]).
    pub chaos_in_container: bool,
    pub enrichment_url: Option<Url>,
    pub gateway_url: Option<Url>,
    pub spotify_url: Option<Url>,
    pub musicbrainz_url: Option<Url>,
    pub lastfm_url: Option<Url>,
    pub source_url: Option<Url>,
    pub pool_size: u32,
    pub max_overflow: u32,
    pub batch_size: u32,
    /// Modeled time between two polls of a scraper's source site.
    pub scrape_interval: Duration,
    pub parent_pid: Option<i32>,
    pub run_id: Option<String>,
    /// Chaos switches on from the start ([`env::CHAOS_AT_START`]).
    pub chaos_at_start: serde_json::Map<String, serde_json::Value>,
    /// Database time of a track API's data request ([`env::QUERY_SECONDS`]), modeled.
    pub query_time: Duration,
}

/// A variable that is missing or cannot be understood.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{service} needs {var}, which is not set")]
    Missing { service: Service, var: &'static str },
    #[error("{var}='{value}' is not valid: {reason}")]
    Invalid {
        var: &'static str,
        value: String,
        reason: String,
    },
}

impl TwinConfig {
    pub fn from_env(service: Service) -> Result<Self, ConfigError> {
        let clock = match std::env::var(env::CLOCK) {
            Ok(text) => {
                text.parse()
                    .map_err(|e: wire::clock::ClockError| ConfigError::Invalid {
                        var: env::CLOCK,
                        value: text,
                        reason: e.to_string(),
                    })?
            }
            Err(_) => Clock::real_time(),
        };
        Ok(Self {
            service,
            clock,
            database_url: var(env::DATABASE_URL),
            redis_url: var(env::REDIS_URL),
            listen: parsed(env::LISTEN)?,
            chaos_listen: parsed(env::CHAOS_LISTEN)?,
            chaos_in_container: var(env::CHAOS_IN_CONTAINER).is_some_and(|v| v == "1"),
            enrichment_url: url(env::ENRICHMENT_URL)?,
            gateway_url: url(env::GATEWAY_URL)?,
            spotify_url: url(env::SPOTIFY_URL)?,
            musicbrainz_url: url(env::MUSICBRAINZ_URL)?,
            lastfm_url: url(env::LASTFM_URL)?,
            source_url: url(env::SOURCE_URL)?,
            // The SongNodes defaults the runbook quotes: "POSTGRES_POOL_SIZE=20 (from 10)".
            pool_size: parsed(env::POOL_SIZE)?.unwrap_or(10),
            max_overflow: parsed(env::MAX_OVERFLOW)?.unwrap_or(20),
            batch_size: parsed(env::BATCH_SIZE)?.unwrap_or(50),
            scrape_interval: Duration::from_secs(parsed(env::SCRAPE_INTERVAL_SECS)?.unwrap_or(300)),
            parent_pid: parsed(env::PARENT_PID)?,
            run_id: var(env::RUN_ID),
            chaos_at_start: json_object(env::CHAOS_AT_START)?,
            query_time: Duration::from_secs_f64(
                parsed::<f64>(env::QUERY_SECONDS)?
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .unwrap_or(0.0),
            ),
        })
    }

    /// The value of a field this service cannot run without.
    pub fn require<T: Clone>(
        &self,
        field: &Option<T>,
        var: &'static str,
    ) -> Result<T, ConfigError> {
        field.clone().ok_or(ConfigError::Missing {
            service: self.service,
            var,
        })
    }
}

fn json_object(
    name: &'static str,
) -> Result<serde_json::Map<String, serde_json::Value>, ConfigError> {
    match var(name) {
        None => Ok(serde_json::Map::new()),
        Some(value) => serde_json::from_str(&value).map_err(|e| ConfigError::Invalid {
            var: name,
            value,
            reason: format!("not a JSON object of switches: {e}"),
        }),
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn parsed<T>(name: &'static str) -> Result<Option<T>, ConfigError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    var(name)
        .map(|value| {
            value.parse().map_err(|e: T::Err| ConfigError::Invalid {
                var: name,
                reason: e.to_string(),
                value,
            })
        })
        .transpose()
}

fn url(name: &'static str) -> Result<Option<Url>, ConfigError> {
    parsed::<Url>(name)
}
