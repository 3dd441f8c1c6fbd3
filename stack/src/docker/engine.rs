//! The docker engine as the backend sees it: a negotiated client, the images, the
//! labels every resource carries, and reaping what a killed run left behind.
//!
//! Every container, network and volume of a stack carries [`LABEL_RUN`] (the stack's
//! run id) and [`LABEL_OWNER`] (`<pid>:<start time>` of the process that made it). A
//! stack removes its resources when dropped; resources whose owner is gone (a run
//! killed with SIGKILL, where no `Drop` runs) are removed by the next stack's start.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptions, ListNetworksOptions, ListVolumesOptions, RemoveContainerOptions,
    RemoveVolumeOptions,
};

use crate::StackError;
use crate::local::procfs;

/// The run id of the stack a resource belongs to.
pub const LABEL_RUN: &str = "runbook-drill.run-id";
/// `<pid>:<start time>` of the process that created the resource.
pub const LABEL_OWNER: &str = "runbook-drill.owner";
/// The stack's label ([`crate::StackOptions::label`]): the scenario or test.
pub const LABEL_SCENARIO: &str = "runbook-drill.label";
/// Compose's own labels, so `docker compose ls`-style tooling and humans recognise them.
pub const LABEL_PROJECT: &str = "com.docker.compose.project";
pub const LABEL_SERVICE: &str = "com.docker.compose.service";

/// Why the docker backend could not do something.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("{action}: {source}")]
    Engine {
        action: String,
        #[source]
        source: bollard::errors::Error,
    },
    /// testcontainers failed to create, start or wait for a container (PostgreSQL and
    /// Redis start through it; see `docker::sdk`).
    #[error("{action}: {source}")]
    Testcontainers {
        action: String,
        #[source]
        source: testcontainers::TestcontainersError,
    },
    #[error(
        "image {image} is not present and cannot be pulled here; build it with `scripts/images`"
    )]
    MissingImage { image: String },
    #[error("timed out after {waited:?} waiting for {what}; last seen: {last}")]
    Timeout {
        what: String,
        waited: Duration,
        last: String,
    },
    #[error("{service} exited during boot ({state}); last lines of its log:\n{tail}")]
    ExitedDuringBoot {
        service: String,
        state: String,
        tail: String,
    },
    #[error(transparent)]
    Stack(#[from] StackError),
}

impl crate::error::BootFailure for DockerError {
    fn exited_during_boot(&self) -> bool {
        match self {
            DockerError::ExitedDuringBoot { .. } => true,
            DockerError::Stack(inner) => crate::error::BootFailure::exited_during_boot(inner),
            _ => false,
        }
    }
}

impl DockerError {
    pub(crate) fn engine(action: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> Self {
        let action = action.into();
        move |source| DockerError::Engine { action, source }
    }
}

/// Connects to the local engine and negotiates the API version: the engine here
/// speaks 1.41 at most, below what bollard declares.
pub async fn connect() -> Result<Docker, DockerError> {
    Docker::connect_with_local_defaults()
        .map_err(DockerError::engine("connecting to the docker engine"))?
        .negotiate_version()
        .await
        .map_err(DockerError::engine("negotiating the docker API version"))
}

/// A memory cgroup for the run that its containers can go below, or why there is none:
/// the engine must place containers with the `cgroupfs` driver in cgroup v1 (with
/// systemd's driver a parent is a slice, with v2 another tree), on this host.
pub async fn memory_cgroup(
    docker: &Docker,
    run_id: &str,
    limit: u64,
) -> Result<crate::memory::MemoryCgroup, String> {
    let info = docker
        .info()
        .await
        .map_err(|e| format!("asking the engine for its cgroup driver: {e}"))?;
    let driver = info
        .cgroup_driver
        .map(|d| d.to_string())
        .unwrap_or_default();
    let version = info
        .cgroup_version
        .map(|v| v.to_string())
        .unwrap_or_default();
    if driver != "cgroupfs" || version != "1" {
        return Err(format!(
            "the engine places containers with the {driver:?} cgroup driver, cgroup version \
             {version:?}; a stack's memory limit needs cgroupfs on cgroup v1"
        ));
    }
    crate::memory::MemoryCgroup::create(run_id, limit)
}

/// The engine's OOM events of the run's containers since `since` (`docker events
/// --filter event=oom`): the docker backend's `dmesg | grep -i oom`. A killed
/// container's own cgroup goes with it, so the kernel's count there cannot be read
/// afterwards; the engine's record stays.
pub async fn oom_events(
    docker: &Docker,
    run_id: &str,
    since: std::time::SystemTime,
) -> Result<u64, DockerError> {
    use futures::StreamExt as _;
    let seconds = |at: std::time::SystemTime| {
        at.duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
    };
    let options = bollard::query_parameters::EventsOptions {
        since: Some(seconds(since).to_string()),
        // A bounded listing, not a stream: up to the next whole second.
        until: Some((seconds(std::time::SystemTime::now()) + 1).to_string()),
        filters: Some(HashMap::from([
            ("type".to_owned(), vec!["container".to_owned()]),
            ("event".to_owned(), vec!["oom".to_owned()]),
            ("label".to_owned(), vec![format!("{LABEL_RUN}={run_id}")]),
        ])),
    };
    let mut events = docker.events(Some(options));
    let mut count = 0;
    while let Some(event) = events.next().await {
        event.map_err(DockerError::engine("listing the engine's OOM events"))?;
        count += 1;
    }
    Ok(count)
}

/// The images a stack runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Images {
    /// PostgreSQL 15, Redis and tini: `DRILL_IMAGE_BASE`, default `runbook-drill/base`.
    pub base: String,
    /// Base plus the `drill` binary: `DRILL_IMAGE_TWIN`. When unset, twin services run
    /// from the base image with the stack's twin binary mounted read-only, so that the
    /// containers always run the binary the tests were built with.
    pub twin: Option<String>,
    /// PostgreSQL's container: `DRILL_IMAGE_POSTGRES`, default the base image. A machine
    /// that can pull may name the official `postgres:15` (same major version as the
    /// host's, whose initdb makes the template its data directory is copied from).
    pub postgres: String,
    /// Redis's container: `DRILL_IMAGE_REDIS`, default the base image (or e.g. `redis:7`).
    pub redis: String,
}

