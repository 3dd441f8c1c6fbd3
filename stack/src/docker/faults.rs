//! Container-level faults of the docker backend: a full disk and a cut network link.
//!
//! Both are facts of the engine, not switches inside a program:
//! - **disk fill**: the stack's disk is a size-limited tmpfs volume (see
//!   [`super::stack`]); a filler file written from inside a container that mounts it
//!   (`docker exec … dd`) takes every free byte, so the twin's log writes and any other
//!   write there fail with ENOSPC. Healing removes the filler. A tmpfs is memory: the
//!   filler's pages count against the container that wrote it (PostgreSQL's, which
//!   has no limit unless one is asked for), as a real backup job's file would.
//!   Appends to a file whose last page has room still succeed for a few lines, as on
//!   any full file system; new files fail at once.
//! - **gateway disconnect**: `docker network disconnect` of api-gateway-internal from
//!   the providers' network, the only way it reaches Spotify, MusicBrainz and Last.fm;
//!   its calls to them fail to connect. Healing connects it again under its alias; its
//!   provider URLs name the host's address on that network, which does not change, so
//!   they work again as they are.
//!
//! Injecting returns a [`ContainerHeal`], which undoes the fault; undoing is
//! idempotent (removing an absent filler, connecting a connected container, do
//! nothing), as every fault's heal must be. [`DockerStack::reset`] undoes both.

use std::time::Duration;

use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{EndpointSettings, NetworkConnectRequest, NetworkDisconnectRequest};
use futures::StreamExt;
use wire::Service;

use super::engine::{self, DockerError};
use super::stack::DockerStack;

/// Where twin containers mount the stack's disk; each service appends its log to
/// `<service>.log` here.
pub const LOG_DIR: &str = "/var/log/songnodes";
/// Where PostgreSQL's container mounts the same disk; its backups are in
/// [`BACKUP_DIR`], the disk's `postgres/` directory (see [`crate::disk`]).
pub const BACKUP_MOUNT: &str = "/backups";
/// PostgreSQL's backups, as the runbook names them.
pub const BACKUP_DIR: &str = "/backups/postgres";
/// The disk's size unless [`super::stack::DockerOptions::disk_size`] says otherwise.
pub use crate::disk::DEFAULT_DISK_SIZE;
/// The file that fills the disk, in its root.
const FILLER: &str = ".drill-disk-fill";
/// Filling 64 MiB of tmpfs takes tens of milliseconds; this bounds a stuck engine.
const EXEC_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a container fault could not be injected, healed or observed.
#[derive(Debug, thiserror::Error)]
pub enum ContainerFaultError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error("no running container mounts the stack's disk ({volume}) to {action} from")]
    NoContainer {
        volume: String,
        action: &'static str,
    },
    #[error("`{command}` in {container} did not {what}: exit code {code:?}, output: {output}")]
    Exec {
        container: String,
        command: String,
        what: &'static str,
        code: Option<i64>,
        output: String,
    },
    #[error("healing a container fault: the healing thread panicked")]
    HealPanicked,
    #[error("reading {service}'s log file status at {url}: {reason}")]
    LogStatus {
        service: Service,
        url: String,
        reason: String,
    },
}

/// What a command run with `docker exec` printed (stdout and stderr) and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: Option<i64>,
    pub output: String,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }
}

/// The stack's disk as `df` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskUsage {
    pub total_bytes: u64,
    pub available_bytes: u64,
}

/// How writing a twin service's log file goes (its `GET /chaos/log_file`).
pub use wire::api::LogFileStatus;

/// Measures a docker stack's disk (`df` from inside a container that mounts it).
#[derive(Clone, Debug)]
pub struct DiskGauge {
    docker: Docker,
    volume: String,
    mounts: Vec<(String, &'static str)>,
}

impl DiskGauge {
    /// `df` of the disk (`stat -f` in a container that mounts it).
    pub async fn usage(&self) -> Result<DiskUsage, ContainerFaultError> {
        let command = "stat -f -c '%b %a %S' \"$DISK\"";
        let output = self.run(command).await?;
        parse_statfs(&output).ok_or_else(|| ContainerFaultError::Exec {
            container: self.volume.clone(),
            command: command.to_owned(),
            what: "measure the disk",
            code: Some(0),
            output,
        })
    }

