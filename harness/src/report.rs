//! Drill reports: a human summary, JSON, and JUnit XML for CI.
//!
//! A failed drill must say what was expected, what was observed, what was injected
//! when, and every step the runbook took; [`DrillReport::render`] is that message.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use runbooks::RunbookMeta;
use runbooks::criteria::CriterionOutcome;
use runbooks::ops::Phase;
use runbooks::ops::timeline::{Entry, format_modeled};
use runbooks::runbook::DiagnosisReport;
use serde::Serialize;

use super::ledger::Ledger;
use super::scenario::Scenario;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Passed,
    Failed,
}

/// Everything a drill found.
#[derive(Debug, Serialize)]
pub struct DrillReport {
    pub runbook: String,
    pub scenario: String,
    pub title: String,
    pub seed: u64,
    pub scale: f64,
    pub alert: String,
    pub expected_diagnosis: char,
    pub diagnosis: Option<DiagnosisReport>,
    #[serde(serialize_with = "opt_minutes")]
    pub time_to_detect: Option<Duration>,
    #[serde(serialize_with = "opt_minutes")]
    pub time_to_resolve: Option<Duration>,
    #[serde(serialize_with = "opt_minutes")]
    pub budget: Option<Duration>,
    #[serde(serialize_with = "opt_minutes")]
    pub typical_resolution: Option<Duration>,
    pub verification: Vec<CriterionOutcome>,
    pub ledger: Option<Ledger>,
    pub alerts_fired: Vec<String>,
    pub failures: Vec<String>,
    pub verdict: Verdict,
    pub timeline: Vec<Entry>,
    #[serde(skip)]
    pub timeline_text: String,
    #[serde(skip)]
    pub resolve_started: Option<DateTime<Utc>>,
}

fn opt_minutes<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64((d.as_secs_f64() / 60.0 * 100.0).round() / 100.0),
        None => s.serialize_none(),
    }
}

impl DrillReport {
    pub fn new(meta: &RunbookMeta, scenario: &Scenario, seed: u64, scale: f64) -> Self {
        Self {
            runbook: meta.id.to_owned(),
            scenario: scenario.id.clone(),
            title: scenario.title.clone(),
            seed,
            scale,
            alert: scenario.expect.alert.clone(),
            expected_diagnosis: scenario.expect.diagnosis,
            diagnosis: None,
            time_to_detect: None,
            time_to_resolve: None,
            budget: Some(scenario.expect.budget()),
            typical_resolution: Some(meta.typical_resolution),
            verification: Vec::new(),
            ledger: None,
            alerts_fired: Vec::new(),
            failures: Vec::new(),
            verdict: Verdict::Failed,
            timeline: Vec::new(),
            timeline_text: String::new(),
            resolve_started: None,
        }
    }

    pub fn fail(&mut self, failure: impl Into<String>) {
        self.failures.push(failure.into());
    }

    /// Settles the verdict: passed only if nothing failed and the drill resolved.
    pub fn finish(&mut self) {
        self.verdict = if self.failures.is_empty() && self.time_to_resolve.is_some() {
            Verdict::Passed
        } else {
            if self.failures.is_empty() {
                self.failures
                    .push("the drill did not reach a verified resolution".into());
            }
            Verdict::Failed
        };
    }

    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Passed
    }

    /// The summary a person reads: verdict, times, failures, faults, steps.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let verdict = if self.passed() { "PASSED" } else { "FAILED" };
        let _ = writeln!(
            out,
            "drill {} {verdict} (seed {}, scale {})",
            self.scenario, self.seed, self.scale
        );
        let _ = writeln!(out, "  {}", self.title);
        let minutes = |d: Option<Duration>| d.map(format_modeled).unwrap_or_else(|| "—".into());
        let _ = writeln!(
            out,
            "  alert {}: detected in {}, resolved in {} (budget {}, typical {})",
            self.alert,
            minutes(self.time_to_detect),
            minutes(self.time_to_resolve),
            minutes(self.budget),
            minutes(self.typical_resolution),
        );
        if let Some(diagnosis) = &self.diagnosis {
            let _ = writeln!(
                out,
                "  diagnosis: scenario {} ({}), expected {}",
                diagnosis.scenario, diagnosis.scenario_name, self.expected_diagnosis
            );
        }
        for outcome in &self.verification {
            let _ = writeln!(out, "  {outcome}");
        }
        if let Some(ledger) = &self.ledger {
            let _ = writeln!(
                out,
                "  ledger: {} tracks = {} enriched + {} queued + {} dead-lettered + {} archived{}",
                ledger.tracks,
                ledger.enriched,
                ledger.queued,
                ledger.dead_lettered,
                ledger.archived,
                if ledger.balanced() {
                    ""
                } else {
                    " (UNBALANCED)"
                }
            );
        }
        if !self.failures.is_empty() {
            let _ = writeln!(out, "failures:");
            for failure in &self.failures {
                let _ = writeln!(out, "  ✗ {failure}");
            }
            let _ = writeln!(out, "fault timeline:");
            for entry in self.timeline.iter().filter(|e| e.phase == Phase::Inject) {
                let _ = writeln!(
                    out,
                    "  {:>8} {} {}",
                    format_modeled(entry.at),
                    entry.title,
                    entry.observed
                );
            }
        }
        let _ = writeln!(out, "step log:");
        out.push_str(&self.timeline_text);
        out
    }
}

/// JUnit XML for a set of drills, one test case per drill.
pub fn junit(reports: &[DrillReport]) -> String {
    let failures = reports.iter().filter(|r| !r.passed()).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuite name=\"runbook-drill\" tests=\"{}\" failures=\"{failures}\">",
        reports.len()
    );
    for report in reports {
        let seconds = report
            .time_to_resolve
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let _ = write!(
            out,
            "  <testcase classname=\"{}\" name=\"{}\" time=\"{seconds:.1}\"",
            xml(&report.runbook),
            xml(&report.scenario)
        );
        if report.passed() {
            out.push_str("/>\n");
        } else {
            let _ = writeln!(
                out,
                ">\n    <failure message=\"{}\">{}</failure>\n  </testcase>",
                xml(report
                    .failures
                    .first()
                    .map(String::as_str)
                    .unwrap_or("failed")),
                xml(&report.render())
            );
        }
    }
    out.push_str("</testsuite>\n");
    out
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
