//! A running stack's directory: its files, and the records that let a later run reap it.
//!
//! `<root>/runs/<run-id>/` holds the stack's data (`pg/`, `redis/`, `logs/`), an owner
//! file (`owner.json`: PID and start time of the owning process, label, start time)
//! and a PID file per process (`pids/<name>.json`). Dropping a stack stops its
//! processes and removes the directory; a run killed by SIGKILL cannot, so the next
//! start reaps every run whose owner is gone ([`super::reaper`]).
//!
//! The directory is created under a hidden name and renamed into place once the owner
//! file is written, so every visible run directory has an owner.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::procfs;
use crate::{StackError, dirs, ports};

/// Who owns a run directory.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Owner {
    pub pid: i32,
    /// The owner's start time in `/proc` ticks, to tell it from a later process with its PID.
    pub start_time: Option<u64>,
    pub label: String,
    pub run_id: String,
    pub started_at: String,
}

impl Owner {
    /// This process, now.
    pub fn this_process(label: &str, run_id: &str) -> Self {
        let pid = std::process::id() as i32;
        Self {
            pid,
            start_time: procfs::start_time(pid),
            label: label.to_owned(),
            run_id: run_id.to_owned(),
            started_at: chrono::Utc::now().to_rfc3339(),
        }
    }

    /// Whether the owning process still runs (same PID *and* same start time).
    pub fn is_alive(&self) -> bool {
        procfs::is_alive(self.pid)
            && match self.start_time {
                Some(recorded) => procfs::start_time(self.pid) == Some(recorded),
                None => true,
            }
    }
}

/// A process started for a run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PidRecord {
    pub pid: i32,
    pub start_time: Option<u64>,
    /// A word its command line contains while it runs (`postgres`, `redis-server`, `drill`).
    pub program: String,
}

impl PidRecord {
    pub fn of(pid: i32, program: &str) -> Self {
        Self {
            pid,
            start_time: procfs::start_time(pid),
            program: program.to_owned(),
        }
    }

    /// The process still runs and is the one recorded, not a later one with the same PID.
    pub fn is_still_ours(&self) -> bool {
        if !procfs::is_alive(self.pid) {
            return false;
        }
        if let Some(recorded) = self.start_time
            && procfs::start_time(self.pid) != Some(recorded)
        {
            return false;
        }
        procfs::cmdline(self.pid).is_some_and(|c| c.contains(&self.program))
    }
}

/// The directory of one running stack. [`RunDir::remove`] deletes it and releases its ports.
#[derive(Debug)]
pub struct RunDir {
    root: PathBuf,
    path: PathBuf,
    run_id: String,
    claimed_ports: Mutex<Vec<u16>>,
}

pub(crate) const OWNER_FILE: &str = "owner.json";
/// The marker of a docker stack's run directory (see `super::reaper::ReapScope`).
pub(crate) const DOCKER_MARKER: &str = "docker";
pub(crate) const PIDS_DIR: &str = "pids";

pub(crate) fn runs_dir(root: &Path) -> PathBuf {
    root.join("runs")
}

impl RunDir {
    /// Creates `<root>/runs/<run-id>/` owned by this process.
    pub fn create(root: &Path, label: &str) -> Result<Self, StackError> {
        let run_id = new_run_id();
        let owner = Owner::this_process(label, &run_id);
        Self::create_with_owner(root, owner)
    }

    /// Creates a run directory with the given owner record (tests simulate dead owners).
    pub fn create_with_owner(root: &Path, owner: Owner) -> Result<Self, StackError> {
        let runs = runs_dir(root);
        dirs::ensure_traversable_dir(&runs)?;
        let staging = runs.join(format!(".creating-{}", owner.run_id));
        let path = runs.join(&owner.run_id);
        let io = |what: &str| StackError::io(format!("{what} {}", staging.display()));
        fs::create_dir(&staging).map_err(io("creating"))?;
        dirs::ensure_traversable_dir(&staging)?;
        for sub in [PIDS_DIR, "logs"] {
            fs::create_dir(staging.join(sub)).map_err(io("creating a subdirectory of"))?;
        }
        let json = serde_json::to_vec_pretty(&owner).expect("owner records serialise");
        fs::write(staging.join(OWNER_FILE), json).map_err(io("writing the owner file in"))?;
        fs::rename(&staging, &path).map_err(io("renaming into place"))?;
        Ok(Self {
            root: root.to_owned(),
            path,
            run_id: owner.run_id,
            claimed_ports: Mutex::new(Vec::new()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Records a started process under `name` (one file per name, replaced on restart).
    pub fn record(&self, name: &str, record: &PidRecord) -> Result<(), StackError> {
        let file = self.path.join(PIDS_DIR).join(format!("{name}.json"));
        let json = serde_json::to_vec(record).expect("pid records serialise");
        fs::write(&file, json).map_err(StackError::io(format!("writing {}", file.display())))
    }

    /// Forgets a process that is known to have exited.
    pub fn forget(&self, name: &str) {
        let _ = fs::remove_file(self.path.join(PIDS_DIR).join(format!("{name}.json")));
    }

    /// The processes recorded so far.
    pub fn records(&self) -> Vec<(String, PidRecord)> {
        read_records(&self.path)
    }

    /// Claims a free loopback port for this run (see [`ports`]).
    pub fn claim_port(&self) -> Result<u16, StackError> {
        let port = ports::claim_free_port(&self.root, &self.run_id)?;
        if let Ok(mut claimed) = self.claimed_ports.lock() {
            claimed.push(port);
        }
        Ok(port)
    }

    /// Deletes the directory and releases the run's port claims; idempotent.
    pub fn remove(&self) {
        let claimed = match self.claimed_ports.lock() {
            Ok(mut claimed) => std::mem::take(&mut *claimed),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        ports::release(&self.root, &self.run_id, &claimed);
        remove_tree(&self.path);
    }
}

/// The PID records in a run directory, by name.
pub(crate) fn read_records(run: &Path) -> Vec<(String, PidRecord)> {
    let Ok(entries) = fs::read_dir(run.join(PIDS_DIR)) else {
        return Vec::new();
    };
    let mut records: Vec<(String, PidRecord)> = entries
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().to_str()?.strip_suffix(".json")?.to_owned();
            let record = serde_json::from_slice(&fs::read(e.path()).ok()?).ok()?;
            Some((name, record))
        })
        .collect();
    records.sort_by(|a, b| a.0.cmp(&b.0));
    records
}

/// Removes a tree, tolerating a concurrent remover; unmounts what is mounted below it
/// first (the stack's disk, [`super::disk`]), and removes the run's memory cgroups
/// after ([`crate::memory`]).
pub(crate) fn remove_tree(path: &Path) {
    super::disk::unmount_below(path);
    match fs::remove_dir_all(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "could not remove run files"),
    }
    // A run directory is named after its run id, and so are the run's cgroups.
    if let Some(run_id) = path.file_name().and_then(|name| name.to_str()) {
        crate::memory::remove_cgroups(run_id);
    }
}

/// `<pid>-<unix ms>-<n>`: unique per process, and the PID says whose it is.
fn new_run_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}-{ms}-{n}", std::process::id())
}
