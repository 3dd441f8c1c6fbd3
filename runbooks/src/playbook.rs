//! The runbook as written: its steps for one scenario, and which of them an action was.
//!
//! A game day sets what the responder did beside what the runbook says to do, and
//! `drill check` names the line each command it ran came from. The
//! steps come from the runbook text itself (`fixtures/RUNBOOKS.md`, the seed's
//! runbooks), read with the linter's parser: the investigation, the drawn scenario's
//! resolution and the verification. A step the stack can observe is a request to a
//! service (`curl`), a SQL statement (`psql`) or a compose action; the rest (`watch`,
//! `df -h`, `redis-cli`) is listed but cannot be told done or skipped.

use crate::lint::markdown::{self, Part};
use serde::{Deserialize, Serialize};

/// The runbooks as the seed writes them.
const RUNBOOKS_TEXT: &str = include_str!("../../fixtures/RUNBOOKS.md");

/// How an action is recognised as a step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Matcher {
    /// A request to a service (named as in compose) at a path (no query).
    Http {
        service: String,
        method: String,
        path: String,
    },
    /// A SQL statement, normalised ([`normalise_sql`]).
    Sql { statement: String },
    /// `docker compose <verb> <services>`.
    Compose { verb: String, services: Vec<String> },
    /// Nothing the stack can see (`watch`, `df -h`, `redis-cli`, comments).
    Unobservable,
}

/// One step of the runbook text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WrittenStep {
    /// Its place among the scenario's steps, from 0.
    pub index: usize,
    /// Line of `RUNBOOKS.md`.
    pub line: usize,
    pub part: &'static str,
    /// The command as written (first line).
    pub text: String,
    pub matcher: Matcher,
}

/// How closely an action follows a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fidelity {
    AsWritten,
    /// The same statement kind over the same tables, with changes (a narrower WHERE).
    Amended,
}

/// What an observed action was, in a form a step can be matched against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observed<'a> {
    Http {
        service: &'a str,
        method: &'a str,
        path: &'a str,
    },
    Sql(&'a str),
    Compose {
        verb: &'a str,
        services: &'a [String],
    },
}

/// The steps of `runbook_title` for the scenario lettered `scenario` (its
/// investigation, that scenario's resolution and steps common to all, and its
/// verification), in the order written. Empty if the text has no such runbook.
pub fn steps_for(runbook_title: &str, scenario: Option<char>) -> Vec<WrittenStep> {
    let runbooks = markdown::parse(RUNBOOKS_TEXT);
    let Some(runbook) = runbooks.iter().find(|r| r.title == runbook_title) else {
        return Vec::new();
    };
    let mut steps = Vec::new();
    for command in &runbook.commands {
        let part = match command.part {
            Part::Investigation => "investigation",
            Part::Resolution => "resolution",
            Part::Verification => "verification",
            Part::Symptoms | Part::Other => continue,
        };
        if command.part == Part::Resolution
            && let (Some(heading), Some(letter)) = (&command.scenario, scenario)
            && !heading.starts_with(&format!("Scenario {letter}"))
        {
            continue;
        }
        for matcher in matchers(command) {
            steps.push(WrittenStep {
                index: steps.len(),
                line: command.line,
                part,
                text: command.text.lines().next().unwrap_or_default().to_owned(),
                matcher,
            });
        }
    }
    steps
}

/// One matcher per thing the command asks of the stack.
fn matchers(command: &markdown::Command) -> Vec<Matcher> {
    let requests: Vec<Matcher> = command
        .local_requests()
        .into_iter()
        .filter_map(|(method, port, path)| {
            let service = crate::lint::schema::service_at(port)?;
            Some(Matcher::Http {
                service: service.to_owned(),
                method,
                path,
            })
        })
        .collect();
    if !requests.is_empty() {
        return requests;
    }
    if let Some(sql) = command.sql() {
        let statements: Vec<Matcher> = sql
            .split(';')
            .map(normalise_sql)
            .filter(|s| !s.is_empty())
            .map(|statement| Matcher::Sql { statement })
            .collect();
        if !statements.is_empty() {
            return statements;
        }
    }
    if let Some((verb, services)) = command.compose() {
        return vec![Matcher::Compose { verb, services }];
    }
    vec![Matcher::Unobservable]
}

