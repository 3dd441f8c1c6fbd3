//! `docker compose …` for the local backend: the [`Orchestrator`] over child processes.
//!
//! What each verb means here:
//! - `stop`: the service's stop signal (SIGTERM; SIGINT, a fast shutdown, for
//!   PostgreSQL), SIGKILL after its grace period; `start` relaunches with the same ports
//!   and data (PostgreSQL keeps its data directory; Redis starts empty, it persists
//!   nothing) and waits until the service is ready.
//! - `kill`: SIGKILL to the process group; `status` then shows `Exited { code: 137 }`.
//! - `pause`/`unpause`: SIGSTOP/SIGCONT to the process group, as the freezer does.
//! - `logs`: the tail of `<data_dir>/logs/<service>.log` (kept across restarts).
//! - `stats`: resident memory of the process group from `/proc` (private memory of each
//!   process plus shared memory once) and CPU since the previous call (the first call
//!   gives the average over the process's life); no memory limit is enforced locally.
//! - `set_env`: variables applied at the service's next start, on top of the stack's.
//! - `log_config`: the rotation the service's log file on the stack's disk was started
//!   with (see [`LogConfig::env`]); the `json-file` driver stands for stdout's file.
//! - `prune`: `docker system prune` reclaims stopped containers, dangling images and
//!   build cache; the local stand-in for those is `<data_dir>/junk/`, where a
//!   disk-filling fault puts such files. Prune empties it and reports what it freed.
//!   It does not touch logs or backups (the runbook deletes those by other steps).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use runbooks::ops::orchestrator::PruneReport;
use runbooks::ops::{LogConfig, Orchestrator, OrchestratorError, ServiceStats, ServiceStatus};
use wire::Service;

use super::logs;
use super::supervisor::{SlotError, SlotStatus, Supervisor};

/// The directory under a stack's data dir that `prune` empties.
pub const JUNK_DIR: &str = "junk";

/// The orchestrator of one local stack.
pub struct LocalOrchestrator {
    supervisor: Arc<Supervisor>,
    data_dir: PathBuf,
}

impl LocalOrchestrator {
    pub(crate) fn new(supervisor: Arc<Supervisor>, data_dir: PathBuf) -> Self {
        Self {
            supervisor,
            data_dir,
        }
    }

    fn check(&self, service: Service) -> Result<(), OrchestratorError> {
        if self.supervisor.contains(service) {
            Ok(())
        } else {
            Err(OrchestratorError::NotInStack { service })
        }
    }
}

fn failed(service: Service, action: &'static str) -> impl Fn(SlotError) -> OrchestratorError {
    move |error| match error {
        SlotError::NotInStack => OrchestratorError::NotInStack { service },
        other => OrchestratorError::Action {
            service,
            action,
            reason: other.to_string(),
        },
    }
}

/// Runs `op` for every service concurrently, as compose does; the first error wins.
async fn each<F, Fut>(services: &[Service], op: F) -> Result<(), OrchestratorError>
where
    F: Fn(Service) -> Fut,
    Fut: std::future::Future<Output = Result<(), OrchestratorError>>,
{
    futures::future::join_all(services.iter().map(|&s| op(s)))
        .await
        .into_iter()
        .collect()
}

