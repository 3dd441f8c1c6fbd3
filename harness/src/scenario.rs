//! Scenario files: one TOML file per runbook scenario under `scenarios/`.
//!
//! A scenario says which faults to inject (and when they heal by themselves, as a
//! provider that comes back after an outage does), which alert must fire, which
//! diagnosis the runbook must reach, and the time budget for resolving it. A
//! mistake in a file is reported with the file, the line and what is wrong.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use wire::api::{ErrorKind, Provider};

/// A parsed scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// `dlq-overflow/a-breaker-errors`, from the file's place under `scenarios/`.
    pub id: String,
    pub runbook: String,
    pub title: String,
    /// Modeled seconds per real second for this drill.
    pub scale: f64,
    pub faults: Vec<FaultSpec>,
    pub expect: Expectation,
    pub path: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// The alert that must fire.
    pub alert: String,
    /// The scenario letter the runbook's investigation must choose.
    pub diagnosis: char,
    /// Modeled minutes from the alert firing to verified resolution.
    pub budget_minutes: f64,
    /// Modeled minutes the alert may take to fire after injection.
    #[serde(default = "default_detect_minutes")]
    pub detect_within_minutes: f64,
    /// Other alerts that may fire during this drill without failing it.
    #[serde(default)]
    pub tolerated_alerts: Vec<String>,
    /// Whether the runbook's remediation changes `metadata_enrichment_config` on
    /// purpose and leaves it so (e.g. "increase timeout temporarily").
    #[serde(default)]
    pub config_may_change: bool,
}

fn default_detect_minutes() -> f64 {
    20.0
}

impl Expectation {
    pub fn budget(&self) -> Duration {
        Duration::from_secs_f64(self.budget_minutes * 60.0)
    }
    pub fn detect_within(&self) -> Duration {
        Duration::from_secs_f64(self.detect_within_minutes * 60.0)
    }
}

/// One fault of a scenario, as written in its file.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum FaultSpec {
    /// A provider answers every call with this status.
    ProviderOutage {
        provider: Provider,
        #[serde(default = "default_outage_status")]
        status: u16,
        heal_after_minutes: Option<f64>,
        at_minutes: Option<f64>,
    },
    /// A provider answers after `delay_seconds` (modeled).
    ProviderLatency {
        provider: Provider,
        delay_seconds: f64,
        heal_after_minutes: Option<f64>,
        at_minutes: Option<f64>,
    },
    /// A provider answers 429 with Retry-After.
    RateLimit {
        provider: Provider,
        retry_after_seconds: u64,
        heal_after_minutes: Option<f64>,
        at_minutes: Option<f64>,
    },
    /// A provider answers 200 with a payload that fails validation.
    BadPayload {
        provider: Provider,
        heal_after_minutes: Option<f64>,
        at_minutes: Option<f64>,
    },
    /// The gateway cannot reach a provider; everyone else can.
    NetworkPartition {
        provider: Provider,
        heal_after_minutes: Option<f64>,
        at_minutes: Option<f64>,
    },
    /// A breaker that does not leave OPEN by itself.
    StuckBreaker {
        provider: Provider,
        at_minutes: Option<f64>,
    },
    /// `messages` failed tracks with DLQ messages, mixed by weight.
    DlqFlood {
        messages: usize,
        mix: std::collections::BTreeMap<ErrorKind, u32>,
        at_minutes: Option<f64>,
    },
    /// The stack's disk (logs, backups) fills up. Docker backend only.
    DiskFill {
        heal_after_minutes: Option<f64>,
        at_minutes: Option<f64>,
    },
    /// api-gateway-internal is disconnected from the providers' network. Docker
    /// backend only.
    GatewayDisconnect {
        heal_after_minutes: Option<f64>,
        at_minutes: Option<f64>,
    },
}

fn default_outage_status() -> u16 {
    503
}

impl FaultSpec {
    /// When (modeled, after the drill begins) the fault is injected: faults of one
    /// incident arrive over time, e.g. an outage that has opened a breaker before
    /// its failures fill the DLQ. Every kind takes `at_minutes` (default 0).
    pub fn inject_at(&self) -> Duration {
        let minutes = match self {
            FaultSpec::ProviderOutage { at_minutes, .. }
            | FaultSpec::ProviderLatency { at_minutes, .. }
            | FaultSpec::RateLimit { at_minutes, .. }
            | FaultSpec::BadPayload { at_minutes, .. }
            | FaultSpec::NetworkPartition { at_minutes, .. }
            | FaultSpec::StuckBreaker { at_minutes, .. }
            | FaultSpec::DlqFlood { at_minutes, .. }
            | FaultSpec::DiskFill { at_minutes, .. }
            | FaultSpec::GatewayDisconnect { at_minutes, .. } => at_minutes.unwrap_or(0.0),
        };
        Duration::from_secs_f64(minutes.max(0.0) * 60.0)
    }

