//! Drill reports: a human summary, JSON, and JUnit XML for CI.
//!
//! A failed drill must say what was expected, what was observed, what struck when, and
//! every step the runbook took; [`DrillReport::render`] is that message. Times are
//! modeled: time to detect from the first fault, time to resolve from the alert, and
//! the resolution split into waiting on the world and the runbook's own time.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use runbooks::RunbookMeta;
use runbooks::criteria::CriterionOutcome;
use runbooks::ops::timeline::{Entry, format_modeled};
use runbooks::runbook::DiagnosisReport;
use serde::Serialize;

use crate::cache_cost::CacheCost;
use crate::ledger::Ledger;
use crate::runner::{DrillOptions, Response};
use crate::scenario::Scenario;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Passed,
    Failed,
}

/// What a control run showed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ControlOutcome {
    /// Without the runbook the incident did not resolve (within its budget): the
    /// runbook is what resolves it.
    NeededTheRunbook,
    /// The world ended the incident by itself, as the scenario declares it may.
    WorldHealedIt,
    /// The incident resolved without the runbook although the scenario says the world
    /// does not end it: the drill cannot tell the runbook's work from the world's.
    ProvesNothing,
}

/// One fault of the drill: what struck, when, and when it ended.
#[derive(Clone, Debug, Serialize)]
pub struct FaultRecord {
    pub fault: String,
    #[serde(serialize_with = "minutes")]
    pub struck_at: Duration,
    #[serde(serialize_with = "opt_minutes")]
    pub healed_at: Option<Duration>,
    /// Whether the world ends it during this drill (else only a remedy does, if any).
    pub world_ends_it: bool,
}

/// Everything a drill found.
#[derive(Debug, Serialize)]
pub struct DrillReport {
    pub runbook: String,
    pub scenario: String,
    pub title: String,
    pub seed: u64,
    pub scale: f64,
    pub response: Response,
    pub alert: String,
    pub tracks_per_minute: u32,
    pub expected_diagnosis: String,
    pub diagnosis: Option<DiagnosisReport>,
    /// Why the runbook escalated (in its investigation or its resolution), if it did.
    pub escalated: Option<String>,
    /// Whether the scenario's right outcome is an escalation.
    pub escalation_expected: bool,
    pub faults: Vec<FaultRecord>,
    /// When the first fault struck, after the drill began.
    #[serde(serialize_with = "opt_minutes")]
    pub onset: Option<Duration>,
    #[serde(serialize_with = "opt_minutes")]
    pub time_to_detect: Option<Duration>,
    #[serde(serialize_with = "opt_minutes")]
    pub time_to_resolve: Option<Duration>,
    /// The part of the time to resolve spent waiting while the world was broken.
    #[serde(serialize_with = "opt_minutes")]
    pub waiting_on_world: Option<Duration>,
    /// The part of the time to resolve that compression added to the container
    /// engine's calls (a restart's real second is eight modeled minutes at a scale of
    /// 480): each call counts at its real duration (`runbooks::ops::engine_time`).
    #[serde(serialize_with = "opt_minutes")]
    pub engine_compressed: Option<Duration>,
    /// The part of the time to resolve the drill spent reading for itself (the
    /// criteria before the resolution, the cache's live answers as it starts and
    /// ends): real time no runbook spends, multiplied by the scale.
    #[serde(serialize_with = "opt_minutes")]
    pub own_readings: Option<Duration>,
    /// Time to resolve less waiting on the world and the engine's compressed time:
    /// what the budget applies to.
    #[serde(serialize_with = "opt_minutes")]
    pub runbook_time: Option<Duration>,
    #[serde(serialize_with = "minutes")]
    pub budget: Duration,
    #[serde(serialize_with = "minutes")]
    pub typical_resolution: Duration,
    pub world_heals: bool,
    pub verification: Vec<CriterionOutcome>,
    pub ledger: Option<Ledger>,
    /// How the resolution ended when run a second time on the healed stack
    /// (remediation safety), when the drill did that.
    pub resolved_again: Option<String>,
    /// What the runbook did when run on a stack with no incident
    /// ([`Response::Unprompted`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unprompted: Option<String>,
    /// The cache's hit rate before the resolution and after it.
    pub cache: Option<CacheCost>,
    pub alerts_fired: Vec<String>,
    pub failures: Vec<String>,
    /// What went wrong without failing the drill (a probe that failed now and then).
    pub warnings: Vec<String>,
    pub verdict: Verdict,
    /// For a control run: what it showed.
    pub control: Option<ControlOutcome>,
    pub timeline: Vec<Entry>,
    /// How long the drill took in real time, seconds (what CI dashboards add up).
    pub wall_seconds: f64,
    /// The board's signals over the drill, when they were sampled (`drill run --html`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signals: Option<crate::signals::History>,
    #[serde(skip)]
    pub timeline_text: String,
    #[serde(skip)]
    pub resolve_started: Option<DateTime<Utc>>,
}

