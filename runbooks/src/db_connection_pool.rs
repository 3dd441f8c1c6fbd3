//! Runbook: Database Connection Pool Exhaustion (`DatabaseConnectionPoolHigh`, P1,
//! pool usage > 80%).
//!
//! The investigation reads what the runbook reads: the services' `pool status:` log
//! lines, then `pg_stat_activity` as its three queries show it. What holds the
//! connections decides the scenario ([`choose`]): connections of the exhausted service
//! busy on one query for longer than the runbook's 30 seconds are long-running queries
//! (A); connections left `idle in transaction` that never come back are a leak (B);
//! connections busy on short queries, many of them, are traffic the pool is too small
//! for (C). A pool that is full of none of these is escalated, not guessed.
//!
//! The resolution follows the text, with two changes drilling showed were needed (both
//! in `docs/db-connection-pool.md`): the kill is limited to the exhausted services'
//! sessions (the text's SQL would also end a backup or an engineer's psql), and "watch
//! pool usage" becomes a bounded watch that escalates when a restarted service's leak
//! comes back.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use wire::Service;
use wire::api::PoolUsage;

use crate::alert::{AlertRule, Severity, minutes_of};
use crate::criteria::{Check, Criterion};
use crate::ops::{Ops, Outcome, Phase, StepContext, StepError};
use crate::probe::Probe;
use crate::runbook::{Diagnosis, Evidence, Runbook, RunbookMeta, Scenario};
use crate::scenarios;
use crate::steps::{self, Compose};

pub static META: RunbookMeta = RunbookMeta {
    title: "Database Connection Pool Exhaustion",
    rule: AlertRule {
        name: "DatabaseConnectionPoolHigh",
        severity: Severity::P1,
        runbook: "db-connection-pool",
        threshold: "Pool usage > 80%",
        probe: Probe::PoolUsage,
        condition: Check::Above(0.80),
        for_duration: minutes_of(0),
        typical_resolution: minutes_of(15),
    },
    doc: include_str!("../docs/db-connection-pool.md"),
};

scenarios! {
    /// The resolution scenarios of the Connection Pool Exhaustion runbook.
    pub enum PoolScenario {
        LongRunningQueries = ('A', "Long-Running Queries", "long-running-queries"),
        ConnectionLeak = ('B', "Connection Leak", "connection-leak"),
        NeedMoreConnections = ('C', "Need More Connections", "need-more-connections"),
    }
}

/// The services whose pools the alert watches.
pub const POOLED: [Service; 2] = [Service::RestApi, Service::GraphApi];

/// The Connection Pool Exhaustion runbook.
pub struct DbConnectionPool;

#[derive(Debug)]
pub struct PoolDiagnosis {
    pub scenario: PoolScenario,
    /// The services above the threshold, as their log lines showed them.
    pub exhausted: Vec<Service>,
    pub evidence: Vec<Evidence>,
}

impl Diagnosis for PoolDiagnosis {
    type Scenario = PoolScenario;
    fn scenario(&self) -> PoolScenario {
        self.scenario
    }
    fn evidence(&self) -> &[Evidence] {
        &self.evidence
    }
}

/// Usage above which a pool is exhausted (the alert's threshold).
const THRESHOLD: f64 = 0.80;
/// Usage at which a pool beside the fullest one counts as exhausted too.
const NEAR_THRESHOLD: f64 = 0.65;
/// How long the investigation waits before reading a pool that nothing explained once
/// more: longer than the ten seconds after which a connection idle in its
/// transaction counts as stuck.
const LOOK_AGAIN_AFTER: Duration = Duration::from_secs(15);

/// What one service's connections were doing, from `pg_stat_activity`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sessions {
    /// Busy on one query for longer than the runbook's 30 seconds.
    pub long_running: usize,
    /// Busy on a query that started within 30 seconds.
    pub short_active: usize,
    /// Left in an open transaction for more than ten seconds.
    pub stuck_in_transaction: usize,
}

impl Sessions {
    fn describe(&self) -> String {
        format!(
            "{} on queries running > 30 s, {} on short queries, {} idle in transaction > 10 s",
            self.long_running, self.short_active, self.stuck_in_transaction
        )
    }
}

