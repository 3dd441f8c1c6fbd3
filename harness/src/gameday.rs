//! Game days: a scenario's incident on a running stack, with a person responding.
//!
//! The drill engine's pieces, with the runbook's automation replaced by a person: the
//! stack is reset, the scenario's faults strike at their seeded times under its
//! workload, every alert rule is evaluated, and when the scenario's alert fires the
//! responder is paged ([`Event::Paged`]). From then on the game day watches: what the
//! responder does is observed from the stack ([`crate::observer`]), the board's
//! signals are sampled ([`crate::signals`]), and the game day ends when the alert has
//! cleared and the runbook's own verification holds for a stability window, when its
//! time limit passes, when the responder gives up, or when a halt condition trips.
//! Then the ledger, the configuration and the alerts tell what the response cost,
//! and [`GameDayReport`] sets the responder's actions beside the runbook's steps.

use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use runbooks::DynRunbook;
use runbooks::alert::Severity;
use runbooks::criteria::{CriterionOutcome, readings_before, verify_all};
use runbooks::ops::timeline::format_modeled;
use runbooks::ops::{ConnectError, Ops, Timeline};
use serde::{Deserialize, Serialize};
use stack::{Stack, StackError};
use tokio::sync::{Mutex, mpsc, watch};

use crate::alerts::{AlertEvaluator, AlertState};
use crate::ledger::{self, Ledger};
use crate::observer::{Action, Observer, ObserverError};
use crate::report::{DrillReport, FaultRecord};
use crate::runner::{config_snapshot, modeled_between, spawn_evaluation, strike};
use crate::scenario::Scenario;
use crate::signals::{History, Sample, spawn_sampler};
use runbooks::playbook::{self, Matcher, WrittenStep};

/// What ends a game day early, as a chaos platform's stop conditions do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Halt {
    /// A track that could have been enriched was archived or lost.
    LostWork,
    /// An alert other than the incident's began to fire after the page.
    NewAlert,
}

impl std::str::FromStr for Halt {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "lost-work" => Ok(Halt::LostWork),
            "new-alert" => Ok(Halt::NewAlert),
            other => Err(format!(
                "unknown halt condition '{other}' (known: lost-work, new-alert)"
            )),
        }
    }
}

/// How to run a game day.
#[derive(Clone, Debug)]
pub struct GameDayPlan {
    pub scenario: Scenario,
    /// Whether the responder was told the scenario (the report reveals it either way).
    pub blind: bool,
    pub seed: u64,
    /// Modeled time from the start after which the game day ends unresolved.
    pub time_limit: Duration,
    /// Modeled time the alert must stay clear, with the verification passed, to count
    /// as resolved.
    pub stable_for: Duration,
    pub halt_on: Vec<Halt>,
    /// Modeled time between two samples of the board's signals.
    pub sample_every: Duration,
}

impl GameDayPlan {
    /// A plan with the defaults: a time limit of the alert's detection allowance plus
    /// three times the runbook's typical resolution, five stable minutes, no halts.
    pub fn new(scenario: Scenario, seed: u64, typical_resolution: Duration) -> Self {
        let time_limit = scenario.expect.detect_within() + typical_resolution * 3;
        Self {
            scenario,
            blind: false,
            seed,
            time_limit,
            stable_for: Duration::from_secs(5 * 60),
            halt_on: Vec::new(),
            sample_every: Duration::from_secs(15),
        }
    }
}

/// Draws a scenario from `pool` with `seed`, for a blind game day.
pub fn draw(pool: &[Scenario], seed: u64) -> Option<&Scenario> {
    if pool.is_empty() {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // A stream of its own, so the draw does not share numbers with the fault times.
    rng.set_stream(0x6761_6d65);
    pool.get(rng.random_range(0..pool.len()))
}

/// The page: what a pager shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Page {
    pub alert: String,
    pub severity: String,
    pub threshold: String,
    pub runbook_title: String,
    pub at: DateTime<Utc>,
    /// Modeled minutes since the game day began.
    pub minute: f64,
}

/// What the game day tells whoever runs it, as it happens.
#[derive(Clone, Debug)]
pub enum Event {
    /// The faults are about to strike; the clock runs.
    Started,
    Paged(Page),
    Acknowledged {
        after: Duration,
    },
    /// A line for the facilitator's log.
    Note(String),
}

