//! The stack's disk: one size-limited file system for the services' log files and
//! PostgreSQL's backups, on both backends, and the file operations on it that the
//! Disk Space runbook and the disk faults use.
//!
//! Layout, the same on both backends: the root holds `<service>.log` (and rotated
//! `<service>.log.N`), `postgres/` holds the backups. The runbook's commands name the
//! directories as the docker stack's containers mount them: the twin's containers mount
//! the root at `/var/log/songnodes`, PostgreSQL's at `/backups` (so the backups are
//! `/backups/postgres/*.sql.gz`); the local backend names its real paths
//! (`<run_dir>/disk`, `<run_dir>/disk/postgres`).
//!
//! Every operation takes a directory of [`DiskDir`] and a plain file name (no `/`,
//! nothing outside `[A-Za-z0-9._-]`): a path outside the stack's own disk cannot be
//! named, so nothing outside it is ever touched (the host's `/var/lib/docker` and
//! `/backups` are not the stack's).

use std::path::PathBuf;

use chrono::{DateTime, TimeZone, Utc};
use runbooks::ops::{DiskDir, DiskFile, Usage};

use crate::docker::faults::{ContainerFaultError, DiskGauge};
use crate::local::disk::LocalDisk;

/// The disk's size on both backends: room for the disk drill's backups and logs at
/// its scale; a tmpfs uses memory only for what is written.
pub const DEFAULT_DISK_SIZE: u64 = 256 << 20;
/// The backups' directory below the disk's root.
pub const BACKUPS_SUBDIR: &str = "postgres";

/// Why a disk operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("{0}")]
    Container(#[from] ContainerFaultError),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a file of the stack's disk ({logs}/<name> or {backups}/<name>)")]
    Outside {
        path: String,
        logs: String,
        backups: String,
    },
    #[error("`{command}` printed what is not a file listing: {output}")]
    Listing { command: String, output: String },
}

/// The stack's disk on either backend.
#[derive(Clone, Debug)]
pub enum StackDisk {
    Local(LocalDisk),
    Docker(DiskGauge),
}

impl StackDisk {
    /// Whether the disk is a size-limited file system of its own (always on docker;
    /// locally when it could be mounted), or why not.
    pub fn limited(&self) -> Result<(), String> {
        match self {
            StackDisk::Local(disk) => disk.limited.clone(),
            StackDisk::Docker(_) => Ok(()),
        }
    }

    /// `dir` as the runbook's commands name it.
    pub fn dir(&self, dir: DiskDir) -> String {
        match (self, dir) {
            (StackDisk::Local(disk), DiskDir::Logs) => disk.root.display().to_string(),
            (StackDisk::Local(disk), DiskDir::Backups) => {
                disk.root.join(BACKUPS_SUBDIR).display().to_string()
            }
            (StackDisk::Docker(_), DiskDir::Logs) => crate::docker::faults::LOG_DIR.to_owned(),
            (StackDisk::Docker(_), DiskDir::Backups) => {
                crate::docker::faults::BACKUP_DIR.to_owned()
            }
        }
    }

    /// `df` of the disk.
    pub async fn usage(&self) -> Result<Usage, DiskError> {
        match self {
            StackDisk::Local(disk) => {
                let stats = nix::sys::statvfs::statvfs(&disk.root).map_err(|e| DiskError::Io {
                    action: "df",
                    path: disk.root.display().to_string(),
                    source: e.into(),
                })?;
                let block = stats.fragment_size();
                let total = stats.blocks() * block;
                Ok(Usage {
                    used: total.saturating_sub(stats.blocks_available() * block),
                    total,
                })
            }
            StackDisk::Docker(gauge) => {
                let usage = gauge.usage().await?;
                Ok(Usage {
                    used: usage.total_bytes.saturating_sub(usage.available_bytes),
                    total: usage.total_bytes,
                })
            }
        }
    }

