//! HTTP clients for the documented SongNodes endpoints.
//!
//! One client per service, built once, addressed by base URL: in drill mode these
//! are `http://localhost:8020/` and friends, in tests free ports, against a real
//! deployment its URLs. Each method is one `curl` of the runbook, and
//! [`HttpApi::curl`] renders that command for the timeline.

use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;
use wire::api::{
    DlqErrorsGrouped, DlqMessage, DlqStats, EnrichmentHealth, EnrichmentStats, PoolUsage,
    PurgeOutcome, ReplayOutcome, ReplayRequest, StatsByProvider,
};

/// A request to a SongNodes endpoint that did not give the expected answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{method} {url}: {source}")]
    Transport {
        method: Method,
        url: Url,
        #[source]
        source: reqwest::Error,
    },
    #[error("{method} {url} answered {status}: {body}")]
    Status {
        method: Method,
        url: Url,
        status: StatusCode,
        body: String,
    },
    #[error("{method} {url}: unexpected body: {source}")]
    Body {
        method: Method,
        url: Url,
        #[source]
        source: serde_json::Error,
    },
    #[error("'{path}' is not a valid path under {base}")]
    Path { base: Url, path: String },
    /// A read-only client (`drill check`) refused a request that could change the
    /// target; nothing was sent.
    #[error("{method} {url}: refused, read-only (nothing was sent)")]
    ReadOnly { method: Method, url: Url },
}

/// Calls that a runbook step is allowed to make take at most this long (real time):
/// long enough for a loaded debug build, short enough that a hung service fails a step.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// One service's HTTP API: a base URL and a shared client.
#[derive(Clone, Debug)]
pub struct HttpApi {
    client: Client,
    base: Url,
    /// Only GET and HEAD go out; anything else is refused before it is sent.
    read_only: bool,
}

impl HttpApi {
    pub fn new(client: Client, base: Url) -> Self {
        Self {
            client,
            base,
            read_only: false,
        }
    }

    /// The same API, refusing every request but GET and HEAD before sending it.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    pub fn url(&self, path: &str) -> Result<Url, ApiError> {
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(|_| ApiError::Path {
                base: self.base.clone(),
                path: path.to_owned(),
            })
    }

    /// The curl command a human would type for `method path`, with a JSON body if any.
    pub fn curl(&self, method: Method, path: &str, body: Option<&str>) -> String {
        let url = self
            .url(path)
            .map(|u| u.to_string())
            .unwrap_or_else(|_| path.to_owned());
        match (method, body) {
            (Method::GET, _) => format!("curl {url}"),
            (method, Some(body)) => format!(
                "curl -X {method} {url} \\\n  -H \"Content-Type: application/json\" \\\n  -d '{body}'"
            ),
            (method, None) => format!("curl -X {method} {url}"),
        }
    }

    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.send_json(Method::GET, path, None::<&()>).await
    }

    pub async fn get_text(&self, path: &str) -> Result<String, ApiError> {
        let (_, body) = self.send(Method::GET, path, None::<&()>).await?;
        Ok(body)
    }

    pub async fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ApiError> {
        self.send_json(Method::POST, path, body).await
    }

    pub async fn delete_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.send_json(Method::DELETE, path, None::<&()>).await
    }

    async fn send_json<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ApiError> {
        let (url, text) = self.send(method.clone(), path, body).await?;
        serde_json::from_str(&text).map_err(|source| ApiError::Body {
            method,
            url,
            source,
        })
    }

    async fn send<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<(Url, String), ApiError> {
        let url = self.url(path)?;
        if self.read_only && !matches!(method, Method::GET | Method::HEAD) {
            return Err(ApiError::ReadOnly { method, url });
        }
        let mut request = self
            .client
            .request(method.clone(), url.clone())
            .timeout(REQUEST_TIMEOUT);
        if let Some(body) = body {
            request = request.json(body);
        }
        let transport = |source| ApiError::Transport {
            method: method.clone(),
            url: url.clone(),
            source,
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let text = response.text().await.map_err(transport)?;
        if !status.is_success() {
            return Err(ApiError::Status {
                method,
                url,
                status,
                body: text.chars().take(300).collect(),
            });
        }
        Ok((url, text))
    }
}

/// metadata-enrichment (:8020).
#[derive(Clone, Debug)]
pub struct EnrichmentApi(pub HttpApi);