/// An instant in modeled and in wall time.
type Moment = (DateTime<Utc>, Instant);

/// The responder's and the facilitator's hands on a running game day.
#[derive(Clone)]
pub struct Controls {
    ack: Arc<StdMutex<Option<Moment>>>,
    give_up: watch::Sender<bool>,
    clock: Arc<StdMutex<Option<wire::Clock>>>,
    observer: Arc<StdMutex<Option<Observer>>>,
}

impl Default for Controls {
    fn default() -> Self {
        Self {
            ack: Arc::default(),
            give_up: watch::channel(false).0,
            clock: Arc::default(),
            observer: Arc::default(),
        }
    }
}

impl Controls {
    /// Acknowledges the page (the first acknowledgement counts). Returns whether it
    /// was the first.
    pub fn acknowledge(&self) -> bool {
        let now = self
            .clock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map_or_else(Utc::now, |c| c.now());
        let mut ack = self.ack.lock().unwrap_or_else(|p| p.into_inner());
        if ack.is_some() {
            return false;
        }
        *ack = Some((now, Instant::now()));
        true
    }

    /// Records an action the stack cannot see by itself (a compose action carried out
    /// for the responder), once the game day observes.
    pub fn record(&self, kind: crate::observer::ActionKind) {
        if let Some(observer) = &*self.observer.lock().unwrap_or_else(|p| p.into_inner()) {
            observer.record(kind);
        }
    }

    /// Reads the services' recent requests before an action that restarts them.
    pub async fn catch_up(&self) {
        let observer = self
            .observer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(observer) = observer {
            observer.catch_up().await;
        }
    }

    /// Ends the game day now; it still reports and cleans up.
    pub fn give_up(&self) {
        let _ = self.give_up.send(true);
    }

    fn acknowledged(&self) -> Option<Moment> {
        *self.ack.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn given_up(&self) {
        let mut receiver = self.give_up.subscribe();
        let _ = receiver.wait_for(|given_up| *given_up).await;
    }
}

/// One alert rule on the board.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertLine {
    pub alert: String,
    pub severity: String,
    /// `inactive`, `pending`, `firing` or `resolved` (fired, and no longer).
    pub state: String,
    /// Modeled minutes since the game day began, when it entered its state.
    pub since_minute: Option<f64>,
}

/// What the live board shows: one snapshot, redrawn a few times per modeled minute.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BoardState {
    pub title: String,
    pub minute: f64,
    pub scale: f64,
    pub alerts: Vec<AlertLine>,
    pub sample: Option<Sample>,
    pub page: Option<Page>,
    pub acknowledged: bool,
    /// What the game day is waiting for, in a few words.
    pub status: String,
    pub ended: bool,
}

/// The live board, shared with whatever draws it.
pub type Board = Arc<StdMutex<BoardState>>;

/// How the game day ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// The alert cleared and the runbook's verification held for the stability window.
    Resolved,
    /// The time limit passed first.
    TimeLimit { limit: String, paged: bool },
    /// The responder gave up.
    GaveUp,
    /// A halt condition tripped.
    Halted { halt: Halt, reason: String },
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Resolved => {
                f.write_str("resolved: the alert cleared and the runbook's verification held")
            }
            Outcome::TimeLimit { limit, paged: true } => {
                write!(f, "time limit: not resolved within {limit}")
            }
            Outcome::TimeLimit {
                limit,
                paged: false,
            } => {
                write!(f, "time limit: the alert never fired within {limit}")
            }
            Outcome::GaveUp => f.write_str("the responder gave up"),
            Outcome::Halted { halt, reason } => write!(f, "halted ({halt:?}): {reason}"),
        }
    }
}

/// The runbook's automation on the same scenario and seed, for comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AutomationSummary {
    pub passed: bool,
    pub time_to_detect_minutes: Option<f64>,
    pub time_to_resolve_minutes: Option<f64>,
    pub runbook_time_minutes: Option<f64>,
    pub wall_seconds: f64,
    pub failures: Vec<String>,
}

