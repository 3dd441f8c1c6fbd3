//! Runbook: Scraper Stalled (`ScraperStalled`, P2, no new tracks for > 2 hours).
//!
//! The text has no scenarios, only a sequence: restart, watch, check the site,
//! escalate. Its investigation still tells two causes apart, and the automation
//! names them: a spider that hangs with its process up (no errors, no activity: the
//! restart cures it) and a source site that is down (the scraper logs failed fetches
//! every minute: the restart cannot help, and the site's status is the evidence the
//! escalation carries). Both follow the text's one resolution, so a wrong guess costs
//! nothing but time; the drill asserts the guess all the same.
//!
//! Step 4's `SELECT MAX(created_at) FROM tracks` reads both scrapers at once: while one
//! works, it hides the other's stall. The automation reads the newest track per
//! source, as the alert does (`docs/scraper-stalled.md`).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use wire::Service;
use wire::api::SourceSite;

use crate::alert::{AlertRule, Severity, minutes_of};
use crate::criteria::{Check, Criterion};
use crate::ops::timeline::format_modeled;
use crate::ops::{Ops, Outcome, Phase, ServiceStatus, StepContext, StepError};
use crate::probe::Probe;
use crate::runbook::{Diagnosis, Evidence, Runbook, RunbookMeta, Scenario};
use crate::scenarios;
use crate::steps::{self, Compose};

/// Minutes since the newest track of the stalest scraper.
const STALEST_SCRAPER_MINUTES: &str = "SELECT COALESCE(MAX(EXTRACT(EPOCH FROM (NOW() - newest)) / 60), 0)::float8 \
     FROM (SELECT MAX(created_at) AS newest FROM tracks \
           WHERE source IN ('mixesdb', '1001tracklists') GROUP BY source) AS per_scraper";

pub static META: RunbookMeta = RunbookMeta {
    title: "Scraper Stalled",
    rule: AlertRule {
        name: "ScraperStalled",
        severity: Severity::P2,
        runbook: "scraper-stalled",
        threshold: "No new tracks for > 2 hours",
        probe: Probe::Sql {
            sql: STALEST_SCRAPER_MINUTES,
        },
        condition: Check::Above(120.0),
        for_duration: minutes_of(0),
        typical_resolution: minutes_of(30),
    },
    doc: include_str!("../docs/scraper-stalled.md"),
};

scenarios! {
    /// What stalled the scraper, as the investigation tells it.
    pub enum StallScenario {
        SpiderHung = ('A', "Spider Hung", "spider-hung"),
        SourceSiteDown = ('B', "Source Site Down", "source-site-down"),
    }
}

/// The Scraper Stalled runbook.
pub struct ScraperStalled;

#[derive(Debug)]
pub struct StallDiagnosis {
    pub scenario: StallScenario,
    /// The scrapers without a new track for over two hours.
    pub stalled: Vec<SourceSite>,
    pub evidence: Vec<Evidence>,
}

impl Diagnosis for StallDiagnosis {
    type Scenario = StallScenario;
    fn scenario(&self) -> StallScenario {
        self.scenario
    }
    fn evidence(&self) -> &[Evidence] {
        &self.evidence
    }
}

/// How long without a new track a scraper counts as stalled (the alert's threshold).
const STALLED_AFTER: chrono::TimeDelta = chrono::TimeDelta::hours(2);
/// Log lines the investigation reads (`--tail=100`).
const TAIL: usize = 100;
/// How long the automation follows the logs after the restart (`logs -f`, bounded):
/// many of the scraper's one-minute polls. Ten minutes were a second and a quarter of
/// real time at the drills' scale of 480, which a busy machine's pause could use up
/// before the first page of a cured spider, escalating what the restart had fixed.
pub const FOLLOW_FOR: Duration = Duration::from_secs(15 * 60);

/// What a scraper's recent log lines say about it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogReading {
    /// Lines of failed fetches or saves (`scraping page N failed: …`).
    pub failures: usize,
    /// Lines of pages scraped.
    pub scraped: usize,
    /// The newest failure line, as evidence.
    pub last_failure: Option<String>,
}

impl LogReading {
    pub fn of(lines: &[String]) -> Self {
        let mut reading = LogReading::default();
        for line in lines {
            if line.contains("failed:") || line.contains("could not save") {
                reading.failures += 1;
                reading.last_failure = Some(line.clone());
            } else if line.contains("scraped page") {
                reading.scraped += 1;
            }
        }
        reading
    }
}