    /// The files directly in `dir`, largest first.
    pub async fn files(&self, dir: DiskDir) -> Result<Vec<DiskFile>, DiskError> {
        let shown = self.dir(dir);
        let mut files: Vec<DiskFile> = match self {
            StackDisk::Local(disk) => {
                let path = local_dir(disk, dir);
                blocking(move || list_local(&path)).await?
            }
            StackDisk::Docker(gauge) => {
                let output = gauge.run(&listing_script(dir)).await?;
                parse_listing(&output).ok_or_else(|| DiskError::Listing {
                    command: format!("find {shown} -maxdepth 1 -type f"),
                    output: output.clone(),
                })?
            }
        }
        .into_iter()
        .map(|(name, bytes, modified)| DiskFile {
            path: format!("{shown}/{name}"),
            bytes,
            modified,
        })
        .collect();
        files.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.path.cmp(&b.path)));
        Ok(files)
    }

    /// `truncate -s <bytes> <path>…`, in one command. Every path is checked first:
    /// one outside the disk refuses them all.
    pub async fn truncate(&self, paths: &[String], bytes: u64) -> Result<(), DiskError> {
        self.each_file(
            paths,
            "truncate",
            format!("truncate -s {bytes}"),
            move |file| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(file)
                    .and_then(|f| f.set_len(bytes))
            },
        )
        .await
    }

    /// `rm -f <path>…`, in one command; checked first as [`StackDisk::truncate`].
    pub async fn remove(&self, paths: &[String]) -> Result<(), DiskError> {
        self.each_file(
            paths,
            "rm",
            "rm -f".to_owned(),
            |file| match std::fs::remove_file(file) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            },
        )
        .await
    }

    /// `command <files>` in a container that mounts the disk, or `local` on each file
    /// here; every path is checked before anything is done.
    async fn each_file(
        &self,
        paths: &[String],
        action: &'static str,
        command: String,
        local: impl Fn(&std::path::Path) -> std::io::Result<()> + Send + 'static,
    ) -> Result<(), DiskError> {
        let files = self.locate_all(paths)?;
        if files.is_empty() {
            return Ok(());
        }
        match self {
            StackDisk::Local(disk) => {
                let files = self.local_paths(disk, files);
                blocking(move || {
                    for (file, shown) in files {
                        local(&file).map_err(io(action, &shown))?;
                    }
                    Ok(())
                })
                .await
            }
            StackDisk::Docker(gauge) => {
                gauge
                    .run(&format!("{command} {}", in_container_all(&files)))
                    .await?;
                Ok(())
            }
        }
    }

    /// Writes `bytes` bytes to `dir/name` (as a backup job writes its dump) and dates
    /// it `modified`. A full disk fails the write with ENOSPC, as it would the job's.
    pub async fn write(
        &self,
        dir: DiskDir,
        name: &str,
        bytes: u64,
        modified: DateTime<Utc>,
    ) -> Result<(), DiskError> {
        let shown = format!("{}/{name}", self.dir(dir));
        let name = checked_name(name).ok_or_else(|| self.outside(&shown))?;
        match self {
            StackDisk::Local(disk) => {
                let dir = local_dir(disk, dir);
                blocking(move || write_local(&dir, &name, bytes, modified, &shown)).await
            }
            StackDisk::Docker(gauge) => {
                let dir = in_container(dir);
                let script = format!(
                    "mkdir -p {dir} && head -c {bytes} /dev/zero > {dir}/{name} && \
                     touch -d @{} {dir}/{name}",
                    modified.timestamp()
                );
                gauge.run(&script).await?;
                Ok(())
            }
        }
    }

    /// Back to an empty disk: backups and rotated logs removed, live logs emptied
    /// (their services keep them open).
    pub async fn clear(&self) -> Result<(), DiskError> {
        match self {
            StackDisk::Local(disk) => {
                let root = disk.root.clone();
                blocking(move || clear_local(&root)).await
            }
            StackDisk::Docker(gauge) => {
                let root = in_container(DiskDir::Logs);
                gauge
                    .run(&format!(
                        "find {root} -mindepth 1 ! -name '*.log' -delete && \
                         find {root} -maxdepth 1 -name '*.log' -exec truncate -s 0 {{}} +"
                    ))
                    .await?;
                Ok(())
            }
        }
    }

    fn locate_all(&self, paths: &[String]) -> Result<Vec<(DiskDir, String)>, DiskError> {
        paths.iter().map(|path| self.locate(path)).collect()
    }

    fn local_paths(
        &self,
        disk: &LocalDisk,
        files: Vec<(DiskDir, String)>,
    ) -> Vec<(PathBuf, String)> {
        files
            .into_iter()
            .map(|(dir, name)| {
                let shown = format!("{}/{name}", self.dir(dir));
                (local_dir(disk, dir).join(name), shown)
            })
            .collect()
    }

    /// The directory and checked file name of a path this disk showed.
    fn locate(&self, path: &str) -> Result<(DiskDir, String), DiskError> {
        for dir in [DiskDir::Backups, DiskDir::Logs] {
            if let Some(name) = path
                .strip_prefix(&self.dir(dir))
                .and_then(|rest| rest.strip_prefix('/'))
                .and_then(checked_name)
            {
                return Ok((dir, name));
            }
        }
        Err(self.outside(path))
    }

    fn outside(&self, path: &str) -> DiskError {
        DiskError::Outside {
            path: path.to_owned(),
            logs: self.dir(DiskDir::Logs),
            backups: self.dir(DiskDir::Backups),
        }
    }
}

