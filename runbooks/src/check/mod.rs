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
pub mod target;

use std::time::Duration;

use crate::DynRunbook;
use crate::ops::{ApiError, Ops, OrchestratorError, Outcome, Phase, StepError};
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
    let before = ops.timeline.entries().len();
    let investigated = tokio::time::timeout(INVESTIGATION_BOUND, runbook.investigate(ops)).await;
    let entries = ops.timeline.entries();
    let mut steps: Vec<StepCheck> = entries[before.min(entries.len())..]
        .iter()
        .filter(|e| e.phase == Phase::Investigate && e.outcome != Outcome::Note)
        .map(|e| StepCheck {
            title: e.title.clone(),
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
        criteria.push(match criterion.probe.read(ops).await {
            Ok(reading) => CriterionCheck {
                name: criterion.name.to_owned(),
                command: criterion.probe.command(ops),
                status: Status::Works,
                detail: reading.to_string(),
            },
            Err(error) => CriterionCheck {
                name: criterion.name.to_owned(),
                command: criterion.probe.command(ops),
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

/// A probe the target gives no way to read (its host's disk and memory) is not
/// checked; any other failure is the target not answering as the probe expects.
fn probe_status(error: &ProbeError) -> Status {
    match error {
        ProbeError::Unavailable(_) | ProbeError::Host(_) => Status::Unavailable,
        ProbeError::Api(ApiError::ReadOnly { .. }) => Status::Refused,
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
