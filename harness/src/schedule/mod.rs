//! Fault schedules: root-cause faults with no runbook named, drilled through whichever
//! alerts fire.
//!
//! A scenario names its runbook, the alert it must raise and the diagnosis it must
//! reach. Production does not: faults arrive together, one alert leads to another, and
//! the runbooks that answer them run on a stack another fault is still breaking. A
//! fault schedule is that world: one or more faults from the scenario vocabulary
//! with their onsets, durations and the workload beside them, watched for a while.
//! [`run::drill_schedule`] answers every alert that fires with its own runbook and
//! holds the whole response to properties that any correct set of runbooks keeps,
//! whatever the faults ([`report`]): nothing lost or duplicated, every alert that
//! fired resolved or explicitly escalated with its evidence, no alert raised by a
//! remediation, the configuration restored or its change declared.
//!
//! The property test (`tests/fault_schedules.rs`) generates schedules with proptest and
//! shrinks a failing one to a minimal schedule; [`to_toml`] writes it as a file that
//! `drill run --scenario-file` reproduces. A schedule file is a scenario file with a
//! `[watch]` table in place of `runbook` and `[expect]`.

pub mod report;
pub mod run;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use stack::{TurnKind, Workload};

use crate::scenario::{
    self, FaultSpec, ScenarioError, ScheduledFault, WorkloadSpec, default_scale, from_toml,
};

pub use report::{AlertResponse, ResponseOutcome, ScheduleReport};
pub use run::{drill_schedule, drill_schedule_with};

/// The longest watch a schedule may ask for: a day of modeled time.
const LONGEST_WATCH_MINUTES: f64 = 24.0 * 60.0;

/// A parsed fault schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultSchedule {
    /// `generated/3f1c…`, or `<dir>/<stem>` of its file.
    pub id: String,
    pub title: String,
    /// Modeled seconds per real second.
    pub scale: f64,
    pub workload: Workload,
    pub faults: Vec<FaultSpec>,
    /// How long (modeled, from the first fault's onset) the stack is watched for
    /// alerts; a response that began before it ends is seen through.
    pub watch: Duration,
    pub path: PathBuf,
}

impl FaultSchedule {
    /// The faults with every time and amount drawn for `seed`, in the order they
    /// strike.
    pub fn schedule(&self, seed: u64) -> Vec<ScheduledFault> {
        scenario::draw(&self.faults, seed)
    }

