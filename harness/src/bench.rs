//! Time-to-resolution as a benchmark: drills under many seeds, summarised per scenario.
//!
//! One drill's figures depend on its seed (onsets, recoveries, amounts, data), so a
//! single run says little about whether a runbook got slower. `drill bench` drills
//! each scenario under several seeds and keeps one [`Sample`] per drill; this module
//! turns samples into p50 / p90 / max per scenario ([`Summary`]), compares them with a
//! saved baseline ([`regressions`]), and lets a CI matrix share the work: the drills
//! are numbered in a fixed order and [`Partition`] picks every N-th, as nextest's
//! `--partition count:I/N` does, and [`BenchFile::merge`] puts the shards' files back
//! together.
//!
//! Runbook time is what is compared: time to detect belongs to the alert rule and the
//! world, waiting on the world to the fault. A baseline's scenario that is missing from
//! the current run is reported, not silently passed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::str::FromStr;
use std::time::Duration;

use runbooks::ops::timeline::format_modeled;
use serde::{Deserialize, Serialize};

use crate::report::DrillReport;

/// The figures of one drill, in modeled seconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The scenario's id, `runbook/slug`.
    pub scenario: String,
    pub seed: u64,
    pub passed: bool,
    /// From the first fault striking to the alert firing.
    pub ttd_secs: Option<f64>,
    /// From the alert firing to its clearing, less the waiting on the world and the
    /// container engine's compressed time.
    pub runbook_secs: Option<f64>,
    /// The part of the response spent waiting for the world (a provider to come back).
    pub world_secs: Option<f64>,
    pub budget_secs: f64,
    pub typical_secs: f64,
    /// Why a failed drill failed (its first failure), so a merged table says why
    /// without the drill's log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

impl Sample {
    pub fn of(report: &DrillReport) -> Self {
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
        Self {
            scenario: report.scenario.clone(),
            seed: report.seed,
            passed: report.passed(),
            ttd_secs: secs(report.time_to_detect),
            runbook_secs: secs(report.runbook_time),
            world_secs: secs(report.waiting_on_world),
            budget_secs: report.budget.as_secs_f64(),
            typical_secs: report.typical_resolution.as_secs_f64(),
            failure: (!report.passed()).then(|| {
                report
                    .failures
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "the drill did not show what it must".to_owned())
            }),
        }
    }
}

/// What `drill bench --json` writes and `--baseline` / `--merge` read.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BenchFile {
    /// The file format; a reader refuses another.
    pub version: u32,
    pub samples: Vec<Sample>,
}

/// The only [`BenchFile::version`] this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum BenchFileError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a `drill bench --json` file: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("{path} is format version {found}; this drill reads version {FORMAT_VERSION}")]
    Version { path: String, found: u32 },
    #[error("{scenario} seed {seed} is in more than one of the merged files")]
    Duplicate { scenario: String, seed: u64 },
}

impl BenchFile {
    pub fn new(samples: Vec<Sample>) -> Self {
        Self {
            version: FORMAT_VERSION,
            samples,
        }
    }

    pub fn read(path: &std::path::Path) -> Result<Self, BenchFileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| BenchFileError::Read {
            path: shown.clone(),
            source,
        })?;
        let file: BenchFile =
            serde_json::from_str(&text).map_err(|source| BenchFileError::Parse {
                path: shown.clone(),
                source,
            })?;
        if file.version != FORMAT_VERSION {
            return Err(BenchFileError::Version {
                path: shown,
                found: file.version,
            });
        }
        Ok(file)
    }

    /// The shards of one partitioned run as one file; a drill in two shards is an error
    /// (the shards were not of one run).
    pub fn merge(files: Vec<BenchFile>) -> Result<Self, BenchFileError> {
        let mut seen = BTreeMap::new();
        for sample in files.into_iter().flat_map(|f| f.samples) {
            let key = (sample.scenario.clone(), sample.seed);
            if seen.contains_key(&key) {
                return Err(BenchFileError::Duplicate {
                    scenario: key.0,
                    seed: key.1,
                });
            }
            seen.insert(key, sample);
        }
        Ok(Self::new(seen.into_values().collect()))
    }
}

/// p50 / p90 / max of one figure over a scenario's drills (nearest rank).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Spread {
    pub p50: f64,
    pub p90: f64,
    pub max: f64,
}

impl Spread {
    /// `None` when no drill had the figure.
    pub fn of(mut values: Vec<f64>) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let n = values.len();
            let index = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
            values[index]
        };
        Some(Self {
            p50: rank(0.5),
            p90: rank(0.9),
            max: values[values.len() - 1],
        })
    }

    fn render(spread: Option<Self>) -> String {
        match spread {
            Some(s) => format!(
                "{} / {} / {}",
                modeled(s.p50),
                modeled(s.p90),
                modeled(s.max)
            ),
            None => "—".to_owned(),
        }
    }
}

