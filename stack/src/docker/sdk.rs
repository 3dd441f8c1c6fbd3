//! PostgreSQL and Redis, started with testcontainers from their [`ServiceSpec`].
//!
//! The testcontainers request is translated from the very `docker create` body the
//! orchestrator uses when it recreates a container ([`ServiceSpec::create_body`]), so
//! the two paths cannot drift: image, entrypoint (tini) and command, environment,
//! labels, hostname, network, ports published on 127.0.0.1, binds and memory limit.
//! testcontainers 0.27 cannot express two things, handled around it:
//! - network aliases: the engine adds a container's hostname to its aliases on a
//!   user-defined network, and the hostname is the service name, so the twin reaches
//!   `postgres` and `redis` by name as before; [`start`] checks that it did. Extra
//!   networks (none for these two) are connected once the container runs;
//! - the stop signal: the container keeps the image's (SIGTERM), so the orchestrator
//!   sends the spec's own (SIGINT for PostgreSQL) before `docker stop`.
//!
//! Readiness is the service's own log line ([`ReadyLine`]), which testcontainers
//! follows on the container's log stream; no sleeps.
//!
//! Nothing here reaches beyond the local engine: the image must already be present
//! ([`start`] checks, so testcontainers never gets to its pull-on-404),
//! testcontainers-rs has no ryuk/reaper container, and its `watchdog` feature (signal
//! handlers that remove containers) is off. Its client is its own bollard 0.20 (the
//! workspace's), created lazily from `DOCKER_HOST` like ours; it does not negotiate
//! the API version, which works with the engine's 1.41 because bollard leaves the
//! version out of request paths.

use std::collections::BTreeMap;
use std::mem::ManuallyDrop;
use std::time::Duration;

use bollard::Docker;
use testcontainers::core::error::WaitContainerError;
use testcontainers::core::logs::WaitLogError;
use testcontainers::core::{ContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{
    ContainerAsync, ContainerRequest, GenericImage, ImageExt, TestcontainersError,
};

use super::engine::DockerError;
use super::spec::{ReadyLine, ServiceSpec};
use crate::StackError;

/// A container testcontainers started, kept for as long as its stack.
///
/// Removing it belongs to the stack's teardown alone (`engine::remove_run`, by run
/// label, containers before networks and volumes), never to this handle: it is held
/// in `ManuallyDrop`, so `ContainerAsync`'s own `Drop` never runs. That `Drop` would
/// remove by container id, which is stale once the orchestrator recreates the
/// service (`set_env`) and gone once the teardown ran (a 404, logged as an error);
/// and it needs a tokio runtime (`Handle::current()`), so a stack dropped outside
/// one, as after a panic, would panic again in `Drop` (an abort while unwinding).
/// What stays allocated per handle: its request (about a kilobyte, boxed to keep the
/// stack small) and a reference to testcontainers' docker client, which keeps no
/// connection open (bollard pools none on a unix socket).
pub(crate) struct Started {
    container: ManuallyDrop<Box<ContainerAsync<GenericImage>>>,
}

impl Started {
    /// The id of the container as started (the orchestrator may have recreated it
    /// since, under the same name).
    pub(crate) fn id(&self) -> &str {
        self.container.id()
    }
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started").field("id", &self.id()).finish()
    }
}

