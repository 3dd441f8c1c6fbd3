//! Forwarding `GET /{provider}/{path}?{query}` to the provider, and naming what went wrong.
//!
//! The gateway is where provider trouble becomes visible in logs: the runbooks grep
//! its output for `error|timeout` and `429|rate limit`. So each failure is logged
//! once, here, with those words; statuses and bodies otherwise pass through
//! untouched (a 429 keeps its `Retry-After`). The time budget of a call comes from
//! the caller's `X-Timeout-Ms` (real milliseconds), else 30 modeled seconds.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, header};
use url::Url;
use wire::Clock;
use wire::api::Provider;

/// Request header carrying the real-time budget of a call.
pub const TIMEOUT_HEADER: &str = "x-timeout-ms";
/// Budget of a call whose caller named none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How a forwarded call ended.
#[derive(Debug)]
pub enum Outcome {
    /// The provider answered (any status).
    Answered {
        status: u16,
        content_type: Option<HeaderValue>,
        retry_after: Option<HeaderValue>,
        body: Bytes,
    },
    /// No answer within the budget: the gateway says 504.
    TimedOut { modeled: Duration },
    /// The provider could not be reached: the gateway says 502.
    Unreachable { error: String },
}

impl Outcome {
    /// The status the caller gets.
    pub fn status(&self) -> u16 {
        match self {
            Outcome::Answered { status, .. } => *status,
            Outcome::TimedOut { .. } => 504,
            Outcome::Unreachable { .. } => 502,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BadTarget {
    #[error("path '{0}' does not stay on the provider's host")]
    OffHost(String),
    #[error("path '{path}' cannot be joined to {base}: {reason}")]
    Unjoinable {
        base: String,
        path: String,
        reason: String,
    },
}

/// The providers' base URLs and one HTTP client for all of them.
#[derive(Clone)]
pub struct Proxy {
    client: reqwest::Client,
    bases: BTreeMap<Provider, Url>,
    clock: Clock,
}

impl Proxy {
    pub fn new(bases: BTreeMap<Provider, Url>, clock: Clock) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(2))
            .build()?;
        let bases = bases
            .into_iter()
            .map(|(p, url)| (p, with_trailing_slash(url)))
            .collect();
        Ok(Self {
            client,
            bases,
            clock,
        })
    }

    pub fn base(&self, provider: Provider) -> Option<&Url> {
        self.bases.get(&provider)
    }

    /// The real-time budget named by the caller, or 30 modeled seconds.
    pub fn budget(&self, headers: &HeaderMap) -> Duration {
        requested_budget(headers).unwrap_or_else(|| {
            self.clock
                .to_real(DEFAULT_TIMEOUT)
                .max(crate::enrichment::upstream::MIN_REAL_BUDGET)
        })
    }

    /// Forwards a GET, logs how it ended, and says how it ended.
    pub async fn forward(&self, provider: Provider, target: Url, budget: Duration) -> Outcome {
        let call = async {
            let response = self
                .client
                .get(target.clone())
                .header(header::ACCEPT, "application/json")
                .send()
                .await?;
            let status = response.status().as_u16();
            let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
            let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>(Outcome::Answered {
                status,
                content_type,
                retry_after,
                body,
            })
        };
        let outcome = match tokio::time::timeout(budget, call).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(error)) if error.is_timeout() => Outcome::TimedOut {
                modeled: self.clock.to_modeled(budget),
            },
            Ok(Err(error)) => Outcome::Unreachable {
                error: error_chain(&error),
            },
            Err(_) => Outcome::TimedOut {
                modeled: self.clock.to_modeled(budget),
            },
        };
        log(provider, target.path(), &outcome);
        outcome
    }
}

impl Proxy {
    /// The outcome of a call whose route to the provider is cut (the `partition`
    /// chaos switch): a connection error, logged like any other.
    pub fn partitioned(&self, provider: Provider, target: &Url) -> Outcome {
        let outcome = Outcome::Unreachable {
            error: format!("error connecting to {provider}: no route to host"),
        };
        log(provider, target.path(), &outcome);
        outcome
    }
}

