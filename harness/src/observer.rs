//! What the responder did, seen from the stack: requests, SQL, compose actions and
//! configuration changes, with their modeled and wall times.
//!
//! A game day does not ask the responder what they did; it watches the stack. Every
//! service's public API keeps its recent requests (`twin::access`, read on its chaos
//! surface); PostgreSQL logs every statement with its session's `application_name`
//! (turned on for the game day and off after it); compose actions arrive through the
//! game day's control surface ([`Observer::record`]); the configuration table is
//! compared with its last reading. The stack's own clients name themselves
//! ([`wire::agents`], the services' `application_name`s), so what is left is the
//! person's `curl` and `psql`.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use runbooks::ops::Ops;
use serde::{Deserialize, Serialize};
use stack::Stack;
use url::Url;
use wire::{Clock, Service};

use runbooks::playbook::{Fidelity, Observed, WrittenStep, match_action};

/// How often the stack is looked at, in real time: a person's commands are seconds
/// apart, and a service remembers its last few thousand requests.
const POLL: Duration = Duration::from_millis(500);

/// How many lines of PostgreSQL's log each look reads: far more than arrive in
/// [`POLL`] even under a drill's workload at scale.
const LOG_TAIL: usize = 4000;

/// What the responder did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ActionKind {
    Http {
        service: String,
        method: String,
        target: String,
        status: u16,
        client: String,
    },
    Sql {
        application: String,
        statement: String,
    },
    Compose {
        verb: String,
        services: Vec<String>,
        /// What it came to: "done", or why it failed.
        outcome: String,
    },
    Config {
        before: String,
        after: String,
    },
}

/// One action, when it happened, and which step of the runbook it was.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Action {
    pub modeled_at: DateTime<Utc>,
    pub wall_at: DateTime<Utc>,
    #[serde(flatten)]
    pub kind: ActionKind,
    /// The runbook step it was (its index among the scenario's steps), if any.
    #[serde(default)]
    pub step: Option<usize>,
    #[serde(default)]
    pub fidelity: Option<Fidelity>,
}

impl Action {
    /// One line: what was done.
    pub fn describe(&self) -> String {
        match &self.kind {
            ActionKind::Http {
                service,
                method,
                target,
                status,
                client,
            } => format!("{method} {service}{target} → {status} ({client})"),
            ActionKind::Sql {
                application,
                statement,
            } => format!("SQL ({application}): {}", one_line(statement, 120)),
            ActionKind::Compose {
                verb,
                services,
                outcome,
            } => format!("compose {verb} {}: {outcome}", services.join(" ")),
            ActionKind::Config { before, after } => {
                format!("config changed: {before} → {after}")
            }
        }
    }

    /// The action as a step could be, if it could be one.
    pub fn observed(&self) -> Option<Observed<'_>> {
        match &self.kind {
            ActionKind::Http {
                service,
                method,
                target,
                ..
            } => Some(Observed::Http {
                service,
                method,
                path: target.split('?').next().unwrap_or(target),
            }),
            ActionKind::Sql { statement, .. } => Some(Observed::Sql(statement)),
            ActionKind::Compose { verb, services, .. } => {
                Some(Observed::Compose { verb, services })
            }
            ActionKind::Config { .. } => None,
        }
    }
}

fn one_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        format!("{}…", flat.chars().take(max).collect::<String>())
    }
}

