//! What the DLQ's read endpoints say, computed from raw counts without a database.
//!
//! The runbook reads these figures to decide what to do (`jq .total_messages`, the
//! `/dlq/errors/grouped` keys), so their shape is pinned down here, separately from
//! the SQL that feeds them, where unit tests can hold it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, TimeDelta, Utc};
use wire::api::{DlqErrorsGrouped, DlqStats, ErrorKind};

/// The window of `error_rate_per_minute`, in modeled minutes.
pub const RATE_WINDOW_MINUTES: i64 = 5;

/// The start of the rate window ending at `now`.
pub fn rate_window_start(now: DateTime<Utc>) -> DateTime<Utc> {
    now - TimeDelta::minutes(RATE_WINDOW_MINUTES)
}

/// The raw figures `/dlq/stats` is computed from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DepthFigures {
    pub total: i64,
    pub oldest_created_at: Option<DateTime<Utc>>,
    /// Messages created since [`rate_window_start`].
    pub recent: i64,
}

/// `/dlq/stats` at modeled instant `now`.
pub fn stats(figures: &DepthFigures, now: DateTime<Utc>) -> DlqStats {
    let oldest_message_age_minutes = figures
        .oldest_created_at
        .map(|oldest| {
            let age_ms = (now - oldest).num_milliseconds().max(0) as f64;
            round2(age_ms / 60_000.0)
        })
        .unwrap_or(0.0);
    DlqStats {
        total_messages: figures.total,
        oldest_message_age_minutes,
        error_rate_per_minute: round2(figures.recent as f64 / RATE_WINDOW_MINUTES as f64),
    }
}

/// `/dlq/errors/grouped`: the four keys the runbook shows are always present (0 when
/// none); `provider_error` only appears when there is at least one.
pub fn grouped(counts: &BTreeMap<ErrorKind, i64>) -> DlqErrorsGrouped {
    ErrorKind::ALL
        .into_iter()
        .filter_map(|kind| {
            let count = counts.get(&kind).copied().unwrap_or(0);
            (kind.always_reported() || count > 0).then(|| (kind.name().to_owned(), count))
        })
        .collect()
}

/// `/metrics` in the Prometheus text format.
pub fn prometheus(
    figures: &DepthFigures,
    counts: &BTreeMap<ErrorKind, i64>,
    now: DateTime<Utc>,
) -> String {
    let stats = stats(figures, now);
    let mut text = String::new();
    let _ = writeln!(text, "# HELP dlq_depth Messages in the dead letter queue.");
    let _ = writeln!(text, "# TYPE dlq_depth gauge");
    let _ = writeln!(text, "dlq_depth {}", figures.total);
    let _ = writeln!(
        text,
        "# HELP dlq_messages_by_error Messages in the dead letter queue, by error type."
    );
    let _ = writeln!(text, "# TYPE dlq_messages_by_error gauge");
    for kind in ErrorKind::ALL {
        let count = counts.get(&kind).copied().unwrap_or(0);
        let _ = writeln!(text, "dlq_messages_by_error{{error=\"{kind}\"}} {count}");
    }
    let _ = writeln!(
        text,
        "# HELP dlq_oldest_message_age_minutes Modeled age of the oldest message."
    );
    let _ = writeln!(text, "# TYPE dlq_oldest_message_age_minutes gauge");
    let _ = writeln!(
        text,
        "dlq_oldest_message_age_minutes {}",
        stats.oldest_message_age_minutes
    );
    let _ = writeln!(
        text,
        "# HELP dlq_error_rate_per_minute Messages created per modeled minute, last {RATE_WINDOW_MINUTES} minutes."
    );
    let _ = writeln!(text, "# TYPE dlq_error_rate_per_minute gauge");
    let _ = writeln!(
        text,
        "dlq_error_rate_per_minute {}",
        stats.error_rate_per_minute
    );
    text
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn grouped_always_has_the_four_runbook_keys() {
        let grouped = grouped(&BTreeMap::new());
        let keys: Vec<_> = grouped.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "api_rate_limit",
                "circuit_breaker_open",
                "invalid_data",
                "timeout"
            ]
        );
        assert!(grouped.values().all(|&count| count == 0));
    }

    #[test]
    fn provider_error_appears_only_when_nonzero() {
        let mut counts = BTreeMap::from([(ErrorKind::CircuitBreakerOpen, 1500)]);
        assert!(!grouped(&counts).contains_key("provider_error"));
        counts.insert(ErrorKind::ProviderError, 3);
        let grouped = grouped(&counts);
        assert_eq!(grouped["provider_error"], 3);
        assert_eq!(grouped["circuit_breaker_open"], 1500);
        assert_eq!(grouped["timeout"], 0);
        assert_eq!(grouped.len(), 5);
    }

    #[test]
    fn an_empty_queue_has_no_age_and_no_rate() {
        let stats = stats(&DepthFigures::default(), at("2025-10-09T12:00:00Z"));
        assert_eq!(
            stats,
            DlqStats {
                total_messages: 0,
                oldest_message_age_minutes: 0.0,
                error_rate_per_minute: 0.0
            }
        );
    }

    #[test]
    fn age_is_modeled_minutes_and_rate_is_per_minute_over_five() {
        let figures = DepthFigures {
            total: 2500,
            oldest_created_at: Some(at("2025-10-09T10:00:00Z")),
            recent: 125,
        };
        let stats = stats(&figures, at("2025-10-09T12:00:30Z"));
        assert_eq!(stats.total_messages, 2500);
        assert_eq!(stats.oldest_message_age_minutes, 120.5);
        assert_eq!(stats.error_rate_per_minute, 25.0);
    }

    #[test]
    fn a_message_from_the_future_is_not_negatively_old() {
        let figures = DepthFigures {
            total: 1,
            oldest_created_at: Some(at("2025-10-09T12:01:00Z")),
            recent: 1,
        };
        assert_eq!(
            stats(&figures, at("2025-10-09T12:00:00Z")).oldest_message_age_minutes,
            0.0
        );
    }

    #[test]
    fn metrics_report_depth_and_every_error_type() {
        let figures = DepthFigures {
            total: 7,
            ..DepthFigures::default()
        };
        let counts = BTreeMap::from([(ErrorKind::Timeout, 4), (ErrorKind::InvalidData, 3)]);
        let text = prometheus(&figures, &counts, at("2025-10-09T12:00:00Z"));
        assert!(text.contains("\ndlq_depth 7\n"), "{text}");
        assert!(
            text.contains("dlq_messages_by_error{error=\"timeout\"} 4"),
            "{text}"
        );
        assert!(
            text.contains("dlq_messages_by_error{error=\"provider_error\"} 0"),
            "{text}"
        );
    }
}
