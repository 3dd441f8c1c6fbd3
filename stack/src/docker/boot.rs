//! Booting a [`DockerStack`](super::DockerStack), from the engine check to every
//! service ready.
//!
//! In order: connect and check the images; reap what killed runs left (their
//! containers by label, their run directories); create the stack's networks and its
//! disk volume ([`Resources`]); start the provider stand-ins and their forwarders;
//! claim the host ports ([`HostPorts`]) and describe every container
//! ([`ContainerSpecs`]); then at once: PostgreSQL (the local backend's cached, seeded
//! template, copied into the stack's run directory on the host and bind-mounted, see
//! [`super::pgdata`]), Redis, the provider stand-ins' catalogue, and the twin's
//! containers, created but not started; then the seed restored at modeled now;
//! finally the twin's services, wave by wave (`Service::TWIN_START_ORDER`: the
//! workers last).
//!
//! Starting containers is the engine's slow part here (fuse-overlayfs, two cores: nine
//! at once take about a second, more than a stack's PostgreSQL needs to become ready),
//! and starts made at the same time share the engine rather than overlap: starting
//! the twin's first wave beside PostgreSQL made both slower and the boot ~0.3–0.8 s
//! longer. So PostgreSQL's path comes first, alone with Redis's start.
//!
//! Any error drops the [`Teardown`] made at the start, which removes whatever was
//! created.

use crate::memory::{DEFAULT_MEMORY_BUDGET, MemoryCgroup};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{NetworkCreateRequest, VolumeCreateRequest};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use url::Url;
use wire::{Clock, Service};

use super::compose_project::{self, ComposeProject};
use super::engine::{
    self, DockerError, Images, LABEL_OWNER, LABEL_PROJECT, LABEL_RUN, LABEL_SCENARIO, LABEL_SERVICE,
};
use super::faults::{BACKUP_MOUNT, DEFAULT_DISK_SIZE, LOG_DIR};
use super::forward::{Forwarder, Isolation, Subnet};
use super::orchestrator::{DockerOrchestrator, Probe};
use super::sdk::Started;
use super::spec::{self, Init, ServiceSpec};
use super::stack::{Disk, DockerBootReport, DockerOptions, Teardown};
use crate::catalogue::Catalogue;
use crate::error::{most_telling, task_failed};
use crate::handles::StackHandles;
use crate::local::postgres::{APP_USER, DATABASE, SUPERUSER};
use crate::local::run_dir::{Owner, RunDir};
use crate::local::twin::{self, Wiring};
use crate::local::{Binaries, TemplateOutcome};
use crate::pg_clock::PgClock;
use crate::providers::{Listening, Providers, StandIn};
use crate::stack::{PortMode, StackOptions};
use crate::{StackError, dirs, seed};
use wire::Endpoints;
use wire::api::{Provider, SourceSite};

/// The chaos surface's port in a twin container, published on the host's loopback.
const CHAOS_PORT: u16 = 9000;

/// A booted stack's parts, for [`super::DockerStack`] to hold.
pub(super) struct Booted {
    pub handles: StackHandles,
    pub orchestrator: Arc<DockerOrchestrator>,
    pub resources: Resources,
    pub report: DockerBootReport,
    pub forwarders: Vec<Forwarder>,
    /// PostgreSQL's and Redis's testcontainers handles (they never remove anything).
    pub started: [Started; 2],
    pub teardown: Teardown,
    /// The stack's memory cgroup, or why it has none.
    pub memory: Result<MemoryCgroup, String>,
    pub compose: ComposeProject,
}

