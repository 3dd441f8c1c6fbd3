//! Runbook: Disk Space Critical (`DiskSpaceHigh`, P1, disk usage > 85%).
//!
//! The text has one sequence of seven steps and no scenarios: stop the non-critical
//! scrapers, prune, truncate large logs, delete backups older than seven days, check
//! `df`, start the services, and set log rotation as the permanent fix. The automation
//! follows it on the stack's own disk (`crate::ops::Host`), where the services' log
//! files and PostgreSQL's backups live, with two steps made safe (see
//! `docs/disk-space.md`, "What drilling found"):
//! - step 3's `truncate -s 100M` sets every log to 100M: it grows small files (sparse,
//!   but a log shipper reads the zeros) and keeps the oldest 100M of large ones. The
//!   automation empties only the logs larger than the rotation size it is about to set
//!   (`truncate -s 0`: the services hold them open for appending and go on writing);
//! - step 7's `daemon.json` and `systemctl restart docker` take every container on the
//!   host down. The automation gives the stack's services the same log options and
//!   recreates them (`docker compose up -d`), which is what the daemon's options would
//!   only do for new containers anyway.
//!
//! Its one scenario's investigation still decides from what it sees: which logs are
//! large and which backups are old (by the disk's own file times, against the stack's
//! clock), and it says so with the sizes as evidence.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use wire::Service;

use crate::alert::{AlertRule, Severity, minutes_of};
use crate::criteria::{Check, Criterion};
use crate::ops::{DiskDir, DiskFile, LogConfig, Ops, Phase, StepContext, StepError};
use crate::probe::Probe;
use crate::runbook::{Diagnosis, Evidence, Runbook, RunbookMeta};
use crate::scenarios;
use crate::steps::{self, Compose};

pub static META: RunbookMeta = RunbookMeta {
    title: "Disk Space Critical",
    rule: AlertRule {
        name: "DiskSpaceHigh",
        severity: Severity::P1,
        runbook: "disk-space",
        threshold: "Disk usage > 85%",
        probe: Probe::DiskUsage,
        condition: Check::Above(FULL_AT),
        for_duration: minutes_of(0),
        typical_resolution: minutes_of(30),
    },
    doc: include_str!("../docs/disk-space.md"),
};

scenarios! {
    /// What filled the disk, as the investigation tells it.
    pub enum DiskScenario {
        LogsAndOldBackups = ('A', "Logs and Old Backups", "logs-and-backups"),
    }
}

/// The Disk Space Critical runbook.
pub struct DiskSpace;

/// The scrapers step 1 stops: they add data, and nothing urgent waits on them.
pub const NON_CRITICAL: [Service; 2] = [Service::ScraperMixesdb, Service::Scraper1001Tracklists];
/// Step 7's log options (`max-size`, `max-file`).
pub const ROTATE_AT: &str = "10m";
pub const ROTATE_FILES: u32 = 3;
/// Step 4's `-mtime +7`: more than seven whole days old.
pub const BACKUP_RETENTION_DAYS: i64 = 7;
/// Verification: usage below this, and staying below it while the services write.
pub const TARGET: f64 = 0.80;
/// The alert's threshold: below it there is no incident to resolve.
pub const FULL_AT: f64 = 0.85;

#[derive(Debug)]
pub struct DiskDiagnosis {
    pub scenario: DiskScenario,
    /// Logs larger than the rotation size: step 3 empties them.
    pub large_logs: Vec<DiskFile>,
    /// Backups older than seven days: step 4 deletes them.
    pub old_backups: Vec<DiskFile>,
    /// Every backup listed, old or not.
    pub backups: Vec<DiskFile>,
    pub evidence: Vec<Evidence>,
}

impl Diagnosis for DiskDiagnosis {
    type Scenario = DiskScenario;
    fn scenario(&self) -> DiskScenario {
        self.scenario
    }
    fn evidence(&self) -> &[Evidence] {
        &self.evidence
    }
}

/// Logs larger than `limit` bytes: what rotation would never have let them grow to.
pub fn large_logs(files: &[DiskFile], limit: u64) -> Vec<DiskFile> {
    files.iter().filter(|f| f.bytes > limit).cloned().collect()
}

/// `find -name "*.sql.gz" -mtime +7`: backups whose age in whole days, at `now`, is
/// more than seven.
pub fn old_backups(files: &[DiskFile], now: DateTime<Utc>) -> Vec<DiskFile> {
    files
        .iter()
        .filter(|f| f.name().ends_with(".sql.gz"))
        .filter(|f| (now - f.modified).num_days() > BACKUP_RETENTION_DAYS)
        .cloned()
        .collect()
}

fn mib(bytes: u64) -> String {
    format!("{:.1}M", bytes as f64 / f64::from(1 << 20))
}

fn total(files: &[DiskFile]) -> u64 {
    files.iter().map(|f| f.bytes).sum()
}