/// Why the observer could not start.
#[derive(Debug, thiserror::Error)]
pub enum ObserverError {
    #[error("turning on PostgreSQL's statement log: {0}")]
    StatementLog(#[source] sqlx::Error),
}

/// Watches the stack for the responder's actions until stopped.
#[derive(Clone)]
pub struct Observer {
    shared: Arc<Shared>,
}

struct Shared {
    clock: Clock,
    actions: Mutex<Vec<Action>>,
    steps: Vec<WrittenStep>,
    requests: tokio::sync::Mutex<RequestWatch>,
    elsewhere: tokio::sync::Mutex<Elsewhere>,
}

/// PostgreSQL's log and the configuration table, and what of them has been read.
struct Elsewhere {
    orchestrator: Arc<dyn runbooks::ops::Orchestrator>,
    ops: Ops,
    statements: HashSet<String>,
    config: Option<Vec<String>>,
}

/// Where the services' request rings are, and how far each has been read.
struct RequestWatch {
    http: reqwest::Client,
    sources: Vec<(Service, Url)>,
    seen: BTreeMap<Service, u64>,
}

/// The services whose public API a person calls.
const HTTP_SERVICES: [Service; 5] = [
    Service::MetadataEnrichment,
    Service::ApiGatewayInternal,
    Service::DlqManager,
    Service::RestApi,
    Service::GraphApi,
];

impl Observer {
    /// Starts watching `stack`; actions are matched against `steps`. `ops` reads the
    /// configuration table (an observer's connection: [`Ops::connect_observer`]).
    pub async fn start(
        stack: &Stack,
        ops: Ops,
        steps: Vec<WrittenStep>,
    ) -> Result<(Self, tokio::task::JoinHandle<()>), ObserverError> {
        set_statement_log(stack, true)
            .await
            .map_err(ObserverError::StatementLog)?;
        let sources: Vec<(Service, Url)> = HTTP_SERVICES
            .iter()
            .filter_map(|&s| Some((s, stack.chaos_url(s)?)))
            .collect();
        let http = reqwest::Client::builder()
            .user_agent(wire::agents::HARNESS)
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap_or_default();
        let observer = Self {
            shared: Arc::new(Shared {
                clock: stack.clock(),
                actions: Mutex::new(Vec::new()),
                steps,
                requests: tokio::sync::Mutex::new(RequestWatch {
                    http,
                    sources,
                    seen: BTreeMap::new(),
                }),
                elsewhere: tokio::sync::Mutex::new(Elsewhere {
                    orchestrator: stack.orchestrator(),
                    config: crate::runner::config_snapshot(&ops).await.ok(),
                    ops,
                    statements: HashSet::new(),
                }),
            }),
        };
        let watcher = observer.clone();
        let task = tokio::spawn(async move {
            loop {
                watcher.look().await;
                tokio::time::sleep(POLL).await;
            }
        });
        Ok((observer, task))
    }

    /// Reads everything new once: requests, statements, configuration.
    pub async fn look(&self) {
        self.catch_up().await;
        let mut elsewhere = self.shared.elsewhere.lock().await;
        let Elsewhere {
            orchestrator,
            ops,
            statements,
            config,
        } = &mut *elsewhere;
        if let Ok(lines) = orchestrator.logs(Service::Postgres, LOG_TAIL).await {
            self.look_at_statements(&lines, statements);
        }
        if let Ok(now) = crate::runner::config_snapshot(ops).await {
            if let Some(before) = config.as_deref() {
                self.look_at_config(before, &now);
            }
            *config = Some(now);
        }
    }

    /// Records an action the stack cannot see by itself (a compose action through the
    /// game day's control surface).
    pub fn record(&self, kind: ActionKind) {
        let now = self.shared.clock.now();
        self.push(now, Utc::now(), kind);
    }

    /// Reads every service's new requests now: before a service restarts, which
    /// forgets them (a compose action calls this first).
    pub async fn catch_up(&self) {
        let mut watch = self.shared.requests.lock().await;
        let RequestWatch {
            http,
            sources,
            seen,
        } = &mut *watch;
        for (service, chaos) in sources.iter() {
            self.look_at_requests(http, *service, chaos, seen).await;
        }
    }

    /// Everything seen so far, in the order it happened.
    pub fn actions(&self) -> Vec<Action> {
        let mut actions = self
            .shared
            .actions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        actions.sort_by_key(|a| a.modeled_at);
        actions
    }