fn minutes<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() / 60.0 * 100.0).round() / 100.0)
}

fn opt_minutes<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => minutes(d, s),
        None => s.serialize_none(),
    }
}

impl DrillReport {
    pub fn new(
        meta: &RunbookMeta,
        scenario: &Scenario,
        options: &DrillOptions,
        scale: f64,
    ) -> Self {
        Self {
            runbook: meta.id().to_owned(),
            scenario: scenario.id.clone(),
            title: scenario.title.clone(),
            seed: options.seed,
            scale,
            response: options.response,
            alert: scenario.expect.alert.clone(),
            tracks_per_minute: scenario.workload.tracks_per_minute,
            expected_diagnosis: scenario.expect.diagnosis.clone(),
            diagnosis: None,
            escalated: None,
            escalation_expected: scenario.expect.escalates,
            faults: Vec::new(),
            onset: None,
            time_to_detect: None,
            time_to_resolve: None,
            waiting_on_world: None,
            engine_compressed: None,
            own_readings: None,
            resolved_again: None,
            unprompted: None,
            runbook_time: None,
            budget: scenario.expect.budget(),
            typical_resolution: meta.rule.typical_resolution,
            world_heals: scenario.expect.world_heals,
            verification: Vec::new(),
            ledger: None,
            cache: None,
            alerts_fired: Vec::new(),
            failures: Vec::new(),
            warnings: Vec::new(),
            verdict: Verdict::Failed,
            control: None,
            timeline: Vec::new(),
            wall_seconds: 0.0,
            signals: None,
            timeline_text: String::new(),
            resolve_started: None,
        }
    }

    pub fn fail(&mut self, failure: impl Into<String>) {
        self.failures.push(failure.into());
    }

    /// Settles the verdict: passed only if nothing failed and the drill resolved; for a
    /// control run, also what the control showed.
    pub fn finish(&mut self) {
        // A correct escalation ends an incident the runbook cannot fix.
        let ended = self.time_to_resolve.is_some()
            || (self.escalation_expected && self.escalated.is_some());
        let resolved = self.failures.is_empty() && ended;
        self.verdict = match (self.response, resolved) {
            (Response::Diagnose | Response::Unprompted, _) if self.failures.is_empty() => {
                Verdict::Passed
            }
            (_, true) => Verdict::Passed,
            _ => {
                if self.failures.is_empty() {
                    self.failures
                        .push("the drill did not reach a verified resolution".into());
                }
                Verdict::Failed
            }
        };
        if self.response == Response::Control {
            self.control = Some(match (resolved, self.world_heals) {
                (false, _) => ControlOutcome::NeededTheRunbook,
                (true, true) => ControlOutcome::WorldHealedIt,
                (true, false) => ControlOutcome::ProvesNothing,
            });
        }
    }

    /// Whether the drill showed what it exists to show: for a drill, that the runbook
    /// resolved the incident; for a control run, that the runbook is needed (or the
    /// world heals it, as declared); for a diagnosis, that it is the expected one.
    pub fn passed(&self) -> bool {
        match self.response {
            Response::Runbook | Response::Diagnose | Response::Unprompted => {
                self.verdict == Verdict::Passed
            }
            Response::Control => self.control != Some(ControlOutcome::ProvesNothing),
        }
    }

