//! The runbook texts in `runbooks/docs/` and the code must agree: if someone edits
//! a threshold, severity, `for` duration or resolution time in one place only,
//! this fails and says which field drifted.

use std::collections::BTreeMap;
use std::time::Duration;

use harness::alerts::rules;

/// The `| Field | Value |` table at the top of a runbook text.
fn metadata(doc: &str) -> BTreeMap<String, String> {
    doc.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            (cells.len() == 4
                && !cells[1].is_empty()
                && !cells[1].starts_with("---")
                && cells[1] != "Field")
                .then(|| (cells[1].to_owned(), cells[2].trim_matches('`').to_owned()))
        })
        .collect()
}

fn minutes(text: &str) -> Duration {
    let number: f64 = text
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("'{text}' does not start with a number of minutes"));
    Duration::from_secs_f64(number * 60.0)
}

#[test]
fn every_runbook_text_matches_its_code_and_its_alert_rule() {
    for runbook in runbooks::all() {
        let meta = runbook.meta();
        let fields = metadata(meta.doc);
        let field = |name: &str| {
            fields
                .get(name)
                .unwrap_or_else(|| panic!("runbooks/docs/{}.md has no '{name}' row", meta.id))
                .clone()
        };
        let rule = rules()
            .into_iter()
            .find(|r| r.name == meta.alert)
            .unwrap_or_else(|| panic!("no alert rule named {}", meta.alert));
        let context = format!("runbooks/docs/{}.md", meta.id);
        assert_eq!(
            field("Alert"),
            meta.alert,
            "{context}: alert name drifted from the code"
        );
        assert_eq!(
            field("Severity"),
            format!("{:?}", meta.severity),
            "{context}: severity drifted from the code"
        );
        assert_eq!(
            format!("{:?}", rule.severity),
            field("Severity"),
            "{context}: severity drifted from the alert rule"
        );
        assert_eq!(
            field("Threshold"),
            meta.threshold,
            "{context}: threshold drifted from the code"
        );
        assert_eq!(
            field("Threshold"),
            rule.threshold,
            "{context}: threshold drifted from the alert rule"
        );
        assert_eq!(
            minutes(&field("For")),
            rule.for_duration,
            "{context}: `for` drifted from the alert rule"
        );
        assert_eq!(
            minutes(&field("Typical resolution")),
            meta.typical_resolution,
            "{context}: typical resolution drifted from the code"
        );
        assert_eq!(
            rule.typical_resolution, meta.typical_resolution,
            "{context}: typical resolution drifted from the alert rule"
        );
        assert_eq!(
            rule.runbook, meta.id,
            "{context}: the alert rule points at another runbook"
        );
    }
}

#[test]
fn the_metadata_table_is_read_field_by_field() {
    let doc = "| Field | Value |\n|---|---|\n| Alert | `X` |\n| For | 5 minutes |\n";
    let fields = metadata(doc);
    assert_eq!(fields.get("Alert").map(String::as_str), Some("X"));
    assert_eq!(minutes(&fields["For"]), Duration::from_secs(300));
}

#[test]
fn every_scenario_file_names_a_known_runbook_alert_and_scenario() {
    let scenarios = harness::scenario::load_all(&harness::scenario::default_dir()).unwrap();
    for scenario in scenarios {
        let runbook = runbooks::by_id(&scenario.runbook)
            .unwrap_or_else(|e| panic!("{}: {e}", scenario.path.display()));
        let meta = runbook.meta();
        assert_eq!(
            scenario.expect.alert,
            meta.alert,
            "{}: wrong alert",
            scenario.path.display()
        );
        assert!(
            meta.scenario(scenario.expect.diagnosis).is_some(),
            "{}: {} has no scenario {}",
            scenario.path.display(),
            meta.id,
            scenario.expect.diagnosis
        );
        assert!(
            scenario.expect.budget() <= meta.typical_resolution / 2,
            "{}: the budget must be at most half the typical resolution time",
            scenario.path.display()
        );
    }
}
