//! [`DockerStack`]: a running twin whose services are containers.
//!
//! Booting is `super::boot`'s: the order, and why it is that order, are there.
//!
//! Who starts what: **testcontainers** starts PostgreSQL and Redis, ready when each
//! logs its own ready line (then its probe answers on the published port), and
//! **bollard** runs the twin's services, ready when their probes answer; no sleeps.
//! Both build the container from one `ServiceSpec` (see `super::sdk`), so the
//! names (`<project>-<service>-1`), labels, network and alias, ports on 127.0.0.1,
//! mounts and limits are the same either way, and the orchestrator manages all
//! eleven by name afterwards (it recreates any of them with bollard when its
//! environment was edited). testcontainers gives the readiness-by-log-line the
//! databases need; the twin needs what it cannot do on this engine (a second network
//! joined between create and start, creating first and starting once the seed is in).
//!
//! Removal has one owner: the stack's `Teardown`, which removes every container,
//! network and volume labelled with the run id (`engine::remove_run`). The
//! testcontainers handles are kept in the stack but never remove anything (see
//! `super::sdk::Started`). Any boot error drops what was started. Dropping the stack
//! removes its containers, networks and volumes, also after a panic (the removal runs
//! on a thread of its own, so it works inside or outside a runtime).
//!
//! Resources of a stack with run id `<run>` (all labelled with it):
//! - network `drill-<run>`: every container, by service name;
//! - network `drill-<run>-providers` (bridge `drp-<run>`): only api-gateway-internal
//!   joins it, and the forwarders to Spotify, MusicBrainz and Last.fm listen on its
//!   gateway address only, so the gateway reaches the providers through it alone and
//!   disconnecting the gateway from it cuts that link (see [`super::faults`]). The
//!   scrapers' source sites are forwarded on `drill-<run>`;
//! - volume `drill-<run>-disk`: a size-limited tmpfs ([`DockerOptions::disk_size`]),
//!   the stack's disk. Its root is mounted at `/var/log/songnodes` in every twin
//!   container (each service appends its log to `<service>.log` there, as
//!   `DRILL_LOG_DIR` says) and at `/backups` in PostgreSQL's (its backups are in
//!   `/backups/postgres`): one disk, so that logs and backups fill it together, as on
//!   the host the runbook describes (layout: [`crate::disk`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use wire::Service;

use super::engine::{self, DockerError, Images};
use super::forward::Forwarder;
use super::orchestrator::DockerOrchestrator;
use super::sdk::Started;
use crate::StackError;
use crate::handles::StackHandles;
use crate::local::run_dir::RunDir;
use crate::stack::StackOptions;
use crate::turn::Turn;

/// What the docker backend needs beyond [`StackOptions`].
#[derive(Clone, Debug, Default)]
pub struct DockerOptions {
    /// `None`: [`Images::from_env`].
    pub images: Option<Images>,
    /// Container memory limits (swap included, so exceeding one is an OOM kill).
    pub memory_limits: BTreeMap<Service, u64>,
    /// Bytes of the stack's disk volume (a tmpfs, so also memory once written);
    /// `None`: [`crate::disk::DEFAULT_DISK_SIZE`], 256 MiB.
    pub disk_size: Option<u64>,
}

/// How long each phase of a docker boot took.
#[derive(Clone, Copy, Debug)]
pub struct DockerBootReport {
    /// Engine, images, reaping, network.
    pub prepare: Duration,
    /// From the start of the boot until PostgreSQL accepted connections (and Redis and
    /// the provider stand-ins were ready).
    pub postgres_ready: Duration,
    pub seed_restore: Duration,
    /// Starting every twin container (created earlier, beside PostgreSQL), wave by wave,
    /// until all were ready.
    pub twin_ready: Duration,
    pub total: Duration,
    pub template: crate::local::TemplateOutcome,
}

