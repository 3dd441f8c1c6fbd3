//! [`DockerStack`]: a running twin whose services are containers.
//!
//! Boot, in order: connect and check the images; reap what killed runs left (their
//! containers by label, their run directories); create the stack's networks and its
//! disk volume; then at once: PostgreSQL (the local backend's cached, seeded template,
//! copied into the stack's run directory on the host and bind-mounted, see
//! [`super::pgdata`]), Redis, the provider stand-ins with their forwarders, and the
//! twin's containers, created but not started; then the seed restored at modeled now;
//! finally the twin's services, wave by wave (`Service::TWIN_START_ORDER`: the
//! workers last).
//!
//! Starting containers is the engine's slow part here (fuse-overlayfs, two cores: nine
//! at once take about a second, more than a stack's PostgreSQL needs to become ready),
//! and starts made at the same time share the engine rather than overlap: starting
//! the twin's first wave beside PostgreSQL made both slower and the boot ~0.3–0.8 s
//! longer. So PostgreSQL's path comes first, alone with Redis's start.
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
//!   `DRILL_LOG_DIR` says) and at `/backups/postgres` in PostgreSQL's: one disk, so
//!   that logs and backups fill it together, as on the host the runbook describes.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{NetworkCreateRequest, VolumeCreateRequest};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use url::Url;
use wire::{Clock, Service};

use super::engine::{
    self, DockerError, Images, LABEL_OWNER, LABEL_PROJECT, LABEL_RUN, LABEL_SCENARIO, LABEL_SERVICE,
};
use super::faults::{BACKUP_DIR, DEFAULT_DISK_SIZE, LOG_DIR};
use super::forward::{Forwarder, Isolation, Subnet};
use super::orchestrator::{DockerOrchestrator, Probe};
use super::sdk::Started;
use super::spec::{self, Init, ServiceSpec};
use crate::catalogue::Catalogue;
use crate::handles::StackHandles;
use crate::local::Binaries;
use crate::local::postgres::{APP_USER, DATABASE, SUPERUSER};
use crate::local::run_dir::{Owner, RunDir};
use crate::local::twin::{self, Wiring};
use crate::providers::{self, Provider};
use crate::stack::{Endpoints, PortMode, StackOptions};
use crate::{StackError, dirs, seed};

/// The chaos surface's port in a twin container, published on the host's loopback.
const CHAOS_PORT: u16 = 9000;

/// What the docker backend needs beyond [`StackOptions`].
#[derive(Clone, Debug, Default)]
pub struct DockerOptions {
    /// `None`: [`Images::from_env`].
    pub images: Option<Images>,
    /// Container memory limits (swap included, so exceeding one is an OOM kill).
    pub memory_limits: BTreeMap<Service, u64>,
    /// Bytes of the stack's disk volume (a tmpfs, so also memory once written);
    /// `None`: [`DEFAULT_DISK_SIZE`], 64 MiB.
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
struct Teardown {
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
    fn run_id(&self) -> &str {
        self.run_dir.run_id()
    }

