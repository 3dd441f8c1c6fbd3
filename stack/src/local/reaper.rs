//! Reaping what killed runs left behind.
//!
//! A stack dropped normally stops its processes and removes its run directory. A run
//! killed with SIGKILL cannot: its twin services exit on their own when their parent
//! dies (they watch `DRILL_PARENT_PID`), but PostgreSQL and Redis do not. So every
//! [`crate::Stack::start`] first reaps each run directory whose owner process is gone:
//! it kills the processes recorded there (after checking that each PID still belongs to
//! the process that was recorded, not to a newer one), then removes the directory and
//! the run's port claims.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use super::procfs;
use super::run_dir::{self, OWNER_FILE, Owner, PidRecord};
use crate::{ports, wait};

/// What one reaping pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReapReport {
    /// Run ids of the directories removed.
    pub runs: Vec<String>,
    /// PIDs that were still running and were killed.
    pub killed: Vec<i32>,
}

/// A directory still being created (hidden name) is left alone for this long.
const CREATION_GRACE: Duration = Duration::from_secs(600);
/// How long to wait for killed processes to disappear (so their ports are free again).
const KILL_WAIT: Duration = Duration::from_secs(3);

/// Which stale runs a reaping removes, beyond those of plain dead owners.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReapScope {
    /// Kept ones (`DRILL_KEEP`), which only `drill reap --kept` removes.
    pub kept: bool,
    /// Docker runs' directories. One holds its PostgreSQL's data while that container
    /// may still run and write there, so only a reaping that removed the run's
    /// containers first takes it (a docker start, `drill reap`).
    pub docker: bool,
}

/// A run directory whose owner process is gone: what a killed run left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleRun {
    pub path: std::path::PathBuf,
    pub run_id: String,
    /// The label the run was started with (test or scenario), if its owner file reads.
    pub label: Option<String>,
    /// Recorded processes that still run.
    pub live_pids: Vec<i32>,
    /// Left up on purpose (`DRILL_KEEP`): reaped only when asked for.
    pub kept: bool,
    /// A docker stack's (see [`ReapScope::docker`]).
    pub docker: bool,
}

/// Lists, without touching anything, every run under `root` whose owner is dead.
pub fn stale_runs(root: &Path) -> Vec<StaleRun> {
    let runs = run_dir::runs_dir(root);
    let Ok(entries) = fs::read_dir(&runs) else {
        return Vec::new();
    };
    let mut stale = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            // A directory still being created; stale only after a long grace.
            if older_than(&path, CREATION_GRACE) {
                stale.push(StaleRun {
                    path,
                    run_id: name,
                    label: None,
                    live_pids: Vec::new(),
                    kept: false,
                    docker: false,
                });
            }
            continue;
        }
        let owner: Option<Owner> = fs::read(path.join(OWNER_FILE))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        if owner.as_ref().is_some_and(Owner::is_alive) {
            continue;
        }
        if owner.is_none() && !older_than(&path, Duration::from_secs(60)) {
            // Unreadable owner in a fresh directory: possibly not ours to judge yet.
            continue;
        }
        let mut live_pids: Vec<i32> = recorded(&path)
            .into_iter()
            .filter(PidRecord::is_still_ours)
            .map(|r| r.pid)
            .collect();
        live_pids.sort_unstable();
        live_pids.dedup();
        stale.push(StaleRun {
            kept: path.join(crate::keep::KEPT_MARKER).exists(),
            docker: path.join(run_dir::DOCKER_MARKER).exists(),
            path,
            run_id: name,
            label: owner.map(|o| o.label),
            live_pids,
        });
    }
    stale
}

