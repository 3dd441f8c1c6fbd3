//! One measuring stack at a time on a machine: a lock in the runtime root.
//!
//! Modeled time runs with the wall clock. Two drills side by side on a two-core
//! machine starve each other's pipelines, and every modeled minute they measure
//! (time to detect, time to resolve) then measures the machine's load as much as the
//! runbook. Test runners run a target's tests at once (`cargo test` does, unless told
//! otherwise), and several targets or a `drill run` may run beside them; so a stack
//! that measures takes its *turn*: an exclusive `flock` on `<runtime root>/turn.lock`,
//! held for the stack's life and released by the kernel when its process ends, however
//! it ends. A game-day stack (`drill up`) takes no turn: it measures nothing by itself,
//! and it would hold the machine for hours.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use crate::StackError;

const LOCK_FILE: &str = "turn.lock";

/// A held turn; dropping it lets the next stack go.
#[derive(Debug)]
pub struct Turn {
    _file: File,
}

impl Turn {
    /// The turn of a stack built with `options`, if it takes one.
    pub(crate) async fn for_options(
        options: &crate::StackOptions,
    ) -> Result<Option<Turn>, StackError> {
        if !options.takes_turn {
            return Ok(None);
        }
        let root = crate::dirs::runtime_root()?;
        Ok(Some(Turn::take(&root, &options.label).await?))
    }

    /// Waits (without bound: a drill may take minutes) until no other measuring stack
    /// runs on this machine, saying once who it waits for.
    pub async fn take(runtime_root: &Path, label: &str) -> Result<Turn, StackError> {
        let path = runtime_root.join(LOCK_FILE);
        let label = label.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&path)
                .map_err(StackError::io(format!("opening {}", path.display())))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    let holder = std::fs::read_to_string(&path).unwrap_or_default();
                    let waited = Instant::now();
                    eprintln!(
                        "waiting for the stack of {} to finish: one measuring stack runs at a \
                         time, since modeled time runs with the wall clock",
                        describe(&holder)
                    );
                    file.lock()
                        .map_err(StackError::io(format!("locking {}", path.display())))?;
                    tracing::info!(
                        "took the turn after {:.1} s",
                        waited.elapsed().as_secs_f64()
                    );
                }
                Err(TryLockError::Error(e)) => {
                    return Err(StackError::io(format!("locking {}", path.display()))(e));
                }
            }
            // Who holds the turn, for whoever waits next.
            file.set_len(0)
                .and_then(|()| writeln!(file, "pid {} ({label})", std::process::id()))
                .map_err(StackError::io(format!("writing {}", path.display())))?;
            Ok(Turn { _file: file })
        })
        .await
        .map_err(|e| crate::error::task_failed("waiting for the stack's turn", e))?
    }
}

fn describe(holder: &str) -> String {
    match holder.trim() {
        "" => "another process".to_owned(),
        holder => holder.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_second_turn_waits_for_the_first_to_end() {
        let root = tempfile::tempdir().unwrap();
        let first = Turn::take(root.path(), "first").await.unwrap();
        let second = tokio::spawn({
            let root = root.path().to_owned();
            async move { Turn::take(&root, "second").await.unwrap() }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!second.is_finished(), "the second turn waits");
        assert!(
            std::fs::read_to_string(root.path().join(LOCK_FILE))
                .unwrap()
                .contains("(first)"),
            "the holder is named for whoever waits"
        );
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("the second turn comes once the first ends")
            .unwrap();
    }
}