/// The scenario for what holds an exhausted pool's connections, or why none fits.
pub fn choose(usage: &PoolUsage, sessions: &Sessions) -> Result<PoolScenario, String> {
    let held = usage.checked_out.max(1) as usize;
    // A third of the pool's connections held one way is the cause; the rest is the
    // traffic it serves meanwhile.
    let explains = |n: usize| n * 3 >= held;
    if explains(sessions.long_running) && sessions.long_running >= sessions.stuck_in_transaction {
        return Ok(PoolScenario::LongRunningQueries);
    }
    if explains(sessions.stuck_in_transaction) {
        return Ok(PoolScenario::ConnectionLeak);
    }
    if sessions.short_active * 2 >= held {
        return Ok(PoolScenario::NeedMoreConnections);
    }
    Err(format!(
        "{} of {} connections checked out, but pg_stat_activity shows {}: \
         nothing in the database explains the pool",
        usage.checked_out,
        usage.size + usage.max_overflow,
        sessions.describe()
    ))
}

#[async_trait]
impl Runbook for DbConnectionPool {
    type Diagnosis = PoolDiagnosis;

    fn meta(&self) -> &'static RunbookMeta {
        &META
    }

    async fn investigate(&self, ops: &Ops) -> Result<PoolDiagnosis, StepError> {
        let phase = Phase::Investigate;
        let mut usages = BTreeMap::new();
        for service in POOLED {
            usages.insert(service, current_pool(ops, phase, service).await?);
        }
        // The alert fired on one reading, at a peak of the traffic's own connections;
        // a moment later the pool may read well under the threshold (a leak of 19
        // connections read 63% once its peak had passed) and is still the incident.
        // So the fullest pool is looked into whatever it reads now, and what the
        // database shows decides: nothing there explains it, and the runbook escalates.
        let Some(worst) = usages
            .iter()
            .max_by(|a, b| {
                a.1.usage
                    .partial_cmp(&b.1.usage)
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
            .map(|(service, _)| *service)
        else {
            return Err(StepError::Escalate {
                step: "Check current pool usage".into(),
                reason: "no pooled service to read".into(),
            });
        };
        // What the remediation acts on: the fullest pool, and any other near the
        // threshold (runaway queries may hold both services' connections).
        let exhausted: Vec<Service> = usages
            .iter()
            .filter(|(service, usage)| **service == worst || usage.usage > NEAR_THRESHOLD)
            .map(|(service, _)| *service)
            .collect();
        let listed = "connections not idle";
        listing(
            ops,
            phase,
            "Check active connections",
            ACTIVE_CONNECTIONS,
            listed,
        )
        .await?;
        let by_service = connections_by_service(ops, phase).await?;
        let listed = "running over 30 s";
        listing(
            ops,
            phase,
            "Check for long-running queries",
            LONG_RUNNING_QUERIES,
            listed,
        )
        .await?;
        let mut sessions = sessions_of(ops, phase, worst).await?;
        let mut chosen = choose(&usages[&worst], &sessions);
        if let Err(unexplained) = &chosen {
            // A leaked connection counts as stuck once it has idled in its transaction
            // for ten seconds. Read the moment the alert fires, a leak's youngest
            // connections are not yet: on docker, seed 42, 6 of 23 read as stuck and
            // the drill escalated a leak. So what nothing explains is read once more
            // when they would be, before the runbook escalates.
            ops.timeline.note(
                phase,
                "Look again in 15 seconds",
                format!("{worst}: {unexplained}"),
            );
            ops.clock.sleep(LOOK_AGAIN_AFTER).await;
            let usage = current_pool(ops, phase, worst).await?;
            sessions = sessions_of(ops, phase, worst).await?;
            chosen = choose(&usage, &sessions);
            usages.insert(worst, usage);
        }
        let scenario = chosen.map_err(|reason| StepError::Escalate {
            step: "Check for long-running queries".into(),
            reason: format!("{worst}: {reason}"),
        })?;
        let evidence = vec![
            Evidence::new("pool usage (log lines)", describe_usages(&usages)),
            Evidence::new(format!("{worst} connections"), sessions.describe()),
            Evidence::new("connections by service", by_service),
        ];
        ops.timeline.note(
            phase,
            format!("Diagnosis: scenario {}", scenario.id()),
            format!("{worst}: {}", sessions.describe()),
        );
        Ok(PoolDiagnosis {
            scenario,
            exhausted,
            evidence,
        })
    }

    async fn resolve(&self, ops: &Ops, diagnosis: &PoolDiagnosis) -> Result<(), StepError> {
        match diagnosis.scenario {
            PoolScenario::LongRunningQueries => long_running(ops, &diagnosis.exhausted).await,
            PoolScenario::ConnectionLeak => connection_leak(ops).await,
            PoolScenario::NeedMoreConnections => more_connections(ops).await,
        }
    }

    fn criteria(&self) -> Vec<Criterion> {
        vec![
            Criterion::new(
                "Pool usage < 80%",
                Probe::PoolUsage,
                Check::StaysBelow {
                    threshold: THRESHOLD,
                    samples: 4,
                },
            )
            // A restart's backlog holds the pool full for a sample or two after a
            // restart, and the usage then falls over a few more: five minutes left
            // scenario C one sample short now and then (0.77, 1, 0.97, 0.62, 0.58,
            // 0.52), never a pool that stayed full. On a busy machine the restart
            // itself took ten modeled minutes and the pools ran full for six more
            // before they settled at half (CI of 7f75ad2: 1, 1, 0.73, 0.97, 0.53,
            // 0.50 in eight minutes). The check ends at its fourth sample below 80%,
            // so a longer wait costs a drill that settles nothing.
            .eventually_within(Duration::from_secs(12 * 60)),
            Criterion::new(
                "No idle connections (idle for over an hour)",
                Probe::Sql {
                    sql: IDLE_FOR_AN_HOUR,
                },
                // "Should be 0 or very low": the twin's own quiet pools hold a few.
                Check::AtMost(5.0),
            ),
            Criterion::new(
                "No service connection held by one query or transaction for over 30 seconds",
                Probe::Sql {
                    sql: SERVICE_SESSIONS_OVER_30_SECONDS,
                },
                Check::AtMost(0.0),
            )
            .eventually_within(Duration::from_secs(5 * 60)),
        ]
    }
}

/// The verification's idle-connection query, as the runbook writes it.
pub const IDLE_FOR_AN_HOUR: &str = "SELECT COUNT(*)::float8
FROM pg_stat_activity
WHERE datname = 'musicdb'
  AND state = 'idle'
  AND NOW() - state_change > INTERVAL '1 hour';";

/// Step 4's long-running threshold as a check, for the pooled services' sessions: a
/// query or an open transaction older than 30 seconds (their own queries take a few).
/// It also sees queries a restart orphaned: PostgreSQL runs them on after the client
/// is gone.
pub const SERVICE_SESSIONS_OVER_30_SECONDS: &str = "SELECT COUNT(*)::float8
FROM pg_stat_activity
WHERE datname = 'musicdb'
  AND application_name IN ('rest-api', 'graph-api')
  AND state != 'idle'
  AND NOW() - query_start > INTERVAL '30 seconds';";

fn describe_usages(usages: &BTreeMap<Service, PoolUsage>) -> String {
    usages
        .iter()
        .map(|(service, u)| {
            format!(
                "{service} {:.0}% ({} of {})",
                u.usage * 100.0,
                u.checked_out,
                u.size + u.max_overflow
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Step 1, `docker compose logs <service> --tail=50 | grep -i "pool"`: the newest
/// `pool status:` line. The runbook reads rest-api only; graph-api's pool trips the
/// same alert, so both are read.
pub async fn pool_from_logs(
    ops: &Ops,
    phase: Phase,
    service: Service,
) -> Result<PoolUsage, StepError> {
    let lines = steps::grep_logs(ops, phase, service, 50, &["pool"]).await?;
    lines
        .iter()
        .rev()
        .find_map(|line| parse_pool_line(line))
        .ok_or_else(|| StepError::Escalate {
            step: format!("Check {service} pool usage"),
            reason: format!(
                "{service}'s last 50 log lines have no 'pool status:' line ({} lines mention the pool)",
                lines.len()
            ),
        })
}

/// The pool as it is now: the log line is up to 30 seconds old, so the service's
/// `/health` is read too (the metric beside the log), and the fuller of the two kept.
async fn current_pool(ops: &Ops, phase: Phase, service: Service) -> Result<PoolUsage, StepError> {
    let logged = pool_from_logs(ops, phase, service).await?;
    let api = match service {
        Service::GraphApi => &ops.graph_api,
        _ => &ops.rest_api,
    };
    let now = ops
        .act(
            phase,
            &format!("Check {service} pool metrics"),
            format!(
                "curl -s {} | jq .pool",
                api.0
                    .url("/health")
                    .map(|u| u.to_string())
                    .unwrap_or_default()
            ),
            api.pool(),
            |u| {
                format!(
                    "usage {:.0}% ({} checked out)",
                    u.usage * 100.0,
                    u.checked_out
                )
            },
        )
        .await?;
    Ok(if now.usage >= logged.usage {
        now
    } else {
        logged
    })
}

/// The figures of a `pool status: size=10 max_overflow=20 checked_out=3 idle=2
/// usage=10%` line.
pub fn parse_pool_line(line: &str) -> Option<PoolUsage> {
    let figures = line.split("pool status:").nth(1)?;
    let field = |name: &str| {
        figures
            .split_whitespace()
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
    };
    let number = |name: &str| field(name)?.parse::<u32>().ok();
    Some(PoolUsage {
        size: number("size")?,
        max_overflow: number("max_overflow")?,
        checked_out: number("checked_out")?,
        idle: number("idle")?,
        usage: field("usage")?.trim_end_matches('%').parse::<f64>().ok()? / 100.0,
    })
}

/// Step 2, "Check active connections", as the runbook writes it.
const ACTIVE_CONNECTIONS: &str = "SELECT
    pid,
    usename,
    application_name,
    state,
    query_start,
    LEFT(query, 50) as query
FROM pg_stat_activity
WHERE datname = 'musicdb'
  AND state != 'idle'
ORDER BY query_start;";

/// Step 4, "Check for long-running queries", as the runbook writes it.
const LONG_RUNNING_QUERIES: &str = "SELECT
    pid,
    NOW() - query_start AS duration,
    query
FROM pg_stat_activity
WHERE state != 'idle'
  AND NOW() - query_start > INTERVAL '30 seconds'
ORDER BY duration DESC;";

/// Runs one of the text's listing queries as a recorded step; the rows it listed.
async fn listing(
    ops: &Ops,
    phase: Phase,
    title: &str,
    sql: &'static str,
    listed: &str,
) -> Result<usize, StepError> {
    let rows = ops
        .act(
            phase,
            title,
            ops.psql(sql),
            sqlx::query(sql).fetch_all(&ops.db),
            |rows| format!("{} {listed}", rows.len()),
        )
        .await?;
    Ok(rows.len())
}

/// Step 3, "Count connections by service", as the runbook writes it.
async fn connections_by_service(ops: &Ops, phase: Phase) -> Result<String, StepError> {
    let sql = "SELECT
    application_name,
    state,
    COUNT(*) as connection_count
FROM pg_stat_activity
WHERE datname = 'musicdb'
GROUP BY application_name, state
ORDER BY connection_count DESC;";
    let rows: Vec<(Option<String>, Option<String>, i64)> = ops
        .act(
            phase,
            "Count connections by service",
            ops.psql(sql),
            sqlx::query_as(sql).fetch_all(&ops.db),
            |rows| rows.len().to_string() + " groups",
        )
        .await?;
    Ok(rows
        .iter()
        .take(8)
        .map(|(app, state, n)| {
            format!(
                "{} {} {n}",
                app.as_deref().filter(|a| !a.is_empty()).unwrap_or("(none)"),
                state.as_deref().unwrap_or("-")
            )
        })
        .collect::<Vec<_>>()
        .join(", "))
}

/// What one service's connections are doing: steps 2 and 4 read for one application
/// name. A connection idle in its transaction for over ten seconds is stuck: the
/// services' reads run outside transactions, so one that stays open is not coming back.
const SESSIONS_OF: &str = "SELECT
    COUNT(*) FILTER (WHERE state = 'active' AND NOW() - query_start > INTERVAL '30 seconds'),
    COUNT(*) FILTER (WHERE state = 'active' AND NOW() - query_start <= INTERVAL '30 seconds'),
    COUNT(*) FILTER (WHERE state LIKE 'idle in transaction%'
                       AND NOW() - state_change > INTERVAL '10 seconds')
FROM pg_stat_activity
WHERE datname = 'musicdb' AND application_name = $1;";

/// [`SESSIONS_OF`] as a recorded step.
pub async fn sessions_of(ops: &Ops, phase: Phase, service: Service) -> Result<Sessions, StepError> {
    let title = format!("Read what {service}'s connections are doing");
    ops.act(
        phase,
        &title,
        ops.psql(&SESSIONS_OF.replace("$1", &format!("'{}'", service.name()))),
        read_sessions(ops, service),
        |s| s.describe(),
    )
    .await
}

/// [`SESSIONS_OF`] read quietly, for a watch that polls it.
async fn read_sessions(ops: &Ops, service: Service) -> Result<Sessions, sqlx::Error> {
    let (long, short, stuck): (i64, i64, i64) = sqlx::query_as(SESSIONS_OF)
        .bind(service.name())
        .fetch_one(&ops.db)
        .await?;
    let count = |n: i64| usize::try_from(n).unwrap_or(0);
    Ok(Sessions {
        long_running: count(long),
        short_active: count(short),
        stuck_in_transaction: count(stuck),
    })
}

const IDENTIFY_OVER_5_MINUTES: &str = "SELECT pid, query_start, query
FROM pg_stat_activity
WHERE state != 'idle'
  AND NOW() - query_start > INTERVAL '5 minutes'
  AND application_name = ANY($1);";

const COUNT_OVER_10_MINUTES: &str = "SELECT COUNT(*)
FROM pg_stat_activity
WHERE state != 'idle'
  AND NOW() - query_start > INTERVAL '10 minutes'
  AND application_name = ANY($1);";

const COUNT_OVER_30_SECONDS: &str = "SELECT COUNT(*)
FROM pg_stat_activity
WHERE state != 'idle'
  AND NOW() - query_start > INTERVAL '30 seconds'
  AND application_name = ANY($1);";

/// Step 2 of scenario A, limited to the exhausted services' sessions.
const KILL_OVER_10_MINUTES: &str = "SELECT pg_terminate_backend(pid)
FROM pg_stat_activity
WHERE state != 'idle'
  AND NOW() - query_start > INTERVAL '10 minutes'
  AND application_name = ANY($1);";

/// How long the automation waits for the long-running queries to reach the text's
/// ten-minute kill threshold.
const KILL_WAIT_BOUND: Duration = Duration::from_secs(15 * 60);

/// Scenario A: identify the queries over five minutes, wait until they pass the kill
/// threshold of ten, and terminate them after approval — only the exhausted services'
/// own sessions.
pub async fn long_running(ops: &Ops, exhausted: &[Service]) -> Result<(), StepError> {
    let phase = Phase::Resolve;
    let names: Vec<String> = exhausted.iter().map(|s| s.name().to_owned()).collect();
    let shown = |sql: &str| {
        let list: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
        ops.psql(&sql.replace("= ANY($1)", &format!("IN ({})", list.join(", "))))
    };
    // Run after the incident (the queries ended, a second responder already killed
    // them), there is nothing to wait for: no session of theirs holds a long query.
    let busy: i64 = ops
        .act(
            phase,
            "Check for long-running queries (over 30 seconds)",
            shown(COUNT_OVER_30_SECONDS),
            sqlx::query_scalar(COUNT_OVER_30_SECONDS)
                .bind(&names)
                .fetch_one(&ops.db),
            |count| format!("{count} of their queries run over 30 seconds"),
        )
        .await?;
    if busy == 0 {
        ops.timeline.note(
            phase,
            "Nothing to kill",
            "no query of theirs runs over 30 seconds: the pool is not held by one",
        );
        return Ok(());
    }
    let title = "Identify blocking queries (over 5 minutes)";
    ops.wait_until(
        phase,
        title,
        KILL_WAIT_BOUND,
        Duration::from_secs(30),
        || async {
            let rows = sqlx::query(IDENTIFY_OVER_5_MINUTES)
                .bind(&names)
                .fetch_all(&ops.db)
                .await
                .step(title)?;
            Ok(if rows.is_empty() {
                Err("no query of theirs has run 5 minutes yet".to_owned())
            } else {
                Ok(format!("{} queries over 5 minutes", rows.len()))
            })
        },
    )
    .await?;
    let title = "Wait for them to pass the kill threshold (10 minutes)";
    ops.wait_until(
        phase,
        title,
        KILL_WAIT_BOUND,
        Duration::from_secs(30),
        || async {
            let count: i64 = sqlx::query_scalar(COUNT_OVER_10_MINUTES)
                .bind(&names)
                .fetch_one(&ops.db)
                .await
                .step(title)?;
            Ok(if count > 0 {
                Ok(format!("{count} queries over 10 minutes"))
            } else {
                Err("none over 10 minutes yet".to_owned())
            })
        },
    )
    .await?;
    kill_rounds(ops, &names, &shown(KILL_OVER_10_MINUTES)).await?;
    for &service in exhausted {
        watch_pool(ops, service, Duration::from_secs(2 * 60)).await?;
    }
    Ok(())
}

/// Runs the kill, after one approval, each time more of the services' queries pass
/// ten minutes, until none of their connections is busy on a query over 30 seconds
/// (step 4's threshold): the text's threshold leaves the younger queries of the same
/// job running, and they hold the pool as long as the older ones did.
async fn kill_rounds(ops: &Ops, names: &[String], command: &str) -> Result<(), StepError> {
    let phase = Phase::Resolve;
    let title = "Kill long-running queries";
    let mut approved = false;
    let mut terminated_total = 0;
    let started = ops.clock.now();
    loop {
        let over_ten: i64 = sqlx::query_scalar(COUNT_OVER_10_MINUTES)
            .bind(names)
            .fetch_one(&ops.db)
            .await
            .step(title)?;
        if over_ten > 0 {
            let kill = sqlx::query(KILL_OVER_10_MINUTES)
                .bind(names)
                .fetch_all(&ops.db);
            let terminated = if approved {
                ops.act(phase, title, command, kill, |rows| {
                    format!("{} sessions terminated", rows.len())
                })
                .await?
            } else {
                approved = true;
                ops.destructive(
                    phase,
                    title,
                    command,
                    "their requests fail; nothing else is touched",
                    kill,
                    |rows| format!("{} sessions terminated", rows.len()),
                )
                .await?
            };
            terminated_total += terminated.len();
        }
        let busy: i64 = sqlx::query_scalar(COUNT_OVER_30_SECONDS)
            .bind(names)
            .fetch_one(&ops.db)
            .await
            .step(title)?;
        let waited = (ops.clock.now() - started).to_std().unwrap_or_default();
        if busy == 0 && terminated_total > 0 {
            ops.timeline.record_wait(
                phase,
                "Kill each long-running query as it passes 10 minutes",
                None,
                format!("{terminated_total} terminated; none over 30 s left"),
                Outcome::Ok,
                waited,
            );
            return Ok(());
        }
        if waited >= KILL_WAIT_BOUND {
            return Err(StepError::Escalate {
                step: title.into(),
                reason: format!(
                    "{busy} queries still over 30 s after {} of kills ({terminated_total} \
                     terminated): something keeps starting them",
                    crate::ops::timeline::format_modeled(waited)
                ),
            });
        }
        ops.clock.sleep(Duration::from_secs(30)).await;
    }
}

/// How long after a restart the automation watches for a leak to come back: long
/// enough for a leak that filled the pool before to show again, bounded where the
/// text's `watch` never ends.
pub const LEAK_WATCH: Duration = Duration::from_secs(5 * 60);
/// Connections stuck in a transaction after the restart that mean the leak is back.
const LEAK_IS_BACK: usize = 4;

/// Scenario B: restart both services, then watch the pool for the leak's return; if it
/// comes back, the fix is in the code and the incident goes to engineering.
pub async fn connection_leak(ops: &Ops) -> Result<(), StepError> {
    let phase = Phase::Resolve;
    steps::compose(
        ops,
        phase,
        "Restart services to release connections",
        Compose::Restart,
        &POOLED,
    )
    .await?;
    let title = "Monitor pool usage for the leak's return";
    let watching = ops.clock.now();
    loop {
        let mut seen = Vec::new();
        for service in POOLED {
            let sessions = read_sessions(ops, service).await.step(title)?;
            if sessions.stuck_in_transaction >= LEAK_IS_BACK {
                let evidence = format!("{service}: {}", sessions.describe());
                let waited = (ops.clock.now() - watching).to_std().unwrap_or_default();
                ops.timeline.record_wait(
                    phase,
                    title,
                    Some(WATCH_COMMAND.to_owned()),
                    format!("the leak is back: {evidence}"),
                    Outcome::Ok,
                    waited,
                );
                return Err(StepError::Escalate {
                    step: "If leak persists, investigate code".into(),
                    reason: format!(
                        "the leak came back after the restart ({evidence}): it is in the \
                         service's code; escalated to engineering"
                    ),
                });
            }
            seen.push(format!("{service} {}", sessions.stuck_in_transaction));
        }
        let waited = (ops.clock.now() - watching).to_std().unwrap_or_default();
        if waited >= LEAK_WATCH {
            ops.timeline.record_wait(
                phase,
                title,
                Some(WATCH_COMMAND.to_owned()),
                format!(
                    "no leak for {}: idle in transaction {}",
                    crate::ops::timeline::format_modeled(waited),
                    seen.join(", ")
                ),
                Outcome::Ok,
                waited,
            );
            return Ok(());
        }
        ops.clock.sleep(Duration::from_secs(30)).await;
    }
}

/// The text's monitoring command (it never ends; the automation's watch is bounded).
const WATCH_COMMAND: &str = "watch -n 30 'docker compose logs rest-api --tail=10 | grep pool'";

/// Pool sizing the text raises to in scenario C.
pub const RAISED_POOL: (&str, &str) = ("20", "40");

/// Scenario C: raise the pool to 20 + 40, restart, and watch it; the new sizing is a
/// deliberate config change, and the timeline says so. When both services' pool lines
/// already read 20 + 40, neither is changed nor restarted (one still at 10 + 20 gets
/// both raised and restarted, as the text does): a second restart raises nothing and
/// its backlog of requests fills the pool again (a resolution run twice failed its
/// verification that way in CI).
pub async fn more_connections(ops: &Ops) -> Result<(), StepError> {
    let phase = Phase::Resolve;
    if already_raised(ops).await {
        ops.timeline.note(
            phase,
            "Temporarily increase pool size",
            format!(
                "rest-api and graph-api already run with {} + {}: nothing to raise, no restart",
                RAISED_POOL.0, RAISED_POOL.1
            ),
        );
        for service in POOLED {
            watch_pool(ops, service, Duration::from_secs(3 * 60)).await?;
        }
        return Ok(());
    }
    let vars: BTreeMap<String, String> = [
        (wire::env::POOL_SIZE.to_owned(), RAISED_POOL.0.to_owned()),
        (wire::env::MAX_OVERFLOW.to_owned(), RAISED_POOL.1.to_owned()),
    ]
    .into();
    for service in POOLED {
        ops.act(
            phase,
            &format!("Temporarily increase pool size ({service})"),
            format!(
                "# edit {service}'s environment: POSTGRES_POOL_SIZE={} (from 10), POSTGRES_MAX_OVERFLOW={} (from 20)",
                RAISED_POOL.0, RAISED_POOL.1
            ),
            ops.orchestrator.set_env(service, vars.clone()),
            |_| "set for the next start".to_owned(),
        )
        .await?;
    }
    ops.timeline.note(
        phase,
        "Deliberate config change",
        format!(
            "rest-api and graph-api: POSTGRES_POOL_SIZE 10 → {}, POSTGRES_MAX_OVERFLOW 20 → {} \
             (\"temporarily\": lowering it again is a decision for after the incident)",
            RAISED_POOL.0, RAISED_POOL.1
        ),
    );
    steps::compose(
        ops,
        phase,
        "Restart with the larger pool",
        Compose::Restart,
        &POOLED,
    )
    .await?;
    for service in POOLED {
        watch_pool(ops, service, Duration::from_secs(3 * 60)).await?;
    }
    Ok(())
}

/// Whether every pooled service's last pool line reads the raised sizing.
async fn already_raised(ops: &Ops) -> bool {
    for service in POOLED {
        let Ok(lines) = ops.orchestrator.logs(service, 10).await else {
            return false;
        };
        let raised = lines
            .iter()
            .rev()
            .find_map(|l| parse_pool_line(l))
            .is_some_and(|usage| {
                usage.size.to_string() == RAISED_POOL.0
                    && usage.max_overflow.to_string() == RAISED_POOL.1
            });
        if !raised {
            return false;
        }
    }
    true
}

/// `watch -n 30 'docker compose logs <service> --tail=10 | grep pool'`, bounded: the
/// service's pool line, until it reads below the threshold.
async fn watch_pool(ops: &Ops, service: Service, bound: Duration) -> Result<String, StepError> {
    let title = format!("Monitor {service} pool usage");
    ops.wait_until(
        Phase::Resolve,
        &title,
        bound,
        Duration::from_secs(30),
        || async {
            let lines = ops.orchestrator.logs(service, 10).await.step(&title)?;
            Ok(match lines.iter().rev().find_map(|l| parse_pool_line(l)) {
                Some(usage) if usage.usage <= THRESHOLD => {
                    Ok(format!("{service} pool at {:.0}%", usage.usage * 100.0))
                }
                Some(usage) => Err(format!("{service} pool at {:.0}%", usage.usage * 100.0)),
                None => Err(format!("no pool line in {service}'s last 10 log lines")),
            })
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(checked_out: u32) -> PoolUsage {
        PoolUsage {
            size: 10,
            max_overflow: 20,
            checked_out,
            idle: 0,
            usage: f64::from(checked_out) / 30.0,
        }
    }

    #[test]
    fn the_pool_line_is_read_back() {
        let line = "2026-11-30T03:00:00Z WARN pool status: size=10 max_overflow=20 checked_out=27 idle=1 usage=90%";
        assert_eq!(
            parse_pool_line(line),
            Some(PoolUsage {
                size: 10,
                max_overflow: 20,
                checked_out: 27,
                idle: 1,
                usage: 0.9
            })
        );
        assert_eq!(parse_pool_line("pool exhausted"), None);
    }

    #[test]
    fn what_holds_the_connections_decides() {
        let runaway = Sessions {
            long_running: 20,
            short_active: 8,
            stuck_in_transaction: 0,
        };
        assert_eq!(
            choose(&usage(28), &runaway),
            Ok(PoolScenario::LongRunningQueries)
        );
        let leak = Sessions {
            long_running: 0,
            short_active: 7,
            stuck_in_transaction: 19,
        };
        assert_eq!(choose(&usage(26), &leak), Ok(PoolScenario::ConnectionLeak));
        let load = Sessions {
            long_running: 0,
            short_active: 27,
            stuck_in_transaction: 1,
        };
        assert_eq!(
            choose(&usage(28), &load),
            Ok(PoolScenario::NeedMoreConnections)
        );
    }

    #[test]
    fn a_pool_the_database_does_not_explain_is_escalated() {
        let nothing = Sessions::default();
        let error = choose(&usage(27), &nothing).unwrap_err();
        assert!(
            error.contains("nothing in the database explains"),
            "{error}"
        );
    }
}