/// The cause for a stalled scraper's logs: failures every poll are the site (or the
/// path to it); silence is a hung spider. Whether its process runs does not change
/// the remedy (a restart either way), so it is evidence, not a criterion.
pub fn choose(logs: &LogReading) -> StallScenario {
    if logs.failures > 0 && logs.failures >= logs.scraped {
        StallScenario::SourceSiteDown
    } else {
        StallScenario::SpiderHung
    }
}

#[async_trait]
impl Runbook for ScraperStalled {
    type Diagnosis = StallDiagnosis;

    fn meta(&self) -> &'static RunbookMeta {
        &META
    }

    async fn investigate(&self, ops: &Ops) -> Result<StallDiagnosis, StepError> {
        let phase = Phase::Investigate;
        let scrapers: Vec<Service> = SourceSite::ALL.iter().map(|s| s.scraper()).collect();
        let mut statuses = Vec::new();
        for &scraper in &scrapers {
            let status = ops
                .act(
                    phase,
                    &format!("Check scraper status ({scraper})"),
                    "docker compose ps | grep scraper",
                    ops.orchestrator.status(scraper),
                    |s| format!("{s:?}"),
                )
                .await?;
            statuses.push(status);
        }
        let newest = newest_per_site(ops, phase).await?;
        let now = ops.clock.now();
        let stalled: Vec<SourceSite> = SourceSite::ALL
            .into_iter()
            .filter(|site| {
                newest
                    .iter()
                    .find(|(s, _)| s == site)
                    .is_none_or(|(_, at)| now - *at > STALLED_AFTER)
            })
            .collect();
        let Some(&first) = stalled.first() else {
            return Err(StepError::Escalate {
                step: "Check last scrape time".into(),
                reason: format!(
                    "every scraper added a track within two hours ({})",
                    describe_newest(&newest, now)
                ),
            });
        };
        let scraper = first.scraper();
        let lines = ops
            .act(
                phase,
                "Check logs for errors",
                format!("docker compose logs {scraper} --tail={TAIL}"),
                ops.orchestrator.logs(scraper, TAIL),
                |lines| format!("{} lines", lines.len()),
            )
            .await?;
        let logs = LogReading::of(&lines);
        let status = ops
            .act(
                phase,
                "Check if spider is running",
                format!("docker compose exec {scraper} pgrep -af python"),
                ops.orchestrator.status(scraper),
                |s| match s {
                    ServiceStatus::Running => "the spider's process runs".to_owned(),
                    other => format!("no spider process: {other:?}"),
                },
            )
            .await?;
        let scenario = choose(&logs);
        let evidence = vec![
            Evidence::new("newest track per scraper", describe_newest(&newest, now)),
            Evidence::new(format!("{scraper} process"), format!("{status:?}")),
            Evidence::new(
                format!("{scraper} last {TAIL} log lines"),
                format!(
                    "{} failed fetches, {} pages scraped{}",
                    logs.failures,
                    logs.scraped,
                    logs.last_failure
                        .as_deref()
                        .map(|l| format!("; last: {l}"))
                        .unwrap_or_default()
                ),
            ),
        ];
        ops.timeline.note(
            phase,
            format!("Diagnosis: scenario {}", scenario.id()),
            format!(
                "{scraper}: {} failed fetches in its last {TAIL} lines",
                logs.failures
            ),
        );
        Ok(StallDiagnosis {
            scenario,
            stalled,
            evidence,
        })
    }

    async fn resolve(&self, ops: &Ops, diagnosis: &StallDiagnosis) -> Result<(), StepError> {
        // The text's one sequence serves both causes; the scenario only names which
        // outcome to expect.
        for &site in &diagnosis.stalled {
            restart_and_follow(ops, site).await?;
        }
        Ok(())
    }

    fn criteria(&self) -> Vec<Criterion> {
        vec![
            Criterion::new(
                "New tracks from every scraper (newest under 2 hours old)",
                Probe::Sql {
                    sql: STALEST_SCRAPER_MINUTES,
                },
                Check::Below(120.0),
            ),
            Criterion::new(
                "Every scraper adds tracks (each added one in the last 10 minutes)",
                Probe::Sql {
                    sql: "SELECT COUNT(*)::float8 FROM (VALUES ('mixesdb'), ('1001tracklists')) \
                          AS s(source) WHERE EXISTS (SELECT 1 FROM tracks t \
                          WHERE t.source = s.source \
                            AND t.created_at > NOW() - INTERVAL '10 minutes')",
                },
                Check::Above(1.5),
            )
            .eventually_within(Duration::from_secs(10 * 60)),
        ]
    }
}

