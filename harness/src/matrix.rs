//! Diagnosis accuracy: a confusion matrix of expected against chosen scenarios.
//!
//! A runbook's investigation is only as good as its choice among its scenarios.
//! `drill matrix` drills every scenario of a runbook under several seeds (different
//! onsets, recoveries and amounts), plus a stack with no fault at all, stops each
//! drill at the diagnosis ([`crate::Response::Diagnose`]) and counts what the
//! investigation chose against what struck. Besides the runbook's scenarios, a drill
//! can end in *no incident* (the alert never fired) or *escalated* (the investigation
//! would not choose); the no-fault stack must end in *no incident*.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;
use stack::Workload;

use crate::report::DrillReport;
use crate::scenario::{Expectation, Scenario};

/// What a drill ended in, as a row or column of the matrix.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Choice {
    Scenario(String),
    NoIncident,
    Escalated,
}

impl Choice {
    fn label(&self) -> &str {
        match self {
            Choice::Scenario(slug) => slug,
            Choice::NoIncident => "no incident",
            Choice::Escalated => "escalated",
        }
    }

    /// What a diagnosis drill ended in.
    pub fn of(report: &DrillReport) -> Choice {
        match (&report.diagnosis, &report.escalated) {
            (Some(diagnosis), _) => Choice::Scenario(diagnosis.scenario.slug.to_owned()),
            (None, Some(_)) => Choice::Escalated,
            (None, None) => Choice::NoIncident,
        }
    }

    /// What a drill of `scenario` should end in.
    pub fn expected(scenario: &Scenario) -> Choice {
        if scenario.faults.is_empty() {
            Choice::NoIncident
        } else {
            Choice::Scenario(scenario.expect.diagnosis.clone())
        }
    }
}

/// The no-fault control of a runbook: its alert, the stack's default workload, no
/// fault, watched as long as the slowest of its scenarios may take to be detected.
pub fn no_fault(runbook: &str, scenarios: &[Scenario]) -> Option<Scenario> {
    let of_runbook: Vec<&Scenario> = scenarios.iter().filter(|s| s.runbook == runbook).collect();
    let first = of_runbook.first()?;
    let detect_within_minutes = of_runbook
        .iter()
        .map(|s| s.expect.detect_within_minutes)
        .fold(0.0, f64::max);
    Some(Scenario {
        id: format!("{runbook}/no-fault"),
        runbook: runbook.to_owned(),
        title: "No fault: the alert must not fire".to_owned(),
        scale: first.scale,
        workload: Workload::default(),
        faults: Vec::new(),
        expect: Expectation {
            detect_within_minutes,
            ..first.expect.clone()
        },
        path: PathBuf::from("(built in)"),
    })
}

/// Counts of (expected, chosen) for one runbook.
#[derive(Clone, Debug, Serialize)]
pub struct ConfusionMatrix {
    pub runbook: String,
    /// Rows and columns: the runbook's scenarios, then "no incident" and "escalated".
    labels: Vec<Choice>,
    counts: BTreeMap<String, BTreeMap<String, u32>>,
    /// Each (scenario, seed) whose choice was wrong.
    pub misses: Vec<String>,
    /// The runbook run as if paged on the stack with no fault, per seed
    /// (remediation safety: [`crate::Response::Unprompted`]).
    pub with_no_incident: Vec<SafetyRun>,
}

/// One run of a runbook on a stack with no incident: what it did, and the harm.
#[derive(Clone, Debug, Serialize)]
pub struct SafetyRun {
    pub seed: u64,
    /// "found no incident (…)" or "chose …, resolved".
    pub outcome: String,
    /// What it broke; empty when it did no harm.
    pub harm: Vec<String>,
}

impl ConfusionMatrix {
    pub fn new(runbook: &str, scenarios: &[&str]) -> Self {
        let mut labels: Vec<Choice> = scenarios
            .iter()
            .map(|s| Choice::Scenario((*s).to_owned()))
            .collect();
        labels.extend([Choice::NoIncident, Choice::Escalated]);
        Self {
            runbook: runbook.to_owned(),
            labels,
            counts: BTreeMap::new(),
            misses: Vec::new(),
            with_no_incident: Vec::new(),
        }
    }

