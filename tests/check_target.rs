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

/// A target whose every address is a port nothing listens on (discard, 9).
const NOWHERE: &str = "name = \"nowhere\"\n\
     enrichment = \"http://127.0.0.1:9/\"\ngateway = \"http://127.0.0.1:9/\"\n\
     dlq = \"http://127.0.0.1:9/\"\nrest_api = \"http://127.0.0.1:9/\"\n\
     graph_api = \"http://127.0.0.1:9/\"\n\
     [postgres]\nhost = \"127.0.0.1\"\nport = 9\nuser = \"ro\"\ndatabase = \"musicdb\"\n\
     [redis]\nhost = \"127.0.0.1\"\nport = 9\n";

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
    // What `drill check` does: a target file names no orchestrator.
    let report = check::check("no-orchestrator", &ops, &runbooks::all()).await;
    let text = report.render();
    stack.shutdown().await.expect("the stack stops");
    let _ = std::fs::remove_file(&path);

    assert!(report.broken().is_empty(), "{text}");
    let of = |id: &str| report.runbook(id).expect("every runbook is checked");
    assert!(
        of("scraper-stalled")
            .steps
            .iter()
            .any(|s| s.status == Status::Unavailable),
        "docker compose ps is not checked:\n{text}"
    );
    assert!(
        of("disk-space")
            .criteria
            .iter()
            .any(|c| c.status == Status::Unavailable && c.command.starts_with("docker inspect")),
        "the log options (docker inspect) are not checked, not broken:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_target_is_one_clear_error() {
    let path =
        std::env::temp_dir().join(format!("drill-check-nowhere-{}.toml", std::process::id()));
    std::fs::write(&path, NOWHERE).unwrap();
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

/// A deployment that drifted from its runbooks (a column renamed, an endpoint moved, a
/// JSON field renamed: the twin's drift switch) is checked: exactly the commands that
/// read what drifted are broken, each with the runbook line it is written on, and
/// against a fresh twin the shapes differ in exactly those three places.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drifted_deployment_breaks_exactly_the_commands_that_read_what_drifted() {
    use stack::drift::Drift;
    let drifted = common::stack("check-drifted", 60.0).await;
    stack::drift::apply(&drifted, &[Drift::Column, Drift::Endpoint, Drift::Field])
        .await
        .expect("the stack drifts");
    let path = target_file(&drifted, "drifted");
    let loaded = Target::load(&path).expect("the target file loads");
    let ops = read_only_ops(&loaded, drifted.orchestrator());
    let report = check::check("drifted", &ops, &runbooks::all()).await;
    let text = report.render();

    // A fresh twin beside it (it measures nothing: no turn).
    let mut options = stack::StackOptions::for_tests(common::twin_binary());
    options.turn = stack::TurnKind::None;
    options.label = "check-drifted-twin".into();
    let twin = stack::Stack::start(options, common::backend().await)
        .await
        .expect("the twin starts");
    let twin_ops = Ops::connect_read_only(
        twin.endpoints().clone(),
        Arc::new(NoOrchestrator),
        twin.clock(),
        Timeline::new(twin.clock()),
    )
    .expect("read-only ops");
    let differences = check::shape::compare(
        &check::shape::take(&ops).await,
        &check::shape::take(&twin_ops).await,
    );
    twin.shutdown().await.expect("the twin stops");
    drifted.shutdown().await.expect("the stack stops");
    let _ = std::fs::remove_file(&path);

    let broken = report.broken();
    let drifts = ["created_at", "/dlq/errors/grouped", "total_messages"];
    for line in &broken {
        assert!(
            drifts.iter().any(|d| line.contains(d)),
            "broken by something other than the drift: {line}\n{text}"
        );
    }
    for drift in drifts {
        assert!(
            broken.iter().any(|line| line.contains(drift)),
            "nothing reads {drift}?\n{text}"
        );
    }
    // Every broken runbook command names the line of RUNBOOKS.md it is written on.
    for line in broken.iter().filter(|l| !l.starts_with("alert ")) {
        assert!(
            line.starts_with("RUNBOOKS.md:"),
            "no line for: {line}\n{text}"
        );
    }
    let stats_line = broken
        .iter()
        .find(|l| l.contains(".total_messages") && l.starts_with("RUNBOOKS.md:"))
        .expect("a runbook step reads /dlq/stats");
    let seed = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/RUNBOOKS.md"),
    )
    .expect("the runbook text");
    let number: usize = stats_line["RUNBOOKS.md:".len()..]
        .split(':')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a line number");
    assert!(
        seed.lines()
            .nth(number - 1)
            .is_some_and(|l| l.contains("/dlq/stats")),
        "line {number} of RUNBOOKS.md is not the /dlq/stats command: {stats_line}"
    );

    let found: Vec<String> = differences.iter().map(ToString::to_string).collect();
    let expected = [
        "json GET dlq-manager /dlq/errors/grouped: answers in the twin, not in the target",
        "json GET dlq-manager /dlq/stats: .total_messages (number) in the twin, missing in the target",
        "json GET dlq-manager /dlq/stats: .message_count (number) in the target, not in the twin",
        "column data_quality_scores: created_at (timestamp with time zone) in the twin, missing in the target",
        "column data_quality_scores: scored_at (timestamp with time zone) in the target, not in the twin",
    ];
    for want in expected {
        assert!(
            found.iter().any(|f| f.starts_with(want)),
            "no difference {want:?} in {found:#?}"
        );
    }
    assert_eq!(
        found.len(),
        expected.len(),
        "only the drift differs: {found:#?}"
    );
}

