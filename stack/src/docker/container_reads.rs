//! Reading one container as the runbooks' `docker compose ps|logs|stats` and `docker
//! inspect` do: its state, its log's tail, its memory and CPU, its log options.
//!
//! Shared by the stack's own orchestrator ([`super::DockerOrchestrator`], which knows
//! its containers by name) and the read-only one of a real deployment
//! ([`super::compose_target`], which finds them by compose's labels).

use bollard::Docker;
use bollard::models::ContainerStateStatusEnum;
use bollard::query_parameters::{LogsOptions, StatsOptions};
use futures::StreamExt;
use runbooks::ops::{LogConfig, OrchestratorError, ServiceStats, ServiceStatus};
use wire::Service;

use super::engine::DockerError;

/// A container's state: status, exit code, whether the kernel killed it for memory.
pub(crate) type State = (Option<ContainerStateStatusEnum>, Option<i64>, bool);

pub(crate) async fn state(docker: &Docker, container: &str) -> Result<State, DockerError> {
    let inspected = docker
        .inspect_container(container, None)
        .await
        .map_err(DockerError::engine(format!("inspecting {container}")))?;
    let state = inspected.state.unwrap_or_default();
    Ok((
        state.status,
        state.exit_code,
        state.oom_killed.unwrap_or(false),
    ))
}

/// What `ps` says of a container in `state`; `on_purpose`: it was stopped, not exited.
pub(crate) fn status((status, code, oom_killed): State, on_purpose: bool) -> ServiceStatus {
    match status {
        Some(ContainerStateStatusEnum::RUNNING | ContainerStateStatusEnum::RESTARTING) => {
            ServiceStatus::Running
        }
        Some(ContainerStateStatusEnum::PAUSED) => ServiceStatus::Paused,
        Some(ContainerStateStatusEnum::CREATED) => ServiceStatus::Stopped,
        _ if on_purpose => ServiceStatus::Stopped,
        _ => ServiceStatus::Exited {
            code: code.map(|c| c as i32),
            oom_killed,
        },
    }
}

/// The last `lines` of a container's log, written since `since` (Unix seconds).
pub(crate) async fn tail(
    docker: &Docker,
    container: &str,
    lines: usize,
    since: i64,
) -> Vec<String> {
    let options = LogsOptions {
        stdout: true,
        stderr: true,
        tail: lines.to_string(),
        since: since as i32,
        ..Default::default()
    };
    let mut stream = docker.logs(container, Some(options));
    let mut text = String::new();
    while let Some(Ok(chunk)) = stream.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
    }
    text.lines().map(str::to_owned).collect()
}

/// `docker stats` of a running container; `None` when it is not running.
pub(crate) async fn stats(
    docker: &Docker,
    service: Service,
    container: &str,
) -> Option<ServiceStats> {
    match state(docker, container).await {
        Ok((Some(ContainerStateStatusEnum::RUNNING), _, _)) => {}
        _ => return None,
    }
    // Not one-shot: the engine samples twice, which the CPU figure needs.
    let options = StatsOptions {
        stream: false,
        one_shot: false,
    };
    let stats = docker.stats(container, Some(options)).next().await?.ok()?;
    Some(service_stats(service, &stats))
}

/// `docker inspect <container> | jq '.[0].HostConfig.LogConfig'`.
pub(crate) async fn log_config(
    docker: &Docker,
    service: Service,
    container: &str,
) -> Result<LogConfig, OrchestratorError> {
    let inspected = docker
        .inspect_container(container, None)
        .await
        .map_err(|e| OrchestratorError::Action {
            service,
            action: "inspect",
            reason: e.to_string(),
        })?;
    let log = inspected.host_config.and_then(|h| h.log_config);
    let options = log
        .as_ref()
        .and_then(|l| l.config.clone())
        .unwrap_or_default();
    Ok(LogConfig {
        driver: log.and_then(|l| l.typ).unwrap_or_default(),
        max_size: options.get("max-size").cloned(),
        max_file: options.get("max-file").cloned(),
    })
}

/// A row of `docker stats`: memory without the page cache, as the CLI shows it;
/// CPU over the engine's two samples, in percent of one core.
fn service_stats(
    service: Service,
    stats: &bollard::models::ContainerStatsResponse,
) -> ServiceStats {
    let memory = stats.memory_stats.as_ref();
    let usage = memory.and_then(|m| m.usage).unwrap_or(0);
    let cache = memory
        .and_then(|m| m.stats.as_ref())
        .and_then(|s| {
            s.get("total_inactive_file")
                .or_else(|| s.get("inactive_file"))
        })
        .copied()
        .unwrap_or(0);
    // An unlimited container reports the host's memory (or more) as its limit.
    let limit = memory.and_then(|m| m.limit).filter(|&l| l < host_memory());
    let cpu = |s: Option<&bollard::models::ContainerCpuStats>| {
        let s = s.cloned().unwrap_or_default();
        (
            s.cpu_usage.and_then(|u| u.total_usage).unwrap_or(0),
            s.system_cpu_usage.unwrap_or(0),
            s.online_cpus.unwrap_or(1).max(1),
        )
    };
    let (total, system, cpus) = cpu(stats.cpu_stats.as_ref());
    let (pre_total, pre_system, _) = cpu(stats.precpu_stats.as_ref());
    let (delta, system_delta) = (
        total.saturating_sub(pre_total),
        system.saturating_sub(pre_system),
    );
    let cpu_percent = if system_delta > 0 {
        delta as f64 / system_delta as f64 * f64::from(cpus) * 100.0
    } else {
        0.0
    };
    ServiceStats {
        service,
        memory_bytes: usage.saturating_sub(cache),
        memory_limit_bytes: limit,
        cpu_percent,
    }
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(u64::MAX)
}
