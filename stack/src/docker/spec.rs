//! How each container of a stack is configured.
//!
//! A container's configuration is kept as a [`ServiceSpec`] so that the orchestrator
//! can recreate it with a changed environment, as `docker compose up` recreates a
//! service whose environment was edited.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkConnectRequest, NetworkingConfig,
    PortBinding,
};

use super::engine::DockerError;
use crate::pg_clock::PgClock;

/// Where PostgreSQL finds libfaketime and its clock's spec inside the container: a
/// directory of the host's run directory (see [`crate::pg_clock`]), so that the spec
/// the harness rewrites is the one the server reads.
pub(crate) const CLOCK_DIR: &str = "/drill-clock";

/// The library PostgreSQL preloads (libfaketime), if any. Not `LD_PRELOAD` itself:
/// that would load it into the root shell and `setpriv` before the server, and
/// libfaketime's shared state, made by root under the process's PID, would then be
/// closed to the server that execs under the same PID as another user.
pub(crate) const PRELOAD_ENV: &str = "DRILL_PG_PRELOAD";

/// Where PostgreSQL keeps its data inside the container: a directory of the host
/// (`super::pgdata`), so it survives stop, start and recreation, as a compose volume.
pub(crate) const PGDATA: &str = "/var/lib/postgresql/data";

/// Settings as the local backend's PostgreSQL (see `local::postgres`): speed over
/// durability, the runbooks' connection ceiling, timestamps in the log.
const PG_SETTINGS: &[&str] = &[
    "listen_addresses=*",
    "unix_socket_directories=",
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=200",
    "wal_recycle=off",
    "min_wal_size=2MB",
    "log_line_prefix=%m [%p] %q%a ",
];

/// One container of a stack.
#[derive(Clone, Debug)]
pub(crate) struct ServiceSpec {
    /// Compose style: `<project>-<service>-1`.
    pub container: String,
    pub image: String,
    pub cmd: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub binds: Vec<String>,
    /// (container port, host port on 127.0.0.1).
    pub ports: Vec<(u16, u16)>,
    pub stop_signal: Option<String>,
    pub memory_limit: Option<u64>,
    /// The stack's memory cgroup the container goes below (see [`crate::memory`]).
    pub cgroup_parent: Option<String>,
    pub labels: HashMap<String, String>,
    pub network: String,
    /// The service name, which is also its host name on the stack's network.
    pub alias: String,
    /// Further networks the container joins, under the same alias (api-gateway-internal:
    /// the providers' network). The engine (API 1.41) creates a container on one
    /// network only, so these are connected between create and start
    /// ([`ServiceSpec::connect_extra_networks`]), also when the container is recreated.
    pub extra_networks: Vec<String>,
    /// What runs as PID 1 in front of the command.
    pub init: Init,
}

/// The init process of a container: something must reap and forward signals, since
/// bash or a service as PID 1 would ignore SIGTERM and every stop would take the full
/// grace period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Init {
    /// The image's own `/usr/bin/tini` as entrypoint (the project's images).
    ImageTini,
    /// The engine's `docker-init` (`docker run --init`) and no entrypoint: for images
    /// that lack tini or bring an entrypoint of their own, such as the official
    /// `postgres` and `redis` images.
    Engine,
}

