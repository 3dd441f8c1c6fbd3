//! What drilling showed to be wrong or risky in a runbook's text, as rules over its
//! commands. Each rule is a function from a parsed runbook to findings; [`RULES`] lists
//! them with the one-line description SARIF and `--help` show.

use std::collections::BTreeMap;

use super::markdown::{Command, Runbook};
use super::schema;
use super::{Finding, Rule};

/// Every rule, with what it catches.
pub const RULES: [(Rule, &str); 9] = [
    (
        Rule::NeverEnds,
        "a command that never ends on its own (`watch`, `logs -f`, `tail -f`)",
    ),
    (
        Rule::HardCodedDate,
        "a calendar date written into a command, stale the day after",
    ),
    (
        Rule::DestructiveWithoutApproval,
        "a command that destroys data or work with no approval step before it",
    ),
    (
        Rule::GrowsOrOverwrites,
        "a file operation that grows or replaces what it means to shrink or amend",
    ),
    (
        Rule::ThresholdMismatch,
        "an action taken at another threshold than the query that chose its targets",
    ),
    (
        Rule::UnknownEndpoint,
        "an HTTP endpoint the stack does not serve",
    ),
    (Rule::UnknownTable, "a SQL table the stack's schema lacks"),
    (
        Rule::ExternalUrl,
        "a command that reaches a site outside the deployment",
    ),
    (
        Rule::NoVerification,
        "a runbook with no verification section",
    ),
];

pub fn check(runbook: &Runbook) -> Vec<Finding> {
    let mut findings = Vec::new();
    if !runbook.has_verification {
        findings.push(Finding::new(
            runbook.line,
            Rule::NoVerification,
            format!(
                "runbook '{}' has no verification: nothing says how to know it worked",
                runbook.title
            ),
        ));
    }
    for command in &runbook.commands {
        never_ends(command, &mut findings);
        hard_coded_date(command, &mut findings);
        destructive_without_approval(command, &mut findings);
        grows_or_overwrites(command, &mut findings);
        unknown_endpoint(command, &mut findings);
        unknown_table(command, &mut findings);
        external_url(command, &mut findings);
    }
    threshold_mismatch(runbook, &mut findings);
    findings.sort_by_key(|f| f.line);
    findings
}

fn words(text: &str) -> Vec<&str> {
    text.split_whitespace().collect()
}

fn never_ends(command: &Command, findings: &mut Vec<Finding>) {
    let text = &command.text;
    let w = words(text);
    if w.first() == Some(&"watch") {
        findings.push(Finding::new(
            command.line,
            Rule::NeverEnds,
            "`watch` runs until someone stops it: say how long to watch and what to look \
             for (e.g. `timeout 10m sh -c 'until …; do sleep 30; done'`)",
        ));
        return;
    }
    let follows = w.iter().any(|x| *x == "-f" || *x == "--follow");
    if follows && w.iter().any(|x| *x == "logs" || *x == "tail") {
        findings.push(Finding::new(
            command.line,
            Rule::NeverEnds,
            "follows the log forever: use `--tail=N` or `--since`, or bound it with `timeout`",
        ));
    }
}

fn hard_coded_date(command: &Command, findings: &mut Vec<Finding>) {
    let text = command.full_text();
    let bytes = text.as_bytes();
    for start in 0..bytes.len().saturating_sub(9) {
        let candidate = &bytes[start..start + 10];
        let digits = |r: std::ops::Range<usize>| candidate[r].iter().all(u8::is_ascii_digit);
        let boundary_before = start == 0 || !bytes[start - 1].is_ascii_digit();
        let boundary_after = bytes.get(start + 10).is_none_or(|b| !b.is_ascii_digit());
        if digits(0..4)
            && candidate[4] == b'-'
            && digits(5..7)
            && candidate[7] == b'-'
            && digits(8..10)
            && boundary_before
            && boundary_after
        {
            let date = String::from_utf8_lossy(candidate);
            findings.push(Finding::new(
                command.line,
                Rule::HardCodedDate,
                format!(
                    "the date {date} is written into the command: it acts on another set \
                     every day after; compute it (`$(date -d '7 days ago' +%F)`) or use \
                     `NOW() - INTERVAL …`"
                ),
            ));
            return;
        }
    }
}

/// What a destructive command destroys, if it is one.
fn destroys(command: &Command) -> Option<&'static str> {
    let text = command.full_text();
    let upper = text.to_ascii_uppercase();
    let w = words(&command.text);
    let has = |needle: &str| text.contains(needle);
    if has("-X DELETE") || has("--request DELETE") {
        Some("what the HTTP DELETE names")
    } else if upper.contains("DELETE FROM") {
        Some("rows deleted by SQL")
    } else if upper.contains("DROP TABLE") || upper.contains("TRUNCATE TABLE") {
        Some("a table")
    } else if has("pg_terminate_backend") {
        Some("database sessions and their transactions")
    } else if upper.contains("FLUSHDB") || upper.contains("FLUSHALL") {
        Some("everything in Redis")
    } else if has("system prune") || has("volume prune") || has("volume rm") {
        Some("docker images, containers or volumes")
    } else if w.first() == Some(&"find") && w.contains(&"-delete") {
        Some("the files `find` matches")
    } else if w.first() == Some(&"rm") {
        Some("files")
    } else if w.first() == Some(&"truncate") {
        Some("the files' contents")
    } else {
        None
    }
}

