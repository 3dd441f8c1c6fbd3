//! What `drill check` found, as text, JSON or JUnit.

use std::fmt::{self, Write as _};

use serde::Serialize;

/// How one command of a runbook fared against the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Works,
    /// The target did not answer as the runbook expects.
    Broken,
    /// It would have changed the target; the read-only layers stopped it.
    Refused,
    /// The target names no way to do it (no orchestrator, no host view).
    Unavailable,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Works => "works",
            Status::Broken => "BROKEN",
            Status::Refused => "refused (read-only)",
            Status::Unavailable => "not checked",
        })
    }
}

/// An alert rule's probe, read once.
#[derive(Clone, Debug, Serialize)]
pub struct RuleCheck {
    pub alert: String,
    pub threshold: String,
    pub status: Status,
    pub reading: Option<String>,
    /// Whether its condition holds now (it fires once it has held for its `for`).
    pub condition_holds: Option<bool>,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct StepCheck {
    pub title: String,
    pub command: Option<String>,
    /// The line of the runbook text (`RUNBOOKS.md`) the command is written on.
    pub line: Option<usize>,
    pub status: Status,
    pub detail: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct CriterionCheck {
    pub name: String,
    pub command: String,
    pub line: Option<usize>,
    pub status: Status,
    pub detail: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunbookCheck {
    pub runbook: String,
    pub steps: Vec<StepCheck>,
    /// What the investigation concluded, or where it stopped.
    pub conclusion: String,
    pub criteria: Vec<CriterionCheck>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    pub target: String,
    pub rules: Vec<RuleCheck>,
    pub runbooks: Vec<RunbookCheck>,
}

impl CheckReport {
    /// The checks of one runbook, by id.
    pub fn runbook(&self, id: &str) -> Option<&RunbookCheck> {
        self.runbooks.iter().find(|r| r.runbook == id)
    }

    /// Every broken command, as `runbook: what`.
    pub fn broken(&self) -> Vec<String> {
        let mut broken: Vec<String> = self
            .rules
            .iter()
            .filter(|r| r.status == Status::Broken)
            .map(|r| format!("alert {}: {}", r.alert, r.error.as_deref().unwrap_or("")))
            .collect();
        for runbook in &self.runbooks {
            for step in runbook.steps.iter().filter(|s| s.status == Status::Broken) {
                broken.push(format!(
                    "{}{}: {}: {}",
                    at_line(step.line),
                    runbook.runbook,
                    step.title,
                    step.detail
                ));
            }
            for criterion in runbook
                .criteria
                .iter()
                .filter(|c| c.status == Status::Broken)
            {
                broken.push(format!(
                    "{}{}: verification '{}': {}",
                    at_line(criterion.line),
                    runbook.runbook,
                    criterion.name,
                    criterion.detail
                ));
            }
        }
        broken
    }

    pub fn render(&self) -> String {
        let mut out = format!("check of {}\n\nalert rules, read once:\n", self.target);
        for rule in &self.rules {
            let _ = match (&rule.reading, rule.condition_holds, &rule.error) {
                (Some(reading), Some(holds), _) => writeln!(
                    out,
                    "  {} {:<26} {reading} ({}: {})",
                    if holds { "!" } else { "✓" },
                    rule.alert,
                    rule.threshold,
                    if holds { "holds now" } else { "does not hold" }
                ),
                (_, _, Some(error)) => writeln!(
                    out,
                    "  {} {:<26} {}: {error}",
                    mark(rule.status),
                    rule.alert,
                    rule.status
                ),
                _ => Ok(()),
            };
        }
        for runbook in &self.runbooks {
            let _ = writeln!(out, "\nrunbook {}:", runbook.runbook);
            for step in &runbook.steps {
                let _ = writeln!(
                    out,
                    "  {} {} — {}: {}",
                    mark(step.status),
                    step.title,
                    step.status,
                    one_line(&step.detail)
                );
                if let Some(command) = &step.command {
                    for line in command.lines() {
                        let _ = writeln!(out, "      $ {line}");
                    }
                }
                if let Some(line) = step.line {
                    let _ = writeln!(out, "      (written at {RUNBOOKS}:{line})");
                }
            }
            let _ = writeln!(out, "  → {}", one_line(&runbook.conclusion));
            for criterion in &runbook.criteria {
                let _ = writeln!(
                    out,
                    "  {} verification '{}' — {}: {}",
                    mark(criterion.status),
                    criterion.name,
                    criterion.status,
                    one_line(&criterion.detail)
                );
            }
        }
        let broken = self.broken();
        let _ = writeln!(
            out,
            "\n{}",
            if broken.is_empty() {
                "every command checked works against the target".to_owned()
            } else {
                format!("{} broken command(s)", broken.len())
            }
        );
        out
    }

    /// JUnit XML: a suite per runbook (and one for the alert rules), a case per step
    /// and criterion; broken ones fail, the rest pass or are skipped.
    pub fn junit(&self) -> String {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            out,
            "<testsuites name=\"drill check {}\">",
            xml(&self.target)
        );
        let _ = writeln!(out, "  <testsuite name=\"alert rules\">");
        for rule in &self.rules {
            let _ = write!(out, "    <testcase name=\"{}\">", xml(&rule.alert));
            let error = xml(rule.error.as_deref().unwrap_or(""));
            let _ = match rule.status {
                Status::Works => Ok(()),
                Status::Broken => write!(out, "<failure message=\"{error}\"/>"),
                Status::Refused | Status::Unavailable => {
                    write!(out, "<skipped message=\"{}: {error}\"/>", rule.status)
                }
            };
            out.push_str("</testcase>\n");
        }
        out.push_str("  </testsuite>\n");
        for runbook in &self.runbooks {
            let _ = writeln!(out, "  <testsuite name=\"{}\">", xml(&runbook.runbook));
            let cases = runbook
                .steps
                .iter()
                .map(|s| (s.title.as_str(), s.status, s.detail.as_str()))
                .chain(
                    runbook
                        .criteria
                        .iter()
                        .map(|c| (c.name.as_str(), c.status, c.detail.as_str())),
                );
            for (name, status, detail) in cases {
                let _ = write!(out, "    <testcase name=\"{}\">", xml(name));
                let _ = match status {
                    Status::Works => Ok(()),
                    Status::Broken => write!(out, "<failure message=\"{}\"/>", xml(detail)),
                    Status::Refused | Status::Unavailable => {
                        write!(out, "<skipped message=\"{}: {}\"/>", status, xml(detail))
                    }
                };
                out.push_str("</testcase>\n");
            }
            out.push_str("  </testsuite>\n");
        }
        out.push_str("</testsuites>\n");
        out
    }

    /// [`CheckReport::junit`] with a suite for twin fidelity (`--compare-twin`): one
    /// passing case when the target has the twin's shape, else a failing case per
    /// difference, named by what differs where.
    pub fn junit_with_fidelity(&self, differences: &[super::shape::Difference]) -> String {
        let mut out = self.junit();
        out.truncate(out.len() - "</testsuites>\n".len());
        let _ = writeln!(out, "  <testsuite name=\"twin fidelity\">");
        if differences.is_empty() {
            out.push_str("    <testcase name=\"the target has the twin's shape\"></testcase>\n");
        }
        for difference in differences {
            let _ = writeln!(
                out,
                "    <testcase name=\"{} {}\"><failure message=\"{}\"/></testcase>",
                difference.kind,
                xml(&difference.place),
                xml(&difference.what)
            );
        }
        out.push_str("  </testsuite>\n</testsuites>\n");
        out
    }
}

/// The runbook text the lines refer to.
pub const RUNBOOKS: &str = "RUNBOOKS.md";

/// `RUNBOOKS.md:612: `, compiler style, when the line is known.
fn at_line(line: Option<usize>) -> String {
    line.map_or_else(String::new, |line| format!("{RUNBOOKS}:{line}: "))
}

fn mark(status: Status) -> &'static str {
    match status {
        Status::Works => "✓",
        Status::Broken => "✗",
        Status::Refused => "⊘",
        Status::Unavailable => "·",
    }
}

fn one_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() > 160 {
        format!("{}…", line.chars().take(160).collect::<String>())
    } else {
        line.to_owned()
    }
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