fn rotation() -> LogConfig {
    LogConfig::rotating(ROTATE_AT, ROTATE_FILES)
}

#[async_trait]
impl Runbook for DiskSpace {
    type Diagnosis = DiskDiagnosis;

    fn meta(&self) -> &'static RunbookMeta {
        &META
    }

    async fn investigate(&self, ops: &Ops) -> Result<DiskDiagnosis, StepError> {
        let phase = Phase::Investigate;
        let host = steps::host(ops, "Check disk usage", "disk")?;
        let usage = ops
            .act(phase, "Check disk usage", "df -h", host.disk(), |u| {
                format!("{:.0}% used of {}", u.fraction() * 100.0, mib(u.total))
            })
            .await?;
        if usage.fraction() <= FULL_AT {
            // A page that is stale (the backup that filled the disk finished) or sent
            // to the wrong team: the resolution restarts every service for rotation,
            // an outage nobody needs on a disk with room.
            return Err(StepError::Escalate {
                step: "Check disk usage".into(),
                reason: format!(
                    "the disk is {:.0}% used, not above the alert's {:.0}%: nothing to free",
                    usage.fraction() * 100.0,
                    FULL_AT * 100.0
                ),
            });
        }
        let (logs_dir, backups_dir) = (host.dir(DiskDir::Logs), host.dir(DiskDir::Backups));
        let logs = ops
            .act(
                phase,
                "Check log sizes",
                format!("du -sh {logs_dir}/*.log* | sort -h | tail -10"),
                host.files(DiskDir::Logs),
                |files| format!("{} log files, {}", files.len(), mib(total(files))),
            )
            .await?;
        let backups = ops
            .act(
                phase,
                "Identify large directories",
                format!("du -sh {backups_dir} {logs_dir}"),
                host.files(DiskDir::Backups),
                |files| format!("{} backups, {}", files.len(), mib(total(files))),
            )
            .await?;
        let limit = wire::env::parse_size(ROTATE_AT).expect("the rotation size parses");
        let large_logs = large_logs(&logs, limit);
        let old_backups = old_backups(&backups, ops.clock.now());
        let describe = |files: &[DiskFile]| {
            files
                .iter()
                .take(5)
                .map(|f| format!("{} {}", f.name(), mib(f.bytes)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let evidence = vec![
            Evidence::new("df", format!("{:.0}% used", usage.fraction() * 100.0)),
            Evidence::new(
                format!("logs over {ROTATE_AT}"),
                format!(
                    "{} ({}): {}",
                    large_logs.len(),
                    mib(total(&large_logs)),
                    describe(&large_logs)
                ),
            ),
            Evidence::new(
                format!("backups older than {BACKUP_RETENTION_DAYS} days"),
                format!(
                    "{} of {} ({})",
                    old_backups.len(),
                    backups.len(),
                    mib(total(&old_backups))
                ),
            ),
        ];
        ops.timeline.note(
            phase,
            "Diagnosis: scenario A",
            format!(
                "{} large logs ({}), {} backups past retention ({})",
                large_logs.len(),
                mib(total(&large_logs)),
                old_backups.len(),
                mib(total(&old_backups))
            ),
        );
        Ok(DiskDiagnosis {
            scenario: DiskScenario::LogsAndOldBackups,
            large_logs,
            old_backups,
            backups,
            evidence,
        })
    }

    async fn resolve(&self, ops: &Ops, diagnosis: &DiskDiagnosis) -> Result<(), StepError> {
        free_space(ops, &diagnosis.large_logs, &diagnosis.old_backups).await?;
        set_log_rotation(ops).await
    }

    fn criteria(&self) -> Vec<Criterion> {
        vec![
            Criterion::new("Disk usage < 80%", Probe::DiskUsage, Check::Below(TARGET)),
            Criterion::new(
                "Docker logs configured with rotation (max-size 10m, max-file 3)",
                Probe::UnrotatedLogs {
                    max_size: ROTATE_AT,
                    max_file: ROTATE_FILES,
                },
                Check::AtMost(0.0),
            ),
            Criterion::new(
                "Disk usage stays < 80% while the services write (10 minutes)",
                Probe::DiskUsage,
                Check::StaysBelow {
                    threshold: TARGET,
                    samples: 10,
                },
            )
            .sampled_every(std::time::Duration::from_secs(60))
            .eventually_within(std::time::Duration::from_secs(15 * 60)),
        ]
    }
}

/// Steps 1–6: stop the scrapers, prune, empty `large_logs`, delete `backups`, check
/// `df`, start the scrapers again.
pub async fn free_space(
    ops: &Ops,
    large_logs: &[DiskFile],
    backups: &[DiskFile],
) -> Result<(), StepError> {
    let phase = Phase::Resolve;
    steps::compose(
        ops,
        phase,
        "STEP 1: Stop non-critical services",
        Compose::Stop,
        &NON_CRITICAL,
    )
    .await?;
    ops.act(
        phase,
        "STEP 2: Clean Docker cache",
        "docker system prune -f",
        ops.orchestrator.prune(),
        |r| {
            format!(
                "reclaimed {} ({} removed)",
                mib(r.reclaimed_bytes),
                r.removed.len()
            )
        },
    )
    .await?;
    let host = steps::host(ops, "STEP 3: Truncate large logs", "disk")?;
    let paths = |files: &[DiskFile]| files.iter().map(|f| f.path.clone()).collect::<Vec<_>>();
    let names = |files: &[DiskFile]| {
        files
            .iter()
            .map(|f| f.name().to_owned())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !large_logs.is_empty() {
        let logs = paths(large_logs);
        ops.act(
            phase,
            "STEP 3: Truncate large logs",
            format!("truncate -s 0 {}", logs.join(" ")),
            host.truncate(&logs, 0),
            |()| {
                format!(
                    "{} emptied ({} freed)",
                    names(large_logs),
                    mib(total(large_logs))
                )
            },
        )
        .await?;
    }
    if !backups.is_empty() {
        let files = paths(backups);
        ops.act(
            phase,
            "STEP 4: Remove old backups",
            format!(
                "find {} -name \"*.sql.gz\" -mtime +{BACKUP_RETENTION_DAYS} -delete",
                host.dir(DiskDir::Backups)
            ),
            host.remove(&files),
            |()| {
                format!(
                    "{} backups deleted ({}): {}",
                    backups.len(),
                    mib(total(backups)),
                    names(backups)
                )
            },
        )
        .await?;
    }
    ops.act(
        phase,
        "STEP 5: Verify space recovered",
        "df -h",
        host.disk(),
        |u| format!("{:.0}% used", u.fraction() * 100.0),
    )
    .await?;
    steps::compose(
        ops,
        phase,
        "STEP 6: Restart services",
        Compose::Start,
        &NON_CRITICAL,
    )
    .await
}

/// The services the others call (providers through the gateway, failures to the DLQ
/// manager): step 7 recreates them first, as compose's `depends_on` would, so that no
/// service comes up to a gateway that is itself being recreated.
const CALLED_BY_THE_OTHERS: [Service; 2] = [Service::ApiGatewayInternal, Service::DlqManager];

/// Step 7, made safe: every service of the stack gets the text's log options and is
/// recreated with them (`docker compose up -d`), instead of the engine's defaults and
/// a restart of the engine.
pub async fn set_log_rotation(ops: &Ops) -> Result<(), StepError> {
    let title = "STEP 7: Implement log rotation";
    let options = rotation();
    for service in Service::TWIN {
        ops.orchestrator
            .set_log_config(service, &options)
            .await
            .step(title)?;
    }
    // Recreated all at once, metadata-enrichment came up while the gateway was still
    // being recreated (3 real seconds on docker, six modeled minutes at scale 120): its
    // breakers opened and stayed open past CircuitBreakerOpen's five minutes.
    let rest: Vec<Service> = Service::TWIN
        .into_iter()
        .filter(|s| !CALLED_BY_THE_OTHERS.contains(s))
        .collect();
    let recreate = async {
        ops.orchestrator.restart(&CALLED_BY_THE_OTHERS).await?;
        ops.orchestrator.restart(&rest).await
    };
    ops.act(
        Phase::Resolve,
        title,
        format!(
            "log-opts {{\"max-size\": \"{ROTATE_AT}\", \"max-file\": \"{ROTATE_FILES}\"}} for every \
             service; docker compose up -d"
        ),
        recreate,
        |()| {
            format!(
                "{} services recreated with {options}, the gateway and the DLQ manager first",
                Service::TWIN.len()
            )
        },
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn file(name: &str, bytes: u64, days_old: f64, now: DateTime<Utc>) -> DiskFile {
        DiskFile {
            path: format!("/backups/postgres/{name}"),
            bytes,
            modified: now - chrono::TimeDelta::seconds((days_old * 86_400.0) as i64),
        }
    }

    #[test]
    fn backups_past_seven_whole_days_are_old_as_find_mtime_reads_them() {
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
        let files = [
            file("musicdb-a.sql.gz", 1, 7.9, now),
            file("musicdb-b.sql.gz", 1, 8.0, now),
            file("musicdb-c.sql.gz", 1, 20.0, now),
            file("notes.txt", 1, 30.0, now),
        ];
        let names: Vec<String> = old_backups(&files, now)
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        assert_eq!(names, ["musicdb-b.sql.gz", "musicdb-c.sql.gz"]);
    }

    #[test]
    fn only_logs_over_the_rotation_size_are_large() {
        let now = Utc::now();
        let files = [
            file("rest-api.log", 40 << 20, 0.0, now),
            file("graph-api.log", 2 << 20, 0.0, now),
        ];
        let large = large_logs(&files, 10 << 20);
        assert_eq!(large.len(), 1);
        assert_eq!(large[0].name(), "rest-api.log");
    }
}