fn modeled(secs: f64) -> String {
    format_modeled(Duration::from_secs_f64(secs.max(0.0)))
}

/// One scenario's figures over its drills.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    pub scenario: String,
    pub drills: usize,
    pub passed: usize,
    pub ttd: Option<Spread>,
    pub runbook: Option<Spread>,
    pub world: Option<Spread>,
    pub budget_secs: f64,
    pub typical_secs: f64,
}

/// Per scenario, in the samples' scenario order.
pub fn summarise(samples: &[Sample]) -> Vec<Summary> {
    let mut by_scenario: BTreeMap<&str, Vec<&Sample>> = BTreeMap::new();
    for sample in samples {
        by_scenario
            .entry(&sample.scenario)
            .or_default()
            .push(sample);
    }
    by_scenario
        .into_iter()
        .map(|(scenario, drills)| {
            let figure = |f: fn(&Sample) -> Option<f64>| {
                Spread::of(drills.iter().filter_map(|s| f(s)).collect())
            };
            Summary {
                scenario: scenario.to_owned(),
                drills: drills.len(),
                passed: drills.iter().filter(|s| s.passed).count(),
                ttd: figure(|s| s.ttd_secs),
                runbook: figure(|s| s.runbook_secs),
                world: figure(|s| s.world_secs),
                budget_secs: drills[0].budget_secs,
                typical_secs: drills[0].typical_secs,
            }
        })
        .collect()
}

/// The table `drill bench` prints: p50 / p90 / max of each figure, modeled time.
pub fn render_table(summaries: &[Summary]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<48} {:>6}  {:<23} {:<23} {:<23} {:>7} {:>7}",
        "scenario (p50 / p90 / max)",
        "passed",
        "time to detect",
        "runbook time",
        "waiting on the world",
        "budget",
        "typical"
    );
    for s in summaries {
        let over_budget = s.runbook.is_some_and(|r| r.max > s.budget_secs);
        let _ = writeln!(
            out,
            "{:<48} {:>6}  {:<23} {:<23} {:<23} {:>7} {:>7}{}",
            s.scenario,
            format!("{}/{}", s.passed, s.drills),
            Spread::render(s.ttd),
            Spread::render(s.runbook),
            Spread::render(s.world),
            modeled(s.budget_secs),
            modeled(s.typical_secs),
            if over_budget { "  over budget" } else { "" }
        );
    }
    out
}

/// One line per failed drill, with why it failed: what follows the table.
pub fn render_failures(samples: &[Sample]) -> String {
    let mut out = String::new();
    for sample in samples.iter().filter(|s| !s.passed) {
        let _ = writeln!(
            out,
            "✗ {} seed {}: {}",
            sample.scenario,
            sample.seed,
            sample.failure.as_deref().unwrap_or("(no reason recorded)")
        );
    }
    out
}

/// A scenario whose runbook time got worse than the baseline allows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Regression {
    pub scenario: String,
    pub what: String,
}

/// How the current run compares with a baseline: a scenario's runbook time p50 or p90
/// more than `tolerance` (a fraction: 0.2 is 20%) above the baseline's, a scenario
/// that passed every drill there and not here, or one the current run lacks.
pub fn regressions(current: &[Summary], baseline: &[Summary], tolerance: f64) -> Vec<Regression> {
    let now: BTreeMap<&str, &Summary> = current.iter().map(|s| (s.scenario.as_str(), s)).collect();
    let mut found = Vec::new();
    for before in baseline {
        let scenario = before.scenario.clone();
        let Some(after) = now.get(before.scenario.as_str()) else {
            found.push(Regression {
                scenario,
                what: "in the baseline but not drilled now".to_owned(),
            });
            continue;
        };
        if before.passed == before.drills && after.passed < after.drills {
            found.push(Regression {
                scenario: scenario.clone(),
                what: format!(
                    "{} of {} drills failed (none did in the baseline)",
                    after.drills - after.passed,
                    after.drills
                ),
            });
        }
        let (Some(b), Some(a)) = (before.runbook, after.runbook) else {
            continue;
        };
        for (name, was, is) in [("p50", b.p50, a.p50), ("p90", b.p90, a.p90)] {
            if is > was * (1.0 + tolerance) {
                found.push(Regression {
                    scenario: scenario.clone(),
                    what: format!(
                        "runbook time {name} {} → {} (+{:.0}%, tolerance {:.0}%)",
                        modeled(was),
                        modeled(is),
                        (is / was.max(f64::MIN_POSITIVE) - 1.0) * 100.0,
                        tolerance * 100.0
                    ),
                });
            }
        }
    }
    found
}

/// `count:I/N`: the I-th of N shards (1-based), taking every N-th drill in a fixed
/// order, as nextest partitions tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    pub shard: usize,
    pub of: usize,
}