    pub fn steps(&self) -> &[WrittenStep] {
        &self.shared.steps
    }

    fn push(&self, modeled_at: DateTime<Utc>, wall_at: DateTime<Utc>, kind: ActionKind) {
        let mut action = Action {
            modeled_at,
            wall_at,
            kind,
            step: None,
            fidelity: None,
        };
        if let Some(observed) = action.observed()
            && let Some((step, fidelity)) = match_action(&self.shared.steps, &observed)
        {
            action.step = Some(step);
            action.fidelity = Some(fidelity);
        }
        self.shared
            .actions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(action);
    }

    async fn look_at_requests(
        &self,
        http: &reqwest::Client,
        service: Service,
        chaos: &Url,
        seen: &mut BTreeMap<Service, u64>,
    ) {
        let mut after = seen.get(&service).copied().unwrap_or(0);
        let mut answer = None;
        // Twice at most: a restarted service numbers its requests from 1 again.
        for _ in 0..2 {
            let Ok(url) = chaos.join(&format!("chaos/requests?after={after}")) else {
                return;
            };
            let response = match http.get(url).send().await {
                Ok(response) => response,
                Err(error) => {
                    // A service being restarted: read when it is back.
                    tracing::debug!(%service, %error, "reading its requests");
                    return;
                }
            };
            let requests = match response.json::<wire::access::Requests>().await {
                Ok(requests) => requests,
                Err(error) => {
                    tracing::debug!(%service, %error, "reading its requests");
                    return;
                }
            };
            if requests.last_seq < after {
                after = 0;
                continue;
            }
            answer = Some(requests);
            break;
        }
        let Some(answer) = answer else { return };
        seen.insert(service, answer.last_seq);
        for record in answer.requests {
            if wire::agents::is_stack_own(&record.user_agent) {
                continue;
            }
            let wall = DateTime::from_timestamp_millis(record.unix_ms).unwrap_or_default();
            self.push(
                self.shared.clock.modeled_at(record.unix_ms),
                wall,
                ActionKind::Http {
                    service: service.name().to_owned(),
                    method: record.method,
                    target: record.target,
                    status: record.status,
                    client: record.user_agent,
                },
            );
        }
    }

    fn look_at_statements(&self, lines: &[String], seen: &mut HashSet<String>) {
        let entries = statements(lines);
        let mut now_seen = HashSet::with_capacity(entries.len());
        for entry in entries {
            let key = format!("{} {} {}", entry.stamp, entry.pid, entry.statement);
            let new = !seen.contains(&key);
            now_seen.insert(key);
            if !new || is_stack_own_session(&entry.application) || trivial(&entry.statement) {
                continue;
            }
            let modeled = entry.modeled_at.unwrap_or_else(|| self.shared.clock.now());
            self.push(
                modeled,
                Utc::now(),
                ActionKind::Sql {
                    application: entry.application,
                    statement: entry.statement,
                },
            );
        }
        *seen = now_seen;
    }

    fn look_at_config(&self, before: &[String], after: &[String]) {
        for row in after.iter().filter(|row| !before.contains(row)) {
            let key = row.split(':').next().unwrap_or_default();
            let old = before
                .iter()
                .find(|b| b.split(':').next() == Some(key))
                .cloned()
                .unwrap_or_else(|| "(no row)".to_owned());
            self.record(ActionKind::Config {
                before: old,
                after: row.clone(),
            });
        }
    }