impl Images {
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let base =
            with_tag(&var("DRILL_IMAGE_BASE").unwrap_or_else(|| "runbook-drill/base".into()));
        Self {
            twin: var("DRILL_IMAGE_TWIN").map(|name| with_tag(&name)),
            postgres: var("DRILL_IMAGE_POSTGRES").map_or_else(|| base.clone(), |n| with_tag(&n)),
            redis: var("DRILL_IMAGE_REDIS").map_or_else(|| base.clone(), |n| with_tag(&n)),
            base,
        }
    }

    /// Every image a stack runs, each once, the base first.
    pub fn all(&self) -> Vec<&str> {
        let mut all: Vec<&str> = Vec::new();
        for image in [
            Some(&self.base),
            self.twin.as_ref(),
            Some(&self.postgres),
            Some(&self.redis),
        ]
        .into_iter()
        .flatten()
        {
            if !all.contains(&image.as_str()) {
                all.push(image);
            }
        }
        all
    }

    /// Whether `image` is one of the project's own (built by `scripts/images`, with
    /// tini), rather than one brought in by name, such as an official image.
    pub fn is_own(&self, image: &str) -> bool {
        image == self.base || self.twin.as_deref() == Some(image)
    }

    /// Fails with the command that builds them when an image is missing.
    pub async fn check(&self, docker: &Docker) -> Result<(), DockerError> {
        for image in self.all() {
            match docker.inspect_image(image).await {
                Ok(_) => {}
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => {
                    return Err(DockerError::MissingImage {
                        image: image.to_owned(),
                    });
                }
                Err(source) => {
                    return Err(DockerError::Engine {
                        action: format!("inspecting image {image}"),
                        source,
                    });
                }
            }
        }
        Ok(())
    }
}

/// `name` → `name:latest`; a name with a tag or digest is kept.
fn with_tag(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || name.contains('@') {
        name.to_owned()
    } else {
        format!("{name}:latest")
    }
}

/// This process, as recorded in [`LABEL_OWNER`].
pub fn owner() -> String {
    let pid = std::process::id() as i32;
    format!("{pid}:{}", procfs::start_time(pid).unwrap_or(0))
}

/// Whether the process an owner label names still runs.
fn owner_alive(owner: &str) -> bool {
    let Some((pid, start)) = owner.split_once(':') else {
        return false;
    };
    let (Ok(pid), Ok(start)) = (pid.parse::<i32>(), start.parse::<u64>()) else {
        return false;
    };
    procfs::is_alive(pid) && procfs::start_time(pid) == Some(start)
}

