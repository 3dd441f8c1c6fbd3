//! The machine a stack runs on, as `df -h` and `free -h` show it to the runbooks.
//!
//! `DiskSpaceHigh` and `MemoryUsageHigh` read these. Disk is the stack's own disk
//! ([`crate::disk`]): on docker the size-limited tmpfs volume its containers write logs
//! and backups to, on the local backend the tmpfs mounted under its run directory (or,
//! without root, the plain directory there, which is not size-limited). Memory is the
//! stack's memory cgroup ([`crate::memory`]): its limit is the total, what it is
//! charged less inactive file cache is used. Without one, on the local backend used is
//! the sum of the services' memory (from `/proc`) against the same budget: the alert
//! can fire, but nothing stops the stack at the budget; on docker it cannot be read,
//! and the alert evaluation says so.

use std::sync::Arc;

use async_trait::async_trait;
use runbooks::ops::{DiskDir, DiskFile, Host, HostError, Orchestrator, Usage};

use crate::disk::{DiskError, StackDisk};
use crate::memory::{DEFAULT_MEMORY_BUDGET, MemoryCgroup};

/// Disk and memory of one stack's host.
pub(crate) struct StackHost {
    pub disk: StackDisk,
    /// The stack's memory cgroup, or why it has none.
    pub memory: Result<MemoryCgroup, String>,
    /// Where the services' memory is summed without a cgroup: the local backend's,
    /// which reads `/proc`. Not the engine's `docker stats`, which takes seconds a
    /// call, too slow for the alert evaluation that reads `free -h` every drill.
    pub summed_from: Option<Arc<dyn Orchestrator>>,
    pub oom: OomRecord,
}

/// Where the stack's OOM kills are recorded.
pub(crate) enum OomRecord {
    /// The stack's memory cgroup and those below it count them (local backend, whose
    /// services' cgroups outlive their processes).
    Cgroup(MemoryCgroup),
    /// The engine's `oom` events of the run's containers (docker backend: a killed
    /// container's cgroup goes with it).
    Engine {
        docker: bollard::Docker,
        run_id: String,
        since: std::time::SystemTime,
    },
    /// Nothing counts them: why.
    Unknown(String),
}

fn failed(what: &'static str) -> impl FnOnce(DiskError) -> HostError {
    move |e| HostError {
        what,
        reason: e.to_string(),
    }
}

#[async_trait]
impl Host for StackHost {
    async fn disk(&self) -> Result<Usage, HostError> {
        self.disk.usage().await.map_err(failed("df"))
    }

    async fn memory(&self) -> Result<Usage, HostError> {
        let failed = |reason: String| HostError {
            what: "free",
            reason,
        };
        match &self.memory {
            Ok(cgroup) => {
                let reading = cgroup.read().map_err(|e| failed(e.to_string()))?;
                Ok(Usage {
                    used: reading.used,
                    total: reading.limit,
                })
            }
            Err(reason) => {
                let Some(orchestrator) = &self.summed_from else {
                    return Err(failed(format!(
                        "the stack's memory is not limited, and the engine's stats are too \
                         slow to sum for it: {reason}"
                    )));
                };
                let stats = orchestrator
                    .stats()
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                Ok(Usage {
                    used: stats.iter().map(|s| s.memory_bytes).sum(),
                    total: DEFAULT_MEMORY_BUDGET,
                })
            }
        }
    }

    async fn oom_kills(&self) -> Result<u64, HostError> {
        let failed = |reason: String| HostError {
            what: "dmesg | grep -i oom",
            reason,
        };
        match &self.oom {
            OomRecord::Cgroup(cgroup) => cgroup
                .read()
                .map(|reading| reading.oom_kills)
                .map_err(|e| failed(e.to_string())),
            OomRecord::Engine {
                docker,
                run_id,
                since,
            } => crate::docker::engine::oom_events(docker, run_id, *since)
                .await
                .map_err(|e| failed(e.to_string())),
            OomRecord::Unknown(reason) => Err(failed(reason.clone())),
        }
    }

    fn dir(&self, dir: DiskDir) -> String {
        self.disk.dir(dir)
    }

    async fn files(&self, dir: DiskDir) -> Result<Vec<DiskFile>, HostError> {
        self.disk.files(dir).await.map_err(failed("find"))
    }

    async fn truncate(&self, paths: &[String], bytes: u64) -> Result<(), HostError> {
        self.disk
            .truncate(paths, bytes)
            .await
            .map_err(failed("truncate"))
    }

    async fn remove(&self, paths: &[String]) -> Result<(), HostError> {
        self.disk.remove(paths).await.map_err(failed("rm"))
    }
}
