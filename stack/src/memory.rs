//! The stack's memory: one memory cgroup per stack, limited to the stack's budget.
//!
//! The Memory Exhaustion runbook reads `free -h`, `docker stats` and the kernel's OOM
//! record (`dmesg | grep -i oom`). To drill it the stack needs memory that really runs
//! out, on both backends, without the host's 24 GiB diluting it. So every process of a
//! stack lives in one cgroup (v1 memory controller), `runbook-drill/<run id>`, whose
//! limit is the stack's budget: docker puts each container below it
//! (`HostConfig.CgroupParent`), the local backend puts each service's processes in a
//! child cgroup named after the service, joined before the program starts. `free -h`
//! reads the cgroup: total is the limit, used is what it is charged less the inactive
//! file cache (the figure `docker stats` gives); when it runs out the kernel's OOM
//! killer acts inside it, and `memory.oom_control` counts its kills.
//!
//! Making one needs root, the v1 memory controller mounted, and (for docker) an engine
//! on this host with the `cgroupfs` driver. Where that is missing, [`StackMemory`] says
//! why, memory reads as the sum of the services' memory against the budget, and a
//! drill that needs memory to run out is skipped with that reason rather than faked.
//!
//! A cgroup lives exactly as long as the run directory: removing a run directory
//! ([`crate::local::run_dir`]) removes the run's cgroups in every hierarchy (docker's
//! runtime creates the parent in each), so a dropped stack, a panic, or the reaping of
//! a killed run leaves none behind.

use std::path::{Path, PathBuf};

/// The stack's memory budget: what `free -h` calls total. A stack at rest uses a
/// fifth to a third of it (PostgreSQL and its cache, Redis, nine twin services).
pub const DEFAULT_MEMORY_BUDGET: u64 = 1024 * 1024 * 1024;

/// The directory below each hierarchy's mount point that holds the stacks' cgroups.
const PARENT: &str = "runbook-drill";

/// What `free -h` and the kernel's OOM record say about one stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryReading {
    /// Charged memory less inactive file cache.
    pub used: u64,
    /// The cgroup's limit (the stack's budget).
    pub limit: u64,
    /// Processes the OOM killer has killed in the stack since it started.
    pub oom_kills: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no `{field}` in it")]
    Format { path: PathBuf, field: &'static str },
}

/// One stack's memory cgroup in the v1 memory hierarchy.
#[derive(Clone, Debug)]
pub struct MemoryCgroup {
    /// `/sys/fs/cgroup/memory/runbook-drill/<run id>`.
    path: PathBuf,
    run_id: String,
}

impl MemoryCgroup {
    /// Creates the run's cgroup with `limit` bytes as its limit, or says why it cannot.
    pub fn create(run_id: &str, limit: u64) -> Result<Self, String> {
        if !nix::unistd::geteuid().is_root() {
            return Err(
                "a stack's memory limit is a cgroup of its own, which needs root; \
                 run as root to drill memory exhaustion"
                    .into(),
            );
        }
        let root = memory_hierarchy()?;
        let path = root.join(PARENT).join(run_id);
        std::fs::create_dir_all(&path)
            .map_err(|e| format!("creating the cgroup {}: {e}", path.display()))?;
        let cgroup = Self {
            path,
            run_id: run_id.to_owned(),
        };
        if let Err(e) = write(
            &cgroup.path.join("memory.limit_in_bytes"),
            &limit.to_string(),
        ) {
            remove_cgroups(run_id);
            return Err(format!("limiting the stack's memory: {e}"));
        }
        Ok(cgroup)
    }

    /// Where the cgroup is in the memory hierarchy.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cgroup path docker's `CgroupParent` takes: `/runbook-drill/<run id>`.
    pub fn docker_parent(&self) -> String {
        format!("/{PARENT}/{}", self.run_id)
    }

