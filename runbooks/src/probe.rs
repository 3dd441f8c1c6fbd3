//! Probes: read one figure of the running stack, over the wire.
//!
//! A probe is the unit of both alerting (the harness evaluates alert rules over
//! probes) and verification (a runbook's criteria are probes with tolerances). Each
//! probe can also say how a human would read the same figure, so a failed check
//! tells the reader what to type to look for themselves.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;
use wire::api::{BreakerState, Provider};

use crate::ops::api::prometheus_max;
use crate::ops::{ApiError, HttpApi, Ops};

/// The fewest enrichments in `/stats`'s window for its success rate to be evidence:
/// below this a rate reads 1.0 over nothing (workers paused) or swings on a handful.
pub const MIN_ENRICHMENTS: u32 = 20;

/// `curl http://localhost:8020/stats | jq .success_rate`, over at least
/// [`MIN_ENRICHMENTS`] enrichments: what three runbooks verify and one alerts on.
pub const SUCCESS_RATE: Probe = Probe::Rate {
    api: Api::Enrichment,
    path: "/stats",
    field: ".success_rate",
    events: ".total_enrichments",
    min_events: MIN_ENRICHMENTS,
};

/// Which documented API a probe reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    Enrichment,
    Gateway,
    Dlq,
    RestApi,
    GraphApi,
}

/// One figure of the stack.
#[derive(Clone, Debug, PartialEq)]
pub enum Probe {
    /// A number at a jq-style path (`.total_messages`) of a JSON endpoint. The path
    /// `.` sums every number of the object (e.g. all of `/dlq/errors/grouped`).
    Json {
        api: Api,
        path: &'static str,
        field: &'static str,
    },
    /// A rate at a jq-style path that counts as evidence only over enough events: the
    /// figure at `events` must be at least `min_events` ("success_rate" over a window
    /// in which nothing was enriched reads 1.0 and means nothing).
    Rate {
        api: Api,
        path: &'static str,
        field: &'static str,
        events: &'static str,
        min_events: u32,
    },
    /// A metric of the Prometheus text at `/metrics`, read as an alert rule over it
    /// reads it: the highest of its series (one per label set), so that one provider
    /// failing behind a healthy total still crosses a threshold.
    Metric { api: Api, name: &'static str },
    /// A scalar from `musicdb`, by SQL as the runbook writes it: PostgreSQL runs on the
    /// stack's modeled clock, so `NOW() - INTERVAL '1 hour'` means the modeled hour.
    Sql { sql: &'static str },
    /// The breaker states of `/health` → `.api_clients`.
    Breakers,
    /// The higher pool usage of rest-api and graph-api (0..=1).
    PoolUsage,
    /// A numeric field of Redis `INFO`.
    RedisInfo { field: &'static str },
    /// Used share of the stack's disk (`df -h`), 0..=1.
    DiskUsage,
    /// Used share of the stack's memory (`free -h`), 0..=1.
    MemoryUsage,
    /// OOM kills among the stack's processes since it started (`dmesg | grep -i oom`).
    OomKills,
    /// How many of the twin's services run with log options that do not rotate at
    /// `max_size` or smaller, keeping at most `max_file` files.
    UnrotatedLogs {
        max_size: &'static str,
        max_file: u32,
    },
}

/// What a probe read.
#[derive(Clone, Debug, PartialEq)]
pub enum Reading {
    Number(f64),
    Breakers(BTreeMap<Provider, BreakerState>),
    /// A rate over too few events to be evidence either way.
    TooFew {
        events: f64,
        needed: u32,
    },
}

impl Reading {
    /// The figure read, if it is one and it is evidence.
    pub fn number(&self) -> Option<f64> {
        match self {
            Reading::Number(n) => Some(*n),
            Reading::Breakers(_) | Reading::TooFew { .. } => None,
        }
    }
}

impl fmt::Display for Reading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reading::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => write!(f, "{n:.0}"),
            Reading::Number(n) => write!(f, "{n:.3}"),
            Reading::Breakers(states) => {
                let parts: Vec<String> = states
                    .iter()
                    .map(|(p, s)| format!("{p}={}", state_name(*s)))
                    .collect();
                f.write_str(&parts.join(" "))
            }
            Reading::TooFew { events, needed } => {
                write!(
                    f,
                    "too few events to judge ({events:.0}, at least {needed} needed)"
                )
            }
        }
    }
}