    fn run_blocking(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let run_id = self.run_id().to_owned();
        let removing = run_id.clone();
        // A runtime of its own on a thread of its own: Drop may run inside a runtime
        // (where blocking on another is refused) or after a panic outside any.
        let outcome = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let docker = engine::connect().await.map_err(std::io::Error::other)?;
                engine::remove_run(&docker, &removing)
                    .await
                    .map_err(std::io::Error::other)
            })
        })
        .join();
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                eprintln!("docker stack {run_id}: teardown failed ({e}); the next start reaps it")
            }
            Err(_) => eprintln!("docker stack {run_id}: teardown panicked"),
        }
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
        let started = Instant::now();
        let mark = |phase: &str| {
            tracing::debug!(elapsed = ?started.elapsed(), "docker boot: {phase}");
        };
        let clock = Clock::starting_now(options.scale)
            .map_err(|e| StackError::InvalidOptions(e.to_string()))?;
        let bins = Binaries::locate(&options.twin_binary)?;
        let docker = engine::connect().await?;
        let images = docker_options
            .images
            .clone()
            .unwrap_or_else(Images::from_env);
        images.check(&docker).await?;
        mark("engine and images checked");
        let runtime_root = dirs::runtime_root()?;
        let reap_root = runtime_root.clone();
        // Reaping run directories waits (bounded) for killed processes: off the async threads.
        let (reaped, reaped_dirs) = tokio::join!(
            engine::reap(&docker),
            tokio::task::spawn_blocking(move || crate::local::reap_stale_runs(&reap_root, false)),
        );
        let reaped = reaped?;
        if !reaped.runs.is_empty() {
            tracing::info!(?reaped, "reaped stale docker runs");
        }
        if let Ok(dirs) = reaped_dirs
            && !dirs.runs.is_empty()
        {
            tracing::info!(runs = ?dirs.runs, "reaped stale run directories");
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_millis(500))
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| StackError::InvalidOptions(format!("building an HTTP client: {e}")))?;

        let run_id = format!("{:08x}", rand::random::<u32>());
        let project = format!("drill-{run_id}");
        // From here on, dropping `teardown` removes whatever was created.
        let teardown = Teardown {
            run_dir: Box::new(RunDir::create_with_owner(
                &runtime_root,
                Owner::this_process(&options.label, &run_id),
            )?),
            done: false,
        };
        let pg_data = teardown.run_dir.path().join("pg");
        let pg_owner = crate::local::postgres::run_as()?;
        let labels = HashMap::from([
            (LABEL_RUN.to_owned(), run_id.clone()),
            (LABEL_OWNER.to_owned(), engine::owner()),
            (LABEL_SCENARIO.to_owned(), options.label.clone()),
            (LABEL_PROJECT.to_owned(), project.clone()),
        ]);
        let network = create_network(&docker, &project, None, &labels).await?;
        let providers_network = format!("{project}-providers");
        // A name of our own for the bridge, to bind the forwarders to (at most 15 bytes).
        let providers_bridge = format!("drp-{run_id}");
        let providers_side = create_network(
            &docker,
            &providers_network,
            Some(&providers_bridge),
            &labels,
        )
        .await?;
        let disk = Disk {
            volume: format!("{project}-disk"),
            size: docker_options.disk_size.unwrap_or(DEFAULT_DISK_SIZE),
            mounts: std::iter::once((Service::Postgres, BACKUP_DIR))
                .chain(Service::TWIN.map(|service| (service, LOG_DIR)))
                .collect(),
        };
        create_disk(&docker, &disk, &labels).await?;
        let prepare = started.elapsed();
        mark("networks and disk created");

        // Provider stand-ins on loopback, reachable from the containers through
        // forwarders on a network's gateway address: the providers' network for the
        // providers the gateway calls, the stack's network for the scrapers' sites.
        let listening = providers::Listening::start().await;
        let mut forwarders = Vec::new();
        let mut provider_urls = BTreeMap::new();
        for provider in Provider::ALL {
            let url = listening.url(provider);
            let target = socket_addr(&url)?;
            let forwarder = if called_by_the_gateway(provider) {
                let isolation = Isolation {
                    device: providers_bridge.clone(),
                    subnet: providers_side.subnet,
                };
                Forwarder::start(providers_side.gateway, target, Some(isolation)).await?
            } else {
                Forwarder::start(network.gateway, target, None).await?
            };
            provider_urls.insert(provider, crate::local::boot::base_url(forwarder.addr));
            forwarders.push(forwarder);
        }

        let run_dir = &teardown.run_dir;
        let port_mode = options.ports;
        let port_for = |service: Service| match (port_mode, service.drill_port()) {
            (PortMode::Documented, Some(port)) => Ok(port),
            _ => run_dir.claim_port(),
        };
        let pg_port = port_for(Service::Postgres)?;
        let redis_port = port_for(Service::Redis)?;
        let mut listen = BTreeMap::new();
        let mut chaos_ports = BTreeMap::new();
        for service in Service::TWIN {
            if service.drill_port().is_some() {
                listen.insert(service, port_for(service)?);
            }
            chaos_ports.insert(service, run_dir.claim_port()?);
        }
        let api = |service: Service| local_url(listen[&service]);
        let endpoints = Endpoints {
            enrichment: api(Service::MetadataEnrichment),
            gateway: api(Service::ApiGatewayInternal),
            dlq: api(Service::DlqManager),
            rest_api: api(Service::RestApi),
            graph_api: api(Service::GraphApi),
            database_url: format!("postgres://{APP_USER}@127.0.0.1:{pg_port}/{DATABASE}"),
            admin_database_url: format!("postgres://{SUPERUSER}@127.0.0.1:{pg_port}/{DATABASE}"),
            redis_url: format!("redis://127.0.0.1:{redis_port}"),
            postgres_port: pg_port,
            redis_port,
        };

        let labelled = |service: Service| {
            let mut labels = labels.clone();
            labels.insert(LABEL_SERVICE.to_owned(), service.name().to_owned());
            labels
        };
        let spec_for = |service: Service, image: &str, cmd: Vec<String>| ServiceSpec {
            container: format!("{project}-{}-1", service.name()),
            image: image.to_owned(),
            init: if images.is_own(image) {
                Init::ImageTini
            } else {
                Init::Engine
            },
            cmd,
            env: BTreeMap::new(),
            binds: Vec::new(),
            ports: Vec::new(),
            stop_signal: None,
            memory_limit: docker_options.memory_limits.get(&service).copied(),
            labels: labelled(service),
            network: project.clone(),
            alias: service.name().to_owned(),
            extra_networks: Vec::new(),
        };

        let mut orchestrator =
            DockerOrchestrator::new(docker.clone(), run_id.clone(), http.clone());
        let redis_spec = ServiceSpec {
            ports: vec![(6379, redis_port)],
            ..spec_for(Service::Redis, &images.redis, spec::redis_cmd())
        };
        orchestrator.add(
            Service::Redis,
            redis_spec,
            Probe::Redis(endpoints.redis_url.clone()),
        );
        let admin_options = PgConnectOptions::new()
            .host("127.0.0.1")
            .port(pg_port)
            .username(SUPERUSER)
            .database(DATABASE)
            .application_name("runbook-drill-harness");
        let pg_spec = ServiceSpec {
            binds: vec![
                format!("{}:{}", pg_data.display(), spec::PGDATA),
                format!("{}:{BACKUP_DIR}", disk.volume),
            ],
            ports: vec![(5432, pg_port)],
            // Fast shutdown, as the official image's STOPSIGNAL.
            stop_signal: Some("SIGINT".into()),
            ..spec_for(Service::Postgres, &images.postgres, spec::postgres_cmd())
        };
        orchestrator.add(
            Service::Postgres,
            pg_spec,
            Probe::Postgres(Box::new(admin_options.clone())),
        );

        let wiring = Wiring {
            clock,
            database_url: format!("postgres://{APP_USER}@postgres:5432/{DATABASE}"),
            redis_url: "redis://redis:6379".to_owned(),
            enrichment_url: service_url(Service::MetadataEnrichment),
            gateway_url: service_url(Service::ApiGatewayInternal),
            spotify_url: provider_urls[&Provider::Spotify].clone(),
            musicbrainz_url: provider_urls[&Provider::MusicBrainz].clone(),
            lastfm_url: provider_urls[&Provider::LastFm].clone(),
            mixesdb_url: provider_urls[&Provider::MixesDb].clone(),
            tracklists1001_url: provider_urls[&Provider::Tracklists1001].clone(),
            run_id: run_id.clone(),
        };
        let twin_binary = std::fs::canonicalize(&bins.twin)
            .map_err(StackError::io(format!("resolving {}", bins.twin.display())))?;
        let (twin_image, twin_binds) = match &images.twin {
            Some(image) => (image.clone(), vec![]),
            None => (
                images.base.clone(),
                vec![format!("{}:/usr/local/bin/drill:ro", twin_binary.display())],
            ),
        };
        let mut chaos = BTreeMap::new();
        for service in Service::TWIN {
            let inside = service.drill_port();
            let slot = twin::slot(
                &bins,
                service,
                inside.map(|p| SocketAddr::from((Ipv4Addr::UNSPECIFIED, p))),
                SocketAddr::from((Ipv4Addr::UNSPECIFIED, CHAOS_PORT)),
                &wiring,
                Path::new("/dev/null"),
                Path::new("/"),
            );
            let mut env = slot.spec.env;
            // Another PID namespace: the harness's PID means nothing inside. Containers
            // are reaped by their owner label instead.
            env.remove(wire::env::PARENT_PID);
            env.insert(wire::env::LOG_DIR.to_owned(), LOG_DIR.to_owned());
            // The container's loopback cannot be published: the surface listens on the
            // container's address, published on the host's loopback only.
            env.insert(wire::env::CHAOS_IN_CONTAINER.to_owned(), "1".to_owned());
            let mut ports = vec![(CHAOS_PORT, chaos_ports[&service])];
            if let Some(inside) = inside {
                ports.push((inside, listen[&service]));
            }
            let cmd = spec::twin_cmd(service.name());
            let mut binds = twin_binds.clone();
            binds.push(format!("{}:{LOG_DIR}", disk.volume));
            let extra_networks = if service == Service::ApiGatewayInternal {
                vec![providers_network.clone()]
            } else {
                Vec::new()
            };
            let spec = ServiceSpec {
                env,
                binds,
                ports,
                extra_networks,
                ..spec_for(service, &twin_image, cmd)
            };
            let chaos_url = local_url(chaos_ports[&service]);
            chaos.insert(service, chaos_url.clone());
            orchestrator.add(
                service,
                spec,
                Probe::Twin {
                    chaos: chaos_url.join("chaos").expect("a relative path joins"),
                    health: inside
                        .map(|_| api(service).join("health").expect("a relative path joins")),
                },
            );
        }

        // Everything that needs no other part, at once: PostgreSQL (template found or
        // built, copied to the host, started), Redis, the twin's containers (created,
        // not started: they need the restored seed) and the provider stand-ins. The
        // first error ends the boot (and drops the rest).
        let cache_dir = dirs::cache_dir();
        let (seed_value, tracks) = (options.seed, options.tracks);
        let postgres = async {
            let template = crate::local::template::ensure(
                &bins,
                &cache_dir,
                &runtime_root,
                seed_value,
                tracks,
            )
            .await?;
            let (from, to) = (template.pgdata.clone(), pg_data.clone());
            tokio::task::spawn_blocking(move || super::pgdata::prepare(&from, &to, pg_owner))
                .await
                .map_err(|e| StackError::Io {
                    action: "copying the template".into(),
                    source: std::io::Error::other(e.to_string()),
                })??;
            mark("postgres data directory ready");
            let started = orchestrator
                .start_with_testcontainers(Service::Postgres, spec::POSTGRES_READY)
                .await?;
            mark("postgres ready");
            Ok::<_, DockerError>((started, template.outcome))
        };
        let redis_started = async {
            let started = orchestrator
                .start_with_testcontainers(Service::Redis, spec::REDIS_READY)
                .await;
            mark("redis ready");
            started
        };
        let twins_created = async {
            first_error(
                futures::future::join_all(
                    Service::TWIN.map(|service| orchestrator.create(service)),
                )
                .await,
            )?;
            mark("twin containers created");
            Ok::<_, DockerError>(())
        };
        let providers = async {
            let catalogue = tokio::task::spawn_blocking(move || {
                Catalogue::shared(seed_value, Catalogue::len_for(tracks))
            })
            .await
            .map_err(|e| StackError::Io {
                action: "generating the catalogue".into(),
                source: std::io::Error::other(e.to_string()),
            })?;
            Ok::<_, DockerError>(listening.mount(catalogue).await)
        };
        let ((pg_started, template_outcome), redis_started, (), providers) =
            tokio::try_join!(postgres, redis_started, twins_created, providers)?;
        let orchestrator = Arc::new(orchestrator);
        let postgres_ready = started.elapsed();
        mark("postgres, redis and providers ready");
        let admin = PgPoolOptions::new()
            .max_connections(2)
            .min_connections(0)
            .idle_timeout(Duration::from_secs(60))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(admin_options)
            .await
            .map_err(StackError::db("connecting to musicdb as postgres"))?;
        let restore_started = Instant::now();
        seed::snapshot::restore(&admin, clock.now()).await?;
        let seed_restore = restore_started.elapsed();
        mark("seed restored");

        let twin_started = Instant::now();
        for wave in Service::TWIN_START_ORDER {
            let started = futures::future::join_all(
                wave.iter().map(|&service| orchestrator.start_one(service)),
            )
            .await;
            first_error(started)?;
            mark("a wave of the twin ready");
        }
        let twin_ready = twin_started.elapsed();
        orchestrator.start_new_log_window();

        let redis = ::redis::Client::open(endpoints.redis_url.as_str())
            .map_err(StackError::redis("opening a Redis client"))?;
        Ok(DockerStack {
            handles: StackHandles {
                endpoints,
                clock,
                providers,
                admin,
                redis,
                http,
                chaos,
            },
            orchestrator,
            network: project,
            providers_network,
            disk,
            boot: DockerBootReport {
                prepare,
                postgres_ready,
                seed_restore,
                twin_ready,
                total: started.elapsed(),
                template: template_outcome,
            },
            _forwarders: forwarders,
            _started: [pg_started, redis_started],
            teardown,
        })
    }

    pub(crate) fn handles(&self) -> &StackHandles {
        &self.handles
    }

    /// The orchestrator with its docker-only extras (container names, run id).
    pub fn orchestrator(&self) -> &Arc<DockerOrchestrator> {
        &self.orchestrator
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
        let run_id = self.teardown.run_id().to_owned();
        self.teardown.done = true;
        let removed = engine::remove_run(self.orchestrator.docker(), &run_id).await;
        self.teardown.run_dir.remove();
        removed
    }
}

