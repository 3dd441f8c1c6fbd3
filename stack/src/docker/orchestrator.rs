//! The runbooks' `docker compose …` verbs, with bollard, on a stack's containers.
//!
//! Containers are created from their `ServiceSpec`: the twin's services with bollard,
//! PostgreSQL and Redis the first time with testcontainers (`start_with_testcontainers`,
//! which translates the same spec). From then on every verb works by container name,
//! whoever created it. An environment edited with `set_env` takes effect at the next
//! start or restart by recreating the container with bollard from its spec, as
//! `docker compose up` does. Host ports are fixed when the stack is built, so a
//! recreated container answers where the old one did. A container testcontainers
//! created has no stop signal of its own: `stop` sends the spec's first (SIGINT for
//! PostgreSQL, a fast shutdown), then stops it as `docker stop` does.
//!
//! `start` returns once the service is ready, judged by a probe (PostgreSQL accepts
//! a connection, Redis answers PING, a twin service's chaos surface and `/health`
//! answer), never by a sleep.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::ContainerStateStatusEnum;
use bollard::query_parameters::{
    KillContainerOptions, ListContainersOptions, StartContainerOptions, StopContainerOptions,
};
use runbooks::ops::{
    LogConfig, Orchestrator, OrchestratorError, PruneReport, ServiceStats, ServiceStatus,
};
use sqlx::Connection;
use sqlx::postgres::PgConnectOptions;
use url::Url;
use wire::Service;

use super::container_reads;
use super::engine::{self, DockerError, LABEL_RUN};
use super::own_actions;
use super::sdk::{self, Started};
use super::spec::{ReadyLine, ServiceSpec};
use crate::pg_clock::PgClock;
use wire::wait::Poll;

/// How a service is known to be ready.
#[derive(Clone, Debug)]
pub(crate) enum Probe {
    Postgres(Box<PgConnectOptions>),
    Redis(String),
    Twin { chaos: Url, health: Option<Url> },
}

struct Managed {
    spec: ServiceSpec,
    probe: Probe,
    ready_timeout: Duration,
    /// The modeled clock the container's server runs on through libfaketime
    /// (PostgreSQL), whose spec is written for each start.
    faked_clock: Option<PgClock>,
}

/// `docker compose …` over one stack's containers.
pub struct DockerOrchestrator {
    docker: Docker,
    run_id: String,
    services: BTreeMap<Service, Managed>,
    /// Environment edits not yet applied (`set_env`), by service.
    pending: Mutex<BTreeMap<Service, BTreeMap<String, String>>>,
    /// Environment edits the current container was created with.
    applied: Mutex<BTreeMap<Service, BTreeMap<String, String>>>,
    /// Services stopped with `stop`, which `status` reports as stopped, not exited.
    stopped: Mutex<BTreeSet<Service>>,
    /// Unix seconds: logs before this are not shown (a reset starts a new incident).
    logs_since: AtomicI64,
    http: reqwest::Client,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn failed(service: Service, action: &'static str) -> impl FnOnce(DockerError) -> OrchestratorError {
    move |e| OrchestratorError::Action {
        service,
        action,
        reason: e.to_string(),
    }
}

/// 304 Not Modified: already started, stopped, …
fn not_modified(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 304,
            ..
        }
    )
}

impl DockerOrchestrator {
    pub(crate) fn new(docker: Docker, run_id: String, http: reqwest::Client) -> Self {
        Self {
            docker,
            run_id,
            services: BTreeMap::new(),
            pending: Mutex::default(),
            applied: Mutex::default(),
            stopped: Mutex::default(),
            logs_since: AtomicI64::new(0),
            http,
        }
    }

    pub(crate) fn add(&mut self, service: Service, spec: ServiceSpec, probe: Probe) {
        let ready_timeout = match probe {
            // Debug twin binaries start together on two cores.
            Probe::Twin { .. } => Duration::from_secs(30),
            _ => Duration::from_secs(20),
        };
        self.services.insert(
            service,
            Managed {
                spec,
                probe,
                ready_timeout,
                faked_clock: None,
            },
        );
    }

