//! What the gateway has proxied: request counters and the recent error rate.
//!
//! The API Gateway runbook's first step is `curl :8022/metrics | grep error_rate`
//! against a "> 10%" threshold, so the rate is over a recent window — the last
//! [`WINDOW`] of modeled time — not since start: a gateway that recovered must show
//! it. An error is any non-2xx answer, the gateway's own 504/502 included.
//!
//! The window is two minutes, as short as a rule can be read reliably. A provider the
//! gateway cannot reach sees a burst of failures until the breaker in front of it
//! opens, then one failing trial call a minute; over five minutes that history drowns
//! in the calls made before the fault (and its own series hovers about the
//! threshold), while over two it reads as what it is: every call to it fails.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use wire::api::Provider;

use crate::enrichment::prom::{Exposition, Kind};
use crate::enrichment::window::{Tally, Window};

/// The span `error_rate` covers.
pub const WINDOW: Duration = Duration::from_secs(2 * 60);
const BUCKET: Duration = Duration::from_secs(5);

/// Requests and errors per provider, indexed like [`Provider::ALL`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counts {
    requests: [u64; 3],
    errors: [u64; 3],
}

impl Tally for Counts {
    fn absorb(&mut self, other: &Self) {
        for i in 0..3 {
            self.requests[i] += other.requests[i];
            self.errors[i] += other.errors[i];
        }
    }
}

impl Counts {
    /// Share of non-2xx answers for one provider (0 when idle).
    pub fn error_rate(&self, provider: Provider) -> f64 {
        let i = index(provider);
        rate(self.errors[i], self.requests[i])
    }

    /// Share of non-2xx answers over all providers (0 when idle).
    pub fn overall_error_rate(&self) -> f64 {
        rate(self.errors.iter().sum(), self.requests.iter().sum())
    }
}

/// The gateway's counters; cheap to clone.
#[derive(Clone)]
pub struct Traffic {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    window: Window<Counts>,
    /// `api_gateway_requests_total{provider, status}` since start (or the last reset).
    totals: BTreeMap<(Provider, u16), u64>,
}

impl Default for Traffic {
    fn default() -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                window: Window::new(WINDOW, BUCKET),
                totals: BTreeMap::new(),
            })),
        }
    }
}

impl Traffic {
    /// One proxied request answered with `status` (the gateway's own 504/502 included).
    pub fn record(&self, at: DateTime<Utc>, provider: Provider, status: u16) {
        let error = !(200..300).contains(&status);
        let mut inner = self.lock();
        inner.window.record(at, |c| {
            c.requests[index(provider)] += 1;
            if error {
                c.errors[index(provider)] += 1;
            }
        });
        *inner.totals.entry((provider, status)).or_default() += 1;
    }

    pub fn recent(&self, now: DateTime<Utc>) -> Counts {
        self.lock().window.total(now)
    }

    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.window.clear();
        inner.totals.clear();
    }

    /// `GET /metrics`.
    pub fn render(&self, now: DateTime<Utc>) -> String {
        let (recent, totals) = {
            let inner = self.lock();
            (inner.window.total(now), inner.totals.clone())
        };
        let mut out = Exposition::new();
        out.family(
            "api_gateway_requests_total",
            Kind::Counter,
            "Requests proxied to each provider, by the status returned to the caller.",
        );
        for ((provider, status), count) in &totals {
            out.sample(
                "api_gateway_requests_total",
                &[
                    ("provider", provider.name()),
                    ("status", &status.to_string()),
                ],
                *count as f64,
            );
        }
        out.family(
            "api_gateway_error_rate",
            Kind::Gauge,
            "Share of non-2xx answers (4xx incl. 429, 5xx, timeouts) over the last 2 modeled minutes.",
        );
        out.sample(
            "api_gateway_error_rate",
            &[("provider", "all")],
            recent.overall_error_rate(),
        );
        for provider in Provider::ALL {
            out.sample(
                "api_gateway_error_rate",
                &[("provider", provider.name())],
                recent.error_rate(provider),
            );
        }
        out.family(
            "api_gateway_window_requests",
            Kind::Gauge,
            "Requests proxied over the last 2 modeled minutes.",
        );
        for provider in Provider::ALL {
            out.sample(
                "api_gateway_window_requests",
                &[("provider", provider.name())],
                recent.requests[index(provider)] as f64,
            );
        }
        out.family(
            "error_rate",
            Kind::Gauge,
            "Overall share of non-2xx answers over the last 2 modeled minutes (same as api_gateway_error_rate{provider=\"all\"}).",
        )
        .sample("error_rate", &[], recent.overall_error_rate());
        out.finish()
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

fn rate(errors: u64, requests: u64) -> f64 {
    if requests == 0 {
        0.0
    } else {
        errors as f64 / requests as f64
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
    fn error_rate_counts_every_non_2xx_answer() {
        let traffic = Traffic::default();
        for status in [200, 200, 429, 504, 502, 404, 200, 200] {
            traffic.record(at(0), Provider::Spotify, status);
        }
        traffic.record(at(0), Provider::Musicbrainz, 200);
        traffic.record(at(0), Provider::Musicbrainz, 200);
        let recent = traffic.recent(at(1));
        assert_eq!(recent.error_rate(Provider::Spotify), 0.5);
        assert_eq!(recent.error_rate(Provider::Musicbrainz), 0.0);
        assert_eq!(recent.error_rate(Provider::Lastfm), 0.0);
        assert_eq!(recent.overall_error_rate(), 0.4);
    }

    #[test]
    fn the_rate_forgets_after_two_minutes_but_counters_do_not() {
        let traffic = Traffic::default();
        let later = at(0) + TimeDelta::seconds(90);
        traffic.record(at(0), Provider::Spotify, 503);
        traffic.record(later, Provider::Spotify, 200);
        assert_eq!(traffic.recent(later).overall_error_rate(), 0.5);
        assert_eq!(traffic.recent(at(3)).overall_error_rate(), 0.0);
        assert_eq!(
            traffic.recent(at(3)).requests[0],
            1,
            "the later call is kept"
        );
        let text = traffic.render(at(3));
        assert!(
            text.contains("api_gateway_requests_total{provider=\"spotify\",status=\"503\"} 1\n")
        );
    }

    #[test]
    fn metrics_carry_a_plain_error_rate_line_for_grep() {
        let traffic = Traffic::default();
        traffic.record(at(0), Provider::Lastfm, 429);
        traffic.record(at(0), Provider::Lastfm, 200);
        traffic.record(at(0), Provider::Lastfm, 200);
        traffic.record(at(0), Provider::Lastfm, 200);
        let text = traffic.render(at(0));
        let lines: Vec<&str> = text.lines().filter(|l| l.contains("error_rate")).collect();
        assert!(lines.contains(&"error_rate 0.25"), "{lines:#?}");
        assert!(lines.contains(&"api_gateway_error_rate{provider=\"all\"} 0.25"));
        assert!(lines.contains(&"api_gateway_error_rate{provider=\"lastfm\"} 0.25"));
        assert!(lines.contains(&"api_gateway_error_rate{provider=\"spotify\"} 0"));
        traffic.clear();
        assert!(traffic.render(at(0)).contains("\nerror_rate 0\n"));
    }
}