pub(crate) fn label_filter(key: &str, value: Option<&str>) -> HashMap<String, Vec<String>> {
    let label = match value {
        Some(value) => format!("{key}={value}"),
        None => key.to_owned(),
    };
    HashMap::from([("label".to_owned(), vec![label])])
}

/// What [`reap`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reaped {
    pub runs: BTreeSet<String>,
    pub containers: usize,
    pub networks: usize,
    pub volumes: usize,
}

/// A kind of docker resource a stack creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ResourceKind {
    Container,
    Network,
    Volume,
}

/// A container, network or volume of a run whose owner process is gone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaleResource {
    pub kind: ResourceKind,
    /// Id (containers, networks) or name (volumes): what removal takes.
    pub id: String,
    pub name: String,
    pub run_id: Option<String>,
    /// Left up on purpose (`DRILL_KEEP`): reaped only when asked for.
    pub kept: bool,
}

fn dead_owner(labels: &HashMap<String, String>) -> bool {
    labels
        .get(LABEL_OWNER)
        .is_some_and(|owner| !owner_alive(owner))
}

/// Lists, without removing anything, what runs whose owner process is gone left.
pub async fn stale_resources(docker: &Docker) -> Result<Vec<StaleResource>, DockerError> {
    let mut stale = Vec::new();
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(label_filter(LABEL_OWNER, None)),
            ..Default::default()
        }))
        .await
        .map_err(DockerError::engine("listing containers"))?;
    for container in containers {
        let labels = container.labels.unwrap_or_default();
        if let (true, Some(id)) = (dead_owner(&labels), container.id) {
            stale.push(StaleResource {
                kind: ResourceKind::Container,
                name: container
                    .names
                    .and_then(|names| names.into_iter().next())
                    .unwrap_or_else(|| id.clone()),
                id,
                run_id: labels.get(LABEL_RUN).cloned(),
                kept: false,
            });
        }
    }
    let networks = docker
        .list_networks(Some(ListNetworksOptions {
            filters: Some(label_filter(LABEL_OWNER, None)),
        }))
        .await
        .map_err(DockerError::engine("listing networks"))?;
    for network in networks {
        let labels = network.labels.unwrap_or_default();
        if let (true, Some(id)) = (dead_owner(&labels), network.id) {
            stale.push(StaleResource {
                kind: ResourceKind::Network,
                name: network.name.unwrap_or_else(|| id.clone()),
                id,
                run_id: labels.get(LABEL_RUN).cloned(),
                kept: false,
            });
        }
    }
    let volumes = docker
        .list_volumes(Some(ListVolumesOptions {
            filters: Some(label_filter(LABEL_OWNER, None)),
        }))
        .await
        .map_err(DockerError::engine("listing volumes"))?;
    for volume in volumes.volumes.unwrap_or_default() {
        if dead_owner(&volume.labels) {
            stale.push(StaleResource {
                kind: ResourceKind::Volume,
                id: volume.name.clone(),
                name: volume.name,
                run_id: volume.labels.get(LABEL_RUN).cloned(),
                kept: false,
            });
        }
    }
    for resource in &mut stale {
        resource.kept = resource
            .run_id
            .as_deref()
            .is_some_and(crate::keep::docker_run_kept);
    }
    Ok(stale)
}

/// Removes the containers, networks and volumes of runs whose owner process is gone
/// (containers first: a network or volume in use cannot go).
pub async fn reap(docker: &Docker) -> Result<Reaped, DockerError> {
    reap_runs(docker, false).await
}

/// [`reap`], and kept runs too when `include_kept`.
pub async fn reap_runs(docker: &Docker, include_kept: bool) -> Result<Reaped, DockerError> {
    let mut stale = stale_resources(docker).await?;
    stale.retain(|resource| include_kept || !resource.kept);
    stale.sort_by_key(|resource| resource.kind);
    let mut reaped = Reaped::default();
    for resource in stale {
        match resource.kind {
            ResourceKind::Container => {
                remove_container(docker, &resource.id).await?;
                reaped.containers += 1;
            }
            ResourceKind::Network => {
                remove_network(docker, &resource.id).await?;
                reaped.networks += 1;
            }
            ResourceKind::Volume => {
                remove_volume(docker, &resource.id).await?;
                reaped.volumes += 1;
            }
        }
        reaped.runs.extend(resource.run_id);
    }
    for run in &reaped.runs {
        crate::keep::unmark_docker_run(run);
    }
    Ok(reaped)
}

