//! The nine alert rules of the Quick Alert Index, as data, and their evaluation.
//!
//! A rule is a probe, a condition and a `for` duration, as in Prometheus: the rule
//! is *pending* while the condition holds for less than `for`, *firing* once it has
//! held that long, and *resolved* when it stops holding. Durations are modeled time.
//! The thresholds, severities and typical resolution times come from the runbook
//! text; a test keeps them in step with `runbooks/docs/`.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use runbooks::Severity;
use runbooks::criteria::Check;
use runbooks::ops::{Ops, Phase};
use runbooks::probe::{Api, Probe, Reading};
use serde::Serialize;
use wire::api::BreakerState;

/// One alert rule.
#[derive(Clone, Debug)]
pub struct AlertRule {
    pub name: &'static str,
    pub severity: Severity,
    /// The runbook that handles it (`runbooks::RunbookMeta::id`).
    pub runbook: &'static str,
    /// The threshold as the runbook words it.
    pub threshold: &'static str,
    pub probe: Probe,
    /// The condition under which the alert is active.
    pub condition: Check,
    pub for_duration: Duration,
    pub typical_resolution: Duration,
}

const MIN: u64 = 60;

/// The Quick Alert Index.
pub fn rules() -> Vec<AlertRule> {
    vec![
        AlertRule {
            name: "DLQDepthCritical",
            severity: Severity::P1,
            runbook: "dlq-overflow",
            threshold: "DLQ depth > 1000 messages",
            probe: Probe::Json {
                api: Api::Dlq,
                path: "/dlq/stats",
                field: ".total_messages",
            },
            condition: Check::Above(1000.0),
            for_duration: Duration::ZERO,
            typical_resolution: Duration::from_secs(30 * MIN),
        },
        AlertRule {
            name: "CircuitBreakerOpen",
            severity: Severity::P1,
            runbook: "circuit-breaker-storm",
            threshold: "Circuit breaker open for > 5 minutes",
            probe: Probe::Breakers,
            // An open breaker half-opens for each trial call; a breaker that has not
            // closed again is still the incident, so both count.
            condition: Check::AnyBreakerIn(vec![BreakerState::Open, BreakerState::HalfOpen]),
            for_duration: Duration::from_secs(5 * MIN),
            typical_resolution: Duration::from_secs(15 * MIN),
        },
        AlertRule {
            name: "EnrichmentSuccessRateLow",
            severity: Severity::P2,
            runbook: "low-enrichment-success-rate",
            threshold: "Success rate < 70% for > 15 minutes",
            probe: Probe::Json {
                api: Api::Enrichment,
                path: "/stats",
                field: ".success_rate",
            },
            condition: Check::Below(0.70),
            for_duration: Duration::from_secs(15 * MIN),
            typical_resolution: Duration::from_secs(60 * MIN),
        },
        AlertRule {
            name: "DataQualityScoreLow",
            severity: Severity::P2,
            runbook: "data-quality-issues",
            threshold: "Quality score < 70 for > 1 hour",
            probe: Probe::Sql {
                sql: "SELECT COALESCE(AVG(quality_score), 100)::float8 FROM data_quality_scores \
                      WHERE created_at > $1::timestamptz - INTERVAL '1 hour'",
            },
            condition: Check::Below(70.0),
            for_duration: Duration::from_secs(60 * MIN),
            typical_resolution: Duration::from_secs(120 * MIN),
        },
        AlertRule {
            name: "DatabaseConnectionPoolHigh",
            severity: Severity::P1,
            runbook: "database-connection-pool-exhaustion",
            threshold: "Pool usage > 80%",
            probe: Probe::PoolUsage,
            condition: Check::Above(0.80),
            for_duration: Duration::ZERO,
            typical_resolution: Duration::from_secs(15 * MIN),
        },
        AlertRule {
            name: "DiskSpaceHigh",
            severity: Severity::P1,
            runbook: "disk-space-critical",
            threshold: "Disk usage > 85%",
            probe: Probe::DiskUsage,
            condition: Check::Above(0.85),
            for_duration: Duration::ZERO,
            typical_resolution: Duration::from_secs(30 * MIN),
        },
        AlertRule {
            name: "MemoryUsageHigh",
            severity: Severity::P1,
            runbook: "memory-exhaustion",
            threshold: "Memory usage > 90%",
            probe: Probe::MemoryUsage,
            condition: Check::Above(0.90),
            for_duration: Duration::ZERO,
            typical_resolution: Duration::from_secs(20 * MIN),
        },
        AlertRule {
            name: "ScraperStalled",
            severity: Severity::P2,
            runbook: "scraper-stalled",
            threshold: "No new tracks for > 2 hours",
            // Minutes since the newest track of the stalest scraper.
            probe: Probe::Sql {
                sql: "SELECT COALESCE(MAX(EXTRACT(EPOCH FROM ($1::timestamptz - newest)) / 60), 0)::float8 \
                      FROM (SELECT MAX(created_at) AS newest FROM tracks \
                            WHERE source IN ('mixesdb', '1001tracklists') GROUP BY source) AS per_scraper",
            },
            condition: Check::Above(120.0),
            for_duration: Duration::ZERO,
            typical_resolution: Duration::from_secs(30 * MIN),
        },
        AlertRule {
            name: "APIGatewayErrorRateHigh",
            severity: Severity::P1,
            runbook: "api-gateway-high-error-rate",
            threshold: "Error rate > 10%",
            probe: Probe::Metric {
                api: Api::Gateway,
                name: "error_rate",
            },
            condition: Check::Above(0.10),
            for_duration: Duration::ZERO,
            typical_resolution: Duration::from_secs(30 * MIN),
        },
    ]
}