    /// Every container's spec, by service.
    pub(crate) fn specs(&self) -> BTreeMap<Service, ServiceSpec> {
        self.services
            .iter()
            .map(|(&service, managed)| (service, managed.spec.clone()))
            .collect()
    }

    /// Adds a label to the container `service` will be created with.
    pub(crate) fn label(&mut self, service: Service, key: &str, value: String) {
        if let Some(managed) = self.services.get_mut(&service) {
            managed.spec.labels.insert(key.to_owned(), value);
        }
    }

    /// Runs `service` on `clock` (see [`crate::pg_clock`]): its spec is written
    /// before each start, by whatever starts it.
    pub(crate) fn run_on_faked_clock(&mut self, service: Service, clock: PgClock) {
        if let Some(managed) = self.services.get_mut(&service) {
            managed.faked_clock = Some(clock);
        }
    }

    /// The container of `service`, e.g. `drill-1a2b3c4d-rest-api-1`.
    pub fn container(&self, service: Service) -> Option<&str> {
        self.services
            .get(&service)
            .map(|m| m.spec.container.as_str())
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    pub(crate) fn docker(&self) -> &Docker {
        &self.docker
    }

    fn managed(&self, service: Service) -> Result<&Managed, OrchestratorError> {
        self.services
            .get(&service)
            .ok_or(OrchestratorError::NotInStack { service })
    }

    /// Creates the container of `service` (not started).
    pub(crate) async fn create(&self, service: Service) -> Result<(), DockerError> {
        let managed = &self.services[&service];
        let overrides = lock(&self.pending).remove(&service).unwrap_or_default();
        let options = bollard::query_parameters::CreateContainerOptions {
            name: Some(managed.spec.container.clone()),
            ..Default::default()
        };
        self.docker
            .create_container(Some(options), managed.spec.create_body(&overrides))
            .await
            .map_err(DockerError::engine(format!(
                "creating container {}",
                managed.spec.container
            )))?;
        // A recreated container joins every network of its spec, as compose's would.
        managed.spec.connect_extra_networks(&self.docker).await?;
        lock(&self.applied).insert(service, overrides);
        Ok(())
    }

    /// Creates and starts `service` with testcontainers, from the same spec [`Self::create`]
    /// uses: ready once it logged `ready` and its probe answers on the published port.
    /// The returned handle never removes the container (see [`Started`]).
    pub(crate) async fn start_with_testcontainers(
        &self,
        service: Service,
        ready: ReadyLine,
    ) -> Result<Started, DockerError> {
        let managed = &self.services[&service];
        let overrides = lock(&self.pending).remove(&service).unwrap_or_default();
        if let Some(clock) = &managed.faked_clock {
            clock.prepare_start()?;
        }
        let started = sdk::start(
            &self.docker,
            service.name(),
            &managed.spec,
            &overrides,
            ready,
            managed.ready_timeout,
        )
        .await?;
        lock(&self.applied).insert(service, overrides);
        lock(&self.stopped).remove(&service);
        // The log line says the server is up inside the container; the probe, that it
        // answers where the harness and the runbooks reach it (usually at once).
        self.wait_ready(service, managed).await?;
        Ok(started)
    }

    /// Starts `service` (recreating it first if its environment was edited) and waits
    /// until it is ready.
    pub(crate) async fn start_one(&self, service: Service) -> Result<(), DockerError> {
        let managed = &self.services[&service];
        let name = &managed.spec.container;
        let _acting = own_actions::acting([name.as_str()]);
        // `set_env` and `clear_env` leave the complete desired edit pending.
        if lock(&self.pending).contains_key(&service) {
            engine::remove_container(&self.docker, name).await?;
            self.create(service).await?;
        }
        if let Some(clock) = &managed.faked_clock {
            clock.prepare_start()?;
        }
        match self
            .docker
            .start_container(name, None::<StartContainerOptions>)
            .await
        {
            Err(e) if !not_modified(&e) => {
                return Err(DockerError::Engine {
                    action: format!("starting {name}"),
                    source: e,
                });
            }
            _ => {}
        }
        lock(&self.stopped).remove(&service);
        self.wait_ready(service, managed).await
    }

    async fn wait_ready(&self, service: Service, managed: &Managed) -> Result<(), DockerError> {
        let ready = wire::wait::until(
            wire::Clock::real_time(),
            managed.ready_timeout,
            Duration::from_millis(50),
            || async {
                match self.probe(&managed.probe).await {
                    Ok(()) => Poll::Ready(Ok(())),
                    Err(reason) => match self.inspect_state(&managed.spec.container).await {
                        Ok((Some(ContainerStateStatusEnum::RUNNING), _, _)) => {
                            Poll::Pending(reason)
                        }
                        Ok(state) => Poll::Ready(Err(DockerError::ExitedDuringBoot {
                            service: service.name().to_owned(),
                            state: format!("{:?}, exit code {:?}", state.0, state.1),
                            tail: self.tail(&managed.spec.container, 20).await.join("\n"),
                        })),
                        Err(error) => Poll::Ready(Err(error)),
                    },
                }
            },
        )
        .await;
        match ready {
            Ok(done) => done.value,
            Err(timed_out) => Err(DockerError::Timeout {
                what: format!("{} to become ready", service.name()),
                waited: timed_out.waited,
                last: timed_out.last_seen,
            }),
        }
    }

    async fn probe(&self, probe: &Probe) -> Result<(), String> {
        match probe {
            Probe::Postgres(options) => {
                let connect = sqlx::PgConnection::connect_with(options);
                match tokio::time::timeout(Duration::from_secs(1), connect).await {
                    Ok(Ok(conn)) => {
                        let _ = conn.close().await;
                        Ok(())
                    }
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("connect timed out".into()),
                }
            }
            Probe::Redis(url) => {
                let client = ::redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
                let ping = async {
                    let mut conn = client.get_multiplexed_async_connection().await?;
                    ::redis::cmd("PING").query_async::<String>(&mut conn).await
                };
                match tokio::time::timeout(Duration::from_secs(1), ping).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("PING timed out".into()),
                }
            }
            Probe::Twin { chaos, health } => {
                for url in std::iter::once(chaos).chain(health) {
                    match self.http.get(url.clone()).send().await {
                        Ok(r) if r.status().is_success() => {}
                        Ok(r) => return Err(format!("{url}: {}", r.status())),
                        Err(e) => return Err(format!("{url}: {e}")),
                    }
                }
                Ok(())
            }
        }
    }