    /// The `cgroup.procs` file of the child cgroup for `service`, created if missing: a
    /// process that writes `0` to it runs in it from then on, and so do its children.
    /// `owner` (uid, gid): the user a service runs as, who must be able to write it.
    pub fn procs_of(
        &self,
        service: &str,
        owner: Option<(u32, u32)>,
    ) -> Result<PathBuf, MemoryError> {
        let dir = self.path.join(service);
        std::fs::create_dir_all(&dir).map_err(|source| MemoryError::Io {
            action: "creating",
            path: dir.clone(),
            source,
        })?;
        let procs = dir.join("cgroup.procs");
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&procs, Some(uid), Some(gid)).map_err(|source| {
                MemoryError::Io {
                    action: "handing over",
                    path: procs.clone(),
                    source,
                }
            })?;
        }
        Ok(procs)
    }

    /// Used, limit and OOM kills of the whole stack.
    pub fn read(&self) -> Result<MemoryReading, MemoryError> {
        Ok(MemoryReading {
            used: used_in(&self.path)?,
            limit: read_number(&self.path.join("memory.limit_in_bytes"))?,
            oom_kills: oom_kills_below(&self.path)?,
        })
    }

    /// Memory used by one service's processes (local backend: its child cgroup), as
    /// `docker stats` counts a container's: what a process maps from a file another
    /// also maps (PostgreSQL's shared buffers) is charged once, to one of them.
    pub fn used_by(&self, service: &str) -> Result<u64, MemoryError> {
        used_in(&self.path.join(service))
    }
}

/// What a cgroup and those below it are charged, less inactive file cache.
fn used_in(dir: &Path) -> Result<u64, MemoryError> {
    let usage = read_number(&dir.join("memory.usage_in_bytes"))?;
    let stat_path = dir.join("memory.stat");
    let inactive_file =
        field(&read(&stat_path)?, "total_inactive_file").ok_or(MemoryError::Format {
            path: stat_path,
            field: "total_inactive_file",
        })?;
    Ok(usage.saturating_sub(inactive_file))
}

/// OOM kills in `dir` and every cgroup below it. Cgroup v1 counts a kill only in the
/// killed process's own cgroup (a service's, a container's), not in its ancestors.
fn oom_kills_below(dir: &Path) -> Result<u64, MemoryError> {
    let path = dir.join("memory.oom_control");
    let mut kills = field(&read(&path)?, "oom_kill").ok_or(MemoryError::Format {
        path,
        field: "oom_kill",
    })?;
    let children = std::fs::read_dir(dir).map_err(|source| MemoryError::Io {
        action: "listing",
        path: dir.to_owned(),
        source,
    })?;
    for child in children.flatten() {
        if child.file_type().is_ok_and(|t| t.is_dir()) {
            // A child removed meanwhile (a container recreated) has nothing to count.
            match oom_kills_below(&child.path()) {
                Ok(n) => kills += n,
                Err(MemoryError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(kills)
}

/// The mount point of the v1 memory controller, or why there is none.
fn memory_hierarchy() -> Result<PathBuf, String> {
    hierarchies()
        .into_iter()
        .find(|(_, options)| options.split(',').any(|o| o == "memory"))
        .map(|(point, _)| point)
        .ok_or_else(|| {
            "no cgroup v1 memory controller is mounted (cgroup v2 is not supported yet): \
             the stack's memory cannot be limited"
                .into()
        })
}

/// Every cgroup hierarchy (v1, and v2's unified tree): mount point and mount options.
fn hierarchies() -> Vec<(PathBuf, String)> {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return Vec::new();
    };
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let (_, point, kind, options) = (
                fields.next()?,
                fields.next()?,
                fields.next()?,
                fields.next()?,
            );
            // cgroup2 too: docker's runtime makes the parent in the hybrid layout's
            // unified tree as well, and it must go with the run.
            (kind == "cgroup" || kind == "cgroup2")
                .then(|| (PathBuf::from(point), options.to_owned()))
        })
        .collect()
}

/// Removes the run's cgroups from every hierarchy, deepest first. A cgroup that still
/// holds a process stays (the kernel refuses), and is reaped with the run's processes.
pub(crate) fn remove_cgroups(run_id: &str) {
    if run_id.is_empty() || run_id.contains('/') || run_id.starts_with('.') {
        return;
    }
    for (point, _) in hierarchies() {
        let top = point.join(PARENT).join(run_id);
        if top.is_dir() {
            remove_deepest_first(&top);
        }
        // The parent goes with the last run; while another run has a cgroup, the
        // kernel refuses, which is as it should be.
        let _ = std::fs::remove_dir(point.join(PARENT));
    }
}

fn remove_deepest_first(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_deepest_first(&entry.path());
            }
        }
    }
    if let Err(e) = std::fs::remove_dir(dir) {
        tracing::warn!(cgroup = %dir.display(), error = %e, "could not remove a stack's cgroup");
    }
}