pub(super) async fn boot(
    options: StackOptions,
    docker_options: DockerOptions,
) -> Result<Booted, DockerError> {
    let phases = Phases::start();
    let clock = Clock::starting_now(options.scale)
        .map_err(|e| StackError::InvalidOptions(e.to_string()))?;
    let bins = Binaries::locate(&options.twin_binary)?;
    let docker = engine::connect().await?;
    let images = docker_options
        .images
        .clone()
        .unwrap_or_else(Images::from_env);
    images.check(&docker).await?;
    phases.mark("engine and images checked");
    let runtime_root = dirs::runtime_root()?;
    // Another run's leftovers must not stop this stack: one still being torn down
    // (its network has endpoints for a moment longer) is the next boot's, or `drill
    // reap`'s, to remove.
    if let Err(error) = reap_leftovers(&docker, &runtime_root).await {
        tracing::warn!("leftovers of earlier runs not reaped this time: {error}");
    }
    let http = crate::handles::http_client()?;

    let run_id = format!("{:08x}", rand::random::<u32>());
    // From here on, dropping `teardown` removes whatever was created.
    let teardown = Teardown::new(RunDir::create_with_owner(
        &runtime_root,
        Owner::this_process(&options.label, &run_id),
    )?);
    // A docker run's directory: reaped only once its containers are (see `ReapScope`).
    let marker = teardown
        .run_dir()
        .path()
        .join(crate::local::run_dir::DOCKER_MARKER);
    std::fs::write(&marker, b"")
        .map_err(StackError::io(format!("writing {}", marker.display())))?;
    let pg_data = teardown.run_dir().path().join("pg");
    let pg_owner = crate::local::postgres::run_as()?;
    let project = format!("drill-{run_id}");
    let labels = HashMap::from([
        (LABEL_RUN.to_owned(), run_id.clone()),
        (LABEL_OWNER.to_owned(), engine::owner()),
        (LABEL_SCENARIO.to_owned(), options.label.clone()),
        (LABEL_PROJECT.to_owned(), project.clone()),
    ])
    .into_iter()
    .chain(compose_project::compose_labels())
    .collect::<HashMap<_, _>>();
    let disk_size = docker_options.disk_size.unwrap_or(DEFAULT_DISK_SIZE);
    let resources = Resources::create(&docker, &project, &run_id, &labels, disk_size).await?;
    let memory = engine::memory_cgroup(&docker, &run_id, DEFAULT_MEMORY_BUDGET).await;
    if let Err(reason) = &memory {
        tracing::debug!(reason, "the docker stack's memory is not limited");
    }
    let prepare = phases.elapsed();
    phases.mark("networks and disk created");

    let listening = Listening::start().await;
    let (forwarders, provider_urls) = forward_providers(&listening, &resources).await?;
    let ports = HostPorts::claim(teardown.run_dir(), options.ports)?;
    let endpoints = ports.endpoints(&listening);
    let specs = ContainerSpecs {
        project: &project,
        labels: &labels,
        images: &images,
        memory_limits: &docker_options.memory_limits,
        cgroup_parent: memory.as_ref().ok().map(MemoryCgroup::docker_parent),
    };
    let mut orchestrator = DockerOrchestrator::new(docker.clone(), run_id.clone(), http.clone());
    orchestrator.add(
        Service::Redis,
        specs.redis(ports.redis),
        Probe::Redis(endpoints.redis_url.clone()),
    );
    let admin_options = PgConnectOptions::new()
        .host("127.0.0.1")
        .port(ports.postgres)
        .username(SUPERUSER)
        .database(DATABASE)
        .application_name("runbook-drill-harness");
    let pg_clock = faked_clock(clock, teardown.run_dir().path())?;
    orchestrator.add(
        Service::Postgres,
        specs.postgres(
            &pg_data,
            &resources.disk,
            ports.postgres,
            pg_clock.as_ref().map(|(c, dir)| (c, dir.as_path())),
            clock.scale(),
        ),
        Probe::Postgres(Box::new(admin_options.clone())),
    );
    if let Some((pg_clock, _)) = &pg_clock {
        orchestrator.run_on_faked_clock(Service::Postgres, pg_clock.clone());
    }
    let wiring = Wiring {
        clock,
        database_url: format!("postgres://{APP_USER}@postgres:5432/{DATABASE}"),
        redis_url: "redis://redis:6379".to_owned(),
        enrichment_url: service_url(Service::MetadataEnrichment),
        gateway_url: service_url(Service::ApiGatewayInternal),
        spotify_url: provider_urls[&Provider::Spotify.into()].clone(),
        musicbrainz_url: provider_urls[&Provider::Musicbrainz.into()].clone(),
        lastfm_url: provider_urls[&Provider::Lastfm.into()].clone(),
        mixesdb_url: provider_urls[&SourceSite::Mixesdb.into()].clone(),
        tracklists1001_url: provider_urls[&SourceSite::Tracklists1001.into()].clone(),
        run_id: run_id.clone(),
        log_dir: LOG_DIR.into(),
    };
    let twin_image = TwinImage::choose(&bins, &images)?;
    for service in Service::TWIN {
        let (spec, probe) = specs.twin(service, &bins, &wiring, &twin_image, &resources, &ports);
        orchestrator.add(service, spec, probe);
    }

    let compose = compose_project::prepare(
        &mut orchestrator,
        teardown.run_dir().path(),
        &project,
        options.compose_hashes,
    )
    .await?;
    phases.mark("compose project written");

    // Everything that needs no other part, at once: PostgreSQL, Redis, the twin's
    // containers (created, not started: they need the restored seed) and the provider
    // stand-ins' catalogue. The first error ends the boot (and drops the rest).
    let data = PostgresData {
        bins: &bins,
        runtime_root: &runtime_root,
        seed: options.seed,
        tracks: options.tracks,
        target: pg_data,
        owner: pg_owner,
    };
    let ((pg_started, template), redis_started, (), providers) = tokio::try_join!(
        start_postgres(&orchestrator, &data, &phases),
        start_redis(&orchestrator, &phases),
        create_twin(&orchestrator, &phases),
        mount_providers(listening, options.seed, options.tracks),
    )?;
    let orchestrator = Arc::new(orchestrator);
    let postgres_ready = phases.elapsed();

    let (admin, seed_restore) = restore_seed(
        admin_options,
        clock,
        pg_clock.as_ref().map(|(c, _)| c),
        &phases,
    )
    .await?;
    let twin_started = Instant::now();
    start_twin(&orchestrator, &phases).await?;
    let twin_ready = twin_started.elapsed();
    orchestrator.start_new_log_window();

    let redis = ::redis::Client::open(endpoints.redis_url.as_str())
        .map_err(StackError::redis("opening a Redis client"))?;
    let chaos = Service::TWIN
        .into_iter()
        .map(|service| (service, local_url(ports.chaos[&service])))
        .collect();
    Ok(Booted {
        handles: StackHandles {
            traffic: crate::handles::traffic(&endpoints, clock, &options)?,
            endpoints,
            clock,
            providers,
            admin,
            redis,
            http,
            chaos,
        },
        orchestrator,
        resources,
        report: DockerBootReport {
            prepare,
            postgres_ready,
            seed_restore,
            twin_ready,
            total: phases.elapsed(),
            template,
        },
        forwarders,
        started: [pg_started, redis_started],
        teardown,
        memory,
        compose,
    })
}

