//! metadata-enrichment's `GET /metrics`.
//!
//! The Circuit Breaker Storm runbook runs `curl :8020/metrics | grep
//! circuit_breaker_failure_count`; the rest is what a SongNodes dashboard would chart.

use wire::api::{BreakerState, EnrichmentHealth, Provider};

use super::prom::{Exposition, Kind};
use super::stats::Counts;

/// Renders the exposition from a health snapshot, totals since start and the window.
pub fn render(health: &EnrichmentHealth, totals: &Counts, recent: &Counts) -> String {
    let mut out = Exposition::new();
    out.family(
        "circuit_breaker_state",
        Kind::Gauge,
        "1 for the state each provider's circuit breaker is in.",
    );
    for (provider, client) in &health.api_clients {
        for (state, name) in [
            (BreakerState::Closed, "CLOSED"),
            (BreakerState::Open, "OPEN"),
            (BreakerState::HalfOpen, "HALF_OPEN"),
        ] {
            let value = if client.state == state { 1.0 } else { 0.0 };
            out.sample(
                "circuit_breaker_state",
                &[("provider", provider.name()), ("state", name)],
                value,
            );
        }
    }
    out.family(
        "circuit_breaker_failure_count",
        Kind::Gauge,
        "Consecutive counted failures of each provider (the breaker opens at 5).",
    );
    for (provider, client) in &health.api_clients {
        out.sample(
            "circuit_breaker_failure_count",
            &[("provider", provider.name())],
            f64::from(client.failure_count),
        );
    }
    out.family(
        "api_client_enabled",
        Kind::Gauge,
        "1 when an enabled metadata_enrichment_config row names the provider.",
    );
    for (provider, client) in &health.api_clients {
        out.sample(
            "api_client_enabled",
            &[("provider", provider.name())],
            if client.enabled { 1.0 } else { 0.0 },
        );
    }
    out.family(
        "enrichment_total",
        Kind::Counter,
        "Tracks enriched or failed.",
    )
    .sample(
        "enrichment_total",
        &[("result", "success")],
        totals.enriched as f64,
    )
    .sample(
        "enrichment_total",
        &[("result", "failed")],
        totals.failed as f64,
    );
    out.family(
        "cache_hits_total",
        Kind::Counter,
        "Provider answers served from Redis.",
    )
    .sample("cache_hits_total", &[], totals.cache_hits as f64);
    out.family(
        "cache_misses_total",
        Kind::Counter,
        "Provider answers not in Redis.",
    )
    .sample("cache_misses_total", &[], totals.cache_misses as f64);
    out.family(
        "provider_calls_total",
        Kind::Counter,
        "Provider calls made through the gateway, by outcome.",
    );
    for provider in Provider::ALL {
        let tally = totals.provider(provider);
        out.sample(
            "provider_calls_total",
            &[("provider", provider.name()), ("result", "success")],
            (tally.calls - tally.failures) as f64,
        )
        .sample(
            "provider_calls_total",
            &[("provider", provider.name()), ("result", "failure")],
            tally.failures as f64,
        );
    }
    let stats = recent.to_stats();
    out.family(
        "enrichment_success_rate",
        Kind::Gauge,
        "Share of enrichments that succeeded over the last 15 modeled minutes.",
    )
    .sample("enrichment_success_rate", &[], stats.success_rate);
    out.family(
        "enrichment_cache_hit_rate",
        Kind::Gauge,
        "Share of cache lookups that hit over the last 15 modeled minutes.",
    )
    .sample("enrichment_cache_hit_rate", &[], stats.cache_hit_rate);
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use wire::api::ApiClientHealth;

    #[test]
    fn an_open_breaker_shows_as_the_runbook_greps_it() {
        let mut api_clients = BTreeMap::new();
        for provider in Provider::ALL {
            let open = provider == Provider::Spotify;
            api_clients.insert(
                provider,
                ApiClientHealth {
                    state: if open {
                        BreakerState::Open
                    } else {
                        BreakerState::Closed
                    },
                    failure_count: if open { 5 } else { 0 },
                    enabled: true,
                    seconds_until_half_open: open.then_some(42.0),
                },
            );
        }
        let health = EnrichmentHealth {
            status: "degraded".into(),
            api_clients,
        };
        let totals = Counts {
            enriched: 7,
            failed: 3,
            cache_hits: 2,
            ..Default::default()
        };
        let text = render(&health, &totals, &totals);
        for line in [
            "circuit_breaker_failure_count{provider=\"spotify\"} 5",
            "circuit_breaker_failure_count{provider=\"lastfm\"} 0",
            "circuit_breaker_state{provider=\"spotify\",state=\"OPEN\"} 1",
            "circuit_breaker_state{provider=\"spotify\",state=\"CLOSED\"} 0",
            "enrichment_total{result=\"success\"} 7",
            "enrichment_total{result=\"failed\"} 3",
            "cache_hits_total 2",
            "cache_misses_total 0",
            "enrichment_success_rate 0.7",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in\n{text}"
            );
        }
    }
}