/// Removes every container, network and volume of run `run_id`.
pub async fn remove_run(docker: &Docker, run_id: &str) -> Result<(), DockerError> {
    let filter = label_filter(LABEL_RUN, Some(run_id));
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filter.clone()),
            ..Default::default()
        }))
        .await
        .map_err(DockerError::engine("listing the run's containers"))?;
    let removals = containers
        .into_iter()
        .filter_map(|c| c.id)
        .map(|id| async move { remove_container(docker, &id).await });
    for result in futures::future::join_all(removals).await {
        result?;
    }
    let networks = docker
        .list_networks(Some(ListNetworksOptions {
            filters: Some(filter.clone()),
        }))
        .await
        .map_err(DockerError::engine("listing the run's networks"))?;
    for id in networks.into_iter().filter_map(|n| n.id) {
        remove_network(docker, &id).await?;
    }
    let volumes = docker
        .list_volumes(Some(ListVolumesOptions {
            filters: Some(filter),
        }))
        .await
        .map_err(DockerError::engine("listing the run's volumes"))?;
    for volume in volumes.volumes.unwrap_or_default() {
        remove_volume(docker, &volume.name).await?;
    }
    Ok(())
}

/// How many containers, networks and volumes carry run `run_id`'s label.
pub async fn count_run(docker: &Docker, run_id: &str) -> Result<usize, DockerError> {
    let filter = label_filter(LABEL_RUN, Some(run_id));
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filter.clone()),
            ..Default::default()
        }))
        .await
        .map_err(DockerError::engine("listing the run's containers"))?;
    let networks = docker
        .list_networks(Some(ListNetworksOptions {
            filters: Some(filter.clone()),
        }))
        .await
        .map_err(DockerError::engine("listing the run's networks"))?;
    let volumes = docker
        .list_volumes(Some(ListVolumesOptions {
            filters: Some(filter),
        }))
        .await
        .map_err(DockerError::engine("listing the run's volumes"))?;
    Ok(containers.len() + networks.len() + volumes.volumes.map_or(0, |v| v.len()))
}

fn gone(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Force-removes a container and its anonymous volumes; a missing one is fine.
pub(crate) async fn remove_container(docker: &Docker, id: &str) -> Result<(), DockerError> {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    match docker.remove_container(id, Some(options)).await {
        // 409: removal already in progress (a concurrent reaper or teardown).
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 409, ..
        }) => Ok(()),
        Err(e) if !gone(&e) => Err(DockerError::Engine {
            action: format!("removing container {id}"),
            source: e,
        }),
        _ => Ok(()),
    }
}

async fn remove_network(docker: &Docker, id: &str) -> Result<(), DockerError> {
    match docker.remove_network(id).await {
        Err(e) if !gone(&e) => Err(DockerError::Engine {
            action: format!("removing network {id}"),
            source: e,
        }),
        _ => Ok(()),
    }
}

async fn remove_volume(docker: &Docker, name: &str) -> Result<(), DockerError> {
    match docker
        .remove_volume(name, Some(RemoveVolumeOptions { force: true }))
        .await
    {
        Err(e) if !gone(&e) => Err(DockerError::Engine {
            action: format!("removing volume {name}"),
            source: e,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_get_latest_unless_tagged() {
        assert_eq!(with_tag("runbook-drill/base"), "runbook-drill/base:latest");
        assert_eq!(with_tag("postgres:15"), "postgres:15");
        assert_eq!(
            with_tag("localhost:5000/base"),
            "localhost:5000/base:latest"
        );
        assert_eq!(with_tag("base@sha256:ab"), "base@sha256:ab");
    }

    #[test]
    fn postgres_and_redis_take_the_base_image_unless_named() {
        let own = Images {
            base: "runbook-drill/base:latest".into(),
            twin: None,
            postgres: "runbook-drill/base:latest".into(),
            redis: "runbook-drill/base:latest".into(),
        };
        assert_eq!(own.all(), ["runbook-drill/base:latest"]);
        assert!(own.is_own(&own.postgres));

        let official = Images {
            postgres: "postgres:15".into(),
            redis: "redis:7".into(),
            ..own
        };
        assert_eq!(
            official.all(),
            ["runbook-drill/base:latest", "postgres:15", "redis:7"]
        );
        assert!(!official.is_own("postgres:15"));
        assert!(official.is_own("runbook-drill/base:latest"));
    }

    #[test]
    fn a_dead_or_malformed_owner_is_not_alive() {
        assert!(owner_alive(&owner()));
        assert!(!owner_alive("garbage"));
        let me = std::process::id();
        assert!(
            !owner_alive(&format!("{me}:1")),
            "another start time is another process"
        );
    }
}