/// Removes what killed runs left: their containers, networks and volumes (by owner
/// label), then their run directories (by owner record), docker runs' included: their
/// PostgreSQL, which writes in there, is gone by then.
async fn reap_leftovers(docker: &Docker, runtime_root: &Path) -> Result<(), DockerError> {
    let reaped = engine::reap(docker).await?;
    if !reaped.runs.is_empty() {
        tracing::info!(?reaped, "reaped stale docker runs");
    }
    let root = runtime_root.to_owned();
    let scope = crate::local::ReapScope {
        kept: false,
        docker: true,
    };
    // Reaping run directories waits (bounded) for killed processes: off the async threads.
    let dirs = tokio::task::spawn_blocking(move || crate::local::reap_stale_runs(&root, scope))
        .await
        .map_err(|e| task_failed("reaping stale run directories", e))?;
    if !dirs.runs.is_empty() {
        tracing::info!(runs = ?dirs.runs, "reaped stale run directories");
    }
    Ok(())
}

/// The boot's elapsed time, logged at each phase (`RUST_LOG=harness=debug`).
struct Phases {
    started: Instant,
}

impl Phases {
    fn start() -> Self {
        Self {
            started: Instant::now(),
        }
    }

    fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn mark(&self, phase: &str) {
        tracing::debug!(elapsed = ?self.elapsed(), "docker boot: {phase}");
    }
}

