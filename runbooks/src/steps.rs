//! Steps that several runbooks share, written once.
//!
//! The runbooks repeat themselves: "check circuit breaker states", "reload
//! configuration", "replay DLQ" appear in three of them. Each such step lives here,
//! records itself on the timeline with the command the runbook gives, and returns
//! what it saw.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::Method;
use wire::Service;
use wire::api::{
    BreakerState, DlqErrorsGrouped, DlqMessage, DlqStats, EnrichmentHealth, EnrichmentStats,
    ErrorKind, Provider, SourceSite, StatsByProvider,
};

use crate::ops::timeline::format_modeled;
use crate::ops::{Ops, Phase, StepContext, StepError};
use crate::probe::state_name;

/// `curl http://localhost:8020/health | jq '.api_clients'`.
pub async fn check_breakers(
    ops: &Ops,
    phase: Phase,
    title: &str,
) -> Result<EnrichmentHealth, StepError> {
    ops.act(
        phase,
        title,
        format!(
            "{} | jq '.api_clients'",
            ops.enrichment.0.curl(Method::GET, "/health", None)
        ),
        ops.enrichment.health(),
        describe_breakers,
    )
    .await
}

pub fn describe_breakers(health: &EnrichmentHealth) -> String {
    health
        .api_clients
        .iter()
        .map(|(provider, client)| {
            format!(
                "{provider}={} ({} failures{})",
                state_name(client.state),
                client.failure_count,
                if client.enabled { "" } else { ", disabled" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Providers whose breaker is OPEN.
pub fn open_breakers(health: &EnrichmentHealth) -> Vec<Provider> {
    health
        .api_clients
        .iter()
        .filter(|(_, c)| c.state == BreakerState::Open)
        .map(|(p, _)| *p)
        .collect()
}

/// Providers whose breaker is not CLOSED.
pub fn unhealthy_breakers(health: &EnrichmentHealth) -> Vec<Provider> {
    health
        .api_clients
        .iter()
        .filter(|(_, c)| c.state != BreakerState::Closed)
        .map(|(p, _)| *p)
        .collect()
}

/// `curl http://localhost:8020/metrics | grep circuit_breaker_failure_count`.
pub async fn breaker_failure_counts(
    ops: &Ops,
    phase: Phase,
) -> Result<BTreeMap<Provider, f64>, StepError> {
    let text = ops
        .act(
            phase,
            "Check failure counts",
            format!(
                "{} | grep circuit_breaker_failure_count",
                ops.enrichment.0.curl(Method::GET, "/metrics", None)
            ),
            ops.enrichment.metrics(),
            |text| {
                text.lines()
                    .filter(|l| l.starts_with("circuit_breaker_failure_count"))
                    .collect::<Vec<_>>()
                    .join("; ")
            },
        )
        .await?;
    Ok(Provider::ALL
        .into_iter()
        .filter_map(|p| {
            crate::ops::api::prometheus_value(
                &text,
                "circuit_breaker_failure_count",
                &[("provider", p.name())],
            )
            .map(|v| (p, v))
        })
        .collect())
}

/// `curl http://localhost:8024/dlq/stats | jq`.
pub async fn dlq_stats(ops: &Ops, phase: Phase, title: &str) -> Result<DlqStats, StepError> {
    ops.act(
        phase,
        title,
        format!("{} | jq", ops.dlq.0.curl(Method::GET, "/dlq/stats", None)),
        ops.dlq.stats(),
        |s| {
            format!(
                "{} messages, oldest {:.0} min, {:.1}/min",
                s.total_messages, s.oldest_message_age_minutes, s.error_rate_per_minute
            )
        },
    )
    .await
}

/// `curl http://localhost:8024/dlq/errors/grouped | jq`.
pub async fn dlq_errors_grouped(
    ops: &Ops,
    phase: Phase,
    title: &str,
) -> Result<DlqErrorsGrouped, StepError> {
    ops.act(
        phase,
        title,
        format!(
            "{} | jq",
            ops.dlq.0.curl(Method::GET, "/dlq/errors/grouped", None)
        ),
        ops.dlq.errors_grouped(),
        |grouped| {
            grouped
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        },
    )
    .await
}

/// `curl http://localhost:8024/dlq/messages?limit=N | jq`.
pub async fn sample_dlq(
    ops: &Ops,
    phase: Phase,
    limit: usize,
    jq: &str,
) -> Result<Vec<DlqMessage>, StepError> {
    ops.act(
        phase,
        "Sample failed messages",
        format!(
            "{} | jq{jq}",
            ops.dlq
                .0
                .curl(Method::GET, &format!("/dlq/messages?limit={limit}"), None)
        ),
        ops.dlq.messages(limit),
        |messages| {
            let mut by_error: BTreeMap<String, usize> = BTreeMap::new();
            for m in messages {
                *by_error.entry(m.error.to_string()).or_default() += 1;
            }
            format!("{} messages: {by_error:?}", messages.len())
        },
    )
    .await
}

/// `curl http://localhost:8020/stats | jq`.
pub async fn enrichment_stats(
    ops: &Ops,
    phase: Phase,
    title: &str,
) -> Result<EnrichmentStats, StepError> {
    ops.act(
        phase,
        title,
        format!(
            "{} | jq",
            ops.enrichment.0.curl(Method::GET, "/stats", None)
        ),
        ops.enrichment.stats(),
        |s| {
            format!(
                "success_rate {:.2}, cache_hit_rate {:.2}, {} enrichments",
                s.success_rate, s.cache_hit_rate, s.total_enrichments
            )
        },
    )
    .await
}

/// `curl http://localhost:8020/stats/by-provider | jq`.
pub async fn stats_by_provider(
    ops: &Ops,
    phase: Phase,
    title: &str,
) -> Result<StatsByProvider, StepError> {
    ops.act(
        phase,
        title,
        format!(
            "{} | jq",
            ops.enrichment
                .0
                .curl(Method::GET, "/stats/by-provider", None)
        ),
        ops.enrichment.stats_by_provider(),
        describe_by_provider,
    )
    .await
}

/// `spotify 0.99 (412 calls, 40 ms), …`.
pub fn describe_by_provider(by_provider: &StatsByProvider) -> String {
    by_provider
        .iter()
        .map(|(p, s)| {
            format!(
                "{p} {:.2} ({} calls, {:.0} ms)",
                s.success_rate, s.calls, s.avg_latency_ms
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `curl -X POST http://localhost:8020/admin/cache/warm`.
pub async fn warm_cache(ops: &Ops, phase: Phase) -> Result<serde_json::Value, StepError> {
    ops.act(
        phase,
        "Warm cache with popular tracks",
        ops.enrichment
            .0
            .curl(Method::POST, "/admin/cache/warm", None),
        ops.enrichment.warm_cache(),
        |answer| answer.to_string(),
    )
    .await
}

/// `docker compose exec redis redis-cli INFO stats | grep -E "hits|misses"`.
pub async fn redis_stats(ops: &Ops, phase: Phase, title: &str) -> Result<String, StepError> {
    ops.act(
        phase,
        title,
        "docker compose exec redis redis-cli INFO stats | grep -E \"hits|misses\"",
        async {
            let mut connection = ops.redis.get_multiplexed_async_connection().await?;
            let info: String = redis::cmd("INFO")
                .arg("stats")
                .query_async(&mut connection)
                .await?;
            Ok::<_, redis::RedisError>(
                info.lines()
                    .filter(|l| l.contains("hits") || l.contains("misses"))
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join(" "),
            )
        },
        |lines| lines.clone(),
    )
    .await
}

/// `watch -n 60 'curl -s http://localhost:8020/stats | jq ".success_rate"'`, which
/// never ends by itself: watched every minute until the rate is back above 70% over
/// enough enrichments, bounded by `bound`.
pub async fn monitor_success_rate(
    ops: &Ops,
    phase: Phase,
    title: &str,
    bound: Duration,
) -> Result<(), StepError> {
    ops.wait_until(phase, title, bound, Duration::from_secs(60), || async {
        let stats = ops.enrichment.stats().await.step(title)?;
        let seen = format!(
            "success_rate {:.2} over {} enrichments, cache_hit_rate {:.2}",
            stats.success_rate, stats.total_enrichments, stats.cache_hit_rate
        );
        let recovered = stats.total_enrichments >= u64::from(crate::probe::MIN_ENRICHMENTS)
            && stats.success_rate > 0.70;
        Ok(if recovered { Ok(seen) } else { Err(seen) })
    })
    .await
    .map(|_| ())
}

/// What `curl -I` of a provider's public endpoint says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExternalState {
    Up,
    RateLimited,
    Down(Option<u16>),
}

/// `curl -I https://api.spotify.com/v1/search` and friends.
pub async fn check_external(ops: &Ops, phase: Phase, provider: Provider) -> ExternalState {
    let status = ops.external_status(provider).await;
    let state = match status {
        Some(429) => ExternalState::RateLimited,
        Some(code) if code < 500 => ExternalState::Up,
        other => ExternalState::Down(other),
    };
    let observed = match status {
        Some(code) => format!("HTTP {code}: {state:?}"),
        None => "no connection: Down".to_owned(),
    };
    ops.timeline.record(
        phase,
        format!("Check external API status ({provider})"),
        Some(ops.external_command(provider)),
        observed,
        crate::ops::Outcome::Ok,
    );
    state
}

/// What `curl -I` of a scraped site said: its status, or no connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SiteAnswer(pub Option<u16>);

impl SiteAnswer {
    /// The site answers (any status below 500: its front page need not be 200).
    pub fn is_up(self) -> bool {
        self.0.is_some_and(|code| code < 500)
    }
}

impl std::fmt::Display for SiteAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(code) => write!(f, "HTTP {code}"),
            None => f.write_str("no connection"),
        }
    }
}

/// `curl -I https://www.1001tracklists.com`: the site a scraper reads, from where the
/// engineer sits.
pub async fn check_site(ops: &Ops, phase: Phase, site: SourceSite) -> SiteAnswer {
    let answer = SiteAnswer(ops.site_status(site).await);
    ops.timeline.record(
        phase,
        format!("Check target site ({site})"),
        Some(ops.site_command(site)),
        answer.to_string(),
        crate::ops::Outcome::Ok,
    );
    answer
}

/// Which rows of `metadata_enrichment_config` a provider change touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowsNaming {
    /// `WHERE priority_1_provider = 'p'` (DLQ Overflow, scenario A).
    FirstPriority,
    /// `WHERE priority_1_provider = 'p' OR priority_2_provider = 'p' OR priority_3_provider = 'p'`.
    AnyPriority,
}

/// Enables or disables the config rows that name `provider`. Disabling needs approval.
pub async fn set_provider_enabled(
    ops: &Ops,
    phase: Phase,
    provider: Provider,
    rows: RowsNaming,
    enabled: bool,
) -> Result<u64, StepError> {
    let predicate = match rows {
        RowsNaming::FirstPriority => "priority_1_provider = $2".to_owned(),
        RowsNaming::AnyPriority => {
            "priority_1_provider = $2\n   OR priority_2_provider = $2\n   OR priority_3_provider = $2".to_owned()
        }
    };
    let shown = format!(
        "UPDATE metadata_enrichment_config\nSET enabled = {enabled}\nWHERE {};",
        predicate.replace("$2", &format!("'{provider}'"))
    );
    let sql = format!(
        "UPDATE metadata_enrichment_config SET enabled = $1, updated_at = $3 WHERE {predicate}"
    );
    let query = async {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(enabled)
            .bind(provider.name())
            .bind(ops.clock.now())
            .execute(&ops.db)
            .await
            .map(|r| r.rows_affected())
    };
    let observe = |rows: &u64| format!("{rows} rows updated");
    let title = if enabled {
        format!("Re-enable {provider}")
    } else {
        format!("Disable {provider}")
    };
    if enabled {
        ops.act(phase, &title, ops.psql(&shown), query, observe)
            .await
    } else {
        ops.destructive(
            phase,
            &title,
            ops.psql(&shown),
            &format!("enrichment stops using {provider} for these fields"),
            query,
            observe,
        )
        .await
    }
}

/// Runs an UPDATE of `metadata_enrichment_config` from the runbook, as written.
pub async fn update_config(
    ops: &Ops,
    phase: Phase,
    title: &str,
    sql: &'static str,
) -> Result<u64, StepError> {
    ops.act(
        phase,
        title,
        ops.psql(sql),
        async {
            sqlx::query(sql)
                .execute(&ops.db)
                .await
                .map(|r| r.rows_affected())
        },
        |rows| format!("{rows} rows updated"),
    )
    .await
}

/// `curl -X POST http://localhost:8020/admin/config/reload`.
pub async fn reload_config(ops: &Ops, phase: Phase) -> Result<(), StepError> {
    ops.act(
        phase,
        "Reload configuration",
        ops.enrichment
            .0
            .curl(Method::POST, "/admin/config/reload", None),
        ops.enrichment.reload_config(),
        |_| "reloaded".to_owned(),
    )
    .await
    .map(|_| ())
}

/// `curl -X POST http://localhost:8020/admin/circuit-breakers/reset-all`.
pub async fn reset_breakers(ops: &Ops, phase: Phase) -> Result<(), StepError> {
    ops.act(
        phase,
        "Manual reset of all circuit breakers",
        ops.enrichment
            .0
            .curl(Method::POST, "/admin/circuit-breakers/reset-all", None),
        ops.enrichment.reset_breakers(),
        |_| "reset".to_owned(),
    )
    .await
    .map(|_| ())
}

/// Waits (bounded, modeled) until every enabled provider's breaker is CLOSED.
///
/// HALF_OPEN is not recovery: it only lets one trial call through, and replaying
/// onto a breaker that then re-opens sends the whole batch back to the DLQ.
pub async fn wait_for_breakers(
    ops: &Ops,
    phase: Phase,
    title: &str,
    bound: Duration,
) -> Result<String, StepError> {
    ops.wait_until(phase, title, bound, Duration::from_secs(10), || async {
        let health = ops.enrichment.health().await.step(title)?;
        let described = describe_breakers(&health);
        let recovered = health
            .api_clients
            .values()
            .all(|client| !client.enabled || client.state == BreakerState::Closed);
        Ok(if recovered {
            Ok(described)
        } else {
            Err(described)
        })
    })
    .await
}

/// `curl -X POST http://localhost:8024/dlq/replay/batch -d '{"batch_size": N}'`,
/// repeated until the DLQ is empty or a batch replays nothing.
pub async fn replay_dlq(
    ops: &Ops,
    phase: Phase,
    batch_size: i64,
    max_batches: usize,
) -> Result<i64, StepError> {
    let body = format!("{{\"batch_size\": {batch_size}}}");
    let mut total = 0;
    for _ in 0..max_batches {
        let outcome = ops
            .act(
                phase,
                "Replay DLQ batch",
                ops.dlq
                    .0
                    .curl(Method::POST, "/dlq/replay/batch", Some(&body)),
                ops.dlq.replay_batch(batch_size),
                |o| format!("replayed {}, {} remaining", o.replayed, o.remaining),
            )
            .await?;
        total += outcome.replayed;
        if outcome.replayed == 0 || outcome.remaining == 0 {
            break;
        }
    }
    Ok(total)
}

/// What watching the DLQ after a replay showed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayWatch {
    /// The depth stayed down: the replayed messages are being enriched.
    Holding,
    /// The depth climbed back: the replayed messages are failing again.
    Refilling,
}

/// `watch -n 30 'curl -s …/dlq/stats | jq .total_messages'` for `watch_for`
/// (modeled) after replaying `replayed` messages.
///
/// The runbook's "monitor replay" is where a person notices that the replayed
/// messages come straight back; the automation looks for the same thing: the depth
/// rising by a tenth of what was replayed (at least 20) above where it stood.
pub async fn monitor_replay(
    ops: &Ops,
    phase: Phase,
    replayed: i64,
    watch_for: Duration,
) -> Result<ReplayWatch, StepError> {
    let title = "Monitor replay";
    let start = ops.dlq.stats().await.step(title)?.total_messages;
    let threshold = start + (replayed / 10).max(20);
    let began = ops.clock.now();
    let samples = std::sync::Mutex::new(vec![start]);
    let samples_ref = &samples;
    let first = std::sync::atomic::AtomicBool::new(true);
    let first = &first;
    let watched = wire::wait::until(
        ops.clock,
        watch_for,
        Duration::from_secs(30),
        || async move {
            if first.swap(false, std::sync::atomic::Ordering::Relaxed) {
                // The first look is half a minute after the replay, as `watch -n 30` does.
                return wire::wait::Poll::Pending(start.to_string());
            }
            match ops.dlq.stats().await.step(title) {
                Ok(stats) => {
                    let depth = stats.total_messages;
                    if let Ok(mut s) = samples_ref.lock() {
                        s.push(depth);
                    }
                    if depth >= threshold {
                        wire::wait::Poll::Ready(Ok(()))
                    } else {
                        wire::wait::Poll::Pending(depth.to_string())
                    }
                }
                Err(error) => wire::wait::Poll::Ready(Err(error)),
            }
        },
    )
    .await;
    let verdict = match watched {
        Ok(done) => {
            done.value?;
            ReplayWatch::Refilling
        }
        Err(_) => ReplayWatch::Holding,
    };
    let samples = samples.into_inner().unwrap_or_default();
    ops.timeline.record_wait(
        phase,
        title,
        Some(format!(
            "watch -n 30 'curl -s {} | jq .total_messages'",
            ops.dlq
                .0
                .url("/dlq/stats")
                .map(|u| u.to_string())
                .unwrap_or_default()
        )),
        format!(
            "{verdict:?}: depth {}",
            samples
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(" → ")
        ),
        crate::ops::Outcome::Ok,
        (ops.clock.now() - began).to_std().unwrap_or_default(),
    );
    Ok(verdict)
}

/// `watch -n 30 'curl -s …/dlq/stats | jq .total_messages'` until the depth has stood
/// still for a minute (three equal readings): every replayed message has been either
/// enriched or dead-lettered again. Bounded by `bound`.
pub async fn wait_for_dlq_to_settle(
    ops: &Ops,
    phase: Phase,
    bound: Duration,
) -> Result<String, StepError> {
    let title = "Monitor replay until the DLQ settles";
    let depths = std::sync::Mutex::new(Vec::<i64>::new());
    let depths = &depths;
    ops.wait_until(
        phase,
        title,
        bound,
        Duration::from_secs(30),
        || async move {
            let depth = ops.dlq.stats().await.step(title)?.total_messages;
            let mut seen = depths.lock().unwrap_or_else(|p| p.into_inner());
            seen.push(depth);
            let settled = seen.len() >= 3 && seen[seen.len() - 3..].iter().all(|d| *d == depth);
            Ok(if settled {
                Ok(format!("{depth} messages, unchanged for a minute"))
            } else {
                Err(format!("{depth} messages"))
            })
        },
    )
    .await
}

/// A `docker compose` verb the runbooks use on services.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compose {
    Stop,
    Start,
    Restart,
}

/// `docker compose stop|start|restart <services>`.
pub async fn compose(
    ops: &Ops,
    phase: Phase,
    title: &str,
    verb: Compose,
    services: &[Service],
) -> Result<(), StepError> {
    let (word, done) = match verb {
        Compose::Stop => ("stop", "stopped"),
        Compose::Start => ("start", "started"),
        Compose::Restart => ("restart", "restarted"),
    };
    let action = async {
        match verb {
            Compose::Stop => ops.orchestrator.stop(services).await,
            Compose::Start => ops.orchestrator.start(services).await,
            Compose::Restart => ops.orchestrator.restart(services).await,
        }
    };
    ops.act(
        phase,
        title,
        format!("docker compose {word} {}", names(services)),
        action,
        |_| done.to_owned(),
    )
    .await
}

/// How long the automation waits for a provider to come back from an outage before
/// it escalates: twice the Circuit Breaker Storm runbook's typical resolution time.
pub const RECOVERY_BOUND: Duration = Duration::from_secs(30 * 60);

/// "Monitor for API recovery": polls the provider's public endpoint (`curl -I`) until
/// it answers again, bounded by [`RECOVERY_BOUND`]. This is waiting on the world.
pub async fn wait_for_provider(
    ops: &Ops,
    phase: Phase,
    provider: Provider,
) -> Result<String, StepError> {
    ops.wait_until(
        phase,
        &format!("Monitor for {provider} API recovery"),
        RECOVERY_BOUND,
        Duration::from_secs(30),
        || async move {
            Ok(match ops.external_status(provider).await {
                Some(code) if code < 500 && code != 429 => Ok(format!("{provider} answers {code}")),
                Some(code) => Err(format!("{provider} answers {code}")),
                None => Err(format!("{provider}: no connection")),
            })
        },
    )
    .await
}

/// When a rate limit lifts: `Retry-After` seconds after the newest 429 (the stand-in,
/// like a real provider, restarts its window with every request it refuses).
fn lifts_at(message: &DlqMessage) -> DateTime<Utc> {
    let retry_after = message
        .error_message
        .split("Retry-After: ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse::<i64>().ok())
        // No Retry-After: the text's own 15 minutes.
        .unwrap_or(15 * 60);
    message.created_at + TimeDelta::seconds(retry_after)
}

/// "Wait 15 minutes for rate limits to reset", once traffic has stopped: waits until
/// the `Retry-After` of the newest `api_rate_limit` message in the DLQ has passed,
/// reading the DLQ again as it waits (a request still in flight may have restarted the
/// window), for at most `bound`. Asking the provider whether it still limits us would
/// itself be a request against the limit.
pub async fn wait_out_rate_limits(
    ops: &Ops,
    phase: Phase,
    title: &str,
    bound: Duration,
) -> Result<String, StepError> {
    ops.wait_until(phase, title, bound, Duration::from_secs(30), || async {
        let newest = ops
            .dlq
            .messages(100)
            .await
            .step(title)?
            .into_iter()
            .filter(|m| m.error == ErrorKind::ApiRateLimit)
            .max_by_key(|m| m.created_at);
        let now = ops.clock.now();
        Ok(match newest.map(|m| (lifts_at(&m), m)) {
            None => Ok("no 429 in the newest messages".to_owned()),
            Some((lifts, m)) if lifts <= now => Ok(format!(
                "the last 429 ({}) was {} ago, past its Retry-After",
                m.provider.map(|p| p.name()).unwrap_or("provider"),
                format_modeled((now - m.created_at).to_std().unwrap_or_default())
            )),
            Some((lifts, _)) => Err(format!(
                "the limit lifts in {}",
                format_modeled((lifts - now).to_std().unwrap_or_default())
            )),
        })
    })
    .await
}

/// When a log line was written: the twin stamps each line with its modeled instant
/// (`2026-11-30T03:00:00.000Z  INFO …`); `None` for a line without a stamp.
pub fn logged_at(line: &str) -> Option<DateTime<Utc>> {
    let stamp = line.split_whitespace().next()?;
    DateTime::parse_from_rfc3339(stamp)
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

/// `docker compose logs <service> --tail=N | grep -i -E "<pattern>"`: the matching lines.
pub async fn grep_logs(
    ops: &Ops,
    phase: Phase,
    service: Service,
    tail: usize,
    patterns: &[&str],
) -> Result<Vec<String>, StepError> {
    let lines = ops
        .act(
            phase,
            &format!("Check {service} logs"),
            format!(
                "docker compose logs {service} --tail={tail} | grep -i \"{}\"",
                patterns.join("\\|")
            ),
            ops.orchestrator.logs(service, tail),
            |_| String::new(),
        )
        .await?;
    let matching: Vec<String> = lines
        .into_iter()
        .filter(|line| {
            let lower = line.to_lowercase();
            patterns.iter().any(|p| lower.contains(&p.to_lowercase()))
        })
        .collect();
    ops.timeline.note(
        phase,
        format!("{service} log lines matching {}", patterns.join("|")),
        format!("{} lines", matching.len()),
    );
    Ok(matching)
}

/// The host the stack runs on (`df -h`, `free -h`), or an escalation of `step` when
/// the backend cannot show its `what` ("disk", "memory").
pub fn host(
    ops: &Ops,
    step: &str,
    what: &str,
) -> Result<std::sync::Arc<dyn crate::ops::Host>, StepError> {
    ops.host.clone().ok_or_else(|| StepError::Escalate {
        step: step.to_owned(),
        reason: format!("this stack's backend cannot show its {what} (no host view)"),
    })
}

fn names(services: &[Service]) -> String {
    services
        .iter()
        .map(|s| s.name())
        .collect::<Vec<_>>()
        .join(" ")
}
