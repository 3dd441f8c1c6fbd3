//! What a drilled fault schedule showed, and the properties it is held to.
//!
//! Whatever the faults, a correct set of runbooks keeps four properties, each judged
//! here from what the run recorded, never from what the schedule says:
//! - **nothing lost or duplicated**: the ledger follows every track;
//! - **every alert that fired ends resolved or explicitly escalated** with its
//!   evidence: a response that failed, or an alert still firing at the end that no
//!   runbook escalated, breaks it;
//! - **no alert raised by a remediation**: an alert that fired, whose condition began
//!   during a response and was not pending when it began, breaks it, unless the same
//!   schedule and seed with nobody responding (the control run) trips it too (pending
//!   or firing), for then the faults raised it, not the remedy;
//! - **configuration restored or the change declared**: `metadata_enrichment_config`
//!   as it was, or changed by a step that said it was changing it.
//!
//! Probes that could never be read break the run too: a silent rule proves nothing.

use std::fmt::Write as _;
use std::time::Duration;

use runbooks::ops::timeline::{Entry, format_modeled};
use serde::Serialize;

use crate::ledger::Ledger;
use crate::report::FaultRecord;

/// How the runbook's response to one alert ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "outcome")]
pub enum ResponseOutcome {
    /// Verified, and the alert cleared, `after` the alert fired (modeled).
    Resolved {
        #[serde(serialize_with = "seconds")]
        after: Duration,
    },
    /// The runbook escalated, saying why.
    Escalated { evidence: String },
    /// The investigation or resolution failed, verification did not hold, or the
    /// alert did not clear after it did.
    Failed { why: String },
}

/// One alert that fired, and its runbook's response.
#[derive(Clone, Debug, Serialize)]
pub struct AlertResponse {
    pub alert: &'static str,
    pub runbook: String,
    /// When it fired, modeled time since the run began.
    #[serde(serialize_with = "seconds")]
    pub fired_at: Duration,
    /// When the response began and ended, modeled time since the run began.
    #[serde(serialize_with = "seconds")]
    pub began: Duration,
    #[serde(serialize_with = "seconds")]
    pub ended: Duration,
    /// The alerts pending or firing when the response began: not the remedy's.
    pub already_tripped: Vec<&'static str>,
    /// The scenario its investigation chose, if it chose one.
    pub diagnosis: Option<String>,
    #[serde(flatten)]
    pub outcome: ResponseOutcome,
}

/// An alert that fired, whose condition began while a response was under way.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RaisedDuring {
    pub alert: &'static str,
    /// The runbook whose response was under way.
    pub runbook: String,
    #[serde(serialize_with = "seconds")]
    pub at: Duration,
}

/// Everything a drilled fault schedule showed.
#[derive(Debug, Serialize)]
pub struct ScheduleReport {
    pub schedule: String,
    pub title: String,
    pub seed: u64,
    pub scale: f64,
    /// Whether anyone responded (false for the control run).
    pub responded: bool,
    pub faults: Vec<FaultRecord>,
    pub responses: Vec<AlertResponse>,
    /// Every alert that fired, in order (not those firing before the faults).
    pub alerts_fired: Vec<&'static str>,
    /// Alerts still firing when the run ended.
    pub still_firing: Vec<&'static str>,
    /// Alerts that fired, whose condition began during a response and was not
    /// pending then.
    pub raised_during_responses: Vec<RaisedDuring>,
    /// Every alert the control run tripped (pending or firing), when one was run.
    pub control_tripped: Option<Vec<&'static str>>,
    pub ledger: Option<Ledger>,
    /// Rows of `metadata_enrichment_config` the run left changed.
    pub config_drift: Vec<String>,
    /// The steps that changed the configuration on purpose, as they said so.
    pub config_changes_declared: Vec<String>,
    /// Properties broken, each with its evidence; empty when the run passed.
    pub violations: Vec<String>,
    pub warnings: Vec<String>,
    pub timeline: Vec<Entry>,
    /// How long (modeled) the run lasted.
    #[serde(serialize_with = "seconds")]
    pub lasted: Duration,
    pub wall_seconds: f64,
}

