//! Drilling a fault schedule: the faults strike, and every alert that fires is
//! answered by its own runbook, one at a time in the order they fire, as an on-call
//! engineer with the runbooks would; then the run is judged ([`super::report`]).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use runbooks::DynRunbook;
use runbooks::criteria::{readings_before, verify_all};
use runbooks::ops::timeline::format_modeled;
use runbooks::ops::{Ops, Phase, StepError};
use stack::Stack;
use tokio::sync::Mutex;

use super::FaultSchedule;
use super::report::{AlertResponse, RaisedDuring, ResponseOutcome, ScheduleReport};
use crate::alerts::{AlertEvaluator, AlertState};
use crate::ledger;
use crate::runner::{
    CLEAR_BOUND, DrillError, DrillOptions, Prepared, can_drill, config_drift, config_snapshot,
    modeled_between, prepare, strike, wait_for_alert,
};

/// A bound on the responses of one run: a remedy that keeps failing while its alert
/// keeps firing is answered again, but not for ever.
const MOST_RESPONSES: usize = 8;

/// How a run responds to the alerts.
#[derive(Clone, Copy)]
enum Mode<'a> {
    /// Each alert that fires is answered by the responder whose rule it is.
    Respond(&'a [Box<dyn DynRunbook>]),
    /// Nobody responds; the stack is watched this long (modeled, from the start).
    Watch(Duration),
}

/// Drills `schedule` on `stack`: the faults strike, every alert that fires is answered
/// by its runbook, and the properties are judged. When an alert began during a
/// response, the same schedule and seed is run again with nobody responding (the
/// control run), to tell an alert the remedy raised from one the faults raise anyway.
pub async fn drill_schedule(
    stack: &Stack,
    schedule: &FaultSchedule,
    options: &DrillOptions,
) -> Result<ScheduleReport, DrillError> {
    drill_schedule_with(stack, schedule, options, &runbooks::all()).await
}

/// [`drill_schedule`] with `responders` answering the alerts: each alert is answered by
/// the responder whose rule it is (a test puts a flawed variant of a runbook among
/// them, to show that a property breaks).
pub async fn drill_schedule_with(
    stack: &Stack,
    schedule: &FaultSchedule,
    options: &DrillOptions,
    responders: &[Box<dyn DynRunbook>],
) -> Result<ScheduleReport, DrillError> {
    let respond = Mode::Respond(responders);
    let Run { mut report, .. } = run(stack, schedule, options, respond).await?;
    if !report.raised_during_responses.is_empty() {
        let control = run(stack, schedule, options, Mode::Watch(report.lasted)).await?;
        let mut tripped = control.alerts_tripped;
        tripped.sort_unstable();
        tripped.dedup();
        report.control_tripped = Some(tripped);
    }
    report.judge();
    Ok(report)
}

/// A run's report, and every alert that tripped in it (for a control run).
struct Run {
    report: ScheduleReport,
    alerts_tripped: Vec<&'static str>,
}

