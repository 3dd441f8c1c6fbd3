//! `drill lint`: what drilling showed to be wrong or risky in a runbook, found in its
//! text before a drill or an incident finds it.
//!
//! Drills find a runbook's faults by running it; many of them are visible in the text
//! alone once one knows to look: a `watch` that never ends, a purge with a date written
//! into it, a `truncate -s 100M` that grows the small logs it meant to shrink, a kill
//! at another threshold than the query that chose its targets, an endpoint or a table
//! the stack does not have. The linter reads runbooks as the seed writes them
//! ([`markdown`]), applies [`rules`] (endpoints and tables checked against the stack,
//! [`schema`]) and reports compiler style, as JSON, or as SARIF for CI annotations.

pub mod markdown;
pub mod rules;
pub mod schema;

use std::fmt;

use serde::Serialize;
use serde_json::json;

/// A kind of finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    NeverEnds,
    HardCodedDate,
    DestructiveWithoutApproval,
    GrowsOrOverwrites,
    ThresholdMismatch,
    UnknownEndpoint,
    UnknownTable,
    ExternalUrl,
    NoVerification,
}

impl Rule {
    /// The rule's name in reports (`never-ends`).
    pub fn id(self) -> &'static str {
        match self {
            Rule::NeverEnds => "never-ends",
            Rule::HardCodedDate => "hard-coded-date",
            Rule::DestructiveWithoutApproval => "destructive-without-approval",
            Rule::GrowsOrOverwrites => "grows-or-overwrites",
            Rule::ThresholdMismatch => "threshold-mismatch",
            Rule::UnknownEndpoint => "unknown-endpoint",
            Rule::UnknownTable => "unknown-table",
            Rule::ExternalUrl => "external-url",
            Rule::NoVerification => "no-verification",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// One finding, at a line of a file.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    pub file: String,
    pub line: usize,
    pub rule: Rule,
    /// The runbook the line belongs to.
    pub runbook: String,
    pub message: String,
}

impl Finding {
    fn new(line: usize, rule: Rule, message: impl Into<String>) -> Self {
        Self {
            file: String::new(),
            line,
            rule,
            runbook: String::new(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Finding {
    /// `file:line: warning[rule]: message`, as compilers write it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: warning[{}]: {} ({})",
            self.file, self.line, self.rule, self.message, self.runbook
        )
    }
}

/// The findings of one Markdown file, in line order.
pub fn lint(file: &str, text: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    for runbook in markdown::parse(text) {
        for mut finding in rules::check(&runbook) {
            finding.file = file.to_owned();
            finding.runbook = runbook.title.clone();
            findings.push(finding);
        }
    }
    findings
}

/// The findings as JSON (an array of objects).
pub fn to_json(findings: &[Finding]) -> serde_json::Value {
    json!(findings)
}

/// The findings as SARIF 2.1.0, which CI systems turn into annotations.
pub fn to_sarif(findings: &[Finding]) -> serde_json::Value {
    let rules: Vec<serde_json::Value> = rules::RULES
        .iter()
        .map(|(rule, description)| {
            json!({
                "id": rule.id(),
                "shortDescription": { "text": description },
            })
        })
        .collect();
    let results: Vec<serde_json::Value> = findings
        .iter()
        .map(|f| {
            json!({
                "ruleId": f.rule.id(),
                "level": "warning",
                "message": { "text": format!("{} ({})", f.message, f.runbook) },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": f.file },
                        "region": { "startLine": f.line },
                    }
                }],
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "drill lint",
                "rules": rules,
            }},
            "results": results,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_read_like_a_compilers() {
        let text = "## Runbook: T\n\n### Resolution Steps\n\n```bash\nwatch -n 5 'free -h'\n```\n";
        let findings = lint("RUNBOOKS.md", text);
        let lines: Vec<String> = findings.iter().map(ToString::to_string).collect();
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert!(lines[0].starts_with("RUNBOOKS.md:1: warning[no-verification]: "));
        assert!(lines[1].starts_with("RUNBOOKS.md:6: warning[never-ends]: `watch`"));
        assert!(lines[1].ends_with("(T)"));
    }

    #[test]
    fn sarif_names_every_rule_and_locates_every_result() {
        let text = "## Runbook: T\n\n```bash\nwatch free\n```\n";
        let sarif = to_sarif(&lint("R.md", text));
        let run = &sarif["runs"][0];
        assert_eq!(
            run["tool"]["driver"]["rules"].as_array().map(Vec::len),
            Some(rules::RULES.len())
        );
        let result = &run["results"][1];
        assert_eq!(result["ruleId"], "never-ends");
        assert_eq!(
            result["locations"][0]["physicalLocation"]["region"]["startLine"],
            4
        );
    }
}