impl AutomationSummary {
    pub fn of(report: &DrillReport) -> Self {
        Self {
            passed: report.passed(),
            time_to_detect_minutes: report.time_to_detect.map(minutes),
            time_to_resolve_minutes: report.time_to_resolve.map(minutes),
            runbook_time_minutes: report.runbook_time.map(minutes),
            wall_seconds: report.wall_seconds,
            failures: report.failures.clone(),
        }
    }
}

/// A step of the runbook and whether the responder did it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub line: usize,
    pub part: String,
    pub text: String,
    /// `done`, `amended`, `skipped`, or `not observable` (a `watch`, `df -h`, …).
    pub status: String,
    /// Modeled minute of the first action that did it.
    pub done_at_minute: Option<f64>,
}

/// An action of the responder, as the report lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    pub minute: f64,
    pub wall_seconds: f64,
    pub what: String,
    /// `step (line N)`, `step, amended (line N)`, `step, out of order (line N)`, or `extra`.
    pub judged: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    pub raw: Action,
}

/// Everything a game day found.
#[derive(Clone, Debug, Serialize)]
pub struct GameDayReport {
    pub runbook: String,
    pub runbook_title: String,
    pub scenario: String,
    pub scenario_title: String,
    pub blind: bool,
    pub seed: u64,
    pub scale: f64,
    pub alert: String,
    pub severity: String,
    pub threshold: String,
    pub outcome: Outcome,
    pub faults: Vec<FaultRecord>,
    /// Modeled minutes from the start to the first fault.
    pub onset_minute: Option<f64>,
    pub page: Option<Page>,
    /// Modeled minutes: fault → page, page → acknowledgement, page → resolution.
    pub time_to_detect_minutes: Option<f64>,
    pub time_to_acknowledge_minutes: Option<f64>,
    pub time_to_resolve_minutes: Option<f64>,
    /// The same in wall seconds.
    pub time_to_acknowledge_wall_seconds: Option<f64>,
    pub time_to_resolve_wall_seconds: Option<f64>,
    pub typical_resolution_minutes: f64,
    pub budget_minutes: f64,
    pub automation: Option<AutomationSummary>,
    pub steps: Vec<StepRecord>,
    pub actions: Vec<ActionRecord>,
    pub verification: Vec<CriterionOutcome>,
    pub ledger: Option<Ledger>,
    /// What the ledger counts as lost or duplicated work.
    pub ledger_problems: Vec<String>,
    pub new_alerts: Vec<String>,
    pub config_left_changed: Vec<String>,
    pub signals: History,
    pub wall_seconds: f64,
}

