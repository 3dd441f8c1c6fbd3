//! The drill runner: inject → detect → investigate → resolve → verify → ledger.
//!
//! One drill is one scenario of one runbook against a running stack. The runner resets
//! the stack, sets the scenario's workload, lets the scenario's root-cause faults strike
//! at their seeded times (the world ends those it ends, at their seeded times),
//! evaluates every runbook's alert rule in the background, and times the runbook from
//! its alert firing to the moment its verification holds and the alert has cleared,
//! telling the time it spent waiting on the world from its own ([`crate::world`]).
//! It then checks that nothing was lost ([`crate::ledger`]), that the remediation
//! raised no new alert and left the configuration as it found it, and that every
//! alert rule could be read.
//!
//! A *control run* ([`Response::Control`]) is the same drill with the resolution
//! replaced by doing nothing: it must fail, unless the scenario declares that the
//! world heals by itself, or the drill proves nothing about the runbook.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use runbooks::DynRunbook;
use runbooks::criteria::{readings_before, verify_all};
use runbooks::ops::timeline::format_modeled;
use runbooks::ops::{Approver, ConnectError, Ops, Outcome, Phase, StepError, Timeline};
use serde::Serialize;
use stack::{Stack, StackError};
use tokio::sync::{Mutex, oneshot};
use wire::Clock;
use wire::wait::{self, Poll};

use crate::alerts::{AlertEvaluator, AlertState};
use crate::cache_cost::CacheCost;
use crate::faults::{FaultError, FaultGuard, RetryAfter};
use crate::ledger;
use crate::report::{DrillReport, FaultRecord};
use crate::scenario::{self, FaultSpec, Scenario, ScheduledFault};
use crate::signals::{History, spawn_sampler};
use crate::world::{self, Interval};

/// Modeled time between two samples of the signals of a drill's charts.
const SAMPLE_EVERY: Duration = Duration::from_secs(30);

/// What the drill does once the alert has fired.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Response {
    /// The runbook investigates, resolves and is verified.
    #[default]
    Runbook,
    /// The runbook investigates; its resolution is replaced by doing nothing; then
    /// the same verification. Shows whether the runbook is what resolved the incident.
    Control,
    /// The runbook investigates, and the drill ends with its diagnosis (`drill matrix`).
    Diagnose,
    /// No fault strikes (the world's own work does): the runbook is run as if paged on
    /// a healthy stack and must do no harm ([`crate::unprompted`]).
    Unprompted,
}

/// How to run drills.
#[derive(Clone)]
pub struct DrillOptions {
    pub approver: Arc<dyn Approver>,
    /// Draws every time and amount of the scenario's faults.
    pub seed: u64,
    /// Modeled time between two evaluations of the alert rules.
    pub evaluation_interval: Duration,
    pub response: Response,
    /// Whether to sample the board's signals for the report's charts (`--html`).
    pub sample_signals: bool,
    /// Whether a resolved drill runs its resolution a second time, on the healed
    /// stack, and checks that doing so did no harm (see [`resolve_again`]).
    pub resolve_twice: bool,
}

impl DrillOptions {
    pub fn new(approver: Arc<dyn Approver>, seed: u64) -> Self {
        Self {
            approver,
            seed,
            evaluation_interval: Duration::from_secs(15),
            response: Response::Runbook,
            sample_signals: false,
            resolve_twice: false,
        }
    }

    /// Runs a resolved drill's resolution again on the healed stack (see
    /// [`resolve_again`]).
    pub fn with_second_resolution(mut self) -> Self {
        self.resolve_twice = true;
        self
    }

    pub fn with_response(mut self, response: Response) -> Self {
        self.response = response;
        self
    }

    /// Samples the board's signals during each drill, for charts.
    pub fn with_signals(mut self) -> Self {
        self.sample_signals = true;
        self
    }
}

