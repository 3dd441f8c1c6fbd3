//! Evaluating the alert rules over the running stack.
//!
//! The rules are the runbooks' ([`runbooks::alert_rules`]): each runbook keeps the
//! alert that sends an engineer to it. A rule is *pending* while its condition holds
//! for less than its `for` duration, *firing* once it has held that long, and
//! *resolved* when it stops holding, as in Prometheus; durations are modeled time.
//!
//! A probe that cannot be read is never skipped in silence: the rule keeps its state
//! (a failed scrape is not a recovery), and the failure is recorded with the probe and
//! the reason, on the timeline and in [`AlertEvaluator::probe_failures`], so that a
//! rule which could never be read fails the drill that relied on it.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use runbooks::AlertRule;
use runbooks::ops::{Ops, Phase};
use serde::Serialize;

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

/// A rule whose probe could not be read, and how often.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProbeFailure {
    pub alert: &'static str,
    /// How a person reads the same figure.
    pub probe: String,
    pub last_error: String,
    pub failures: u32,
    /// Whether any evaluation read it at all.
    pub ever_read: bool,
}

impl std::fmt::Display for ProbeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "alert {} could not be evaluated ({} of its readings failed): `{}` failed: {}",
            self.alert, self.failures, self.probe, self.last_error
        )
    }
}

/// Evaluates every rule over fresh probe readings and keeps their states.
pub struct AlertEvaluator {
    rules: Vec<&'static AlertRule>,
    states: BTreeMap<&'static str, AlertState>,
    /// Every alert that has fired since the evaluator began.
    fired: Vec<Fired>,
    /// Every time a rule's condition began to hold (pending, or firing at once).
    tripped: Vec<(&'static str, DateTime<Utc>)>,
    reads: BTreeMap<&'static str, u32>,
    failures: BTreeMap<&'static str, ProbeFailure>,
}

impl AlertEvaluator {
    pub fn new(rules: Vec<&'static AlertRule>) -> Self {
        let states = rules
            .iter()
            .map(|r| (r.name, AlertState::Inactive))
            .collect();
        Self {
            rules,
            states,
            fired: Vec::new(),
            tripped: Vec::new(),
            reads: BTreeMap::new(),
            failures: BTreeMap::new(),
        }
    }

    /// Every rule of the Quick Alert Index.
    pub fn for_all_runbooks() -> Self {
        Self::new(runbooks::alert_rules())
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

    /// The alerts firing now.
    pub fn firing(&self) -> Vec<&'static str> {
        self.rules
            .iter()
            .map(|r| r.name)
            .filter(|name| self.is_firing(name))
            .collect()
    }

    /// Alerts that have fired at least once, in order.
    pub fn fired(&self) -> &[Fired] {
        &self.fired
    }

    /// Alerts whose condition began to hold at or after `since` (raised by whatever
    /// was done from then on), other than `expected`, the `tolerated` ones and those
    /// `already` firing before the incident, each once.
    pub fn raised_since(
        &self,
        since: DateTime<Utc>,
        expected: &str,
        tolerated: &[String],
        already: &[&'static str],
    ) -> Vec<&'static str> {
        let mut raised: Vec<&'static str> = Vec::new();
        for fired in &self.fired {
            let alert = fired.alert;
            if alert != expected
                && !tolerated.iter().any(|t| t == alert)
                && !already.contains(&alert)
                && fired.active_since >= since
                && !raised.contains(&alert)
            {
                raised.push(alert);
            }
        }
        raised
    }

