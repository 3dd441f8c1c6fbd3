//! The drill runner: inject → detect → investigate → resolve → verify → ledger.
//!
//! One drill is one scenario of one runbook against a running stack. The runner
//! resets the stack, injects the scenario's faults (healing those that heal by
//! themselves on schedule, as a provider that comes back would), evaluates the alert
//! rules in the background, and times the runbook from the alert firing to the
//! moment its verification holds and the alert has cleared. It then checks that no
//! track or message was lost or duplicated, that the remediation raised no new
//! alert, and that it left the configuration as it found it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use runbooks::DynRunbook;
use runbooks::criteria::{readings_before, verify_all};
use runbooks::ops::{Approver, Host, Ops, Orchestrator, Outcome, Phase, Timeline};
use tokio::sync::Mutex;
use wire::{Clock, Endpoints};

use super::alerts::{AlertEvaluator, AlertState, rules};
use super::faults::{Fault, FaultGuard, FaultTarget};
use super::ledger;
use super::report::{DrillReport, Verdict};
use super::scenario::Scenario;

/// What the runner needs of a stack, on any backend.
#[async_trait]
pub trait DrillStack: FaultTarget {
    fn ops_endpoints(&self) -> Endpoints;
    fn ops_orchestrator(&self) -> Arc<dyn Orchestrator>;
    fn ops_host(&self) -> Option<Arc<dyn Host>>;
    /// Back to the seeded state, every service running, every fault healed.
    async fn reset_for_drill(&self) -> anyhow::Result<()>;
}

/// How to run drills.
#[derive(Clone)]
pub struct DrillOptions {
    pub approver: Arc<dyn Approver>,
    pub seed: u64,
    /// Modeled time between two evaluations of the alert rules.
    pub evaluation_interval: Duration,
}

impl DrillOptions {
    pub fn new(approver: Arc<dyn Approver>, seed: u64) -> Self {
        Self {
            approver,
            seed,
            evaluation_interval: Duration::from_secs(15),
        }
    }
}

