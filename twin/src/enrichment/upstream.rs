//! Calls to providers through api-gateway-internal, and what their failures are called.
//!
//! metadata-enrichment never talks to a provider directly: it asks the gateway
//! (`GET {GATEWAY_URL}/{provider}/{path}?{query}`) and tells it, in `X-Timeout-Ms`,
//! how long in real milliseconds the call may take (the field group's modeled
//! `timeout_seconds` shrunk by the clock's scale), so that the gateway is the one that
//! times out and logs it, as in SongNodes. Our own deadline is a little longer, for a
//! gateway that hangs. Classification follows docs/twin.md's table.

use std::time::{Duration, Instant};

use reqwest::header::RETRY_AFTER;
use url::Url;
use wire::Clock;
use wire::api::{ErrorKind, Provider};

use super::providers::ProviderRequest;

/// Request header carrying the real-time budget of a proxied call.
pub const TIMEOUT_HEADER: &str = "X-Timeout-Ms";
/// How much longer than the gateway's budget we wait before giving up ourselves.
const OWN_DEADLINE_MARGIN: Duration = Duration::from_millis(250);

/// The least real time a provider call is given, whatever the scale. A busy two-core
/// machine's own delays (a container being restarted beside the stack, another drill)
/// reach a tenth of a second, and a budget below that times calls out for the
/// machine's sake, not the provider's: at a scale of 480 the config's 30 s is 62 ms
/// (in one CI run the gateway's error rate paged at 0.5 while a scraper drill
/// restarted its spider on docker, read as such timeouts). Every configured timeout at
/// the scales that drill latency (120 and below) is above this floor, so only the
/// fastest clocks are changed by it.
pub const MIN_REAL_BUDGET: Duration = Duration::from_millis(150);

/// A classified failure of one provider call (or of the decision not to make it).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct CallFailure {
    pub kind: ErrorKind,
    pub provider: Provider,
    pub message: String,
}

impl CallFailure {
    pub fn new(kind: ErrorKind, provider: Provider, message: impl Into<String>) -> Self {
        Self {
            kind,
            provider,
            message: message.into(),
        }
    }

    /// Whether this failure counts toward the provider's breaker.
    pub fn counts_toward_breaker(&self) -> bool {
        counts_toward_breaker(self.kind)
    }
}

/// docs/twin.md: timeouts, rate limits and provider errors count; invalid payloads
/// (the provider answered) and refusals by an open breaker (no call made) do not.
pub fn counts_toward_breaker(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Timeout | ErrorKind::ApiRateLimit | ErrorKind::ProviderError
    )
}

/// How a non-2xx gateway answer is classified; `None` for 2xx.
pub fn classify_status(status: u16) -> Option<ErrorKind> {
    match status {
        200..=299 => None,
        429 => Some(ErrorKind::ApiRateLimit),
        // The gateway's upstream timed out (504), or an intermediary's request timeout.
        504 | 408 => Some(ErrorKind::Timeout),
        _ => Some(ErrorKind::ProviderError),
    }
}

/// A 2xx answer.
#[derive(Clone, Debug)]
pub struct Answer {
    pub body: String,
    /// Modeled milliseconds the call took.
    pub latency_ms: f64,
}

/// A call that reached no usable answer, with the modeled time it took.
#[derive(Clone, Debug)]
pub struct Failure {
    pub failure: CallFailure,
    pub latency_ms: f64,
    /// Status and body of a non-2xx answer (none for a transport failure).
    pub answer: Option<(u16, String)>,
}

/// The client of api-gateway-internal: one connection pool for the service's life.
#[derive(Clone)]
pub struct Upstream {
    client: reqwest::Client,
    base: Url,
    clock: Clock,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("building the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

impl Upstream {
    pub fn new(gateway: Url, clock: Clock) -> Result<Self, UpstreamError> {
        let client = reqwest::Client::builder()
            .user_agent(wire::agents::twin("metadata-enrichment"))
            .no_proxy()
            .connect_timeout(Duration::from_secs(2))
            .build()?;
        Ok(Self {
            client,
            base: with_trailing_slash(gateway),
            clock,
        })
    }

    /// The URL of `request` at the gateway.
    pub fn url(&self, request: &ProviderRequest) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push(request.provider().name());
            for segment in &request.segments {
                path.push(segment);
            }
        }
        if !request.query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(request.query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    /// Makes the call with a modeled `timeout`.
    pub async fn get(
        &self,
        request: &ProviderRequest,
        timeout: Duration,
    ) -> Result<Answer, Failure> {
        let provider = request.provider();
        let budget = self.clock.to_real(timeout).max(MIN_REAL_BUDGET);
        let started = Instant::now();
        let sent = self
            .client
            .get(self.url(request))
            .header(TIMEOUT_HEADER, budget.as_millis().to_string())
            .timeout(budget + OWN_DEADLINE_MARGIN)
            .send()
            .await;
        let result = match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                match response.text().await {
                    Ok(body) => match classify_status(status) {
                        None => Ok(body),
                        Some(kind) => Err((
                            CallFailure::new(
                                kind,
                                provider,
                                status_message(provider, status, retry_after.as_deref(), timeout),
                            ),
                            Some((status, body)),
                        )),
                    },
                    Err(error) => Err((transport_failure(provider, &error, timeout), None)),
                }
            }
            Err(error) => Err((transport_failure(provider, &error, timeout), None)),
        };
        let latency_ms = self.clock.to_modeled(started.elapsed()).as_secs_f64() * 1000.0;
        match result {
            Ok(body) => Ok(Answer { body, latency_ms }),
            Err((failure, answer)) => Err(Failure {
                failure,
                latency_ms,
                answer,
            }),
        }
    }
}