/// A plain file name: no directory, nothing a shell would read.
fn checked_name(name: &str) -> Option<String> {
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    plain.then(|| name.to_owned())
}

fn rel(dir: DiskDir) -> &'static str {
    match dir {
        DiskDir::Logs => "",
        DiskDir::Backups => BACKUPS_SUBDIR,
    }
}

/// `dir` inside a container that mounts the disk, for the script run there: every
/// script runs through [`DiskGauge::run`], which puts the container's mount point of
/// the disk's root in `$DISK`.
fn in_container(dir: DiskDir) -> String {
    match rel(dir) {
        "" => "\"$DISK\"".to_owned(),
        sub => format!("\"$DISK\"/{sub}"),
    }
}

/// Checked files as words of a script run by [`DiskGauge::run`].
fn in_container_all(files: &[(DiskDir, String)]) -> String {
    files
        .iter()
        .map(|(dir, name)| format!("{}/{name}", in_container(*dir)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn local_dir(disk: &LocalDisk, dir: DiskDir) -> PathBuf {
    match rel(dir) {
        "" => disk.root.clone(),
        sub => disk.root.join(sub),
    }
}

/// `find` of the files directly in `dir`, for [`DiskGauge::run`].
fn listing_script(dir: DiskDir) -> String {
    let dir = in_container(dir);
    format!("mkdir -p {dir} && find {dir} -maxdepth 1 -type f -printf '%s %T@ %f\\n'")
}

/// `find -printf '%s %T@ %f\n'` lines: size, mtime in seconds, name.
fn parse_listing(output: &str) -> Option<Vec<(String, u64, DateTime<Utc>)>> {
    output
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let mut fields = line.splitn(3, ' ');
            let bytes = fields.next()?.parse().ok()?;
            let seconds: f64 = fields.next()?.parse().ok()?;
            let name = fields.next()?.to_owned();
            let modified = Utc
                .timestamp_millis_opt((seconds * 1000.0) as i64)
                .single()?;
            Some((name, bytes, modified))
        })
        .collect()
}

fn list_local(dir: &std::path::Path) -> Result<Vec<(String, u64, DateTime<Utc>)>, DiskError> {
    let shown = dir.display().to_string();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("listing", &shown)(e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io("listing", &shown))?;
        let meta = entry.metadata().map_err(io("listing", &shown))?;
        if !meta.is_file() {
            continue;
        }
        let modified = meta.modified().map_err(io("listing", &shown))?;
        files.push((
            entry.file_name().to_string_lossy().into_owned(),
            meta.len(),
            DateTime::<Utc>::from(modified),
        ));
    }
    Ok(files)
}

fn write_local(
    dir: &std::path::Path,
    name: &str,
    bytes: u64,
    modified: DateTime<Utc>,
    shown: &str,
) -> Result<(), DiskError> {
    use std::io::Write as _;
    std::fs::create_dir_all(dir).map_err(io("mkdir", shown))?;
    let mut file = std::fs::File::create(dir.join(name)).map_err(io("writing", shown))?;
    let block = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        file.write_all(&block[..n]).map_err(io("writing", shown))?;
        left -= n as u64;
    }
    file.set_modified(modified.into())
        .map_err(io("touch -d", shown))
}