/// A drill that could not be run at all (as opposed to one that ran and failed).
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error("resetting the stack: {0}")]
    Reset(#[source] StackError),
    #[error("connecting to the stack: {0}")]
    Connect(#[source] ConnectError),
    #[error("reading metadata_enrichment_config: {0}")]
    Config(#[source] sqlx::Error),
    #[error("injecting '{fault}': {source}")]
    Inject {
        fault: String,
        #[source]
        source: FaultError,
    },
    #[error("{scenario} needs a size-limited disk, which this stack does not have: {reason}")]
    NoSizeLimitedDisk { scenario: String, reason: String },
    #[error("{scenario} needs the stack's memory limited to its budget, which it is not: {reason}")]
    NoMemoryLimit { scenario: String, reason: String },
}

/// Why a drill that ran ended before a verified resolution.
#[derive(Debug, thiserror::Error)]
enum Stop {
    #[error("the alert {alert} did not fire within {} after the first fault struck", format_modeled(*within))]
    NotDetected { alert: String, within: Duration },
    #[error("investigation escalated: {0}")]
    Escalated(#[source] StepError),
    #[error("investigation failed: {0}")]
    Investigation(#[source] StepError),
    #[error("resolution failed: {0}")]
    Resolution(#[source] StepError),
    #[error("the alert {alert} was still firing {} after verification passed", format_modeled(*waited))]
    StillFiring { alert: String, waited: Duration },
}

/// How long after verification the alert may take to clear: its rule is evaluated
/// every few modeled seconds, and a rate that has recovered may take one window.
pub(crate) const CLEAR_BOUND: Duration = Duration::from_secs(20 * 60);

/// Runs one scenario of `runbook` on `stack` and reports how it went.
pub async fn run_drill(
    stack: &Stack,
    runbook: &dyn DynRunbook,
    scenario: &Scenario,
    options: &DrillOptions,
) -> Result<DrillReport, DrillError> {
    can_drill(stack, &scenario.id, &scenario.faults)?;
    let wall_start = std::time::Instant::now();
    let Prepared {
        ops,
        timeline,
        baseline_config,
        evaluator,
        firing_before,
        evaluation,
    } = prepare(stack, scenario.workload, options).await?;
    let mut report = DrillReport::new(runbook.meta(), scenario, options, stack.clock().scale());
    let sampling = options.sample_signals.then(|| {
        let history = Arc::new(std::sync::Mutex::new(History::starting(
            timeline.started_at(),
        )));
        let task = spawn_sampler(ops.clone(), SAMPLE_EVERY, history.clone());
        (task, history)
    });

    let mut schedule = scenario.schedule(options.seed);
    if options.response == Response::Unprompted {
        schedule.retain(|scheduled| scheduled.fault.is_decoy());
    }
    let mut faults = match strike(stack, &schedule, &timeline).await {
        Ok(faults) => faults,
        Err(error) => {
            evaluation.abort();
            return Err(error);
        }
    };
    report.onset = faults
        .iter()
        .find(|f| !f.decoy)
        .map(|f| modeled_between(timeline.started_at(), f.struck_at));

    if options.response == Response::Unprompted {
        crate::unprompted::run(&ops, runbook, &mut report).await;
    } else if let Err(stop) = drive(
        &ops,
        runbook,
        scenario,
        options,
        &evaluator,
        &faults,
        &mut report,
    )
    .await
    {
        report.fail(stop.to_string());
        if let Stop::Escalated(error) = &stop {
            report.escalated = Some(error.to_string());
        }
    }

    if options.response != Response::Diagnose {
        check_aftermath(
            &ops,
            scenario,
            &evaluator,
            &firing_before,
            &baseline_config,
            &mut report,
        )
        .await;
    }
    evaluation.abort();
    for fault in &mut faults {
        if let Err(error) = fault.end().await {
            report.fail(format!(
                "healing '{}' after the drill: {error}",
                fault.description
            ));
        }
        report.faults.push(fault.record(timeline.started_at()));
    }
    if let Some((task, history)) = sampling {
        task.abort();
        report.signals = Some(history.lock().unwrap_or_else(|p| p.into_inner()).clone());
    }
    report.timeline = timeline.entries();
    report.timeline_text = timeline.render();
    report.wall_seconds = wall_start.elapsed().as_secs_f64();
    report.finish();
    Ok(report)
}

/// Whether this stack can hold `faults` so that they mean something: a disk that
/// cannot fill would make a drill pass or fail for nothing, and a leak without a
/// memory limit takes the host's memory and ends in no OOM kill.
pub(crate) fn can_drill(stack: &Stack, id: &str, faults: &[FaultSpec]) -> Result<(), DrillError> {
    if scenario::needs_size_limited_disk(faults)
        && let Err(reason) = stack.disk().limited()
    {
        return Err(DrillError::NoSizeLimitedDisk {
            scenario: id.to_owned(),
            reason,
        });
    }
    if scenario::needs_memory_limit(faults)
        && let Err(reason) = stack.memory()
    {
        return Err(DrillError::NoMemoryLimit {
            scenario: id.to_owned(),
            reason: reason.to_owned(),
        });
    }
    Ok(())
}

/// A reset stack under its workload, connected, with its alert rules evaluated in the
/// background from before any fault (so that a rule already firing is not mistaken
/// for one the fault raised) and its configuration as it was.
pub(crate) struct Prepared {
    pub(crate) ops: Ops,
    pub(crate) timeline: Timeline,
    pub(crate) baseline_config: Vec<String>,
    pub(crate) evaluator: Arc<Mutex<AlertEvaluator>>,
    pub(crate) firing_before: Vec<&'static str>,
    /// The background evaluation: abort it when the drill ends.
    pub(crate) evaluation: tokio::task::JoinHandle<()>,
}

pub(crate) async fn prepare(
    stack: &Stack,
    workload: stack::Workload,
    options: &DrillOptions,
) -> Result<Prepared, DrillError> {
    stack.reset().await.map_err(DrillError::Reset)?;
    stack.set_workload(workload);
    let clock = stack.clock();
    let timeline = Timeline::new(clock);
    let ops = Ops::connect(
        stack.endpoints().clone(),
        stack.orchestrator(),
        clock,
        options.approver.clone(),
        timeline.clone(),
    )
    .await
    .map_err(DrillError::Connect)?
    .with_host(stack.host());
    let baseline_config = config_snapshot(&ops).await.map_err(DrillError::Config)?;
    let evaluator = Arc::new(Mutex::new(AlertEvaluator::for_all_runbooks()));
    evaluator.lock().await.evaluate(&ops).await;
    let firing_before = evaluator.lock().await.firing();
    let evaluation = spawn_evaluation(evaluator.clone(), ops.clone(), options.evaluation_interval);
    Ok(Prepared {
        ops,
        timeline,
        baseline_config,
        evaluator,
        firing_before,
        evaluation,
    })
}

/// A fault that struck, and how it ends.
pub(crate) struct Struck {
    description: String,
    /// The world's own work beside the faults (a backup): not where the incident began.
    pub(crate) decoy: bool,
    pub(crate) struck_at: DateTime<Utc>,
    /// Whether the world ends it during this drill (at its seeded recovery): only then
    /// is waiting while it is active waiting on the world. A slow provider that stays
    /// slow is the runbook's to work around, however long it waits.
    world_ends_it: bool,
    /// A rate limit's own wait once its caller stopped, which the world ends too.
    retry_after: Option<RetryAfter>,
    /// Heals at its seeded recovery, or when the drill ends.
    ending: Ending,
    healed_at: Arc<std::sync::Mutex<Option<DateTime<Utc>>>>,
}

enum Ending {
    /// Healed when the drill ends.
    AtEnd(Option<FaultGuard>),
    /// Healing on its own at its seeded time; the sender ends it early.
    Scheduled {
        stop: Option<oneshot::Sender<()>>,
        task: Option<tokio::task::JoinHandle<Result<(), FaultError>>>,
    },
}

impl Struck {
    /// Heals the fault now if it has not healed yet, and says whether healing worked.
    pub(crate) async fn end(&mut self) -> Result<(), FaultError> {
        match &mut self.ending {
            Ending::AtEnd(guard) => match guard.take() {
                Some(guard) => guard.heal().await,
                None => Ok(()),
            },
            Ending::Scheduled { stop, task } => {
                if let Some(stop) = stop.take() {
                    let _ = stop.send(());
                }
                match task.take() {
                    Some(task) => task.await.unwrap_or(Ok(())),
                    None => Ok(()),
                }
            }
        }
    }

    /// While it was active, if the world ends it, or while a rate limit's Retry-After
    /// ran after its last refused call: when the runbook's waiting was waiting on the
    /// world.
    fn world_interval(&self, until: DateTime<Utc>) -> Option<Interval> {
        let healed = *self.healed_at.lock().unwrap_or_else(|p| p.into_inner());
        if self.world_ends_it {
            return Some(Interval::new(self.struck_at, healed.unwrap_or(until)));
        }
        let (last_refused, lifts) = self.retry_after.as_ref()?.span()?;
        Some(Interval::new(last_refused, lifts.min(until)))
    }

    pub(crate) fn record(&self, started: DateTime<Utc>) -> FaultRecord {
        let healed = *self.healed_at.lock().unwrap_or_else(|p| p.into_inner());
        FaultRecord {
            fault: self.description.clone(),
            struck_at: modeled_between(started, self.struck_at),
            healed_at: healed.map(|at| modeled_between(started, at)),
            world_ends_it: self.world_ends_it,
        }
    }
}

/// Injects the scheduled faults at their times, arranging the world's recoveries.
pub(crate) async fn strike(
    stack: &Stack,
    schedule: &[ScheduledFault],
    timeline: &Timeline,
) -> Result<Vec<Struck>, DrillError> {
    let clock = stack.clock();
    let mut struck = Vec::with_capacity(schedule.len());
    for scheduled in schedule {
        let elapsed = timeline.elapsed();
        if scheduled.at > elapsed {
            clock.sleep(scheduled.at - elapsed).await;
        }
        let fault = &scheduled.fault;
        let guard = match fault.inject(stack).await {
            Ok(guard) => guard,
            Err(source) => {
                timeline.record(
                    Phase::Inject,
                    fault.to_string(),
                    None,
                    source.to_string(),
                    Outcome::Failed,
                );
                // Faults that struck before heal as their guards drop.
                return Err(DrillError::Inject {
                    fault: fault.to_string(),
                    source,
                });
            }
        };
        let struck_at = clock.now();
        let retry_after = guard.retry_after();
        let healed_at = Arc::new(std::sync::Mutex::new(None));
        let (ending, ends) = match scheduled.recovers_after {
            Some(after) => (
                schedule_recovery(guard, after, clock, timeline.clone(), healed_at.clone()),
                format!("the world ends it after {}", format_modeled(after)),
            ),
            None if fault.is_decoy() => (
                Ending::AtEnd(Some(guard)),
                "not a fault: the world's own work, which a remedy must leave alone".to_owned(),
            ),
            None if fault.world_may_end_it() => (
                Ending::AtEnd(Some(guard)),
                "the world does not end it during this drill".to_owned(),
            ),
            None => (
                Ending::AtEnd(Some(guard)),
                "only a remedy removes it".to_owned(),
            ),
        };
        timeline.record(Phase::Inject, fault.to_string(), None, ends, Outcome::Ok);
        struck.push(Struck {
            decoy: fault.is_decoy(),
            description: fault.to_string(),
            struck_at,
            world_ends_it: scheduled.recovers_after.is_some(),
            retry_after,
            ending,
            healed_at,
        });
    }
    Ok(struck)
}

/// Heals `guard` after `after` (modeled), or when told to stop, whichever is first.
fn schedule_recovery(
    guard: FaultGuard,
    after: Duration,
    clock: Clock,
    timeline: Timeline,
    healed_at: Arc<std::sync::Mutex<Option<DateTime<Utc>>>>,
) -> Ending {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let by_the_world = tokio::select! {
            () = clock.sleep(after) => true,
            _ = stopped => false,
        };
        let description = guard.description().to_owned();
        let healed = guard.heal().await;
        if by_the_world {
            *healed_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(clock.now());
            let (title, observed, outcome) = match &healed {
                Ok(()) => (
                    format!("the world ends it: {description}"),
                    String::new(),
                    Outcome::Ok,
                ),
                Err(error) => (
                    format!("the world's recovery failed: {description}"),
                    error.to_string(),
                    Outcome::Failed,
                ),
            };
            timeline.record(Phase::Inject, title, None, observed, outcome);
        }
        healed
    });
    Ending::Scheduled {
        stop: Some(stop),
        task: Some(task),
    }
}

/// Detect, investigate, resolve (or not), verify; the first hard stop ends the drill.
async fn drive(
    ops: &Ops,
    runbook: &dyn DynRunbook,
    scenario: &Scenario,
    options: &DrillOptions,
    evaluator: &Arc<Mutex<AlertEvaluator>>,
    faults: &[Struck],
    report: &mut DrillReport,
) -> Result<(), Stop> {
    let alert = scenario.expect.alert.as_str();
    let onset = faults
        .iter()
        .find(|f| !f.decoy)
        .map_or_else(|| ops.clock.now(), |f| f.struck_at);
    let since_onset = modeled_between(onset, ops.clock.now());
    let within = scenario.expect.detect_within().saturating_sub(since_onset);
    let fired_at = wait_for_alert(ops, evaluator, alert, true, within)
        .await
        .ok_or_else(|| Stop::NotDetected {
            alert: alert.to_owned(),
            within: scenario.expect.detect_within(),
        })?;
    report.time_to_detect = Some(modeled_between(onset, fired_at));

    let diagnosed = runbook
        .investigate(ops)
        .await
        .map_err(|error| match error {
            StepError::Escalate { .. } => Stop::Escalated(error),
            error => Stop::Investigation(error),
        })?;
    let diagnosis = diagnosed.report();
    if diagnosis.scenario.slug != scenario.expect.diagnosis {
        report.fail(format!(
            "diagnosis: expected {}, the runbook chose {}; evidence: {}",
            scenario.expect.diagnosis,
            diagnosis.scenario,
            diagnosis
                .evidence
                .iter()
                .map(|e| format!("{} = {}", e.what, e.seen))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    report.diagnosis = Some(diagnosis);
    if options.response == Response::Diagnose {
        return Ok(());
    }

    let criteria = runbook.criteria();
    // The drill's own readings, timed: they are not the runbook's time.
    let mut own = Vec::new();
    let reading = ops.clock.now();
    let before = readings_before(ops, &criteria).await;
    report.cache = CacheCost::at_resolution(ops).await;
    own.push(Interval::new(reading, ops.clock.now()));
    report.resolve_started = Some(ops.clock.now());
    if options.response == Response::Control {
        ops.timeline.note(
            Phase::Resolve,
            "Control run: the resolution is replaced by doing nothing",
            "",
        );
    } else {
        let resolved = runbook.resolve(ops, diagnosed.as_ref()).await;
        if let Some(cache) = &mut report.cache {
            let reading = ops.clock.now();
            cache.resolution_ended(ops).await;
            own.push(Interval::new(reading, ops.clock.now()));
        }
        if scenario.expect.escalates {
            judge_escalation(ops, evaluator, alert, resolved, report).await;
            return Ok(());
        }
        resolved.map_err(Stop::Resolution)?;
    }
    if scenario.expect.escalates {
        report.fail(format!(
            "the runbook cannot fix this incident and must escalate it, but {}",
            if options.response == Response::Control {
                "the control run did nothing"
            } else {
                "it went on to verify"
            }
        ));
        return Ok(());
    }

    // A control run has shown what it shows at its first failed criterion.
    let stop_at_first_failure = options.response == Response::Control;
    let outcomes = verify_all(ops, &criteria, &before, stop_at_first_failure).await;
    for outcome in outcomes.iter().filter(|o| !o.passed) {
        report.fail(format!("verification {outcome}"));
    }
    report.verification = outcomes;
    if !report.verification.iter().all(|o| o.passed) {
        return Ok(());
    }
    let clearing = ops.clock.now();
    let cleared_at = wait_for_alert(ops, evaluator, alert, false, CLEAR_BOUND)
        .await
        .ok_or_else(|| Stop::StillFiring {
            alert: alert.to_owned(),
            waited: CLEAR_BOUND,
        })?;
    ops.timeline.record_wait(
        Phase::Verify,
        format!("{alert} cleared"),
        None,
        "",
        Outcome::Ok,
        modeled_between(clearing, cleared_at),
    );

    let ttr = modeled_between(fired_at, cleared_at);
    let window = Interval::new(fired_at, cleared_at);
    let world: Vec<Interval> = faults
        .iter()
        .filter_map(|f| f.world_interval(cleared_at))
        .collect();
    let waited = world::waiting_on_world(window, waits(&ops.timeline), world.clone())
        .to_std()
        .unwrap_or_default();
    let engine = world::engine_compressed(
        window,
        engine_spans(ops),
        waits(&ops.timeline),
        world.clone(),
    )
    .to_std()
    .unwrap_or_default();
    let own = world::own_readings(window, own, waits(&ops.timeline), world)
        .to_std()
        .unwrap_or_default();
    let runbook_time = ttr
        .saturating_sub(waited)
        .saturating_sub(engine)
        .saturating_sub(own);
    report.time_to_resolve = Some(ttr);
    report.waiting_on_world = Some(waited);
    report.engine_compressed = Some(engine);
    report.own_readings = Some(own);
    report.runbook_time = Some(runbook_time);
    if runbook_time > scenario.expect.budget() {
        report.fail(format!(
            "runbook time {} (time to resolve {} less {} waiting on the world, {} of \
             the container engine's calls at compressed time and {} of the drill's own \
             readings) exceeds the budget of {}",
            format_modeled(runbook_time),
            format_modeled(ttr),
            format_modeled(waited),
            format_modeled(engine),
            format_modeled(own),
            format_modeled(scenario.expect.budget())
        ));
    }
    if options.resolve_twice && options.response == Response::Runbook {
        resolve_again(
            ops,
            runbook,
            diagnosed.as_ref(),
            (&criteria, &before),
            evaluator,
            alert,
            report,
        )
        .await;
    }
    Ok(())
}

/// Remediation safety: the same resolution, run again once the incident is over. A
/// runbook is run twice in real life (a second responder, a retry after a timeout, a
/// page that fires again) and after the fact (the fault gone by the time anyone acts);
/// either must do no harm. On the healed stack the drill resolves again with the same
/// diagnosis and holds it to what once achieved: the resolution does not fail (it may
/// escalate, which is reported), verification still passes, the alert stays clear,
/// and `metadata_enrichment_config` is as the first resolution left it (a step such as
/// "raise the timeout by 30 s" is not idempotent). What the drill checks at its end
/// (the ledger, alerts the remediation raised, the configuration against the
/// baseline) then covers both resolutions.
async fn resolve_again(
    ops: &Ops,
    runbook: &dyn DynRunbook,
    diagnosis: &dyn runbooks::runbook::ErasedDiagnosis,
    (criteria, before): (
        &[runbooks::criteria::Criterion],
        &[Option<runbooks::probe::Reading>],
    ),
    evaluator: &Arc<Mutex<AlertEvaluator>>,
    alert: &str,
    report: &mut DrillReport,
) {
    let config_once = config_snapshot(ops).await;
    ops.timeline.note(
        Phase::Resolve,
        "Resolve again, on the healed stack",
        "the same resolution once more: it must do no harm",
    );
    let outcome = match runbook.resolve(ops, diagnosis).await {
        Ok(()) => "resolved, no harm done".to_owned(),
        Err(error @ StepError::Escalate { .. }) => {
            format!("escalated ({error}), no harm done")
        }
        Err(error) => {
            report.fail(format!(
                "resolving again on the healed stack failed: {error}"
            ));
            format!("failed: {error}")
        }
    };
    for outcome in verify_all(ops, criteria, before, false).await {
        if !outcome.passed {
            report.fail(format!("after resolving again, verification {outcome}"));
        }
    }
    if let AlertState::Firing { .. } = evaluator.lock().await.state(alert) {
        report.fail(format!(
            "{alert} fired again after the resolution was run a second time"
        ));
    }
    match (config_once, config_snapshot(ops).await) {
        (Ok(once), Ok(twice)) if once != twice => {
            let changed: Vec<String> = twice
                .iter()
                .filter(|row| !once.contains(row))
                .cloned()
                .collect();
            report.fail(format!(
                "resolving again changed metadata_enrichment_config again (not idempotent): {}",
                changed.join("; ")
            ));
        }
        (Ok(_), Ok(_)) => {}
        (Err(error), _) | (_, Err(error)) => report.fail(format!(
            "reading metadata_enrichment_config around the second resolution failed: {error}"
        )),
    }
    report.resolved_again = Some(outcome);
}

/// A scenario the runbook cannot fix passes when the resolution escalates, with its
/// evidence; a resolution that returns as if it had fixed it, or fails any other way,
/// fails the drill. Whether the alert still fired then is recorded: an escalation on
/// evidence that the fault is back (a leak refilling the pool) may come before the
/// alert fires again.
async fn judge_escalation(
    ops: &Ops,
    evaluator: &Arc<Mutex<AlertEvaluator>>,
    alert: &str,
    resolved: Result<(), StepError>,
    report: &mut DrillReport,
) {
    match resolved {
        Err(error @ StepError::Escalate { .. }) => {
            let firing = evaluator.lock().await.is_firing(alert);
            ops.timeline.note(
                Phase::Verify,
                "Escalated, as this incident needs",
                format!(
                    "{error}; {alert} {}",
                    if firing {
                        "still fires"
                    } else {
                        "has cleared for now"
                    }
                ),
            );
            report.escalated = Some(error.to_string());
        }
        Err(error) => report.fail(format!(
            "the runbook must escalate this incident, but its resolution failed: {error}"
        )),
        Ok(()) => report.fail(
            "the runbook cannot fix this incident and must escalate it, but it returned \
             as if it had resolved it"
                .to_owned(),
        ),
    }
}

/// The waits of the response (the runbook's polls and pauses, its verification, the
/// alert's clearing) as intervals of modeled time.
/// The runbook's calls that changed a service, as the engine took them.
fn engine_spans(ops: &Ops) -> Vec<world::EngineSpan> {
    ops.engine
        .calls()
        .into_iter()
        .map(|call| world::EngineSpan {
            modeled: Interval::new(call.from, call.to),
            real: chrono::TimeDelta::from_std(call.real).unwrap_or_default(),
        })
        .collect()
}

fn waits(timeline: &Timeline) -> Vec<Interval> {
    let start = timeline.started_at();
    timeline
        .entries()
        .into_iter()
        .filter(|e| matches!(e.phase, Phase::Resolve | Phase::Verify))
        .filter_map(|e| {
            let waited = e.waited?;
            let end = start + chrono::TimeDelta::from_std(e.at).ok()?;
            Some(Interval::new(
                end - chrono::TimeDelta::from_std(waited).ok()?,
                end,
            ))
        })
        .collect()
}

/// What the response left behind: every track accounted for, the configuration as it
/// was (unless the scenario allows the change), no alert raised by the remediation,
/// and every alert rule readable.
async fn check_aftermath(
    ops: &Ops,
    scenario: &Scenario,
    evaluator: &Arc<Mutex<AlertEvaluator>>,
    firing_before: &[&'static str],
    baseline_config: &[String],
    report: &mut DrillReport,
) {
    if let Some(cache) = &mut report.cache {
        cache.close(ops).await;
        ops.timeline.note(Phase::Ledger, "Cache", cache.to_string());
    }
    match ledger::take(&ops.db).await {
        Ok(ledger) => {
            ops.timeline.note(Phase::Ledger, "Ledger", ledger.summary());
            for problem in ledger.problems() {
                report.fail(format!("ledger: {problem}"));
            }
            report.ledger = Some(ledger);
        }
        Err(error) => report.fail(format!("ledger: reading it failed: {error}")),
    }
    let unprompted = report.response == Response::Unprompted;
    match config_snapshot(ops).await {
        Ok(config_after)
            if config_after != baseline_config && !scenario.expect.config_may_change =>
        {
            let changed = format!(
                "remediation left metadata_enrichment_config changed: {}",
                config_drift(baseline_config, &config_after).join("; ")
            );
            // With no incident, a change the report names is allowed; it is still
            // a change nobody needed.
            if unprompted {
                report.warnings.push(changed);
            } else {
                report.fail(changed);
            }
        }
        Ok(_) => {}
        Err(error) => report.fail(format!(
            "reading metadata_enrichment_config after the drill failed: {error}"
        )),
    }
    let evaluator = evaluator.lock().await;
    for fired in evaluator.fired() {
        report.alerts_fired.push(fired.alert.to_string());
    }
    // Raised by the remediation: its condition began to hold only after the
    // resolution started (an alert pending since the fault is the fault's).
    if let Some(start) = report.resolve_started {
        if unprompted {
            // With no incident, no alert is expected, the runbook's own included, and
            // one that only went pending was raised all the same.
            for alert in evaluator.tripped_since(start, firing_before) {
                report.fail(format!(
                    "with no incident, the runbook raised an alert: {alert} (pending or firing)"
                ));
            }
        } else {
            for alert in evaluator.raised_since(
                start,
                &scenario.expect.alert,
                &scenario.expect.tolerated_alerts,
                firing_before,
            ) {
                report.fail(format!("remediation raised a new alert: {alert}"));
            }
        }
    }
    for failure in evaluator.probe_failures() {
        let line = failure.to_string();
        // With no fault, a probe that could not be read is a service the runbook
        // took down.
        if failure.ever_read && !unprompted {
            report.warnings.push(line);
        } else {
            report.fail(line);
        }
    }
}

/// The rows of `after` that `before` did not have: what a remediation changed.
pub(crate) fn config_drift(before: &[String], after: &[String]) -> Vec<String> {
    after
        .iter()
        .filter(|row| !before.contains(row))
        .cloned()
        .collect()
}

/// Waits (modeled, bounded) until `alert` is firing (or, with `firing = false`, not
/// firing), returning when it was seen so.
pub(crate) async fn wait_for_alert(
    ops: &Ops,
    evaluator: &Arc<Mutex<AlertEvaluator>>,
    alert: &str,
    firing: bool,
    bound: Duration,
) -> Option<DateTime<Utc>> {
    wait::until(ops.clock, bound, Duration::from_secs(5), || async {
        match evaluator.lock().await.state(alert) {
            AlertState::Firing { since } if firing => Poll::Ready(since),
            AlertState::Firing { .. } => Poll::Pending("firing".into()),
            _ if !firing => Poll::Ready(ops.clock.now()),
            state => Poll::Pending(format!("{state:?}")),
        }
    })
    .await
    .ok()
    .map(|done| done.value)
}

pub(crate) fn spawn_evaluation(
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

pub(crate) fn modeled_between(from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
    (to - from).to_std().unwrap_or_default()
}

/// The config table, one line per row, for detecting what remediation changed.
#[allow(clippy::type_complexity)] // one row of the config table, read once
pub(crate) async fn config_snapshot(ops: &Ops) -> Result<Vec<String>, sqlx::Error> {
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