    /// Every time a rule's condition began to hold (went pending, or fired at once),
    /// in order.
    pub fn tripped(&self) -> &[(&'static str, DateTime<Utc>)] {
        &self.tripped
    }

    /// Alerts whose condition began to hold at or after `since`, pending or firing,
    /// other than those `already` firing, each once: with no incident, an alert
    /// that only went pending was still raised by what was done.
    pub fn tripped_since(
        &self,
        since: DateTime<Utc>,
        already: &[&'static str],
    ) -> Vec<&'static str> {
        let mut tripped: Vec<&'static str> = Vec::new();
        for &(alert, at) in &self.tripped {
            if at >= since && !already.contains(&alert) && !tripped.contains(&alert) {
                tripped.push(alert);
            }
        }
        tripped
    }

    /// The rules whose probe failed at least once.
    pub fn probe_failures(&self) -> Vec<ProbeFailure> {
        self.failures
            .values()
            .map(|failure| ProbeFailure {
                ever_read: self.reads.get(failure.alert).is_some_and(|n| *n > 0),
                ..failure.clone()
            })
            .collect()
    }

    /// Reads every probe once and advances each rule.
    pub async fn evaluate(&mut self, ops: &Ops) -> Vec<Transition> {
        let now = ops.clock.now();
        let mut transitions = Vec::new();
        for rule in &self.rules {
            let reading = match rule.probe.read(ops).await {
                Ok(reading) => {
                    *self.reads.entry(rule.name).or_default() += 1;
                    reading
                }
                Err(error) => {
                    let failure = self.failures.entry(rule.name).or_insert(ProbeFailure {
                        alert: rule.name,
                        probe: rule.probe.command(ops),
                        last_error: String::new(),
                        failures: 0,
                        ever_read: false,
                    });
                    if failure.failures == 0 {
                        ops.timeline.note(
                            Phase::Detect,
                            format!("{} cannot be evaluated", rule.name),
                            format!("`{}` failed: {error}", failure.probe),
                        );
                        tracing::warn!(
                            "alert {} cannot be evaluated: `{}` failed: {error}",
                            rule.name,
                            failure.probe
                        );
                    }
                    failure.failures += 1;
                    failure.last_error = error.to_string();
                    continue;
                }
            };
            tracing::debug!(alert = rule.name, %reading, at = %now, "probe read");
            let active = rule.condition.holds(std::slice::from_ref(&reading));
            let from = self.state(rule.name);
            let to = advance(from, active, now, rule.for_duration);
            if to != from {
                if from == AlertState::Inactive {
                    self.tripped.push((rule.name, now));
                }
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
                    reading: reading.to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use runbooks::ops::{AutoApprove, Orchestrator, Timeline};
    use wire::{Clock, Endpoints};

    /// Ops against a stack that is not there: every port refuses.
    async fn ops_of_nothing() -> Ops {
        let closed = "http://127.0.0.1:9/".parse::<url::Url>().unwrap();
        let endpoints = Endpoints {
            enrichment: closed.clone(),
            gateway: closed.clone(),
            dlq: closed.clone(),
            rest_api: closed.clone(),
            graph_api: closed.clone(),
            database_url: "postgres://musicdb_user@127.0.0.1:9/musicdb".into(),
            postgres_host: "localhost".into(),
            postgres_port: 9,
            redis_url: "redis://127.0.0.1:9".into(),
            redis_port: 9,
            providers: Default::default(),
            sites: Default::default(),
        };
        let clock = Clock::starting_now(60.0).unwrap();
        Ops::connect(
            endpoints,
            Arc::new(NoOrchestrator) as Arc<dyn Orchestrator>,
            clock,
            Arc::new(AutoApprove),
            Timeline::new(clock),
        )
        .await
        .unwrap()
    }

    struct NoOrchestrator;

    #[async_trait::async_trait]
    impl Orchestrator for NoOrchestrator {
        fn backend(&self) -> &'static str {
            "none"
        }
        async fn stop(&self, _: &[wire::Service]) -> Result<(), runbooks::ops::OrchestratorError> {
            unimplemented!("not used by alert rules")
        }
        async fn start(&self, _: &[wire::Service]) -> Result<(), runbooks::ops::OrchestratorError> {
            unimplemented!("not used by alert rules")
        }
        async fn restart(
            &self,
            _: &[wire::Service],
        ) -> Result<(), runbooks::ops::OrchestratorError> {
            unimplemented!("not used by alert rules")
        }
        async fn kill(&self, _: wire::Service) -> Result<(), runbooks::ops::OrchestratorError> {
            unimplemented!("not used by alert rules")
        }
        async fn pause(&self, _: wire::Service) -> Result<(), runbooks::ops::OrchestratorError> {
            unimplemented!("not used by alert rules")
        }
        async fn unpause(&self, _: wire::Service) -> Result<(), runbooks::ops::OrchestratorError> {
            unimplemented!("not used by alert rules")
        }
        async fn status(
            &self,
            _: wire::Service,
        ) -> Result<runbooks::ops::ServiceStatus, runbooks::ops::OrchestratorError> {
            unimplemented!("not used by alert rules")
        }
        async fn logs(
            &self,
            _: wire::Service,
            _: usize,
        ) -> Result<Vec<String>, runbooks::ops::OrchestratorError> {
            unimplemented!("not used by alert rules")
        }
        async fn stats(
            &self,
        ) -> Result<Vec<runbooks::ops::ServiceStats>, runbooks::ops::OrchestratorError> {
            unimplemented!("not used by alert rules")
        }
        async fn set_env(
            &self,
            _: wire::Service,
            _: std::collections::BTreeMap<String, String>,
        ) -> Result<(), runbooks::ops::OrchestratorError> {
            unimplemented!("not used by alert rules")
        }
        async fn prune(
            &self,
        ) -> Result<runbooks::ops::PruneReport, runbooks::ops::OrchestratorError> {
            unimplemented!("not used by alert rules")
        }
        async fn log_config(
            &self,
            _: wire::Service,
        ) -> Result<runbooks::ops::LogConfig, runbooks::ops::OrchestratorError> {
            unimplemented!("not used by alert rules")
        }
    }

    #[tokio::test]
    async fn a_rule_that_cannot_be_read_is_reported_with_its_probe_and_the_reason() {
        let ops = ops_of_nothing().await;
        let mut evaluator = AlertEvaluator::new(vec![&runbooks::dlq_overflow::META.rule]);
        evaluator.evaluate(&ops).await;
        evaluator.evaluate(&ops).await;
        let failures = evaluator.probe_failures();
        assert_eq!(failures.len(), 1, "{failures:?}");
        let failure = &failures[0];
        assert_eq!(failure.alert, "DLQDepthCritical");
        assert_eq!(failure.failures, 2);
        assert!(!failure.ever_read);
        assert_eq!(
            failure.probe,
            "curl -s http://127.0.0.1:9/dlq/stats | jq .total_messages"
        );
        assert!(
            failure.last_error.contains("127.0.0.1:9"),
            "{}",
            failure.last_error
        );
        // Not a recovery: the rule keeps its state, and the timeline says why.
        assert_eq!(evaluator.state("DLQDepthCritical"), AlertState::Inactive);
        let noted = ops.timeline.render();
        assert!(
            noted.contains("DLQDepthCritical cannot be evaluated"),
            "{noted}"
        );
    }

    #[tokio::test]
    async fn without_a_host_disk_and_memory_rules_say_so_instead_of_staying_quiet() {
        let ops = ops_of_nothing().await;
        let mut evaluator = AlertEvaluator::new(vec![
            &runbooks::disk_space::META.rule,
            &runbooks::memory::META.rule,
        ]);
        evaluator.evaluate(&ops).await;
        let failures = evaluator.probe_failures();
        assert_eq!(failures.len(), 2, "{failures:?}");
        assert!(
            failures
                .iter()
                .all(|f| f.last_error.contains("cannot be read"))
        );
    }

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
}
