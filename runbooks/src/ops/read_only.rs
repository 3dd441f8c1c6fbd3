//! The `Ops` of `drill check`: the runbooks' reads against a real deployment, and
//! nothing else.
//!
//! Read-only is built in at every layer a runbook acts through, so that no step can
//! change the target whatever its code says:
//! - HTTP: only GET and HEAD leave the client ([`crate::ops::HttpApi::read_only`]);
//!   anything else is refused before it is sent.
//! - SQL: every session starts with `default_transaction_read_only = on` and a
//!   statement timeout, so PostgreSQL itself refuses any write ("cannot execute UPDATE
//!   in a read-only transaction") and ends any long query.
//! - Services: [`ReadOnlyOrchestrator`] passes status, logs, stats and log options
//!   through and refuses stop, start, restart, kill, pause, environment changes and
//!   prunes; [`NoOrchestrator`] stands in when the target names none.
//! - Approvals: every destructive step is refused at the gate ([`super::RefuseAll`]).
//!
//! Two things are beyond these layers, and `drill check` never runs them: SQL
//! functions with side effects inside a SELECT (`pg_terminate_backend`), which a
//! read-only transaction allows — only resolutions call them, and a check runs no
//! resolution; give the check a role without `pg_signal_backend` all the same — and
//! Redis commands (the check reads `INFO` only).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use wire::Service;

use super::orchestrator::{
    LogConfig, Orchestrator, OrchestratorError, PruneReport, ServiceStats, ServiceStatus,
};

/// Passes an orchestrator's reads through and refuses everything that changes a service.
pub struct ReadOnlyOrchestrator(pub Arc<dyn Orchestrator>);

/// The error of a change a read-only orchestrator refused.
pub fn refuse(services: &[Service], action: &'static str) -> OrchestratorError {
    OrchestratorError::ReadOnly {
        service: services
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(" "),
        action,
    }
}

#[async_trait]
impl Orchestrator for ReadOnlyOrchestrator {
    fn backend(&self) -> &'static str {
        self.0.backend()
    }
    async fn stop(&self, services: &[Service]) -> Result<(), OrchestratorError> {
        Err(refuse(services, "stop"))
    }
    async fn start(&self, services: &[Service]) -> Result<(), OrchestratorError> {
        Err(refuse(services, "start"))
    }
    async fn restart(&self, services: &[Service]) -> Result<(), OrchestratorError> {
        Err(refuse(services, "restart"))
    }
    async fn kill(&self, service: Service) -> Result<(), OrchestratorError> {
        Err(refuse(&[service], "kill"))
    }
    async fn pause(&self, service: Service) -> Result<(), OrchestratorError> {
        Err(refuse(&[service], "pause"))
    }
    async fn unpause(&self, service: Service) -> Result<(), OrchestratorError> {
        Err(refuse(&[service], "unpause"))
    }
    async fn status(&self, service: Service) -> Result<ServiceStatus, OrchestratorError> {
        self.0.status(service).await
    }
    async fn logs(&self, service: Service, tail: usize) -> Result<Vec<String>, OrchestratorError> {
        self.0.logs(service, tail).await
    }
    async fn stats(&self) -> Result<Vec<ServiceStats>, OrchestratorError> {
        self.0.stats().await
    }
    async fn set_env(
        &self,
        service: Service,
        _vars: BTreeMap<String, String>,
    ) -> Result<(), OrchestratorError> {
        Err(refuse(&[service], "change the environment of"))
    }
    async fn prune(&self) -> Result<PruneReport, OrchestratorError> {
        Err(refuse(&[], "docker system prune"))
    }
    async fn log_config(&self, service: Service) -> Result<LogConfig, OrchestratorError> {
        self.0.log_config(service).await
    }
    async fn set_log_config(
        &self,
        service: Service,
        _config: &LogConfig,
    ) -> Result<(), OrchestratorError> {
        Err(refuse(&[service], "change the log options of"))
    }
}

/// The orchestrator of a target that names none: every call says so.
pub struct NoOrchestrator;

#[async_trait]
impl Orchestrator for NoOrchestrator {
    fn backend(&self) -> &'static str {
        "none"
    }
    async fn stop(&self, _: &[Service]) -> Result<(), OrchestratorError> {
        Err(OrchestratorError::Unavailable { action: "stop" })
    }
    async fn start(&self, _: &[Service]) -> Result<(), OrchestratorError> {
        Err(OrchestratorError::Unavailable { action: "start" })
    }
    async fn restart(&self, _: &[Service]) -> Result<(), OrchestratorError> {
        Err(OrchestratorError::Unavailable { action: "restart" })
    }
    async fn kill(&self, _: Service) -> Result<(), OrchestratorError> {
        Err(OrchestratorError::Unavailable { action: "kill" })
    }
    async fn pause(&self, _: Service) -> Result<(), OrchestratorError> {
        Err(OrchestratorError::Unavailable { action: "pause" })
    }
    async fn unpause(&self, _: Service) -> Result<(), OrchestratorError> {
        Err(OrchestratorError::Unavailable { action: "unpause" })
    }
    async fn status(&self, _: Service) -> Result<ServiceStatus, OrchestratorError> {
        Err(OrchestratorError::Unavailable {
            action: "docker compose ps",
        })
    }
    async fn logs(&self, _: Service, _: usize) -> Result<Vec<String>, OrchestratorError> {
        Err(OrchestratorError::Unavailable {
            action: "docker compose logs",
        })
    }
    async fn stats(&self) -> Result<Vec<ServiceStats>, OrchestratorError> {
        Err(OrchestratorError::Unavailable {
            action: "docker stats",
        })
    }
    async fn set_env(
        &self,
        _: Service,
        _: BTreeMap<String, String>,
    ) -> Result<(), OrchestratorError> {
        Err(OrchestratorError::Unavailable {
            action: "change the environment",
        })
    }
    async fn prune(&self) -> Result<PruneReport, OrchestratorError> {
        Err(OrchestratorError::Unavailable {
            action: "docker system prune",
        })
    }
    async fn log_config(&self, _: Service) -> Result<LogConfig, OrchestratorError> {
        Err(OrchestratorError::Unavailable {
            action: "docker inspect",
        })
    }
}