impl EnrichmentApi {
    pub async fn health(&self) -> Result<EnrichmentHealth, ApiError> {
        self.0.get_json("/health").await
    }
    pub async fn stats(&self) -> Result<EnrichmentStats, ApiError> {
        self.0.get_json("/stats").await
    }
    pub async fn stats_by_provider(&self) -> Result<StatsByProvider, ApiError> {
        self.0.get_json("/stats/by-provider").await
    }
    pub async fn metrics(&self) -> Result<String, ApiError> {
        self.0.get_text("/metrics").await
    }
    pub async fn reload_config(&self) -> Result<serde_json::Value, ApiError> {
        self.0.post_json("/admin/config/reload", None::<&()>).await
    }
    pub async fn reset_breakers(&self) -> Result<serde_json::Value, ApiError> {
        self.0
            .post_json("/admin/circuit-breakers/reset-all", None::<&()>)
            .await
    }
    pub async fn warm_cache(&self) -> Result<serde_json::Value, ApiError> {
        self.0.post_json("/admin/cache/warm", None::<&()>).await
    }
    /// `POST /enrich/batch`: re-enriches enriched tracks, asking the providers afresh.
    pub async fn reenrich(&self, track_ids: &[i64]) -> Result<Reenriched, ApiError> {
        self.0
            .post_json(
                "/enrich/batch",
                Some(&serde_json::json!({ "track_ids": track_ids })),
            )
            .await
    }
}

/// What `POST /enrich/batch` did, in sum and per track.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
pub struct Reenriched {
    pub requested: usize,
    pub reenriched: usize,
    pub failed: usize,
    pub skipped: usize,
    pub tracks: Vec<ReenrichedTrack>,
}

/// One track of a re-enrichment; `validation_errors` as now stored (re-enriched only).
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
pub struct ReenrichedTrack {
    pub track_id: i64,
    pub status: String,
    #[serde(default)]
    pub validation_errors: Option<Vec<String>>,
}

/// The gateway's error rates over its recent window.
#[derive(Clone, Debug, PartialEq)]
pub struct GatewayErrorRates {
    /// The plain `error_rate` line: all providers together.
    pub overall: Option<f64>,
    /// `api_gateway_error_rate{provider=…}`, for the providers the gateway reports.
    pub by_provider: Vec<(wire::api::Provider, f64)>,
}

impl std::fmt::Display for GatewayErrorRates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.overall {
            Some(rate) => write!(f, "error_rate {rate:.3}")?,
            None => f.write_str("no error_rate line")?,
        }
        for (i, (provider, rate)) in self.by_provider.iter().enumerate() {
            let lead = if i == 0 { "; " } else { ", " };
            write!(f, "{lead}{provider} {rate:.3}")?;
        }
        Ok(())
    }
}

/// api-gateway-internal (:8022).
#[derive(Clone, Debug)]
pub struct GatewayApi(pub HttpApi);

impl GatewayApi {
    pub async fn metrics(&self) -> Result<String, ApiError> {
        self.0.get_text("/metrics").await
    }

    /// What `curl :8022/metrics | grep error_rate` shows: the overall `error_rate`
    /// line and each provider's `api_gateway_error_rate` series.
    pub async fn error_rates(&self) -> Result<GatewayErrorRates, ApiError> {
        let text = self.metrics().await?;
        Ok(GatewayErrorRates {
            overall: prometheus_value(&text, "error_rate", &[]),
            by_provider: wire::api::Provider::ALL
                .into_iter()
                .filter_map(|provider| {
                    prometheus_value(
                        &text,
                        "api_gateway_error_rate",
                        &[("provider", provider.name())],
                    )
                    .map(|rate| (provider, rate))
                })
                .collect(),
        })
    }

    /// A request through the gateway to a provider: the gateway's view of connectivity
    /// (`docker compose exec api-gateway-internal curl -I …`).
    pub async fn probe_provider(&self, provider: wire::api::Provider) -> Result<u16, ApiError> {
        let path = match provider {
            wire::api::Provider::Spotify => {
                "spotify/v1/search?q=artist:probe%20track:probe&type=track&limit=1"
            }
            wire::api::Provider::Musicbrainz => {
                "musicbrainz/ws/2/recording?query=probe&fmt=json&limit=1"
            }
            wire::api::Provider::Lastfm => {
                "lastfm/2.0/?method=track.getInfo&artist=probe&track=probe&api_key=drill&format=json"
            }
        };
        match self.0.get_text(path).await {
            Ok(_) => Ok(200),
            Err(ApiError::Status { status, .. }) => Ok(status.as_u16()),
            Err(other) => Err(other),
        }
    }
}

/// dlq-manager (:8024).
#[derive(Clone, Debug)]
pub struct DlqApi(pub HttpApi);

impl DlqApi {
    pub async fn stats(&self) -> Result<DlqStats, ApiError> {
        self.0.get_json("/dlq/stats").await
    }
    pub async fn errors_grouped(&self) -> Result<DlqErrorsGrouped, ApiError> {
        self.0.get_json("/dlq/errors/grouped").await
    }
    pub async fn messages(&self, limit: usize) -> Result<Vec<DlqMessage>, ApiError> {
        self.0
            .get_json(&format!("/dlq/messages?limit={limit}"))
            .await
    }
    pub async fn replay_batch(&self, batch_size: i64) -> Result<ReplayOutcome, ApiError> {
        self.0
            .post_json("/dlq/replay/batch", Some(&ReplayRequest { batch_size }))
            .await
    }
    pub async fn purge_before(&self, date: &str) -> Result<PurgeOutcome, ApiError> {
        self.0
            .delete_json(&format!("/dlq/messages/before/{date}"))
            .await
    }
}

