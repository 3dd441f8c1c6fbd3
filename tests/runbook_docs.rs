//! The runbook texts in `runbooks/docs/` and the code must agree: if someone edits
//! a threshold, severity, `for` duration or resolution time in one place only,
//! this fails and says which field drifted. And `drill lint` finds in the seed's
//! runbooks what drilling found in them, and nothing in ours.

use std::collections::BTreeMap;
use std::time::Duration;

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
fn every_runbook_text_matches_its_alert_rule() {
    for runbook in runbooks::all() {
        let meta = runbook.meta();
        let rule = &meta.rule;
        let fields = metadata(meta.doc);
        let context = format!("runbooks/docs/{}.md", meta.id());
        let field = |name: &str| {
            fields
                .get(name)
                .unwrap_or_else(|| panic!("{context} has no '{name}' row"))
                .clone()
        };
        assert_eq!(
            field("Alert"),
            rule.name,
            "{context}: the alert name drifted"
        );
        assert_eq!(
            field("Severity"),
            format!("{:?}", rule.severity),
            "{context}: the severity drifted"
        );
        assert_eq!(
            field("Threshold"),
            rule.threshold,
            "{context}: the threshold drifted"
        );
        assert_eq!(
            minutes(&field("For")),
            rule.for_duration,
            "{context}: `for` drifted"
        );
        assert_eq!(
            minutes(&field("Typical resolution")),
            rule.typical_resolution,
            "{context}: the typical resolution drifted"
        );
        assert!(
            meta.doc.starts_with(&format!("# Runbook: {}", meta.title)),
            "{context}: the title drifted"
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
fn every_scenario_budgets_at_most_half_the_typical_resolution_time() {
    // The scenario files are checked against their runbook when they are read (alert,
    // diagnosis); the budget is a target of DESIGN.md: runbook time at most half the
    // runbook's typical resolution time.
    let scenarios =
        harness::scenario::load_all(&harness::scenario::default_dir()).expect("scenarios parse");
    // Where the runbook's own text sets a higher floor, the file says what it is.
    for scenario in scenarios {
        let runbook = runbooks::by_id(&scenario.runbook).expect("a known runbook");
        let explained = scenario
            .expect
            .over_target
            .as_deref()
            .is_some_and(|reason| reason.split_whitespace().count() >= 8);
        assert!(
            scenario.expect.budget() <= runbook.meta().rule.typical_resolution / 2 || explained,
            "{}: the budget must be at most half the typical resolution time, or say in \
             `over_target` what in the runbook sets its floor",
            scenario.path.display()
        );
    }
}

#[test]
fn every_drillable_runbook_has_a_test_target_of_its_own() {
    // One test target per runbook (`cargo test --test dlq_overflow`): adding a runbook
    // means its module, its doc, its scenarios and its test file.
    let tests = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    for runbook in runbooks::all() {
        let target = tests.join(format!("{}.rs", runbook.meta().id().replace('-', "_")));
        assert!(target.is_file(), "{} is missing", target.display());
        let scenarios = harness::scenario::load_all(&harness::scenario::default_dir())
            .expect("scenarios parse");
        assert!(
            scenarios.iter().any(|s| s.runbook == runbook.meta().id()),
            "{} has no scenario file",
            runbook.meta().id()
        );
    }
}

/// `drill lint` on the texts it exists for: the SongNodes runbooks (the project's copy
/// of the seed) must yield every kind of finding that drilling found in them, at the
/// lines where they are, and the project's own runbook texts must yield none.
mod lint {
    use std::path::Path;

    use runbooks::lint::{self, Rule, markdown};

    fn seed() -> String {
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/RUNBOOKS.md"))
            .expect("the seed's runbooks are in fixtures/")
    }

    #[test]
    fn the_seed_shows_each_kind_of_trouble_drilling_found_where_it_is() {
        let findings = lint::lint("RUNBOOKS.md", &seed());
        let at = |rule: Rule| -> Vec<usize> {
            findings
                .iter()
                .filter(|f| f.rule == rule)
                .map(|f| f.line)
                .collect()
        };
        // Every `watch` and the scraper's `logs -f`.
        assert_eq!(
            at(Rule::NeverEnds),
            [105, 311, 327, 387, 413, 432, 664, 681, 813, 861]
        );
        // The DLQ purge "before/2025-10-09".
        assert_eq!(at(Rule::HardCodedDate), [161]);
        // The purge, `docker system prune -f`, the log truncation, the backup deletion and
        // FLUSHDB; the pool's kill says "get approval first" and is not among them.
        assert_eq!(
            at(Rule::DestructiveWithoutApproval),
            [161, 734, 737, 740, 810]
        );
        // `truncate -s 100M` and `cat > /etc/docker/daemon.json`.
        assert_eq!(at(Rule::GrowsOrOverwrites), [737, 750]);
        // The kill at 10 minutes after looking at 30 seconds and 5 minutes.
        assert_eq!(at(Rule::ThresholdMismatch), [647]);
        assert_eq!(
            at(Rule::ExternalUrl),
            [84, 85, 209, 212, 215, 269, 864, 892, 893]
        );
        // Scraper Stalled and API Gateway High Error Rate end without one.
        assert_eq!(at(Rule::NoVerification), [828, 872]);
        // Every endpoint and table the seed names is the stack's.
        assert_eq!(at(Rule::UnknownEndpoint), Vec::<usize>::new());
        assert_eq!(at(Rule::UnknownTable), Vec::<usize>::new());
        assert_eq!(findings.len(), 30, "{findings:#?}");
    }

    #[test]
    fn a_drifted_copy_names_the_endpoint_and_table_that_moved() {
        let drifted = seed()
            .replace("/dlq/errors/grouped", "/dlq/errors/by-type")
            .replace("FROM data_quality_scores", "FROM quality_scores");
        let findings = lint::lint("RUNBOOKS.md", &drifted);
        let endpoints: Vec<&str> = findings
            .iter()
            .filter(|f| f.rule == Rule::UnknownEndpoint)
            .map(|f| f.message.as_str())
            .collect();
        assert!(!endpoints.is_empty());
        assert!(
            endpoints
                .iter()
                .all(|m| m.contains("does not serve GET /dlq/errors/by-type")),
            "{endpoints:#?}"
        );
        assert!(
            findings
                .iter()
                .any(|f| f.rule == Rule::UnknownTable && f.message.contains("'quality_scores'"))
        );
    }

    #[test]
    fn the_projects_runbook_texts_are_clean() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks/docs");
        let mut read = 0;
        for entry in std::fs::read_dir(&dir).expect("runbooks/docs") {
            let path = entry.expect("a directory entry").path();
            if path.extension().is_none_or(|e| e != "md") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("a readable text");
            let runbooks = markdown::parse(&text);
            assert_eq!(runbooks.len(), 1, "{} is one runbook", path.display());
            let findings = lint::lint(&path.display().to_string(), &text);
            assert!(findings.is_empty(), "{findings:#?}");
            read += 1;
        }
        assert_eq!(read, runbooks::all().len(), "one text per drilled runbook");
    }
}