/// Reaps every run under `root` whose owner is dead, kept and docker ones only as
/// `scope` says.
pub fn reap_stale_runs(root: &Path, scope: ReapScope) -> ReapReport {
    let mut report = ReapReport::default();
    for run in stale_runs(root) {
        if (run.kept && !scope.kept) || (run.docker && !scope.docker) {
            continue;
        }
        report.killed.extend(kill_recorded(&run.path));
        run_dir::remove_tree(&run.path);
        tracing::info!(
            run = run.run_id,
            label = run.label.unwrap_or_default(),
            "reaped a stale run"
        );
        report.runs.push(run.run_id);
    }
    crate::memory::remove_orphaned_cgroups(root, CREATION_GRACE);
    ports::reap_stale_claims(root);
    report
}

/// The processes recorded in a run directory, with its PostgreSQL postmaster (by
/// `pg/postmaster.pid`).
fn recorded(run: &Path) -> Vec<PidRecord> {
    let mut records: Vec<PidRecord> = run_dir::read_records(run)
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    if let Some(pid) = postmaster_pid(&run.join("pg")) {
        records.push(PidRecord {
            pid,
            start_time: None,
            // The postmaster's command line names its data directory.
            program: run.join("pg").to_string_lossy().into_owned(),
        });
    }
    records
}

/// Kills the processes recorded in a run directory, then waits for them to be gone.
fn kill_recorded(run: &Path) -> Vec<i32> {
    let records = recorded(run);
    let mut killed = Vec::new();
    let mut victims = Vec::new();
    for record in records {
        if !record.is_still_ours() || killed.contains(&record.pid) {
            continue;
        }
        // The process with its group (our children lead one) and its descendants
        // (PostgreSQL's backends, which leave the postmaster's group).
        let family: Vec<procfs::Identity> = procfs::family(record.pid)
            .into_iter()
            .filter_map(procfs::Identity::of)
            .collect();
        if procfs::stat(record.pid).is_some_and(|s| s.pgrp == record.pid) {
            let _ = killpg(Pid::from_raw(record.pid), Signal::SIGKILL);
        }
        for member in &family {
            let _ = kill(Pid::from_raw(member.pid), Signal::SIGKILL);
        }
        killed.push(record.pid);
        victims.extend(family);
    }
    let gone = wait::until_blocking(KILL_WAIT, Duration::from_millis(5), || {
        victims.iter().all(|m| !m.is_alive())
    });
    if !gone {
        tracing::warn!(?killed, "reaped processes are still alive after SIGKILL");
    }
    killed
}

