//! A running twin of SongNodes and its handles: what drills and tests hold on to.
//!
//! The local backend builds it ([`crate::local::boot`]); this module is the handle:
//! addresses, clock, orchestrator, providers, chaos surfaces, reset, and a teardown
//! that runs on `Drop` too, so a panicking test leaves nothing running.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use url::Url;
use wire::{Clock, Service};

use crate::catalogue::Catalogue;
use crate::local::supervisor::{SlotStatus, Supervisor};
use crate::local::{LocalOrchestrator, TemplateOutcome, boot};
use crate::providers::Providers;
use crate::{StackError, seed};

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
    /// From the start of the database step (template lookup) until PostgreSQL accepted
    /// connections.
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
    /// Boots a stack (see [`crate::local::boot`] for the steps); on error nothing is
    /// left running.
    pub async fn start(options: StackOptions) -> Result<Stack, StackError> {
        let booted = boot::boot(&options).await?;
        let redis = ::redis::Client::open(booted.endpoints.redis_url.as_str())
            .map_err(StackError::redis("opening a Redis client"))?;
        Ok(Stack {
            orchestrator: Arc::new(LocalOrchestrator::new(
                booted.supervisor.clone(),
                booted.data_dir.clone(),
            )),
            endpoints: booted.endpoints,
            clock: booted.clock,
            providers: booted.providers,
            supervisor: booted.supervisor,
            admin: booted.admin,
            redis,
            http: booted.http,
            chaos: booted.chaos,
            data_dir: booted.data_dir,
            boot: booted.report,
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
        // Each drill starts with empty logs, so that `logs --tail | grep` sees this
        // incident and not the last one. The files are opened for appending, so a
        // running service simply continues at the new end.
        for service in Service::ALL {
            let path = crate::local::logs::path(&self.data_dir, service);
            if path.exists() {
                std::fs::File::create(&path).map_err(|source| StackError::Io {
                    action: format!("truncating {}", path.display()),
                    source,
                })?;
            }
        }
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
