//! The docker backend end to end with the real twin: boot, every endpoint, the
//! orchestrator's verbs on containers, a real OOM kill, PostgreSQL and Redis from
//! images other than ours (as the official ones), and nothing left after drop.
//!
//! Skips (prints why and passes) when no docker engine answers or the images of
//! `scripts/images` are missing, so the suite runs on machines without docker; in CI
//! (`CI=true`) and under `DRILL_BACKEND=docker` a missing engine or image fails instead.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use runbooks::ops::ServiceStatus;
use stack::docker::stack::DockerOptions;
use stack::docker::{DockerStack, Images, engine};
use stack::{Stack, StackOptions};
use support::{drill_binary, http, skip_without_docker};
use wire::Service;

async fn ok(url: url::Url) {
    let response = http().get(url.clone()).send().await;
    match response {
        Ok(r) if r.status().is_success() => {}
        other => panic!("{url} did not answer 200: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_stack_boots_answers_obeys_the_orchestrator_and_leaves_nothing() {
    skip_without_docker!();
    let started = Instant::now();
    let docker_stack = DockerStack::start(StackOptions::for_tests(drill_binary()))
        .await
        .expect("the docker stack boots");
    eprintln!(
        "docker boot: {:?} (wall {:?})",
        docker_stack.boot_report(),
        started.elapsed()
    );
    let (run_id, docker) = (
        docker_stack.run_id().to_owned(),
        docker_stack.docker().clone(),
    );
    let stack = Stack::from(docker_stack);

    let ep = stack.endpoints().clone();
    for base in [
        &ep.enrichment,
        &ep.gateway,
        &ep.dlq,
        &ep.rest_api,
        &ep.graph_api,
    ] {
        ok(base.join("health").unwrap()).await;
    }
    for service in Service::TWIN {
        ok(stack.chaos_url(service).unwrap().join("chaos").unwrap()).await;
    }
    let tracks: i64 = sqlx::query_scalar("SELECT count(*) FROM tracks")
        .fetch_one(stack.admin_pool())
        .await
        .unwrap();
    assert!(tracks > 0, "the seed is restored");

    let orchestrator = stack.orchestrator();
    assert_eq!(orchestrator.backend(), "docker");
    for service in Service::ALL {
        assert_eq!(
            orchestrator.status(service).await.unwrap(),
            ServiceStatus::Running
        );
    }
    orchestrator.stop(&[Service::RestApi]).await.unwrap();
    assert_eq!(
        orchestrator.status(Service::RestApi).await.unwrap(),
        ServiceStatus::Stopped
    );
    assert!(
        http()
            .get(ep.rest_api.join("health").unwrap())
            .send()
            .await
            .is_err()
    );
    orchestrator.start(&[Service::RestApi]).await.unwrap();
    ok(ep.rest_api.join("health").unwrap()).await;
    orchestrator
        .restart(&[Service::MetadataEnrichment])
        .await
        .unwrap();
    ok(ep.enrichment.join("health").unwrap()).await;

    // An edited environment takes effect at the next restart, by recreating the container.
    orchestrator
        .set_env(
            Service::MetadataEnrichment,
            BTreeMap::from([("POSTGRES_POOL_SIZE".to_owned(), "30".to_owned())]),
        )
        .await
        .unwrap();
    orchestrator
        .restart(&[Service::MetadataEnrichment])
        .await
        .unwrap();
    ok(ep.enrichment.join("health").unwrap()).await;

    orchestrator.pause(Service::GraphApi).await.unwrap();
    assert_eq!(
        orchestrator.status(Service::GraphApi).await.unwrap(),
        ServiceStatus::Paused
    );
    orchestrator.unpause(Service::GraphApi).await.unwrap();
    orchestrator.kill(Service::DlqManager).await.unwrap();
    assert!(matches!(
        orchestrator.status(Service::DlqManager).await.unwrap(),
        ServiceStatus::Exited {
            code: Some(137),
            oom_killed: false
        }
    ));
    let logs = orchestrator.logs(Service::Postgres, 5).await.unwrap();
    assert!(logs.len() <= 5);
    let stats = orchestrator.stats().await.unwrap();
    assert!(
        stats
            .iter()
            .any(|s| s.service == Service::Postgres && s.memory_bytes > 0)
    );

    // PostgreSQL's data outlives its container, as on a compose volume: a restart and a
    // recreation (an edited environment) keep what was written.
    let admin = stack.admin_pool().clone();
    sqlx::query("CREATE TABLE drill_survivor (note text)")
        .execute(&admin)
        .await
        .unwrap();
    sqlx::query("INSERT INTO drill_survivor VALUES ('written before the restarts')")
        .execute(&admin)
        .await
        .unwrap();
    orchestrator.restart(&[Service::Postgres]).await.unwrap();
    orchestrator
        .set_env(
            Service::Postgres,
            BTreeMap::from([("DRILL_NOTE".to_owned(), "recreated".to_owned())]),
        )
        .await
        .unwrap();
    orchestrator.restart(&[Service::Postgres]).await.unwrap();
    let survivors: i64 = sqlx::query_scalar("SELECT count(*) FROM drill_survivor")
        .fetch_one(&admin)
        .await
        .expect("the table outlives a restart and a recreation of postgres");
    assert_eq!(survivors, 1);
    let runtime_root = stack::dirs::runtime_root().unwrap();
    assert!(
        !stack::ports::claimed_by(&runtime_root, &run_id).is_empty(),
        "a running stack holds claims on its published ports"
    );

    let reset = Instant::now();
    stack
        .reset()
        .await
        .expect("reset brings every service back");
    eprintln!("docker reset: {:?}", reset.elapsed());
    for service in Service::ALL {
        assert_eq!(
            orchestrator.status(service).await.unwrap(),
            ServiceStatus::Running
        );
    }

    drop(orchestrator);
    drop(stack);
    assert_eq!(
        engine::count_run(&docker, &run_id).await.unwrap(),
        0,
        "no container, network or volume of run {run_id} is left"
    );
    assert_eq!(
        stack::ports::claimed_by(&runtime_root, &run_id),
        Vec::<u16>::new(),
        "the stack's host port claims are released"
    );
    assert!(
        !runtime_root.join("runs").join(&run_id).exists(),
        "the stack's run directory (PostgreSQL's data) is removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_leak_under_a_container_limit_ends_in_an_oom_kill() {
    skip_without_docker!();
    const LIMIT: u64 = 96 << 20;
    let docker_stack = DockerStack::start_with(
        StackOptions::for_tests(drill_binary()),
        DockerOptions {
            memory_limits: BTreeMap::from([(Service::GraphApi, LIMIT)]),
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
    let switch = stack
        .chaos_url(Service::GraphApi)
        .unwrap()
        .join("chaos/memory_leak")
        .unwrap();
    // Modeled minutes: at the tests' scale 60 this is 256 MiB per real second, bounded
    // far above the limit so that only the limit can stop it.
    let response = http()
        .put(switch)
        .json(&serde_json::json!({"mib_per_minute": 256, "max_mib": 1024}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{response:?}");
    let orchestrator = stack.orchestrator();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status = orchestrator.status(Service::GraphApi).await.unwrap();
        if status != ServiceStatus::Running || Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        status,
        ServiceStatus::Exited {
            code: Some(137),
            oom_killed: true
        },
        "the kernel's OOM killer ended graph-api at its {} MiB limit",
        LIMIT >> 20
    );
    stack.shutdown().await.unwrap();
    assert_eq!(engine::count_run(&docker, &run_id).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_mode_docker_stack_publishes_the_documented_ports_on_loopback() {
    skip_without_docker!();
    let busy: Vec<u16> = Service::ALL
        .iter()
        .filter_map(|s| s.drill_port())
        .filter(|&p| support::listening(p))
        .collect();
    if !busy.is_empty() {
        // Another drill-mode stack runs on this machine (a game day, another test run).
        eprintln!("skipped: documented ports {busy:?} are in use on this machine");
        return;
    }
    let mut options = StackOptions::for_tests(drill_binary());
    options.ports = stack::PortMode::Documented;
    let docker_stack = DockerStack::start(options)
        .await
        .expect("the docker stack boots");
    let (run_id, docker) = (
        docker_stack.run_id().to_owned(),
        docker_stack.docker().clone(),
    );
    let stack = Stack::from(docker_stack);
    let ep = stack.endpoints();
    assert_eq!(ep.postgres_port, 5433);
    assert_eq!(ep.redis_port, 6379);
    // As the runbooks type them.
    for url in [
        "http://localhost:8020/health",
        "http://localhost:8022/health",
        "http://localhost:8024/dlq/stats",
    ] {
        ok(url.parse().unwrap()).await;
    }
    // Every published port of every container is on the host's loopback only.
    let containers = docker
        .list_containers(Some(bollard::query_parameters::ListContainersOptions {
            filters: Some(std::collections::HashMap::from([(
                "label".to_owned(),
                vec![format!("{}={run_id}", engine::LABEL_RUN)],
            )])),
            ..Default::default()
        }))
        .await
        .unwrap();
    let published: Vec<_> = containers
        .iter()
        .flat_map(|c| c.ports.clone().unwrap_or_default())
        .filter(|p| p.public_port.is_some())
        .collect();
    assert!(published.len() >= Service::ALL.len(), "{published:?}");
    assert!(
        published
            .iter()
            .all(|p| p.ip.as_deref() == Some("127.0.0.1")),
        "a port is published beyond loopback: {published:?}"
    );
    stack.shutdown().await.unwrap();
    assert_eq!(engine::count_run(&docker, &run_id).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_runs_containers_are_reaped_by_label_at_the_next_start() {
    skip_without_docker!();
    use std::io::{BufRead, BufReader};
    // A real run, killed the hard way: `drill up` on docker, then SIGKILL.
    let mut up = std::process::Command::new(drill_binary())
        .args(["up", "--backend", "docker", "--free-ports", "--scale", "60"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("drill up starts");
    let stdout = up.stdout.take().unwrap();
    let run_id = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| {
                line.split("runbook-drill.run-id=")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .map(str::to_owned)
            })
    })
    .await
    .unwrap();
    let run_id = run_id.expect("drill up printed its run id");
    let run_dir = stack::dirs::runtime_root()
        .unwrap()
        .join("runs")
        .join(&run_id);
    let data_dir_there = run_dir.join("pg").join("PG_VERSION").exists();
    up.kill().unwrap();
    up.wait().unwrap();
    assert!(
        data_dir_there,
        "a running docker stack keeps PostgreSQL's data in its run directory"
    );
    let docker = engine::connect().await.unwrap();
    let left = engine::count_run(&docker, &run_id).await.unwrap();
    assert!(
        left > Service::ALL.len(),
        "SIGKILL leaves the run's containers and networks: {left}"
    );

    let next = DockerStack::start(StackOptions::for_tests(drill_binary()))
        .await
        .expect("the next docker stack boots");
    assert_eq!(
        engine::count_run(&docker, &run_id).await.unwrap(),
        0,
        "the next start reaped every container, network and volume of the killed run"
    );
    assert!(
        !run_dir.exists(),
        "the next start reaped the killed run's directory"
    );
    next.shutdown().await.unwrap();
}

/// An image shaped like the official `postgres` and `redis` ones, made from the base:
/// no tini, and an entrypoint of its own that fails, so a container that kept it could
/// not start. Made by committing a base container that removed tini; removed on drop.
struct ForeignImage {
    name: String,
    /// The container it is committed from, removed as soon as it is done.
    builder: String,
}

impl ForeignImage {
    async fn commit(docker: &bollard::Docker, base: &str) -> Self {
        use bollard::query_parameters::{
            CommitContainerOptions, CreateContainerOptions, RemoveContainerOptions,
        };
        use futures::StreamExt;

        let tag = std::process::id().to_string();
        let repo = "runbook-drill-test/foreign";
        // From here on, a panic drops `image`, which removes whatever was made.
        let image = Self {
            name: format!("{repo}:{tag}"),
            builder: format!("runbook-drill-test-foreign-{tag}"),
        };
        let builder = &image.builder;
        docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(builder.clone()),
                    ..Default::default()
                }),
                bollard::models::ContainerCreateBody {
                    image: Some(base.to_owned()),
                    cmd: Some(vec!["rm".into(), "/usr/bin/tini".into()]),
                    ..Default::default()
                },
            )
            .await
            .expect("a container of the base image");
        docker.start_container(builder, None).await.unwrap();
        let mut exits = docker.wait_container(builder, None);
        while let Some(exit) = exits.next().await {
            assert_eq!(exit.expect("rm exits").status_code, 0, "tini removed");
        }
        docker
            .commit_container(
                CommitContainerOptions {
                    container: Some(builder.clone()),
                    repo: Some(repo.into()),
                    tag: Some(tag.clone()),
                    changes: Some("ENTRYPOINT [\"/bin/false\"]".into()),
                    ..Default::default()
                },
                bollard::models::ContainerConfig::default(),
            )
            .await
            .expect("the foreign image is committed");
        docker
            .remove_container(
                builder,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await
            .unwrap();
        image
    }
}

impl Drop for ForeignImage {
    fn drop(&mut self) {
        for args in [
            ["container", "rm", "--force", &self.builder],
            ["image", "rm", "--force", &self.name],
        ] {
            let _ = std::process::Command::new("docker").args(args).output();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_and_redis_run_from_foreign_images_under_the_engines_init() {
    skip_without_docker!();
    let docker = engine::connect().await.unwrap();
    let own = Images::from_env();
    let foreign = ForeignImage::commit(&docker, &own.base).await;
    let images = Images {
        postgres: foreign.name.clone(),
        redis: foreign.name.clone(),
        ..own
    };
    let stack = DockerStack::start_with(
        StackOptions::for_tests(drill_binary()),
        DockerOptions {
            images: Some(images),
            ..Default::default()
        },
    )
    .await
    .expect("the docker stack boots with PostgreSQL and Redis from the foreign image");
    let run_id = stack.run_id().to_owned();
    for service in [Service::Postgres, Service::Redis] {
        let name = format!("drill-{run_id}-{}-1", service.name());
        let inspected = docker.inspect_container(&name, None).await.unwrap();
        assert_eq!(inspected.config.unwrap().image, Some(foreign.name.clone()));
        assert_eq!(inspected.host_config.unwrap().init, Some(true), "{name}");
    }
    // A restart goes through the same path as the first start.
    let stack = Stack::from(stack);
    let orchestrator = stack.orchestrator();
    orchestrator.restart(&[Service::Postgres]).await.unwrap();
    assert_eq!(
        orchestrator.status(Service::Postgres).await.unwrap(),
        ServiceStatus::Running
    );
    let tracks: i64 = sqlx::query_scalar("SELECT count(*) FROM tracks")
        .fetch_one(stack.admin_pool())
        .await
        .expect("PostgreSQL answers after its restart");
    assert!(tracks > 0);
    stack.shutdown().await.unwrap();
    assert_eq!(engine::count_run(&docker, &run_id).await.unwrap(), 0);
}

#[tokio::test]
async fn postgres_keeps_the_stacks_modeled_clock_in_its_container() {
    skip_without_docker!();
    let stack = Stack::from(
        DockerStack::start(StackOptions::for_tests(drill_binary()))
            .await
            .expect("the docker stack boots"),
    );
    support::assert_postgres_keeps_the_stack_clock(&stack).await;
    stack.shutdown().await.unwrap();
}

/// Runs the compose tool (`docker-compose`, Compose v1) on the stack's project.
fn compose(project: &stack::docker::compose_project::ComposeProject, args: &[&str]) -> String {
    let tool = project
        .hashed_by
        .as_ref()
        .expect("the project was hashed by the compose tool");
    let output = std::process::Command::new(tool)
        .envs(project.env())
        .args(args)
        .output()
        .expect("docker-compose runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "docker-compose {args:?} failed:\n{text}"
    );
    text
}

async fn container_ids(docker: &bollard::Docker, stack: &DockerStack) -> BTreeMap<Service, String> {
    let mut ids = BTreeMap::new();
    for service in Service::ALL {
        let name = stack.orchestrator().container(service).unwrap();
        let inspected = docker.inspect_container(name, None).await.unwrap();
        ids.insert(service, inspected.id.unwrap());
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docker_stack_is_a_compose_project_the_real_compose_tool_acts_on() {
    skip_without_docker!();
    if stack::docker::compose_project::compose_v1().await.is_none() {
        assert!(
            !stack::testing::docker_required(),
            "docker-compose is required here (scripts/setup installs it)"
        );
        eprintln!("SKIPPED: no docker-compose on this machine");
        return;
    }
    let options = StackOptions {
        compose_hashes: true,
        ..StackOptions::for_tests(drill_binary())
    };
    let docker_stack = DockerStack::start(options)
        .await
        .expect("the docker stack boots");
    let project = docker_stack.compose_project().clone();
    let docker = docker_stack.docker().clone();
    let before = container_ids(&docker, &docker_stack).await;

    // The runbooks' lines, as written, through the real tool.
    let ps = compose(&project, &["ps"]);
    for service in Service::ALL {
        let name = docker_stack.orchestrator().container(service).unwrap();
        assert!(ps.contains(name), "`ps` lists {name}:\n{ps}");
    }
    let logs = compose(&project, &["logs", "--tail=5", "rest-api"]);
    assert!(logs.contains("rest-api"), "{logs}");
    let info = compose(
        &project,
        &["exec", "-T", "redis", "redis-cli", "INFO", "stats"],
    );
    assert!(info.contains("keyspace_hits:"), "{info}");

    compose(&project, &["stop", "scraper-mixesdb"]);
    let stack = Stack::from(docker_stack);
    let status = stack
        .orchestrator()
        .status(Service::ScraperMixesdb)
        .await
        .unwrap();
    assert!(
        !matches!(status, ServiceStatus::Running),
        "compose stopped the scraper: {status:?}"
    );
    // `up -d` starts what is stopped and leaves what runs alone: the hashes match,
    // so nothing is recreated (a recreation would be an outage of the whole stack).
    let up = compose(&project, &["up", "-d"]);
    assert!(up.contains("is up-to-date"), "{up}");
    assert_eq!(
        stack
            .orchestrator()
            .status(Service::ScraperMixesdb)
            .await
            .unwrap(),
        ServiceStatus::Running
    );
    compose(&project, &["restart", "rest-api"]);
    let health = stack.endpoints().rest_api.join("health").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http()
        .get(health.clone())
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            Instant::now() < deadline,
            "rest-api answers after compose restarted it"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = container_ids(&docker, stack.as_docker().unwrap()).await;
    assert_eq!(before, after, "no container was recreated");

    stack.shutdown().await.expect("the stack stops");
}