    async fn inspect_state(
        &self,
        container: &str,
    ) -> Result<(Option<ContainerStateStatusEnum>, Option<i64>, bool), DockerError> {
        container_reads::state(&self.docker, container).await
    }

    async fn tail(&self, container: &str, lines: usize) -> Vec<String> {
        let since = self.logs_since.load(Ordering::Relaxed);
        container_reads::tail(&self.docker, container, lines, since).await
    }

    /// From now on, `logs` shows only what services write after this moment.
    pub(crate) fn start_new_log_window(&self) {
        let now = chrono::Utc::now().timestamp();
        self.logs_since.store(now, Ordering::Relaxed);
    }

    /// Drops environment edits (applied or not); true if the running container has
    /// some, so it must be recreated to get back to the original environment.
    pub(crate) fn clear_env(&self, service: Service) -> bool {
        lock(&self.pending).remove(&service);
        let applied = lock(&self.applied)
            .get(&service)
            .is_some_and(|env| !env.is_empty());
        if applied {
            // An empty pending edit recreates the container with no overrides.
            lock(&self.pending).insert(service, BTreeMap::new());
            lock(&self.applied).insert(service, BTreeMap::new());
        }
        applied
    }

    async fn stop_one(&self, service: Service) -> Result<(), DockerError> {
        let spec = &self.services[&service].spec;
        let name = &spec.container;
        let _acting = own_actions::acting([name.as_str()]);
        if let Some(signal) = &spec.stop_signal {
            self.send_stop_signal(name, signal).await?;
        }
        let options = StopContainerOptions {
            t: Some(10),
            ..Default::default()
        };
        match self.docker.stop_container(name, Some(options)).await {
            Err(e) if !not_modified(&e) => Err(DockerError::Engine {
                action: format!("stopping {name}"),
                source: e,
            }),
            _ => {
                lock(&self.stopped).insert(service);
                Ok(())
            }
        }
    }

