//! The host the stack runs on, as `df -h` and `free -h` show it.
//!
//! Disk and memory are properties of where the stack runs, not of one service: on
//! the local backend they are the stack's data volume and its processes against a
//! modeled capacity, on docker the containers' tmpfs volumes and memory limits.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// Used and total bytes of one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub used: u64,
    pub total: u64,
}

impl Usage {
    /// Used share, 0..=1 (0 when the total is unknown).
    pub fn fraction(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.used as f64 / self.total as f64
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct HostError {
    pub what: &'static str,
    pub reason: String,
}

/// The stack's directories on its disk that runbooks read and clean.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DiskDir {
    /// The services' log files (`<service>.log` and rotated `<service>.log.N`).
    Logs,
    /// PostgreSQL's backups (`*.sql.gz`).
    Backups,
}

/// One file on the stack's disk, as `find -printf '%s %T@ %p'` lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct DiskFile {
    /// The path as the runbook's commands name it (`/backups/postgres/…`).
    pub path: String,
    pub bytes: u64,
    pub modified: DateTime<Utc>,
}

impl DiskFile {
    /// The file's name, without its directory.
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

#[async_trait]
pub trait Host: Send + Sync {
    /// `df -h` of the volume the stack writes to.
    async fn disk(&self) -> Result<Usage, HostError>;
    /// `free -h` as the stack sees it.
    async fn memory(&self) -> Result<Usage, HostError>;
    /// OOM kills among the stack's processes since it started (`dmesg | grep -i oom`).
    async fn oom_kills(&self) -> Result<u64, HostError>;
    /// Where `dir` is, as the runbook's commands name it.
    fn dir(&self, dir: DiskDir) -> String;
    /// The files directly in `dir` (`du -sh`, `ls -l`, `find -mtime`).
    async fn files(&self, dir: DiskDir) -> Result<Vec<DiskFile>, HostError>;
    /// `truncate -s <bytes> <path>…`, for paths [`Host::files`] listed. Paths outside
    /// the stack's disk are refused before anything is done.
    async fn truncate(&self, paths: &[String], bytes: u64) -> Result<(), HostError>;
    /// `rm -f <path>…`, for paths [`Host::files`] listed; refused outside the disk.
    async fn remove(&self, paths: &[String]) -> Result<(), HostError>;
}