impl ServiceSpec {
    /// The body of `docker create`, with `overrides` on top of the environment.
    pub fn create_body(&self, overrides: &BTreeMap<String, String>) -> ContainerCreateBody {
        // `env` below: the spec's environment with the overrides on top.
        let mut env = self.env.clone();
        env.extend(overrides.clone());
        let port_bindings = self
            .ports
            .iter()
            .map(|&(inside, host)| {
                (
                    format!("{inside}/tcp"),
                    Some(vec![PortBinding {
                        host_ip: Some(Ipv4Addr::LOCALHOST.to_string()),
                        host_port: Some(host.to_string()),
                    }]),
                )
            })
            .collect();
        ContainerCreateBody {
            image: Some(self.image.clone()),
            hostname: Some(self.alias.clone()),
            // `[""]` resets the image's entrypoint (an empty list would keep it).
            entrypoint: Some(match self.init {
                Init::ImageTini => vec!["/usr/bin/tini".into(), "--".into()],
                Init::Engine => vec![String::new()],
            }),
            cmd: Some(self.cmd.clone()),
            env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(self.labels.clone()),
            stop_signal: self.stop_signal.clone(),
            exposed_ports: Some(self.ports.iter().map(|(p, _)| format!("{p}/tcp")).collect()),
            host_config: Some(HostConfig {
                binds: (!self.binds.is_empty()).then(|| self.binds.clone()),
                port_bindings: Some(port_bindings),
                network_mode: Some(self.network.clone()),
                // Swap equal to memory: no swap, so exceeding the limit is an OOM kill.
                memory: self.memory_limit.map(|m| m as i64),
                memory_swap: self.memory_limit.map(|m| m as i64),
                cgroup_parent: self.cgroup_parent.clone(),
                init: (self.init == Init::Engine).then_some(true),
                log_config: Some(log_config(&env)),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(self.network.clone(), self.endpoint())])),
            }),
            ..Default::default()
        }
    }

    /// The endpoint settings of this container on one of its networks.
    pub fn endpoint(&self) -> EndpointSettings {
        EndpointSettings {
            aliases: Some(vec![self.alias.clone()]),
            ..Default::default()
        }
    }

    /// Connects the created container to its [`ServiceSpec::extra_networks`].
    pub async fn connect_extra_networks(&self, docker: &Docker) -> Result<(), DockerError> {
        for network in &self.extra_networks {
            docker
                .connect_network(
                    network,
                    NetworkConnectRequest {
                        container: self.container.clone(),
                        endpoint_config: Some(self.endpoint()),
                    },
                )
                .await
                .map_err(DockerError::engine(format!(
                    "connecting {} to network {network}",
                    self.container
                )))?;
        }
        Ok(())
    }
}

/// PostgreSQL on the data directory bind-mounted at [`PGDATA`], run as its owner.
///
/// The harness prepares that directory on the host (a copy of the template on the
/// runtime root's tmpfs, trusting the stack's network; see `super::pgdata`), owned by
/// a user other than root, as PostgreSQL requires. The server runs with that uid and
/// gid, which need no entry in the image's `/etc/passwd`, so the host can remove every
/// file it writes. `setpriv` execs PostgreSQL without the extra process `runuser` keeps.
pub(crate) fn postgres_cmd(scale: f64) -> Vec<String> {
    let settings: Vec<String> = PG_SETTINGS
        .iter()
        .map(|s| (*s).to_owned())
        .chain(PgClock::settings(scale))
        .map(|s| format!("-c '{s}'"))
        .collect();
    let script = format!(
        "set -e\n\
         owner=$(stat -c %u:%g {PGDATA}/PG_VERSION) || {{ echo 'no data directory at {PGDATA}' >&2; exit 1; }}\n\
         if [ \"${{owner%%:*}}\" = 0 ]; then echo '{PGDATA} is owned by root, and PostgreSQL refuses to run as root' >&2; exit 1; fi\n\
         exec setpriv --reuid=\"${{owner%%:*}}\" --regid=\"${{owner##*:}}\" --clear-groups \
         env ${{{PRELOAD_ENV}:+LD_PRELOAD=${PRELOAD_ENV}}} postgres -D {PGDATA} -p 5432 {}\n",
        settings.join(" ")
    );
    vec!["bash".into(), "-c".into(), script]
}

