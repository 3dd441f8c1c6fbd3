//! [`LocalStack`]: a twin whose services are child processes of this one.
//!
//! [`crate::local::boot`] builds it; this module is the handle: PIDs, the run
//! directory, reset, and a teardown that runs on `Drop` too, so a panicking test
//! leaves nothing running.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use wire::Service;

use crate::StackError;
use crate::handles::StackHandles;
use crate::local::supervisor::{SlotStatus, Supervisor};
use crate::local::{LocalOrchestrator, TemplateOutcome, boot};
use crate::stack::StackOptions;
use crate::turn::Turn;

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

/// A running twin on the local backend. Dropping it stops everything it started and
/// removes its files.
pub struct LocalStack {
    handles: StackHandles,
    supervisor: Arc<Supervisor>,
    orchestrator: Arc<LocalOrchestrator>,
    data_dir: PathBuf,
    disk: super::disk::LocalDisk,
    memory: Result<crate::memory::MemoryCgroup, String>,
    boot: BootReport,
    /// Released once everything else is gone.
    _turn: Option<Turn>,
}

impl LocalStack {
    /// Boots a stack (see [`crate::local::boot`] for the steps); on error nothing is
    /// left running.
    pub async fn start(options: StackOptions) -> Result<LocalStack, StackError> {
        let turn = Turn::for_options(&options).await?;
        let booted = boot::boot(&options).await?;
        let redis = ::redis::Client::open(booted.endpoints.redis_url.as_str())
            .map_err(StackError::redis("opening a Redis client"))?;
        Ok(LocalStack {
            orchestrator: Arc::new(LocalOrchestrator::new(
                booted.supervisor.clone(),
                booted.data_dir.clone(),
            )),
            handles: StackHandles {
                traffic: crate::handles::traffic(&booted.endpoints, booted.clock, &options)?,
                endpoints: booted.endpoints,
                clock: booted.clock,
                providers: booted.providers,
                admin: booted.admin,
                redis,
                http: booted.http,
                chaos: booted.chaos,
            },
            supervisor: booted.supervisor,
            data_dir: booted.data_dir,
            disk: booted.disk,
            memory: booted.memory,
            boot: booted.report,
            _turn: turn,
        })
    }

    pub(crate) fn handles(&self) -> &StackHandles {
        &self.handles
    }

    pub fn orchestrator(&self) -> Arc<LocalOrchestrator> {
        self.orchestrator.clone()
    }

    /// The stack's directory: `logs/<service>.log`, `pg/`, `redis/`, `pids/`.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The stack's disk of log files and backups (see [`super::disk`]).
    pub fn disk(&self) -> &super::disk::LocalDisk {
        &self.disk
    }

    /// The stack's memory cgroup, or why it has none (see [`crate::memory`]).
    pub fn memory(&self) -> Result<&crate::memory::MemoryCgroup, &str> {
        self.memory.as_ref().map_err(String::as_str)
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
        self.handles.restore_data().await?;
        for wave in Service::TWIN_START_ORDER {
            self.ensure_running(wave).await?;
        }
        self.handles.reset_chaos().await?;
        // After the switches: a DEBUG log left on would write again.
        crate::disk::StackDisk::Local(self.disk.clone())
            .clear()
            .await
            .map_err(|e| StackError::Io {
                action: "clearing the stack's disk".into(),
                source: std::io::Error::other(e),
            })
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

    /// Leaves the stack up (see [`crate::keep`]) and says how to reach and remove it.
    pub fn keep(self) -> Result<String, StackError> {
        self.supervisor.keep()?;
        let ep = &self.handles.endpoints;
        Ok(format!(
            "kept local stack {run}:\n  \
             postgres  psql -h localhost -p {pg} -U musicdb_user -d musicdb\n  \
             redis     redis-cli -p {redis}\n  \
             logs      {logs}\n  \
             PostgreSQL and Redis stay up; the twin's services and the provider \
             stand-ins end with this process.\n  \
             remove it with: drill reap --kept",
            run = self.supervisor.run_dir().run_id(),
            pg = ep.postgres_port,
            redis = ep.redis_port,
            logs = self.data_dir.join("logs").display(),
        ))
    }

    /// Stops everything and removes the stack's files. `Drop` does the same, synchronously.
    pub async fn shutdown(self) -> Result<(), StackError> {
        // Closing the pool first spares PostgreSQL's log a burst of broken connections.
        let _ = tokio::time::timeout(Duration::from_secs(1), self.handles.admin.close()).await;
        let supervisor = self.supervisor.clone();
        tokio::task::spawn_blocking(move || supervisor.teardown_blocking())
            .await
            .map_err(|e| StackError::Io {
                action: "stopping the stack".into(),
                source: std::io::Error::other(e.to_string()),
            })
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        self.supervisor.teardown_blocking();
    }
}