/// Where PostgreSQL's data comes from and goes to.
struct PostgresData<'a> {
    bins: &'a Binaries,
    runtime_root: &'a Path,
    seed: u64,
    tracks: usize,
    /// The stack's copy on the host (`<run dir>/pg`), mounted into the container.
    target: PathBuf,
    /// Its owner, whom the container's server runs as (see `super::pgdata`).
    owner: Option<(u32, u32)>,
}

/// The template found (or built), copied to the host, and PostgreSQL started on it.
async fn start_postgres(
    orchestrator: &DockerOrchestrator,
    data: &PostgresData<'_>,
    phases: &Phases,
) -> Result<(Started, TemplateOutcome), DockerError> {
    let template = crate::local::template::ensure(
        data.bins,
        &dirs::cache_dir(),
        data.runtime_root,
        data.seed,
        data.tracks,
    )
    .await?;
    let (from, to, owner) = (template.pgdata.clone(), data.target.clone(), data.owner);
    tokio::task::spawn_blocking(move || super::pgdata::prepare(&from, &to, owner))
        .await
        .map_err(|e| task_failed("copying the template", e))??;
    phases.mark("postgres data directory ready");
    let started = orchestrator
        .start_with_testcontainers(Service::Postgres, spec::POSTGRES_READY)
        .await?;
    phases.mark("postgres ready");
    Ok((started, template.outcome))
}

async fn start_redis(
    orchestrator: &DockerOrchestrator,
    phases: &Phases,
) -> Result<Started, DockerError> {
    let started = orchestrator
        .start_with_testcontainers(Service::Redis, spec::REDIS_READY)
        .await?;
    phases.mark("redis ready");
    Ok(started)
}

/// The twin's containers, created and not started.
async fn create_twin(
    orchestrator: &DockerOrchestrator,
    phases: &Phases,
) -> Result<(), DockerError> {
    most_telling(
        futures::future::join_all(Service::TWIN.map(|service| orchestrator.create(service))).await,
    )?;
    phases.mark("twin containers created");
    Ok(())
}

/// PostgreSQL's clock for a docker stack, with the host directory its container
/// mounts at [`spec::CLOCK_DIR`]: the spec, and a copy of the host's libfaketime (so
/// that images without it, such as the official `postgres`, run on the clock too).
fn faked_clock(clock: Clock, run_dir: &Path) -> Result<Option<(PgClock, PathBuf)>, StackError> {
    let dir = run_dir.join("clock");
    let Some(host) = PgClock::new(clock, &dir)? else {
        return Ok(None);
    };
    std::fs::create_dir_all(&dir).map_err(StackError::io(format!("creating {}", dir.display())))?;
    let library = dir.join(host.library().file_name().unwrap_or_default());
    std::fs::copy(host.library(), &library).map_err(StackError::io(format!(
        "copying {} into the stack",
        host.library().display()
    )))?;
    // The server runs as the data directory's owner, not as us.
    use std::os::unix::fs::PermissionsExt;
    for path in [&dir, &library] {
        let mode = if path.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(
            StackError::io(format!("opening {} to the server", path.display())),
        )?;
    }
    Ok(Some((host.with_library(library), dir)))
}

/// The seed restored at modeled now, through the superuser pool the stack keeps.
async fn restore_seed(
    admin_options: PgConnectOptions,
    clock: Clock,
    pg_clock: Option<&PgClock>,
    phases: &Phases,
) -> Result<(PgPool, Duration), DockerError> {
    let admin = PgPoolOptions::new()
        .max_connections(2)
        .min_connections(0)
        .idle_timeout(Duration::from_secs(60))
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(admin_options)
        .await
        .map_err(StackError::db("connecting to musicdb as postgres"))?;
    if let Some(pg_clock) = pg_clock {
        let skew = pg_clock.align(&admin).await?;
        phases.mark(&format!("postgres clock aligned ({skew:+.2} s modeled)"));
    }
    let restore_started = Instant::now();
    seed::snapshot::restore(&admin, clock.now()).await?;
    phases.mark("seed restored");
    Ok((admin, restore_started.elapsed()))
}