/// Step 4 per source: the newest track of each scraper.
async fn newest_per_site(
    ops: &Ops,
    phase: Phase,
) -> Result<Vec<(SourceSite, DateTime<Utc>)>, StepError> {
    let sql = "SELECT source, MAX(created_at) as last_track_created
FROM tracks
WHERE source IN ('mixesdb', '1001tracklists')
GROUP BY source;";
    let rows: Vec<(String, DateTime<Utc>)> = ops
        .act(
            phase,
            "Check last scrape time (per scraper)",
            ops.psql(sql),
            sqlx::query_as(sql).fetch_all(&ops.db),
            |rows| format!("{} scrapers", rows.len()),
        )
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(source, at)| {
            SourceSite::ALL
                .into_iter()
                .find(|s| s.name() == source)
                .map(|site| (site, at))
        })
        .collect())
}

fn describe_newest(newest: &[(SourceSite, DateTime<Utc>)], now: DateTime<Utc>) -> String {
    newest
        .iter()
        .map(|(site, at)| {
            format!(
                "{site} {} ago",
                format_modeled((now - *at).to_std().unwrap_or_default())
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Steps 1–4 for one stalled scraper: restart it, follow its logs for a bounded time
/// until it scrapes a page, and if it does not, check its site and escalate with what
/// the site answered.
pub async fn restart_and_follow(ops: &Ops, site: SourceSite) -> Result<(), StepError> {
    let phase = Phase::Resolve;
    let scraper = site.scraper();
    steps::compose(ops, phase, "Restart scraper", Compose::Restart, &[scraper]).await?;
    let restarted = ops.clock.now();
    if follow_logs(ops, scraper, restarted).await? {
        return Ok(());
    }
    let answer = steps::check_site(ops, phase, site).await;
    Err(StepError::Escalate {
        step: "If still stalled, check target site".into(),
        reason: if answer.is_up() {
            format!(
                "{scraper} scraped nothing in {} after its restart although {site} is up \
                 ({answer}): the spider needs updating; escalated to engineering",
                format_modeled(FOLLOW_FOR)
            )
        } else {
            format!(
                "{scraper} scraped nothing in {} after its restart: {site} is down \
                 ({answer}); escalated to engineering to follow up with the site",
                format_modeled(FOLLOW_FOR)
            )
        },
    })
}

/// `docker compose logs <scraper> -f`, followed for at most [`FOLLOW_FOR`]: whether a
/// page was scraped since `since`.
async fn follow_logs(ops: &Ops, scraper: Service, since: DateTime<Utc>) -> Result<bool, StepError> {
    let title = "Monitor for activity";
    let command = format!("docker compose logs {scraper} -f");
    loop {
        let waited = (ops.clock.now() - since).to_std().unwrap_or_default();
        let lines = ops.orchestrator.logs(scraper, 20).await.step(title)?;
        // Lines from before the restart do not count (a container's log keeps them).
        let scraped = lines.iter().rev().find(|l| {
            l.contains("scraped page") && steps::logged_at(l).is_some_and(|at| at >= since)
        });
        if let Some(line) = scraped {
            ops.timeline.record_wait(
                Phase::Resolve,
                title,
                Some(command),
                line.clone(),
                Outcome::Ok,
                waited,
            );
            return Ok(true);
        }
        if waited >= FOLLOW_FOR {
            ops.timeline.record_wait(
                Phase::Resolve,
                title,
                Some(command),
                format!(
                    "no page scraped in {}; last line: {}",
                    format_modeled(waited),
                    lines.last().map(String::as_str).unwrap_or("(none)")
                ),
                Outcome::Failed,
                waited,
            );
            return Ok(false);
        }
        ops.clock.sleep(Duration::from_secs(30)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &[&str]) -> Vec<String> {
        text.iter().map(|l| (*l).to_owned()).collect()
    }

    #[test]
    fn failed_fetches_every_poll_point_at_the_site() {
        let logs = LogReading::of(&lines(&[
            "ERROR scraping page 12 failed: GET http://site/api/tracklists?page=12: 503; retrying in 60 s (modeled)",
            "ERROR scraping page 12 failed: GET http://site/api/tracklists?page=12: 503; retrying in 60 s (modeled)",
        ]));
        assert_eq!(logs.failures, 2);
        assert_eq!(choose(&logs), StallScenario::SourceSiteDown);
    }

    #[test]
    fn a_silent_running_spider_is_hung() {
        let logs = LogReading::of(&lines(&[
            "INFO scraped page 11: 10 tracks from Essential Mix",
            "INFO pool status",
        ]));
        assert_eq!(logs.failures, 0);
        assert_eq!(choose(&logs), StallScenario::SpiderHung);
    }
}
