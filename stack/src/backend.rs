//! Which backend builds a stack: `--backend local|docker|auto`, or `DRILL_BACKEND`.
//!
//! `auto`, the default, takes docker when an engine answers and the images of
//! `scripts/images` are present, and local otherwise. Either way the choice comes with
//! the reason for it, so that a drill says what it runs on and why: a game day that
//! silently fell back to processes would measure the wrong thing.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::StackError;
use crate::docker::{DockerError, Images, engine};

/// The environment variable tests and scripts choose a backend with.
pub const BACKEND_ENV: &str = "DRILL_BACKEND";

/// How long `auto` waits for a docker engine before taking the local backend.
const ENGINE_PROBE: Duration = Duration::from_secs(3);

/// A backend that builds stacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// PostgreSQL, Redis and the twin's services as processes of this machine.
    Local,
    /// Everything as containers on a docker network of the stack's own.
    Docker,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Local => "local",
            Backend::Docker => "docker",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What was asked for: one backend, or whichever this machine can run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendChoice {
    Local,
    Docker,
    #[default]
    Auto,
}

impl FromStr for BackendChoice {
    type Err = StackError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "local" => Ok(BackendChoice::Local),
            "docker" => Ok(BackendChoice::Docker),
            "auto" | "" => Ok(BackendChoice::Auto),
            other => Err(StackError::InvalidOptions(format!(
                "unknown backend `{other}`: expected local, docker or auto"
            ))),
        }
    }
}

/// A backend and why it was taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selected {
    pub backend: Backend,
    pub reason: String,
}

impl fmt::Display for Selected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "backend {} ({})", self.backend, self.reason)
    }
}

impl BackendChoice {
    /// `DRILL_BACKEND`, `auto` when unset; an unknown value is an error naming the
    /// variable.
    pub fn from_env() -> Result<Self, StackError> {
        match std::env::var(BACKEND_ENV) {
            Ok(value) => value.parse().map_err(|e| match e {
                StackError::InvalidOptions(why) => {
                    StackError::InvalidOptions(format!("{BACKEND_ENV}: {why}"))
                }
                other => other,
            }),
            Err(_) => Ok(BackendChoice::Auto),
        }
    }

    /// Decides. An explicit `docker` fails here, before anything starts, when the
    /// engine or an image is missing; `auto` falls back to local and says why.
    pub async fn select(self) -> Result<Selected, StackError> {
        match self {
            BackendChoice::Local => Ok(Selected {
                backend: Backend::Local,
                reason: "asked for".into(),
            }),
            BackendChoice::Docker => {
                let images = docker_ready().await?;
                Ok(Selected {
                    backend: Backend::Docker,
                    reason: format!("asked for; images {images}"),
                })
            }
            BackendChoice::Auto => Ok(match docker_ready().await {
                Ok(images) => Selected {
                    backend: Backend::Docker,
                    reason: format!(
                        "auto: the docker engine answers and has the images ({images})"
                    ),
                },
                Err(why) => Selected {
                    backend: Backend::Local,
                    reason: format!("auto: {why}"),
                },
            }),
        }
    }
}

/// The images, listed, when an engine answers and has them.
async fn docker_ready() -> Result<String, StackError> {
    let probe = async {
        let docker = engine::connect().await?;
        let images = Images::from_env();
        images.check(&docker).await?;
        Ok::<_, DockerError>(images)
    };
    let images = tokio::time::timeout(ENGINE_PROBE, probe)
        .await
        .map_err(|_| {
            StackError::InvalidOptions(format!(
                "the docker engine did not answer within {ENGINE_PROBE:?}"
            ))
        })??;
    Ok(images.all().join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse_case_blind_and_unknown_ones_list_the_known() {
        assert_eq!(
            "Docker".parse::<BackendChoice>().unwrap(),
            BackendChoice::Docker
        );
        assert_eq!(
            " local ".parse::<BackendChoice>().unwrap(),
            BackendChoice::Local
        );
        assert_eq!(
            "auto".parse::<BackendChoice>().unwrap(),
            BackendChoice::Auto
        );
        let error = "podman".parse::<BackendChoice>().unwrap_err().to_string();
        assert!(error.contains("`podman`"), "{error}");
        assert!(error.contains("local, docker or auto"), "{error}");
    }

    #[tokio::test]
    async fn local_is_taken_without_asking_docker() {
        let selected = BackendChoice::Local.select().await.unwrap();
        assert_eq!(selected.backend, Backend::Local);
        assert_eq!(selected.to_string(), "backend local (asked for)");
    }
}