impl ScheduleReport {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// Judges the properties over what was recorded. `raised_during_responses` not
    /// tripped by the control run (or all of them, when none was run) break the
    /// remediation property.
    pub(crate) fn judge(&mut self) {
        let mut violations = Vec::new();
        if let Some(ledger) = &self.ledger {
            violations.extend(
                ledger
                    .problems()
                    .into_iter()
                    .map(|p| format!("ledger: {p}")),
            );
        }
        for response in &self.responses {
            if let ResponseOutcome::Failed { why } = &response.outcome {
                violations.push(format!(
                    "{} ({} runbook, fired at {}): {why}",
                    response.alert,
                    response.runbook,
                    format_modeled(response.fired_at)
                ));
            }
        }
        for alert in &self.still_firing {
            let last = self.responses.iter().rev().find(|r| r.alert == *alert);
            match last.map(|r| &r.outcome) {
                Some(ResponseOutcome::Escalated { .. }) => {}
                Some(_) => violations.push(format!(
                    "{alert} still fires at the end, and its runbook did not escalate it"
                )),
                None if self.responded => violations.push(format!(
                    "{alert} still fires at the end, and no runbook answered it"
                )),
                None => {}
            }
        }
        for raised in &self.raised_during_responses {
            let by_the_faults = self
                .control_tripped
                .as_ref()
                .is_some_and(|tripped| tripped.contains(&raised.alert));
            if !by_the_faults {
                violations.push(format!(
                    "{} was raised during the {} runbook's response (at {}){}",
                    raised.alert,
                    raised.runbook,
                    format_modeled(raised.at),
                    if self.control_tripped.is_some() {
                        ", and the same faults with nobody responding never trip it"
                    } else {
                        ""
                    }
                ));
            }
        }
        if !self.config_drift.is_empty() {
            let drift = self.config_drift.join("; ");
            if self.config_changes_declared.is_empty() {
                violations.push(format!(
                    "metadata_enrichment_config left changed by no declared step: {drift}"
                ));
            } else {
                self.warnings.push(format!(
                    "metadata_enrichment_config left changed, as declared by {}: {drift}",
                    self.config_changes_declared.join("; ")
                ));
            }
        }
        self.violations.extend(violations);
    }