#[async_trait]
impl Orchestrator for LocalOrchestrator {
    fn backend(&self) -> &'static str {
        "local"
    }

    async fn stop(&self, services: &[Service]) -> Result<(), OrchestratorError> {
        each(services, |s| async move {
            self.check(s)?;
            self.supervisor.stop(s).await.map_err(failed(s, "stop"))
        })
        .await
    }

    async fn start(&self, services: &[Service]) -> Result<(), OrchestratorError> {
        each(services, |s| async move {
            self.check(s)?;
            self.supervisor
                .start(s)
                .await
                .map_err(|e| OrchestratorError::Action {
                    service: s,
                    action: "start",
                    reason: e.to_string(),
                })
        })
        .await
    }

    async fn restart(&self, services: &[Service]) -> Result<(), OrchestratorError> {
        each(services, |s| async move {
            self.check(s)?;
            self.supervisor
                .stop(s)
                .await
                .map_err(failed(s, "restart"))?;
            self.supervisor
                .start(s)
                .await
                .map_err(|e| OrchestratorError::Action {
                    service: s,
                    action: "restart",
                    reason: e.to_string(),
                })
        })
        .await
    }

    async fn kill(&self, service: Service) -> Result<(), OrchestratorError> {
        self.check(service)?;
        self.supervisor
            .kill(service)
            .await
            .map_err(failed(service, "kill"))
    }

    async fn pause(&self, service: Service) -> Result<(), OrchestratorError> {
        self.check(service)?;
        self.supervisor
            .pause(service)
            .await
            .map_err(failed(service, "pause"))
    }

    async fn unpause(&self, service: Service) -> Result<(), OrchestratorError> {
        self.check(service)?;
        self.supervisor
            .unpause(service)
            .await
            .map_err(failed(service, "unpause"))
    }

    async fn status(&self, service: Service) -> Result<ServiceStatus, OrchestratorError> {
        self.check(service)?;
        let status = self
            .supervisor
            .status(service)
            .map_err(failed(service, "status"))?;
        Ok(match status {
            SlotStatus::Running => ServiceStatus::Running,
            SlotStatus::Paused => ServiceStatus::Paused,
            SlotStatus::Stopped => ServiceStatus::Stopped,
            // No cgroup, no OOM killer of our own: a local process is never "OOM killed"
            // in the docker sense (the host's OOM killer would show as SIGKILL, 137).
            SlotStatus::Exited(code) => ServiceStatus::Exited {
                code,
                oom_killed: false,
            },
        })
    }

    async fn logs(&self, service: Service, tail: usize) -> Result<Vec<String>, OrchestratorError> {
        self.check(service)?;
        let path = logs::path(&self.data_dir, service);
        tokio::task::spawn_blocking(move || logs::tail(&path, tail))
            .await
            .map_err(|e| OrchestratorError::Other(format!("reading logs: {e}")))?
            .map_err(|e| OrchestratorError::Action {
                service,
                action: "logs",
                reason: e.to_string(),
            })
    }

    async fn stats(&self) -> Result<Vec<ServiceStats>, OrchestratorError> {
        Ok(self
            .supervisor
            .services()
            .filter_map(|service| {
                let stats = self.supervisor.stats(service)?;
                Some(ServiceStats {
                    service,
                    memory_bytes: stats.memory_bytes,
                    memory_limit_bytes: None,
                    cpu_percent: stats.cpu_percent,
                })
            })
            .collect())
    }

    async fn set_env(
        &self,
        service: Service,
        vars: BTreeMap<String, String>,
    ) -> Result<(), OrchestratorError> {
        self.check(service)?;
        self.supervisor
            .set_env(service, vars)
            .map_err(failed(service, "set_env"))
    }

    async fn log_config(&self, service: Service) -> Result<LogConfig, OrchestratorError> {
        self.check(service)?;
        let env = self
            .supervisor
            .applied_env(service)
            .map_err(failed(service, "log_config"))?;
        Ok(LogConfig::from_env(&env))
    }

    async fn prune(&self) -> Result<PruneReport, OrchestratorError> {
        let junk = self.data_dir.join(JUNK_DIR);
        tokio::task::spawn_blocking(move || prune_dir(&junk))
            .await
            .map_err(|e| OrchestratorError::Other(format!("pruning: {e}")))?
            .map_err(|e| OrchestratorError::Other(format!("pruning: {e}")))
    }
}

/// Removes everything inside `dir` (not `dir` itself), reporting the bytes freed.
fn prune_dir(dir: &Path) -> std::io::Result<PruneReport> {
    let mut report = PruneReport::default();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(report),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        report.reclaimed_bytes += size_of_tree(&path);
        if path.is_dir() && !path.is_symlink() {
            fs::remove_dir_all(&path)?;
        } else {
            fs::remove_file(&path)?;
        }
        report.removed.push(path.display().to_string());
    }
    report.removed.sort();
    Ok(report)
}

fn size_of_tree(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_dir() {
        fs::read_dir(path)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| size_of_tree(&e.path()))
            .sum()
    } else {
        meta.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_empties_the_junk_dir_and_counts_what_it_freed() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join(JUNK_DIR);
        fs::create_dir_all(junk.join("layer")).unwrap();
        fs::write(junk.join("image.tar"), vec![0u8; 1000]).unwrap();
        fs::write(junk.join("layer").join("blob"), vec![0u8; 24]).unwrap();
        let report = prune_dir(&junk).unwrap();
        assert_eq!(report.reclaimed_bytes, 1024);
        assert_eq!(report.removed.len(), 2);
        assert!(junk.is_dir() && fs::read_dir(&junk).unwrap().next().is_none());
        assert_eq!(
            prune_dir(&dir.path().join("absent")).unwrap(),
            PruneReport::default()
        );
    }
}
