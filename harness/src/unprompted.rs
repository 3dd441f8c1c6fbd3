//! Remediation safety on a stack with no incident ([`crate::Response::Unprompted`]).
//!
//! A runbook is run when nothing is wrong more often than its authors think: a page
//! that flapped, a responder who starts after the fault healed, a game day that pages
//! the wrong team, an automation triggered by a stale alert. Whatever it then does
//! must do no harm. The stack runs its workload and its seeded history with no fault
//! for a while, then the runbook is run as if paged: its investigation may find
//! nothing (it escalates, which is the right answer), or it may choose a scenario and
//! resolve it. Either way it must lose nothing (the ledger), raise no alert (its own
//! included: there was none to begin with, and pending counts), interrupt no service
//! (every stop, restart or recreation is an outage nobody needed: the engine's log
//! says so where a probe could miss a fast restart), leave the verification holding,
//! and leave `metadata_enrichment_config` as it was or report the change. A config
//! change is reported, not failed, as the remediation-safety property allows; the rest
//! fail the run, here and in the runner's aftermath.

use std::time::Duration;

use chrono::{DateTime, Utc};

use runbooks::DynRunbook;
use runbooks::criteria::{readings_before, verify_all};
use runbooks::ops::timeline::format_modeled;
use runbooks::ops::{Ops, Outcome, Phase, StepError};

use crate::report::DrillReport;

/// How long the stack runs its workload before the runbook is run: long enough for
/// the workload's rates and the alert evaluation to have data.
pub const SETTLE: Duration = Duration::from_secs(5 * 60);
/// How long after the runbook the stack is watched for alerts it raised: twice the
/// `for` of the quick rules a remedy could trip (breakers, the DLQ); an alert that
/// only went pending counts. Hour-long windows (quality) are the ledger's to cover,
/// and every interruption of a service fails the run from the engine's log anyway.
pub const WATCH: Duration = Duration::from_secs(10 * 60);

/// Runs the runbook on the healthy stack and records what it did in `report`.
pub(crate) async fn run(ops: &Ops, runbook: &dyn DynRunbook, report: &mut DrillReport) {
    ops.clock.sleep(SETTLE).await;
    ops.timeline.record_wait(
        Phase::Detect,
        "No incident: the stack ran its workload",
        None,
        "the runbook is now run as if paged",
        Outcome::Note,
        SETTLE,
    );
    report.resolve_started = Some(ops.clock.now());
    let outcome = match runbook.investigate(ops).await {
        Err(error @ StepError::Escalate { .. }) => format!("found no incident ({error})"),
        Err(error) => {
            report.fail(format!("investigation failed on a healthy stack: {error}"));
            format!("investigation failed: {error}")
        }
        Ok(diagnosed) => {
            let diagnosis = diagnosed.report();
            report.warnings.push(format!(
                "the investigation chose {} on a stack with no incident",
                diagnosis.scenario
            ));
            report.diagnosis = Some(diagnosis.clone());
            let criteria = runbook.criteria();
            let before = readings_before(ops, &criteria).await;
            let resolved = match runbook.resolve(ops, diagnosed.as_ref()).await {
                Ok(()) => "resolved".to_owned(),
                Err(error @ StepError::Escalate { .. }) => format!("escalated ({error})"),
                Err(error) => {
                    report.fail(format!("resolution failed on a healthy stack: {error}"));
                    format!("resolution failed: {error}")
                }
            };
            for outcome in verify_all(ops, &criteria, &before, false).await {
                if !outcome.passed {
                    report.fail(format!(
                        "after the runbook ran on a healthy stack, verification {outcome}"
                    ));
                }
            }
            format!("chose {}, {resolved}", diagnosis.scenario)
        }
    };
    let interrupted = interruptions(ops, report.resolve_started);
    if !interrupted.is_empty() {
        report.fail(format!(
            "with no incident, the runbook interrupted services: {}",
            interrupted.join("; ")
        ));
    }
    ops.clock.sleep(WATCH).await;
    ops.timeline.record_wait(
        Phase::Verify,
        "Watched for alerts the runbook raised",
        None,
        format!("{} after it ended", format_modeled(WATCH)),
        Outcome::Note,
        WATCH,
    );
    report.unprompted = Some(outcome);
}

/// The calls that interrupted services since `since`, as `restart rest-api, graph-api`
/// (consecutive calls of one kind together). With no incident every one is an outage
/// nobody needed, however short: a probe may miss a fast restart, the engine's log
/// does not.
fn interruptions(ops: &Ops, since: Option<DateTime<Utc>>) -> Vec<String> {
    let mut grouped: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for call in ops.engine.calls() {
        if !call.interrupts() || since.is_some_and(|since| call.from < since) {
            continue;
        }
        let names = call.services.iter().map(|s| s.name());
        match grouped.last_mut() {
            Some((action, services)) if *action == call.action => services.extend(names),
            _ => grouped.push((call.action, names.collect())),
        }
    }
    grouped
        .into_iter()
        .map(|(action, services)| format!("{action} {}", services.join(", ")))
        .collect()
}