    /// The summary a person reads: verdict, times, failures, faults, steps.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let what = match self.response {
            Response::Runbook => "drill",
            Response::Control => "control run of",
            Response::Diagnose => "diagnosis of",
            Response::Unprompted => "healthy-stack run of",
        };
        let verdict = match (self.response, self.control, self.passed()) {
            (Response::Control, Some(ControlOutcome::NeededTheRunbook), _) => {
                "OK: it did not resolve without the runbook"
            }
            (Response::Control, Some(ControlOutcome::WorldHealedIt), _) => {
                "OK: the world healed it, as the scenario declares"
            }
            (Response::Control, _, _) => "PROVES NOTHING: it resolved without the runbook",
            (_, _, true) => "PASSED",
            (_, _, false) => "FAILED",
        };
        let _ = writeln!(
            out,
            "{what} {} {verdict} (seed {}, scale {}, {} tracks/min)",
            self.scenario, self.seed, self.scale, self.tracks_per_minute
        );
        let _ = writeln!(out, "  {}", self.title);
        let minutes = |d: Option<Duration>| d.map(format_modeled).unwrap_or_else(|| "—".into());
        if self.response != Response::Unprompted {
            let _ = writeln!(
                out,
                "  alert {}: detected {} after the first fault, resolved in {} \
             ({} waiting on the world,{}{} {} runbook time; budget {}, typical {})",
                self.alert,
                minutes(self.time_to_detect),
                minutes(self.time_to_resolve),
                minutes(self.waiting_on_world),
                match self.engine_compressed {
                    Some(engine) if engine >= Duration::from_secs(1) => {
                        format!(
                            " {} of engine calls at compressed time,",
                            format_modeled(engine)
                        )
                    }
                    _ => String::new(),
                },
                match self.own_readings {
                    Some(own) if own >= Duration::from_secs(1) => {
                        format!(" {} of the drill's own readings,", format_modeled(own))
                    }
                    _ => String::new(),
                },
                minutes(self.runbook_time),
                format_modeled(self.budget),
                format_modeled(self.typical_resolution),
            );
        }
        match (&self.diagnosis, &self.escalated) {
            (Some(diagnosis), escalated) => {
                let _ = writeln!(
                    out,
                    "  diagnosis: {}, expected {}",
                    diagnosis.scenario, self.expected_diagnosis
                );
                if let Some(reason) = escalated {
                    let expected = if self.escalation_expected {
                        "as expected"
                    } else {
                        "unexpectedly"
                    };
                    let _ = writeln!(out, "  escalated {expected}: {reason}");
                }
            }
            (None, Some(reason)) => {
                let _ = writeln!(out, "  diagnosis: escalated ({reason})");
            }
            (None, None) => {}
        }
        for outcome in &self.verification {
            let _ = writeln!(out, "  {outcome}");
        }
        if let Some(unprompted) = &self.unprompted {
            let _ = writeln!(out, "  run with no incident: {unprompted}");
        }
        if let Some(again) = &self.resolved_again {
            let _ = writeln!(out, "  resolved again on the healed stack: {again}");
        }
        if let Some(ledger) = &self.ledger {
            let _ = writeln!(out, "  ledger: {}", ledger.summary());
        }
        if let Some(cache) = &self.cache {
            let _ = writeln!(out, "  cache: {cache}");
        }
        for warning in &self.warnings {
            let _ = writeln!(out, "  ! {warning}");
        }
        if !self.failures.is_empty() {
            let _ = writeln!(out, "failures:");
            for failure in &self.failures {
                let _ = writeln!(out, "  ✗ {failure}");
            }
        }
        let _ = writeln!(out, "fault timeline:");
        for fault in &self.faults {
            let ends = match (fault.healed_at, fault.world_ends_it) {
                (Some(at), _) => format!("the world ended it at {}", format_modeled(at)),
                (None, true) => "the world had not ended it yet".to_owned(),
                (None, false) => "the world does not end it".to_owned(),
            };
            let _ = writeln!(
                out,
                "  {:>8} {} — {ends}",
                format_modeled(fault.struck_at),
                fault.fault
            );
        }
        let _ = writeln!(out, "step log:");
        out.push_str(&self.timeline_text);
        out
    }
}

