//! Fetching listing pages from a source site over HTTP.
//!
//! Every way a fetch can fail (no connection, a non-2xx answer, a body that is not
//! this site's tracklist) is a [`FetchError`] that names the URL and the cause, since
//! the Scraper Stalled runbook's diagnosis is `docker compose logs scraper-mixesdb`.

use std::time::Duration;

use reqwest::StatusCode;
use url::Url;
use wire::Clock;

use super::source::{Page, Source};

/// Modeled time a page may take before the fetch is abandoned.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// The least real time a fetch gets, however fast the clock runs: below this a busy
/// loopback server would look like a dead site.
const MIN_REAL_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("GET {url} failed: {cause}")]
    Request { url: String, cause: String },
    #[error("GET {url} answered {status}")]
    Status { url: String, status: StatusCode },
    #[error("GET {url} did not return a {site} tracklist: {source}")]
    Parse {
        url: String,
        site: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot build an HTTP client: {0}")]
    Client(String),
}

/// A source site, as a scraper reads it.
pub struct Site {
    http: reqwest::Client,
    endpoint: String,
    source: Source,
}

impl Site {
    pub fn new(source: Source, base: &Url, clock: Clock) -> Result<Self, FetchError> {
        let timeout = clock.to_real(FETCH_TIMEOUT).max(MIN_REAL_TIMEOUT);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("songnodes-scraper/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FetchError::Client(error_chain(&e)))?;
        Ok(Self {
            http,
            endpoint: endpoint(base, source),
            source,
        })
    }

    /// The listing URL without its page parameter.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Fetches and parses listing page `page`.
    pub async fn fetch(&self, page: i32) -> Result<Page, FetchError> {
        let url = format!("{}?page={page}", self.endpoint);
        let request_failed = |error: reqwest::Error| FetchError::Request {
            url: url.clone(),
            // The URL is already in our message; reqwest would repeat it.
            cause: error_chain(&error.without_url()),
        };
        let response = self.http.get(&url).send().await.map_err(request_failed)?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status { url, status });
        }
        let body = response.bytes().await.map_err(request_failed)?;
        super::source::parse(self.source, &body).map_err(|source| FetchError::Parse {
            url,
            site: self.source.name(),
            source,
        })
    }
}

/// `{base}/api/tracklists`, keeping any path prefix of the base URL.
fn endpoint(base: &Url, source: Source) -> String {
    format!(
        "{}/{}",
        base.as_str().trim_end_matches('/'),
        source.listing_path()
    )
}

/// An error and its causes on one line: reqwest's own message alone says only
/// "error sending request", the cause says "connection refused".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_follow_the_base_url() {
        let base: Url = "http://127.0.0.1:9100".parse().unwrap();
        assert_eq!(
            endpoint(&base, Source::Mixesdb),
            "http://127.0.0.1:9100/api/tracklists"
        );
        let prefixed: Url = "http://127.0.0.1:9100/1001/".parse().unwrap();
        assert_eq!(
            endpoint(&prefixed, Source::Tracklists1001),
            "http://127.0.0.1:9100/1001/api/tracklist"
        );
    }
}