/// The caller's `X-Timeout-Ms`, when it is a positive whole number.
pub fn requested_budget(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(TIMEOUT_HEADER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
}

/// The provider URL for a request path (after `/{provider}/`, still percent-encoded)
/// and raw query. The path may not leave the provider's host.
pub fn target_url(base: &Url, raw_path: &str, raw_query: Option<&str>) -> Result<Url, BadTarget> {
    let relative = format!("./{}", raw_path.trim_start_matches('/'));
    let mut url = base.join(&relative).map_err(|e| BadTarget::Unjoinable {
        base: base.to_string(),
        path: raw_path.to_owned(),
        reason: e.to_string(),
    })?;
    if url.origin() != base.origin() {
        return Err(BadTarget::OffHost(raw_path.to_owned()));
    }
    url.set_query(raw_query.filter(|q| !q.is_empty()));
    Ok(url)
}

fn with_trailing_slash(mut url: Url) -> Url {
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

/// The log line of an outcome, with the words the runbooks grep for.
fn log(provider: Provider, path: &str, outcome: &Outcome) {
    match outcome {
        Outcome::TimedOut { modeled } => tracing::warn!(
            "upstream timeout provider={provider} after {} (modeled) path={path}",
            seconds(*modeled)
        ),
        Outcome::Unreachable { error } => {
            tracing::error!("upstream connection error provider={provider} path={path}: {error}")
        }
        Outcome::Answered {
            status: 429,
            retry_after,
            ..
        } => tracing::warn!(
            "upstream 429 rate limit exceeded provider={provider} path={path} retry_after={}",
            retry_after
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none")
        ),
        Outcome::Answered { status, .. } if *status >= 500 => {
            tracing::error!("upstream error provider={provider} status={status} path={path}")
        }
        Outcome::Answered { status, .. } if *status >= 400 => {
            tracing::warn!("upstream client error provider={provider} status={status} path={path}")
        }
        Outcome::Answered { status, .. } => {
            tracing::debug!("proxied provider={provider} status={status} path={path}")
        }
    }
}

/// `30s`, or `1.5s` when not whole.
fn seconds(modeled: Duration) -> String {
    let secs = modeled.as_secs_f64();
    if (secs - secs.round()).abs() < 0.05 {
        format!("{}s", secs.round() as u64)
    } else {
        format!("{secs:.1}s")
    }
}

/// An error with its causes, e.g. "error sending request: … Connection refused".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        with_trailing_slash("http://127.0.0.1:9001/mock".parse().unwrap())
    }

    #[test]
    fn paths_and_queries_are_forwarded_verbatim() {
        let url = target_url(
            &base(),
            "v1/search",
            Some("q=artist%3ABicep+track%3AGlue&type=track&limit=1"),
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9001/mock/v1/search?q=artist%3ABicep+track%3AGlue&type=track&limit=1"
        );
        let url = target_url(&base(), "2.0/", Some("method=track.getInfo")).unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9001/mock/2.0/?method=track.getInfo"
        );
        let url = target_url(&base(), "v1/audio-features/a%2Fb", None).unwrap();
        assert_eq!(url.path(), "/mock/v1/audio-features/a%2Fb");
    }

    #[test]
    fn a_path_cannot_leave_the_provider_host() {
        let url = target_url(&base(), "http://evil.example/x", None).unwrap();
        assert_eq!(url.host_str(), Some("127.0.0.1"));
        let url = target_url(&base(), "//evil.example/x", None).unwrap();
        assert_eq!(url.host_str(), Some("127.0.0.1"));
    }

    #[test]
    fn the_budget_comes_from_the_header_or_defaults_to_thirty_modeled_seconds() {
        let proxy = Proxy::new(BTreeMap::new(), Clock::new(0, 60.0).unwrap()).unwrap();
        let mut headers = HeaderMap::new();
        assert_eq!(proxy.budget(&headers), Duration::from_millis(500));
        headers.insert(TIMEOUT_HEADER, HeaderValue::from_static("1200"));
        assert_eq!(proxy.budget(&headers), Duration::from_millis(1200));
        headers.insert(TIMEOUT_HEADER, HeaderValue::from_static("soon"));
        assert_eq!(proxy.budget(&headers), Duration::from_millis(500));
    }

    #[test]
    fn gateway_made_answers_have_gateway_statuses() {
        let timed_out = Outcome::TimedOut {
            modeled: Duration::from_secs(30),
        };
        assert_eq!(timed_out.status(), 504);
        let unreachable = Outcome::Unreachable {
            error: "refused".into(),
        };
        assert_eq!(unreachable.status(), 502);
        assert_eq!(seconds(Duration::from_secs(30)), "30s");
        assert_eq!(seconds(Duration::from_millis(29_998)), "30s");
        assert_eq!(seconds(Duration::from_millis(1_500)), "1.5s");
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_502_and_a_slow_one_a_504() {
        let refused = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let clock = Clock::new(0, 60.0).unwrap();
        let proxy = Proxy::new(BTreeMap::new(), clock).unwrap();
        let url: Url = format!("http://127.0.0.1:{refused}/v1/search")
            .parse()
            .unwrap();
        let outcome = proxy
            .forward(Provider::Spotify, url, Duration::from_secs(2))
            .await;
        assert_eq!(outcome.status(), 502, "{outcome:?}");

        // A listener that accepts and never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port();
        let keep = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = silent.accept().await {
                held.push(socket);
            }
        });
        let url: Url = format!("http://127.0.0.1:{port}/v1/search")
            .parse()
            .unwrap();
        let outcome = proxy
            .forward(Provider::Spotify, url, Duration::from_millis(100))
            .await;
        keep.abort();
        let Outcome::TimedOut { modeled } = outcome else {
            panic!("expected a timeout, got {outcome:?}");
        };
        assert_eq!(modeled, Duration::from_secs(6));
    }
}