/// JUnit XML for a set of drills, one test case per drill. A case's `time` is wall
/// seconds, as CI dashboards read it; the modeled times are its properties.
pub fn junit(reports: &[DrillReport]) -> String {
    let failures = reports.iter().filter(|r| !r.passed()).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuite name=\"runbook-drill\" tests=\"{}\" failures=\"{failures}\">",
        reports.len()
    );
    for report in reports {
        let seconds = report.wall_seconds;
        let name = match report.response {
            Response::Runbook => report.scenario.clone(),
            Response::Control => format!("{} (control)", report.scenario),
            Response::Diagnose => format!("{} (diagnosis)", report.scenario),
            Response::Unprompted => format!("{} (no incident)", report.scenario),
        };
        let _ = write!(
            out,
            "  <testcase classname=\"{}\" name=\"{}\" time=\"{seconds:.1}\"",
            xml(&report.runbook),
            xml(&name)
        );
        out.push_str(">\n    <properties>\n");
        let modeled = [
            ("modeled_time_to_detect_seconds", report.time_to_detect),
            ("modeled_time_to_resolve_seconds", report.time_to_resolve),
            ("modeled_waiting_on_world_seconds", report.waiting_on_world),
            (
                "modeled_engine_compressed_seconds",
                report.engine_compressed,
            ),
            ("modeled_own_readings_seconds", report.own_readings),
            ("modeled_runbook_time_seconds", report.runbook_time),
            ("modeled_budget_seconds", Some(report.budget)),
        ];
        for (name, value) in modeled {
            if let Some(value) = value {
                let _ = writeln!(
                    out,
                    "      <property name=\"{name}\" value=\"{:.1}\"/>",
                    value.as_secs_f64()
                );
            }
        }
        let _ = writeln!(
            out,
            "      <property name=\"seed\" value=\"{}\"/>\n      <property name=\"scale\" value=\"{}\"/>\n    </properties>",
            report.seed, report.scale
        );
        if report.passed() {
            out.push_str("  </testcase>\n");
        } else {
            let _ = writeln!(
                out,
                "    <failure message=\"{}\">{}</failure>\n  </testcase>",
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn junit_time_is_wall_seconds_and_the_modeled_times_are_properties() {
        let text = "runbook = \"db-connection-pool\"\ntitle = \"t\"\nscale = 30\n\
                    [workload]\ntracks_per_minute = 20\n\
                    [[fault]]\nkind = \"connection-leak\"\nservice = \"rest-api\"\nevery = 3\n\
                    [expect]\nalert = \"DatabaseConnectionPoolHigh\"\ndiagnosis = \"connection-leak\"\nbudget_minutes = 7.5\n";
        let scenario = crate::scenario::parse(
            "db-connection-pool/b-connection-leak",
            std::path::Path::new("b.toml"),
            text,
        )
        .expect("a scenario");
        let options = DrillOptions::new(Arc::new(runbooks::ops::AutoApprove), 42);
        let mut report = DrillReport::new(
            &runbooks::db_connection_pool::META,
            &scenario,
            &options,
            30.0,
        );
        report.time_to_detect = Some(Duration::from_secs(39));
        report.time_to_resolve = Some(Duration::from_secs(398));
        report.runbook_time = Some(Duration::from_secs(372));
        report.wall_seconds = 19.6;
        report.finish();
        let xml = junit(&[report]);
        assert!(
            xml.contains("name=\"db-connection-pool/b-connection-leak\" time=\"19.6\""),
            "{xml}"
        );
        assert!(
            xml.contains("<property name=\"modeled_time_to_resolve_seconds\" value=\"398.0\"/>")
        );
        assert!(xml.contains("<property name=\"modeled_budget_seconds\" value=\"450.0\"/>"));
        assert!(
            !xml.contains("modeled_waiting_on_world_seconds"),
            "no figure, no property"
        );
        assert!(xml.contains("</properties>\n  </testcase>") || xml.contains("<failure"));
    }
}