    /// Reads what is new one last time (the background task has been stopped), and
    /// turns PostgreSQL's statement log off again.
    pub async fn finish(&self, stack: &Stack) {
        self.look().await;
        let _ = set_statement_log(stack, false).await;
    }
}

async fn set_statement_log(stack: &Stack, on: bool) -> Result<(), sqlx::Error> {
    let pool = stack.admin_pool();
    let statement = if on {
        "ALTER SYSTEM SET log_statement = 'all'"
    } else {
        "ALTER SYSTEM RESET log_statement"
    };
    sqlx::query(statement).execute(pool).await?;
    sqlx::query("SELECT pg_reload_conf()").execute(pool).await?;
    Ok(())
}

/// Sessions of the stack itself: its services (named as in compose), the harness's
/// own connections, the nightly backup.
fn is_stack_own_session(application: &str) -> bool {
    Service::ALL.iter().any(|s| s.name() == application)
        || application.starts_with("runbook-drill")
        || application == "pg_dump"
}

fn trivial(statement: &str) -> bool {
    let first = statement
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .trim_end_matches(';')
        .to_ascii_uppercase();
    matches!(
        first.as_str(),
        "" | "BEGIN" | "COMMIT" | "ROLLBACK" | "DISCARD" | "START"
    )
}

/// A statement of PostgreSQL's log.
#[derive(Debug, PartialEq)]
struct LoggedStatement {
    stamp: String,
    pid: String,
    application: String,
    statement: String,
    modeled_at: Option<DateTime<Utc>>,
}

/// The `statement:` entries of PostgreSQL's log lines, written with the stack's
/// `log_line_prefix` (`%m [%p] %q%a `); continuation lines (a statement over several
/// lines) start with a tab.
fn statements(lines: &[String]) -> Vec<LoggedStatement> {
    let mut found: Vec<LoggedStatement> = Vec::new();
    let mut open = false;
    for line in lines {
        if let Some(rest) = line.strip_prefix('\t') {
            if open && let Some(last) = found.last_mut() {
                last.statement.push('\n');
                last.statement.push_str(rest);
            }
            continue;
        }
        open = false;
        let Some((head, statement)) = line.split_once(" LOG:  statement: ") else {
            continue;
        };
        let Some((stamp, rest)) = head.split_once(" [") else {
            continue;
        };
        let Some((pid, application)) = rest.split_once("] ") else {
            continue;
        };
        found.push(LoggedStatement {
            stamp: stamp.to_owned(),
            pid: pid.to_owned(),
            application: application.trim().to_owned(),
            statement: statement.to_owned(),
            modeled_at: parse_stamp(stamp),
        });
        open = true;
    }
    found
}

/// `2026-12-01 10:30:01.123 UTC` (PostgreSQL runs on the modeled clock, so this is
/// modeled time); other zones are not guessed at.
fn parse_stamp(stamp: &str) -> Option<DateTime<Utc>> {
    let (local, zone) = stamp.rsplit_once(' ')?;
    if !matches!(zone, "UTC" | "GMT") {
        return None;
    }
    let naive = NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M:%S%.3f").ok()?;
    Some(naive.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_read_from_the_log_with_their_session_and_time() {
        let lines: Vec<String> = [
            "2026-12-01 10:30:01.123 UTC [41] rest-api LOG:  statement: SELECT 1",
            "2026-12-01 10:30:02.500 UTC [77] psql LOG:  statement: SELECT pid",
            "\tFROM pg_stat_activity",
            "2026-12-01 10:30:03.000 UTC [12] LOG:  checkpoint starting: time",
            "2026-12-01 10:30:04.000 UTC [78] psql LOG:  duration: 1.2 ms",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let found = statements(&lines);
        assert_eq!(found.len(), 2);
        assert_eq!(found[1].application, "psql");
        assert_eq!(found[1].statement, "SELECT pid\nFROM pg_stat_activity");
        assert_eq!(
            found[1].modeled_at.map(|t| t.to_rfc3339()),
            Some("2026-12-01T10:30:02.500+00:00".to_owned())
        );
        assert!(is_stack_own_session(&found[0].application));
        assert!(!is_stack_own_session("psql"));
        assert!(is_stack_own_session(runbooks::ops::OBSERVER));
        assert!(trivial("BEGIN"));
        assert!(!trivial("SELECT 1"));
    }
}