/// Lower case, one space between words, no trailing semicolon, no `--` comments.
pub fn normalise_sql(sql: &str) -> String {
    sql.lines()
        .map(|line| line.split("--").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .trim_end_matches(';')
        .trim()
        .to_ascii_lowercase()
}

/// The step an action was, and how closely it followed it; the first step it
/// matches as written wins, else the step whose SQL it is most like.
pub fn match_action(steps: &[WrittenStep], action: &Observed<'_>) -> Option<(usize, Fidelity)> {
    let mut amended: Option<(usize, f64)> = None;
    for step in steps {
        match (&step.matcher, action) {
            (
                Matcher::Http {
                    service,
                    method,
                    path,
                },
                Observed::Http {
                    service: s,
                    method: m,
                    path: p,
                },
            ) if service == s
                && method.eq_ignore_ascii_case(m)
                && same_route(service, m, path, p) =>
            {
                return Some((step.index, Fidelity::AsWritten));
            }
            (Matcher::Sql { statement }, Observed::Sql(sql)) => {
                let sql = normalise_sql(sql);
                if *statement == sql {
                    return Some((step.index, Fidelity::AsWritten));
                }
                if let Some(likeness) = likeness(statement, &sql)
                    && amended.is_none_or(|(_, best)| likeness > best)
                {
                    amended = Some((step.index, likeness));
                }
            }
            (
                Matcher::Compose { verb, services },
                Observed::Compose {
                    verb: v,
                    services: s,
                },
            ) if verb == v && (services.is_empty() || s.iter().all(|x| services.contains(x))) => {
                return Some((step.index, Fidelity::AsWritten));
            }
            _ => {}
        }
    }
    amended.map(|(index, _)| (index, Fidelity::Amended))
}

/// The same path, or two paths of one route (`/dlq/messages/before/{date}`).
fn same_route(service: &str, method: &str, written: &str, done: &str) -> bool {
    let done = done.split('?').next().unwrap_or(done);
    written.trim_end_matches('/') == done.trim_end_matches('/')
        || crate::lint::schema::route(service, method, written)
            .is_some_and(|r| crate::lint::schema::route(service, method, done) == Some(r))
}

/// How alike two statements are (the share of words they have in common), if they
/// are alike at all: same first word, same tables, most words in common.
fn likeness(written: &str, done: &str) -> Option<f64> {
    let first = |s: &str| s.split_whitespace().next().map(str::to_owned);
    if first(written) != first(done) {
        return None;
    }
    let tables = |s: &str| {
        let mut t = crate::lint::schema::tables_named(s);
        t.sort();
        t
    };
    if tables(written) != tables(done) {
        return None;
    }
    let words = |s: &str| {
        s.split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect::<std::collections::BTreeSet<_>>()
    };
    let (a, b) = (words(written), words(done));
    let common = a.intersection(&b).count() as f64;
    let all = a.union(&b).count().max(1) as f64;
    let share = common / all;
    (share >= 0.6).then_some(share)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_runbooks_steps_for_scenario_b_leave_out_a_and_c() {
        let steps = steps_for("Database Connection Pool Exhaustion", Some('B'));
        assert!(!steps.is_empty());
        let restart = Matcher::Compose {
            verb: "restart".into(),
            services: vec!["rest-api".into(), "graph-api".into()],
        };
        assert!(
            steps
                .iter()
                .any(|s| s.matcher == restart && s.part == "resolution")
        );
        assert!(
            !steps.iter().any(|s| matches!(&s.matcher, Matcher::Sql { statement } if statement.contains("pg_terminate_backend"))),
            "scenario A's kill is not a step of B"
        );
        let a = steps_for("Database Connection Pool Exhaustion", Some('A'));
        assert!(a.iter().any(|s| matches!(&s.matcher, Matcher::Sql { statement } if statement.contains("pg_terminate_backend"))));
        assert!(steps_for("No Such Runbook", None).is_empty());
    }

    #[test]
    fn actions_match_their_steps_as_written_or_amended() {
        let steps = steps_for("Database Connection Pool Exhaustion", Some('A'));
        let kill = "SELECT pg_terminate_backend(pid)\nFROM pg_stat_activity\nWHERE state != 'idle'\n  AND NOW() - query_start > INTERVAL '10 minutes';";
        let (index, fidelity) = match_action(&steps, &Observed::Sql(kill)).expect("the kill");
        assert_eq!(fidelity, Fidelity::AsWritten);
        assert_eq!(steps[index].part, "resolution");
        let careful = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE state != 'idle' AND NOW() - query_start > INTERVAL '10 minutes' AND application_name <> 'pg_dump'";
        assert_eq!(
            match_action(&steps, &Observed::Sql(careful)),
            Some((index, Fidelity::Amended))
        );
        assert_eq!(
            match_action(&steps, &Observed::Sql("DELETE FROM tracks")),
            None
        );
        let restart = ["rest-api".to_owned()];
        assert_eq!(
            match_action(
                &steps,
                &Observed::Compose {
                    verb: "restart",
                    services: &restart
                }
            ),
            None,
            "a restart is scenario B's and C's step, not A's"
        );
    }
}
