//! `drill check`: the runbooks' own reads, pointed at a real deployment.
//!
//! Drilling proves the runbooks against the twin; a check shows whether they still
//! match the system they were written for, before an incident does. It runs, with a
//! read-only [`Ops`] ([`crate::ops::read_only`]): every alert rule's probe once (which
//! alerts' conditions hold now), every runbook's investigation (each step a command
//! that works or not), and every verification criterion's probe once. Nothing is
//! retried: a step that fails is reported with its error, and the investigation of
//! that runbook stops there, as an engineer's would.
//!
//! A step is *broken* when the target does not answer as the runbook expects (a
//! status, a JSON path, a table or column, a permission); *refused* when it would have
//! changed the target (the read-only layers stopped it); *unavailable* when the target
//! names no way to do it (no orchestrator). An investigation that finds no incident
//! is the normal outcome on a healthy system, not a failure.

pub mod report;
pub mod shape;
pub mod target;

use std::time::Duration;

use wire::endpoints::Endpoints;

use crate::DynRunbook;
use crate::ops::{ApiError, Ops, OrchestratorError, Outcome, Phase, StepError};
use crate::playbook::{self, Observed, WrittenStep, match_action};
use crate::probe::ProbeError;

pub use report::{CheckReport, CriterionCheck, RuleCheck, RunbookCheck, Status, StepCheck};
pub use target::{LoadedTarget, Target, TargetError, redact};

/// How long one runbook's investigation may take against a target (real time):
/// investigations that watch a trend for minutes are cut short and say so.
pub const INVESTIGATION_BOUND: Duration = Duration::from_secs(90);

/// Why a target cannot be checked at all (`drill check` exits 2).
#[derive(Debug, thiserror::Error)]
pub enum Unreachable {
    #[error("metadata-enrichment at {url} does not answer /health: {reason}")]
    Enrichment { url: String, reason: String },
    #[error("PostgreSQL at {host}:{port} refuses the check's session: {reason}")]
    Database {
        host: String,
        port: u16,
        reason: String,
    },
}

/// Whether the target answers at all: its enrichment service and its database. A
/// check of a target that does not is one error, not every step failing.
pub async fn preflight(ops: &Ops) -> Result<(), Unreachable> {
    ops.enrichment
        .health()
        .await
        .map_err(|e| Unreachable::Enrichment {
            url: ops.endpoints().enrichment.to_string(),
            reason: e.to_string(),
        })?;
    sqlx::query("SELECT 1")
        .execute(&ops.db)
        .await
        .map_err(|e| Unreachable::Database {
            host: ops.endpoints().postgres_host.clone(),
            port: ops.endpoints().postgres_port,
            reason: e.to_string(),
        })?;
    Ok(())
}

/// Runs every check of `runbooks` against the target `ops` reaches.
pub async fn check(target: &str, ops: &Ops, runbooks: &[Box<dyn DynRunbook>]) -> CheckReport {
    let mut rules = Vec::new();
    for runbook in runbooks {
        let rule = &runbook.meta().rule;
        rules.push(match rule.probe.read(ops).await {
            Ok(reading) => RuleCheck {
                alert: rule.name.to_owned(),
                threshold: rule.threshold.to_owned(),
                status: Status::Works,
                reading: Some(reading.to_string()),
                condition_holds: Some(rule.condition.holds(std::slice::from_ref(&reading))),
                error: None,
            },
            Err(error) => RuleCheck {
                alert: rule.name.to_owned(),
                threshold: rule.threshold.to_owned(),
                status: probe_status(&error),
                reading: None,
                condition_holds: None,
                error: Some(error.to_string()),
            },
        });
    }
    let mut checked = Vec::new();
    for runbook in runbooks {
        checked.push(check_runbook(ops, runbook.as_ref()).await);
    }
    CheckReport {
        target: target.to_owned(),
        rules,
        runbooks: checked,
    }
}