/// The most telling error of several: a service that exited beats a timeout, which
/// is often its consequence.
fn first_error(results: Vec<Result<(), DockerError>>) -> Result<(), DockerError> {
    let mut errors: Vec<DockerError> = results.into_iter().filter_map(Result::err).collect();
    if errors.is_empty() {
        return Ok(());
    }
    let exited = errors
        .iter()
        .position(|e| matches!(e, DockerError::ExitedDuringBoot { .. }))
        .unwrap_or(0);
    Err(errors.swap_remove(exited))
}

/// The host's side of a network.
struct HostSide {
    /// The network's gateway: the host's address on it.
    gateway: IpAddr,
    subnet: Subnet,
}

/// A bridge network labelled like the stack (on a bridge named `bridge`, if given).
/// Ports published without an address would bind loopback only.
async fn create_network(
    docker: &Docker,
    name: &str,
    bridge: Option<&str>,
    labels: &HashMap<String, String>,
) -> Result<HostSide, DockerError> {
    let mut options = HashMap::from([(
        "com.docker.network.bridge.host_binding_ipv4".to_owned(),
        "127.0.0.1".to_owned(),
    )]);
    if let Some(bridge) = bridge {
        options.insert(
            "com.docker.network.bridge.name".to_owned(),
            bridge.to_owned(),
        );
    }
    docker
        .create_network(NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some("bridge".into()),
            labels: Some(labels.clone()),
            options: Some(options),
            ..Default::default()
        })
        .await
        .map_err(DockerError::engine(format!("creating network {name}")))?;
    let network = docker
        .inspect_network(name, None)
        .await
        .map_err(DockerError::engine(format!("inspecting network {name}")))?;
    network
        .ipam
        .and_then(|ipam| ipam.config)
        .into_iter()
        .flatten()
        .find_map(|config| {
            Some(HostSide {
                gateway: config.gateway?.parse::<Ipv4Addr>().ok()?.into(),
                subnet: Subnet::parse(&config.subnet?)?,
            })
        })
        .ok_or_else(|| {
            StackError::InvalidOptions(format!("network {name} has no IPv4 gateway and subnet"))
                .into()
        })
}

