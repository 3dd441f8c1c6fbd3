//! The worker's client of metadata-enrichment's `POST /enrich`.
//!
//! Only two things can come back: an [`EnrichOutcome`] (the track is decided, either
//! way), or [`Unreachable`] — metadata-enrichment is down, restarting, hung or
//! answering nonsense — in which case the track is not decided and must go back to
//! the queue, never to the DLQ.

use std::time::Duration;

use url::Url;
use wire::Clock;

use crate::enrichment::contract::{EnrichOutcome, EnrichRequest};

/// Modeled time one enrichment may take: all field groups' providers timing out in
/// turn, even after the runbook raised timeouts to 60 s, fit well within it.
const ENRICH_DEADLINE: Duration = Duration::from_secs(10 * 60);
/// Real-time floor of that deadline, for very fast clocks.
const MIN_REAL_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum Unreachable {
    #[error("metadata-enrichment at {url} did not answer: {reason}")]
    NoAnswer { url: String, reason: String },
    #[error("metadata-enrichment at {url} answered HTTP {status}: {body}")]
    BadStatus {
        url: String,
        status: u16,
        body: String,
    },
    #[error("metadata-enrichment at {url} sent an unreadable answer: {reason}")]
    Unreadable { url: String, reason: String },
}

#[derive(Clone)]
pub struct EnrichmentClient {
    client: reqwest::Client,
    url: Url,
    deadline: Duration,
}

impl EnrichmentClient {
    pub fn new(base: &Url, clock: Clock) -> Result<Self, EnrichmentUrlError> {
        let mut base = base.clone();
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let url = base
            .join("enrich")
            .map_err(|e| EnrichmentUrlError(base.to_string(), e.to_string()))?;
        let client = reqwest::Client::builder()
            .user_agent(wire::agents::twin("metadata-enrichment-worker"))
            .no_proxy()
            .connect_timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| EnrichmentUrlError(base.to_string(), e.to_string()))?;
        Ok(Self {
            client,
            url,
            deadline: clock.to_real(ENRICH_DEADLINE).max(MIN_REAL_DEADLINE),
        })
    }

    pub async fn enrich(&self, request: &EnrichRequest) -> Result<EnrichOutcome, Unreachable> {
        let url = self.url.to_string();
        let response = self
            .client
            .post(self.url.clone())
            .json(request)
            .timeout(self.deadline)
            .send()
            .await
            .map_err(|e| Unreachable::NoAnswer {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let status = response.status();
        let body = response.text().await.map_err(|e| Unreachable::NoAnswer {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        if !status.is_success() {
            return Err(Unreachable::BadStatus {
                url,
                status: status.as_u16(),
                body: body.chars().take(200).collect(),
            });
        }
        serde_json::from_str(&body).map_err(|e| Unreachable::Unreadable {
            url,
            reason: e.to_string(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("ENRICHMENT_URL '{0}' is unusable: {1}")]
pub struct EnrichmentUrlError(String, String);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_dead_enrichment_service_is_unreachable() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let base: Url = format!("http://127.0.0.1:{port}/").parse().unwrap();
        let client = EnrichmentClient::new(&base, Clock::real_time()).unwrap();
        let request = EnrichRequest {
            track_id: 1,
            artist_name: Some("Bicep".into()),
            track_name: Some("Glue".into()),
        };
        let err = client.enrich(&request).await.unwrap_err();
        assert!(matches!(err, Unreachable::NoAnswer { .. }), "{err}");
    }

    #[test]
    fn the_deadline_has_a_real_time_floor() {
        let base: Url = "http://127.0.0.1:1".parse().unwrap();
        let fast = EnrichmentClient::new(&base, Clock::new(0, 3600.0).unwrap()).unwrap();
        assert_eq!(fast.deadline, MIN_REAL_DEADLINE);
        assert_eq!(fast.url.as_str(), "http://127.0.0.1:1/enrich");
        let prefixed: Url = "http://127.0.0.1:1/svc".parse().unwrap();
        let client = EnrichmentClient::new(&prefixed, Clock::real_time()).unwrap();
        assert_eq!(client.url.as_str(), "http://127.0.0.1:1/svc/enrich");
    }
}