    /// Runs a shell script in a running container that mounts the disk, with `$DISK`
    /// set to where that container sees the disk's root; its output, or an error when
    /// it exits non-zero.
    pub async fn run(&self, script: &str) -> Result<String, ContainerFaultError> {
        let (container, dir) = running_mount(&self.docker, &self.mounts)
            .await?
            .ok_or_else(|| ContainerFaultError::NoContainer {
                volume: self.volume.clone(),
                action: "work on it",
            })?;
        let full = format!("DISK={dir}; {script}");
        let output = exec(&self.docker, &container, &["sh", "-c", &full]).await?;
        if output.success() {
            Ok(output.output)
        } else {
            Err(ContainerFaultError::Exec {
                container,
                command: script.to_owned(),
                what: "succeed on the stack's disk",
                code: output.exit_code,
                output: output.output,
            })
        }
    }
}

/// Undoes one injected container fault.
#[derive(Clone, Debug)]
pub struct ContainerHeal {
    docker: Docker,
    undo: Undo,
}

#[derive(Clone, Debug)]
enum Undo {
    /// Remove the filler, from whichever of these containers runs.
    Disk {
        volume: String,
        mounts: Vec<(String, &'static str)>,
    },
    /// Connect `container` to `network` again.
    Network {
        network: String,
        container: String,
        alias: String,
    },
}

impl ContainerHeal {
    pub async fn heal(&self) -> Result<(), ContainerFaultError> {
        self.undo.run(&self.docker).await
    }

    /// [`ContainerHeal::heal`] where nothing can be awaited (a guard's `Drop`): on a
    /// thread and runtime of its own, with a client of its own (one bound to the
    /// caller's runtime may not work from another).
    pub fn heal_blocking(&self) -> Result<(), ContainerFaultError> {
        let undo = self.undo.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| {
                    DockerError::from(crate::StackError::io("building a runtime to heal")(e))
                })?;
            runtime.block_on(async {
                let docker = engine::connect().await?;
                undo.run(&docker).await
            })
        })
        .join()
        .unwrap_or(Err(ContainerFaultError::HealPanicked))
    }
}

impl Undo {
    async fn run(&self, docker: &Docker) -> Result<(), ContainerFaultError> {
        match self {
            Undo::Disk { volume, mounts } => {
                let Some((container, dir)) = running_mount(docker, mounts).await? else {
                    // No running container mounts the tmpfs, so the engine has
                    // unmounted it and the filler is gone with it.
                    tracing::debug!(volume, "no container mounts the disk: nothing to free");
                    return Ok(());
                };
                let command = format!("rm -f {dir}/{FILLER}");
                let output = exec(
                    docker,
                    &container,
                    &["rm", "-f", &format!("{dir}/{FILLER}")],
                )
                .await?;
                if !output.success() {
                    return Err(ContainerFaultError::Exec {
                        container,
                        command,
                        what: "remove the filler",
                        code: output.exit_code,
                        output: output.output,
                    });
                }
                Ok(())
            }
            Undo::Network {
                network,
                container,
                alias,
            } => {
                if attached(docker, container, network).await? {
                    return Ok(());
                }
                docker
                    .connect_network(
                        network,
                        NetworkConnectRequest {
                            container: container.clone(),
                            endpoint_config: Some(EndpointSettings {
                                aliases: Some(vec![alias.clone()]),
                                ..Default::default()
                            }),
                        },
                    )
                    .await
                    .map_err(DockerError::engine(format!(
                        "connecting {container} to network {network}"
                    )))?;
                Ok(())
            }
        }
    }
}

impl DockerStack {
    /// Runs `cmd` in `service`'s container, as `docker exec`, and waits for it.
    pub async fn exec(&self, service: Service, cmd: &[&str]) -> Result<ExecOutput, DockerError> {
        exec(self.docker(), &self.container_of(service), cmd).await
    }

    /// Fills the stack's disk to the last byte with a filler file, written from a
    /// running container that mounts it (PostgreSQL's, unless it is down). Filling a
    /// full disk again changes nothing.
    pub async fn fill_disk(&self) -> Result<ContainerHeal, ContainerFaultError> {
        let undo = self.disk_undo();
        let Undo::Disk { mounts, .. } = &undo else {
            unreachable!("disk_undo makes a disk undo")
        };
        let (container, dir) = running_mount(self.docker(), mounts).await?.ok_or_else(|| {
            ContainerFaultError::NoContainer {
                volume: self.disk.volume.clone(),
                action: "fill it",
            }
        })?;
        // dd stops at ENOSPC (exit status 1, expected); appending tops up a filler that
        // is already there instead of emptying it first.
        let script = format!(
            "dd if=/dev/zero of={dir}/{FILLER} bs=1M oflag=append conv=notrunc status=none 2>&1; \
             stat -f -c '%b %a %S' {dir}"
        );
        let output = exec(self.docker(), &container, &["sh", "-c", &script]).await?;
        match parse_statfs(&output.output) {
            Some(usage) if usage.available_bytes == 0 => Ok(ContainerHeal {
                docker: self.docker().clone(),
                undo,
            }),
            _ => Err(ContainerFaultError::Exec {
                container,
                command: script,
                what: "fill the disk",
                code: output.exit_code,
                output: output.output,
            }),
        }
    }

