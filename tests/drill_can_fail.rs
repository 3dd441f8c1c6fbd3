//! The harness must be able to fail: a wrong runbook, or a fault nobody heals, makes a
//! drill fail with a message that says what was expected, what was seen, what struck
//! when, and what the runbook did.
//!
//! The wrong runbooks are built here, from the real runbooks' own steps: the
//! `runbooks` crate holds only the real ones.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::flawed::{Resolving, disable_and_walk_away};
use common::{Drill, scenario};
use futures::future::BoxFuture;
use harness::Response;
use harness::scenario::FaultSpec;
use runbooks::circuit_breaker_storm::CircuitBreakerStorm;
use runbooks::criteria::Criterion;
use runbooks::data_quality::{DataQuality, QualityDiagnosis};
use runbooks::db_connection_pool::{self, DbConnectionPool, PoolDiagnosis};
use runbooks::disk_space::{self, DiskDiagnosis, DiskSpace};
use runbooks::dlq_overflow::{self, DlqDiagnosis, DlqOverflow, DlqScenario};
use runbooks::enrichment_success_rate::{self, EnrichmentSuccessRate, SuccessRateDiagnosis};
use runbooks::memory::{self, Memory, MemoryDiagnosis};
use runbooks::ops::{Ops, Phase, RefuseAll, StepContext, StepError};
use runbooks::steps;
use runbooks::{Evidence, Runbook, RunbookMeta};
use wire::api::ErrorKind;

/// A scenario whose outages never end during the drill.
fn without_recovery(id: &str) -> harness::Scenario {
    let mut scenario = scenario(id);
    for fault in &mut scenario.faults {
        if let FaultSpec::ProviderOutage {
            recovers_after_minutes,
            ..
        } = fault
        {
            *recovers_after_minutes = None;
        }
    }
    scenario
}