/// The testcontainers request for `spec` with `overrides` on top of its environment.
pub(crate) fn request(
    spec: &ServiceSpec,
    overrides: &BTreeMap<String, String>,
    ready: ReadyLine,
    startup_timeout: Duration,
) -> ContainerRequest<GenericImage> {
    let body = spec.create_body(overrides);
    let image = body.image.unwrap_or_default();
    // testcontainers names an image `name:tag`: split at the last ':' and it gives
    // back the same reference (a registry port or a digest included).
    let (name, tag) = image.rsplit_once(':').unwrap_or((&image, "latest"));
    let wait = match ready {
        ReadyLine::Stdout(line) => WaitFor::message_on_stdout(line),
        ReadyLine::Stderr(line) => WaitFor::message_on_stderr(line),
    };
    let mut image = GenericImage::new(name, tag).with_wait_for(wait);
    // testcontainers takes one word of entrypoint (tini, or "" which resets the
    // image's); the rest (`--`) leads the command, which is the same argv.
    let mut entrypoint = body.entrypoint.unwrap_or_default().into_iter();
    if let Some(program) = entrypoint.next() {
        image = image.with_entrypoint(&program);
    }
    let cmd: Vec<String> = entrypoint.chain(body.cmd.unwrap_or_default()).collect();
    // The host configuration of the bollard path as is: binds, ports on 127.0.0.1
    // (testcontainers would leave the address to the engine), network, memory limit
    // and swap.
    let host_config = body.host_config.unwrap_or_default();
    let mut request = image
        .with_container_name(&spec.container)
        .with_network(&spec.network)
        .with_labels(body.labels.unwrap_or_default())
        .with_cmd(cmd)
        .with_startup_timeout(startup_timeout)
        .with_host_config_modifier(move |config| *config = host_config.clone());
    if let Some(hostname) = body.hostname {
        request = request.with_hostname(hostname);
    }
    for &(inside, host) in &spec.ports {
        request = request.with_mapped_port(host, ContainerPort::Tcp(inside));
    }
    for var in body.env.unwrap_or_default() {
        if let Some((key, value)) = var.split_once('=') {
            request = request.with_env_var(key, value);
        }
    }
    request
}

/// Starts `spec`'s container with testcontainers and waits for `ready` in its log.
pub(crate) async fn start(
    docker: &Docker,
    service: &str,
    spec: &ServiceSpec,
    overrides: &BTreeMap<String, String>,
    ready: ReadyLine,
    startup_timeout: Duration,
) -> Result<Started, DockerError> {
    // Never pull: testcontainers pulls when creating answers 404 (no such image).
    match docker.inspect_image(&spec.image).await {
        Ok(_) => {}
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {
            return Err(DockerError::MissingImage {
                image: spec.image.clone(),
            });
        }
        Err(source) => {
            return Err(DockerError::Engine {
                action: format!("inspecting image {}", spec.image),
                source,
            });
        }
    }
    let container = request(spec, overrides, ready, startup_timeout)
        .start()
        .await
        .map_err(|source| start_error(service, spec, ready, startup_timeout, source))?;
    let started = Started {
        container: ManuallyDrop::new(Box::new(container)),
    };
    check_alias(docker, spec).await?;
    spec.connect_extra_networks(docker).await?;
    Ok(started)
}

/// Others on the stack's network reach the container by its service name.
async fn check_alias(docker: &Docker, spec: &ServiceSpec) -> Result<(), DockerError> {
    let inspected = docker
        .inspect_container(&spec.container, None)
        .await
        .map_err(DockerError::engine(format!(
            "inspecting {}",
            spec.container
        )))?;
    let aliases = inspected
        .network_settings
        .and_then(|settings| settings.networks)
        .and_then(|mut networks| networks.remove(&spec.network))
        .and_then(|endpoint| endpoint.aliases)
        .unwrap_or_default();
    if aliases.contains(&spec.alias) {
        Ok(())
    } else {
        Err(StackError::InvalidOptions(format!(
            "{} is not known as {} on network {} (aliases {aliases:?}): the engine did not \
             alias its hostname",
            spec.container, spec.alias, spec.network
        ))
        .into())
    }
}

