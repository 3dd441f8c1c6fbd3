//! Container-level faults on the docker backend, end to end with the real twin: a full
//! disk makes the twin's log writes fail with ENOSPC (and every other write there), and
//! disconnecting the gateway from the providers' network cuts its provider calls; each
//! heals, and each stack leaves nothing behind.
//!
//! Skips (prints why and passes) when no docker engine answers or the images of
//! `scripts/images` are missing, so the suite runs on machines without docker; in CI
//! (`CI=true`) and under `DRILL_BACKEND=docker` a missing engine or image fails instead.

use std::collections::BTreeMap;
use std::time::Duration;

use harness::Fault;
use stack::docker::faults::{LOG_DIR, LogFileStatus};
use stack::docker::stack::DockerOptions;
use stack::docker::{DockerStack, engine};
use stack::skip_without_docker;
use stack::testing::{http, twin_binary as drill_binary};
use stack::{Stack, StackOptions};
use wire::Service;
use wire::api::Provider;

/// Polls `check` every 100 ms until it holds or `within` has passed; panics with what
/// was awaited, for how long, and the last thing seen.
async fn eventually<T, F, Fut>(what: &str, within: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    stack::testing::eventually(what, within, Duration::from_millis(100), check)
        .await
        .unwrap_or_else(|failure| panic!("{failure}"))
}

/// A write of a new file on the disk, from inside `service`'s container.
async fn write_on_disk(stack: &DockerStack, service: Service) -> (bool, String) {
    let probe = format!("{LOG_DIR}/.docker-faults-probe");
    // dd, not echo: the shell's echo reports any failed write as "I/O error".
    let script = format!(
        "dd if=/dev/zero of={probe} bs=4k count=1 status=none; s=$?; rm -f {probe}; exit $s"
    );
    let output = stack
        .exec(service, &["sh", "-c", &script])
        .await
        .expect("docker exec runs");
    (output.success(), output.output)
}

/// A Spotify search through the gateway: (status, the gateway's own error if any).
async fn spotify_through_the_gateway(stack: &Stack) -> (u16, Option<String>) {
    let url = stack.endpoints().gateway.join("spotify/v1/search").unwrap();
    let response = http()
        .get(url)
        .query(&[("q", "artist:x track:y"), ("type", "track"), ("limit", "1")])
        .header("X-Timeout-Ms", "1500")
        .send()
        .await
        .expect("the gateway answers");
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    (status, body["error"].as_str().map(str::to_owned))
}