/// DLQ Overflow, but scenario A replays at once, without waiting for the breakers.
fn replay_at_once<'a>(ops: &'a Ops, _: &'a DlqDiagnosis) -> BoxFuture<'a, Result<(), StepError>> {
    Box::pin(async move {
        steps::replay_dlq(ops, Phase::Resolve, 100, 800).await?;
        Ok(())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_before_the_breaker_recovers_fails_the_dlq_drill() {
    // Spotify stays down for the whole drill: whatever is replayed fails again.
    let scenario = without_recovery("dlq-overflow/a-breaker-errors");
    let replay_early = Resolving {
        runbook: DlqOverflow,
        resolve: replay_at_once,
    };
    let report = Drill::of(&replay_early).run(&scenario).await;
    let text = report.render();
    assert!(
        !report.passed(),
        "a premature replay must not pass:\n{text}"
    );
    assert!(text.contains("FAILED"), "{text}");
    assert!(
        text.contains("✗ verification ✗ DLQ depth decreasing: expected decreasing over 3 samples (or 0), observed"),
        "the failed criterion says what was expected and what was seen:\n{text}"
    );
    assert!(text.contains("fault timeline:"), "{text}");
    assert!(
        text.contains("spotify answers 503 — the world does not end it"),
        "the fault is named:\n{text}"
    );
    assert!(text.contains("step log:"), "{text}");
    assert!(
        text.contains("Replay DLQ batch"),
        "the replay step is logged:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_re_enabling_the_provider_fails_the_storm_drill() {
    let never_re_enable = Resolving {
        runbook: CircuitBreakerStorm,
        resolve: disable_and_walk_away,
    };
    let report = Drill::of(&never_re_enable)
        .run(&scenario("circuit-breaker-storm/a-external-outage"))
        .await;
    let text = report.render();
    assert!(!report.passed(), "{text}");
    assert!(
        text.contains("remediation left metadata_enrichment_config changed"),
        "the drift is named:\n{text}"
    );
    assert!(text.contains("enabled=false"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_that_never_heals_fails_the_storm_drill_with_the_awaited_condition() {
    let scenario = without_recovery("circuit-breaker-storm/a-external-outage");
    let report = Drill::of(&CircuitBreakerStorm).run(&scenario).await;
    let text = report.render();
    assert!(!report.passed(), "{text}");
    assert!(
        text.contains("Monitor for spotify API recovery"),
        "the awaited condition is named:\n{text}"
    );
    assert!(text.contains("still not true after"), "{text}");
    assert!(
        text.contains("spotify answers 503"),
        "the last observation is shown:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_purge_stops_the_drill_at_the_approval_gate() {
    let mut drill = Drill::of(&DlqOverflow);
    drill.approver = Arc::new(RefuseAll);
    let report = drill.run(&scenario("dlq-overflow/d-invalid-data")).await;
    let text = report.render();
    assert!(!report.passed(), "{text}");
    assert!(
        text.contains(
            "Purge bad messages that can't be fixed: refused at the approval gate by refuse-all"
        ),
        "the refused step is named:\n{text}"
    );
    let ledger = report.ledger.as_ref().expect("a ledger");
    assert_eq!(
        ledger.discarded_unfixable, 0,
        "nothing is purged without approval: {ledger:?}"
    );
}

/// DLQ Overflow, but its investigation reads the DLQ's totals: the largest group of
/// `/dlq/errors/grouped` picks the scenario, as the text's "identify error types"
/// read literally would.
struct ReadsTotals;

#[async_trait]
impl Runbook for ReadsTotals {
    type Diagnosis = DlqDiagnosis;
    fn meta(&self) -> &'static RunbookMeta {
        &dlq_overflow::META
    }
    async fn investigate(&self, ops: &Ops) -> Result<DlqDiagnosis, StepError> {
        let grouped =
            steps::dlq_errors_grouped(ops, Phase::Investigate, "Identify error types").await?;
        let (largest, count) = grouped
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(k, n)| (k.clone(), *n))
            .unwrap_or_default();
        let scenario = match largest.parse::<ErrorKind>() {
            Ok(ErrorKind::Timeout) => DlqScenario::TimeoutErrors,
            Ok(ErrorKind::ApiRateLimit) => DlqScenario::ApiRateLimit,
            Ok(ErrorKind::InvalidData) => DlqScenario::InvalidData,
            _ => DlqScenario::CircuitBreakerErrors,
        };
        Ok(DlqDiagnosis {
            scenario,
            recent: Default::default(),
            evidence: vec![Evidence::new(
                "largest group",
                format!("{largest} ({count})"),
            )],
        })
    }
    async fn resolve(&self, ops: &Ops, diagnosis: &DlqDiagnosis) -> Result<(), StepError> {
        DlqOverflow.resolve(ops, diagnosis).await
    }
    fn criteria(&self) -> Vec<Criterion> {
        DlqOverflow.criteria()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_investigation_that_reads_totals_is_misled_by_the_dlqs_history() {
    // Spotify is slow: its calls time out and its breaker opens on the timeouts. The
    // DLQ's totals (an older backlog of every kind, and this incident's breaker
    // refusals) say "breaker errors"; what fails now says "timeouts".
    let mut drill = Drill::of(&ReadsTotals);
    drill.response = Response::Diagnose;
    let report = drill.run(&scenario("dlq-overflow/b-timeouts")).await;
    let text = report.render();
    assert!(!report.passed(), "{text}");
    assert!(
        text.contains(
            "diagnosis: expected timeout-errors, the runbook chose circuit-breaker-errors"
        ),
        "{text}"
    );
    assert!(
        text.contains("largest group = circuit_breaker_open"),
        "the misleading evidence is shown:\n{text}"
    );
    // The real investigation, on the same incident, reads it right.
    let mut drill = Drill::of(&DlqOverflow);
    drill.response = Response::Diagnose;
    let report = drill.run(&scenario("dlq-overflow/b-timeouts")).await;
    assert!(report.passed(), "{}", report.render());
}

/// DLQ Overflow, but scenario D purges by a date that takes the whole DLQ: what the
/// text's purge does once its literal date is brought up to date.
fn purge_everything<'a>(ops: &'a Ops, _: &'a DlqDiagnosis) -> BoxFuture<'a, Result<(), StepError>> {
    Box::pin(async move {
        // The invalid data stops arriving first (as in the real runbook), so that only
        // the purge's own choice differs.
        ops.pause(
            Phase::Resolve,
            "Wait for the site's fix",
            Duration::from_secs(20 * 60),
        )
        .await;
        let tomorrow = (ops.clock.now() + Duration::from_secs(24 * 3600))
            .format("%Y-%m-%d")
            .to_string();
        ops.dlq
            .purge_before(&tomorrow)
            .await
            .map_err(|source| StepError::Api {
                step: "Purge bad messages that can't be fixed".into(),
                source,
            })?;
        Ok(())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_that_archives_replayable_work_fails_on_lost_work() {
    let purge_by_date = Resolving {
        runbook: DlqOverflow,
        resolve: purge_everything,
    };
    let report = Drill::of(&purge_by_date)
        .run(&scenario("dlq-overflow/d-invalid-data"))
        .await;
    let text = report.render();
    assert!(!report.passed(), "{text}");
    let ledger = report.ledger.as_ref().expect("a ledger");
    assert!(ledger.lost_work > 0, "{ledger:?}");
    assert!(
        text.contains("tracks that could have been enriched were archived by a purge (lost work)"),
        "{text}"
    );
    // What the literal purge would cost, for `runbooks/docs/dlq-overflow.md`.
    println!(
        "the purge by date archived {} tracks that could have been enriched, beside {} unfixable",
        ledger.lost_work, ledger.discarded_unfixable
    );
}

/// Connection Pool Exhaustion, but the services are restarted (scenario B's first step)
/// and the incident declared over: no kill, no watch for a leak's return.
fn restart_and_walk_away<'a>(
    ops: &'a Ops,
    _: &'a PoolDiagnosis,
) -> BoxFuture<'a, Result<(), StepError>> {
    Box::pin(async move {
        steps::compose(
            ops,
            Phase::Resolve,
            "Restart services to release connections",
            steps::Compose::Restart,
            &db_connection_pool::POOLED,
        )
        .await
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declaring_a_leak_in_the_build_fixed_fails_the_pool_drill() {
    let walk_away = Resolving {
        runbook: DbConnectionPool,
        resolve: restart_and_walk_away,
    };
    let report = Drill::of(&walk_away)
        .run(&scenario("db-connection-pool/b-leak-persists"))
        .await;
    let text = report.render();
    assert!(
        !report.passed(),
        "a leak that returns is not fixed:\n{text}"
    );
    assert!(
        text.contains("must escalate it, but it returned as if it had resolved it"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_leaves_runaway_queries_running_and_fails_the_pool_drill() {
    let restart = Resolving {
        runbook: DbConnectionPool,
        resolve: restart_and_walk_away,
    };
    let report = Drill::of(&restart)
        .run(&scenario("db-connection-pool/a-long-running-queries"))
        .await;
    let text = report.render();
    assert!(
        !report.passed(),
        "a restart must not pass for a kill:\n{text}"
    );
    assert!(
        text.contains(
            "✗ verification ✗ No service connection held by one query or transaction for over 30 seconds"
        ),
        "PostgreSQL runs the orphaned queries on, and the check sees them:\n{text}"
    );
}

/// Connection Pool Exhaustion, scenario A with the text's kill SQL as written, run as
/// each query passes ten minutes: it has no `application_name`, so it ends every long
/// session of the server, the nightly backup's too.
fn kill_as_written<'a>(ops: &'a Ops, _: &'a PoolDiagnosis) -> BoxFuture<'a, Result<(), StepError>> {
    Box::pin(async move {
        let sql = "SELECT pg_terminate_backend(pid)
FROM pg_stat_activity
WHERE state != 'idle'
  AND NOW() - query_start > INTERVAL '10 minutes';";
        // A round every 30 modeled seconds, as the real runbook's, until one ends nothing
        // and no service query runs over 30 seconds: the youngest runaway query has
        // passed ten minutes and gone. At most thirty (15 minutes).
        for _ in 0..30 {
            let terminated = ops
                .act(
                    Phase::Resolve,
                    "Kill long-running queries (as written)",
                    ops.psql(sql),
                    sqlx::query(sql).fetch_all(&ops.db),
                    |rows| format!("{} sessions terminated", rows.len()),
                )
                .await?;
            let busy: f64 =
                sqlx::query_scalar(db_connection_pool::SERVICE_SESSIONS_OVER_30_SECONDS)
                    .fetch_one(&ops.db)
                    .await
                    .step("Count service queries over 30 seconds")?;
            if terminated.is_empty() && busy == 0.0 {
                break;
            }
            ops.clock.sleep(Duration::from_secs(30)).await;
        }
        Ok(())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_texts_kill_as_written_ends_the_nightly_backup_and_fails_the_pool_drill() {
    let as_written = Resolving {
        runbook: DbConnectionPool,
        resolve: kill_as_written,
    };
    let report = Drill::of(&as_written)
        .run(&scenario("db-connection-pool/a-long-running-queries"))
        .await;
    let text = report.render();
    assert!(
        !report.passed(),
        "a kill that ends the backup must not pass:\n{text}"
    );
    assert!(
        text.contains("the nightly backup (pg_dump) was ended before it finished"),
        "the drill says what the kill broke:\n{text}"
    );
}

/// Disk Space Critical with step 4 as `find /backups/postgres -name "*.sql.gz" -delete`:
/// every backup goes, the last seven days' too.
fn delete_every_backup<'a>(
    ops: &'a Ops,
    diagnosis: &'a DiskDiagnosis,
) -> BoxFuture<'a, Result<(), StepError>> {
    Box::pin(async move {
        disk_space::free_space(ops, &diagnosis.large_logs, &diagnosis.backups).await?;
        disk_space::set_log_rotation(ops).await
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_last_weeks_backups_fails_the_disk_drill() {
    if let Err(reason) = common::size_limited_disk().await {
        eprintln!("skipped: {reason}");
        return;
    }
    let careless = Resolving {
        runbook: DiskSpace,
        resolve: delete_every_backup,
    };
    let report = Drill::of(&careless)
        .run(&scenario("disk-space/a-logs-and-backups"))
        .await;
    let text = report.render();
    assert!(
        !report.passed(),
        "a cleanup that deletes recent backups must not pass:\n{text}"
    );
    assert!(
        text.contains("backups of the last seven days were deleted or changed"),
        "the drill names the backups lost:\n{text}"
    );
}

/// Disk Space Critical without step 7: space freed, but nothing stops the log.
fn free_space_only<'a>(
    ops: &'a Ops,
    diagnosis: &'a DiskDiagnosis,
) -> BoxFuture<'a, Result<(), StepError>> {
    Box::pin(disk_space::free_space(
        ops,
        &diagnosis.large_logs,
        &diagnosis.old_backups,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freeing_space_without_log_rotation_fails_the_disk_drill() {
    if let Err(reason) = common::size_limited_disk().await {
        eprintln!("skipped: {reason}");
        return;
    }
    let no_rotation = Resolving {
        runbook: DiskSpace,
        resolve: free_space_only,
    };
    let report = Drill::of(&no_rotation)
        .run(&scenario("disk-space/a-logs-and-backups"))
        .await;
    let text = report.render();
    assert!(
        !report.passed(),
        "a cleanup without the permanent fix must not pass:\n{text}"
    );
    assert!(
        text.contains("✗ Docker logs configured with rotation"),
        "the drill names the missing rotation:\n{text}"
    );
}

/// Disk Space Critical without its first look: whatever `df` says, the cleanup and
/// the rotation (which recreates every service) run.
struct ActsWithoutLooking;

#[async_trait]
impl Runbook for ActsWithoutLooking {
    type Diagnosis = DiskDiagnosis;
    fn meta(&self) -> &'static RunbookMeta {
        &disk_space::META
    }
    async fn investigate(&self, _: &Ops) -> Result<DiskDiagnosis, StepError> {
        Ok(DiskDiagnosis {
            scenario: disk_space::DiskScenario::LogsAndOldBackups,
            large_logs: Vec::new(),
            old_backups: Vec::new(),
            backups: Vec::new(),
            evidence: vec![Evidence::new("paged", "DiskSpaceHigh")],
        })
    }
    async fn resolve(&self, ops: &Ops, diagnosis: &DiskDiagnosis) -> Result<(), StepError> {
        DiskSpace.resolve(ops, diagnosis).await
    }
    fn criteria(&self) -> Vec<Criterion> {
        DiskSpace.criteria()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolving_a_stale_disk_page_takes_the_services_down_and_fails() {
    // No fault: the disk has room. Recreating every service for log rotation is an
    // outage nobody needed; the real runbook checks `df` first and finds no incident.
    let report = common::run_with_no_incident(&ActsWithoutLooking).await;
    let text = report.render();
    assert!(!report.passed(), "{text}");
    assert!(
        text.contains(
            "with no incident, the runbook interrupted services: \
             stop scraper-mixesdb, scraper-1001tracklists"
        ),
        "the drill names the services it took down:\n{text}"
    );
    // The real runbook, on the same healthy stack: `tests/remediation_safety.rs`.
}

/// Memory Exhaustion, but the text's step 1 whatever `docker stats` shows: rest-api and
/// metadata-enrichment are restarted while the workers hold the memory.
fn restart_as_written<'a>(
    ops: &'a Ops,
    _: &'a MemoryDiagnosis,
) -> BoxFuture<'a, Result<(), StepError>> {
    Box::pin(steps::compose(
        ops,
        Phase::Resolve,
        "STEP 1: Restart heavy services",
        steps::Compose::Restart,
        &memory::HEAVY,
    ))
}

/// Runs [`restart_as_written`] against a memory scenario whose hog is no service the
/// restart touches, and requires the drill to fail on memory still held.
async fn restarting_the_heavy_services_fails(scenario_id: &str, holder: &str) {
    let as_written = Resolving {
        runbook: Memory,
        resolve: restart_as_written,
    };
    let Some(report) =
        common::unless_skipped(Drill::of(&as_written).try_run(&scenario(scenario_id)).await)
    else {
        return;
    };
    let text = report.render();
    assert!(
        !report.passed(),
        "the restart frees nothing {holder} holds:\n{text}"
    );
    assert!(text.contains("verification ✗ Memory usage < 85%"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_rest_api_while_the_workers_hold_the_memory_fails_the_memory_drill() {
    restarting_the_heavy_services_fails("memory/b-enrichment-workers", "the workers").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_the_services_while_redis_holds_the_memory_fails_the_memory_drill() {
    restarting_the_heavy_services_fails("memory/c-large-redis", "Redis").await;
}

/// Low Enrichment Success Rate, but scenario C's remedy whatever the investigation
/// found: a longer timeout for a provider that answers at once, and badly.
fn raise_the_timeout<'a>(
    ops: &'a Ops,
    _: &'a SuccessRateDiagnosis,
) -> BoxFuture<'a, Result<(), StepError>> {
    Box::pin(enrichment_success_rate::timeout_issues(ops))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raising_the_timeout_when_a_provider_answers_badly_fails_the_success_rate_drill() {
    let wrong_remedy = Resolving {
        runbook: EnrichmentSuccessRate,
        resolve: raise_the_timeout,
    };
    let report = Drill::of(&wrong_remedy)
        .run(&scenario(
            "enrichment-success-rate/b-provider-underperforming",
        ))
        .await;
    let text = report.render();
    assert!(
        !report.passed(),
        "a timeout does not help answers that fail validation:\n{text}"
    );
    assert!(
        text.contains("Monitor improvement"),
        "the watch that never saw the rate recover is named:\n{text}"
    );
}

/// Data Quality, but scenario A re-enriches the tracks the text's query selects
/// (`WHERE spotify_id IS NULL`): the tracks Spotify does not know, not the ones it
/// left incomplete.
fn reenrich_as_written<'a>(
    ops: &'a Ops,
    _: &'a QualityDiagnosis,
) -> BoxFuture<'a, Result<(), StepError>> {
    Box::pin(async move {
        let sql = "SELECT track_id FROM tracks WHERE spotify_id IS NULL \
                   AND created_at > NOW() - INTERVAL '24 hours' LIMIT 100";
        let ids: Vec<i64> = ops
            .act(
                Phase::Resolve,
                "Re-enrich tracks with missing critical fields (as written)",
                ops.psql(sql),
                sqlx::query_scalar(sql).fetch_all(&ops.db),
                |ids: &Vec<i64>| format!("{} tracks", ids.len()),
            )
            .await?;
        ops.act(
            Phase::Resolve,
            "Trigger re-enrichment",
            "curl -X POST http://localhost:8020/enrich/batch",
            ops.enrichment.reenrich(&ids),
            |r| format!("{} re-enriched", r.reenriched),
        )
        .await?;
        Ok(())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_enriching_the_tracks_the_text_selects_fails_the_data_quality_drill() {
    let as_written = Resolving {
        runbook: DataQuality,
        resolve: reenrich_as_written,
    };
    let report = Drill::of(&as_written)
        .run(&scenario("data-quality/a-missing-required-fields"))
        .await;
    let text = report.render();
    assert!(
        !report.passed(),
        "re-enriching tracks Spotify does not know leaves the incomplete ones:\n{text}"
    );
    assert!(
        text.contains("100 re-enriched"),
        "the text's batch was re-enriched:\n{text}"
    );
}

/// DLQ Overflow, but scenario B raises every timeout by 30 s rather than to 60 s: once,
/// it is the same remedy (30 s becomes 60 s); run again, 60 s becomes 90 s.
fn raise_every_timeout_by_30s<'a>(
    ops: &'a Ops,
    _: &'a DlqDiagnosis,
) -> BoxFuture<'a, Result<(), StepError>> {
    Box::pin(async move {
        steps::update_config(
            ops,
            Phase::Resolve,
            "Increase timeout temporarily",
            "UPDATE metadata_enrichment_config\nSET timeout_seconds = timeout_seconds + 30;",
        )
        .await?;
        dlq_overflow::timeout_errors(ops).await
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remedy_that_is_not_idempotent_fails_when_resolved_again() {
    let relative = Resolving {
        runbook: DlqOverflow,
        resolve: raise_every_timeout_by_30s,
    };
    let report = Drill::of(&relative)
        .run(&scenario("dlq-overflow/b-timeouts"))
        .await;
    let text = report.render();
    assert!(
        report.runbook_time.is_some() && report.verification.iter().all(|o| o.passed),
        "run once, the relative raise resolves the incident like the runbook's:\n{text}"
    );
    assert!(!report.passed(), "run twice, it must not pass:\n{text}");
    assert!(
        text.contains("resolving again changed metadata_enrichment_config again (not idempotent)")
            && text.contains("timeout=90s"),
        "the second raise is named with the value it left:\n{text}"
    );
}