/// The boot's usual errors where they apply: a container that exited before it was
/// ready, a timeout; testcontainers' own error otherwise. (testcontainers removed the
/// container already: a failed start drops its handle.)
fn start_error(
    service: &str,
    spec: &ServiceSpec,
    ready: ReadyLine,
    startup_timeout: Duration,
    error: TestcontainersError,
) -> DockerError {
    let line = match ready {
        ReadyLine::Stdout(line) | ReadyLine::Stderr(line) => line,
    };
    match error {
        TestcontainersError::WaitContainer(WaitContainerError::WaitLog(
            WaitLogError::EndOfStream(seen),
        )) => {
            let lines: Vec<String> = seen
                .iter()
                .flat_map(|chunk| {
                    String::from_utf8_lossy(chunk)
                        .lines()
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .collect();
            DockerError::ExitedDuringBoot {
                service: service.to_owned(),
                state: format!("its log ended before \"{line}\""),
                tail: lines[lines.len().saturating_sub(20)..].join("\n"),
            }
        }
        TestcontainersError::WaitContainer(WaitContainerError::StartupTimeout) => {
            DockerError::Timeout {
                what: format!("{service} to log \"{line}\""),
                waited: startup_timeout,
                last: "not in its log yet".into(),
            }
        }
        source => DockerError::Testcontainers {
            action: format!("starting {} with testcontainers", spec.container),
            source,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bollard::models::HostConfig;

    use super::*;
    use crate::docker::spec::{self, Init, POSTGRES_READY};

    fn postgres_spec() -> ServiceSpec {
        ServiceSpec {
            container: "drill-x-postgres-1".into(),
            image: "runbook-drill/base:latest".into(),
            cmd: spec::postgres_cmd(60.0),
            env: BTreeMap::from([("A".into(), "1".into())]),
            binds: vec![
                "/dev/shm/runbook-drill/runs/x/pg:/var/lib/postgresql/data".into(),
                "drill-x-disk:/backups/postgres".into(),
            ],
            ports: vec![(5432, 5433)],
            stop_signal: Some("SIGINT".into()),
            memory_limit: Some(256 << 20),
            cgroup_parent: None,
            labels: HashMap::from([("runbook-drill.run-id".into(), "x".into())]),
            network: "drill-x".into(),
            alias: "postgres".into(),
            extra_networks: vec![],
            init: Init::ImageTini,
        }
    }

    #[test]
    fn the_request_is_the_specs_create_body() {
        let spec = postgres_spec();
        let overrides = BTreeMap::from([("B".into(), "2".into())]);
        let body = spec.create_body(&overrides);
        let request = request(&spec, &overrides, POSTGRES_READY, Duration::from_secs(20));

        assert_eq!(request.descriptor(), spec.image);
        assert_eq!(
            request.container_name().as_deref(),
            Some("drill-x-postgres-1")
        );
        assert_eq!(request.network().as_deref(), Some("drill-x"));
        assert_eq!(request.hostname(), Some("postgres"));
        // tini, then `--` and the command: the argv of the bollard path.
        let mut argv: Vec<String> = request.entrypoint().into_iter().map(Into::into).collect();
        argv.extend(request.cmd().map(|c| c.into_owned()));
        let mut expected = body.entrypoint.clone().unwrap();
        expected.extend(body.cmd.clone().unwrap());
        assert_eq!(argv, expected);
        let env: Vec<String> = request
            .env_vars()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(env, body.env.clone().unwrap());
        for (key, value) in body.labels.clone().unwrap() {
            assert_eq!(request.labels().get(&key), Some(&value));
        }
        let ports: Vec<(u16, String)> = request
            .ports()
            .unwrap()
            .iter()
            .map(|p| (p.host_port(), p.container_port().to_string()))
            .collect();
        assert_eq!(ports, [(5433, "5432/tcp".to_owned())]);

        // Whatever testcontainers put in the host config, the spec's replaces it.
        let mut host = HostConfig {
            privileged: Some(false),
            publish_all_ports: Some(true),
            ..Default::default()
        };
        (request.host_config_modifier().unwrap())(&mut host);
        assert_eq!(host, body.host_config.unwrap());
        assert_eq!(
            host.port_bindings.unwrap()["5432/tcp"].as_ref().unwrap()[0]
                .host_ip
                .as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(host.binds.unwrap(), spec.binds);
    }

    #[test]
    fn image_references_survive_the_name_tag_split() {
        for image in [
            "runbook-drill/base:latest",
            "localhost:5000/base:latest",
            "base@sha256:ab",
        ] {
            let spec = ServiceSpec {
                image: image.into(),
                ..postgres_spec()
            };
            let request = request(
                &spec,
                &BTreeMap::new(),
                POSTGRES_READY,
                Duration::from_secs(1),
            );
            assert_eq!(request.descriptor(), image);
        }
    }
}