    /// Removes the filler, if any.
    pub async fn free_disk(&self) -> Result<(), ContainerFaultError> {
        self.disk_undo().run(self.docker()).await
    }

    /// `df` of the stack's disk, from a running container that mounts it.
    pub async fn disk_usage(&self) -> Result<DiskUsage, ContainerFaultError> {
        self.disk_gauge().usage().await
    }

    /// What measures the stack's disk, apart from the stack: the engine and the
    /// containers that mount it.
    pub fn disk_gauge(&self) -> DiskGauge {
        let Undo::Disk { volume, mounts } = self.disk_undo() else {
            unreachable!("disk_undo makes a disk undo")
        };
        DiskGauge {
            docker: self.docker().clone(),
            volume,
            mounts,
        }
    }

    /// Disconnects api-gateway-internal from the providers' network (a no-op when it
    /// is not connected).
    pub async fn disconnect_gateway(&self) -> Result<ContainerHeal, ContainerFaultError> {
        let container = self.container_of(Service::ApiGatewayInternal);
        let network = self.providers_network.clone();
        if attached(self.docker(), &container, &network).await? {
            self.docker()
                .disconnect_network(
                    &network,
                    NetworkDisconnectRequest {
                        container: container.clone(),
                        force: Some(false),
                    },
                )
                .await
                .map_err(DockerError::engine(format!(
                    "disconnecting {container} from network {network}"
                )))?;
        }
        Ok(ContainerHeal {
            docker: self.docker().clone(),
            undo: self.gateway_undo(),
        })
    }

    /// Connects api-gateway-internal to the providers' network again (a no-op when it
    /// is connected).
    pub async fn reconnect_gateway(&self) -> Result<(), ContainerFaultError> {
        self.gateway_undo().run(self.docker()).await
    }

    /// Whether api-gateway-internal is on the providers' network.
    pub async fn gateway_connected(&self) -> Result<bool, ContainerFaultError> {
        let container = self.container_of(Service::ApiGatewayInternal);
        attached(self.docker(), &container, &self.providers_network).await
    }

    /// How writing `service`'s log file goes; `None` for a service that writes none
    /// (PostgreSQL, Redis).
    pub async fn log_file_status(
        &self,
        service: Service,
    ) -> Result<Option<LogFileStatus>, ContainerFaultError> {
        let Some(base) = self.handles().chaos.get(&service) else {
            return Ok(None);
        };
        let url = base.join("chaos/log_file").expect("a relative path joins");
        let failed = |reason: String| ContainerFaultError::LogStatus {
            service,
            url: url.to_string(),
            reason,
        };
        let response = self
            .handles()
            .http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        if !response.status().is_success() {
            return Err(failed(format!("answered {}", response.status())));
        }
        response
            .json::<Option<LogFileStatus>>()
            .await
            .map_err(|e| failed(e.to_string()))
    }

    /// Undoes both container faults and empties the disk (backups and rotated logs
    /// removed, live logs emptied), for [`DockerStack::reset`].
    pub(super) async fn heal_container_faults(&self) -> Result<(), DockerError> {
        let cleared = crate::disk::StackDisk::Docker(self.disk_gauge())
            .clear()
            .await
            .map_err(|e| match e {
                crate::disk::DiskError::Container(e) => e,
                other => ContainerFaultError::Exec {
                    container: self.disk.volume.clone(),
                    command: "clearing the disk".into(),
                    what: "clear the stack's disk",
                    code: None,
                    output: other.to_string(),
                },
            });
        let results = [
            self.free_disk().await,
            cleared,
            self.reconnect_gateway().await,
        ];
        for result in results {
            match result {
                Ok(()) => {}
                Err(ContainerFaultError::Docker(e)) => return Err(e),
                Err(other) => {
                    return Err(crate::StackError::Io {
                        action: "resetting container faults".into(),
                        source: std::io::Error::other(other),
                    }
                    .into());
                }
            }
        }
        Ok(())
    }

