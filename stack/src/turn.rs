//! How many measuring stacks run at once on a machine: turns, locks in the runtime root.
//!
//! Modeled time runs with the wall clock. Drills side by side on a small machine share
//! its cores, and every modeled minute they measure (time to detect, time to resolve)
//! then measures the machine's load as much as the runbook. Test runners run a
//! target's tests at once (`cargo test` does, unless told otherwise), and several
//! targets or a `drill run` may run beside them; so a stack that measures takes a
//! *turn*: an exclusive `flock` on one of the runtime root's turn files, held for the
//! stack's life and released by the kernel when its process ends, however it ends.
//!
//! A machine has one turn unless `DRILL_TURNS` gives more: `drill run`, `drill matrix`
//! and plain `cargo test` measure one stack at a time. The test command sets three on
//! CI's two cores (`scripts/test`): a drill waits on modeled time far more than it
//! computes, so three side by side pass within their budgets, each taking as long as
//! alone, in a third of the time; the figures a report gives are taken one at a time. A
//! stack whose drill measures heavy load that the harness itself generates (a traffic
//! surge against the pools, hundreds of requests a real second: the generator must
//! keep pace with modeled time) takes every turn ([`TurnKind::Alone`]): side by side,
//! its load fell behind and a pool drill's control run resolved without the runbook.
//! The pools' steady reads take one turn like any drill (the harness decides which,
//! from the scenario's rates and scale). A docker stack that takes a turn takes every
//! turn ([`TurnKind::on_docker`]). A game-day stack (`drill up`) takes no
//! turn: it measures nothing by itself, and it would hold the machine for hours.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::StackError;

/// The environment variable that gives the machine more than one turn.
pub const TURNS_VAR: &str = "DRILL_TURNS";

/// How often a stack that shares the machine looks for a free turn.
const POLL: Duration = Duration::from_millis(100);

/// Whether and how a stack takes its turn; ordered by how much of the machine it takes,
/// so that a stack serving several drills takes the largest turn any of them needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TurnKind {
    /// A game-day stack, or a stack's own test stand-ins: no turn.
    None,
    /// One of the machine's turns.
    Shared,
    /// Every turn: nothing else measures while this stack runs.
    Alone,
}

impl TurnKind {
    /// The turn a docker stack takes: every turn if it takes one at all. Its nine
    /// containers boot through the one engine and every request crosses the engine's
    /// port proxy, which share the cores with whatever else runs: beside two local
    /// drills, a pool game day on docker found its pool full before the fault struck.
    /// With one turn (the docker pass, `drill run`) this changes nothing.
    pub fn on_docker(self) -> TurnKind {
        match self {
            TurnKind::None => TurnKind::None,
            TurnKind::Shared | TurnKind::Alone => TurnKind::Alone,
        }
    }
}

/// A held turn (or every turn); dropping it lets the next stack go.
#[derive(Debug)]
pub struct Turn {
    _files: Vec<File>,
}

/// The machine's number of turns: `DRILL_TURNS`, 1 when unset.
pub fn turns() -> Result<usize, StackError> {
    parse_turns(std::env::var(TURNS_VAR).ok().as_deref())
}

fn parse_turns(value: Option<&str>) -> Result<usize, StackError> {
    let Some(value) = value else { return Ok(1) };
    match value.trim().parse::<usize>() {
        Ok(n) if (1..=16).contains(&n) => Ok(n),
        _ => Err(StackError::InvalidOptions(format!(
            "{TURNS_VAR}={value:?}: give how many measuring stacks may run at once on \
             this machine, 1 to 16 (1 unless set)"
        ))),
    }
}

impl Turn {
    /// The turn of a stack built with `options`, if it takes one.
    pub(crate) async fn for_options(
        options: &crate::StackOptions,
    ) -> Result<Option<Turn>, StackError> {
        if options.turn == TurnKind::None {
            return Ok(None);
        }
        let root = crate::dirs::runtime_root()?;
        let turns = turns()?;
        Ok(Some(
            Turn::take(&root, &options.label, options.turn, turns).await?,
        ))
    }

    /// Waits (without bound: a drill may take minutes) until one of the machine's
    /// `turns` is free (or, [`TurnKind::Alone`], all of them), saying once who it
    /// waits for.
    pub async fn take(
        runtime_root: &Path,
        label: &str,
        kind: TurnKind,
        turns: usize,
    ) -> Result<Turn, StackError> {
        let paths: Vec<PathBuf> = (0..turns.max(1))
            .map(|slot| runtime_root.join(lock_file(slot)))
            .collect();
        let label = label.to_owned();
        tokio::task::spawn_blocking(move || {
            let files = match kind {
                TurnKind::Alone => take_all(&paths, &label)?,
                _ => vec![take_one(&paths, &label)?],
            };
            Ok(Turn { _files: files })
        })
        .await
        .map_err(|e| crate::error::task_failed("waiting for the stack's turn", e))?
    }
}

/// Slot 0 keeps the name it had when a machine had one turn.
fn lock_file(slot: usize) -> String {
    match slot {
        0 => "turn.lock".to_owned(),
        n => format!("turn.{n}.lock"),
    }
}

fn open(path: &Path) -> Result<File, StackError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(StackError::io(format!("opening {}", path.display())))
}

/// Records who holds a turn, for whoever waits next.
fn claim(mut file: File, path: &Path, label: &str) -> Result<File, StackError> {
    file.set_len(0)
        .and_then(|()| writeln!(file, "pid {} ({label})", std::process::id()))
        .map_err(StackError::io(format!("writing {}", path.display())))?;
    Ok(file)
}

fn try_take(path: &Path) -> Result<Option<File>, StackError> {
    let file = open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => {
            Err(StackError::io(format!("locking {}", path.display()))(e))
        }
    }
}

