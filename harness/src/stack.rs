//! A running twin of SongNodes and its handles.
//!
//! Boot order, with what can overlap overlapping:
//! 1. checks that cost nothing to undo: options, binaries, the `postgres` user, reaping
//!    stale runs, and (drill mode) that every documented port is free;
//! 2. the run directory, ports, the catalogue and the provider stand-ins;
//! 3. in parallel: PostgreSQL (template from the cache or built once, copied, started,
//!    seed restored at modeled now) and Redis;
//! 4. every twin service at once, each ready when its chaos surface (and `/health`,
//!    for services with an API) answers.
//!
//! Any error on the way drops what was started: the supervisor's `Drop` stops every
//! child and removes the run directory, so a failed start leaves nothing running.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use url::Url;
use wire::{Clock, Service};

use crate::catalogue::Catalogue;
use crate::local::postgres::{self, APP_USER, DATABASE, Listen, SUPERUSER};
use crate::local::supervisor::{SlotStatus, Supervisor};
use crate::local::twin::{self, Wiring};
use crate::local::{
    Binaries, LocalOrchestrator, TemplateOutcome, logs, reaper, redis as local_redis, run_dir,
    template,
};
use crate::providers::{self, Provider, Providers};
use crate::{StackError, dirs, ports, seed};

/// Which ports a stack binds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortMode {
    /// The ports the runbooks name (5433, 6379, 8020, …): drills and game days.
    Documented,
    /// Free loopback ports, so stacks run side by side: tests.
    Free,
}

/// How to build a stack.
#[derive(Clone, Debug)]
pub struct StackOptions {
    pub ports: PortMode,
    /// Modeled seconds per real second (see [`wire::Clock`]); at least 1.
    pub scale: f64,
    /// Drives every generated thing: catalogue, history, scraped pages.
    pub seed: u64,
    /// How many tracks of history to load.
    pub tracks: usize,
    /// The program run as `<twin_binary> twin <service>`: the `drill` binary.
    pub twin_binary: PathBuf,
    /// The scenario or test this stack serves, recorded for reaping and debugging.
    pub label: String,
}

impl StackOptions {
    /// Free ports, scale 60, seed 42, 2000 tracks, labelled with the current test's name.
    pub fn for_tests(twin_binary: impl Into<PathBuf>) -> Self {
        Self {
            ports: PortMode::Free,
            scale: 60.0,
            seed: 42,
            tracks: 2000,
            twin_binary: twin_binary.into(),
            label: std::thread::current().name().unwrap_or("test").to_owned(),
        }
    }
}

/// Where a stack's services answer.
#[derive(Clone, Debug)]
pub struct Endpoints {
    /// metadata-enrichment (`localhost:8020` in drill mode).
    pub enrichment: Url,
    /// api-gateway-internal (8022).
    pub gateway: Url,
    /// dlq-manager (8024).
    pub dlq: Url,
    pub rest_api: Url,
    pub graph_api: Url,
    /// musicdb as `musicdb_user`, as the runbooks connect.
    pub database_url: String,
    /// musicdb as the `postgres` superuser, for the harness's own work.
    pub admin_database_url: String,
    pub redis_url: String,
    pub postgres_port: u16,
    pub redis_port: u16,
}

/// How long each phase of a boot took.
#[derive(Clone, Copy, Debug)]
pub struct BootReport {
    pub template: TemplateOutcome,
    /// Copying the template into the stack's data directory.
    pub data_dir_copy: Duration,
    /// From the start of the boot until PostgreSQL accepted connections.
    pub postgres_ready: Duration,
    /// Restoring the seeded rows.
    pub seed_restore: Duration,
    /// Starting every twin service until all were ready.
    pub twin_ready: Duration,
    pub total: Duration,
}

/// A running twin. Dropping it stops everything it started and removes its files.
pub struct Stack {
    endpoints: Endpoints,
    clock: Clock,
    providers: Providers,
    supervisor: Arc<Supervisor>,
    orchestrator: Arc<LocalOrchestrator>,
    admin: PgPool,
    redis: ::redis::Client,
    http: reqwest::Client,
    chaos: BTreeMap<Service, Url>,
    data_dir: PathBuf,
    boot: BootReport,
}

