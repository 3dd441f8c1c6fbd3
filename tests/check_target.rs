//! `drill check` against a stack started here as if it were production: every
//! runbook's reads work against it, and every kind of change is refused before it
//! reaches the target.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use reqwest::Url;
use runbooks::check::{self, Status, Target};
use runbooks::ops::read_only::NoOrchestrator;
use runbooks::ops::{ApiError, Ops, OrchestratorError, Phase, ServiceStatus, StepError, Timeline};
use sqlx::Connection;
use wire::{Clock, Service};

/// A target file naming the stack's services, as a team would write one for theirs.
fn target_file(stack: &stack::Stack, name: &str) -> PathBuf {
    let e = stack.endpoints();
    let redis = Url::parse(&e.redis_url).expect("a Redis URL");
    let db = Url::parse(&e.database_url).expect("a database URL");
    let text = format!(
        "name = \"{name}\"\n\
         enrichment = \"{}\"\ngateway = \"{}\"\ndlq = \"{}\"\n\
         rest_api = \"{}\"\ngraph_api = \"{}\"\n\n\
         [postgres]\nhost = \"{}\"\nport = {}\nuser = \"{}\"\ndatabase = \"{}\"\n\n\
         [redis]\nhost = \"{}\"\nport = {}\n",
        e.enrichment,
        e.gateway,
        e.dlq,
        e.rest_api,
        e.graph_api,
        db.host_str().expect("a database host"),
        db.port().expect("a database port"),
        db.username(),
        db.path().trim_start_matches('/'),
        redis.host_str().expect("a Redis host"),
        redis.port().expect("a Redis port"),
    );
    let path = std::env::temp_dir().join(format!("drill-check-{name}-{}.toml", std::process::id()));
    std::fs::write(&path, text).expect("the target file is written");
    path
}