pub fn state_name(state: BreakerState) -> &'static str {
    match state {
        BreakerState::Closed => "CLOSED",
        BreakerState::Open => "OPEN",
        BreakerState::HalfOpen => "HALF_OPEN",
    }
}

/// A probe that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("query failed: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("{0} cannot be read on this backend")]
    Unavailable(&'static str),
    #[error(transparent)]
    Host(#[from] crate::ops::HostError),
    #[error("{what} has no number at {path}")]
    Missing { what: String, path: String },
    /// What only the orchestrator tells (a service's log options) could not be asked.
    #[error("{0}")]
    Orchestrator(#[source] crate::ops::OrchestratorError),
}

impl Probe {
    pub async fn read(&self, ops: &Ops) -> Result<Reading, ProbeError> {
        match self {
            Probe::Json { api, path, field } => {
                let value: Value = http(ops, *api).get_json(path).await?;
                number_at(&value, field)
                    .map(Reading::Number)
                    .ok_or_else(|| ProbeError::Missing {
                        what: (*path).to_owned(),
                        path: (*field).to_owned(),
                    })
            }
            Probe::Rate {
                api,
                path,
                field,
                events,
                min_events,
            } => {
                let value: Value = http(ops, *api).get_json(path).await?;
                let missing = |at: &str| ProbeError::Missing {
                    what: (*path).to_owned(),
                    path: at.to_owned(),
                };
                let count = number_at(&value, events).ok_or_else(|| missing(events))?;
                if count < f64::from(*min_events) {
                    return Ok(Reading::TooFew {
                        events: count,
                        needed: *min_events,
                    });
                }
                number_at(&value, field)
                    .map(Reading::Number)
                    .ok_or_else(|| missing(field))
            }
            Probe::Metric { api, name } => {
                let text = http(ops, *api).get_text("/metrics").await?;
                prometheus_max(&text, name)
                    .map(Reading::Number)
                    .ok_or_else(|| ProbeError::Missing {
                        what: "/metrics".into(),
                        path: (*name).to_owned(),
                    })
            }
            Probe::Sql { sql } => {
                let value: Option<f64> = sqlx::query_scalar(*sql).fetch_one(&ops.db).await?;
                Ok(Reading::Number(value.unwrap_or(0.0)))
            }
            Probe::Breakers => {
                let health = ops.enrichment.health().await?;
                Ok(Reading::Breakers(
                    health
                        .api_clients
                        .into_iter()
                        // A disabled provider's breaker sees no calls and cannot close;
                        // it is not part of the incident.
                        .filter(|(_, client)| client.enabled)
                        .map(|(provider, client)| (provider, client.state))
                        .collect(),
                ))
            }
            Probe::PoolUsage => {
                let rest = ops.rest_api.pool().await?;
                let graph = ops.graph_api.pool().await?;
                Ok(Reading::Number(rest.usage.max(graph.usage)))
            }
            Probe::DiskUsage => {
                let host = ops
                    .host
                    .as_ref()
                    .ok_or(ProbeError::Unavailable("disk usage"))?;
                Ok(Reading::Number(host.disk().await?.fraction()))
            }
            Probe::MemoryUsage => {
                let host = ops
                    .host
                    .as_ref()
                    .ok_or(ProbeError::Unavailable("memory usage"))?;
                Ok(Reading::Number(host.memory().await?.fraction()))
            }
            Probe::OomKills => {
                let host = ops
                    .host
                    .as_ref()
                    .ok_or(ProbeError::Unavailable("OOM kills"))?;
                Ok(Reading::Number(host.oom_kills().await? as f64))
            }
            Probe::UnrotatedLogs { max_size, max_file } => {
                let limit = wire::env::parse_size(max_size);
                let mut unrotated = 0;
                for service in wire::Service::TWIN {
                    let config = ops
                        .orchestrator
                        .log_config(service)
                        .await
                        .map_err(ProbeError::Orchestrator)?;
                    let size = config.max_size.as_deref().and_then(wire::env::parse_size);
                    let files = config
                        .max_file
                        .as_deref()
                        .and_then(|f| f.parse::<u32>().ok());
                    let rotates = size.is_some_and(|s| limit.is_some_and(|l| s <= l))
                        && files.is_some_and(|f| f <= *max_file);
                    if !rotates {
                        unrotated += 1;
                    }
                }
                Ok(Reading::Number(f64::from(unrotated)))
            }
            Probe::RedisInfo { field } => {
                let mut connection = ops.redis.get_multiplexed_async_connection().await?;
                let info: String = redis::cmd("INFO").query_async(&mut connection).await?;
                info.lines()
                    .find_map(|line| line.strip_prefix(&format!("{field}:")))
                    .and_then(|v| v.trim().parse().ok())
                    .map(Reading::Number)
                    .ok_or_else(|| ProbeError::Missing {
                        what: "redis INFO".into(),
                        path: (*field).to_owned(),
                    })
            }
        }
    }

    /// How a human reads the same figure.
    pub fn command(&self, ops: &Ops) -> String {
        match self {
            Probe::Json { api, path, field }
            | Probe::Rate {
                api, path, field, ..
            } => {
                let url = http(ops, *api)
                    .url(path)
                    .map(|u| u.to_string())
                    .unwrap_or_default();
                format!("curl -s {url} | jq {field}")
            }
            Probe::Metric { api, name } => {
                let url = http(ops, *api)
                    .url("/metrics")
                    .map(|u| u.to_string())
                    .unwrap_or_default();
                format!("curl -s {url} | grep {name}")
            }
            Probe::Sql { sql } => ops.psql(sql),
            Probe::Breakers => format!(
                "curl -s {} | jq '.api_clients'",
                ops.enrichment
                    .0
                    .url("/health")
                    .map(|u| u.to_string())
                    .unwrap_or_default()
            ),
            Probe::PoolUsage => format!(
                "curl -s {} | jq .pool.usage",
                ops.rest_api
                    .0
                    .url("/health")
                    .map(|u| u.to_string())
                    .unwrap_or_default()
            ),
            Probe::RedisInfo { field } => format!("redis-cli INFO | grep {field}"),
            Probe::DiskUsage => "df -h".to_owned(),
            Probe::MemoryUsage => "free -h".to_owned(),
            Probe::OomKills => "dmesg | grep -i oom".to_owned(),
            Probe::UnrotatedLogs { .. } => {
                "docker inspect rest-api | jq '.[0].HostConfig.LogConfig'".to_owned()
            }
        }
    }
}

fn http(ops: &Ops, api: Api) -> &HttpApi {
    match api {
        Api::Enrichment => &ops.enrichment.0,
        Api::Gateway => &ops.gateway.0,
        Api::Dlq => &ops.dlq.0,
        Api::RestApi => &ops.rest_api.0,
        Api::GraphApi => &ops.graph_api.0,
    }
}

/// The number at a jq-style path (`.a.b`); `.` sums the numbers of an object.
pub fn number_at(value: &Value, path: &str) -> Option<f64> {
    if path == "." {
        return value
            .as_object()
            .map(|object| object.values().filter_map(Value::as_f64).sum());
    }
    let mut current = value;
    for key in path.trim_start_matches('.').split('.') {
        current = current.get(key)?;
    }
    current.as_f64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn jq_paths_find_nested_numbers() {
        let value = json!({"total_messages": 2500, "nested": {"rate": 0.5}});
        assert_eq!(number_at(&value, ".total_messages"), Some(2500.0));
        assert_eq!(number_at(&value, ".nested.rate"), Some(0.5));
        assert_eq!(number_at(&value, ".absent"), None);
    }

    #[test]
    fn the_dot_path_sums_an_object() {
        let grouped = json!({"circuit_breaker_open": 1500, "timeout": 600, "invalid_data": 300, "api_rate_limit": 100});
        assert_eq!(number_at(&grouped, "."), Some(2500.0));
    }

    #[test]
    fn breaker_readings_print_like_the_health_endpoint() {
        let reading = Reading::Breakers(BTreeMap::from([
            (Provider::Spotify, BreakerState::Open),
            (Provider::Lastfm, BreakerState::HalfOpen),
        ]));
        assert_eq!(reading.to_string(), "spotify=OPEN lastfm=HALF_OPEN");
    }
}
