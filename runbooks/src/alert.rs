//! Alert rules: the Quick Alert Index of the runbook text, as data.
//!
//! Each rule lives with its runbook (the runbook's `META`, or its module's `ALERT`
//! where the runbook is not drilled yet) and names it; [`crate::alert_rules`] lists
//! all nine. A rule is a probe, a condition and a `for` duration, as in Prometheus;
//! the harness evaluates them over the running stack. The thresholds, severities and
//! typical resolution times are the runbook text's, which `runbooks/docs/` repeats
//! and a test holds in step.

use std::time::Duration;

use serde::Serialize;

use crate::criteria::Check;
use crate::probe::Probe;

/// The severity column of the Quick Alert Index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Severity {
    P1,
    P2,
}

/// One alert rule.
#[derive(Clone, Debug, Serialize)]
pub struct AlertRule {
    pub name: &'static str,
    pub severity: Severity,
    /// The runbook that handles it: its id, as on the command line.
    pub runbook: &'static str,
    /// The threshold as the runbook words it.
    pub threshold: &'static str,
    #[serde(skip)]
    pub probe: Probe,
    /// The condition under which the alert is active.
    #[serde(skip)]
    pub condition: Check,
    #[serde(serialize_with = "minutes")]
    pub for_duration: Duration,
    #[serde(serialize_with = "minutes")]
    pub typical_resolution: Duration,
}

const MINUTE: u64 = 60;

/// `n` minutes.
pub const fn minutes_of(n: u64) -> Duration {
    Duration::from_secs(n * MINUTE)
}

fn minutes<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() / 60.0)
}