fn read_only_ops(
    loaded: &check::LoadedTarget,
    orchestrator: Arc<dyn runbooks::ops::Orchestrator>,
) -> Ops {
    Ops::connect_read_only(
        loaded.endpoints.clone(),
        orchestrator,
        Clock::real_time(),
        Timeline::new(Clock::real_time()),
    )
    .expect("read-only ops")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_runbooks_reads_work_against_a_healthy_deployment() {
    let stack = common::stack("check-healthy", 60.0).await;
    let path = target_file(&stack, "healthy");
    let loaded = Target::load(&path).expect("the target file loads");
    let ops = read_only_ops(&loaded, stack.orchestrator());
    check::preflight(&ops).await.expect("the target answers");
    let report = check::check("healthy", &ops, &runbooks::all()).await;
    let text = report.render();
    stack.shutdown().await.expect("the stack stops");
    let _ = std::fs::remove_file(&path);

    assert!(report.broken().is_empty(), "{text}");
    assert_eq!(report.rules.len(), runbooks::all().len(), "{text}");
    // A target has no host view: the disk and memory reads are not checked; every
    // other rule is read.
    for rule in &report.rules {
        let host_read = matches!(rule.alert.as_str(), "DiskSpaceHigh" | "MemoryUsageHigh");
        let expected = if host_read {
            Status::Unavailable
        } else {
            Status::Works
        };
        assert_eq!(rule.status, expected, "{}:\n{text}", rule.alert);
    }
    for runbook in &report.runbooks {
        let host_runbook = matches!(runbook.runbook.as_str(), "disk-space" | "memory");
        assert!(
            host_runbook || runbook.steps.iter().any(|s| s.status == Status::Works),
            "{} ran steps of its investigation:\n{text}",
            runbook.runbook
        );
        assert!(
            runbook
                .criteria
                .iter()
                .all(|c| matches!(c.status, Status::Works | Status::Unavailable)),
            "{}'s verification probes read:\n{text}",
            runbook.runbook
        );
    }
    assert!(
        text.contains("Check current DLQ stats") && text.contains("curl "),
        "steps are reported with their commands:\n{text}"
    );
    assert!(
        report.junit().contains("<testsuite name=\"dlq-overflow\">"),
        "JUnit has a suite per runbook"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_change_is_refused_before_it_reaches_the_target() {
    let stack = common::stack("check-read-only", 60.0).await;
    let path = target_file(&stack, "read-only");
    let loaded = Target::load(&path).expect("the target file loads");
    let ops = read_only_ops(&loaded, stack.orchestrator());

    // HTTP: a reload, a breaker reset, a replay, a purge, a re-enrichment.
    let refusals = [
        ops.enrichment.reload_config().await.err(),
        ops.enrichment.reset_breakers().await.err(),
        ops.enrichment.reenrich(&[1]).await.err(),
        ops.dlq.purge_before("2099-01-01").await.err(),
    ];
    for refusal in refusals {
        assert!(
            matches!(refusal, Some(ApiError::ReadOnly { .. })),
            "refused before sending: {refusal:?}"
        );
    }
    // Refused before any connection: against a port nobody listens on, the error is
    // the refusal, not a failed connection.
    let nowhere = runbooks::ops::HttpApi::new(
        reqwest::Client::new(),
        Url::parse("http://127.0.0.1:9/").unwrap(),
    )
    .read_only();
    let posted: Result<serde_json::Value, _> =
        nowhere.post_json("/admin/config/reload", None::<&()>).await;
    assert!(
        matches!(posted, Err(ApiError::ReadOnly { .. })),
        "{posted:?}"
    );

    // SQL: PostgreSQL itself refuses the write; the value is unchanged.
    let update = sqlx::query(
        "UPDATE metadata_enrichment_config SET timeout_seconds = 61 WHERE config_key = 'identifiers'",
    )
    .execute(&ops.db)
    .await;
    let error = update
        .expect_err("a read-only session refuses UPDATE")
        .to_string();
    assert!(error.contains("read-only transaction"), "{error}");
    let mut writer = sqlx::postgres::PgConnection::connect(&stack.endpoints().database_url)
        .await
        .expect("a writing session");
    let timeout: i32 = sqlx::query_scalar(
        "SELECT timeout_seconds FROM metadata_enrichment_config WHERE config_key = 'identifiers'",
    )
    .fetch_one(&mut writer)
    .await
    .unwrap();
    assert_eq!(timeout, 30);

    // Services: restart, stop, environment changes refused; status still readable.
    let restart = ops.orchestrator.restart(&[Service::RestApi]).await;
    assert!(
        matches!(restart, Err(OrchestratorError::ReadOnly { .. })),
        "{restart:?}"
    );
    let stop = ops.orchestrator.stop(&[Service::ScraperMixesdb]).await;
    assert!(
        matches!(stop, Err(OrchestratorError::ReadOnly { .. })),
        "{stop:?}"
    );
    assert_eq!(
        ops.orchestrator.status(Service::RestApi).await.unwrap(),
        ServiceStatus::Running
    );

    // Destructive steps are refused at the approval gate.
    let gated = ops
        .destructive(
            Phase::Resolve,
            "Purge",
            "curl -X DELETE …",
            "data loss",
            async { Ok::<(), ApiError>(()) },
            |_| String::new(),
        )
        .await;
    assert!(
        matches!(gated, Err(StepError::NotApproved { .. })),
        "{gated:?}"
    );

    stack.shutdown().await.expect("the stack stops");
    let _ = std::fs::remove_file(&path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_orchestrator_its_steps_are_not_checked_rather_than_broken() {
    let stack = common::stack("check-no-orchestrator", 60.0).await;
    let path = target_file(&stack, "no-orchestrator");
    let loaded = Target::load(&path).expect("the target file loads");
    let ops = read_only_ops(&loaded, Arc::new(NoOrchestrator));
    let scraper = runbooks::by_id("scraper-stalled").unwrap();
    let report = check::check("no-orchestrator", &ops, &[scraper]).await;
    let text = report.render();
    stack.shutdown().await.expect("the stack stops");
    let _ = std::fs::remove_file(&path);

    assert!(report.broken().is_empty(), "{text}");
    assert!(
        report.runbooks[0]
            .steps
            .iter()
            .any(|s| s.status == Status::Unavailable),
        "docker compose ps is not checked:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_target_is_one_clear_error() {
    let path =
        std::env::temp_dir().join(format!("drill-check-nowhere-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "name = \"nowhere\"\n\
         enrichment = \"http://127.0.0.1:9/\"\ngateway = \"http://127.0.0.1:9/\"\n\
         dlq = \"http://127.0.0.1:9/\"\nrest_api = \"http://127.0.0.1:9/\"\n\
         graph_api = \"http://127.0.0.1:9/\"\n\
         [postgres]\nhost = \"127.0.0.1\"\nport = 9\nuser = \"ro\"\ndatabase = \"musicdb\"\n\
         [redis]\nhost = \"127.0.0.1\"\nport = 9\n",
    )
    .unwrap();
    let loaded = Target::load(&path).expect("the target file loads");
    let _ = std::fs::remove_file(&path);
    let ops = read_only_ops(&loaded, Arc::new(NoOrchestrator));
    let error = check::preflight(&ops)
        .await
        .expect_err("nothing answers")
        .to_string();
    assert!(
        error.contains("metadata-enrichment at http://127.0.0.1:9/ does not answer /health"),
        "{error}"
    );
}