/// Where a rule stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum AlertState {
    Inactive,
    Pending { since: DateTime<Utc> },
    Firing { since: DateTime<Utc> },
}

/// An alert that fired: when, and since when its condition had held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fired {
    pub alert: &'static str,
    pub at: DateTime<Utc>,
    /// When the condition began to hold (the start of pending, if any). An alert
    /// whose condition held before the remediation began was not raised by it.
    pub active_since: DateTime<Utc>,
}

/// A change of state, for the timeline and the report.
#[derive(Clone, Debug, Serialize)]
pub struct Transition {
    pub alert: &'static str,
    pub at: DateTime<Utc>,
    pub from: AlertState,
    pub to: AlertState,
    pub reading: String,
}

/// Evaluates every rule over fresh probe readings and keeps their states.
pub struct AlertEvaluator {
    rules: Vec<AlertRule>,
    states: BTreeMap<&'static str, AlertState>,
    /// Every alert that has fired since the evaluator began.
    fired: Vec<Fired>,
}

impl AlertEvaluator {
    pub fn new(rules: Vec<AlertRule>) -> Self {
        let states = rules
            .iter()
            .map(|r| (r.name, AlertState::Inactive))
            .collect();
        Self {
            rules,
            states,
            fired: Vec::new(),
        }
    }

    pub fn state(&self, alert: &str) -> AlertState {
        self.states
            .get(alert)
            .copied()
            .unwrap_or(AlertState::Inactive)
    }

    pub fn is_firing(&self, alert: &str) -> bool {
        matches!(self.state(alert), AlertState::Firing { .. })
    }

    /// Alerts that have fired at least once, in order.
    pub fn fired(&self) -> &[Fired] {
        &self.fired
    }

    /// Reads every probe once and advances each rule. A probe that cannot be read
    /// leaves its rule as it was (a scrape failure is not a recovery).
    pub async fn evaluate(&mut self, ops: &Ops) -> Vec<Transition> {
        let now = ops.clock.now();
        let mut transitions = Vec::new();
        for rule in &self.rules {
            let Ok(reading) = rule.probe.read(ops).await else {
                continue;
            };
            let active = rule.condition.holds(std::slice::from_ref(&reading));
            let from = self
                .states
                .get(rule.name)
                .copied()
                .unwrap_or(AlertState::Inactive);
            let to = advance(from, active, now, rule.for_duration);
            if to != from {
                if matches!(to, AlertState::Firing { .. }) {
                    let active_since = match from {
                        AlertState::Pending { since } => since,
                        _ => now,
                    };
                    self.fired.push(Fired {
                        alert: rule.name,
                        at: now,
                        active_since,
                    });
                }
                let transition = Transition {
                    alert: rule.name,
                    at: now,
                    from,
                    to,
                    reading: describe(&reading),
                };
                ops.timeline.note(
                    Phase::Detect,
                    format!("{} {}", rule.name, state_word(to)),
                    format!("{} ({})", transition.reading, rule.threshold),
                );
                transitions.push(transition);
                self.states.insert(rule.name, to);
            }
        }
        transitions
    }
}

/// The state machine of one rule.
pub fn advance(
    from: AlertState,
    active: bool,
    now: DateTime<Utc>,
    for_duration: Duration,
) -> AlertState {
    let held_long_enough =
        |since: DateTime<Utc>| (now - since).to_std().unwrap_or_default() >= for_duration;
    match (from, active) {
        (_, false) => AlertState::Inactive,
        (AlertState::Inactive, true) if for_duration.is_zero() => AlertState::Firing { since: now },
        (AlertState::Inactive, true) => AlertState::Pending { since: now },
        (AlertState::Pending { since }, true) if held_long_enough(since) => {
            AlertState::Firing { since: now }
        }
        (state, true) => state,
    }
}

fn state_word(state: AlertState) -> &'static str {
    match state {
        AlertState::Inactive => "resolved",
        AlertState::Pending { .. } => "pending",
        AlertState::Firing { .. } => "FIRING",
    }
}

fn describe(reading: &Reading) -> String {
    reading.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_764_300_000 + minutes * 60, 0).unwrap()
    }

    #[test]
    fn a_rule_with_a_for_duration_is_pending_before_it_fires() {
        let five = Duration::from_secs(300);
        let pending = advance(AlertState::Inactive, true, at(0), five);
        assert_eq!(pending, AlertState::Pending { since: at(0) });
        assert_eq!(advance(pending, true, at(4), five), pending);
        assert_eq!(
            advance(pending, true, at(5), five),
            AlertState::Firing { since: at(5) }
        );
    }

    #[test]
    fn a_rule_without_a_for_duration_fires_at_once_and_resolves_when_false() {
        let firing = advance(AlertState::Inactive, true, at(0), Duration::ZERO);
        assert_eq!(firing, AlertState::Firing { since: at(0) });
        assert_eq!(
            advance(firing, false, at(1), Duration::ZERO),
            AlertState::Inactive
        );
    }

    #[test]
    fn a_condition_that_lapses_while_pending_starts_over() {
        let five = Duration::from_secs(300);
        let pending = advance(AlertState::Inactive, true, at(0), five);
        let lapsed = advance(pending, false, at(3), five);
        assert_eq!(lapsed, AlertState::Inactive);
        assert_eq!(
            advance(lapsed, true, at(4), five),
            AlertState::Pending { since: at(4) }
        );
    }

    #[test]
    fn the_index_has_nine_rules_with_distinct_names() {
        let rules = rules();
        assert_eq!(rules.len(), 9);
        let names: std::collections::BTreeSet<_> = rules.iter().map(|r| r.name).collect();
        assert_eq!(names.len(), 9);
    }
}