/// A run's cgroup whose run directory is gone: what a run whose removal failed (a
/// process still inside) left behind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrphanCgroup {
    pub run_id: String,
    /// One of its directories (the memory hierarchy's, where there is one).
    pub path: PathBuf,
    /// How long ago it was created.
    pub age: std::time::Duration,
}

/// Cgroups of runs that have no run directory under the runtime root `root`.
pub fn orphaned_cgroups(root: &Path) -> Vec<OrphanCgroup> {
    let mut orphans: Vec<OrphanCgroup> = Vec::new();
    for (point, _) in hierarchies() {
        let Ok(entries) = std::fs::read_dir(point.join(PARENT)) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(run_id) = entry.file_name().into_string() else {
                continue;
            };
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if !is_dir || root.join("runs").join(&run_id).exists() {
                continue;
            }
            if orphans.iter().any(|o| o.run_id == run_id) {
                continue;
            }
            let age = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|at| at.elapsed().ok())
                .unwrap_or_default();
            orphans.push(OrphanCgroup {
                run_id,
                path: entry.path(),
                age,
            });
        }
    }
    orphans.sort_by(|a, b| a.run_id.cmp(&b.run_id));
    orphans
}

/// Removes the orphaned cgroups older than `grace` (a younger one may belong to a
/// stack of another runtime root that is still booting); returns the run ids whose
/// cgroups are gone.
pub fn remove_orphaned_cgroups(root: &Path, grace: std::time::Duration) -> Vec<String> {
    orphaned_cgroups(root)
        .into_iter()
        .filter(|orphan| orphan.age >= grace)
        .filter_map(|orphan| {
            remove_cgroups(&orphan.run_id);
            (!orphan.path.exists()).then_some(orphan.run_id)
        })
        .collect()
}

fn read(path: &Path) -> Result<String, MemoryError> {
    std::fs::read_to_string(path).map_err(|source| MemoryError::Io {
        action: "reading",
        path: path.to_owned(),
        source,
    })
}

fn read_number(path: &Path) -> Result<u64, MemoryError> {
    read(path)?.trim().parse().map_err(|_| MemoryError::Format {
        path: path.to_owned(),
        field: "a number",
    })
}

fn write(path: &Path, value: &str) -> Result<(), MemoryError> {
    std::fs::write(path, value).map_err(|source| MemoryError::Io {
        action: "writing",
        path: path.to_owned(),
        source,
    })
}

/// The value of `name` in a `key value` per line file (`memory.stat`, `memory.oom_control`).
fn field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        (key == name).then(|| value.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_by_exact_name() {
        let stat = "inactive_file 10\ntotal_inactive_file 4096\ntotal_rss 8192\n";
        assert_eq!(field(stat, "total_inactive_file"), Some(4096));
        assert_eq!(field(stat, "inactive_file"), Some(10));
        assert_eq!(field(stat, "rss"), None);
        let oom = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(field(oom, "oom_kill"), Some(3));
    }
}
