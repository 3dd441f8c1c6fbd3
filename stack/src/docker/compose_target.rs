//! A real deployment's compose project, read-only: what `drill check` asks for the
//! runbooks' `docker compose ps|logs|stats` and `docker inspect` steps.
//!
//! A target file names the project (`[services] compose_project = "songnodes"`) and,
//! if not the local one, the engine (`docker_host`). Compose finds a project's
//! containers by their labels; so does [`ComposeTarget`]: the service's container is
//! the one labelled with the project and the service that is not a one-off. It reads
//! only — state, the log's tail, stats, log options — through the same code as the
//! stack's own orchestrator (`super::container_reads`), and refuses every change
//! itself, below the read-only wrapper `drill check` puts around it anyway.

use std::collections::HashMap;

use async_trait::async_trait;
use bollard::Docker;
use bollard::query_parameters::ListContainersOptions;
use runbooks::ops::{
    LogConfig, Orchestrator, OrchestratorError, PruneReport, ServiceStats, ServiceStatus,
    read_only::refuse,
};
use wire::Service;

use super::compose_project::LABEL_ONE_OFF;
use super::container_reads;
use super::engine::{DockerError, LABEL_PROJECT, LABEL_SERVICE};

/// The services of one compose project on one engine, read-only.
pub struct ComposeTarget {
    docker: Docker,
    project: String,
}

impl ComposeTarget {
    /// Connects to the engine at `docker_host` (`unix:///…` or `tcp://…`; the local
    /// one, or `DOCKER_HOST`, when `None`) and checks that it answers.
    pub async fn connect(docker_host: Option<&str>, project: &str) -> Result<Self, DockerError> {
        let docker = match docker_host {
            None => Docker::connect_with_defaults(),
            Some(host) if host.starts_with("unix://") => {
                Docker::connect_with_unix(host, 20, bollard::API_DEFAULT_VERSION)
            }
            Some(host) => Docker::connect_with_http(host, 20, bollard::API_DEFAULT_VERSION),
        }
        .map_err(DockerError::engine(format!(
            "connecting to the docker engine {}",
            docker_host.unwrap_or("(local)")
        )))?;
        docker
            .ping()
            .await
            .map_err(DockerError::engine("asking the docker engine for a ping"))?;
        Ok(Self {
            docker,
            project: project.to_owned(),
        })
    }

    /// The name of `service`'s container in the project.
    async fn container(&self, service: Service) -> Result<String, OrchestratorError> {
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![
                format!("{LABEL_PROJECT}={}", self.project),
                format!("{LABEL_SERVICE}={}", service.name()),
                format!("{LABEL_ONE_OFF}=False"),
            ],
        )]);
        let found = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|e| OrchestratorError::Other(format!("listing containers: {e}")))?;
        found
            .into_iter()
            .find_map(|c| c.names?.into_iter().next())
            .map(|name| name.trim_start_matches('/').to_owned())
            .ok_or_else(|| {
                OrchestratorError::Other(format!(
                    "compose project {} has no container of {service}",
                    self.project
                ))
            })
    }
}

#[async_trait]
impl Orchestrator for ComposeTarget {
    fn backend(&self) -> &'static str {
        "docker"
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
        let name = self.container(service).await?;
        let state = container_reads::state(&self.docker, &name)
            .await
            .map_err(|e| OrchestratorError::Other(e.to_string()))?;
        Ok(container_reads::status(state, false))
    }
    async fn logs(&self, service: Service, tail: usize) -> Result<Vec<String>, OrchestratorError> {
        let name = self.container(service).await?;
        Ok(container_reads::tail(&self.docker, &name, tail, 0).await)
    }
    async fn stats(&self) -> Result<Vec<ServiceStats>, OrchestratorError> {
        let mut all = Vec::new();
        for service in Service::ALL {
            if let Ok(name) = self.container(service).await
                && let Some(stats) = container_reads::stats(&self.docker, service, &name).await
            {
                all.push(stats);
            }
        }
        Ok(all)
    }
    async fn set_env(
        &self,
        service: Service,
        _: std::collections::BTreeMap<String, String>,
    ) -> Result<(), OrchestratorError> {
        Err(refuse(&[service], "set environment of"))
    }
    async fn prune(&self) -> Result<PruneReport, OrchestratorError> {
        Err(refuse(&[], "prune"))
    }
    async fn log_config(&self, service: Service) -> Result<LogConfig, OrchestratorError> {
        let name = self.container(service).await?;
        container_reads::log_config(&self.docker, service, &name).await
    }
    async fn set_log_config(
        &self,
        service: Service,
        _: &LogConfig,
    ) -> Result<(), OrchestratorError> {
        Err(refuse(&[service], "set log options of"))
    }
}
