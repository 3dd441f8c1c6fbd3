//! How the local backend brings a stack up, step by step.
//!
//! 1. Checks that cost nothing to undo: options, binaries, the `postgres` user, reaping
//!    stale runs, and (drill mode) that every documented port is free.
//! 2. The run directory, every address, the provider servers (listening, so their URLs
//!    can wire the twin) and a slot per service.
//! 3. In parallel: PostgreSQL (template from the cache or built once, copied, started,
//!    seed restored at modeled now), Redis, and the catalogue the providers answer from.
//! 4. Every twin service at once, each ready when its chaos surface (and `/health`, for
//!    services with an API) answers.
//!
//! Any error drops what was started: the supervisor's `Drop` stops every child and
//! removes the run directory, so a failed boot leaves nothing running.

use crate::memory::MemoryCgroup;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use url::Url;
use wire::{Clock, Service};

use super::postgres::{self, APP_USER, DATABASE, Listen, SUPERUSER};
use super::supervisor::Supervisor;
use super::twin::{self, Wiring};
use super::{Binaries, logs, reaper, redis, run_dir, template};
use crate::catalogue::Catalogue;
use crate::error::{most_telling, task_failed};
use crate::local::BootReport;
use crate::pg_clock::PgClock;
use crate::providers::{self, Providers};
use crate::stack::{PortMode, StackOptions};
use crate::{StackError, dirs, ports, seed};
use wire::Endpoints;
use wire::api::{Provider, SourceSite};

/// Everything a booted local stack consists of.
pub(crate) struct Booted {
    pub endpoints: Endpoints,
    pub clock: Clock,
    pub providers: Providers,
    pub supervisor: Arc<Supervisor>,
    pub admin: PgPool,
    pub http: reqwest::Client,
    pub chaos: BTreeMap<Service, Url>,
    pub data_dir: PathBuf,
    pub disk: super::disk::LocalDisk,
    /// The stack's memory cgroup, or why it has none.
    pub memory: Result<MemoryCgroup, String>,
    pub report: BootReport,
}

/// What the machine provides, checked before anything starts.
struct Host {
    bins: Binaries,
    pg_owner: Option<(u32, u32)>,
    root: PathBuf,
    ipv6: bool,
}

/// Every address of one stack.
struct Addresses {
    postgres: u16,
    redis: u16,
    /// API addresses of the services that serve one.
    listen: BTreeMap<Service, SocketAddr>,
    /// Chaos surfaces of every twin service (always free ports).
    chaos: BTreeMap<Service, SocketAddr>,
}

pub(crate) async fn boot(options: &StackOptions) -> Result<Booted, StackError> {
    let started = Instant::now();
    let clock = Clock::starting_now(options.scale)
        .map_err(|e| StackError::InvalidOptions(e.to_string()))?;
    let host = preflight(options).await?;
    let http = crate::handles::http_client()?;

    let run = run_dir::RunDir::create(&host.root, &options.label)?;
    // From here on, dropping the supervisor cleans up whatever was started.
    let mut supervisor = Supervisor::new(run, http.clone());
    let data_dir = supervisor.run_dir().path().to_owned();
    let disk = super::disk::LocalDisk::create(&data_dir, crate::disk::DEFAULT_DISK_SIZE)?;
    let memory = MemoryCgroup::create(
        supervisor.run_dir().run_id(),
        crate::memory::DEFAULT_MEMORY_BUDGET,
    );
    match &memory {
        Ok(cgroup) => supervisor.limit_memory(cgroup.clone()),
        Err(reason) => tracing::debug!(reason, "the local stack's memory is not limited"),
    }
    let addresses = Addresses::allocate(options.ports, supervisor.run_dir())?;
    let listening = providers::Listening::start().await;
    let endpoints = addresses.endpoints(&listening);
    let pg_clock = add_slots(
        &mut supervisor,
        &host,
        &addresses,
        &endpoints,
        &listening,
        clock,
        options.ports,
    )?;
    let supervisor = Arc::new(supervisor);

    let (seed_value, tracks) = (options.seed, options.tracks);
    let mount_providers = async {
        let catalogue = tokio::task::spawn_blocking(move || {
            Catalogue::shared(seed_value, Catalogue::len_for(tracks))
        })
        .await
        .map_err(|e| task_failed("generating the catalogue", e))?;
        Ok::<_, StackError>(listening.mount(catalogue).await)
    };
    let (database, cache, providers) = tokio::join!(
        start_database(
            &supervisor,
            &host,
            &addresses,
            clock,
            pg_clock.as_ref(),
            options,
            &data_dir
        ),
        supervisor.start(Service::Redis),
        mount_providers,
    );
    let database = database?;
    cache?;
    let providers = providers?;

    let twin_started = Instant::now();
    for wave in Service::TWIN_START_ORDER {
        start_all(&supervisor, wave).await?;
    }
    let twin_ready = twin_started.elapsed();

    Ok(Booted {
        endpoints,
        clock,
        providers,
        supervisor,
        admin: database.admin,
        http,
        chaos: addresses
            .chaos
            .iter()
            .map(|(&s, &addr)| (s, base_url(addr)))
            .collect(),
        data_dir,
        disk,
        memory,
        report: BootReport {
            template: database.template,
            data_dir_copy: database.copy,
            postgres_ready: database.ready_at,
            seed_restore: database.restore,
            twin_ready,
            total: started.elapsed(),
        },
    })
}