    /// `docker stop` with the spec's stop signal where the container lacks it: one
    /// created by testcontainers, which cannot set a stop signal, would get SIGTERM,
    /// which PostgreSQL takes as a smart shutdown that waits for every client to leave
    /// (then SIGKILL after the grace period). The signal goes to a running container
    /// only (a paused one would act on it when unpaused); `docker stop` follows and
    /// waits for the exit as usual.
    async fn send_stop_signal(&self, name: &str, signal: &str) -> Result<(), DockerError> {
        let inspected = self
            .docker
            .inspect_container(name, None)
            .await
            .map_err(DockerError::engine(format!("inspecting {name}")))?;
        let running = inspected
            .state
            .and_then(|state| state.status)
            .is_some_and(|status| status == ContainerStateStatusEnum::RUNNING);
        let own = inspected.config.and_then(|config| config.stop_signal);
        if !running || own.as_deref() == Some(signal) {
            return Ok(());
        }
        let options = KillContainerOptions {
            signal: signal.to_owned(),
        };
        match self.docker.kill_container(name, Some(options)).await {
            // 409: it stopped meanwhile; `docker stop` settles it.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
            other => other.map_err(DockerError::engine(format!("sending {signal} to {name}"))),
        }
    }

    /// Starts what is stopped or exited, unpauses what is paused, and recreates what
    /// runs with an edited environment: back to every service running as built.
    pub(crate) async fn ensure_running(&self, services: &[Service]) -> Result<(), DockerError> {
        let each = services.iter().map(|&service| async move {
            let env_changed = self.clear_env(service);
            let name = &self.services[&service].spec.container;
            let (status, _, _) = self.inspect_state(name).await?;
            match status {
                Some(ContainerStateStatusEnum::RUNNING) if !env_changed => Ok(()),
                Some(ContainerStateStatusEnum::PAUSED) if !env_changed => self
                    .docker
                    .unpause_container(name)
                    .await
                    .map_err(DockerError::engine(format!("unpausing {name}"))),
                _ => self.start_one(service).await,
            }
        });
        futures::future::join_all(each).await.into_iter().collect()
    }
}