    /// When (modeled, after injection) the fault heals by itself, if it does.
    pub fn heal_after(&self) -> Option<Duration> {
        let minutes = match self {
            FaultSpec::ProviderOutage {
                heal_after_minutes, ..
            }
            | FaultSpec::ProviderLatency {
                heal_after_minutes, ..
            }
            | FaultSpec::RateLimit {
                heal_after_minutes, ..
            }
            | FaultSpec::BadPayload {
                heal_after_minutes, ..
            }
            | FaultSpec::NetworkPartition {
                heal_after_minutes, ..
            }
            | FaultSpec::DiskFill {
                heal_after_minutes, ..
            }
            | FaultSpec::GatewayDisconnect {
                heal_after_minutes, ..
            } => *heal_after_minutes,
            FaultSpec::StuckBreaker { .. } | FaultSpec::DlqFlood { .. } => None,
        };
        minutes.map(|m| Duration::from_secs_f64(m * 60.0))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    runbook: String,
    title: String,
    #[serde(default = "default_scale")]
    scale: f64,
    #[serde(default, rename = "fault")]
    faults: Vec<FaultSpec>,
    expect: Expectation,
}

fn default_scale() -> f64 {
    60.0
}

/// A scenario file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Semantic { path: PathBuf, message: String },
    #[error("no scenario '{id}'; known scenarios: {known}")]
    Unknown { id: String, known: String },
}

/// Parses one scenario from its text; `id` and `path` name it in errors.
pub fn parse(id: &str, path: &Path, text: &str) -> Result<Scenario, ScenarioError> {
    let file: ScenarioFile = toml::from_str(text).map_err(|error| {
        let (line, column) = error
            .span()
            .map(|span| line_and_column(text, span.start))
            .unwrap_or((1, 1));
        ScenarioError::Invalid {
            path: path.to_owned(),
            line,
            column,
            message: error.message().to_owned(),
        }
    })?;
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
        return Err(semantic("a scenario needs at least one [[fault]]".into()));
    }
    if file.expect.budget_minutes <= 0.0 {
        return Err(semantic("expect.budget_minutes must be positive".into()));
    }
    for fault in &file.faults {
        if let FaultSpec::DlqFlood { messages, mix, .. } = fault
            && (*messages == 0 || mix.values().all(|w| *w == 0))
        {
            return Err(semantic(
                "a dlq-flood needs messages > 0 and a mix with a positive weight".into(),
            ));
        }
    }
    Ok(Scenario {
        id: id.to_owned(),
        runbook: file.runbook,
        title: file.title,
        scale: file.scale,
        faults: file.faults,
        expect: file.expect,
        path: path.to_owned(),
    })
}

fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

/// The project's `scenarios/` directory.
pub fn default_dir() -> PathBuf {
    std::env::var_os("DRILL_SCENARIOS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios"))
}

/// Every scenario under `dir` (`<runbook>/<name>.toml`), sorted by id.
pub fn load_all(dir: &Path) -> Result<Vec<Scenario>, ScenarioError> {
    let mut scenarios = Vec::new();
    let read_dir = |path: &Path| {
        std::fs::read_dir(path).map_err(|source| ScenarioError::Read {
            path: path.to_owned(),
            source,
        })
    };
    for runbook_dir in read_dir(dir)? {
        let runbook_dir = runbook_dir
            .map_err(|source| ScenarioError::Read {
                path: dir.to_owned(),
                source,
            })?
            .path();
        if !runbook_dir.is_dir() {
            continue;
        }
        for file in read_dir(&runbook_dir)? {
            let path = file
                .map_err(|source| ScenarioError::Read {
                    path: runbook_dir.clone(),
                    source,
                })?
                .path();
            if path.extension().is_none_or(|e| e != "toml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|source| ScenarioError::Read {
                path: path.clone(),
                source,
            })?;
            let id = format!(
                "{}/{}",
                runbook_dir
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy(),
                path.file_stem().unwrap_or_default().to_string_lossy()
            );
            scenarios.push(parse(&id, &path, &text)?);
        }
    }
    scenarios.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(scenarios)
}