/// Binaries, the `postgres` user, stale runs reaped, documented ports free.
async fn preflight(options: &StackOptions) -> Result<Host, StackError> {
    let bins = Binaries::locate(&options.twin_binary)?;
    let pg_owner = postgres::run_as()?;
    let root = dirs::runtime_root()?;
    let reap_root = root.clone();
    // Reaping waits (bounded) for killed processes to disappear: off the async threads.
    let reaped = tokio::task::spawn_blocking(move || {
        reaper::reap_stale_runs(&reap_root, reaper::ReapScope::default())
    })
    .await
    .map_err(|e| task_failed("reaping stale runs", e))?;
    if !reaped.runs.is_empty() {
        tracing::info!(runs = ?reaped.runs, killed = ?reaped.killed, "reaped stale runs");
    }
    let ipv6 = ports::ipv6_loopback();
    if options.ports == PortMode::Documented {
        for service in Service::ALL {
            if let Some(port) = service.drill_port() {
                ports::check_documented(service, port, service == Service::Postgres && ipv6)?;
            }
        }
    }
    Ok(Host {
        bins,
        pg_owner,
        root,
        ipv6,
    })
}

impl Addresses {
    fn allocate(mode: PortMode, run: &run_dir::RunDir) -> Result<Self, StackError> {
        let port_for = |service: Service| match (mode, service.drill_port()) {
            (PortMode::Documented, Some(port)) => Ok(port),
            _ => run.claim_port(),
        };
        let mut listen = BTreeMap::new();
        let mut chaos = BTreeMap::new();
        for service in Service::TWIN {
            if service.drill_port().is_some() {
                listen.insert(service, loopback(port_for(service)?));
            }
            chaos.insert(service, loopback(run.claim_port()?));
        }
        Ok(Self {
            postgres: port_for(Service::Postgres)?,
            redis: port_for(Service::Redis)?,
            listen,
            chaos,
        })
    }

    fn endpoints(&self, providers: &providers::Listening) -> Endpoints {
        let api = |service: Service| base_url(self.listen[&service]);
        Endpoints {
            enrichment: api(Service::MetadataEnrichment),
            gateway: api(Service::ApiGatewayInternal),
            dlq: api(Service::DlqManager),
            rest_api: api(Service::RestApi),
            graph_api: api(Service::GraphApi),
            database_url: postgres::url(self.postgres, APP_USER, DATABASE),
            postgres_host: "localhost".to_owned(),
            postgres_port: self.postgres,
            redis_url: redis::url(self.redis),
            redis_port: self.redis,
            providers: providers.public_urls(),
            sites: providers.public_site_urls(),
        }
    }
}

