//! The runbooks of the Quick Alert Index that are not drilled yet: their alert rules,
//! each under its runbook's id, so the harness evaluates all nine from the start (a
//! drill must see every alert its remediation raises). Each moves to a module of its
//! own, with its investigation, resolution and verification, when it is drilled.

use crate::alert::{AlertRule, Severity, minutes_of};
use crate::criteria::Check;
use crate::probe::Probe;

/// Data Quality Issues.
pub static DATA_QUALITY: AlertRule = AlertRule {
    name: "DataQualityScoreLow",
    severity: Severity::P2,
    runbook: "data-quality",
    threshold: "Quality score < 70 for > 1 hour",
    probe: Probe::Sql {
        sql: "SELECT COALESCE(AVG(quality_score), 100)::float8 FROM data_quality_scores \
              WHERE created_at > NOW() - INTERVAL '1 hour'",
    },
    condition: Check::Below(70.0),
    for_duration: minutes_of(60),
    typical_resolution: minutes_of(120),
};
