//! Service operations the runbooks type as `docker compose …` commands.
//!
//! The runbooks stop, start, restart, tail and inspect services by compose name.
//! Both backends implement this one interface (child processes on the local
//! backend, containers on docker), so runbook code runs unchanged on either.

use std::collections::BTreeMap;

use async_trait::async_trait;
use wire::Service;

/// What `docker compose ps` would say of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceStatus {
    Running,
    Paused,
    /// Stopped on purpose (`docker compose stop`).
    Stopped,
    /// Ended by itself: its exit code (137 for SIGKILL) and whether the kernel's
    /// OOM killer did it.
    Exited {
        code: Option<i32>,
        oom_killed: bool,
    },
}

/// One row of `docker stats --no-stream`.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceStats {
    pub service: Service,
    pub memory_bytes: u64,
    /// The memory limit, when the backend enforces one.
    pub memory_limit_bytes: Option<u64>,
    pub cpu_percent: f64,
}

/// What `docker system prune -f` reclaimed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PruneReport {
    pub reclaimed_bytes: u64,
    pub removed: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum OrchestratorError {
    #[error("{service}: {action} failed: {reason}")]
    Action {
        service: Service,
        action: &'static str,
        reason: String,
    },
    #[error("{service} is not part of this stack")]
    NotInStack { service: Service },
    #[error("{0}")]
    Other(String),
}

#[async_trait]
pub trait Orchestrator: Send + Sync {
    /// `local` or `docker`.
    fn backend(&self) -> &'static str;

    /// `docker compose stop …`: graceful stop (SIGTERM, then SIGKILL after a grace period).
    async fn stop(&self, services: &[Service]) -> Result<(), OrchestratorError>;
    /// `docker compose start …`: starts stopped services with their current environment;
    /// returns once each is ready (its port answers, or it logged that it started).
    async fn start(&self, services: &[Service]) -> Result<(), OrchestratorError>;
    /// `docker compose restart …`.
    async fn restart(&self, services: &[Service]) -> Result<(), OrchestratorError>;
    /// `docker kill`: SIGKILL, no grace.
    async fn kill(&self, service: Service) -> Result<(), OrchestratorError>;
    /// `docker pause` / `docker unpause`.
    async fn pause(&self, service: Service) -> Result<(), OrchestratorError>;
    async fn unpause(&self, service: Service) -> Result<(), OrchestratorError>;
    /// `docker compose ps`.
    async fn status(&self, service: Service) -> Result<ServiceStatus, OrchestratorError>;
    /// `docker compose logs <service> --tail=N`: the last `tail` lines, oldest first.
    async fn logs(&self, service: Service, tail: usize) -> Result<Vec<String>, OrchestratorError>;
    /// `docker stats --no-stream` for every running service.
    async fn stats(&self) -> Result<Vec<ServiceStats>, OrchestratorError>;
    /// Edits a service's environment for its next start ("Edit service environment
    /// variables … docker compose restart").
    async fn set_env(
        &self,
        service: Service,
        vars: BTreeMap<String, String>,
    ) -> Result<(), OrchestratorError>;
    /// `docker system prune -f`.
    async fn prune(&self) -> Result<PruneReport, OrchestratorError>;
}