fn with_trailing_slash(mut url: Url) -> Url {
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

fn status_message(
    provider: Provider,
    status: u16,
    retry_after: Option<&str>,
    timeout: Duration,
) -> String {
    match classify_status(status) {
        Some(ErrorKind::ApiRateLimit) => format!(
            "{provider} rate limit exceeded (HTTP 429, Retry-After: {})",
            retry_after.unwrap_or("not given")
        ),
        Some(ErrorKind::Timeout) => format!(
            "{provider} timed out after {}s (gateway answered {status})",
            timeout.as_secs()
        ),
        _ => format!("{provider} returned HTTP {status}"),
    }
}

fn transport_failure(provider: Provider, error: &reqwest::Error, timeout: Duration) -> CallFailure {
    if error.is_timeout() {
        CallFailure::new(
            ErrorKind::Timeout,
            provider,
            format!(
                "{provider} timed out after {}s (no answer from the gateway)",
                timeout.as_secs()
            ),
        )
    } else if error.is_connect() {
        CallFailure::new(
            ErrorKind::ProviderError,
            provider,
            format!("{provider} unreachable: gateway connection error: {error}"),
        )
    } else {
        CallFailure::new(
            ErrorKind::ProviderError,
            provider,
            format!("{provider} call failed: {error}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_as_docs_twin_says() {
        assert_eq!(classify_status(200), None);
        assert_eq!(classify_status(204), None);
        assert_eq!(classify_status(429), Some(ErrorKind::ApiRateLimit));
        assert_eq!(classify_status(504), Some(ErrorKind::Timeout));
        assert_eq!(classify_status(502), Some(ErrorKind::ProviderError));
        assert_eq!(classify_status(503), Some(ErrorKind::ProviderError));
        assert_eq!(classify_status(500), Some(ErrorKind::ProviderError));
        assert_eq!(classify_status(404), Some(ErrorKind::ProviderError));
    }

    #[test]
    fn only_provider_health_failures_count_toward_the_breaker() {
        assert!(counts_toward_breaker(ErrorKind::Timeout));
        assert!(counts_toward_breaker(ErrorKind::ApiRateLimit));
        assert!(counts_toward_breaker(ErrorKind::ProviderError));
        assert!(!counts_toward_breaker(ErrorKind::InvalidData));
        assert!(!counts_toward_breaker(ErrorKind::CircuitBreakerOpen));
    }

    #[test]
    fn urls_put_the_provider_first_and_encode_the_query() {
        let clock = Clock::new(0, 60.0).unwrap();
        let gateway = Upstream::new("http://127.0.0.1:8022".parse().unwrap(), clock).unwrap();
        let url = gateway.url(&ProviderRequest::spotify_search("Bicep", "Glue & Co"));
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8022/spotify/v1/search?q=artist%3ABicep+track%3AGlue+%26+Co&type=track&limit=1"
        );
        let url = gateway.url(&ProviderRequest::lastfm_track_info("Bicep", "Glue"));
        assert!(
            url.as_str()
                .starts_with("http://127.0.0.1:8022/lastfm/2.0/?method=track.getInfo"),
            "{url}"
        );
        let url = gateway.url(&ProviderRequest::spotify_audio_features("a/b"));
        assert_eq!(url.path(), "/spotify/v1/audio-features/a%2Fb");
    }

    #[test]
    fn a_gateway_under_a_path_prefix_keeps_it() {
        let clock = Clock::new(0, 1.0).unwrap();
        let gateway = Upstream::new("http://127.0.0.1:1/gw".parse().unwrap(), clock).unwrap();
        let url = gateway.url(&ProviderRequest::musicbrainz_recording("A", "B"));
        assert_eq!(url.path(), "/gw/musicbrainz/ws/2/recording");
    }

    #[test]
    fn rate_limits_name_the_retry_after() {
        let message = status_message(Provider::Spotify, 429, Some("30"), Duration::from_secs(30));
        assert_eq!(
            message,
            "spotify rate limit exceeded (HTTP 429, Retry-After: 30)"
        );
        let message = status_message(Provider::Lastfm, 504, None, Duration::from_secs(20));
        assert!(message.contains("timed out after 20s"), "{message}");
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_provider_error() {
        // Bind and drop a listener to get a loopback port nobody listens on.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let clock = Clock::new(0, 1.0).unwrap();
        let gateway =
            Upstream::new(format!("http://127.0.0.1:{port}").parse().unwrap(), clock).unwrap();
        let failure = gateway
            .get(
                &ProviderRequest::spotify_search("a", "b"),
                Duration::from_secs(5),
            )
            .await
            .unwrap_err()
            .failure;
        assert_eq!(failure.kind, ErrorKind::ProviderError);
        assert_eq!(failure.provider, Provider::Spotify);
    }
}