    /// How its stack shares the machine (see [`stack::turn`]).
    pub fn turn(&self) -> TurnKind {
        scenario::turn_for(self.scale, &self.workload, &self.faults)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleFile {
    title: String,
    #[serde(default = "default_scale")]
    scale: f64,
    workload: Option<WorkloadSpec>,
    #[serde(default, rename = "fault")]
    faults: Vec<FaultSpec>,
    watch: WatchSpec,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WatchSpec {
    /// Modeled minutes, from the first fault's onset.
    minutes: f64,
}

/// Whether `text` is a fault schedule's file (it has a `[watch]` table) rather than a
/// scenario's. Text that is not TOML at all is neither; the scenario parser then
/// says where it is wrong.
pub fn is_schedule(text: &str) -> bool {
    text.parse::<toml::Table>()
        .is_ok_and(|table| table.contains_key("watch"))
}

/// Parses one fault schedule from its text; `id` and `path` name it in errors.
pub fn parse(id: &str, path: &Path, text: &str) -> Result<FaultSchedule, ScenarioError> {
    let file: ScheduleFile = from_toml(path, text)?;
    let semantic = |message: String| ScenarioError::Semantic {
        path: path.to_owned(),
        message,
    };
    if !(1.0..=100_000.0).contains(&file.scale) {
        return Err(semantic(format!(
            "scale must be between 1 and 100000, got {}",
            file.scale
        )));
    }
    if file.faults.is_empty() {
        return Err(semantic(
            "a fault schedule needs at least one [[fault]]".into(),
        ));
    }
    if !(file.watch.minutes > 0.0 && file.watch.minutes <= LONGEST_WATCH_MINUTES) {
        return Err(semantic(format!(
            "watch.minutes must be above 0 and at most {LONGEST_WATCH_MINUTES}, got {}",
            file.watch.minutes
        )));
    }
    Ok(FaultSchedule {
        id: id.to_owned(),
        title: file.title,
        scale: file.scale,
        workload: file.workload.map_or_else(Workload::default, Workload::from),
        faults: file.faults,
        watch: Duration::from_secs_f64(file.watch.minutes * 60.0),
        path: path.to_owned(),
    })
}

/// Reads and parses one schedule file; its id is `<parent dir>/<file stem>`.
pub fn load_file(path: &Path) -> Result<FaultSchedule, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&scenario::file_id(path), path, &text)
}

/// The schedule as a file [`parse`] reads back to the same schedule.
pub fn to_toml(schedule: &FaultSchedule) -> Result<String, toml::ser::Error> {
    toml::to_string(&ScheduleFile {
        title: schedule.title.clone(),
        scale: schedule.scale,
        workload: Some(schedule.workload.into()),
        faults: schedule.faults.clone(),
        watch: WatchSpec {
            minutes: schedule.watch.as_secs_f64() / 60.0,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::api::Provider;

    const SCHEDULE: &str = r#"
title = "Spotify down while MusicBrainz rate-limits"

[workload]
tracks_per_minute = 30

[[fault]]
kind = "provider-outage"
provider = "spotify"
at_minutes = 2
recovers_after_minutes = 12

[[fault]]
kind = "rate-limit"
provider = "musicbrainz"
quiet_minutes = 4
at_minutes = 3

[watch]
minutes = 45
"#;

    fn parsed() -> FaultSchedule {
        parse("x/s", Path::new("s.toml"), SCHEDULE).expect("the schedule parses")
    }

    #[test]
    fn a_schedule_file_parses_into_faults_workload_and_a_watch() {
        let schedule = parsed();
        assert_eq!(schedule.faults.len(), 2);
        assert_eq!(schedule.watch, Duration::from_secs(45 * 60));
        assert_eq!(schedule.workload.tracks_per_minute, 30);
        let drawn = schedule.schedule(1);
        assert_eq!(drawn[0].at, Duration::from_secs(120));
        assert_eq!(drawn[0].recovers_after, Some(Duration::from_secs(12 * 60)));
    }

    #[test]
    fn a_schedule_is_told_from_a_scenario_by_its_watch() {
        assert!(is_schedule(SCHEDULE));
        let scenario = std::fs::read_to_string(
            scenario::default_dir().join("dlq-overflow/a-breaker-errors.toml"),
        )
        .expect("a shipped scenario");
        assert!(!is_schedule(&scenario));
        assert!(!is_schedule("not = [toml"));
    }

    #[test]
    fn a_schedule_round_trips_through_its_file_form() {
        let schedule = parsed();
        let text = to_toml(&schedule).expect("a schedule serialises");
        let again = parse("x/s", Path::new("s.toml"), &text).expect("it parses back");
        assert_eq!(again, schedule, "{text}");
    }

    #[test]
    fn a_schedule_without_faults_or_with_no_watch_is_refused_with_why() {
        let head = SCHEDULE.split("[[fault]]").next().unwrap();
        let error = parse(
            "x",
            Path::new("s.toml"),
            &format!("{head}[watch]\nminutes = 5\n"),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("at least one [[fault]]"), "{error}");
        let error = parse(
            "x",
            Path::new("s.toml"),
            &SCHEDULE.replace("minutes = 45", "minutes = 0"),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("watch.minutes must be above 0"), "{error}");
        let error = parse(
            "x",
            Path::new("s.toml"),
            &SCHEDULE.replace("provider = \"spotify\"", "provider = \"tidal\""),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.starts_with("s.toml:7:") && error.contains("tidal"),
            "{error}"
        );
    }

    #[test]
    fn a_schedule_names_no_runbook() {
        let error = parse(
            "x",
            Path::new("s.toml"),
            &format!("runbook = \"dlq-overflow\"\n{SCHEDULE}"),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("unknown field `runbook`"), "{error}");
        assert!(matches!(
            parsed().faults[0],
            FaultSpec::ProviderOutage {
                provider: Provider::Spotify,
                ..
            }
        ));
    }
}