/// The scenarios a selector names: `dlq-overflow` (all of it) or
/// `dlq-overflow/a-breaker-errors` (one).
pub fn select(all: Vec<Scenario>, selector: &str) -> Result<Vec<Scenario>, ScenarioError> {
    let known = all
        .iter()
        .map(|s| s.id.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let chosen: Vec<Scenario> = all
        .iter()
        .filter(|s| s.id == selector || s.runbook == selector)
        .cloned()
        .collect();
    if chosen.is_empty() {
        return Err(ScenarioError::Unknown {
            id: selector.to_owned(),
            known,
        });
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
runbook = "dlq-overflow"
title = "Spotify outage floods the DLQ"
scale = 60

[[fault]]
kind = "provider-outage"
provider = "spotify"
heal_after_minutes = 3

[[fault]]
kind = "dlq-flood"
messages = 1500
mix = { circuit_breaker_open = 90, timeout = 10 }

[expect]
alert = "DLQDepthCritical"
diagnosis = "A"
budget_minutes = 15
"#;

    #[test]
    fn a_scenario_file_parses_into_faults_and_expectations() {
        let scenario = parse("dlq-overflow/a", Path::new("a.toml"), GOOD).unwrap();
        assert_eq!(scenario.faults.len(), 2);
        assert_eq!(
            scenario.faults[0],
            FaultSpec::ProviderOutage {
                provider: Provider::Spotify,
                status: 503,
                heal_after_minutes: Some(3.0),
                at_minutes: None,
            }
        );
        assert_eq!(
            scenario.faults[0].heal_after(),
            Some(Duration::from_secs(180))
        );
        assert_eq!(scenario.expect.diagnosis, 'A');
        assert_eq!(scenario.expect.budget(), Duration::from_secs(900));
    }

    #[test]
    fn a_mistyped_field_is_reported_with_file_and_line() {
        let text = GOOD.replace("provider = \"spotify\"", "provder = \"spotify\"");
        let error = parse("x", Path::new("scenarios/dlq-overflow/a.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("scenarios/dlq-overflow/a.toml:6:"),
            "{error}"
        );
        assert!(error.contains("provder"), "{error}");
    }

    #[test]
    fn an_unknown_provider_is_named() {
        let text = GOOD.replace("\"spotify\"", "\"deezer\"");
        let error = parse("x", Path::new("a.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(error.contains("deezer"), "{error}");
    }

    #[test]
    fn a_scenario_without_faults_is_refused() {
        let text = "runbook = \"x\"\ntitle = \"t\"\n[expect]\nalert = \"A\"\ndiagnosis = \"A\"\nbudget_minutes = 1\n";
        let error = parse("x", Path::new("a.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(error.contains("at least one [[fault]]"), "{error}");
    }

    /// `GOOD` with its faults replaced by `faults` (TOML `[[fault]]` tables).
    fn with_faults(faults: &str) -> String {
        let head = GOOD.split("[[fault]]").next().unwrap();
        let expect = GOOD.split("[expect]").nth(1).unwrap();
        format!("{head}{faults}\n[expect]{expect}")
    }

    #[test]
    fn container_faults_parse_with_their_timing() {
        let text = with_faults(
            "[[fault]]\nkind = \"disk-fill\"\nat_minutes = 2\n\n\
             [[fault]]\nkind = \"gateway-disconnect\"\nheal_after_minutes = 5\n",
        );
        let scenario = parse("x", Path::new("a.toml"), &text).unwrap();
        assert_eq!(
            scenario.faults,
            [
                FaultSpec::DiskFill {
                    heal_after_minutes: None,
                    at_minutes: Some(2.0),
                },
                FaultSpec::GatewayDisconnect {
                    heal_after_minutes: Some(5.0),
                    at_minutes: None,
                },
            ]
        );
        assert_eq!(scenario.faults[0].inject_at(), Duration::from_secs(120));
        assert_eq!(scenario.faults[0].heal_after(), None);
        assert_eq!(
            scenario.faults[1].heal_after(),
            Some(Duration::from_secs(300))
        );
    }

    #[test]
    fn a_container_fault_with_a_provider_is_refused_with_file_and_line() {
        // Neither container fault takes a provider: the whole gateway is cut off.
        let text =
            with_faults("[[fault]]\nkind = \"gateway-disconnect\"\nprovider = \"spotify\"\n");
        let error = parse("x", Path::new("scenarios/x/a.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("scenarios/x/a.toml:6:"), "{error}");
        assert!(error.contains("unknown field `provider`"), "{error}");
    }

    #[test]
    fn a_misspelt_fault_kind_lists_the_known_kinds() {
        let text = with_faults("[[fault]]\nkind = \"disk-full\"\n");
        let error = parse("x", Path::new("a.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(error.contains("disk-full"), "{error}");
        assert!(error.contains("disk-fill"), "{error}");
        assert!(error.contains("gateway-disconnect"), "{error}");
    }

    #[test]
    fn the_shipped_scenarios_all_parse() {
        let scenarios = load_all(&default_dir()).expect("scenarios/ parses");
        assert!(scenarios.iter().any(|s| s.runbook == "dlq-overflow"));
    }

    #[test]
    fn selecting_an_unknown_scenario_lists_the_known_ones() {
        let all = vec![parse("dlq-overflow/a", Path::new("a.toml"), GOOD).unwrap()];
        let error = select(all, "dlq-overflow/z").unwrap_err().to_string();
        assert!(error.contains("dlq-overflow/a"), "{error}");
    }
}