#[async_trait]
impl Orchestrator for DockerOrchestrator {
    fn backend(&self) -> &'static str {
        "docker"
    }

    async fn stop(&self, services: &[Service]) -> Result<(), OrchestratorError> {
        for &service in services {
            self.managed(service)?;
        }
        let stops = services.iter().map(|&service| async move {
            self.stop_one(service)
                .await
                .map_err(failed(service, "stop"))
        });
        futures::future::join_all(stops).await.into_iter().collect()
    }

    async fn start(&self, services: &[Service]) -> Result<(), OrchestratorError> {
        for &service in services {
            self.managed(service)?;
        }
        let starts = services.iter().map(|&service| async move {
            self.start_one(service)
                .await
                .map_err(failed(service, "start"))
        });
        futures::future::join_all(starts)
            .await
            .into_iter()
            .collect()
    }

    async fn restart(&self, services: &[Service]) -> Result<(), OrchestratorError> {
        for &service in services {
            self.managed(service)?;
        }
        let restarts = services.iter().map(|&service| async move {
            // Paused containers cannot be stopped; `docker compose restart` unpauses.
            let name = &self.services[&service].spec.container;
            if let Ok((Some(ContainerStateStatusEnum::PAUSED), _, _)) =
                self.inspect_state(name).await
            {
                let _ = self.docker.unpause_container(name).await;
            }
            self.stop_one(service)
                .await
                .map_err(failed(service, "restart"))?;
            self.start_one(service)
                .await
                .map_err(failed(service, "restart"))
        });
        futures::future::join_all(restarts)
            .await
            .into_iter()
            .collect()
    }

    async fn kill(&self, service: Service) -> Result<(), OrchestratorError> {
        let name = &self.managed(service)?.spec.container;
        let _acting = own_actions::acting([name.as_str()]);
        let options = KillContainerOptions {
            signal: "SIGKILL".into(),
        };
        self.docker
            .kill_container(name, Some(options))
            .await
            .map_err(DockerError::engine(format!("killing {name}")))
            .map_err(failed(service, "kill"))?;
        lock(&self.stopped).remove(&service);
        Ok(())
    }

    async fn pause(&self, service: Service) -> Result<(), OrchestratorError> {
        let name = &self.managed(service)?.spec.container;
        let _acting = own_actions::acting([name.as_str()]);
        self.docker
            .pause_container(name)
            .await
            .map_err(DockerError::engine(format!("pausing {name}")))
            .map_err(failed(service, "pause"))
    }

    async fn unpause(&self, service: Service) -> Result<(), OrchestratorError> {
        let name = &self.managed(service)?.spec.container;
        let _acting = own_actions::acting([name.as_str()]);
        self.docker
            .unpause_container(name)
            .await
            .map_err(DockerError::engine(format!("unpausing {name}")))
            .map_err(failed(service, "unpause"))
    }

    async fn status(&self, service: Service) -> Result<ServiceStatus, OrchestratorError> {
        let name = &self.managed(service)?.spec.container;
        let state = self
            .inspect_state(name)
            .await
            .map_err(failed(service, "status"))?;
        let on_purpose = lock(&self.stopped).contains(&service);
        Ok(container_reads::status(state, on_purpose))
    }

    async fn logs(&self, service: Service, tail: usize) -> Result<Vec<String>, OrchestratorError> {
        let name = &self.managed(service)?.spec.container;
        Ok(self.tail(name, tail).await)
    }

    async fn stats(&self) -> Result<Vec<ServiceStats>, OrchestratorError> {
        let each = self.services.iter().map(|(&service, managed)| async move {
            let name = &managed.spec.container;
            match self.inspect_state(name).await {
                Ok((Some(ContainerStateStatusEnum::RUNNING), _, _)) => {}
                _ => return None,
            }
            container_reads::stats(&self.docker, service, name).await
        });
        Ok(futures::future::join_all(each)
            .await
            .into_iter()
            .flatten()
            .collect())
    }

    async fn set_env(
        &self,
        service: Service,
        vars: BTreeMap<String, String>,
    ) -> Result<(), OrchestratorError> {
        self.managed(service)?;
        let mut pending = lock(&self.pending);
        let edit = pending.entry(service).or_insert_with(|| {
            lock(&self.applied)
                .get(&service)
                .cloned()
                .unwrap_or_default()
        });
        edit.extend(vars);
        Ok(())
    }

    async fn log_config(&self, service: Service) -> Result<LogConfig, OrchestratorError> {
        let name = &self.managed(service)?.spec.container;
        container_reads::log_config(&self.docker, service, name).await
    }

    /// Removes the stack's stopped containers that are not one of its services
    /// (what a fault left behind); the services themselves are never pruned, as
    /// compose would recreate them anyway.
    async fn prune(&self) -> Result<PruneReport, OrchestratorError> {
        let containers = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                // Not `size`: the engine then measures every container's layer, which
                // takes seconds; only what is removed is measured, below.
                filters: Some(engine::label_filter(LABEL_RUN, Some(&self.run_id))),
                ..Default::default()
            }))
            .await
            .map_err(|e| OrchestratorError::Other(format!("listing containers: {e}")))?;
        let ours: BTreeSet<String> = self
            .services
            .values()
            .map(|m| format!("/{}", m.spec.container))
            .collect();
        let mut report = PruneReport::default();
        for container in containers {
            let names = container.names.unwrap_or_default();
            let running = container.state.is_some_and(|s| {
                s == bollard::models::ContainerSummaryStateEnum::RUNNING
                    || s == bollard::models::ContainerSummaryStateEnum::PAUSED
            });
            if running || names.iter().any(|n| ours.contains(n)) {
                continue;
            }
            let Some(id) = container.id else { continue };
            let size_rw = self
                .docker
                .inspect_container(
                    &id,
                    Some(bollard::query_parameters::InspectContainerOptions { size: true }),
                )
                .await
                .ok()
                .and_then(|c| c.size_rw);
            engine::remove_container(&self.docker, &id)
                .await
                .map_err(|e| OrchestratorError::Other(e.to_string()))?;
            report.reclaimed_bytes += size_rw.unwrap_or(0).max(0) as u64;
            report.removed.push(names.join(","));
        }
        Ok(report)
    }
}