/// The log line a service prints once it accepts connections, and on which stream:
/// how a container started with testcontainers is known to be ready (`super::sdk`).
///
/// testcontainers reads the log from its first line, so a line counts only in a log
/// that has it once: a container's first start. A restarted container's log still
/// holds the line of the previous start; the orchestrator judges those by probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadyLine {
    Stdout(&'static str),
    Stderr(&'static str),
}

/// PostgreSQL logs to stderr. [`postgres_cmd`] runs on a copy of a template that was
/// shut down cleanly, so the first start prints the line once, after "database system was shut
/// down at …" (a template copied from a running server would print it once too, after
/// its recovery); no temporary server runs first, as in the official image's
/// entrypoint, which prints it twice.
pub(crate) const POSTGRES_READY: ReadyLine =
    ReadyLine::Stderr("database system is ready to accept connections");

/// redis-server logs to stdout ("* Ready to accept connections", Redis 7.0).
pub(crate) const REDIS_READY: ReadyLine = ReadyLine::Stdout("Ready to accept connections");

/// Redis without persistence, as on the local backend: a restart starts empty.
pub(crate) fn redis_cmd() -> Vec<String> {
    [
        "redis-server",
        "--bind",
        "0.0.0.0",
        "--port",
        "6379",
        "--protected-mode",
        "no",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    .map(String::from)
    .to_vec()
}

/// A twin service, as the image's entrypoint (tini) runs it: tini passes it the
/// container's signals.
pub(crate) fn twin_cmd(service: &str) -> Vec<String> {
    vec!["drill".into(), "twin".into(), service.into()]
}

/// The container's log options from its environment: `json-file`, rotating as the
/// twin's log file does when the rotation variables are set (see
/// [`runbooks::ops::LogConfig::env`]), so that `docker inspect` shows what the service
/// does. Without them `max-size` is `1t` explicitly: an engine merges its own
/// `log-opts` into a container that names none (this machine's daemon.json rotates at
/// 10m), which would show a rotation the service does not have; a terabyte never
/// rotates on the stack's disk, and the engine refuses `-1` (unlimited).
pub(crate) fn log_config(env: &BTreeMap<String, String>) -> bollard::models::HostConfigLogConfig {
    const UNROTATED: &str = "1t";
    let options = runbooks::ops::LogConfig::from_env(env);
    let config: HashMap<String, String> = [
        (
            "max-size",
            options.max_size.or_else(|| Some(UNROTATED.to_owned())),
        ),
        ("max-file", options.max_file),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k.to_owned(), v?)))
    .collect();
    bollard::models::HostConfigLogConfig {
        typ: Some(options.driver),
        config: Some(config),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_win_and_ports_bind_loopback_only() {
        let spec = ServiceSpec {
            container: "drill-x-rest-api-1".into(),
            image: "base:latest".into(),
            cmd: vec!["drill".into()],
            env: BTreeMap::from([("A".into(), "1".into()), ("B".into(), "2".into())]),
            binds: vec![],
            ports: vec![(8080, 41000)],
            stop_signal: None,
            memory_limit: Some(64 << 20),
            cgroup_parent: None,
            labels: HashMap::new(),
            network: "drill-x".into(),
            alias: "rest-api".into(),
            extra_networks: vec!["drill-x-providers".into()],
            init: Init::ImageTini,
        };
        let body = spec.create_body(&BTreeMap::from([("B".into(), "3".into())]));
        assert_eq!(body.env.unwrap(), vec!["A=1", "B=3"]);
        let host = body.host_config.unwrap();
        let binding = &host.port_bindings.unwrap()["8080/tcp"].clone().unwrap()[0];
        assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(binding.host_port.as_deref(), Some("41000"));
        assert_eq!(
            host.memory, host.memory_swap,
            "no swap: over the limit is an OOM kill"
        );
        let endpoints = body.networking_config.unwrap().endpoints_config.unwrap();
        assert_eq!(
            endpoints.keys().collect::<Vec<_>>(),
            ["drill-x"],
            "API 1.41 creates on one network; the others are connected before start"
        );
    }

    #[test]
    fn our_images_run_under_their_tini_and_others_under_the_engines_init() {
        let spec = ServiceSpec {
            container: "drill-x-redis-1".into(),
            image: "redis:7".into(),
            cmd: redis_cmd(),
            env: BTreeMap::new(),
            binds: vec![],
            ports: vec![],
            stop_signal: None,
            memory_limit: None,
            cgroup_parent: None,
            labels: HashMap::new(),
            network: "drill-x".into(),
            alias: "redis".into(),
            extra_networks: vec![],
            init: Init::ImageTini,
        };
        let ours = spec.create_body(&BTreeMap::new());
        assert_eq!(ours.entrypoint.unwrap(), ["/usr/bin/tini", "--"]);
        assert_eq!(ours.host_config.unwrap().init, None);

        let official = ServiceSpec {
            init: Init::Engine,
            ..spec
        }
        .create_body(&BTreeMap::new());
        assert_eq!(
            official.entrypoint.unwrap(),
            [""],
            "the image's own entrypoint is reset, not kept"
        );
        assert_eq!(official.host_config.unwrap().init, Some(true));
        assert_eq!(official.cmd.unwrap(), redis_cmd());
    }
}