impl Partition {
    /// Whether the drill numbered `index` (0-based, in the run's fixed order) is this
    /// shard's.
    pub fn takes(&self, index: usize) -> bool {
        index % self.of == self.shard - 1
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("partition '{0}' is not count:I/N with 1 ≤ I ≤ N (e.g. count:2/3)")]
pub struct BadPartition(String);

impl FromStr for Partition {
    type Err = BadPartition;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BadPartition(text.to_owned());
        let (shard, of) = text
            .strip_prefix("count:")
            .and_then(|rest| rest.split_once('/'))
            .ok_or_else(bad)?;
        let shard: usize = shard.trim().parse().map_err(|_| bad())?;
        let of: usize = of.trim().parse().map_err(|_| bad())?;
        if shard == 0 || of == 0 || shard > of {
            return Err(bad());
        }
        Ok(Self { shard, of })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(scenario: &str, seed: u64, runbook: f64) -> Sample {
        Sample {
            scenario: scenario.to_owned(),
            seed,
            passed: true,
            ttd_secs: Some(60.0),
            runbook_secs: Some(runbook),
            world_secs: Some(0.0),
            budget_secs: 600.0,
            typical_secs: 1800.0,
            failure: None,
        }
    }

    #[test]
    fn failed_drills_are_listed_with_their_reason() {
        let mut failed = sample("pool/c", 4, 100.0);
        failed.passed = false;
        failed.failure = Some("verification ✗ Pool usage < 80%".into());
        let text = render_failures(&[sample("pool/c", 3, 90.0), failed]);
        assert_eq!(text, "✗ pool/c seed 4: verification ✗ Pool usage < 80%\n");
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let spread = Spread::of((1..=10).map(f64::from).collect()).unwrap();
        assert_eq!((spread.p50, spread.p90, spread.max), (5.0, 9.0, 10.0));
        let one = Spread::of(vec![7.0]).unwrap();
        assert_eq!((one.p50, one.p90, one.max), (7.0, 7.0, 7.0));
        assert_eq!(Spread::of(vec![]), None);
    }

    #[test]
    fn a_slower_runbook_beyond_the_tolerance_is_a_regression() {
        let baseline = summarise(&[sample("a/x", 1, 100.0), sample("a/x", 2, 100.0)]);
        let same = summarise(&[sample("a/x", 1, 110.0), sample("a/x", 2, 115.0)]);
        assert!(regressions(&same, &baseline, 0.2).is_empty());
        let slower = summarise(&[sample("a/x", 1, 130.0), sample("a/x", 2, 130.0)]);
        let found = regressions(&slower, &baseline, 0.2);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].what.starts_with("runbook time p50 01:40 → 02:10"));
    }

    #[test]
    fn failing_drills_and_missing_scenarios_are_regressions() {
        let baseline = summarise(&[sample("a/x", 1, 100.0), sample("a/y", 1, 100.0)]);
        let mut failing = sample("a/x", 1, 100.0);
        failing.passed = false;
        let found = regressions(&summarise(&[failing]), &baseline, 0.2);
        let whats: Vec<&str> = found.iter().map(|r| r.what.as_str()).collect();
        assert_eq!(
            whats,
            [
                "1 of 1 drills failed (none did in the baseline)",
                "in the baseline but not drilled now"
            ]
        );
    }

    #[test]
    fn shards_cover_every_drill_once_and_merge_back() {
        let parts: Vec<Partition> = (1..=3)
            .map(|i| format!("count:{i}/3").parse().unwrap())
            .collect();
        for index in 0..10 {
            assert_eq!(parts.iter().filter(|p| p.takes(index)).count(), 1);
        }
        let shard = |p: &Partition| {
            BenchFile::new(
                (0..10)
                    .filter(|i| p.takes(*i))
                    .map(|i| sample("a/x", i as u64, 60.0))
                    .collect(),
            )
        };
        let merged = BenchFile::merge(parts.iter().map(shard).collect()).unwrap();
        assert_eq!(merged.samples.len(), 10);
        let twice = BenchFile::merge(vec![shard(&parts[0]), shard(&parts[0])]);
        assert!(matches!(twice, Err(BenchFileError::Duplicate { .. })));
    }

    #[test]
    fn partitions_are_read_as_nextest_writes_them() {
        assert_eq!(
            "count:2/3".parse::<Partition>(),
            Ok(Partition { shard: 2, of: 3 })
        );
        for bad in ["2/3", "count:0/3", "count:4/3", "count:a/3", "hash:1/2"] {
            assert!(bad.parse::<Partition>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_table_names_a_scenario_over_its_budget() {
        let table = render_table(&summarise(&[sample("a/x", 1, 700.0)]));
        assert!(table.contains("a/x"), "{table}");
        assert!(table.contains("over budget"), "{table}");
        assert!(table.contains("11:40 / 11:40 / 11:40"), "{table}");
    }
}