/// Waits until a Spotify search through the gateway answers 200.
async fn spotify_answers_through_the_gateway(stack: &Stack, what: &str, within: Duration) {
    eventually(what, within, || async {
        match spotify_through_the_gateway(stack).await {
            (200, _) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

async fn gateway_log(stack: &DockerStack) -> LogFileStatus {
    stack
        .log_file_status(Service::ApiGatewayInternal)
        .await
        .expect("the gateway's chaos surface answers")
        .expect("the gateway writes a log file")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_log_writes_with_enospc_until_healed() {
    skip_without_docker!();
    const DISK: u64 = 16 << 20;
    let docker_stack = DockerStack::start_with(
        StackOptions::for_tests(drill_binary()),
        DockerOptions {
            disk_size: Some(DISK),
            ..Default::default()
        },
    )
    .await
    .expect("the docker stack boots");
    let (run_id, docker) = (
        docker_stack.run_id().to_owned(),
        docker_stack.docker().clone(),
    );
    let stack = Stack::from(docker_stack);
    let docker_stack = stack.as_docker().unwrap();

    let usage = docker_stack.disk_usage().await.unwrap();
    assert_eq!(
        usage.total_bytes, DISK,
        "the volume is a tmpfs of the size asked"
    );
    assert!(usage.available_bytes > 0);
    let before = gateway_log(docker_stack).await;
    assert_eq!(
        before.path,
        format!("{LOG_DIR}/api-gateway-internal.log"),
        "{before:?}"
    );
    assert!(before.lines_written > 0, "the boot was logged: {before:?}");
    assert_eq!(before.write_failures, 0, "{before:?}");
    assert!(write_on_disk(docker_stack, Service::DlqManager).await.0);

    let disk_full = Fault::disk_fill()
        .inject(&stack)
        .await
        .expect("the disk fills");
    assert_eq!(docker_stack.disk_usage().await.unwrap().available_bytes, 0);
    let (ok, output) = write_on_disk(docker_stack, Service::DlqManager).await;
    assert!(!ok, "a write on a full disk fails");
    assert!(output.contains("No space left on device"), "{output}");

    // Every provider error is a log line at the gateway. The first few may still fit in
    // the last, partly used page of the log file (tmpfs allocates by page), as on any
    // full file system; then they fail.
    let _outage = Fault::provider(Provider::Spotify)
        .status(503)
        .inject(&stack)
        .await
        .unwrap();
    let failing = eventually(
        "the gateway reporting failed log writes",
        Duration::from_secs(30),
        || async {
            spotify_through_the_gateway(&stack).await;
            let status = gateway_log(docker_stack).await;
            if status.failing && status.write_failures > 0 {
                Ok(status)
            } else {
                Err(format!("{status:?}"))
            }
        },
    )
    .await;
    let error = failing.last_error.clone().unwrap_or_default();
    assert!(error.contains("No space left on device"), "{failing:?}");
    ok_health(&stack.endpoints().gateway).await;
    let logs = stack
        .orchestrator()
        .logs(Service::ApiGatewayInternal, 200)
        .await
        .unwrap();
    assert!(
        logs.iter()
            .any(|line| line.contains("No space left on device")),
        "docker logs names the error:\n{}",
        logs.join("\n")
    );

    disk_full.heal().await.expect("the disk heals");
    assert!(docker_stack.disk_usage().await.unwrap().available_bytes > 0);
    assert!(write_on_disk(docker_stack, Service::DlqManager).await.0);
    let recovered = eventually(
        "the gateway writing its log file again",
        Duration::from_secs(30),
        || async {
            spotify_through_the_gateway(&stack).await;
            let status = gateway_log(docker_stack).await;
            if !status.failing && status.lines_written > failing.lines_written {
                Ok(status)
            } else {
                Err(format!("{status:?}"))
            }
        },
    )
    .await;
    assert!(recovered.write_failures >= failing.write_failures);

    drop(stack);
    assert_eq!(
        engine::count_run(&docker, &run_id).await.unwrap(),
        0,
        "no container, network or volume of run {run_id} is left"
    );
}

async fn ok_health(base: &url::Url) {
    let url = base.join("health").unwrap();
    match http().get(url.clone()).send().await {
        Ok(r) if r.status().is_success() => {}
        other => panic!("{url} did not answer 200: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnected_gateway_cannot_reach_the_providers_until_reconnected() {
    skip_without_docker!();
    let docker_stack = DockerStack::start(StackOptions::for_tests(drill_binary()))
        .await
        .expect("the docker stack boots");
    let (run_id, docker) = (
        docker_stack.run_id().to_owned(),
        docker_stack.docker().clone(),
    );
    let stack = Stack::from(docker_stack);
    let docker_stack = stack.as_docker().unwrap();
    let within = Duration::from_secs(20);

    assert_eq!(spotify_through_the_gateway(&stack).await.0, 200);
    assert!(docker_stack.gateway_connected().await.unwrap());

    let cut = Fault::gateway_disconnect()
        .inject(&stack)
        .await
        .expect("the gateway disconnects");
    assert!(!docker_stack.gateway_connected().await.unwrap());
    // A connection the gateway had open to a provider dies silently with the link, as
    // on a real network: a call on it times out (504). New connections are refused at
    // once: 502, "upstream connection error". Each pooled connection first costs a
    // call its timeout (1.5 s here), and a busy machine has pooled more of them.
    eventually("provider calls failing to connect", 3 * within, || async {
        match spotify_through_the_gateway(&stack).await {
            (502, Some(error)) if error.contains("upstream connection error") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // Only the link to the providers is cut: the gateway itself, and everyone else, run.
    ok_health(&stack.endpoints().gateway).await;
    ok_health(&stack.endpoints().enrichment).await;
    let metrics = http()
        .get(stack.endpoints().gateway.join("metrics").unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("spotify"), "{metrics}");

    cut.heal().await.expect("the gateway reconnects");
    assert!(docker_stack.gateway_connected().await.unwrap());
    spotify_answers_through_the_gateway(&stack, "provider calls answering again", within).await;

    // Compose recreates a container whose environment changed; the recreated gateway
    // joins the providers' network again.
    let orchestrator = stack.orchestrator();
    orchestrator
        .set_env(
            Service::ApiGatewayInternal,
            BTreeMap::from([("RUST_LOG".to_owned(), "info".to_owned())]),
        )
        .await
        .unwrap();
    orchestrator
        .restart(&[Service::ApiGatewayInternal])
        .await
        .unwrap();
    assert!(docker_stack.gateway_connected().await.unwrap());
    spotify_answers_through_the_gateway(
        &stack,
        "provider calls from the recreated gateway",
        within,
    )
    .await;

    // A reset heals a fault whose guard was forgotten.
    Fault::gateway_disconnect()
        .inject(&stack)
        .await
        .unwrap()
        .forget();
    stack.reset().await.expect("the stack resets");
    assert!(docker_stack.gateway_connected().await.unwrap());

    drop(orchestrator);
    drop(stack);
    assert_eq!(
        engine::count_run(&docker, &run_id).await.unwrap(),
        0,
        "no container, network or volume of run {run_id} is left"
    );
}