fn mentions_approval(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    ["approv", "confirm", "sign-off", "sign off"]
        .iter()
        .any(|word| lower.contains(word))
}

fn destructive_without_approval(command: &Command, findings: &mut Vec<Finding>) {
    let Some(what) = destroys(command) else {
        return;
    };
    let approved = command.comments.iter().any(|c| mentions_approval(c))
        || command.scenario.as_deref().is_some_and(mentions_approval);
    if !approved {
        findings.push(Finding::new(
            command.line,
            Rule::DestructiveWithoutApproval,
            format!(
                "destroys {what} with no approval before it: say who approves \
                 (\"get approval first\") and what is lost"
            ),
        ));
    }
}

fn grows_or_overwrites(command: &Command, findings: &mut Vec<Finding>) {
    let w = words(&command.text);
    if w.first() == Some(&"truncate")
        && let Some(size) = w
            .iter()
            .position(|x| *x == "-s" || *x == "--size")
            .and_then(|i| w.get(i + 1))
        && !matches!(
            size.trim_matches(['\'', '"']).chars().next(),
            Some('0' | '-' | '<')
        )
    {
        findings.push(Finding::new(
            command.line,
            Rule::GrowsOrOverwrites,
            format!(
                "`truncate -s {size}` sets every file to {size}: it grows the smaller ones \
                 and cuts the larger ones' newest lines; `-s 0` empties, `-s '<{size}'` \
                 only shrinks"
            ),
        ));
    }
    if let Some(target) = overwritten_file(&w)
        && target.starts_with("/etc/")
    {
        findings.push(Finding::new(
            command.line,
            Rule::GrowsOrOverwrites,
            format!(
                "`> {target}` replaces the whole file: settings already in it are lost; \
                 merge the change in (e.g. with `jq`) and keep a copy"
            ),
        ));
    }
}

/// The file a `>` (not `>>`) redirection writes, if any.
fn overwritten_file<'a>(w: &[&'a str]) -> Option<&'a str> {
    let at = w.iter().position(|x| *x == ">")?;
    w.get(at + 1).copied()
}

fn unknown_endpoint(command: &Command, findings: &mut Vec<Finding>) {
    for (method, port, path) in command.local_requests() {
        match schema::service_at(port) {
            None => findings.push(Finding::new(
                command.line,
                Rule::UnknownEndpoint,
                format!("nothing of the stack listens on port {port}"),
            )),
            Some(service) if !schema::serves(port, &method, &path) => findings.push(Finding::new(
                command.line,
                Rule::UnknownEndpoint,
                format!("{service} (port {port}) does not serve {method} {path}"),
            )),
            Some(_) => {}
        }
    }
}

fn unknown_table(command: &Command, findings: &mut Vec<Finding>) {
    let Some((line, sql)) = &command.heredoc else {
        return;
    };
    if !command.text.contains("psql") {
        return;
    }
    for table in schema::tables_named(sql) {
        if !schema::has_table(&table) {
            findings.push(Finding::new(
                *line,
                Rule::UnknownTable,
                format!("table '{table}' is not in the stack's schema"),
            ));
        }
    }
}

fn external_url(command: &Command, findings: &mut Vec<Finding>) {
    for word in words(&command.text) {
        let word = word.trim_matches(['\'', '"']);
        let Some(rest) = word
            .strip_prefix("https://")
            .or_else(|| word.strip_prefix("http://"))
        else {
            continue;
        };
        let host = rest.split(['/', ':']).next().unwrap_or("");
        if host == "localhost" || host == "127.0.0.1" || host.is_empty() {
            continue;
        }
        let from = if command.text.contains(" exec ") {
            "from inside a service"
        } else {
            "from the operator's shell, not from where the services call it"
        };
        findings.push(Finding::new(
            command.line,
            Rule::ExternalUrl,
            format!(
                "reaches {host}, outside the deployment, {from}: a drill answers it with a \
                 stand-in, and a read-only check of production does not call it"
            ),
        ));
    }
}

/// A comparison `NOW() - <column> > INTERVAL '<value>'` in a SQL statement.
fn interval_comparisons(sql: &str) -> Vec<(String, String)> {
    let flat = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut found = Vec::new();
    let mut rest = flat.as_str();
    while let Some(at) = rest.find("NOW() - ") {
        rest = &rest[at + "NOW() - ".len()..];
        let column: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
            .collect();
        let after = rest[column.len()..].trim_start();
        if let Some(value) = after
            .strip_prefix("> INTERVAL '")
            .and_then(|v| v.split_once('\''))
            .map(|(v, _)| v)
        {
            found.push((column, value.to_owned()));
        }
    }
    found
}