/// The PID on the first line of `postmaster.pid`, if the file exists.
pub(crate) fn postmaster_pid(data_dir: &Path) -> Option<i32> {
    let text = fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

fn older_than(path: &Path, age: Duration) -> bool {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|elapsed| elapsed > age)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::run_dir::RunDir;
    use std::process::Command;

    /// A PID that certainly ran and certainly ended: a child that exited and was reaped.
    fn dead_pid() -> i32 {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        pid
    }

    /// A `sleep` child that has finished its exec. Right after `spawn` returns, the
    /// kernel may not have set up the new program's arguments yet, and its command line
    /// reads empty; a stack records its processes long after that point.
    fn sleeper() -> std::process::Child {
        let child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id() as i32;
        let execed = wait::until_blocking(Duration::from_secs(5), Duration::from_millis(1), || {
            procfs::cmdline(pid).is_some_and(|c| c.contains("sleep"))
        });
        assert!(execed, "sleep did not start within 5 s");
        child
    }

    #[test]
    fn a_run_whose_owner_died_is_reaped_and_its_live_process_killed() {
        let root = tempfile::tempdir().unwrap();
        let mut sleeper = sleeper();
        let owner = Owner {
            pid: dead_pid(),
            start_time: Some(1),
            label: "killed test".into(),
            run_id: "1-2-3".into(),
            started_at: "2025-01-01T00:00:00Z".into(),
        };
        let run = RunDir::create_with_owner(root.path(), owner).unwrap();
        run.record("sleeper", &PidRecord::of(sleeper.id() as i32, "sleep"))
            .unwrap();
        let path = run.path().to_owned();
        std::mem::forget(run); // as if the owner were killed: no cleanup ran

        let pid = sleeper.id() as i32;
        let before = (procfs::stat(pid), procfs::cmdline(pid));
        let report = reap_stale_runs(root.path(), ReapScope::default());

        assert_eq!(report.runs, vec!["1-2-3".to_owned()]);
        assert_eq!(
            report.killed,
            vec![pid],
            "the sleeper before reaping: {before:?}"
        );
        let status = sleeper.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc_sigkill()));
        assert!(!path.exists(), "the run directory is removed");
    }

    #[test]
    fn a_docker_runs_directory_is_reaped_only_after_its_containers() {
        let root = tempfile::tempdir().unwrap();
        let owner = Owner {
            pid: dead_pid(),
            start_time: Some(1),
            label: "docker".into(),
            run_id: "0badc0de".into(),
            started_at: String::new(),
        };
        let run = RunDir::create_with_owner(root.path(), owner).unwrap();
        std::fs::write(run.path().join(run_dir::DOCKER_MARKER), b"").unwrap();
        let path = run.path().to_owned();
        std::mem::forget(run);

        let local_start = reap_stale_runs(root.path(), ReapScope::default());
        assert!(local_start.runs.is_empty());
        assert!(
            path.exists(),
            "a local start leaves it: the run's PostgreSQL container may still write there"
        );
        let docker_start = ReapScope {
            kept: false,
            docker: true,
        };
        assert_eq!(
            reap_stale_runs(root.path(), docker_start).runs,
            vec!["0badc0de"]
        );
        assert!(!path.exists());
    }

    #[test]
    fn a_kept_run_is_reaped_only_when_asked() {
        let root = tempfile::tempdir().unwrap();
        let owner = Owner {
            pid: dead_pid(),
            start_time: Some(1),
            label: "kept".into(),
            run_id: "7-8-9".into(),
            started_at: String::new(),
        };
        let run = RunDir::create_with_owner(root.path(), owner).unwrap();
        std::fs::write(run.path().join(crate::keep::KEPT_MARKER), b"").unwrap();
        let path = run.path().to_owned();
        std::mem::forget(run);

        assert!(
            reap_stale_runs(root.path(), ReapScope::default())
                .runs
                .is_empty()
        );
        assert!(path.exists(), "a kept run survives the reaping of a start");
        assert_eq!(
            reap_stale_runs(
                root.path(),
                ReapScope {
                    kept: true,
                    docker: false
                }
            )
            .runs,
            vec!["7-8-9"]
        );
        assert!(!path.exists());
    }

    #[test]
    fn a_run_whose_owner_lives_is_left_alone() {
        let root = tempfile::tempdir().unwrap();
        let run = RunDir::create(root.path(), "alive").unwrap();
        let report = reap_stale_runs(root.path(), ReapScope::default());
        assert!(report.runs.is_empty());
        assert!(run.path().exists());
        run.remove();
        assert!(!run.path().exists());
    }

    #[test]
    fn a_recycled_pid_is_not_killed() {
        // The recorded start time does not match the live process that now has the PID.
        let root = tempfile::tempdir().unwrap();
        let mut sleeper = sleeper();
        let owner = Owner {
            pid: dead_pid(),
            start_time: None,
            label: "old".into(),
            run_id: "4-5-6".into(),
            started_at: String::new(),
        };
        let run = RunDir::create_with_owner(root.path(), owner).unwrap();
        let mut record = PidRecord::of(sleeper.id() as i32, "sleep");
        record.start_time = record.start_time.map(|t| t + 1);
        run.record("sleeper", &record).unwrap();
        std::mem::forget(run);

        let report = reap_stale_runs(root.path(), ReapScope::default());

        assert_eq!(report.runs.len(), 1);
        assert!(report.killed.is_empty());
        assert!(sleeper.try_wait().unwrap().is_none(), "sleep still runs");
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
    }

    fn libc_sigkill() -> i32 {
        Signal::SIGKILL as i32
    }
}