async fn run(
    stack: &Stack,
    schedule: &FaultSchedule,
    options: &DrillOptions,
    mode: Mode<'_>,
) -> Result<Run, DrillError> {
    can_drill(stack, &schedule.id, &schedule.faults)?;
    let wall_start = std::time::Instant::now();
    let Prepared {
        ops,
        timeline,
        baseline_config,
        evaluator,
        firing_before,
        evaluation,
    } = prepare(stack, schedule.workload, options).await?;
    let started = timeline.started_at();
    let mut faults = match strike(stack, &schedule.schedule(options.seed), &timeline).await {
        Ok(faults) => faults,
        Err(error) => {
            evaluation.abort();
            return Err(error);
        }
    };
    let onset = faults
        .iter()
        .find(|f| !f.decoy)
        .map_or(started, |f| f.struck_at);
    let mut responses = Vec::new();
    match mode {
        Mode::Respond(responders) => {
            let watch_until =
                onset + chrono::TimeDelta::from_std(schedule.watch).unwrap_or_default();
            let watch = Watch {
                ops: &ops,
                evaluator: &evaluator,
                responders,
                started,
            };
            responses = watch.respond_until(watch_until, &firing_before).await;
        }
        Mode::Watch(lasted) => {
            let elapsed = modeled_between(started, ops.clock.now());
            ops.clock.sleep(lasted.saturating_sub(elapsed)).await;
            ops.timeline.record_wait(
                Phase::Verify,
                "Control run: nobody responded",
                None,
                "",
                runbooks::ops::Outcome::Note,
                lasted.saturating_sub(elapsed),
            );
        }
    }
    let lasted = modeled_between(started, ops.clock.now());

    let mut warnings = Vec::new();
    let mut violations = Vec::new();
    let ledger = match ledger::take(&ops.db).await {
        Ok(ledger) => Some(ledger),
        Err(error) => {
            violations.push(format!("ledger: reading it failed: {error}"));
            None
        }
    };
    let drift = match config_snapshot(&ops).await {
        Ok(after) => {
            let disabled = enabled_changed(&baseline_config, &after);
            // Those rows are reported as what they are, not again as drift.
            let drift = config_drift(&baseline_config, &after)
                .into_iter()
                .filter(|row| {
                    !disabled
                        .iter()
                        .any(|(key, _)| row.starts_with(&format!("{key}: ")))
                })
                .collect();
            violations.extend(disabled.into_iter().map(|(_, line)| line));
            drift
        }
        Err(error) => {
            violations.push(format!(
                "reading metadata_enrichment_config after the run failed: {error}"
            ));
            Vec::new()
        }
    };
    evaluation.abort();
    let evaluator = evaluator.lock().await;
    for failure in evaluator.probe_failures() {
        if failure.ever_read {
            warnings.push(failure.to_string());
        } else {
            violations.push(failure.to_string());
        }
    }
    let raised = raised_during(&evaluator, &responses, &firing_before, started);
    let alerts_tripped: Vec<&'static str> = evaluator
        .tripped()
        .iter()
        .map(|(alert, _)| *alert)
        .filter(|alert| !firing_before.contains(alert))
        .collect();
    let mut alerts_fired: Vec<&'static str> = Vec::new();
    for fired in evaluator.fired() {
        if !firing_before.contains(&fired.alert) {
            alerts_fired.push(fired.alert);
        }
    }
    let still_firing: Vec<&'static str> = evaluator
        .firing()
        .into_iter()
        .filter(|alert| !firing_before.contains(alert))
        .collect();
    drop(evaluator);

    let mut records = Vec::new();
    for fault in &mut faults {
        if let Err(error) = fault.end().await {
            violations.push(format!("healing a fault after the run: {error}"));
        }
        records.push(fault.record(started));
    }
    let declared = declared_config_changes(&timeline.entries());
    let report = ScheduleReport {
        schedule: schedule.id.clone(),
        title: schedule.title.clone(),
        seed: options.seed,
        scale: ops.clock.scale(),
        responded: matches!(mode, Mode::Respond(_)),
        faults: records,
        responses,
        alerts_fired,
        still_firing,
        raised_during_responses: raised,
        control_tripped: None,
        ledger,
        config_drift: drift,
        config_changes_declared: declared,
        violations,
        warnings,
        timeline: timeline.entries(),
        lasted,
        wall_seconds: wall_start.elapsed().as_secs_f64(),
    };
    Ok(Run {
        report,
        alerts_tripped,
    })
}

/// A run being watched, and who answers its alerts.
struct Watch<'a> {
    ops: &'a Ops,
    evaluator: &'a Arc<Mutex<AlertEvaluator>>,
    responders: &'a [Box<dyn DynRunbook>],
    started: DateTime<Utc>,
}