/// A running twin on docker. Dropping it removes every container, network and volume
/// it created.
pub struct DockerStack {
    handles: StackHandles,
    orchestrator: Arc<DockerOrchestrator>,
    network: String,
    pub(super) providers_network: String,
    pub(super) disk: Disk,
    boot: DockerBootReport,
    _forwarders: Vec<Forwarder>,
    /// PostgreSQL's and Redis's testcontainers handles, kept with the stack. They never
    /// remove their containers: `teardown` does, with everything else of the run.
    _started: [Started; 2],
    teardown: Teardown,
    /// The stack's memory cgroup its containers are below, or why there is none.
    memory: Result<crate::memory::MemoryCgroup, String>,
    /// When the boot began: the engine's events of the run are read from here.
    started: std::time::SystemTime,
    /// The stack as a compose project (`docker-compose ps`, `logs`, `restart`, …).
    compose: super::compose_project::ComposeProject,
    /// Released once the teardown above has removed everything.
    _turn: Option<Turn>,
}

/// The stack's disk volume.
#[derive(Clone, Debug)]
pub(super) struct Disk {
    pub volume: String,
    pub size: u64,
    /// Where each container that mounts it sees its root, PostgreSQL's first.
    pub mounts: Vec<(Service, &'static str)>,
}

/// Removes a run's resources when dropped: its containers, networks and volumes, then
/// its run directory.
pub(super) struct Teardown {
    /// `<runtime root>/runs/<run id>/`, owned by this process: PostgreSQL's data
    /// directory (`pg/`, see [`super::pgdata`]) and, through it, the host ports
    /// claimed for the published ports (claimed below the ephemeral range, so that
    /// neither another stack nor an outgoing connection's source port takes one
    /// between its choice and the start of the container that publishes it). A killed
    /// run's directory is reaped like a local one's. Boxed, as it is seldom touched
    /// and `Stack`'s variants stay alike in size.
    run_dir: Box<RunDir>,
    done: bool,
}

impl Teardown {
    pub(super) fn new(run_dir: RunDir) -> Self {
        Self {
            run_dir: Box::new(run_dir),
            done: false,
        }
    }

    pub(super) fn run_dir(&self) -> &RunDir {
        &self.run_dir
    }

    fn run_id(&self) -> &str {
        self.run_dir.run_id()
    }

    /// Removes the run's containers, networks and volumes, then its directory; once.
    async fn remove(&mut self, docker: &Docker) -> Result<(), DockerError> {
        if std::mem::replace(&mut self.done, true) {
            return Ok(());
        }
        let removed = engine::remove_run(docker, self.run_dir.run_id()).await;
        self.run_dir.remove();
        removed
    }

    /// [`Self::remove`] from synchronous code (`Drop`), saying what failed.
    fn run_blocking(&mut self) {
        if self.done {
            return;
        }
        let run_id = self.run_id().to_owned();
        // A runtime of its own on a thread of its own: Drop may run inside a runtime
        // (where blocking on another is refused) or after a panic outside any.
        let outcome = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    runtime.block_on(async {
                        let docker = engine::connect().await.map_err(std::io::Error::other)?;
                        self.remove(&docker).await.map_err(std::io::Error::other)
                    })
                })
                .join()
        });
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                eprintln!("docker stack {run_id}: teardown failed ({e}); the next start reaps it")
            }
            Err(_) => eprintln!("docker stack {run_id}: teardown panicked"),
        }
        // Without an engine the containers wait for the next start's reaping; the run
        // directory goes now all the same.
        self.done = true;
        self.run_dir.remove();
    }
}

impl Drop for Teardown {
    fn drop(&mut self) {
        self.run_blocking();
    }
}

impl DockerStack {
    /// Boots a stack with the images from the environment and no memory limits.
    pub async fn start(options: StackOptions) -> Result<DockerStack, DockerError> {
        Self::start_with(options, DockerOptions::default()).await
    }

    pub async fn start_with(
        options: StackOptions,
        docker_options: DockerOptions,
    ) -> Result<DockerStack, DockerError> {
        let mut options = options;
        options.turn = options.turn.on_docker();
        let turn = Turn::for_options(&options).await?;
        let started = std::time::SystemTime::now();
        let booted = super::boot::boot(options, docker_options).await?;
        Ok(DockerStack {
            handles: booted.handles,
            orchestrator: booted.orchestrator,
            network: booted.resources.network,
            providers_network: booted.resources.providers_network,
            disk: booted.resources.disk,
            boot: booted.report,
            _forwarders: booted.forwarders,
            _started: booted.started,
            teardown: booted.teardown,
            memory: booted.memory,
            started,
            compose: booted.compose,
            _turn: turn,
        })
    }

