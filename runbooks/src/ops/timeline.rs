//! The drill's timeline: every step with the command a human would have typed.
//!
//! A drill report must read like an incident log: at modeled time T, in phase P,
//! someone ran this command and saw that. The harness writes fault and alert events
//! here, the runbook writes its steps; both share one [`Timeline`].

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use wire::Clock;

/// Which part of the drill an entry belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Inject,
    Detect,
    Investigate,
    Resolve,
    Verify,
    Ledger,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Phase::Inject => "inject",
            Phase::Detect => "detect",
            Phase::Investigate => "investigate",
            Phase::Resolve => "resolve",
            Phase::Verify => "verify",
            Phase::Ledger => "ledger",
        };
        f.pad(name)
    }
}

/// How a step ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Failed,
    /// A destructive step that was refused at the approval gate.
    Refused,
    /// An observation or a decision, not an action.
    Note,
}

/// One line of the timeline.
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    /// Modeled time since the drill started.
    #[serde(serialize_with = "seconds")]
    pub at: Duration,
    pub wall: DateTime<Utc>,
    pub phase: Phase,
    pub title: String,
    /// What a human would have typed, if the step is an action.
    pub command: Option<String>,
    /// What was seen, in one line or a few.
    pub observed: String,
    pub outcome: Outcome,
    /// For a wait (a poll for a condition, a pause): how long it lasted, ending at
    /// `at`. The drill tells waiting on the world from the runbook's own time by it.
    #[serde(
        serialize_with = "opt_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub waited: Option<Duration>,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn opt_seconds<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

/// A shared, append-only list of entries, stamped with modeled time since `start`.
#[derive(Clone)]
pub struct Timeline {
    clock: Clock,
    start: DateTime<Utc>,
    entries: Arc<Mutex<Vec<Entry>>>,
}

impl Timeline {
    pub fn new(clock: Clock) -> Self {
        Self {
            clock,
            start: clock.now(),
            entries: Arc::default(),
        }
    }

    /// The modeled instant the timeline began.
    pub fn started_at(&self) -> DateTime<Utc> {
        self.start
    }

    /// Modeled time since the timeline began.
    pub fn elapsed(&self) -> Duration {
        (self.clock.now() - self.start).to_std().unwrap_or_default()
    }

    pub fn record(
        &self,
        phase: Phase,
        title: impl Into<String>,
        command: Option<String>,
        observed: impl Into<String>,
        outcome: Outcome,
    ) {
        self.push(phase, title.into(), command, observed.into(), outcome, None);
    }

    /// A wait that lasted `waited` (modeled) and ends now.
    pub fn record_wait(
        &self,
        phase: Phase,
        title: impl Into<String>,
        command: Option<String>,
        observed: impl Into<String>,
        outcome: Outcome,
        waited: Duration,
    ) {
        self.push(
            phase,
            title.into(),
            command,
            observed.into(),
            outcome,
            Some(waited),
        );
    }

    fn push(
        &self,
        phase: Phase,
        title: String,
        command: Option<String>,
        observed: String,
        outcome: Outcome,
        waited: Option<Duration>,
    ) {
        let entry = Entry {
            at: self.elapsed(),
            wall: Utc::now(),
            phase,
            title,
            command,
            observed,
            outcome,
            waited,
        };
        if let Ok(mut entries) = self.entries.lock() {
            entries.push(entry);
        }
    }

    /// An observation or decision, with no command.
    pub fn note(&self, phase: Phase, title: impl Into<String>, observed: impl Into<String>) {
        self.record(phase, title, None, observed, Outcome::Note);
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.entries.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// The entries as an indented, human-readable log (one entry per line, commands below).
    pub fn render(&self) -> String {
        let mut out = String::new();
        for entry in self.entries() {
            let mark = match entry.outcome {
                Outcome::Ok => "✓",
                Outcome::Failed => "✗",
                Outcome::Refused => "⊘",
                Outcome::Note => "·",
            };
            out.push_str(&format!(
                "  {:>8} {:<11} {mark} {}",
                format_modeled(entry.at),
                entry.phase,
                entry.title
            ));
            if !entry.observed.is_empty() {
                out.push_str(&format!(" — {}", entry.observed));
            }
            out.push('\n');
            if let Some(command) = &entry.command {
                for line in command.lines() {
                    out.push_str(&format!("{:>23}$ {line}\n", ""));
                }
            }
        }
        out
    }
}

/// `mm:ss` of modeled time, or `h:mm:ss` past an hour.
pub use wire::clock::format_duration as format_modeled;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rendered_timeline_shows_phase_title_observation_and_command() {
        let timeline = Timeline::new(Clock::new(0, 1.0).unwrap());
        timeline.record(
            Phase::Investigate,
            "Check current DLQ stats",
            Some("curl http://localhost:8024/dlq/stats | jq".into()),
            "2500 messages",
            Outcome::Ok,
        );
        let text = timeline.render();
        assert!(text.contains("investigate"), "{text}");
        assert!(
            text.contains("✓ Check current DLQ stats — 2500 messages"),
            "{text}"
        );
        assert!(
            text.contains("$ curl http://localhost:8024/dlq/stats | jq"),
            "{text}"
        );
    }

    #[test]
    fn modeled_time_reads_as_minutes_and_seconds() {
        assert_eq!(format_modeled(Duration::from_secs(75)), "01:15");
        assert_eq!(format_modeled(Duration::from_secs(3725)), "1:02:05");
    }
}