/// A deployment whose services run as a compose project (a docker stack, as if it were
/// production) names the project in its target file: the runbooks' `docker compose ps`,
/// `logs` and `docker inspect` steps are then read through the engine, read-only, and
/// work; a change is still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compose_project_named_in_the_target_has_its_service_steps_checked() {
    stack::skip_without_docker!();
    let mut options = stack::StackOptions::for_tests(common::twin_binary());
    options.label = "check-compose".into();
    let stack = stack::Stack::start(options, stack::Backend::Docker)
        .await
        .expect("the docker stack starts");
    let project = stack
        .as_docker()
        .expect("a docker stack")
        .compose_project()
        .name
        .clone();
    let path = target_file(&stack, "compose");
    let mut text = std::fs::read_to_string(&path).expect("the target file");
    text.push_str(&format!("\n[services]\ncompose_project = \"{project}\"\n"));
    std::fs::write(&path, text).expect("the target file is written");
    let loaded = Target::load(&path).expect("the target file loads");
    let services = loaded.target.services.clone().expect("[services] is read");
    let target = stack::docker::compose_target::ComposeTarget::connect(
        services.docker_host.as_deref(),
        &services.compose_project,
    )
    .await
    .expect("the engine answers");
    let orchestrator: Arc<dyn runbooks::ops::Orchestrator> = Arc::new(target);
    let refused = orchestrator
        .restart(&[wire::Service::RestApi])
        .await
        .expect_err("a restart is refused");
    let ops = read_only_ops(&loaded, orchestrator);
    // The two runbooks whose investigation and verification read the services.
    let checked: Vec<_> = ["scraper-stalled", "disk-space"]
        .into_iter()
        .map(|id| runbooks::by_id(id).expect("a known runbook"))
        .collect();
    let report = check::check("compose", &ops, &checked).await;
    let rendered = report.render();
    stack.shutdown().await.expect("the stack stops");
    let _ = std::fs::remove_file(&path);

    assert!(
        refused.to_string().contains("refused, read-only"),
        "{refused}"
    );
    assert!(report.broken().is_empty(), "{rendered}");
    let of = |id: &str| report.runbook(id).expect("the runbook is checked");
    assert!(
        of("scraper-stalled")
            .steps
            .iter()
            .any(|s| s.status == Status::Works
                && s.command
                    .as_deref()
                    .is_some_and(|c| c.starts_with("docker compose ps"))),
        "docker compose ps is read through the engine:\n{rendered}"
    );
    assert!(
        of("disk-space")
            .criteria
            .iter()
            .any(|c| c.status == Status::Works && c.command.starts_with("docker inspect")),
        "the log options (docker inspect) are read:\n{rendered}"
    );
    // CI reads twin fidelity from the JUnit file too (`--compare-twin --format junit`).
    let difference = check::shape::Difference {
        kind: "column",
        place: "tracks".into(),
        what: "bpm is missing".into(),
    };
    let junit = report.junit_with_fidelity(std::slice::from_ref(&difference));
    assert!(
        junit.contains("<testsuite name=\"twin fidelity\">")
            && junit
                .contains("<testcase name=\"column tracks\"><failure message=\"bpm is missing\"/>")
            && junit.trim_end().ends_with("</testsuites>"),
        "{junit}"
    );
    assert!(
        report
            .junit_with_fidelity(&[])
            .contains("<testcase name=\"the target has the twin's shape\">")
    );
}

/// `drill check` itself: a target it cannot check exits 2 with one clear line, never 1
/// (which says a runbook is broken): a malformed file, a target nobody answers at, a
/// database role the target does not have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_that_cannot_be_checked_exit_2_with_a_clear_error() {
    let run = |path: &std::path::Path| {
        let output = std::process::Command::new(common::twin_binary())
            .args(["check", "--target"])
            .arg(path)
            .output()
            .expect("drill check runs");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let dir = tempfile::tempdir().expect("a temporary directory");

    let malformed = dir.path().join("malformed.toml");
    std::fs::write(&malformed, "name = \"broken\"\nenrichment = 8020\n").unwrap();
    let (code, said) = run(&malformed);
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("malformed.toml"), "names the file: {said}");

    let stack = common::stack("check-exit-codes", 60.0).await;
    let wrong_role = target_file(&stack, "wrong-role");
    let text = std::fs::read_to_string(&wrong_role).unwrap();
    let user = Url::parse(&stack.endpoints().database_url)
        .unwrap()
        .username()
        .to_owned();
    std::fs::write(
        &wrong_role,
        text.replace(&format!("user = \"{user}\""), "user = \"nobody_here\""),
    )
    .unwrap();
    let (code, said) = run(&wrong_role);
    stack.shutdown().await.expect("the stack stops");
    let _ = std::fs::remove_file(&wrong_role);
    assert_eq!(code, Some(2), "{said}");
    assert!(
        said.contains("nobody_here"),
        "names the role refused: {said}"
    );

    let nowhere = dir.path().join("nowhere.toml");
    std::fs::write(&nowhere, NOWHERE).unwrap();
    let (code, said) = run(&nowhere);
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("does not answer"), "{said}");
}