/// The twin's services started, wave by wave (`Service::TWIN_START_ORDER`), each ready.
async fn start_twin(orchestrator: &DockerOrchestrator, phases: &Phases) -> Result<(), DockerError> {
    for wave in Service::TWIN_START_ORDER {
        most_telling(
            futures::future::join_all(wave.iter().map(|&service| orchestrator.start_one(service)))
                .await,
        )?;
        phases.mark("a wave of the twin ready");
    }
    Ok(())
}

/// A stack's networks and disk (see `super::stack` for what each is for).
pub(super) struct Resources {
    /// `drill-<run>`: every container, by service name; also the compose project name.
    pub network: String,
    pub network_side: HostSide,
    /// `drill-<run>-providers`, on bridge `drp-<run>`: only api-gateway-internal joins.
    pub providers_network: String,
    pub providers_bridge: String,
    pub providers_side: HostSide,
    pub disk: Disk,
}

impl Resources {
    /// Creates both networks and the disk volume at once, labelled like the stack.
    async fn create(
        docker: &Docker,
        project: &str,
        run_id: &str,
        labels: &HashMap<String, String>,
        disk_size: u64,
    ) -> Result<Self, DockerError> {
        let providers_network = format!("{project}-providers");
        // A name of our own for the bridge, to bind the forwarders to (at most 15 bytes).
        let providers_bridge = format!("drp-{run_id}");
        let disk = Disk {
            volume: format!("{project}-disk"),
            size: disk_size,
            mounts: std::iter::once((Service::Postgres, BACKUP_MOUNT))
                .chain(Service::TWIN.map(|service| (service, LOG_DIR)))
                .collect(),
        };
        let (network_side, providers_side, ()) = tokio::try_join!(
            create_network(docker, project, None, labels),
            create_network(docker, &providers_network, Some(&providers_bridge), labels),
            create_disk(docker, &disk, labels),
        )?;
        Ok(Self {
            network: project.to_owned(),
            network_side,
            providers_network,
            providers_bridge,
            providers_side,
            disk,
        })
    }
}

/// The host's side of a network.
pub(super) struct HostSide {
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

/// Forwarders from the stack's networks to the provider stand-ins on the host's
/// loopback, listening on a network's gateway address: the providers' network for the
/// providers the gateway calls, the stack's network for the scrapers' sites. Returns
/// them with the URL the containers reach each provider at.
async fn forward_providers(
    listening: &Listening,
    resources: &Resources,
) -> Result<(Vec<Forwarder>, BTreeMap<StandIn, Url>), DockerError> {
    let mut forwarders = Vec::new();
    let mut urls = BTreeMap::new();
    for provider in StandIn::ALL {
        let url = listening.url(provider);
        let target = url
            .socket_addrs(|| None)
            .ok()
            .and_then(|addrs| addrs.into_iter().next())
            .ok_or_else(|| StackError::InvalidOptions(format!("{url} has no socket address")))?;
        let forwarder = if called_by_the_gateway(provider) {
            let isolation = Isolation {
                device: resources.providers_bridge.clone(),
                subnet: resources.providers_side.subnet,
            };
            Forwarder::start(resources.providers_side.gateway, target, Some(isolation)).await?
        } else {
            Forwarder::start(resources.network_side.gateway, target, None).await?
        };
        urls.insert(provider, crate::local::boot::base_url(forwarder.addr));
        forwarders.push(forwarder);
    }
    Ok((forwarders, urls))
}

/// Whether api-gateway-internal calls `party` (the scrapers call their own sites).
fn called_by_the_gateway(party: StandIn) -> bool {
    matches!(party, StandIn::Provider(_))
}

/// The provider stand-ins' responses, from the catalogue for `seed` and `tracks`.
async fn mount_providers(
    listening: Listening,
    seed: u64,
    tracks: usize,
) -> Result<Providers, DockerError> {
    let catalogue =
        tokio::task::spawn_blocking(move || Catalogue::shared(seed, Catalogue::len_for(tracks)))
            .await
            .map_err(|e| task_failed("generating the catalogue", e))?;
    Ok(listening.mount(catalogue).await)
}

/// The host ports the stack's containers publish on 127.0.0.1: the documented ones in
/// drill mode, else claimed below the ephemeral range for the run (see `crate::ports`),
/// so that neither another stack nor an outgoing connection's source port takes one
/// between its choice and the start of the container that publishes it.
struct HostPorts {
    postgres: u16,
    redis: u16,
    /// The API of each twin service that has one.
    listen: BTreeMap<Service, u16>,
    /// Every twin service's chaos surface (always claimed).
    chaos: BTreeMap<Service, u16>,
}

impl HostPorts {
    fn claim(run_dir: &RunDir, mode: PortMode) -> Result<Self, StackError> {
        let port_for = |service: Service| match (mode, service.drill_port()) {
            (PortMode::Documented, Some(port)) => Ok(port),
            _ => run_dir.claim_port(),
        };
        let postgres = port_for(Service::Postgres)?;
        let redis = port_for(Service::Redis)?;
        let mut listen = BTreeMap::new();
        let mut chaos = BTreeMap::new();
        for service in Service::TWIN {
            if service.drill_port().is_some() {
                listen.insert(service, port_for(service)?);
            }
            chaos.insert(service, run_dir.claim_port()?);
        }
        Ok(Self {
            postgres,
            redis,
            listen,
            chaos,
        })
    }

