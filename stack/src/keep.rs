//! `DRILL_KEEP=on-failure`: leave a failed drill's stack up to look at.
//!
//! A kept stack is not torn down when its handle is dropped, is marked so that the
//! reaping every stack start does leaves it alone, and is described (how to reach
//! it, how to remove it) for the person who asked. `drill reap --kept` removes kept
//! stacks.
//!
//! What stays depends on where it lived. PostgreSQL and Redis stay on both backends,
//! and on docker the twin's containers too. The provider stand-ins live in the drill
//! process, and the local backend's twin services end with it (they watch their
//! parent), so those are gone once the process that kept the stack has exited.

use std::path::{Path, PathBuf};

use crate::StackError;

/// The environment variable that asks for failed stacks to be kept.
pub const KEEP_ENV: &str = "DRILL_KEEP";

/// Name of the marker a kept local run directory holds.
pub(crate) const KEPT_MARKER: &str = "kept";

/// When to keep a stack up instead of tearing it down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeepPolicy {
    #[default]
    Never,
    OnFailure,
}

impl KeepPolicy {
    /// `DRILL_KEEP`: unset, empty or `never`, or `on-failure`.
    pub fn from_env() -> Result<Self, StackError> {
        match std::env::var(KEEP_ENV).unwrap_or_default().trim() {
            "" | "never" => Ok(KeepPolicy::Never),
            "on-failure" => Ok(KeepPolicy::OnFailure),
            other => Err(StackError::InvalidOptions(format!(
                "{KEEP_ENV}={other}: expected on-failure or never"
            ))),
        }
    }

    /// Whether a run that `passed` (or not) keeps its stack.
    pub fn keeps(self, passed: bool) -> bool {
        self == KeepPolicy::OnFailure && !passed
    }
}

/// Where markers of kept docker runs live: `<runtime root>/kept/<run id>`.
pub(crate) fn docker_marker_dir(runtime_root: &Path) -> PathBuf {
    runtime_root.join("kept")
}

/// Whether docker run `run_id` was kept.
pub(crate) fn docker_run_kept(run_id: &str) -> bool {
    crate::dirs::runtime_root()
        .map(|root| docker_marker_dir(&root).join(run_id).exists())
        .unwrap_or(false)
}

/// Marks docker run `run_id` as kept.
pub(crate) fn mark_docker_run_kept(run_id: &str, description: &str) -> Result<(), StackError> {
    let dir = docker_marker_dir(&crate::dirs::runtime_root()?);
    std::fs::create_dir_all(&dir).map_err(StackError::io(format!("creating {}", dir.display())))?;
    let marker = dir.join(run_id);
    std::fs::write(&marker, description)
        .map_err(StackError::io(format!("writing {}", marker.display())))
}

/// Forgets that docker run `run_id` was kept (after removing it).
pub(crate) fn unmark_docker_run(run_id: &str) {
    if let Ok(root) = crate::dirs::runtime_root() {
        let _ = std::fs::remove_file(docker_marker_dir(&root).join(run_id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_failure_under_on_failure_keeps() {
        assert!(KeepPolicy::OnFailure.keeps(false));
        assert!(!KeepPolicy::OnFailure.keeps(true));
        assert!(!KeepPolicy::Never.keeps(false));
    }
}