/// A slot for PostgreSQL, Redis and every twin service.
fn add_slots(
    supervisor: &mut Supervisor,
    host: &Host,
    addresses: &Addresses,
    endpoints: &Endpoints,
    listening: &providers::Listening,
    clock: Clock,
    mode: PortMode,
) -> Result<Option<PgClock>, StackError> {
    let data_dir = supervisor.run_dir().path().to_owned();
    let pg_clock = PgClock::new(clock, &data_dir)?;
    let redis_dir = data_dir.join("redis");
    std::fs::create_dir(&redis_dir)
        .map_err(StackError::io(format!("creating {}", redis_dir.display())))?;
    let pg_addresses = match (mode, host.ipv6) {
        // `psql -h localhost` may try ::1 first.
        (PortMode::Documented, true) => "127.0.0.1,::1",
        _ => "127.0.0.1",
    };
    supervisor.add(
        Service::Postgres,
        postgres::slot(
            &host.bins,
            &data_dir.join("pg"),
            &Listen {
                port: addresses.postgres,
                addresses: pg_addresses.into(),
            },
            host.pg_owner,
            &logs::path(&data_dir, Service::Postgres),
            DATABASE,
            pg_clock.as_ref(),
        ),
    );
    supervisor.add(
        Service::Redis,
        redis::slot(
            &host.bins,
            addresses.redis,
            "127.0.0.1",
            &redis_dir,
            &logs::path(&data_dir, Service::Redis),
        ),
    );
    let wiring = Wiring {
        clock,
        database_url: endpoints.database_url.clone(),
        redis_url: endpoints.redis_url.clone(),
        enrichment_url: endpoints.enrichment.clone(),
        gateway_url: endpoints.gateway.clone(),
        spotify_url: listening.url(Provider::Spotify),
        musicbrainz_url: listening.url(Provider::Musicbrainz),
        lastfm_url: listening.url(Provider::Lastfm),
        mixesdb_url: listening.url(SourceSite::Mixesdb),
        tracklists1001_url: listening.url(SourceSite::Tracklists1001),
        run_id: supervisor.run_dir().run_id().to_owned(),
        log_dir: data_dir.join(super::disk::DISK_DIR),
    };
    for service in Service::TWIN {
        supervisor.add(
            service,
            twin::slot(
                &host.bins,
                service,
                addresses.listen.get(&service).copied(),
                addresses.chaos[&service],
                &wiring,
                &logs::path(&data_dir, service),
                &data_dir,
            ),
        );
    }
    Ok(pg_clock)
}

/// The database part of a boot, with its timings.
struct Database {
    admin: PgPool,
    template: template::TemplateOutcome,
    copy: Duration,
    /// Since the start of the boot.
    ready_at: Duration,
    restore: Duration,
}

/// Template (cached or built), copy, start, superuser pool, seed restored at modeled now.
async fn start_database(
    supervisor: &Supervisor,
    host: &Host,
    addresses: &Addresses,
    clock: Clock,
    pg_clock: Option<&PgClock>,
    options: &StackOptions,
    data_dir: &Path,
) -> Result<Database, StackError> {
    let boot_started = Instant::now();
    let template = template::ensure(
        &host.bins,
        &dirs::cache_dir(),
        &host.root,
        options.seed,
        options.tracks,
    )
    .await?;
    let copy_started = Instant::now();
    let (from, to, owner) = (template.pgdata.clone(), data_dir.join("pg"), host.pg_owner);
    tokio::task::spawn_blocking(move || postgres::copy_data_dir(&from, &to, owner))
        .await
        .map_err(|e| task_failed("copying the template", e))??;
    let copy = copy_started.elapsed();
    supervisor.start(Service::Postgres).await?;
    let ready_at = boot_started.elapsed();
    let admin = PgPoolOptions::new()
        .max_connections(2)
        .min_connections(0)
        // Idle harness connections would show in the runbook's idle-connection check.
        .idle_timeout(Duration::from_secs(60))
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(postgres::connect_options(
            addresses.postgres,
            SUPERUSER,
            DATABASE,
        ))
        .await
        .map_err(StackError::db("connecting to musicdb as postgres"))?;
    if let Some(pg_clock) = pg_clock {
        let skew = pg_clock.align(&admin).await?;
        tracing::debug!("PostgreSQL runs {skew:+.2} s (modeled) off the stack's clock");
    }
    let restore_started = Instant::now();
    seed::snapshot::restore(&admin, clock.now()).await?;
    Ok(Database {
        admin,
        template: template.outcome,
        copy,
        ready_at,
        restore: restore_started.elapsed(),
    })
}

/// Starts `services` concurrently; if any fails, reports the most telling error.
async fn start_all(supervisor: &Supervisor, services: &[Service]) -> Result<(), StackError> {
    most_telling(futures::future::join_all(services.iter().map(|&s| supervisor.start(s))).await)
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

pub(crate) fn base_url(addr: SocketAddr) -> Url {
    Url::parse(&format!("http://{addr}/")).expect("a socket address makes a URL")
}