    fn api(&self, service: Service) -> Url {
        local_url(self.listen[&service])
    }

    fn endpoints(&self, providers: &Listening) -> Endpoints {
        let (pg, redis) = (self.postgres, self.redis);
        Endpoints {
            enrichment: self.api(Service::MetadataEnrichment),
            gateway: self.api(Service::ApiGatewayInternal),
            dlq: self.api(Service::DlqManager),
            rest_api: self.api(Service::RestApi),
            graph_api: self.api(Service::GraphApi),
            database_url: format!("postgres://{APP_USER}@127.0.0.1:{pg}/{DATABASE}"),
            postgres_host: "localhost".to_owned(),
            postgres_port: pg,
            redis_url: format!("redis://127.0.0.1:{redis}"),
            redis_port: redis,
            providers: providers.public_urls(),
            sites: providers.public_site_urls(),
        }
    }
}

/// Which image the twin's containers run, and what they mount to run it.
struct TwinImage {
    image: String,
    binds: Vec<String>,
}

impl TwinImage {
    /// The twin image when one is named; else the base image with the stack's own
    /// `drill` binary mounted read-only, so that containers run the binary just built.
    fn choose(bins: &Binaries, images: &Images) -> Result<Self, StackError> {
        Ok(match &images.twin {
            Some(image) => Self {
                image: image.clone(),
                binds: Vec::new(),
            },
            None => {
                let binary = std::fs::canonicalize(&bins.twin)
                    .map_err(StackError::io(format!("resolving {}", bins.twin.display())))?;
                Self {
                    image: images.base.clone(),
                    binds: vec![format!("{}:/usr/local/bin/drill:ro", binary.display())],
                }
            }
        })
    }
}

/// How each container of one stack is described: compose-style name, labels, network
/// and alias, init, memory limit, and what each service adds.
struct ContainerSpecs<'a> {
    project: &'a str,
    labels: &'a HashMap<String, String>,
    images: &'a Images,
    memory_limits: &'a BTreeMap<Service, u64>,
    cgroup_parent: Option<String>,
}