/// The stack's disk: a `local` volume on a tmpfs of `disk.size` bytes, labelled like
/// the stack so that teardown and reaping remove it.
async fn create_disk(
    docker: &Docker,
    disk: &Disk,
    labels: &HashMap<String, String>,
) -> Result<(), DockerError> {
    docker
        .create_volume(VolumeCreateRequest {
            name: Some(disk.volume.clone()),
            driver: Some("local".into()),
            driver_opts: Some(HashMap::from([
                ("type".to_owned(), "tmpfs".to_owned()),
                ("device".to_owned(), "tmpfs".to_owned()),
                ("o".to_owned(), format!("size={}", disk.size)),
            ])),
            labels: Some(labels.clone()),
            ..Default::default()
        })
        .await
        .map_err(DockerError::engine(format!(
            "creating volume {}",
            disk.volume
        )))?;
    Ok(())
}

/// Whether api-gateway-internal calls `provider` (the scrapers call their own sites).
fn called_by_the_gateway(provider: Provider) -> bool {
    matches!(
        provider,
        Provider::Spotify | Provider::MusicBrainz | Provider::LastFm
    )
}

fn local_url(port: u16) -> Url {
    crate::local::boot::base_url(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
}

/// How the twin's services reach each other: by service name on the stack's network.
fn service_url(service: Service) -> Url {
    let port = service.drill_port().expect("an API service has a port");
    Url::parse(&format!("http://{}:{port}/", service.name())).expect("a service name makes a URL")
}

fn socket_addr(url: &Url) -> Result<SocketAddr, StackError> {
    url.socket_addrs(|| None)
        .ok()
        .and_then(|addrs| addrs.into_iter().next())
        .ok_or_else(|| StackError::InvalidOptions(format!("{url} has no socket address")))
}
