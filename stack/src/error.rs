//! Why a stack could not be started, reset or stopped, with enough context to act on.
//!
//! Every message names the thing that failed and, where there is one, what to do about
//! it (the package to install, the command that shows who holds a port, the last lines
//! of the log of a service that died while booting).

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use wire::Service;

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("invalid stack options: {0}")]
    InvalidOptions(String),
    /// The stack's compose project file could not be hashed by the compose tool.
    #[error("the stack's compose project: {0}")]
    Compose(String),

    /// A program the local backend runs is not installed.
    #[error("{program} not found {searched}; install it with `{install}`")]
    MissingBinary {
        program: String,
        /// Where it was looked for, e.g. "on PATH".
        searched: String,
        install: String,
    },

    #[error(
        "the twin binary {} does not exist or is not executable; build it with `cargo build --bin drill`",
        path.display()
    )]
    MissingTwinBinary { path: PathBuf },

    #[error(
        "running as root, PostgreSQL must run as the `postgres` OS user, which does not exist; \
         install PostgreSQL with `apt-get install postgresql-15` (it creates the user)"
    )]
    NoPostgresUser,

    /// A port the runbooks name is taken (drill mode only).
    #[error(
        "port {port} for {service} is in use; stop what holds it (`ss -ltnp 'sport = :{port}'`) or run in test mode"
    )]
    PortInUse { port: u16, service: Service },

    #[error("no free loopback port found after {attempts} attempts: {reason}")]
    NoFreePort { attempts: usize, reason: String },

    /// A service's process ended while the stack was waiting for it to become ready.
    #[error("{service} exited during boot ({status}); last lines of {}:\n{tail}", log.display())]
    ExitedDuringBoot {
        service: Service,
        status: String,
        log: PathBuf,
        tail: String,
    },

    /// A bounded wait ran out.
    #[error("timed out after {waited:?} waiting for {what}; last error: {last_error}{log_tail}")]
    Timeout {
        what: String,
        waited: Duration,
        last_error: String,
        /// Empty, or a newline and the last lines of the service's log.
        log_tail: String,
    },

    #[error("{action}: {source}")]
    Io {
        action: String,
        #[source]
        source: io::Error,
    },

    #[error("{action}: {source}")]
    Database {
        action: String,
        #[source]
        source: sqlx::Error,
    },

    #[error("applying the musicdb migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),

    #[error("{action}: {source}")]
    Redis {
        action: String,
        #[source]
        source: redis::RedisError,
    },

    /// A twin service's chaos control surface refused or failed a request.
    #[error("{service}: {action} at {url} failed: {reason}")]
    Chaos {
        service: Service,
        action: &'static str,
        url: String,
        reason: String,
    },

    #[error(transparent)]
    Orchestrator(#[from] runbooks::ops::OrchestratorError),

    #[error("the stack has been shut down")]
    ShutDown,

    /// The docker backend failed (engine, images, containers).
    #[error(transparent)]
    Docker(Box<crate::docker::DockerError>),
}

/// A docker error that wraps a backend-neutral one unwraps back to it.
impl From<crate::docker::DockerError> for StackError {
    fn from(error: crate::docker::DockerError) -> Self {
        match error {
            crate::docker::DockerError::Stack(inner) => inner,
            other => StackError::Docker(Box::new(other)),
        }
    }
}

/// What a boot asks of its errors to pick the most telling of several.
pub(crate) trait BootFailure {
    /// A service exited while it was booting.
    fn exited_during_boot(&self) -> bool;
}

impl BootFailure for StackError {
    fn exited_during_boot(&self) -> bool {
        matches!(self, StackError::ExitedDuringBoot { .. })
    }
}

/// The most telling error of several services started at once, if any failed: one that
/// exited beats one that merely timed out, since the timeout is often its consequence.
pub(crate) fn most_telling<E: BootFailure>(results: Vec<Result<(), E>>) -> Result<(), E> {
    let mut errors: Vec<E> = results.into_iter().filter_map(Result::err).collect();
    if errors.is_empty() {
        return Ok(());
    }
    let exited = errors
        .iter()
        .position(BootFailure::exited_during_boot)
        .unwrap_or(0);
    Err(errors.swap_remove(exited))
}

/// A blocking task of a boot that panicked or was cancelled, as the step it was.
pub(crate) fn task_failed(what: &str, error: tokio::task::JoinError) -> StackError {
    StackError::Io {
        action: format!("{what}: the task failed"),
        source: io::Error::other(error.to_string()),
    }
}

impl StackError {
    pub(crate) fn io(action: impl Into<String>) -> impl FnOnce(io::Error) -> StackError {
        let action = action.into();
        move |source| StackError::Io { action, source }
    }

    pub(crate) fn db(action: impl Into<String>) -> impl FnOnce(sqlx::Error) -> StackError {
        let action = action.into();
        move |source| StackError::Database { action, source }
    }

    pub(crate) fn redis(action: impl Into<String>) -> impl FnOnce(redis::RedisError) -> StackError {
        let action = action.into();
        move |source| StackError::Redis { action, source }
    }
}