/// A game day that could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum GameDayError {
    #[error("resetting the stack: {0}")]
    Reset(#[source] StackError),
    #[error("connecting to the stack: {0}")]
    Connect(#[source] ConnectError),
    #[error("observing the responder: {0}")]
    Observer(#[source] ObserverError),
    #[error("reading metadata_enrichment_config: {0}")]
    Config(#[source] sqlx::Error),
    #[error("injecting the scenario's faults: {0}")]
    Inject(#[source] crate::DrillError),
}

/// Where the game day stands, from the page on.
enum Phase {
    WaitingForAlert,
    Responding,
}

/// Runs a game day on `stack` until it ends, telling `events` as it goes and keeping
/// `board` current.
pub async fn run_gameday(
    stack: &Stack,
    runbook: &dyn DynRunbook,
    plan: &GameDayPlan,
    controls: &Controls,
    board: &Board,
    events: mpsc::UnboundedSender<Event>,
) -> Result<GameDayReport, GameDayError> {
    let wall_start = Instant::now();
    let scenario = &plan.scenario;
    let meta = runbook.meta();
    stack.reset().await.map_err(GameDayError::Reset)?;
    stack.set_workload(scenario.workload);
    let clock = stack.clock();
    *controls.clock.lock().unwrap_or_else(|p| p.into_inner()) = Some(clock);
    let timeline = Timeline::new(clock);
    let ops = Ops::connect_observer(
        stack.endpoints().clone(),
        stack.orchestrator(),
        clock,
        timeline.clone(),
    )
    .map_err(GameDayError::Connect)?
    .with_host(stack.host());
    let steps = playbook::steps_for(meta.title, scenario_letter(&scenario.id));
    let (observer, observing) = Observer::start(stack, ops.clone(), steps.clone())
        .await
        .map_err(GameDayError::Observer)?;
    *controls.observer.lock().unwrap_or_else(|p| p.into_inner()) = Some(observer.clone());
    let baseline_config = config_snapshot(&ops).await.map_err(GameDayError::Config)?;

    let evaluator = Arc::new(Mutex::new(AlertEvaluator::for_all_runbooks()));
    evaluator.lock().await.evaluate(&ops).await;
    let firing_before = evaluator.lock().await.firing();
    let evaluation = spawn_evaluation(evaluator.clone(), ops.clone(), Duration::from_secs(15));
    let start = clock.now();
    let history = Arc::new(StdMutex::new(History::starting(start)));
    let sampling = spawn_sampler(ops.clone(), plan.sample_every, history.clone());
    let title = if plan.blind {
        format!("game day (blind), seed {}", plan.seed)
    } else {
        format!("game day: {} — {}", scenario.id, scenario.title)
    };
    let drawing = spawn_board_updates(
        board.clone(),
        title,
        evaluator.clone(),
        history.clone(),
        controls.clone(),
        clock,
        start,
    );
    let _ = events.send(Event::Started);

    let schedule = scenario.schedule(plan.seed);
    let struck = tokio::select! {
        struck = strike(stack, &schedule, &timeline) => Some(struck),
        () = controls.given_up() => None,
    };
    let mut faults = match struck {
        Some(Ok(faults)) => faults,
        Some(Err(error)) => {
            for task in [evaluation, sampling, drawing, observing] {
                task.abort();
            }
            observer.finish(stack).await;
            return Err(GameDayError::Inject(error));
        }
        None => Vec::new(),
    };
    let onset = faults.iter().find(|f| !f.decoy).map(|f| f.struck_at);

    let mut page: Option<Page> = None;
    let mut paged_wall: Option<Instant> = None;
    let mut acknowledged = false;
    let mut resolved: Option<Moment> = None;
    let mut verification = Vec::new();
    let mut before = None;
    let criteria = runbook.criteria();
    let mut phase = Phase::WaitingForAlert;
    let mut last_halt_check = start;
    let tick = Duration::from_secs(5);
    let outcome = loop {
        if *controls.give_up.borrow() {
            break Outcome::GaveUp;
        }
        let now = clock.now();
        if modeled_between(start, now) >= plan.time_limit {
            break Outcome::TimeLimit {
                limit: format_modeled(plan.time_limit),
                paged: page.is_some(),
            };
        }
        if !acknowledged && let (Some(page), Some((at, _))) = (&page, controls.acknowledged()) {
            acknowledged = true;
            let _ = events.send(Event::Acknowledged {
                after: modeled_between(page.at, at),
            });
        }
        if modeled_between(last_halt_check, now) >= Duration::from_secs(20) {
            last_halt_check = now;
            if let Some(halted) =
                check_halts(plan, &ops, &evaluator, &firing_before, page.as_ref()).await
            {
                break halted;
            }
        }
        let state = evaluator.lock().await.state(&scenario.expect.alert);
        match phase {
            Phase::WaitingForAlert => {
                if let AlertState::Firing { since } = state {
                    let fired = Page {
                        alert: meta.rule.name.to_owned(),
                        severity: severity(meta.rule.severity).to_owned(),
                        threshold: meta.rule.threshold.to_owned(),
                        runbook_title: meta.title.to_owned(),
                        at: since,
                        minute: minutes(modeled_between(start, since)),
                    };
                    set_board(board, |b| b.page = Some(fired.clone()));
                    let _ = events.send(Event::Paged(fired.clone()));
                    before = Some(readings_before(&ops, &criteria).await);
                    page = Some(fired);
                    paged_wall = Some(Instant::now());
                    phase = Phase::Responding;
                }
            }
            Phase::Responding if state == AlertState::Inactive => {
                set_board(board, |b| {
                    b.status = "alert clear: checking the runbook's verification".into()
                });
                let cleared = (clock.now(), Instant::now());
                let readings = before.clone().unwrap_or_default();
                let checked = tokio::select! {
                    outcomes = verify_all(&ops, &criteria, &readings, true) => Some(outcomes),
                    () = controls.given_up() => None,
                    () = clock.sleep(plan.time_limit.saturating_sub(modeled_between(start, clock.now()))) => None,
                };
                let Some(outcomes) = checked else { continue };
                let passed = outcomes.iter().all(|o| o.passed);
                verification = outcomes;
                if passed {
                    set_board(board, |b| {
                        b.status = format!(
                            "verification passed: the alert must stay clear for {}",
                            format_modeled(plan.stable_for)
                        );
                    });
                    if stays_clear(&evaluator, &scenario.expect.alert, plan, clock, controls).await
                    {
                        resolved = Some(cleared);
                        break Outcome::Resolved;
                    }
                } else {
                    let failed: Vec<String> = verification
                        .iter()
                        .filter(|o| !o.passed)
                        .map(ToString::to_string)
                        .collect();
                    let _ = events.send(Event::Note(format!(
                        "the alert cleared but the verification does not hold yet: {}",
                        failed.join("; ")
                    )));
                }
            }
            Phase::Responding => {}
        }
        tokio::select! {
            () = clock.sleep(tick) => {}
            () = controls.given_up() => {}
        }
    };

    // What the response left behind.
    let new_alerts: Vec<String> = match &page {
        Some(page) => evaluator
            .lock()
            .await
            .raised_since(
                page.at,
                &scenario.expect.alert,
                &scenario.expect.tolerated_alerts,
                &firing_before,
            )
            .into_iter()
            .map(str::to_owned)
            .collect(),
        None => Vec::new(),
    };
    let (ledger, ledger_problems) = match ledger::take(&ops.db).await {
        Ok(ledger) => {
            let problems = ledger.problems();
            (Some(ledger), problems)
        }
        Err(error) => (None, vec![format!("reading the ledger failed: {error}")]),
    };
    let config_left_changed = match config_snapshot(&ops).await {
        Ok(after) => after
            .into_iter()
            .filter(|row| !baseline_config.contains(row))
            .collect(),
        Err(error) => vec![format!("reading the configuration failed: {error}")],
    };
    for task in [evaluation, sampling, drawing, observing] {
        task.abort();
    }
    observer.finish(stack).await;
    let mut records = Vec::new();
    for fault in &mut faults {
        if let Err(error) = fault.end().await {
            let _ = events.send(Event::Note(format!(
                "healing a fault after the game day: {error}"
            )));
        }
        records.push(fault.record(start));
    }
    set_board(board, |b| {
        b.ended = true;
        b.status = outcome.to_string();
    });

    let acknowledgement = controls.acknowledged();
    let (steps, actions) = judge(&steps, &observer.actions(), start, wall_start);
    let signals = history.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok(GameDayReport {
        runbook: meta.id().to_owned(),
        runbook_title: meta.title.to_owned(),
        scenario: scenario.id.clone(),
        scenario_title: scenario.title.clone(),
        blind: plan.blind,
        seed: plan.seed,
        scale: clock.scale(),
        alert: meta.rule.name.to_owned(),
        severity: severity(meta.rule.severity).to_owned(),
        threshold: meta.rule.threshold.to_owned(),
        outcome,
        faults: records,
        onset_minute: onset.map(|at| minutes(modeled_between(start, at))),
        time_to_detect_minutes: match (&page, onset) {
            (Some(page), Some(onset)) => Some(minutes(modeled_between(onset, page.at))),
            _ => None,
        },
        time_to_acknowledge_minutes: match (&page, acknowledgement) {
            (Some(page), Some((at, _))) => Some(minutes(modeled_between(page.at, at))),
            _ => None,
        },
        time_to_resolve_minutes: match (&page, resolved) {
            (Some(page), Some((at, _))) => Some(minutes(modeled_between(page.at, at))),
            _ => None,
        },
        time_to_acknowledge_wall_seconds: match (paged_wall, acknowledgement) {
            (Some(paged), Some((_, at))) => Some(at.saturating_duration_since(paged).as_secs_f64()),
            _ => None,
        },
        time_to_resolve_wall_seconds: match (paged_wall, resolved) {
            (Some(paged), Some((_, at))) => Some(at.saturating_duration_since(paged).as_secs_f64()),
            _ => None,
        },
        page,
        typical_resolution_minutes: minutes(meta.rule.typical_resolution),
        budget_minutes: minutes(scenario.expect.budget()),
        automation: None,
        steps,
        actions,
        verification,
        ledger,
        ledger_problems,
        new_alerts,
        config_left_changed,
        signals,
        wall_seconds: wall_start.elapsed().as_secs_f64(),
    })
}

/// The halt condition that tripped, if one did.
async fn check_halts(
    plan: &GameDayPlan,
    ops: &Ops,
    evaluator: &Arc<Mutex<AlertEvaluator>>,
    firing_before: &[&'static str],
    page: Option<&Page>,
) -> Option<Outcome> {
    for halt in &plan.halt_on {
        match halt {
            Halt::LostWork => {
                let Ok(ledger) = ledger::take(&ops.db).await else {
                    continue;
                };
                if ledger.lost_work > 0 || ledger.lost > 0 {
                    return Some(Outcome::Halted {
                        halt: Halt::LostWork,
                        reason: ledger.problems().join("; "),
                    });
                }
            }
            Halt::NewAlert => {
                let Some(page) = page else { continue };
                let raised = evaluator.lock().await.raised_since(
                    page.at,
                    &plan.scenario.expect.alert,
                    &plan.scenario.expect.tolerated_alerts,
                    firing_before,
                );
                if let Some(alert) = raised.first() {
                    return Some(Outcome::Halted {
                        halt: Halt::NewAlert,
                        reason: format!("{alert} began to fire after the page"),
                    });
                }
            }
        }
    }
    None
}

/// Whether the alert stays clear (neither pending nor firing) for the stability window.
async fn stays_clear(
    evaluator: &Arc<Mutex<AlertEvaluator>>,
    alert: &str,
    plan: &GameDayPlan,
    clock: wire::Clock,
    controls: &Controls,
) -> bool {
    let began = clock.now();
    while modeled_between(began, clock.now()) < plan.stable_for {
        if *controls.give_up.borrow() {
            return false;
        }
        if evaluator.lock().await.state(alert) != AlertState::Inactive {
            return false;
        }
        clock.sleep(Duration::from_secs(5)).await;
    }
    true
}

/// The responder's actions beside the runbook's steps: each step done, amended,
/// skipped or not observable; each action a step (in order or not) or extra.
fn judge(
    steps: &[WrittenStep],
    actions: &[Action],
    start: DateTime<Utc>,
    wall_start: Instant,
) -> (Vec<StepRecord>, Vec<ActionRecord>) {
    let wall_origin =
        Utc::now() - chrono::TimeDelta::from_std(wall_start.elapsed()).unwrap_or_default();
    let mut highest_done: Option<usize> = None;
    let mut records = Vec::with_capacity(actions.len());
    for action in actions {
        let minute = minutes(modeled_between(start, action.modeled_at));
        let wall_seconds = (action.wall_at - wall_origin).num_milliseconds() as f64 / 1000.0;
        let (judged, line) = match action.step.and_then(|i| steps.get(i)) {
            Some(step) => {
                let in_order = highest_done
                    .is_none_or(|h| step.index >= h || same_part_earlier(steps, h, step));
                highest_done = Some(highest_done.map_or(step.index, |h| h.max(step.index)));
                let amended = action.fidelity == Some(playbook::Fidelity::Amended);
                let what = match (in_order, amended) {
                    (true, false) => "step",
                    (true, true) => "step, amended",
                    (false, false) => "step, out of order",
                    (false, true) => "step, amended, out of order",
                };
                (format!("{what} (line {})", step.line), Some(step.line))
            }
            None => ("extra".to_owned(), None),
        };
        records.push(ActionRecord {
            minute,
            wall_seconds,
            what: action.describe(),
            judged,
            line,
            raw: action.clone(),
        });
    }
    let step_records = steps
        .iter()
        .map(|step| {
            let first = actions.iter().find(|a| a.step == Some(step.index));
            let status = match (&step.matcher, first) {
                (Matcher::Unobservable, _) => "not observable",
                (_, Some(action)) if action.fidelity == Some(playbook::Fidelity::Amended) => {
                    "amended"
                }
                (_, Some(_)) => "done",
                (_, None) => "skipped",
            };
            StepRecord {
                line: step.line,
                part: step.part.to_owned(),
                text: step.text.clone(),
                status: status.to_owned(),
                done_at_minute: first.map(|a| minutes(modeled_between(start, a.modeled_at))),
            }
        })
        .collect();
    (step_records, records)
}

/// Going back within the investigation (reading again what was read) is not out of
/// order; going back from the resolution to the investigation is.
fn same_part_earlier(steps: &[WrittenStep], highest: usize, step: &WrittenStep) -> bool {
    steps.get(highest).is_some_and(|h| h.part == step.part) || step.part == "investigation"
}

/// Keeps the board current until aborted: a few times per modeled minute, at most
/// once a real second.
fn spawn_board_updates(
    board: Board,
    title: String,
    evaluator: Arc<Mutex<AlertEvaluator>>,
    history: Arc<StdMutex<History>>,
    controls: Controls,
    clock: wire::Clock,
    start: DateTime<Utc>,
) -> tokio::task::JoinHandle<()> {
    let every = clock
        .to_real(Duration::from_secs(15))
        .min(Duration::from_secs(1));
    tokio::spawn(async move {
        let rules = runbooks::alert_rules();
        loop {
            let alerts = {
                let evaluator = evaluator.lock().await;
                rules
                    .iter()
                    .map(|rule| {
                        let fired = evaluator
                            .fired()
                            .iter()
                            .rev()
                            .find(|f| f.alert == rule.name);
                        let (state, since) = match (evaluator.state(rule.name), fired) {
                            (AlertState::Firing { since }, _) => ("firing", Some(since)),
                            (AlertState::Pending { since }, _) => ("pending", Some(since)),
                            (AlertState::Inactive, Some(fired)) => ("resolved", Some(fired.at)),
                            (AlertState::Inactive, None) => ("inactive", None),
                        };
                        AlertLine {
                            alert: rule.name.to_owned(),
                            severity: severity(rule.severity).to_owned(),
                            state: state.to_owned(),
                            since_minute: since.map(|s| minutes(modeled_between(start, s))),
                        }
                    })
                    .collect()
            };
            let sample = history
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .latest()
                .cloned();
            let acknowledged = controls.acknowledged().is_some();
            set_board(&board, |b| {
                b.title = title.clone();
                b.minute = minutes(modeled_between(start, clock.now()));
                b.scale = clock.scale();
                b.alerts = alerts;
                b.sample = sample;
                b.acknowledged = acknowledged;
                if b.status.is_empty() || (b.page.is_none() && !b.ended) {
                    b.status = "watching: no page yet".into();
                }
                if b.page.is_some() && !b.acknowledged && !b.ended {
                    b.status = "PAGED: acknowledge with `a`, or `drill gameday ack`".into();
                } else if b.page.is_some() && b.status.starts_with("PAGED") {
                    b.status = "acknowledged: responding".into();
                }
            });
            tokio::time::sleep(every).await;
        }
    })
}

fn set_board(board: &Board, change: impl FnOnce(&mut BoardState)) {
    change(&mut board.lock().unwrap_or_else(|p| p.into_inner()));
}

fn severity(severity: Severity) -> &'static str {
    match severity {
        Severity::P1 => "P1",
        Severity::P2 => "P2",
    }
}

fn minutes(d: Duration) -> f64 {
    (d.as_secs_f64() / 60.0 * 100.0).round() / 100.0
}

/// `db-connection-pool/b-connection-leak` → `B`: the runbook text's scenario letter.
fn scenario_letter(id: &str) -> Option<char> {
    let name = id.rsplit('/').next()?;
    let (letter, _) = name.split_once('-')?;
    let mut chars = letter.chars();
    let c = chars.next()?;
    (chars.next().is_none() && c.is_ascii_alphabetic()).then(|| c.to_ascii_uppercase())
}

impl GameDayReport {
    /// The summary a person reads at the end.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let opt = |m: Option<f64>| m.map_or_else(|| "—".to_owned(), |m| format!("{m:.1} min"));
        let _ = writeln!(out, "game day over: {}", self.outcome);
        let _ = writeln!(
            out,
            "  scenario{}: {} — {} (seed {}, scale {})",
            if self.blind { " (was blind)" } else { "" },
            self.scenario,
            self.scenario_title,
            self.seed,
            self.scale
        );
        let _ = writeln!(
            out,
            "  runbook: {} ({} {}, {})",
            self.runbook_title, self.severity, self.alert, self.threshold
        );
        for fault in &self.faults {
            let _ = writeln!(
                out,
                "  injected at {}: {}",
                format_modeled(fault.struck_at),
                fault.fault
            );
        }
        let _ = writeln!(
            out,
            "  time to detect {}, to acknowledge {}{}, to resolve {}{} (typical {:.0} min, budget {:.1} min)",
            opt(self.time_to_detect_minutes),
            opt(self.time_to_acknowledge_minutes),
            self.time_to_acknowledge_wall_seconds
                .map_or(String::new(), |s| format!(" / {s:.0} s wall")),
            opt(self.time_to_resolve_minutes),
            self.time_to_resolve_wall_seconds
                .map_or(String::new(), |s| format!(" / {s:.0} s wall")),
            self.typical_resolution_minutes,
            self.budget_minutes
        );
        if let Some(auto) = &self.automation {
            let _ = writeln!(
                out,
                "  the runbook's automation on the same scenario and seed: {} — detect {}, resolve {} ({} runbook time)",
                if auto.passed {
                    "resolved"
                } else {
                    "did not resolve"
                },
                opt(auto.time_to_detect_minutes),
                opt(auto.time_to_resolve_minutes),
                opt(auto.runbook_time_minutes)
            );
        }
        let _ = writeln!(out, "  the responder's actions ({}):", self.actions.len());
        for action in &self.actions {
            let _ = writeln!(
                out,
                "    {:>6.1} min  {}  [{}]",
                action.minute, action.what, action.judged
            );
        }
        let skipped: Vec<&StepRecord> = self
            .steps
            .iter()
            .filter(|s| s.status == "skipped")
            .collect();
        if !skipped.is_empty() {
            let _ = writeln!(out, "  runbook steps skipped:");
            for step in skipped {
                let _ = writeln!(out, "    line {} ({}): {}", step.line, step.part, step.text);
            }
        }
        for outcome in &self.verification {
            let _ = writeln!(out, "  {outcome}");
        }
        if let Some(ledger) = &self.ledger {
            let _ = writeln!(out, "  ledger: {}", ledger.summary());
        }
        for problem in &self.ledger_problems {
            let _ = writeln!(out, "  ✗ {problem}");
        }
        for alert in &self.new_alerts {
            let _ = writeln!(out, "  ✗ new alert after the page: {alert}");
        }
        for row in &self.config_left_changed {
            let _ = writeln!(out, "  ! configuration left changed: {row}");
        }
        let _ = writeln!(out, "  {:.0} s of wall time", self.wall_seconds);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_letters_come_from_the_file_names() {
        assert_eq!(
            scenario_letter("db-connection-pool/b-connection-leak"),
            Some('B')
        );
        assert_eq!(scenario_letter("dlq-overflow/d-invalid-data"), Some('D'));
        assert_eq!(scenario_letter("disk-space/logs"), None);
    }

    #[test]
    fn a_blind_draw_depends_on_the_seed_alone() {
        let pool: Vec<Scenario> = ["a-one", "b-two", "c-three"]
            .iter()
            .map(|id| {
                let text = "runbook = \"db-connection-pool\"\ntitle = \"t\"\nscale = 30\n\
                    [workload]\ntracks_per_minute = 20\n\
                    [[fault]]\nkind = \"connection-leak\"\nservice = \"rest-api\"\nevery = 3\n\
                    [expect]\nalert = \"DatabaseConnectionPoolHigh\"\ndiagnosis = \"connection-leak\"\nbudget_minutes = 5\n";
                crate::scenario::parse(id, std::path::Path::new(id), text).expect("a scenario")
            })
            .collect();
        let draws: Vec<String> = (0..12)
            .map(|seed| draw(&pool, seed).map(|s| s.id.clone()).unwrap_or_default())
            .collect();
        for id in ["a-one", "b-two", "c-three"] {
            assert!(
                draws.iter().any(|d| d == id),
                "{id} is never drawn: {draws:?}"
            );
        }
        assert_eq!(draw(&pool, 5).map(|s| &s.id), draw(&pool, 5).map(|s| &s.id));
        assert!(draw(&[], 1).is_none());
    }

    #[test]
    fn halts_are_named_as_on_the_command_line() {
        assert_eq!("lost-work".parse::<Halt>(), Ok(Halt::LostWork));
        assert!(
            "everything"
                .parse::<Halt>()
                .unwrap_err()
                .contains("lost-work")
        );
    }
}