impl ContainerSpecs<'_> {
    /// What every container of the stack has.
    fn common(&self, service: Service, image: &str, cmd: Vec<String>) -> ServiceSpec {
        let mut labels = self.labels.clone();
        labels.insert(LABEL_SERVICE.to_owned(), service.name().to_owned());
        ServiceSpec {
            container: format!("{}-{}-1", self.project, service.name()),
            image: image.to_owned(),
            init: if self.images.is_own(image) {
                Init::ImageTini
            } else {
                Init::Engine
            },
            cmd,
            env: BTreeMap::new(),
            binds: Vec::new(),
            ports: Vec::new(),
            stop_signal: None,
            memory_limit: self.memory_limits.get(&service).copied(),
            cgroup_parent: self.cgroup_parent.clone(),
            labels,
            network: self.project.to_owned(),
            alias: service.name().to_owned(),
            extra_networks: Vec::new(),
        }
    }

    fn redis(&self, host_port: u16) -> ServiceSpec {
        ServiceSpec {
            ports: vec![(6379, host_port)],
            ..self.common(Service::Redis, &self.images.redis, spec::redis_cmd())
        }
    }

    /// PostgreSQL on the data directory `data` of the host, its backups on the disk,
    /// on the stack's modeled clock when it runs faster than real time (`clock`: the
    /// host directory that holds libfaketime and its spec).
    fn postgres(
        &self,
        data: &Path,
        disk: &Disk,
        host_port: u16,
        clock: Option<(&PgClock, &Path)>,
        scale: f64,
    ) -> ServiceSpec {
        let mut binds = vec![
            format!("{}:{}", data.display(), spec::PGDATA),
            format!("{}:{BACKUP_MOUNT}", disk.volume),
        ];
        let mut env = BTreeMap::new();
        if let Some((pg_clock, dir)) = clock {
            binds.push(format!("{}:{}:ro", dir.display(), spec::CLOCK_DIR));
            let inside =
                |file: &Path| Path::new(spec::CLOCK_DIR).join(file.file_name().unwrap_or_default());
            env.extend(
                PgClock::env(&inside(pg_clock.spec_file()), &inside(pg_clock.library()))
                    .into_iter()
                    .map(|(name, value)| match name.as_str() {
                        "LD_PRELOAD" => (spec::PRELOAD_ENV.to_owned(), value),
                        _ => (name, value),
                    }),
            );
        }
        ServiceSpec {
            binds,
            env,
            ports: vec![(5432, host_port)],
            // Fast shutdown, as the official image's STOPSIGNAL.
            stop_signal: Some("SIGINT".into()),
            ..self.common(
                Service::Postgres,
                &self.images.postgres,
                spec::postgres_cmd(scale),
            )
        }
    }

    /// A twin service with the local backend's environment, container addresses, its
    /// log on the disk, and how it is known to be ready.
    fn twin(
        &self,
        service: Service,
        bins: &Binaries,
        wiring: &Wiring,
        image: &TwinImage,
        resources: &Resources,
        ports: &HostPorts,
    ) -> (ServiceSpec, Probe) {
        let inside = service.drill_port();
        let slot = twin::slot(
            bins,
            service,
            inside.map(|p| SocketAddr::from((Ipv4Addr::UNSPECIFIED, p))),
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, CHAOS_PORT)),
            wiring,
            Path::new("/dev/null"),
            Path::new("/"),
        );
        let mut env = slot.spec.env;
        // Another PID namespace: the harness's PID means nothing inside. Containers are
        // reaped by their owner label instead.
        env.remove(wire::env::PARENT_PID);
        // The container's loopback cannot be published: the surface listens on the
        // container's address, published on the host's loopback only.
        env.insert(wire::env::CHAOS_IN_CONTAINER.to_owned(), "1".to_owned());
        let mut published = vec![(CHAOS_PORT, ports.chaos[&service])];
        if let Some(inside) = inside {
            published.push((inside, ports.listen[&service]));
        }
        let mut binds = image.binds.clone();
        binds.push(format!("{}:{LOG_DIR}", resources.disk.volume));
        let extra_networks = if service == Service::ApiGatewayInternal {
            vec![resources.providers_network.clone()]
        } else {
            Vec::new()
        };
        let spec = ServiceSpec {
            env,
            binds,
            ports: published,
            extra_networks,
            ..self.common(service, &image.image, spec::twin_cmd(service.name()))
        };
        let probe = Probe::Twin {
            chaos: local_url(ports.chaos[&service])
                .join("chaos")
                .expect("a relative path joins"),
            health: inside.map(|_| {
                ports
                    .api(service)
                    .join("health")
                    .expect("a relative path joins")
            }),
        };
        (spec, probe)
    }
}

fn local_url(port: u16) -> Url {
    crate::local::boot::base_url(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
}

/// How the twin's services reach each other: by service name on the stack's network.
fn service_url(service: Service) -> Url {
    let port = service.drill_port().expect("an API service has a port");
    Url::parse(&format!("http://{}:{port}/", service.name())).expect("a service name makes a URL")
}