    pub(crate) fn handles(&self) -> &StackHandles {
        &self.handles
    }

    /// The orchestrator with its docker-only extras (container names, run id).
    pub fn orchestrator(&self) -> &Arc<DockerOrchestrator> {
        &self.orchestrator
    }

    /// The stack's memory cgroup, or why it has none (see [`crate::memory`]).
    pub fn memory(&self) -> Result<&crate::memory::MemoryCgroup, &str> {
        self.memory.as_ref().map_err(String::as_str)
    }

    /// The stack as a compose project: its file, name, and whether compose hashed it.
    pub fn compose_project(&self) -> &super::compose_project::ComposeProject {
        &self.compose
    }

    /// When the stack's boot began.
    pub fn started(&self) -> std::time::SystemTime {
        self.started
    }

    /// The run id every container, network and volume of this stack is labelled with.
    pub fn run_id(&self) -> &str {
        self.teardown.run_id()
    }

    /// The stack's docker network (`drill-<run id>`), also its compose project name.
    pub fn network(&self) -> &str {
        &self.network
    }

    /// The network only api-gateway-internal joins, through which it reaches the
    /// providers (`drill-<run id>-providers`).
    pub fn providers_network(&self) -> &str {
        &self.providers_network
    }

    /// The stack's disk: a tmpfs volume (`drill-<run id>-disk`) and its size in bytes.
    pub fn disk_volume(&self) -> (&str, u64) {
        (&self.disk.volume, self.disk.size)
    }

    pub fn boot_report(&self) -> &DockerBootReport {
        &self.boot
    }

    /// The engine client the stack uses.
    pub fn docker(&self) -> &Docker {
        self.orchestrator.docker()
    }

    /// Back to the seeded state, as [`crate::Stack::reset`]: every service running with
    /// its original environment, seeded rows at modeled now, Redis empty, provider
    /// baselines only, chaos switches reset, container faults healed (the gateway on
    /// the providers' network, the disk without filler); `logs` starts a new window.
    pub async fn reset(&self) -> Result<(), DockerError> {
        self.orchestrator
            .ensure_running(&[Service::Postgres, Service::Redis])
            .await?;
        self.orchestrator.start_new_log_window();
        self.handles.restore_data().await?;
        for wave in Service::TWIN_START_ORDER {
            self.orchestrator.ensure_running(wave).await?;
        }
        self.handles.reset_chaos().await?;
        self.heal_container_faults().await?;
        Ok(())
    }

    /// Leaves the containers, network and volumes up (see [`crate::keep`]) and says
    /// how to reach them and how to remove them.
    pub fn keep(mut self) -> Result<String, DockerError> {
        let run_id = self.teardown.run_id().to_owned();
        let ep = &self.handles.endpoints;
        let description = format!(
            "kept docker stack {run_id} (network {network}):\n  \
             containers  docker ps --filter label={label}={run_id}\n  \
             logs        docker logs {project}-<service>-1\n  \
             postgres    psql -h localhost -p {pg} -U musicdb_user -d musicdb\n  \
             redis       redis-cli -p {redis}\n  \
             services    enrichment {enrichment}, gateway {gateway}, dlq {dlq}\n  \
             the provider stand-ins end with this process; provider calls fail after it.\n  \
             remove it with: drill reap --kept",
            network = self.network,
            label = engine::LABEL_RUN,
            project = self.network,
            pg = ep.postgres_port,
            redis = ep.redis_port,
            enrichment = ep.enrichment,
            gateway = ep.gateway,
            dlq = ep.dlq,
        );
        crate::keep::mark_docker_run_kept(&run_id, &description)?;
        // Its run directory holds PostgreSQL's data: the reaping of later starts skips it.
        let marker = self.teardown.run_dir.path().join(crate::keep::KEPT_MARKER);
        std::fs::write(&marker, b"")
            .map_err(StackError::io(format!("writing {}", marker.display())))?;
        self.teardown.done = true;
        Ok(description)
    }

    /// Removes every container, network and volume of the stack. `Drop` does the same.
    pub async fn shutdown(mut self) -> Result<(), DockerError> {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.handles.admin.close()).await;
        let docker = self.orchestrator.docker().clone();
        self.teardown.remove(&docker).await
    }
}