/// Runs one scenario of `runbook` on `stack` and reports how it went.
pub async fn run_drill(
    stack: &dyn DrillStack,
    runbook: &dyn DynRunbook,
    scenario: &Scenario,
    options: &DrillOptions,
) -> anyhow::Result<DrillReport> {
    stack.reset_for_drill().await?;
    let clock = stack.clock();
    let timeline = Timeline::new(clock);
    let mut ops = Ops::connect(
        stack.ops_endpoints(),
        stack.ops_orchestrator(),
        clock,
        options.approver.clone(),
        timeline.clone(),
    )
    .await?;
    if let Some(host) = stack.ops_host() {
        ops = ops.with_host(host);
    }
    let mut report = DrillReport::new(runbook.meta(), scenario, options.seed, clock.scale());
    let baseline_config = config_snapshot(&ops).await?;

    // Alerts are evaluated from before the fault, so that a rule already firing is
    // not mistaken for one the fault raised.
    let evaluator = Arc::new(Mutex::new(AlertEvaluator::new(rules())));
    evaluator.lock().await.evaluate(&ops).await;
    let firing_before: Vec<String> = rules()
        .iter()
        .filter(|r| {
            evaluator
                .try_lock()
                .map(|e| e.is_firing(r.name))
                .unwrap_or(false)
        })
        .map(|r| r.name.to_owned())
        .collect();
    let evaluation = spawn_evaluation(evaluator.clone(), ops.clone(), options.evaluation_interval);

    // Inject.
    let injected_at = clock.now();
    let mut guards = Vec::new();
    let mut scheduled = Vec::new();
    let mut specs: Vec<_> = scenario.faults.iter().collect();
    specs.sort_by_key(|spec| spec.inject_at());
    for spec in specs {
        let due = spec.inject_at();
        let elapsed = modeled_between(injected_at, clock.now());
        if due > elapsed {
            clock.sleep(due - elapsed).await;
        }
        let fault = Fault::from_spec(spec);
        let guard = match fault.inject(stack).await {
            Ok(guard) => guard,
            Err(error) => {
                evaluation.abort();
                timeline.record(
                    Phase::Inject,
                    fault.to_string(),
                    None,
                    error.to_string(),
                    Outcome::Failed,
                );
                return Err(anyhow::anyhow!("injecting '{fault}': {error}"));
            }
        };
        let heals = spec
            .heal_after()
            .map(|d| {
                format!(
                    "heals by itself after {}",
                    runbooks::ops::timeline::format_modeled(d)
                )
            })
            .unwrap_or_else(|| "stays until remediated".into());
        timeline.record(Phase::Inject, fault.to_string(), None, heals, Outcome::Ok);
        match spec.heal_after() {
            Some(after) => scheduled.push(schedule_heal(guard, after, clock, timeline.clone())),
            None => guards.push(guard),
        }
    }

    let result = drive(
        &ops,
        runbook,
        scenario,
        &evaluator,
        injected_at,
        &mut report,
    )
    .await;
    if let Err(failure) = result {
        report.fail(failure);
    }

    // What the remediation left behind.
    if let Ok(ledger) = ledger::take(&ops.db).await {
        timeline.note(
            Phase::Ledger,
            "Ledger",
            format!(
                "{} tracks: {} enriched, {} queued, {} dead-lettered, {} archived",
                ledger.tracks,
                ledger.enriched,
                ledger.queued,
                ledger.dead_lettered,
                ledger.archived
            ),
        );
        for problem in ledger.problems() {
            report.fail(format!("ledger: {problem}"));
        }
        report.ledger = Some(ledger);
    }
    let config_after = config_snapshot(&ops).await?;
    if config_after != baseline_config && !scenario.expect.config_may_change {
        let drift: Vec<String> = config_after
            .iter()
            .filter(|row| !baseline_config.contains(row))
            .map(|row| row.to_string())
            .collect();
        report.fail(format!(
            "remediation left metadata_enrichment_config changed: {}",
            drift.join("; ")
        ));
    }
    {
        let evaluator = evaluator.lock().await;
        let resolve_started = report.resolve_started;
        for fired in evaluator.fired() {
            let alert = fired.alert;
            report.alerts_fired.push(alert.to_string());
            let expected = alert == scenario.expect.alert;
            let tolerated = scenario.expect.tolerated_alerts.iter().any(|a| a == alert);
            let before = firing_before.iter().any(|a| a == alert);
            // Raised by the remediation: its condition began to hold only after the
            // resolution started (an alert pending since the fault is the fault's).
            let after_resolution_began =
                resolve_started.is_some_and(|start| fired.active_since >= start);
            if !expected && !tolerated && !before && after_resolution_began {
                report.fail(format!("remediation raised a new alert: {alert}"));
            }
        }
    }

    evaluation.abort();
    for task in scheduled {
        task.abort();
    }
    for guard in guards {
        let _ = guard.heal().await;
    }
    report.timeline = timeline.entries();
    report.timeline_text = timeline.render();
    report.finish();
    Ok(report)
}