    /// The run for a person: what struck, each response, then the verdict.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} — {} (seed {}, ×{}; {} modeled, {:.0} s)",
            self.schedule,
            self.title,
            self.seed,
            self.scale,
            format_modeled(self.lasted),
            self.wall_seconds
        );
        for fault in &self.faults {
            let _ = writeln!(
                out,
                "  struck {:>8}  {}{}",
                format_modeled(fault.struck_at),
                fault.fault,
                fault
                    .healed_at
                    .map(|at| format!(" (the world ended it at {})", format_modeled(at)))
                    .unwrap_or_default()
            );
        }
        if !self.responded {
            let _ = writeln!(out, "  nobody responded (control run)");
        }
        for response in &self.responses {
            let outcome = match &response.outcome {
                ResponseOutcome::Resolved { after } => {
                    format!("resolved {} after it fired", format_modeled(*after))
                }
                ResponseOutcome::Escalated { evidence } => format!("escalated: {evidence}"),
                ResponseOutcome::Failed { why } => format!("FAILED: {why}"),
            };
            let _ = writeln!(
                out,
                "  fired  {:>8}  {} → {} runbook{}: {outcome}",
                format_modeled(response.fired_at),
                response.alert,
                response.runbook,
                response
                    .diagnosis
                    .as_ref()
                    .map(|d| format!(" (chose {d})"))
                    .unwrap_or_default()
            );
        }
        if self.responded && self.responses.is_empty() {
            let _ = writeln!(out, "  no alert fired");
        }
        if let Some(ledger) = &self.ledger {
            let _ = writeln!(out, "  ledger: {}", ledger.summary());
        }
        for warning in &self.warnings {
            let _ = writeln!(out, "  warning: {warning}");
        }
        if self.passed() {
            let _ = writeln!(out, "  PASSED: every property held");
        } else {
            for violation in &self.violations {
                let _ = writeln!(out, "  VIOLATED: {violation}");
            }
        }
        out
    }
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> ScheduleReport {
        ScheduleReport {
            schedule: "generated/1".into(),
            title: "t".into(),
            seed: 1,
            scale: 60.0,
            responded: true,
            faults: Vec::new(),
            responses: Vec::new(),
            alerts_fired: Vec::new(),
            still_firing: Vec::new(),
            raised_during_responses: Vec::new(),
            control_tripped: None,
            ledger: None,
            config_drift: Vec::new(),
            config_changes_declared: Vec::new(),
            violations: Vec::new(),
            warnings: Vec::new(),
            timeline: Vec::new(),
            lasted: Duration::from_secs(60),
            wall_seconds: 1.0,
        }
    }

    fn response(alert: &'static str, outcome: ResponseOutcome) -> AlertResponse {
        AlertResponse {
            alert,
            runbook: "circuit-breaker-storm".into(),
            fired_at: Duration::from_secs(300),
            began: Duration::from_secs(300),
            ended: Duration::from_secs(600),
            already_tripped: vec![alert],
            diagnosis: None,
            outcome,
        }
    }

    #[test]
    fn an_alert_still_firing_passes_only_when_its_runbook_escalated_it() {
        let mut escalated = report();
        escalated.responses.push(response(
            "CircuitBreakerStorm",
            ResponseOutcome::Escalated {
                evidence: "the provider's status page".into(),
            },
        ));
        escalated.still_firing.push("CircuitBreakerStorm");
        escalated.judge();
        assert!(escalated.passed(), "{:?}", escalated.violations);

        let mut claimed = report();
        claimed.responses.push(response(
            "CircuitBreakerStorm",
            ResponseOutcome::Resolved {
                after: Duration::from_secs(60),
            },
        ));
        claimed.still_firing.push("CircuitBreakerStorm");
        claimed.judge();
        assert_eq!(
            claimed.violations,
            ["CircuitBreakerStorm still fires at the end, and its runbook did not escalate it"]
        );

        let mut unanswered = report();
        unanswered.still_firing.push("DLQDepthCritical");
        unanswered.judge();
        assert!(unanswered.violations[0].contains("no runbook answered it"));
    }

    #[test]
    fn an_alert_raised_during_a_response_is_the_remedys_unless_the_faults_raise_it_alone() {
        let raised = RaisedDuring {
            alert: "DLQDepthCritical",
            runbook: "circuit-breaker-storm".into(),
            at: Duration::from_secs(400),
        };
        let mut by_the_faults = report();
        by_the_faults.raised_during_responses.push(raised.clone());
        by_the_faults.control_tripped = Some(vec!["DLQDepthCritical"]);
        by_the_faults.judge();
        assert!(by_the_faults.passed(), "{:?}", by_the_faults.violations);

        let mut by_the_remedy = report();
        by_the_remedy.raised_during_responses.push(raised);
        by_the_remedy.control_tripped = Some(vec!["CircuitBreakerStorm"]);
        by_the_remedy.judge();
        assert!(
            by_the_remedy.violations[0].contains("nobody responding never trip it"),
            "{:?}",
            by_the_remedy.violations
        );
    }

    #[test]
    fn a_config_change_passes_only_when_a_step_declared_it() {
        let mut silent = report();
        silent.config_drift.push("default: timeout=45s".into());
        silent.judge();
        assert!(silent.violations[0].contains("no declared step"));

        let mut declared = report();
        declared.config_drift.push("default: timeout=45s".into());
        declared
            .config_changes_declared
            .push("Raise timeout_seconds to 45".into());
        declared.judge();
        assert!(declared.passed());
        assert!(declared.warnings[0].contains("as declared by"));
    }

    #[test]
    fn a_failed_response_is_a_violation_with_its_reason() {
        let mut failed = report();
        failed.responses.push(response(
            "CircuitBreakerStorm",
            ResponseOutcome::Failed {
                why: "verification breakers closed: spotify open".into(),
            },
        ));
        failed.judge();
        assert_eq!(failed.violations.len(), 1);
        assert!(failed.violations[0].contains("spotify open"));
        assert!(failed.render().contains("VIOLATED"));
    }
}