async fn check_runbook(ops: &Ops, runbook: &dyn DynRunbook) -> RunbookCheck {
    let id = runbook.meta().id();
    let written = playbook::steps_for(runbook.meta().title, None);
    let line_of = |command: &str| written_line(command, ops.endpoints(), &written);
    let before = ops.timeline.entries().len();
    let investigated = tokio::time::timeout(INVESTIGATION_BOUND, runbook.investigate(ops)).await;
    let entries = ops.timeline.entries();
    let mut steps: Vec<StepCheck> = entries[before.min(entries.len())..]
        .iter()
        .filter(|e| e.phase == Phase::Investigate && e.outcome != Outcome::Note)
        .map(|e| StepCheck {
            title: e.title.clone(),
            line: e.command.as_deref().and_then(line_of),
            command: e.command.clone(),
            status: match e.outcome {
                Outcome::Ok => Status::Works,
                Outcome::Refused => Status::Refused,
                _ => Status::Broken,
            },
            detail: e.observed.clone(),
        })
        .collect();
    let conclusion = match investigated {
        Err(_) => {
            steps.push(StepCheck {
                title: "investigation".into(),
                command: None,
                line: None,
                status: Status::Unavailable,
                detail: format!(
                    "still watching after {}s: the rest of it was not checked",
                    INVESTIGATION_BOUND.as_secs()
                ),
            });
            "cut short".to_owned()
        }
        Ok(Ok(diagnosis)) => format!("would choose {}", diagnosis.report().scenario),
        Ok(Err(error)) => {
            let status = classify(&error);
            // The failed step is already the last entry; give it its kind.
            if let Some(last) = steps.last_mut()
                && last.status != Status::Works
            {
                last.status = status;
            }
            match status {
                Status::Works => format!("no incident to resolve: {error}"),
                _ => format!("stopped: {error}"),
            }
        }
    };
    let mut criteria = Vec::new();
    for criterion in runbook.criteria() {
        let command = criterion.probe.command(ops);
        let line = line_of(&command);
        criteria.push(match criterion.probe.read(ops).await {
            Ok(reading) => CriterionCheck {
                name: criterion.name.to_owned(),
                line,
                command,
                status: Status::Works,
                detail: reading.to_string(),
            },
            Err(error) => CriterionCheck {
                name: criterion.name.to_owned(),
                line,
                command,
                status: probe_status(&error),
                detail: error.to_string(),
            },
        });
    }
    RunbookCheck {
        runbook: id.to_owned(),
        steps,
        conclusion,
        criteria,
    }
}

/// The line of the runbook text a command of the check was written on: the step it
/// is (a request to the same service and route, or the same SQL, as written or
/// amended), found among all the runbook's steps.
fn written_line(command: &str, endpoints: &Endpoints, steps: &[WrittenStep]) -> Option<usize> {
    let found = match heredoc_sql(command) {
        Some(sql) => match_action(steps, &Observed::Sql(sql)),
        None => {
            let (service, method, path) = request_of(command, endpoints)?;
            match_action(
                steps,
                &Observed::Http {
                    service,
                    method: &method,
                    path: &path,
                },
            )
        }
    };
    found
        .and_then(|(index, _)| steps.get(index))
        .map(|s| s.line)
}

/// The SQL of `psql … << EOF\n…\nEOF`.
fn heredoc_sql(command: &str) -> Option<&str> {
    if !command.starts_with("psql") {
        return None;
    }
    let (_, rest) = command.split_once("<< EOF\n")?;
    Some(rest.rsplit_once("\nEOF").map_or(rest, |(sql, _)| sql))
}

/// `(service, method, path)` of a `curl` to one of the target's services.
fn request_of(command: &str, endpoints: &Endpoints) -> Option<(&'static str, String, String)> {
    let words: Vec<&str> = command.split_whitespace().collect();
    let method = words
        .iter()
        .position(|w| *w == "-X")
        .and_then(|i| words.get(i + 1))
        .map_or("GET", |m| m)
        .to_owned();
    let url: url::Url = words
        .iter()
        .find(|w| w.starts_with("http://") || w.starts_with("https://"))?
        .trim_matches(['\'', '"'])
        .parse()
        .ok()?;
    let services = [
        ("metadata-enrichment", &endpoints.enrichment),
        ("api-gateway-internal", &endpoints.gateway),
        ("dlq-manager", &endpoints.dlq),
        ("rest-api", &endpoints.rest_api),
        ("graph-api", &endpoints.graph_api),
    ];
    services.into_iter().find_map(|(service, base)| {
        let same_server = url.host_str() == base.host_str()
            && url.port_or_known_default() == base.port_or_known_default();
        let path = url.path().strip_prefix(base.path().trim_end_matches('/'))?;
        same_server.then(|| (service, method.clone(), path.to_owned()))
    })
}

/// A probe the target gives no way to read (its host's disk and memory) is not
/// checked; any other failure is the target not answering as the probe expects.
fn probe_status(error: &ProbeError) -> Status {
    match error {
        ProbeError::Unavailable(_)
        | ProbeError::Host(_)
        | ProbeError::Orchestrator(OrchestratorError::Unavailable { .. }) => Status::Unavailable,
        ProbeError::Api(ApiError::ReadOnly { .. })
        | ProbeError::Orchestrator(OrchestratorError::ReadOnly { .. }) => Status::Refused,
        _ => Status::Broken,
    }
}

/// What an investigation's error says about the target. An escalation, or a wait
/// that ran out, is the investigation's conclusion on a healthy system: the commands
/// before it worked.
fn classify(error: &StepError) -> Status {
    match error {
        StepError::Api {
            source: ApiError::ReadOnly { .. },
            ..
        }
        | StepError::Orchestrator {
            source: OrchestratorError::ReadOnly { .. },
            ..
        }
        | StepError::NotApproved { .. } => Status::Refused,
        StepError::Orchestrator {
            source: OrchestratorError::Unavailable { .. },
            ..
        }
        | StepError::Host { .. } => Status::Unavailable,
        StepError::Escalate { .. } | StepError::WaitedTooLong { .. } => Status::Works,
        StepError::Api { .. }
        | StepError::Sql { .. }
        | StepError::Orchestrator { .. }
        | StepError::Redis { .. } => Status::Broken,
    }
}
