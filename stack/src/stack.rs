//! A running twin of SongNodes, on either backend: what drills and tests hold on to.
//!
//! [`Stack`] is the one handle drills take: addresses, clock, orchestrator, providers,
//! chaos surfaces, reset and teardown, whichever backend built it. The backends keep
//! their own handles ([`LocalStack`], [`DockerStack`]) for what only they have (PIDs
//! and a run directory; containers and a network). Which backend runs is chosen by
//! [`BackendChoice`] (see [`crate::backend`]).

use std::path::PathBuf;
use std::sync::Arc;

use sqlx::PgPool;
use url::Url;
use wire::{Clock, Endpoints, Service};

use crate::StackError;
use crate::backend::Backend;
use crate::catalogue::Catalogue;
use crate::docker::DockerStack;
use crate::docker::faults::{ContainerFaultError, ContainerHeal};
use crate::handles::StackHandles;
use crate::host::{OomRecord, StackHost};
use crate::local::LocalStack;
use crate::providers::Providers;
use crate::turn::TurnKind;

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
    /// Whether the stack waits for a turn and holds it while it runs (see
    /// [`crate::turn`]): stacks that measure modeled time do, those that measure load
    /// the harness generates take every turn; a game-day stack and the stand-in twins
    /// of the stack's own tests take none.
    pub turn: TurnKind,
    /// On the docker backend, whether `docker-compose up` must leave the running stack
    /// alone: the boot asks the compose tool, where installed, for its config hashes
    /// (about a second; see `docker::compose_project`). Stacks for people (`drill up`,
    /// `drill gameday`) do; every docker stack gets its project file either way.
    pub compose_hashes: bool,
}

impl StackOptions {
    /// Free ports, scale 60, seed 42, 2000 tracks, labelled with the current test's name,
    /// one stack at a time.
    pub fn for_tests(twin_binary: impl Into<PathBuf>) -> Self {
        Self {
            ports: PortMode::Free,
            scale: 60.0,
            seed: 42,
            tracks: 2000,
            twin_binary: twin_binary.into(),
            label: std::thread::current().name().unwrap_or("test").to_owned(),
            turn: TurnKind::Shared,
            compose_hashes: false,
        }
    }
}

/// Something this stack's backend cannot do.
#[derive(Debug, thiserror::Error)]
pub enum CapabilityError {
    #[error("{what} needs the docker backend (`--backend docker` or DRILL_BACKEND=docker): {why}")]
    NeedsDocker {
        what: &'static str,
        why: &'static str,
    },
    #[error(transparent)]
    Container(#[from] ContainerFaultError),
}

/// A running twin on either backend. Dropping it stops everything it started.
pub enum Stack {
    Local(LocalStack),
    Docker(DockerStack),
}

impl Stack {
    /// Boots a stack on `backend`; on error nothing is left running.
    pub async fn start(options: StackOptions, backend: Backend) -> Result<Stack, StackError> {
        Ok(match backend {
            Backend::Local => Stack::Local(LocalStack::start(options).await?),
            Backend::Docker => Stack::Docker(DockerStack::start(options).await?),
        })
    }

    pub fn backend(&self) -> Backend {
        match self {
            Stack::Local(_) => Backend::Local,
            Stack::Docker(_) => Backend::Docker,
        }
    }

    pub(crate) fn handles(&self) -> &StackHandles {
        match self {
            Stack::Local(stack) => stack.handles(),
            Stack::Docker(stack) => stack.handles(),
        }
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.handles().endpoints
    }

    /// The modeled clock every service of the stack reads.
    pub fn clock(&self) -> Clock {
        self.handles().clock
    }

    /// The `docker compose …` verbs, over processes or containers.
    pub fn orchestrator(&self) -> Arc<dyn runbooks::ops::Orchestrator> {
        match self {
            Stack::Local(stack) => stack.orchestrator(),
            Stack::Docker(stack) => stack.orchestrator().clone(),
        }
    }

    /// The provider stand-ins, to mount faults on.
    pub fn providers(&self) -> &Providers {
        &self.handles().providers
    }

    /// The users of rest-api and graph-api (see [`crate::traffic`]).
    pub fn traffic(&self) -> &crate::traffic::ApiTraffic {
        &self.handles().traffic
    }

    /// Sets the stack's workload: tracks arriving through the scrapers, and API reads.
    pub fn set_workload(&self, workload: crate::Workload) {
        self.providers().set_workload(workload);
        self.traffic().set_rate(workload.api_requests_per_minute);
    }

    /// The catalogue the providers answer from and the seed was drawn from.
    pub fn catalogue(&self) -> &Arc<Catalogue> {
        self.handles().catalogue()
    }

    /// The base URL of a twin service's chaos surface (routes under `/chaos`); `None`
    /// for PostgreSQL and Redis.
    pub fn chaos_url(&self, service: Service) -> Option<Url> {
        self.handles().chaos.get(&service).cloned()
    }