fn clear_local(root: &std::path::Path) -> Result<(), DiskError> {
    let shown = root.display().to_string();
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("clearing", &shown)(e)),
    };
    for entry in entries {
        let path = entry.map_err(io("clearing", &shown))?.path();
        let live_log = path.extension().is_some_and(|e| e == "log");
        let result = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else if live_log {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(0))
        } else {
            std::fs::remove_file(&path)
        };
        result.map_err(io("clearing", &path.display().to_string()))?;
    }
    Ok(())
}

fn io(action: &'static str, path: &str) -> impl FnOnce(std::io::Error) -> DiskError {
    let path = path.to_owned();
    move |source| DiskError::Io {
        action,
        path,
        source,
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, DiskError> + Send + 'static,
) -> Result<T, DiskError> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(DiskError::Io {
            action: "running",
            path: "a disk operation".into(),
            source: std::io::Error::other(e),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_a_directory_or_a_shell_word_are_refused() {
        assert_eq!(
            checked_name("musicdb-20261120.sql.gz").as_deref(),
            Some("musicdb-20261120.sql.gz")
        );
        for bad in ["", "..", "a/b", "x;rm", "$(id)", "a b"] {
            assert_eq!(checked_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_find_listing_reads_size_time_and_name() {
        let files = parse_listing(
            "1048576 1764460800.5000000000 rest-api.log\n12 1764374400.0 musicdb-20261129.sql.gz\n",
        )
        .unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].0, "rest-api.log");
        assert_eq!(files[0].1, 1 << 20);
        assert_eq!(files[1].2.timestamp(), 1_764_374_400);
        assert!(parse_listing("find: permission denied\n").is_none());
        assert_eq!(parse_listing("").unwrap().len(), 0);
    }

    #[tokio::test]
    async fn local_files_are_listed_truncated_removed_and_cleared_inside_the_disk_only() {
        let dir = tempfile::tempdir().unwrap();
        let disk = StackDisk::Local(LocalDisk {
            root: dir.path().to_owned(),
            limited: Err("a test directory".into()),
        });
        let night = Utc.with_ymd_and_hms(2026, 11, 20, 2, 0, 0).unwrap();
        disk.write(DiskDir::Backups, "musicdb-20261120.sql.gz", 4096, night)
            .await
            .unwrap();
        std::fs::write(dir.path().join("rest-api.log"), vec![b'x'; 8192]).unwrap();
        let backups = disk.files(DiskDir::Backups).await.unwrap();
        assert_eq!(backups.len(), 1);
        assert_eq!(backups[0].bytes, 4096);
        assert_eq!(backups[0].modified, night);
        let logs = disk.files(DiskDir::Logs).await.unwrap();
        assert_eq!(
            logs.len(),
            1,
            "only files directly in the directory: {logs:?}"
        );
        disk.truncate(std::slice::from_ref(&logs[0].path), 0)
            .await
            .unwrap();
        assert_eq!(
            std::fs::metadata(dir.path().join("rest-api.log"))
                .unwrap()
                .len(),
            0
        );
        // One path outside the disk refuses them all: the backup is still there.
        let with_outsider = [backups[0].path.clone(), "/etc/passwd".to_owned()];
        assert!(matches!(
            disk.remove(&with_outsider).await,
            Err(DiskError::Outside { .. })
        ));
        assert_eq!(disk.files(DiskDir::Backups).await.unwrap().len(), 1);
        let escape = format!("{}/../x", disk.dir(DiskDir::Logs));
        assert!(matches!(
            disk.remove(&[escape]).await,
            Err(DiskError::Outside { .. })
        ));
        disk.remove(std::slice::from_ref(&backups[0].path))
            .await
            .unwrap();
        assert!(disk.files(DiskDir::Backups).await.unwrap().is_empty());
        disk.write(DiskDir::Backups, "b.sql.gz", 10, night)
            .await
            .unwrap();
        disk.clear().await.unwrap();
        assert!(disk.files(DiskDir::Backups).await.unwrap().is_empty());
        assert!(
            dir.path().join("rest-api.log").exists(),
            "a live log is emptied, not removed"
        );
    }
}
