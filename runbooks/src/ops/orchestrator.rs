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

/// A service's log options, as `docker inspect <service> | jq '.[0].HostConfig.LogConfig'`
/// shows them: the driver and its `max-size` / `max-file` rotation options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogConfig {
    pub driver: String,
    pub max_size: Option<String>,
    pub max_file: Option<String>,
}

impl LogConfig {
    /// The `json-file` driver rotating at `max_size`, keeping `max_file` files.
    pub fn rotating(max_size: &str, max_file: u32) -> Self {
        Self {
            driver: "json-file".into(),
            max_size: Some(max_size.into()),
            max_file: Some(max_file.to_string()),
        }
    }

    /// The twin's environment for these options: a service's log file on the stack's
    /// disk stands for its container log and rotates as the container's options say.
    pub fn env(&self) -> BTreeMap<String, String> {
        [
            (wire::env::LOG_MAX_SIZE, &self.max_size),
            (wire::env::LOG_MAX_FILE, &self.max_file),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name.to_owned(), value.clone()?)))
        .collect()
    }

    /// The options an environment of [`LogConfig::env`] stands for (`json-file`
    /// without rotation when it has none).
    pub fn from_env(env: &BTreeMap<String, String>) -> Self {
        Self {
            driver: "json-file".into(),
            max_size: env.get(wire::env::LOG_MAX_SIZE).cloned(),
            max_file: env.get(wire::env::LOG_MAX_FILE).cloned(),
        }
    }
}

impl std::fmt::Display for LogConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{{\"Type\": \"{}\", \"Config\": {{", self.driver)?;
        let options: Vec<String> = [("max-size", &self.max_size), ("max-file", &self.max_file)]
            .into_iter()
            .filter_map(|(k, v)| Some(format!("\"{k}\": \"{}\"", v.as_ref()?)))
            .collect();
        write!(f, "{}}}}}", options.join(", "))
    }
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
    /// A read-only orchestrator (`drill check`) refused an action that changes the
    /// target; nothing was done.
    #[error("{action} {service}: refused, read-only (nothing was done)")]
    ReadOnly {
        service: String,
        action: &'static str,
    },
    /// The target names no way to reach its services (`docker compose`).
    #[error("{action}: the target names no orchestrator (`docker compose`) to ask")]
    Unavailable { action: &'static str },
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
    /// The log options the service's current container (or process) runs with.
    async fn log_config(&self, service: Service) -> Result<LogConfig, OrchestratorError>;
    /// Log options for the service's next start (the daemon's `log-opts`, which
    /// `docker compose up -d` applies by recreating the container).
    async fn set_log_config(
        &self,
        service: Service,
        config: &LogConfig,
    ) -> Result<(), OrchestratorError> {
        self.set_env(service, config.env()).await
    }
}