impl Stack {
    /// Boots a stack; on error nothing is left running.
    pub async fn start(options: StackOptions) -> Result<Stack, StackError> {
        let started = Instant::now();
        let clock = Clock::starting_now(options.scale)
            .map_err(|e| StackError::InvalidOptions(e.to_string()))?;
        let bins = Binaries::locate(&options.twin_binary)?;
        let pg_owner = postgres::run_as()?;
        let root = dirs::runtime_root()?;
        let reap_root = root.clone();
        let reaped = tokio::task::spawn_blocking(move || reaper::reap_stale_runs(&reap_root))
            .await
            .unwrap_or_default();
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

        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_millis(500))
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| StackError::InvalidOptions(format!("building an HTTP client: {e}")))?;
        let run = run_dir::RunDir::create(&root, &options.label)?;
        // From here on, dropping the supervisor cleans up whatever was started.
        let mut supervisor = Supervisor::new(run, http.clone());
        let data_dir = supervisor.run_dir().path().to_owned();
        let run_id = supervisor.run_dir().run_id().to_owned();

        let port_for = |service: Service| -> Result<u16, StackError> {
            match (options.ports, service.drill_port()) {
                (PortMode::Documented, Some(port)) => Ok(port),
                _ => supervisor.run_dir().claim_port(),
            }
        };
        let pg_port = port_for(Service::Postgres)?;
        let redis_port = port_for(Service::Redis)?;
        let mut listen = BTreeMap::new();
        let mut chaos = BTreeMap::new();
        for service in Service::TWIN {
            if service.drill_port().is_some() {
                listen.insert(service, loopback(port_for(service)?));
            }
            chaos.insert(service, loopback(supervisor.run_dir().claim_port()?));
        }

        // The provider servers listen now (their URLs wire the twin); their baselines are
        // mounted once the catalogue exists, while PostgreSQL and Redis start.
        let listening = providers::Listening::start().await;

        let pgdata = data_dir.join("pg");
        let redis_dir = data_dir.join("redis");
        std::fs::create_dir(&redis_dir)
            .map_err(StackError::io(format!("creating {}", redis_dir.display())))?;
        let pg_addresses = match (options.ports, ipv6) {
            // `psql -h localhost` may try ::1 first.
            (PortMode::Documented, true) => "127.0.0.1,::1",
            _ => "127.0.0.1",
        };
        supervisor.add(
            Service::Postgres,
            postgres::slot(
                &bins,
                &pgdata,
                &Listen {
                    port: pg_port,
                    addresses: pg_addresses.into(),
                },
                pg_owner,
                &logs::path(&data_dir, Service::Postgres),
                DATABASE,
            ),
        );
        supervisor.add(
            Service::Redis,
            local_redis::slot(
                &bins,
                redis_port,
                "127.0.0.1",
                &redis_dir,
                &logs::path(&data_dir, Service::Redis),
            ),
        );
        let http_url = |service: Service| base_url(listen[&service]);
        let endpoints = Endpoints {
            enrichment: http_url(Service::MetadataEnrichment),
            gateway: http_url(Service::ApiGatewayInternal),
            dlq: http_url(Service::DlqManager),
            rest_api: http_url(Service::RestApi),
            graph_api: http_url(Service::GraphApi),
            database_url: postgres::url(pg_port, APP_USER, DATABASE),
            admin_database_url: postgres::url(pg_port, SUPERUSER, DATABASE),
            redis_url: local_redis::url(redis_port),
            postgres_port: pg_port,
            redis_port,
        };
        let wiring = Wiring {
            clock,
            database_url: endpoints.database_url.clone(),
            redis_url: endpoints.redis_url.clone(),
            enrichment_url: endpoints.enrichment.clone(),
            gateway_url: endpoints.gateway.clone(),
            spotify_url: listening.url(Provider::Spotify),
            musicbrainz_url: listening.url(Provider::MusicBrainz),
            lastfm_url: listening.url(Provider::LastFm),
            mixesdb_url: listening.url(Provider::MixesDb),
            tracklists1001_url: listening.url(Provider::Tracklists1001),
            run_id,
        };
        for service in Service::TWIN {
            supervisor.add(
                service,
                twin::slot(
                    &bins,
                    service,
                    listen.get(&service).copied(),
                    chaos[&service],
                    &wiring,
                    &logs::path(&data_dir, service),
                    &data_dir,
                ),
            );
        }
        let supervisor = Arc::new(supervisor);

        // PostgreSQL (with its seed), Redis and the providers come up side by side.
        let (seed_value, tracks) = (options.seed, options.tracks);
        let providers = async {
            let catalogue = tokio::task::spawn_blocking(move || {
                Catalogue::shared(seed_value, Catalogue::len_for(tracks))
            })
            .await
            .map_err(|e| StackError::InvalidOptions(format!("generating the catalogue: {e}")))?;
            Ok::<_, StackError>(listening.mount(catalogue).await)
        };
        let database = async {
            let template =
                template::ensure(&bins, &dirs::cache_dir(), &root, seed_value, tracks).await?;
            let copy_started = Instant::now();
            let (from, to) = (template.pgdata.clone(), pgdata.clone());
            tokio::task::spawn_blocking(move || postgres::copy_data_dir(&from, &to, pg_owner))
                .await
                .map_err(|e| StackError::InvalidOptions(format!("copying the template: {e}")))??;
            let data_dir_copy = copy_started.elapsed();
            supervisor.start(Service::Postgres).await?;
            let postgres_ready = started.elapsed();
            let admin = PgPoolOptions::new()
                .max_connections(2)
                .min_connections(0)
                // Idle harness connections would show in the runbook's idle-connection check.
                .idle_timeout(Duration::from_secs(60))
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(postgres::connect_options(pg_port, SUPERUSER, DATABASE))
                .await
                .map_err(StackError::db("connecting to musicdb as postgres"))?;
            let restore_started = Instant::now();
            seed::snapshot::restore(&admin, clock.now()).await?;
            Ok::<_, StackError>((
                template.outcome,
                data_dir_copy,
                admin,
                postgres_ready,
                restore_started.elapsed(),
            ))
        };
        let (database, cache, providers) =
            tokio::join!(database, supervisor.start(Service::Redis), providers);
        let (template_outcome, data_dir_copy, admin, postgres_ready, seed_restore) = database?;
        cache?;
        let providers = providers?;

        let twin_started = Instant::now();
        start_all(&supervisor, &Service::TWIN).await?;
        let twin_ready = twin_started.elapsed();

        let redis = ::redis::Client::open(endpoints.redis_url.as_str())
            .map_err(StackError::redis("opening a Redis client"))?;
        let chaos = chaos
            .into_iter()
            .map(|(s, addr)| (s, base_url(addr)))
            .collect();
        Ok(Stack {
            endpoints,
            clock,
            providers,
            orchestrator: Arc::new(LocalOrchestrator::new(supervisor.clone(), data_dir.clone())),
            supervisor,
            admin,
            redis,
            http,
            chaos,
            data_dir,
            boot: BootReport {
                template: template_outcome,
                data_dir_copy,
                postgres_ready,
                seed_restore,
                twin_ready,
                total: started.elapsed(),
            },
        })
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// The modeled clock every service of the stack reads.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    pub fn orchestrator(&self) -> Arc<dyn runbooks::ops::Orchestrator> {
        self.orchestrator.clone()
    }

    /// The provider stand-ins, to mount faults on.
    pub fn providers(&self) -> &Providers {
        &self.providers
    }

    /// The catalogue the providers answer from and the seed was drawn from.
    pub fn catalogue(&self) -> &Arc<Catalogue> {
        self.providers.catalogue()
    }

    /// The base URL of a twin service's chaos surface (routes under `/chaos`); `None`
    /// for PostgreSQL and Redis.
    pub fn chaos_url(&self, service: Service) -> Option<Url> {
        self.chaos.get(&service).cloned()
    }

    /// A superuser pool on `musicdb`, for faults and checks that act below the API.
    pub fn admin_pool(&self) -> &PgPool {
        &self.admin
    }

    /// The stack's directory: `logs/<service>.log`, `pg/`, `redis/`, `pids/`.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The PID of a running service (the leader of its process group).
    pub fn pid(&self, service: Service) -> Option<u32> {
        self.supervisor.pid(service)
    }

    /// How long the boot took, by phase.
    pub fn boot_report(&self) -> &BootReport {
        &self.boot
    }

    /// Back to the seeded state: every service running with its original environment,
    /// the seeded rows restored at modeled now, Redis empty, provider baselines only,
    /// and every twin service's chaos switches and in-memory state reset.
    ///
    /// Twin services keep running throughout; a worker that was mid-batch may write
    /// once more after the restore, as it would after any restore of a live database.
    pub async fn reset(&self) -> Result<(), StackError> {
        self.ensure_running(&[Service::Postgres, Service::Redis])
            .await?;
        let database = seed::snapshot::restore(&self.admin, self.clock.now());
        let cache = async {
            let mut conn = self
                .redis
                .get_multiplexed_async_connection()
                .await
                .map_err(StackError::redis("connecting to Redis"))?;
            ::redis::cmd("FLUSHALL")
                .query_async::<()>(&mut conn)
                .await
                .map_err(StackError::redis("FLUSHALL"))
        };
        let (database, cache, ()) = tokio::join!(database, cache, self.providers.reset());
        database?;
        cache?;
        self.ensure_running(&Service::TWIN).await?;
        let resets = self.chaos.iter().map(|(&service, base)| async move {
            let url = base.join("chaos/reset").expect("a relative path joins");
            let result = self.http.post(url.clone()).send().await;
            match result {
                Ok(response) if response.status().is_success() => Ok(()),
                Ok(response) => Err(response.status().to_string()),
                Err(e) => Err(e.to_string()),
            }
            .map_err(|reason| StackError::Chaos {
                service,
                action: "POST /chaos/reset",
                url: url.to_string(),
                reason,
            })
        });
        futures::future::join_all(resets)
            .await
            .into_iter()
            .collect::<Result<(), _>>()
    }

    /// Starts what is stopped or exited, unpauses what is paused, and restarts what
    /// runs with a changed environment (after dropping the change).
    async fn ensure_running(&self, services: &[Service]) -> Result<(), StackError> {
        let orchestration = |e: crate::local::supervisor::SlotError| {
            StackError::Orchestrator(runbooks::ops::OrchestratorError::Other(e.to_string()))
        };
        let each = services.iter().map(|&service| async move {
            let env_changed = self.supervisor.clear_env(service);
            match self.supervisor.status(service).map_err(orchestration)? {
                SlotStatus::Running if !env_changed => Ok(()),
                SlotStatus::Running | SlotStatus::Paused if env_changed => {
                    self.supervisor.stop(service).await.map_err(orchestration)?;
                    self.supervisor.start(service).await
                }
                SlotStatus::Paused => self
                    .supervisor
                    .unpause(service)
                    .await
                    .map_err(orchestration),
                _ => self.supervisor.start(service).await,
            }
        });
        futures::future::join_all(each).await.into_iter().collect()
    }

    /// Stops everything and removes the stack's files. `Drop` does the same, synchronously.
    pub async fn shutdown(self) -> Result<(), StackError> {
        // Closing the pool first spares PostgreSQL's log a burst of broken connections.
        let _ = tokio::time::timeout(Duration::from_secs(1), self.admin.close()).await;
        let supervisor = self.supervisor.clone();
        tokio::task::spawn_blocking(move || supervisor.teardown_blocking())
            .await
            .map_err(|e| StackError::Io {
                action: "stopping the stack".into(),
                source: std::io::Error::other(e.to_string()),
            })
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.supervisor.teardown_blocking();
    }
}

/// Starts `services` concurrently; if any fails, reports the most telling error (a
/// service that exited beats one that merely timed out, since the timeout is often a
/// consequence).
async fn start_all(supervisor: &Supervisor, services: &[Service]) -> Result<(), StackError> {
    let results = futures::future::join_all(services.iter().map(|&s| supervisor.start(s))).await;
    let mut errors: Vec<StackError> = results.into_iter().filter_map(Result::err).collect();
    if errors.is_empty() {
        return Ok(());
    }
    let exited = errors
        .iter()
        .position(|e| matches!(e, StackError::ExitedDuringBoot { .. }))
        .unwrap_or(0);
    Err(errors.swap_remove(exited))
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

fn base_url(addr: SocketAddr) -> Url {
    Url::parse(&format!("http://{addr}/")).expect("a socket address makes a URL")
}
