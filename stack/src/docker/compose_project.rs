//! The docker stack as a compose project, so that the runbooks' `docker compose …`
//! lines run through the real compose tool.
//!
//! The runbooks say `docker compose logs rest-api --tail=50`, `docker compose restart
//! rest-api graph-api`, `docker compose exec redis redis-cli INFO stats`. Compose finds
//! a project's containers by their labels (project, service, not a one-off, container
//! number 1), which the stack's containers carry; what it needs beside them is a
//! project file that names the services. [`project_file`] writes one from the
//! containers' own specs (image, command, environment, mounts, published ports,
//! networks and aliases, memory limit, log options, labels), with the stack's
//! networks and disk volume as external resources, so that `ps`, `logs`, `stop`,
//! `start`, `restart` and `exec` act on the running stack and a recreation builds the
//! same container again.
//!
//! `up -d` recreates a container whose `com.docker.compose.config-hash` label differs
//! from the hash compose computes for its service, and a hash is compose's own
//! (Compose v1 hashes its normalised service options and the image id). So where the
//! stack is for people (`drill up`, `drill gameday`) and compose is installed, the
//! boot asks compose for the hashes of the file before it creates the containers
//! ([`config_hashes`]) and labels each with its own: `up -d` then starts what is
//! stopped and leaves what runs alone, as it does in production. The file is JSON,
//! which is YAML too; compose reads either.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use wire::Service;

use super::orchestrator::DockerOrchestrator;
use super::spec::{Init, ServiceSpec, log_config};
use crate::StackError;

/// Compose's labels beside project and service: a service's one container is its
/// first, and not a one-off (`docker compose run`).
pub const LABEL_ONE_OFF: &str = "com.docker.compose.oneoff";
pub const LABEL_NUMBER: &str = "com.docker.compose.container-number";
pub const LABEL_CONFIG_HASH: &str = "com.docker.compose.config-hash";
/// The compose version that made a container, which `up` reads.
pub const LABEL_VERSION: &str = "com.docker.compose.version";
/// The project file's name in the stack's run directory.
pub const FILE_NAME: &str = "compose.json";

/// Labels every container of the stack carries so that compose counts it as its
/// service's container.
pub fn compose_labels() -> [(String, String); 2] {
    [
        (LABEL_ONE_OFF.to_owned(), "False".to_owned()),
        (LABEL_NUMBER.to_owned(), "1".to_owned()),
    ]
}

/// The project file for `specs`: one compose service per container.
pub(crate) fn project_file(specs: &BTreeMap<Service, ServiceSpec>) -> Value {
    let mut networks = BTreeSet::new();
    let mut volumes = BTreeSet::new();
    let mut services = serde_json::Map::new();
    for (service, spec) in specs {
        networks.insert(spec.network.clone());
        networks.extend(spec.extra_networks.iter().cloned());
        for bind in &spec.binds {
            let source = bind.split(':').next().unwrap_or_default();
            if !source.starts_with('/') {
                volumes.insert(source.to_owned());
            }
        }
        services.insert(service.name().to_owned(), service_entry(spec));
    }
    let external = |names: BTreeSet<String>| -> serde_json::Map<String, Value> {
        names
            .into_iter()
            .map(|name| (name.clone(), json!({ "external": true, "name": name })))
            .collect()
    };
    let mut file = json!({
        "version": "2.4",
        "services": services,
        "networks": external(networks),
        "volumes": external(volumes),
    });
    escape_interpolation(&mut file);
    file
}

/// Compose substitutes `$NAME` and `${NAME}` in every value from its own environment;
/// the stack's commands mean their own shell's (`${owner%%:*}`), so each `$` is
/// written `$$`, which compose reads as one.
fn escape_interpolation(value: &mut Value) {
    match value {
        Value::String(text) if text.contains('$') => *text = text.replace('$', "$$"),
        Value::Array(items) => items.iter_mut().for_each(escape_interpolation),
        Value::Object(entries) => entries.values_mut().for_each(escape_interpolation),
        _ => {}
    }
}