    /// Counts one drill.
    /// Records the diagnosis drill of `scenario` under `seed`; a miss names why the
    /// drill ended where it did (the escalation's reason, or what failed). Returns
    /// whether it is on the diagonal.
    pub fn record_drill(&mut self, scenario: &Scenario, report: &DrillReport, seed: u64) -> bool {
        let (expected, chosen) = (Choice::expected(scenario), Choice::of(report));
        let why = match (&report.escalated, report.failures.first()) {
            (Some(reason), _) => format!(" (escalated: {reason})"),
            (None, Some(failure)) => format!(" ({failure})"),
            (None, None) => String::new(),
        };
        let which = if expected == chosen {
            format!("{} seed {seed}", scenario.id)
        } else {
            format!("{} seed {seed}{why}", scenario.id)
        };
        self.record(&expected, &chosen, &which);
        expected == chosen
    }

    /// Records a run with no incident; returns whether it did no harm.
    pub fn record_safety(&mut self, report: &DrillReport, seed: u64) -> bool {
        let run = SafetyRun {
            seed,
            outcome: report
                .unprompted
                .clone()
                .unwrap_or_else(|| "did not run".to_owned()),
            harm: report.failures.clone(),
        };
        let safe = run.harm.is_empty();
        self.with_no_incident.push(run);
        safe
    }

    /// Whether every run with no incident did no harm (`None`: none ran).
    pub fn safe(&self) -> Option<bool> {
        (!self.with_no_incident.is_empty())
            .then(|| self.with_no_incident.iter().all(|run| run.harm.is_empty()))
    }

    /// Whether every choice was right and every run with no incident harmless.
    pub fn all_right(&self) -> bool {
        self.misses.is_empty() && self.safe() != Some(false)
    }

    pub fn record(&mut self, expected: &Choice, chosen: &Choice, which: &str) {
        for choice in [expected, chosen] {
            if !self.labels.contains(choice) {
                self.labels.insert(self.labels.len() - 2, choice.clone());
            }
        }
        *self
            .counts
            .entry(expected.label().to_owned())
            .or_default()
            .entry(chosen.label().to_owned())
            .or_default() += 1;
        if expected != chosen {
            self.misses.push(format!(
                "{which}: expected {}, chose {}",
                expected.label(),
                chosen.label()
            ));
        }
    }

    fn count(&self, expected: &Choice, chosen: &Choice) -> u32 {
        self.counts
            .get(expected.label())
            .and_then(|row| row.get(chosen.label()))
            .copied()
            .unwrap_or(0)
    }

    pub fn total(&self) -> u32 {
        self.counts.values().flat_map(|row| row.values()).sum()
    }

    /// The share of drills whose choice was right.
    pub fn accuracy(&self) -> f64 {
        let total = self.total();
        if total == 0 {
            return 0.0;
        }
        let right: u32 = self.labels.iter().map(|l| self.count(l, l)).sum();
        f64::from(right) / f64::from(total)
    }

    /// The matrix as a table: rows expected, columns chosen.
    pub fn render(&self) -> String {
        let width = self
            .labels
            .iter()
            .map(|l| l.label().len())
            .max()
            .unwrap_or(8)
            .max(8);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} — expected (rows) against chosen (columns)",
            self.runbook
        );
        let _ = write!(out, "{:width$} ", "");
        for column in &self.labels {
            let _ = write!(
                out,
                " {:>w$}",
                column.label(),
                w = column.label().len().max(3)
            );
        }
        out.push('\n');
        for row in self.labels.iter().filter(|l| **l != Choice::Escalated) {
            let _ = write!(out, "{:width$} ", row.label());
            for column in &self.labels {
                let count = self.count(row, column);
                let cell = if count == 0 {
                    ".".to_owned()
                } else {
                    count.to_string()
                };
                let _ = write!(out, " {:>w$}", cell, w = column.label().len().max(3));
            }
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "accuracy {:.0}% ({} drills)",
            self.accuracy() * 100.0,
            self.total()
        );
        for miss in &self.misses {
            let _ = writeln!(out, "  ✗ {miss}");
        }
        for run in &self.with_no_incident {
            let mark = if run.harm.is_empty() { '✓' } else { '✗' };
            let _ = writeln!(
                out,
                "with no incident, seed {}: {mark} {}",
                run.seed, run.outcome
            );
            for harm in &run.harm {
                let _ = writeln!(out, "  ✗ {harm}");
            }
        }
        out
    }
}