    fn container_of(&self, service: Service) -> String {
        self.orchestrator()
            .container(service)
            .expect("every service of the stack has a container")
            .to_owned()
    }

    fn disk_undo(&self) -> Undo {
        Undo::Disk {
            volume: self.disk.volume.clone(),
            mounts: self
                .disk
                .mounts
                .iter()
                .map(|&(service, dir)| (self.container_of(service), dir))
                .collect(),
        }
    }

    fn gateway_undo(&self) -> Undo {
        Undo::Network {
            network: self.providers_network.clone(),
            container: self.container_of(Service::ApiGatewayInternal),
            alias: Service::ApiGatewayInternal.name().to_owned(),
        }
    }
}

/// The first of `mounts` whose container runs (and is not paused).
async fn running_mount(
    docker: &Docker,
    mounts: &[(String, &'static str)],
) -> Result<Option<(String, &'static str)>, DockerError> {
    for (container, dir) in mounts {
        let inspected = match docker.inspect_container(container, None).await {
            Ok(inspected) => inspected,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => continue,
            Err(e) => {
                return Err(DockerError::Engine {
                    action: format!("inspecting {container}"),
                    source: e,
                });
            }
        };
        let state = inspected.state.unwrap_or_default();
        if state.running == Some(true) && state.paused != Some(true) {
            return Ok(Some((container.clone(), dir)));
        }
    }
    Ok(None)
}

/// Whether `container` is connected to `network`.
async fn attached(
    docker: &Docker,
    container: &str,
    network: &str,
) -> Result<bool, ContainerFaultError> {
    let inspected = docker
        .inspect_container(container, None)
        .await
        .map_err(DockerError::engine(format!("inspecting {container}")))?;
    Ok(inspected
        .network_settings
        .and_then(|settings| settings.networks)
        .is_some_and(|networks| networks.contains_key(network)))
}

async fn exec(docker: &Docker, container: &str, cmd: &[&str]) -> Result<ExecOutput, DockerError> {
    let run = async {
        let created = docker
            .create_exec(
                container,
                CreateExecOptions {
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    cmd: Some(cmd.to_vec()),
                    ..Default::default()
                },
            )
            .await
            .map_err(DockerError::engine(format!(
                "creating an exec in {container}"
            )))?;
        super::own_actions::exec_created(&created.id);
        let mut output = String::new();
        if let StartExecResults::Attached {
            output: mut stream, ..
        } = docker
            .start_exec(&created.id, None)
            .await
            .map_err(DockerError::engine(format!(
                "starting an exec in {container}"
            )))?
        {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(DockerError::engine(format!(
                    "reading an exec's output in {container}"
                )))?;
                output.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
            }
        }
        let inspected = docker
            .inspect_exec(&created.id)
            .await
            .map_err(DockerError::engine(format!(
                "inspecting an exec in {container}"
            )))?;
        Ok(ExecOutput {
            exit_code: inspected.exit_code,
            output,
        })
    };
    tokio::time::timeout(EXEC_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| {
            Err(DockerError::Timeout {
                what: format!("`{}` in {container}", cmd.join(" ")),
                waited: EXEC_TIMEOUT,
                last: "no exit status".into(),
            })
        })
}

/// `stat -f -c '%b %a %S'` (total blocks, available blocks, block size), its last line.
fn parse_statfs(output: &str) -> Option<DiskUsage> {
    let line = output.lines().rev().find(|l| !l.trim().is_empty())?;
    let numbers: Vec<u64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let [total, available, block] = numbers[..] else {
        return None;
    };
    Some(DiskUsage {
        total_bytes: total * block,
        available_bytes: available * block,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statfs_output_is_read_from_its_last_line() {
        let output = "dd: error writing '/backups/postgres/.drill-disk-fill': No space left on device\n0 0 4096\n";
        assert_eq!(
            parse_statfs(output),
            Some(DiskUsage {
                total_bytes: 0,
                available_bytes: 0
            })
        );
        assert_eq!(
            parse_statfs("16384 2046 4096\n"),
            Some(DiskUsage {
                total_bytes: 16384 * 4096,
                available_bytes: 2046 * 4096
            })
        );
        assert_eq!(
            parse_statfs("stat: cannot read file system information\n"),
            None
        );
    }
}