/// Detect, investigate, resolve, verify; the first hard failure ends the drill.
async fn drive(
    ops: &Ops,
    runbook: &dyn DynRunbook,
    scenario: &Scenario,
    evaluator: &Arc<Mutex<AlertEvaluator>>,
    injected_at: DateTime<Utc>,
    report: &mut DrillReport,
) -> Result<(), String> {
    let alert = scenario.expect.alert.as_str();
    let fired_at = wait_for_alert(ops, evaluator, alert, true, scenario.expect.detect_within())
        .await
        .ok_or_else(|| {
            format!(
                "the alert {alert} did not fire within {} after injection",
                runbooks::ops::timeline::format_modeled(scenario.expect.detect_within())
            )
        })?;
    report.time_to_detect = Some(modeled_between(injected_at, fired_at));

    let diagnosis = runbook
        .investigate(ops)
        .await
        .map_err(|e| format!("investigation failed: {e}"))?;
    let diagnosis_report = diagnosis.report(runbook.meta());
    if diagnosis_report.scenario != scenario.expect.diagnosis {
        let expected_name = runbook
            .meta()
            .scenario(scenario.expect.diagnosis)
            .map(|s| s.name)
            .unwrap_or("?");
        report.fail(format!(
            "diagnosis: expected scenario {} ({expected_name}), the runbook chose {} ({}); evidence: {}",
            scenario.expect.diagnosis,
            diagnosis_report.scenario,
            diagnosis_report.scenario_name,
            diagnosis_report
                .evidence
                .iter()
                .map(|e| format!("{} = {}", e.what, e.seen))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    report.diagnosis = Some(diagnosis_report);

    let criteria = runbook.criteria();
    let before = readings_before(ops, &criteria).await;
    report.resolve_started = Some(ops.clock.now());
    runbook
        .resolve(ops, diagnosis.as_ref())
        .await
        .map_err(|e| format!("resolution failed: {e}"))?;

    let outcomes = verify_all(ops, &criteria, &before).await;
    for outcome in outcomes.iter().filter(|o| !o.passed) {
        report.fail(format!("verification {outcome}"));
    }
    report.verification = outcomes;
    if !report.verification.iter().all(|o| o.passed) {
        return Ok(());
    }
    let cleared_at = wait_for_alert(ops, evaluator, alert, false, scenario.expect.budget())
        .await
        .ok_or_else(|| format!("the alert {alert} was still firing after verification passed"))?;
    ops.timeline
        .note(Phase::Verify, format!("{alert} cleared"), "");
    let ttr = modeled_between(fired_at, cleared_at);
    report.time_to_resolve = Some(ttr);
    if ttr > scenario.expect.budget() {
        report.fail(format!(
            "time to resolve {} exceeds the budget of {}",
            runbooks::ops::timeline::format_modeled(ttr),
            runbooks::ops::timeline::format_modeled(scenario.expect.budget())
        ));
    }
    Ok(())
}

/// Waits (modeled, bounded) until `alert` is firing (or, with `firing = false`, not
/// firing), returning when it was seen so.
async fn wait_for_alert(
    ops: &Ops,
    evaluator: &Arc<Mutex<AlertEvaluator>>,
    alert: &str,
    firing: bool,
    bound: Duration,
) -> Option<DateTime<Utc>> {
    let started = ops.clock.now();
    loop {
        let state = evaluator.lock().await.state(alert);
        let is_firing = matches!(state, AlertState::Firing { .. });
        if is_firing == firing {
            return Some(match state {
                AlertState::Firing { since } => since,
                _ => ops.clock.now(),
            });
        }
        if modeled_between(started, ops.clock.now()) > bound {
            return None;
        }
        ops.clock.sleep(Duration::from_secs(5)).await;
    }
}

fn spawn_evaluation(
    evaluator: Arc<Mutex<AlertEvaluator>>,
    ops: Ops,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = ops.clock.interval(every);
        loop {
            tick.tick().await;
            evaluator.lock().await.evaluate(&ops).await;
        }
    })
}

fn schedule_heal(
    guard: FaultGuard,
    after: Duration,
    clock: Clock,
    timeline: Timeline,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        clock.sleep(after).await;
        let description = guard.description().to_owned();
        match guard.heal().await {
            Ok(()) => timeline.record(
                Phase::Inject,
                format!("healed: {description}"),
                None,
                "",
                Outcome::Ok,
            ),
            Err(error) => timeline.record(
                Phase::Inject,
                format!("healing failed: {description}"),
                None,
                error.to_string(),
                Outcome::Failed,
            ),
        }
    })
}

fn modeled_between(from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
    (to - from).to_std().unwrap_or_default()
}

/// The config table, one line per row, for detecting what remediation changed.
#[allow(clippy::type_complexity)] // one row of the config table, read once
async fn config_snapshot(ops: &Ops) -> anyhow::Result<Vec<String>> {
    let rows: Vec<(
        String,
        bool,
        String,
        Option<String>,
        Option<String>,
        i32,
        i32,
    )> = sqlx::query_as(
        "SELECT config_key, enabled, priority_1_provider, priority_2_provider, priority_3_provider,
                timeout_seconds, cache_ttl_hours
         FROM metadata_enrichment_config ORDER BY config_key",
    )
    .fetch_all(&ops.db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(key, enabled, p1, p2, p3, timeout, ttl)| {
            format!(
                "{key}: enabled={enabled} providers={p1},{},{} timeout={timeout}s ttl={ttl}h",
                p2.unwrap_or_default(),
                p3.unwrap_or_default()
            )
        })
        .collect())
}

impl DrillReport {
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }
}