/// rest-api / graph-api: their pool usage, as `GET /health` → `.pool` reports it.
#[derive(Clone, Debug)]
pub struct TrackApi(pub HttpApi);

impl TrackApi {
    pub async fn pool(&self) -> Result<PoolUsage, ApiError> {
        #[derive(serde::Deserialize)]
        struct Health {
            pool: PoolUsage,
        }
        let health: Health = self.0.get_json("/health").await?;
        Ok(health.pool)
    }
}

/// The samples of metric `name` in exposition text: each one's label text (the part
/// between the braces, `None` for an unlabelled sample) and its value.
fn prometheus_samples<'t>(
    text: &'t str,
    name: &'t str,
) -> impl Iterator<Item = (Option<&'t str>, f64)> + 't {
    text.lines().filter_map(move |line| {
        let line = line.trim();
        if line.starts_with('#') {
            return None;
        }
        let rest = line.strip_prefix(name)?;
        let (label_text, value) = if let Some(rest) = rest.strip_prefix('{') {
            let (labels_part, value) = rest.split_once('}')?;
            (Some(labels_part), value)
        } else if rest.starts_with(' ') {
            (None, rest)
        } else {
            return None; // a longer metric name that merely starts with `name`
        };
        let value = value.split_whitespace().next()?.parse::<f64>().ok()?;
        Some((label_text, value))
    })
}

/// The value of a Prometheus sample `name{labels} value` in exposition text.
///
/// `labels` must all be present on the sample; an empty list matches only the
/// unlabelled sample, or the first sample when every sample is labelled.
pub fn prometheus_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut first_labelled = None;
    for (label_text, value) in prometheus_samples(text, name) {
        match label_text {
            None if labels.is_empty() => return Some(value),
            None => continue,
            Some(label_text) => {
                let all_match = labels
                    .iter()
                    .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")));
                if !labels.is_empty() && all_match {
                    return Some(value);
                }
                if labels.is_empty() && first_labelled.is_none() {
                    first_labelled = Some(value);
                }
            }
        }
    }
    first_labelled
}

/// The highest value among all series of metric `name`, as a Prometheus rule
/// `name > x` sees them: it fires when any one series crosses, and clears only when
/// none does.
pub fn prometheus_max(text: &str, name: &str) -> Option<f64> {
    prometheus_samples(text, name)
        .map(|(_, value)| value)
        .reduce(f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    const METRICS: &str = "\
# HELP circuit_breaker_failure_count Consecutive failures.
circuit_breaker_failure_count{provider=\"spotify\"} 5
circuit_breaker_failure_count{provider=\"lastfm\"} 0
error_rate 0.25
error_rate_total 9
";

    #[test]
    fn prometheus_values_are_found_by_name_and_labels() {
        assert_eq!(
            prometheus_value(
                METRICS,
                "circuit_breaker_failure_count",
                &[("provider", "spotify")]
            ),
            Some(5.0)
        );
        assert_eq!(prometheus_value(METRICS, "error_rate", &[]), Some(0.25));
        assert_eq!(prometheus_value(METRICS, "missing", &[]), None);
    }

    #[test]
    fn the_gateways_error_rates_read_as_one_line() {
        let rates = GatewayErrorRates {
            overall: Some(0.05),
            by_provider: vec![
                (wire::api::Provider::Spotify, 1.0),
                (wire::api::Provider::Lastfm, 0.0),
            ],
        };
        assert_eq!(
            rates.to_string(),
            "error_rate 0.050; spotify 1.000, lastfm 0.000"
        );
    }

    #[test]
    fn the_highest_series_is_what_a_rule_over_all_series_sees() {
        assert_eq!(
            prometheus_max(METRICS, "circuit_breaker_failure_count"),
            Some(5.0)
        );
        assert_eq!(prometheus_max(METRICS, "error_rate"), Some(0.25));
        assert_eq!(prometheus_max(METRICS, "missing"), None);
    }

    #[test]
    fn curl_commands_read_like_the_runbook() {
        let api = HttpApi::new(Client::new(), "http://localhost:8024/".parse().unwrap());
        assert_eq!(
            api.curl(Method::GET, "/dlq/stats", None),
            "curl http://localhost:8024/dlq/stats"
        );
        assert!(
            api.curl(
                Method::POST,
                "/dlq/replay/batch",
                Some("{\"batch_size\": 100}")
            )
            .contains("-d '{\"batch_size\": 100}'")
        );
    }
}