fn service_entry(spec: &ServiceSpec) -> Value {
    // Compose sets project, service, one-off and number itself.
    let labels: BTreeMap<&String, &String> = spec
        .labels
        .iter()
        .filter(|(key, _)| !key.starts_with("com.docker.compose."))
        .collect();
    let log = log_config(&spec.env);
    let logging = json!({
        "driver": log.typ.unwrap_or_else(|| "json-file".to_owned()),
        "options": log.config.unwrap_or_default(),
    });
    let mut entry = json!({
        "image": spec.image,
        "container_name": spec.container,
        "hostname": spec.alias,
        "entrypoint": match spec.init {
            Init::ImageTini => vec!["/usr/bin/tini".to_owned(), "--".to_owned()],
            Init::Engine => vec![String::new()],
        },
        "command": spec.cmd,
        "environment": spec.env,
        "labels": labels,
        "volumes": spec.binds,
        "ports": spec
            .ports
            .iter()
            .map(|(inside, host)| format!("127.0.0.1:{host}:{inside}"))
            .collect::<Vec<_>>(),
        "networks": std::iter::once(&spec.network)
            .chain(&spec.extra_networks)
            .map(|network| (network.clone(), json!({ "aliases": [spec.alias] })))
            .collect::<serde_json::Map<_, _>>(),
    });
    let object = entry.as_object_mut().expect("an object");
    if spec.init == Init::Engine {
        object.insert("init".into(), json!(true));
    }
    if let Some(signal) = &spec.stop_signal {
        object.insert("stop_signal".into(), json!(signal));
    }
    if let Some(limit) = spec.memory_limit {
        object.insert("mem_limit".into(), json!(limit));
        object.insert("memswap_limit".into(), json!(limit));
    }
    if let Some(parent) = &spec.cgroup_parent {
        object.insert("cgroup_parent".into(), json!(parent));
    }
    object.insert("logging".into(), logging);
    entry
}

/// The stack as a compose project: its file and name, and the compose tool that
/// hashed it (see the module's docs), if one did.
#[derive(Clone, Debug)]
pub struct ComposeProject {
    pub file: PathBuf,
    pub name: String,
    pub hashed_by: Option<PathBuf>,
}

impl ComposeProject {
    /// The environment that points the compose tool at the stack.
    pub fn env(&self) -> [(&'static str, String); 2] {
        [
            ("COMPOSE_FILE", self.file.display().to_string()),
            ("COMPOSE_PROJECT_NAME", self.name.clone()),
        ]
    }
}

/// Writes the project file of the orchestrator's containers into `dir`, and with
/// `hash`, labels each container-to-be with compose's hash of its service.
pub(crate) async fn prepare(
    orchestrator: &mut DockerOrchestrator,
    dir: &Path,
    project: &str,
    hash: bool,
) -> Result<ComposeProject, StackError> {
    let file = write(dir, &project_file(&orchestrator.specs()))?;
    let mut hashed_by = None;
    if hash && let Some((tool, version)) = compose_v1().await {
        for (name, hash) in config_hashes(&tool, &file, project).await? {
            if let Ok(service) = name.parse::<Service>() {
                orchestrator.label(service, LABEL_CONFIG_HASH, hash);
                // Compose compares it before it decides whether to recreate.
                orchestrator.label(service, LABEL_VERSION, version.clone());
            }
        }
        hashed_by = Some(tool);
    }
    Ok(ComposeProject {
        file,
        name: project.to_owned(),
        hashed_by,
    })
}

/// Writes the project file into `dir`.
fn write(dir: &Path, file: &Value) -> Result<PathBuf, StackError> {
    let path = dir.join(FILE_NAME);
    let text = serde_json::to_string_pretty(file).expect("JSON values serialise");
    std::fs::write(&path, text).map_err(StackError::io(format!("writing {}", path.display())))?;
    Ok(path)
}

/// The compose tool on this machine: Compose v1's `docker-compose`, the only one whose
/// hashes [`config_hashes`] can ask for (Compose v2 hashes differently and has no
/// such command), if it answers, with its version.
pub async fn compose_v1() -> Option<(PathBuf, String)> {
    let path = which("docker-compose")?;
    let answered = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::process::Command::new(&path)
            .arg("version")
            .arg("--short")
            .kill_on_drop(true)
            .output(),
    )
    .await;
    match answered {
        Ok(Ok(output)) if output.status.success() => {
            let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            Some((path, version))
        }
        _ => None,
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|path| path.is_file())
}

/// Compose's config hash of every service of the project file at `file`.
async fn config_hashes(
    compose: &Path,
    file: &Path,
    project: &str,
) -> Result<BTreeMap<String, String>, StackError> {
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(compose)
            .arg("--file")
            .arg(file)
            .args(["--project-name", project, "config", "--hash=*"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| StackError::Compose("docker-compose config --hash took over 30 s".into()))?
    .map_err(StackError::io(format!("running {}", compose.display())))?;
    if !output.status.success() {
        return Err(StackError::Compose(format!(
            "docker-compose config --hash refused the stack's project file {}: {}",
            file.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let (service, hash) = line.split_once(' ')?;
            Some((service.to_owned(), hash.trim().to_owned()))
        })
        .collect())
}