    /// A superuser pool on `musicdb`, for faults and checks that act below the API.
    pub fn admin_pool(&self) -> &PgPool {
        &self.handles().admin
    }

    pub fn as_local(&self) -> Option<&LocalStack> {
        match self {
            Stack::Local(stack) => Some(stack),
            Stack::Docker(_) => None,
        }
    }

    pub fn as_docker(&self) -> Option<&DockerStack> {
        match self {
            Stack::Docker(stack) => Some(stack),
            Stack::Local(_) => None,
        }
    }

    /// How long the boot took, until every service was ready.
    pub fn boot_time(&self) -> std::time::Duration {
        match self {
            Stack::Local(stack) => stack.boot_report().total,
            Stack::Docker(stack) => stack.boot_report().total,
        }
    }

    /// Back to the seeded state: every service running with its original environment,
    /// seeded rows at modeled now, Redis empty, provider baselines only, chaos
    /// switches off, logs starting afresh.
    pub async fn reset(&self) -> Result<(), StackError> {
        self.traffic().set_rate(0);
        match self {
            Stack::Local(stack) => stack.reset().await,
            Stack::Docker(stack) => Ok(stack.reset().await?),
        }
    }

    /// Disk and memory as `df -h` and `free -h` show them (see [`crate::host`]).
    pub fn host(&self) -> Arc<dyn runbooks::ops::Host> {
        let memory = self.memory().cloned().map_err(str::to_owned);
        let oom = match (self, &memory) {
            (Stack::Docker(stack), _) => OomRecord::Engine {
                docker: stack.docker().clone(),
                run_id: stack.run_id().to_owned(),
                since: stack.started(),
            },
            (Stack::Local(_), Ok(cgroup)) => OomRecord::Cgroup(cgroup.clone()),
            (Stack::Local(_), Err(reason)) => OomRecord::Unknown(format!(
                "the stack's processes are not in a memory cgroup of their own: {reason}"
            )),
        };
        Arc::new(StackHost {
            disk: self.disk(),
            memory,
            summed_from: self.as_local().map(|_| self.orchestrator()),
            oom,
        })
    }

    /// The stack's memory cgroup, limited to its budget, or why it has none (see
    /// [`crate::memory`]).
    pub fn memory(&self) -> Result<&crate::memory::MemoryCgroup, &str> {
        match self {
            Stack::Local(stack) => stack.memory(),
            Stack::Docker(stack) => stack.memory(),
        }
    }

    /// The stack's disk of log files and backups (see [`crate::disk`]).
    pub fn disk(&self) -> crate::disk::StackDisk {
        match self {
            Stack::Local(stack) => crate::disk::StackDisk::Local(stack.disk().clone()),
            Stack::Docker(stack) => crate::disk::StackDisk::Docker(stack.disk_gauge()),
        }
    }

    /// Fills the stack's disk (logs, backups) to the last byte; the returned handle
    /// frees it. Containers only: the local backend writes to the host's own disk,
    /// which a drill must not fill.
    pub async fn fill_disk(&self) -> Result<ContainerHeal, CapabilityError> {
        match self {
            Stack::Docker(stack) => Ok(stack.fill_disk().await?),
            Stack::Local(_) => Err(CapabilityError::NeedsDocker {
                what: "filling the stack's disk",
                why: "it fills the stack's size-limited tmpfs volume, which only containers \
                      have; the local backend writes to the host's own disk, which a drill \
                      must not fill",
            }),
        }
    }

    /// Cuts api-gateway-internal off the network through which it reaches the
    /// providers; the returned handle connects it again. Containers only.
    pub async fn disconnect_gateway(&self) -> Result<ContainerHeal, CapabilityError> {
        match self {
            Stack::Docker(stack) => Ok(stack.disconnect_gateway().await?),
            Stack::Local(_) => Err(CapabilityError::NeedsDocker {
                what: "disconnecting the gateway's network",
                why: "local processes share the host's loopback, which has no link of the \
                      gateway's own to cut (a partition switch inside the gateway is the \
                      local equivalent)",
            }),
        }
    }

    /// Leaves the stack up instead of tearing it down (`DRILL_KEEP`, see
    /// [`crate::keep`]), and says how to reach it and how to remove it.
    pub fn keep(self) -> Result<String, StackError> {
        match self {
            Stack::Local(stack) => stack.keep(),
            Stack::Docker(stack) => Ok(stack.keep()?),
        }
    }

    /// Stops everything and removes what the stack created. `Drop` does the same.
    pub async fn shutdown(self) -> Result<(), StackError> {
        match self {
            Stack::Local(stack) => stack.shutdown().await,
            Stack::Docker(stack) => Ok(stack.shutdown().await?),
        }
    }
}

impl From<LocalStack> for Stack {
    fn from(stack: LocalStack) -> Self {
        Stack::Local(stack)
    }
}

impl From<DockerStack> for Stack {
    fn from(stack: DockerStack) -> Self {
        Stack::Docker(stack)
    }
}