impl Watch<'_> {
    /// Until `until`, answers each alert as it fires (one firing episode, one
    /// response), then answers what is still firing unanswered.
    async fn respond_until(
        &self,
        until: DateTime<Utc>,
        firing_before: &[&'static str],
    ) -> Vec<AlertResponse> {
        let mut answered: Vec<(&'static str, DateTime<Utc>)> = Vec::new();
        let mut responses = Vec::new();
        while responses.len() < MOST_RESPONSES {
            let next = {
                let evaluator = self.evaluator.lock().await;
                evaluator.firing().into_iter().find_map(|alert| {
                    let AlertState::Firing { since } = evaluator.state(alert) else {
                        return None;
                    };
                    let fresh =
                        !firing_before.contains(&alert) && !answered.contains(&(alert, since));
                    fresh.then_some((alert, since))
                })
            };
            match next {
                Some(episode) => {
                    answered.push(episode);
                    responses.push(self.respond(episode).await);
                }
                None if self.ops.clock.now() >= until => break,
                None => self.ops.clock.sleep(Duration::from_secs(15)).await,
            }
        }
        responses
    }

    /// The alert's responder, run as the drills run a runbook: investigate, resolve,
    /// verify, and wait for the alert to clear.
    async fn respond(&self, (alert, fired): (&'static str, DateTime<Utc>)) -> AlertResponse {
        let ops = self.ops;
        let began = ops.clock.now();
        let already_tripped: Vec<&'static str> = {
            let evaluator = self.evaluator.lock().await;
            runbooks::alert_rules()
                .into_iter()
                .map(|rule| rule.name)
                .filter(|name| evaluator.state(name) != AlertState::Inactive)
                .collect()
        };
        let responder = self
            .responders
            .iter()
            .find(|runbook| runbook.meta().rule.name == alert);
        let mut diagnosis = None;
        let outcome = match responder {
            None => ResponseOutcome::Failed {
                why: "no runbook answers it".to_owned(),
            },
            Some(runbook) => {
                ops.timeline.note(
                    Phase::Investigate,
                    format!(
                        "{alert} fired: the {} runbook answers it",
                        runbook.meta().id()
                    ),
                    "",
                );
                self.answer(runbook.as_ref(), (alert, fired), &mut diagnosis)
                    .await
            }
        };
        AlertResponse {
            alert,
            runbook: responder.map_or_else(|| "none".to_owned(), |r| r.meta().id().to_owned()),
            fired_at: modeled_between(self.started, fired),
            began: modeled_between(self.started, began),
            ended: modeled_between(self.started, ops.clock.now()),
            already_tripped,
            diagnosis,
            outcome,
        }
    }

    async fn answer(
        &self,
        runbook: &dyn DynRunbook,
        (alert, fired): (&'static str, DateTime<Utc>),
        diagnosis: &mut Option<String>,
    ) -> ResponseOutcome {
        let ops = self.ops;
        let escalated = |error: StepError| ResponseOutcome::Escalated {
            evidence: error.to_string(),
        };
        let diagnosed = match runbook.investigate(ops).await {
            Ok(diagnosed) => diagnosed,
            Err(error @ StepError::Escalate { .. }) => return escalated(error),
            Err(error) => {
                return ResponseOutcome::Failed {
                    why: format!("investigation failed: {error}"),
                };
            }
        };
        *diagnosis = Some(diagnosed.report().scenario.to_string());
        let criteria = runbook.criteria();
        let before = readings_before(ops, &criteria).await;
        match runbook.resolve(ops, diagnosed.as_ref()).await {
            Ok(()) => {}
            Err(error @ StepError::Escalate { .. }) => return escalated(error),
            Err(error) => {
                return ResponseOutcome::Failed {
                    why: format!("resolution failed: {error}"),
                };
            }
        }
        if let Some(failed) = verify_all(ops, &criteria, &before, false)
            .await
            .into_iter()
            .find(|outcome| !outcome.passed)
        {
            return ResponseOutcome::Failed {
                why: format!("verification {failed}"),
            };
        }
        match wait_for_alert(ops, self.evaluator, alert, false, CLEAR_BOUND).await {
            Some(cleared) => ResponseOutcome::Resolved {
                after: modeled_between(fired, cleared),
            },
            None => ResponseOutcome::Failed {
                why: format!(
                    "still firing {} after verification passed",
                    format_modeled(CLEAR_BOUND)
                ),
            },
        }
    }
}

/// Alerts that fired with a condition that began while a response was under way and
/// was not pending or firing when it began (nor before the faults). One that only
/// went pending was not raised: a rule's `for` is what tells a blip from an incident.
fn raised_during(
    evaluator: &AlertEvaluator,
    responses: &[AlertResponse],
    firing_before: &[&'static str],
    started: DateTime<Utc>,
) -> Vec<RaisedDuring> {
    let mut raised: Vec<RaisedDuring> = Vec::new();
    for fired in evaluator.fired() {
        let alert = fired.alert;
        let at = modeled_between(started, fired.active_since);
        let during = responses
            .iter()
            .find(|r| r.began <= at && at <= r.ended && !r.already_tripped.contains(&alert));
        if let Some(response) = during
            && !firing_before.contains(&alert)
            && !raised.iter().any(|r| r.alert == alert)
        {
            raised.push(RaisedDuring {
                alert,
                runbook: response.runbook.clone(),
                at,
            });
        }
    }
    raised
}

/// The steps that changed `metadata_enrichment_config` for good and said so: their
/// command is the `UPDATE` a person would type (a timeout raised, priorities
/// swapped). Disabling a provider is never such a change: it is a measure its
/// runbook must undo ([`enabled_changed`]).
fn declared_config_changes(entries: &[runbooks::ops::timeline::Entry]) -> Vec<String> {
    entries
        .iter()
        .filter(|entry| entry.phase == Phase::Resolve)
        .filter(|entry| {
            entry.command.as_deref().is_some_and(|command| {
                command.contains("UPDATE metadata_enrichment_config")
                    && !command.contains("SET enabled")
            })
        })
        .map(|entry| entry.title.clone())
        .collect()
}

/// Rows whose `enabled` the run left other than it found it (a provider left
/// disabled), each with its key: never a declared change.
fn enabled_changed(before: &[String], after: &[String]) -> Vec<(String, String)> {
    let enabled = |rows: &[String]| -> Vec<(String, String)> {
        rows.iter()
            .filter_map(|row| {
                let (key, rest) = row.split_once(": ")?;
                let flag = rest
                    .split_whitespace()
                    .find(|t| t.starts_with("enabled="))?;
                Some((key.to_owned(), flag.to_owned()))
            })
            .collect()
    };
    let before = enabled(before);
    enabled(after)
        .into_iter()
        .filter(|(key, flag)| before.iter().any(|(k, f)| k == key && f != flag))
        .map(|(key, flag)| {
            let line = format!(
                "metadata_enrichment_config '{key}' left {flag}: a measure its runbook must undo"
            );
            (key, line)
        })
        .collect()
}