fn mutates(sql: &str) -> bool {
    let upper = sql.to_ascii_uppercase();
    upper.contains("PG_TERMINATE_BACKEND")
        || upper.contains("DELETE FROM")
        || upper.contains("UPDATE ")
}

fn threshold_mismatch(runbook: &Runbook, findings: &mut Vec<Finding>) {
    // Per column: the thresholds of the statements that only look.
    let mut looked: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
    let mut acted: Vec<(usize, String, String)> = Vec::new();
    for command in &runbook.commands {
        let Some((line, sql)) = &command.heredoc else {
            continue;
        };
        for (column, value) in interval_comparisons(sql) {
            if mutates(sql) {
                acted.push((*line, column, value));
            } else {
                looked.entry(column).or_default().push((*line, value));
            }
        }
    }
    for (line, column, value) in acted {
        let Some(others) = looked.get(&column) else {
            continue;
        };
        let differing: Vec<String> = others
            .iter()
            .filter(|(_, v)| *v != value)
            .map(|(l, v)| format!("'{v}' on line {l}"))
            .collect();
        if !differing.is_empty() {
            findings.push(Finding::new(
                line,
                Rule::ThresholdMismatch,
                format!(
                    "acts on NOW() - {column} > '{value}', but the runbook looked at {}: \
                     what was investigated is not what is acted on",
                    differing.join(" and ")
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::markdown::parse;
    use super::*;

    fn findings(body: &str) -> Vec<(Rule, usize)> {
        let text = format!(
            "## Runbook: T\n\n### Resolution Steps\n\n```bash\n{body}\n```\n\n### Verification\n"
        );
        let runbooks = parse(&text);
        check(&runbooks[0])
            .into_iter()
            .map(|f| (f.rule, f.line))
            .collect()
    }

    #[test]
    fn endless_commands() {
        assert_eq!(findings("watch -n 30 'free -h'"), [(Rule::NeverEnds, 6)]);
        assert_eq!(
            findings("docker compose logs scraper -f"),
            [(Rule::NeverEnds, 6)]
        );
        assert!(findings("docker compose logs scraper --tail=100").is_empty());
    }

    #[test]
    fn dates_and_destruction_without_approval() {
        let found = findings("curl -X DELETE http://localhost:8024/dlq/messages/before/2025-10-09");
        assert_eq!(
            found,
            [
                (Rule::HardCodedDate, 6),
                (Rule::DestructiveWithoutApproval, 6)
            ]
        );
        assert!(
            findings(
                "# purge (get approval first)\ncurl -X DELETE http://localhost:8024/dlq/messages/before/$(date +%F)"
            )
            .is_empty()
        );
    }

    #[test]
    fn truncating_to_a_size_and_overwriting_config() {
        let found = findings("truncate -s 100M /var/log/*.log");
        assert!(found.contains(&(Rule::GrowsOrOverwrites, 6)), "{found:?}");
        let emptied = findings("# approved by on-call\ntruncate -s 0 /var/log/*.log");
        assert!(emptied.is_empty(), "{emptied:?}");
        let found = findings("cat > /etc/docker/daemon.json << EOF\n{}\nEOF");
        assert_eq!(found, [(Rule::GrowsOrOverwrites, 6)]);
    }

    #[test]
    fn endpoints_and_tables_are_checked_against_the_stack() {
        assert!(findings("curl http://localhost:8024/dlq/stats | jq .total_messages").is_empty());
        assert_eq!(
            findings("curl http://localhost:8024/dlq/statistics"),
            [(Rule::UnknownEndpoint, 6)]
        );
        assert_eq!(
            findings("curl http://localhost:9999/x"),
            [(Rule::UnknownEndpoint, 6)]
        );
        assert_eq!(
            findings("psql -h localhost -p 5433 << EOF\nSELECT * FROM trakcs;\nEOF"),
            [(Rule::UnknownTable, 7)]
        );
        assert!(
            findings(
                "psql -h localhost << EOF\nSELECT t.track_id FROM tracks t JOIN data_quality_scores dq ON t.track_id = dq.track_id;\nEOF"
            )
            .is_empty()
        );
    }

    #[test]
    fn acting_at_another_threshold_than_was_looked_at() {
        let body = "\
psql << EOF
SELECT pid FROM pg_stat_activity WHERE NOW() - query_start > INTERVAL '5 minutes';
EOF
# kill (get approval first)
psql << EOF
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE NOW() - query_start > INTERVAL '10 minutes';
EOF";
        assert_eq!(findings(body), [(Rule::ThresholdMismatch, 11)]);
        let same = body.replace("10 minutes", "5 minutes");
        assert!(findings(&same).is_empty());
    }

    #[test]
    fn external_sites_and_missing_verification() {
        assert_eq!(
            findings("curl -I https://api.spotify.com/v1/search"),
            [(Rule::ExternalUrl, 6)]
        );
        let runbooks = parse("## Runbook: T\n\n### Resolution Steps\n");
        let found: Vec<Rule> = check(&runbooks[0]).into_iter().map(|f| f.rule).collect();
        assert_eq!(found, [Rule::NoVerification]);
    }
}