fn holders(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|path| describe(&std::fs::read_to_string(path).unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(" and ")
}

/// The first free turn, polling until one is.
fn take_one(paths: &[PathBuf], label: &str) -> Result<File, StackError> {
    let mut waiting: Option<Instant> = None;
    loop {
        for path in paths {
            if let Some(file) = try_take(path)? {
                if let Some(since) = waiting {
                    tracing::info!("took a turn after {:.1} s", since.elapsed().as_secs_f64());
                }
                return claim(file, path, label);
            }
        }
        if waiting.is_none() {
            eprintln!(
                "waiting for the stack of {} to finish: {} measuring stack{} at a time \
                 ({TURNS_VAR}), since modeled time runs with the wall clock",
                holders(paths),
                paths.len(),
                if paths.len() == 1 { " runs" } else { "s run" }
            );
            waiting = Some(Instant::now());
        }
        std::thread::sleep(POLL);
    }
}

/// Every turn, in order (so two stacks that want the machine alone never hold one
/// each and wait for the other's).
fn take_all(paths: &[PathBuf], label: &str) -> Result<Vec<File>, StackError> {
    let mut held = Vec::with_capacity(paths.len());
    let mut said = false;
    for path in paths {
        let file = match try_take(path)? {
            Some(file) => file,
            None => {
                if !said {
                    eprintln!(
                        "waiting for the stack of {} to finish: this stack runs alone \
                         (a docker stack, or a drill of load the harness generates)",
                        holders(paths)
                    );
                    said = true;
                }
                let file = open(path)?;
                file.lock()
                    .map_err(StackError::io(format!("locking {}", path.display())))?;
                file
            }
        };
        held.push(claim(file, path, label)?);
    }
    Ok(held)
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

    async fn take(root: &Path, label: &str, kind: TurnKind, turns: usize) -> Turn {
        Turn::take(root, label, kind, turns).await.unwrap()
    }

    /// A turn taken in the background, and whether it has come yet.
    fn later(
        root: &Path,
        label: &'static str,
        kind: TurnKind,
        turns: usize,
    ) -> tokio::task::JoinHandle<Turn> {
        let root = root.to_owned();
        tokio::spawn(async move { take(&root, label, kind, turns).await })
    }

    async fn comes(waiting: tokio::task::JoinHandle<Turn>) -> Turn {
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the turn comes once the holder ends")
            .unwrap()
    }

    const A_MOMENT: Duration = Duration::from_millis(300);

    #[tokio::test]
    async fn with_one_turn_a_second_stack_waits_for_the_first_to_end() {
        let root = tempfile::tempdir().unwrap();
        let first = take(root.path(), "first", TurnKind::Shared, 1).await;
        let second = later(root.path(), "second", TurnKind::Shared, 1);
        tokio::time::sleep(A_MOMENT).await;
        assert!(!second.is_finished(), "the second turn waits");
        assert!(
            std::fs::read_to_string(root.path().join(lock_file(0)))
                .unwrap()
                .contains("(first)"),
            "the holder is named for whoever waits"
        );
        drop(first);
        comes(second).await;
    }

    #[tokio::test]
    async fn with_two_turns_two_stacks_run_and_a_third_waits() {
        let root = tempfile::tempdir().unwrap();
        let first = take(root.path(), "first", TurnKind::Shared, 2).await;
        let _second = tokio::time::timeout(
            Duration::from_secs(5),
            take(root.path(), "second", TurnKind::Shared, 2),
        )
        .await
        .expect("the second turn is free");
        let third = later(root.path(), "third", TurnKind::Shared, 2);
        tokio::time::sleep(A_MOMENT).await;
        assert!(!third.is_finished(), "two run, the third waits");
        drop(first);
        comes(third).await;
    }

    #[tokio::test]
    async fn a_stack_that_runs_alone_waits_for_every_turn_and_holds_them_all() {
        let root = tempfile::tempdir().unwrap();
        let shared = take(root.path(), "shared", TurnKind::Shared, 2).await;
        let alone = later(root.path(), "alone", TurnKind::Alone, 2);
        tokio::time::sleep(A_MOMENT).await;
        assert!(!alone.is_finished(), "it waits although a turn is free");
        drop(shared);
        let alone = comes(alone).await;
        let after = later(root.path(), "after", TurnKind::Shared, 2);
        tokio::time::sleep(A_MOMENT).await;
        assert!(!after.is_finished(), "nothing runs beside it");
        drop(alone);
        comes(after).await;
    }

    #[test]
    fn a_stack_for_several_drills_takes_the_largest_turn_they_need() {
        let needed = [TurnKind::Shared, TurnKind::Alone, TurnKind::None];
        assert_eq!(needed.into_iter().max(), Some(TurnKind::Alone));
        assert!(TurnKind::None < TurnKind::Shared);
    }

    #[test]
    fn a_docker_stack_that_takes_a_turn_takes_every_turn() {
        assert_eq!(TurnKind::Shared.on_docker(), TurnKind::Alone);
        assert_eq!(TurnKind::Alone.on_docker(), TurnKind::Alone);
        assert_eq!(TurnKind::None.on_docker(), TurnKind::None);
    }

    #[test]
    fn the_number_of_turns_is_one_unless_set_and_checked() {
        assert_eq!(parse_turns(None).unwrap(), 1);
        assert_eq!(parse_turns(Some(" 2 ")).unwrap(), 2);
        for bad in ["0", "two", "-1", "17", ""] {
            let error = parse_turns(Some(bad)).unwrap_err().to_string();
            assert!(
                error.contains("DRILL_TURNS") && error.contains("1 to 16"),
                "{error}"
            );
        }
    }
}