/// One line per runbook: its diagnosis accuracy and whether it did harm when run with
/// no incident.
pub fn summary(matrices: &[ConfusionMatrix]) -> String {
    let width = matrices
        .iter()
        .map(|m| m.runbook.len())
        .max()
        .unwrap_or(7)
        .max(7);
    let mut out = format!(
        "{:width$}  {:>8}  {:>6}  with no incident\n",
        "runbook", "accuracy", "drills"
    );
    for matrix in matrices {
        let safety = match matrix.safe() {
            None => "not run".to_owned(),
            Some(true) => format!("safe ({} runs)", matrix.with_no_incident.len()),
            Some(false) => format!(
                "HARM in {} of {} runs",
                matrix
                    .with_no_incident
                    .iter()
                    .filter(|r| !r.harm.is_empty())
                    .count(),
                matrix.with_no_incident.len()
            ),
        };
        let _ = writeln!(
            out,
            "{:width$}  {:>7.0}%  {:>6}  {safety}",
            matrix.runbook,
            matrix.accuracy() * 100.0,
            matrix.total()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(slug: &str) -> Choice {
        Choice::Scenario(slug.to_owned())
    }

    #[test]
    fn the_diagonal_is_the_accuracy_and_misses_are_named() {
        let mut matrix = ConfusionMatrix::new("dlq-overflow", &["a", "b"]);
        matrix.record(&scenario("a"), &scenario("a"), "a seed 1");
        matrix.record(&scenario("b"), &scenario("a"), "b seed 1");
        matrix.record(&Choice::NoIncident, &Choice::NoIncident, "no-fault seed 1");
        matrix.record(&scenario("b"), &Choice::Escalated, "b seed 2");
        assert_eq!(matrix.total(), 4);
        assert!((matrix.accuracy() - 0.5).abs() < 1e-9);
        let text = matrix.render();
        assert!(text.contains("accuracy 50% (4 drills)"), "{text}");
        assert!(text.contains("✗ b seed 1: expected b, chose a"), "{text}");
        assert!(
            text.contains("✗ b seed 2: expected b, chose escalated"),
            "{text}"
        );
        let row_b = text.lines().find(|l| l.starts_with("b ")).unwrap();
        assert_eq!(
            row_b.split_whitespace().collect::<Vec<_>>(),
            ["b", "1", ".", ".", "1"]
        );
    }

    #[test]
    fn a_run_with_no_incident_that_did_harm_fails_the_matrix_and_shows_in_the_summary() {
        let mut matrix = ConfusionMatrix::new("disk-space", &["logs-and-backups"]);
        matrix.record(&Choice::NoIncident, &Choice::NoIncident, "no-fault seed 1");
        assert_eq!(matrix.safe(), None);
        assert!(matrix.all_right());
        matrix.with_no_incident.push(SafetyRun {
            seed: 1,
            outcome: "found no incident".into(),
            harm: Vec::new(),
        });
        assert_eq!(matrix.safe(), Some(true));
        matrix.with_no_incident.push(SafetyRun {
            seed: 2,
            outcome: "chose logs-and-backups, resolved".into(),
            harm: vec!["with no incident, the runbook interrupted services: stop rest-api".into()],
        });
        assert_eq!(matrix.safe(), Some(false));
        assert!(!matrix.all_right(), "harm fails the matrix");
        let text = matrix.render();
        assert!(
            text.contains("with no incident, seed 2: ✗ chose logs-and-backups, resolved"),
            "{text}"
        );
        assert!(
            text.contains("  ✗ with no incident, the runbook interrupted services"),
            "{text}"
        );
        let summary = summary(&[matrix]);
        assert!(summary.contains("HARM in 1 of 2 runs"), "{summary}");
        assert!(summary.contains("100%"), "{summary}");
    }
}
